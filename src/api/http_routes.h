// HttpRoutes: the HTTP routes of an API listener, (method, path pattern) ->
// handler coroutine. Built once before the listener starts and then only read;
// handlers run on the io_context of the listener that serves them (the
// control thread for the daemon). A new endpoint is one more Add() call, or
// AddStream() for one that answers with server-sent events.
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

// Writes server-sent events (text/event-stream) on a streaming response. The
// server owns it; it lives until the stream handler's coroutine finishes and
// is used by that one coroutine, one call at a time, on the listener's
// io_context.
class SseWriter {
 public:
  // Sends one event: "event: NAME\ndata: LINE\n...\n\n", `data` split into one
  // data line per line (at "\n", "\r\n" or "\r"; the client joins them with
  // "\n"). `event` is a name without line breaks. Returns false once the
  // client is gone or the server is stopping (a write failed or timed out, or
  // the socket was closed); the handler should then return. Every later call
  // returns false at once.
  virtual boost::asio::awaitable<bool> Send(std::string_view event, std::string_view data) = 0;
  // Sends a comment line (": keep-alive\n\n"), which clients skip. A client
  // that disconnects is noticed only when a write fails, so a handler that
  // waits for its next event should call this periodically (every 15 s, say):
  // it keeps proxies and the client's idle timeout from closing the stream,
  // and it ends the handler of a client that went away. Returns as Send().
  virtual boost::asio::awaitable<bool> KeepAlive() = 0;
  virtual ~SseWriter() = default;
};

// Handles one request to a streaming route. Before its first Send() or
// KeepAlive() a handler may return a normal response instead of streaming
// (e.g. a JSON 404 for an unknown service); the server sends it as Add()
// routes' responses are sent. Otherwise it streams and returns std::nullopt
// when done, and the server closes the connection (a response that is ended
// by closing has no length). The server writes the response head (200,
// Content-Type: text/event-stream, Cache-Control: no-store, Connection:
// close, no Content-Length) just before the first event or keep-alive, so a
// handler decides on errors before anything is on the wire; a response
// returned after streaming began is dropped.
//
// Each write is bounded by the server's write timeout; the stream as a whole
// is not. When the server stops, the socket is closed, the handler's pending
// asynchronous wait (a timer, a socket or a channel operation it awaits) is
// cancelled with terminal cancellation and completes with
// operation_aborted (never as an exception), and Send() returns false. The
// request, params and writer live until the returned coroutine finishes.
using StreamHandler = std::function<boost::asio::awaitable<std::optional<HttpResponse>>(
    const HttpRequest&, const PathParams&, SseWriter&)>;

class HttpRoutes {
 public:
  // Adds a route. `pattern` is an absolute path whose segments are literals or
  // captures: "/v1/services/{name}/switch". A capture matches exactly one
  // non-empty segment. Routes are tried in the order added.
  void Add(boost::beast::http::verb method, std::string_view pattern, RouteHandler handler);

  // Adds a route that answers with server-sent events (see StreamHandler).
  // Patterns and order work as for Add(); both kinds share one table.
  void AddStream(boost::beast::http::verb method, std::string_view pattern, StreamHandler handler);

  // Answers a request: the matching route's handler, or a JSON 404
  // {"code":"not_found"} when no pattern matches the path, or a JSON 405
  // {"code":"method_not_allowed"} with an Allow header when patterns match but
  // not for this method. The query string is ignored for matching.
  //
  // A streaming route is run with `events` and its result returned: a
  // response, or std::nullopt when it streamed. Every other answer is a
  // response.
  boost::asio::awaitable<std::optional<HttpResponse>> Dispatch(const HttpRequest& request,
                                                               SseWriter& events) const;

  // As above, for a caller that cannot stream: a streaming route runs with a
  // writer whose Send() fails at once, so it can still answer with its own
  // error response; if it streams anyway the answer is a JSON 500.
  boost::asio::awaitable<HttpResponse> Dispatch(const HttpRequest& request) const;

  // True when `request` would be answered by an AddStream() route.
  bool IsStream(const HttpRequest& request) const;

 private:
  struct Route {
    boost::beast::http::verb method;
    std::vector<std::string> segments;  // "{name}" for a capture
    RouteHandler handler;               // exactly one of handler and stream_handler is set
    StreamHandler stream_handler;
  };

  static std::optional<PathParams> Match(const Route& route,
                                         const std::vector<std::string>& segments);
  void AddRoute(boost::beast::http::verb method, std::string_view pattern, RouteHandler handler,
                StreamHandler stream_handler);

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
