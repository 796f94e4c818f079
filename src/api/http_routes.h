// HttpRoutes: the HTTP routes of an API listener, (method, path pattern) ->
// handler coroutine. Built once before the listener starts and then only read;
// handlers run on the io_context of the listener that serves them (the
// control thread for the daemon). A new endpoint is one more Add() call.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace cutover {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// The values captured by a pattern's {name} segments, percent-decoded.
class PathParams {
 public:
  // The value of capture `name`; empty when the pattern has no such capture.
  std::string_view Get(std::string_view name) const;
  void Set(std::string name, std::string value);

 private:
  std::vector<std::pair<std::string, std::string>> values_;
};

// Handles one request. The server fills in the HTTP version, keep-alive and
// Content-Length; the handler sets status, headers and body. The request and
// params live until the returned coroutine finishes.
using RouteHandler =
    std::function<boost::asio::awaitable<HttpResponse>(const HttpRequest&, const PathParams&)>;

class HttpRoutes {
 public:
  // Adds a route. `pattern` is an absolute path whose segments are literals or
  // captures: "/v1/services/{name}/switch". A capture matches exactly one
  // non-empty segment. Routes are tried in the order added.
  void Add(boost::beast::http::verb method, std::string_view pattern, RouteHandler handler);

  // Answers a request: the matching route's handler, or a JSON 404
  // {"code":"not_found"} when no pattern matches the path, or a JSON 405
  // {"code":"method_not_allowed"} with an Allow header when patterns match but
  // not for this method. The query string is ignored for matching.
  boost::asio::awaitable<HttpResponse> Dispatch(const HttpRequest& request) const;

 private:
  struct Route {
    boost::beast::http::verb method;
    std::vector<std::string> segments;  // "{name}" for a capture
    RouteHandler handler;
  };

  static std::optional<PathParams> Match(const Route& route,
                                         const std::vector<std::string>& segments);

  std::vector<Route> routes_;
};

// Responses shared by every route.
HttpResponse JsonResponse(int status, std::string body);
HttpResponse ErrorResponse(const Error& error);  // status from HttpStatusFor(error.code)
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);

// Splits a request target into its path segments, percent-decoded, without
// the query string. "/v1/services/web%2Dapp?x=1" -> {"v1", "services", "web-app"}.
// Fails on a target that is not an absolute path or has a bad escape.
Result<std::vector<std::string>> SplitPath(std::string_view target);

}  // namespace cutover
