#include "api/client.h"

#include <sys/un.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <optional>
#include <utility>

#include "api/json.h"

namespace cutover {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using Socket = asio::local::stream_protocol::socket;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;
// Metrics of many services can be large; anything beyond this is not ours.
constexpr uint64_t kMaxResponseBody = 64 * 1024 * 1024;

asio::awaitable<void> Exchange(Socket& socket, const std::string& path,
                               http::request<http::string_body> request,
                               std::optional<Result<ApiResponse>>& outcome) {
  auto [connect_ec] =
      co_await socket.async_connect(asio::local::stream_protocol::endpoint(path), kAwait);
  if (connect_ec) {
    outcome = MakeError(ErrorCode::kUnavailable,
                        "cannot reach the cutover daemon at " + path + ": " + connect_ec.message());
    co_return;
  }
  auto [write_ec, written] = co_await http::async_write(socket, request, kAwait);
  if (write_ec) {
    outcome = MakeError(ErrorCode::kUnavailable, "lost the connection to the cutover daemon at " +
                                                     path + ": " + write_ec.message());
    co_return;
  }
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  auto [read_ec, read] = co_await http::async_read(socket, buffer, parser, kAwait);
  if (read_ec) {
    outcome = MakeError(ErrorCode::kUnavailable, "lost the connection to the cutover daemon at " +
                                                     path + ": " + read_ec.message());
    co_return;
  }
  http::response<http::string_body> response = parser.release();
  outcome = ApiResponse{static_cast<int>(response.result_int()), std::move(response.body())};
}

ErrorCode CodeForStatus(int status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kConflict;
    case 503:
      return ErrorCode::kUnavailable;
    case 504:
      return ErrorCode::kTimeout;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, Millis timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<ApiResponse> ApiClient::Call(std::string_view method, std::string_view path,
                                    std::string_view json_body) {
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return MakeError(ErrorCode::kInvalidArgument, "unknown HTTP method " + std::string(method));
  }
  if (socket_path_.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "the control socket path is empty");
  }
  if (socket_path_.size() > kMaxUnixPath) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "control socket path is too long (" + std::to_string(socket_path_.size()) +
                         " bytes, at most " + std::to_string(kMaxUnixPath) + "): " + socket_path_);
  }

  http::request<http::string_body> request{verb, std::string(path), 11};
  request.set(http::field::host, "cutover");
  request.set(http::field::user_agent, "cutover-cli");
  request.set(http::field::accept, "application/json");
  if (!actor_.empty()) request.set("X-Cutover-Actor", actor_);
  if (!json_body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::string(json_body);
  }
  request.keep_alive(false);
  request.prepare_payload();

  // A private loop gives the blocking call a deadline: run it for at most the
  // timeout, then close the socket and let the exchange unwind.
  asio::io_context ioc;
  Socket socket(ioc);
  std::optional<Result<ApiResponse>> outcome;
  asio::co_spawn(ioc, Exchange(socket, socket_path_, std::move(request), outcome), asio::detached);
  ioc.run_for(timeout_);
  if (!outcome) {
    boost::system::error_code ec;
    socket.close(ec);
    ioc.restart();
    ioc.run();
    return MakeError(ErrorCode::kTimeout, "no answer from the cutover daemon at " + socket_path_ +
                                              " within " + FormatDuration(timeout_));
  }
  return std::move(*outcome);
}

std::string EncodePathSegment(std::string_view segment) {
  constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

Error ErrorFromResponse(const ApiResponse& response) {
  auto json = ParseJson(response.body);
  if (json && json->is_object()) {
    auto code = json->find("code");
    auto message = json->find("message");
    if (code != json->end() && code->is_string() && message != json->end() &&
        message->is_string()) {
      return Error{ErrorCodeFromName(code->get_ref<const std::string&>()),
                   message->get<std::string>()};
    }
  }
  // Not one of our error bodies: quote the status and the start of the body.
  std::string message = "the daemon answered HTTP " + std::to_string(response.status);
  std::string_view body = response.body;
  body = body.substr(0, std::min(body.find('\n'), size_t{200}));
  if (!body.empty()) message += ": " + std::string(body);
  return Error{CodeForStatus(response.status), std::move(message)};
}

}  // namespace cutover
