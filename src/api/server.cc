#include "api/server.h"

#include <utility>

#include "api/control_routes.h"
#include "api/deployment_routes.h"

namespace cutover {

Result<std::unique_ptr<ApiServer>> ApiServer::Start(boost::asio::io_context& ctx,
                                                    const std::string& socket_path,
                                                    Controller& controller) {
  HttpRoutes routes = ControlRoutes(controller);
  AddDeploymentRoutes(routes, controller);
  auto http = HttpServer::ServeUnix(ctx, socket_path, std::move(routes), {});
  if (!http) return std::unexpected(std::move(http.error()));
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(*http)));
}

ApiServer::~ApiServer() { Stop(); }

void ApiServer::Stop() { http_->Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(boost::asio::io_context& ctx,
                                                            const HostPort& listen,
                                                            std::string token,
                                                            Controller& controller) {
  if (token.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "the metrics listener needs a non-empty token");
  }
  HttpServerOptions options;
  options.authorize = RequireBearerToken(std::move(token));
  // A scraper needs one or two; the listener may face a whole network.
  options.max_connections = 32;
  auto http = HttpServer::ServeTcp(ctx, listen, MetricsRoutes(controller), std::move(options));
  if (!http) return std::unexpected(std::move(http.error()));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(*http)));
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() { http_->Stop(); }

}  // namespace cutover
