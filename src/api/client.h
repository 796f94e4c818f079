// ApiClient: a blocking client of the control API over the daemon's unix
// socket, used by the cutover CLI. One connection per call, each call bounded
// by a timeout; Stream() follows a server-sent event stream instead. An
// ApiClient is used by one thread at a time; it runs its own private event
// loop inside Call() and Stream(). SseParser is a plain value type.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/types.h"

namespace cutover {

struct ApiResponse {
  int status = 0;    // HTTP status
  std::string body;  // JSON for /v1 routes
};

// One server-sent event.
struct SseEvent {
  std::string event;  // the "event:" field; "message" when the stream gave none
  std::string data;   // the "data:" lines joined with "\n"
};

// Parses a text/event-stream body (the HTML Living Standard's rules) from
// pieces as they arrive, split anywhere. Lines end with "\n", "\r\n" or "\r";
// a line starting with ":" is a comment; "event:" names the event and "data:"
// adds a line of data, one space after the colon being dropped; "id:",
// "retry:" and unknown fields are ignored. A blank line dispatches the event
// when it has data and resets the fields.
class SseParser {
 public:
  // A single line or event's data larger than this is refused: no daemon sends
  // one, and the client would otherwise buffer without bound.
  static constexpr size_t kMaxEventBytes = 16 * 1024 * 1024;

  // Parses `bytes` and calls `on_event` for each event they complete, in
  // order. Returns true to go on, false as soon as `on_event` returned false
  // (the rest of `bytes` is then not parsed), or kInvalidArgument when an
  // event grows beyond kMaxEventBytes.
  Result<bool> Feed(std::string_view bytes, const std::function<bool(const SseEvent&)>& on_event);

 private:
  // False when `on_event` asked to stop.
  bool EndLine(const std::function<bool(const SseEvent&)>& on_event);

  std::string line_;
  std::string event_;
  std::string data_;  // each data line followed by "\n"
  bool after_cr_ = false;
  bool first_line_ = true;
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

  // Sends one request (as Call() does, with "Accept: text/event-stream") and
  // follows the text/event-stream answer, calling `on_event` in this thread
  // for each event as it arrives (comments, keep-alives included, are
  // skipped), until the daemon ends the stream or `on_event` returns false.
  // Either way the result is ApiResponse{status, ""} with the stream's 2xx
  // status (200). A non-2xx answer (a JSON error) or one that is not an
  // event stream is returned whole as ApiResponse{status, body}, without
  // calling `on_event`.
  //
  // Connecting and sending are bounded by the client's timeout. After that
  // `idle_timeout` (> 0) bounds every wait for data: when nothing at all, not
  // even a keep-alive comment, arrives for that long, the call fails with
  // kTimeout. Fails with kUnavailable as Call() does when the daemon cannot
  // be reached or the connection breaks mid-stream (events before the break
  // have been delivered), and with kInvalidArgument for a malformed stream.
  Result<ApiResponse> Stream(std::string_view method, std::string_view path,
                             std::string_view json_body,
                             const std::function<bool(const SseEvent&)>& on_event,
                             Millis idle_timeout);

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
