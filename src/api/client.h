// ApiClient: a blocking client of the control API over the daemon's unix
// socket, used by the cutover CLI. One connection per call, each call bounded
// by a timeout. An ApiClient is used by one thread at a time; it runs its own
// private event loop inside Call().
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/types.h"

namespace cutover {

struct ApiResponse {
  int status = 0;    // HTTP status
  std::string body;  // JSON for /v1 routes
};

class ApiClient {
 public:
  // A switch waits until every router worker routes by the new table, so the
  // default leaves room for a busy daemon.
  static constexpr Millis kDefaultTimeout{60'000};

  explicit ApiClient(std::string socket_path, Millis timeout = kDefaultTimeout);

  // Sends X-Cutover-Actor with every request: who asks, for the audit trail.
  // Empty (the default) sends none and the daemon records "api".
  void set_actor(std::string actor) { actor_ = std::move(actor); }

  const std::string& socket_path() const { return socket_path_; }

  // Sends one request and returns the daemon's answer, whatever its status.
  // A non-empty `json_body` is sent as application/json. Fails only when no
  // answer came: kUnavailable "cannot reach the cutover daemon at PATH:
  // <reason>" when connecting fails (no such file, refused, permission), also
  // kUnavailable when the connection breaks, kTimeout when the answer takes
  // longer than the timeout, kInvalidArgument for a method or socket path that
  // cannot be used.
  Result<ApiResponse> Call(std::string_view method, std::string_view path,
                           std::string_view json_body = {});

 private:
  std::string socket_path_;
  Millis timeout_;
  std::string actor_;
};

// Percent-encodes one path segment (a service name) for a request target:
// everything but unreserved characters (RFC 3986) is escaped.
std::string EncodePathSegment(std::string_view segment);

// True for a 2xx status.
inline bool IsSuccess(const ApiResponse& response) {
  return response.status >= 200 && response.status < 300;
}

// The error a non-2xx response stands for: the code and message of the
// server's JSON error body, or, when the body is not one, a code from the
// status and a message quoting the status.
Error ErrorFromResponse(const ApiResponse& response);

}  // namespace cutover
