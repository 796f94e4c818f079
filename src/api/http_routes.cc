#include "api/http_routes.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <cassert>

#include "api/json.h"

namespace cutover {
namespace http = boost::beast::http;

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    const int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return MakeError(ErrorCode::kInvalidArgument, "bad percent-escape in request path");
    }
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

bool IsCapture(std::string_view segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// The writer for a caller without a streaming connection: nothing can be sent.
class ClosedSseWriter final : public SseWriter {
 public:
  boost::asio::awaitable<bool> Send(std::string_view, std::string_view) override {
    co_return false;
  }
  boost::asio::awaitable<bool> KeepAlive() override { co_return false; }
};

}  // namespace

std::string_view PathParams::Get(std::string_view name) const {
  for (const auto& [key, value] : values_) {
    if (key == name) return value;
  }
  return {};
}

void PathParams::Set(std::string name, std::string value) {
  values_.emplace_back(std::move(name), std::move(value));
}

Result<std::vector<std::string>> SplitPath(std::string_view target) {
  std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (!path.starts_with('/')) {
    return MakeError(ErrorCode::kInvalidArgument, "request target must be an absolute path");
  }
  std::vector<std::string> segments;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    auto segment = PercentDecode(path.substr(0, slash));
    if (!segment) return std::unexpected(std::move(segment.error()));
    segments.push_back(std::move(*segment));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  // "/" splits into one empty segment; keep it so "/" and "" differ from "/x".
  return segments;
}

void HttpRoutes::Add(http::verb method, std::string_view pattern, RouteHandler handler) {
  AddRoute(method, pattern, std::move(handler), nullptr);
}

void HttpRoutes::AddStream(http::verb method, std::string_view pattern, StreamHandler handler) {
  AddRoute(method, pattern, nullptr, std::move(handler));
}

void HttpRoutes::AddRoute(http::verb method, std::string_view pattern, RouteHandler handler,
                          StreamHandler stream_handler) {
  assert((handler == nullptr) != (stream_handler == nullptr));
  Route route{method, {}, std::move(handler), std::move(stream_handler)};
  auto segments = SplitPath(pattern);
  // Patterns are written in code, not received: a bad one is a bug.
  assert(segments.has_value());
  route.segments = std::move(*segments);
  routes_.push_back(std::move(route));
}

std::optional<PathParams> HttpRoutes::Match(const Route& route,
                                            const std::vector<std::string>& segments) {
  if (route.segments.size() != segments.size()) return std::nullopt;
  PathParams params;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& want = route.segments[i];
    if (IsCapture(want)) {
      if (segments[i].empty()) return std::nullopt;
      params.Set(want.substr(1, want.size() - 2), segments[i]);
    } else if (want != segments[i]) {
      return std::nullopt;
    }
  }
  return params;
}

boost::asio::awaitable<std::optional<HttpResponse>> HttpRoutes::Dispatch(const HttpRequest& request,
                                                                         SseWriter& events) const {
  const std::string_view target = request.target();
  auto segments = SplitPath(target);
  if (!segments) co_return ErrorResponse(segments.error());

  std::vector<http::verb> allowed;
  for (const Route& route : routes_) {
    std::optional<PathParams> params = Match(route, *segments);
    if (!params) continue;
    if (route.method == request.method()) {
      if (route.stream_handler) co_return co_await route.stream_handler(request, *params, events);
      co_return co_await route.handler(request, *params);
    }
    if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  const std::string_view path = target.substr(0, target.find_first_of("?#"));
  if (allowed.empty()) {
    co_return ErrorResponse(404, "not_found", "no such endpoint: " + std::string(path));
  }
  std::string allow;
  for (http::verb verb : allowed) {
    if (!allow.empty()) allow += ", ";
    allow += http::to_string(verb);
  }
  HttpResponse response =
      ErrorResponse(405, "method_not_allowed",
                    std::string(request.method_string()) + " is not allowed on " +
                        std::string(path) + " (allowed: " + allow + ")");
  response.set(http::field::allow, allow);
  co_return response;
}

boost::asio::awaitable<HttpResponse> HttpRoutes::Dispatch(const HttpRequest& request) const {
  ClosedSseWriter closed;
  std::optional<HttpResponse> response = co_await Dispatch(request, closed);
  if (response) co_return std::move(*response);
  const std::string_view target = request.target();
  co_return ErrorResponse(500, "internal",
                          std::string(target.substr(0, target.find_first_of("?#"))) +
                              " streams server-sent events, which this listener cannot carry");
}

bool HttpRoutes::IsStream(const HttpRequest& request) const {
  auto segments = SplitPath(request.target());
  if (!segments) return false;
  for (const Route& route : routes_) {
    // The first route matching both method and path is the one Dispatch runs.
    if (route.method == request.method() && Match(route, *segments)) {
      return route.stream_handler != nullptr;
    }
  }
  return false;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse response;
  response.result(static_cast<unsigned>(status));
  response.set(http::field::content_type, "application/json");
  response.body() = std::move(body);
  return response;
}

HttpResponse ErrorResponse(const Error& error) {
  return JsonResponse(HttpStatusFor(error.code), ErrorBody(error));
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, ErrorBody(code, message));
}

}  // namespace cutover
