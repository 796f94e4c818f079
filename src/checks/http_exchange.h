// HttpExchange: one HTTP/1.1 request on a fresh connection and its response,
// as the checks need it: the status, Set-Cookie values and the first 1 MiB of
// the body (Content-Length, chunked or until-close). Internal to src/checks.
// Control thread; asynchronous on the caller's executor. Unbounded in time:
// the caller races it with its own deadline (terminal cancellation stops it).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "config/config.h"

namespace cutover {

// Bodies longer than this are cut; expectations are checked on the first part.
inline constexpr size_t kMaxCheckBody = 1 << 20;

struct HttpOutgoing {
  std::string method = "GET";
  std::string target = "/";
  std::string host;  // the Host header, unless `headers` names one
  EnvList headers;   // sent in order, after Host
  std::string body;  // sent with its Content-Length
};

struct HttpReply {
  int status = 0;
  std::string body;                      // at most kMaxCheckBody bytes
  bool truncated = false;                // the body was longer
  std::vector<std::string> set_cookies;  // every Set-Cookie value, in order
};

// `request` as sent with Host `host`, and with `preview_token` in
// X-Cutover-Preview-Token when it is not empty.
HttpOutgoing OutgoingFor(const CheckRequest& request, std::string_view host,
                         std::string_view preview_token);

// `listen` as a client reaches it: a wildcard or empty host becomes loopback.
HostPort ReachableAddress(const HostPort& listen);

// Connects to `to`, sends `request` with "Connection: close" and reads the
// response. Errors (kUnavailable) say what went wrong with the connection,
// e.g. "cannot connect to 127.0.0.1:8081: Connection refused".
boost::asio::awaitable<Result<HttpReply>> SendHttpRequest(const HostPort& to,
                                                          const HttpOutgoing& request);

}  // namespace cutover
