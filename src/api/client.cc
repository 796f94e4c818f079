#include "api/client.h"

#include <sys/un.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/http/write.hpp>
#include <optional>
#include <system_error>
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

Result<http::request<http::string_body>> MakeRequest(const std::string& socket_path,
                                                     const std::string& actor,
                                                     std::string_view method, std::string_view path,
                                                     std::string_view json_body,
                                                     std::string_view accept) {
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) {
    return MakeError(ErrorCode::kInvalidArgument, "unknown HTTP method " + std::string(method));
  }
  if (socket_path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "the control socket path is empty");
  }
  if (socket_path.size() > kMaxUnixPath) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "control socket path is too long (" + std::to_string(socket_path.size()) +
                         " bytes, at most " + std::to_string(kMaxUnixPath) + "): " + socket_path);
  }

  http::request<http::string_body> request{verb, std::string(path), 11};
  request.set(http::field::host, "cutover");
  request.set(http::field::user_agent, "cutover-cli");
  request.set(http::field::accept, accept);
  if (!actor.empty()) request.set("X-Cutover-Actor", actor);
  if (!json_body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::string(json_body);
  }
  request.keep_alive(false);
  request.prepare_payload();
  return request;
}

using StepResult = std::optional<std::pair<boost::system::error_code, size_t>>;

// Runs one asynchronous step on the private loop for at most `limit`.
// `start` begins an operation whose handler stores its outcome in the
// StepResult it is given. On timeout the socket is closed, the operation
// unwound (its buffers must not go away while it is pending) and nullopt
// returned.
template <typename Start>
StepResult RunStep(asio::io_context& ioc, Socket& socket, Millis limit, Start start) {
  StepResult result;
  start(result);
  ioc.restart();
  ioc.run_for(limit);
  if (result) return result;
  boost::system::error_code ignored;
  socket.close(ignored);
  ioc.restart();
  ioc.run();
  return std::nullopt;
}

