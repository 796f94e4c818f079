// HttpServer: a small HTTP/1.1 server for the control API and the metrics
// listener, on a unix stream socket or TCP. One coroutine per connection on the
// io_context passed in (the control thread for the daemon); keep-alive; a
// request body limit; timeouts on idle, header, body and write. Requests are
// answered by a HttpRoutes, streaming routes with server-sent events on a
// connection that is closed when the stream ends. Create, use and destroy it
// on that io_context's thread.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/http_routes.h"
#include "common/error.h"
#include "common/types.h"

namespace cutover {

struct HttpServerOptions {
  // From the first byte of a request to the end of its head.
  Millis header_timeout{10'000};
  // Reading a request body once its head is in.
  Millis body_timeout{30'000};
  // Waiting on a keep-alive connection for the next request.
  Millis idle_timeout{60'000};
  // Writing one response; for a stream, each event or keep-alive.
  Millis write_timeout{30'000};
  // Largest request body; a larger one is answered 413 and the connection closed.
  uint64_t body_limit = 1024 * 1024;
  // Largest request head; a larger one is answered 431.
  uint32_t header_limit = 16 * 1024;
  // Connections served at once; one more is closed as soon as it is accepted.
  size_t max_connections = 256;
  // Called for every request once its head is in, before its body is read
  // and before routing. A response it returns is sent
  // instead of routing the request (e.g. 401 without the right token).
  std::function<std::optional<HttpResponse>(const HttpRequest&)> authorize;
};

// Creates a listening unix stream socket at `path`, its file with mode 0600
// (and the parent folder, 0700, when missing). An existing `path` is replaced
// only when it is a stale socket nobody listens on: a live one fails with
// kConflict "another cutover daemon is listening on PATH", anything that is not
// a socket fails without being touched.
Result<boost::asio::local::stream_protocol::acceptor> ListenUnixSocket(boost::asio::io_context& ctx,
                                                                       const std::string& path);

// Creates a listening TCP socket on `address` (a name is resolved; the first
// address that binds wins). Port 0 picks a free port.
Result<boost::asio::ip::tcp::acceptor> ListenTcp(boost::asio::io_context& ctx,
                                                 const HostPort& address);

class HttpServer {
 public:
  // Serves `routes` on a new unix socket at `socket_path` (see
  // ListenUnixSocket). Stop() removes the socket file again.
  static Result<std::unique_ptr<HttpServer>> ServeUnix(boost::asio::io_context& ctx,
                                                       const std::string& socket_path,
                                                       HttpRoutes routes,
                                                       HttpServerOptions options);

  // Serves `routes` on a new TCP listener on `address`.
  static Result<std::unique_ptr<HttpServer>> ServeTcp(boost::asio::io_context& ctx,
                                                      const HostPort& address, HttpRoutes routes,
                                                      HttpServerOptions options);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Stops accepting, closes every connection (a request being handled finishes
  // but its response is not sent; a stream handler's pending wait is
  // cancelled and its Send() fails, see StreamHandler) and removes the unix
  // socket file if it is still the one this server created. Idempotent.
  void Stop();

  // The port a TCP server listens on (the chosen one for port 0); 0 for unix.
  uint16_t port() const { return port_; }
  // The unix socket path; empty for TCP.
  const std::string& socket_path() const { return socket_path_; }

  struct Shared;  // state shared with the connection coroutines

 private:
  HttpServer() = default;

  std::shared_ptr<Shared> shared_;
  uint16_t port_ = 0;
  std::string socket_path_;
  // Identity of the socket file we bound, so Stop() never removes a file that
  // a successor created at the same path.
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
};

// An authorize hook for HttpServerOptions: requires "Authorization: Bearer
// <token>" (compared in constant time), else answers 401 with
// "WWW-Authenticate: Bearer".
std::function<std::optional<HttpResponse>(const HttpRequest&)> RequireBearerToken(
    std::string token);

}  // namespace cutover
