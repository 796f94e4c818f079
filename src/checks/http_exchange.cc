#include "checks/http_exchange.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <boost/optional.hpp>

namespace cutover {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Generous: a check talks to the user's own app, which may send big cookies.
constexpr uint32_t kMaxResponseHead = 64 * 1024;

std::unexpected<Error> Unavailable(std::string message) {
  return MakeError(ErrorCode::kUnavailable, std::move(message));
}

}  // namespace

HttpOutgoing OutgoingFor(const CheckRequest& request, std::string_view host,
                         std::string_view preview_token) {
  HttpOutgoing out;
  out.method = request.method;
  out.target = request.path;
  out.host = std::string(host);
  out.headers = request.headers;
  out.body = request.body;
  if (!preview_token.empty()) {
    out.headers.emplace_back("X-Cutover-Preview-Token", std::string(preview_token));
  }
  return out;
}

HostPort ReachableAddress(const HostPort& listen) {
  HostPort out = listen;
  if (out.host.empty() || out.host == "0.0.0.0") {
    out.host = "127.0.0.1";
  } else if (out.host == "::") {
    out.host = "::1";
  }
  return out;
}

asio::awaitable<Result<HttpReply>> SendHttpRequest(const HostPort& listen,
                                                   const HttpOutgoing& request) {
  const HostPort to = ReachableAddress(listen);
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);

  // Listen addresses are nearly always literal; only a name needs the resolver.
  boost::system::error_code parse_error;
  const asio::ip::address address = asio::ip::make_address(to.host, parse_error);
  if (!parse_error) {
    auto [ec] = co_await socket.async_connect(tcp::endpoint(address, to.port), kTuple);
    if (ec) co_return Unavailable("cannot connect to " + to.ToString() + ": " + ec.message());
  } else {
    tcp::resolver resolver(executor);
    auto [rec, endpoints] =
        co_await resolver.async_resolve(to.host, std::to_string(to.port), kTuple);
    if (rec) co_return Unavailable("cannot resolve " + to.host + ": " + rec.message());
    auto [ec, endpoint] = co_await asio::async_connect(socket, endpoints, kTuple);
    if (ec) co_return Unavailable("cannot connect to " + to.ToString() + ": " + ec.message());
  }

  http::request<http::string_body> req;
  req.version(11);
  req.method_string(request.method);
  req.target(request.target);
  req.set(http::field::host, request.host);
  req.set(http::field::user_agent, "cutover-check");
  for (const auto& [name, value] : request.headers) {
    if (beast::iequals(name, "host")) {
      req.set(http::field::host, value);
    } else {
      req.insert(name, value);
    }
  }
  req.set(http::field::connection, "close");
  req.body() = request.body;
  req.prepare_payload();
  auto [wec, written] = co_await http::async_write(socket, req, kTuple);
  if (wec) co_return Unavailable("cannot send the request: " + wec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kMaxResponseHead);
  // The body is cut at kMaxCheckBody below rather than refused.
  parser.body_limit(boost::none);
  if (req.method() == http::verb::head) parser.skip(true);
  auto [hec, head_bytes] = co_await http::async_read_header(socket, buffer, parser, kTuple);
  if (hec == http::error::end_of_stream || hec == asio::error::eof ||
      hec == asio::error::connection_reset) {
    co_return Unavailable("the connection closed without a response");
  }
  if (hec) co_return Unavailable("no valid HTTP response: " + hec.message());

  HttpReply reply;
  reply.status = static_cast<int>(parser.get().result_int());
  auto cookies = parser.get().equal_range(http::field::set_cookie);
  for (auto it = cookies.first; it != cookies.second; ++it) {
    reply.set_cookies.emplace_back(it->value());
  }

  std::array<char, 16 * 1024> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    auto [bec, body_bytes] = co_await http::async_read(socket, buffer, parser, kTuple);
    if (bec == http::error::need_buffer) bec = {};
    const size_t got = chunk.size() - parser.get().body().size;
    const size_t room = kMaxCheckBody - reply.body.size();
    reply.body.append(chunk.data(), std::min(got, room));
    if (got > room) {
      reply.truncated = true;
      break;
    }
    if (bec) co_return Unavailable("the response body was cut short: " + bec.message());
  }
  co_return reply;
}

}  // namespace cutover
