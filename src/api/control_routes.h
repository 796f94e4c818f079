// The routes of the control API (docs/api.md) and of the metrics listener,
// over any controller type with the Controller's methods: the daemon uses
// cutover::Controller, tests a fake with the same shape. The handlers run on
// the control thread, where the controller lives; the controller must outlive
// the server that serves these routes.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <string>
#include <string_view>

#include "api/http_routes.h"
#include "api/json.h"
#include "common/error.h"

namespace cutover {

// Header naming who asks for a change, recorded in the audit trail.
inline constexpr std::string_view kActorHeader = "X-Cutover-Actor";
inline constexpr std::string_view kDefaultActor = "api";
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4";

// The actor of a request: its X-Cutover-Actor header, or "api" without one.
// Fails on a value that would not read well in an audit trail.
Result<std::string> RequestActor(const HttpRequest& request);

namespace control_routes_internal {

template <typename ControllerT>
boost::asio::awaitable<HttpResponse> ListServices(ControllerT& controller) {
  co_return JsonResponse(200, JsonBody(ServicesToJson(controller.ListServices())));
}

template <typename ControllerT>
boost::asio::awaitable<HttpResponse> GetService(ControllerT& controller, std::string name) {
  auto service = controller.GetService(name);
  if (!service) co_return ErrorResponse(service.error());
  co_return JsonResponse(200, JsonBody(ToJson(*service)));
}

template <typename ControllerT>
boost::asio::awaitable<HttpResponse> Switch(ControllerT& controller, const HttpRequest& request,
                                            std::string name) {
  auto body = ParseSwitchRequest(request.body());
  if (!body) co_return ErrorResponse(body.error());
  auto actor = RequestActor(request);
  if (!actor) co_return ErrorResponse(actor.error());
  auto service =
      co_await controller.Switch(std::move(name), body->to, body->force, std::move(*actor));
  if (!service) co_return ErrorResponse(service.error());
  co_return JsonResponse(200, JsonBody(ToJson(*service)));
}

template <typename ControllerT>
boost::asio::awaitable<HttpResponse> Metrics(ControllerT& controller) {
  HttpResponse response;
  response.result(200);
  response.set(boost::beast::http::field::content_type, kMetricsContentType);
  response.body() = controller.PrometheusMetrics();
  co_return response;
}

}  // namespace control_routes_internal

// GET /v1/services, GET /v1/services/{name}, POST /v1/services/{name}/switch,
// GET /metrics. `controller` is borrowed.
template <typename ControllerT>
HttpRoutes ControlRoutes(ControllerT& controller) {
  namespace internal = control_routes_internal;
  using boost::beast::http::verb;
  HttpRoutes routes;
  // The lambdas only forward: each coroutine gets its arguments in its own
  // frame, so nothing it uses lives in a lambda object.
  routes.Add(verb::get, "/v1/services", [&controller](const HttpRequest&, const PathParams&) {
    return internal::ListServices(controller);
  });
  routes.Add(verb::get, "/v1/services/{name}",
             [&controller](const HttpRequest&, const PathParams& params) {
               return internal::GetService(controller, std::string(params.Get("name")));
             });
  routes.Add(verb::post, "/v1/services/{name}/switch",
             [&controller](const HttpRequest& request, const PathParams& params) {
               return internal::Switch(controller, request, std::string(params.Get("name")));
             });
  routes.Add(verb::get, "/metrics", [&controller](const HttpRequest&, const PathParams&) {
    return internal::Metrics(controller);
  });
  return routes;
}

// GET /metrics only: what the token-protected TCP metrics listener serves.
template <typename ControllerT>
HttpRoutes MetricsRoutes(ControllerT& controller) {
  HttpRoutes routes;
  routes.Add(boost::beast::http::verb::get, "/metrics",
             [&controller](const HttpRequest&, const PathParams&) {
               return control_routes_internal::Metrics(controller);
             });
  return routes;
}

}  // namespace cutover