// "text/event-stream; charset=utf-8" -> true.
bool IsEventStream(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  return boost::beast::iequals(media, "text/event-stream");
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
  auto request = MakeRequest(socket_path_, actor_, method, path, json_body, "application/json");
  if (!request) return std::unexpected(std::move(request.error()));

  // A private loop gives the blocking call a deadline: run it for at most the
  // timeout, then close the socket and let the exchange unwind.
  asio::io_context ioc;
  Socket socket(ioc);
  std::optional<Result<ApiResponse>> outcome;
  asio::co_spawn(ioc, Exchange(socket, socket_path_, std::move(*request), outcome), asio::detached);
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

Result<ApiResponse> ApiClient::Stream(std::string_view method, std::string_view path,
                                      std::string_view json_body,
                                      const std::function<bool(const SseEvent&)>& on_event,
                                      Millis idle_timeout) {
  auto request = MakeRequest(socket_path_, actor_, method, path, json_body, "text/event-stream");
  if (!request) return std::unexpected(std::move(request.error()));

  // Step by step on a private loop, so that each wait has its own deadline
  // and `on_event` runs here, between steps, rather than inside the loop.
  asio::io_context ioc;
  Socket socket(ioc);
  const auto no_answer = [&](Millis limit) {
    return MakeError(ErrorCode::kTimeout, "no answer from the cutover daemon at " + socket_path_ +
                                              " within " + FormatDuration(limit));
  };
  const auto lost = [&](const boost::system::error_code& ec) {
    return MakeError(ErrorCode::kUnavailable, "lost the connection to the cutover daemon at " +
                                                  socket_path_ + ": " + ec.message());
  };

  StepResult step = RunStep(ioc, socket, timeout_, [&](StepResult& result) {
    socket.async_connect(asio::local::stream_protocol::endpoint(socket_path_),
                         [&result](boost::system::error_code ec) { result.emplace(ec, 0); });
  });
  if (!step) return no_answer(timeout_);
  if (step->first) {
    return MakeError(ErrorCode::kUnavailable, "cannot reach the cutover daemon at " + socket_path_ +
                                                  ": " + step->first.message());
  }
  step = RunStep(ioc, socket, timeout_, [&](StepResult& result) {
    http::async_write(socket, *request,
                      [&result](boost::system::error_code ec, size_t n) { result.emplace(ec, n); });
  });
  if (!step) return no_answer(timeout_);
  if (step->first) return lost(step->first);

  boost::beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // An event stream has no length and may run for days; a plain answer is
  // bounded below, as it is read.
  parser.body_limit(boost::none);
  // The head of a stream comes with its first event or keep-alive, so its
  // wait is bounded like theirs.
  step = RunStep(ioc, socket, idle_timeout, [&](StepResult& result) {
    http::async_read_header(
        socket, buffer, parser,
        [&result](boost::system::error_code ec, size_t n) { result.emplace(ec, n); });
  });
  if (!step) return no_answer(idle_timeout);
  if (step->first) return lost(step->first);

  const int status = static_cast<int>(parser.get().result_int());
  const auto content_type = parser.get()[http::field::content_type];
  const bool streaming = status >= 200 && status < 300 &&
                         IsEventStream(std::string_view(content_type.data(), content_type.size()));
  ApiResponse response{status, {}};
  SseParser events;
  char chunk[16 * 1024];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    step = RunStep(ioc, socket, idle_timeout, [&](StepResult& result) {
      http::async_read_some(
          socket, buffer, parser,
          [&result](boost::system::error_code ec, size_t n) { result.emplace(ec, n); });
    });
    if (!step) {
      return MakeError(ErrorCode::kTimeout, std::string(streaming ? "no event" : "no answer") +
                                                " from the cutover daemon at " + socket_path_ +
                                                " within " + FormatDuration(idle_timeout));
    }
    const std::string_view got(chunk, sizeof(chunk) - parser.get().body().size);
    if (streaming) {
      Result<bool> more = events.Feed(got, on_event);
      if (!more) return std::unexpected(more.error().Wrap("event stream from " + socket_path_));
      if (!*more) break;  // the caller has seen enough; closing ends the daemon's stream
    } else {
      if (response.body.size() + got.size() > kMaxResponseBody) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "the answer from the cutover daemon at " + socket_path_ + " is too large");
      }
      response.body.append(got);
    }
    // need_buffer only says that `chunk` is full.
    if (step->first && step->first != http::error::need_buffer) return lost(step->first);
  }
  boost::system::error_code ignored;
  socket.close(ignored);
  return response;
}

Result<bool> SseParser::Feed(std::string_view bytes,
                             const std::function<bool(const SseEvent&)>& on_event) {
  const auto too_large = [] {
    return MakeError(ErrorCode::kInvalidArgument,
                     "an event is larger than " + std::to_string(kMaxEventBytes) + " bytes");
  };
  while (!bytes.empty()) {
    if (std::exchange(after_cr_, false) && bytes.front() == '\n') {
      bytes.remove_prefix(1);  // the "\n" of "\r\n": its line already ended
      continue;
    }
    const size_t end = bytes.find_first_of("\r\n");
    const std::string_view text = bytes.substr(0, end);
    if (line_.size() + data_.size() + text.size() > kMaxEventBytes) return too_large();
    line_.append(text);
    if (end == std::string_view::npos) break;
    after_cr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    if (!EndLine(on_event)) return false;
    // Empty "data:" lines grow an event too.
    if (data_.size() > kMaxEventBytes) return too_large();
  }
  return true;
}

bool SseParser::EndLine(const std::function<bool(const SseEvent&)>& on_event) {
  std::string line = std::exchange(line_, {});
  if (std::exchange(first_line_, false) && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  if (line.empty()) {
    std::string event = std::exchange(event_, {});
    std::string data = std::exchange(data_, {});
    if (data.empty()) return true;  // an event without data is not dispatched
    data.pop_back();                // the "\n" after the last data line
    return on_event(SseEvent{event.empty() ? "message" : std::move(event), std::move(data)});
  }
  if (line.front() == ':') return true;  // a comment
  const size_t colon = line.find(':');
  std::string_view field(line);
  std::string_view value;
  if (colon != std::string::npos) {
    field = field.substr(0, colon);
    value = std::string_view(line).substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
  }
  if (field == "event") {
    event_ = value;
  } else if (field == "data") {
    data_ += value;
    data_ += '\n';
  }
  return true;
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
