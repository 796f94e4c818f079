// ApiServer and MetricsServer: the daemon's control API on its unix socket and
// the optional token-protected TCP listener for Prometheus. Both run on the
// control thread's io_context and call the Controller there; create, stop and
// destroy them on that thread. The routes are in control_routes.h, the wire
// format in docs/api.md.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http_server.h"
#include "common/error.h"
#include "common/types.h"
#include "controller/controller.h"

namespace cutover {

class ApiServer {
 public:
  // Listens on a unix stream socket at `socket_path` (file mode 0600). Fails
  // when another daemon listens there or the path is something other than a
  // socket; a stale socket left by a crash is replaced. `controller` is
  // borrowed and must outlive the server.
  static Result<std::unique_ptr<ApiServer>> Start(boost::asio::io_context& ctx,
                                                  const std::string& socket_path,
                                                  Controller& controller);

  // Stops and removes the socket file.
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Stops accepting, closes every connection and removes the socket file.
  // Idempotent.
  void Stop();

  const std::string& socket_path() const { return http_->socket_path(); }

 private:
  explicit ApiServer(std::unique_ptr<HttpServer> http) : http_(std::move(http)) {}

  std::unique_ptr<HttpServer> http_;
};

class MetricsServer {
 public:
  // Listens on TCP `listen` (port 0: any free port) and serves GET /metrics to
  // requests carrying "Authorization: Bearer <token>"; others get 401. An
  // empty token is refused. `controller` is borrowed and must outlive the
  // server.
  static Result<std::unique_ptr<MetricsServer>> Start(boost::asio::io_context& ctx,
                                                      const HostPort& listen, std::string token,
                                                      Controller& controller);

  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void Stop();

  // The port listened on (the chosen one when started with port 0).
  uint16_t port() const { return http_->port(); }

 private:
  explicit MetricsServer(std::unique_ptr<HttpServer> http) : http_(std::move(http)) {}

  std::unique_ptr<HttpServer> http_;
};

}  // namespace cutover
