#include "api/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
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
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <utility>

#include "api/json.h"

namespace cutover {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;
// Metrics of many services can be large; anything beyond this is not ours.
constexpr uint64_t kMaxResponseBody = 64 * 1024 * 1024;

error_code SystemError(int err) { return error_code(err, boost::system::system_category()); }

// A connection to the daemon's unix socket whose every wait is a poll(2)
// bounded by a deadline. The CLI needs no event loop for one request at a
// time, and so none of the daemon's io_uring, which the seccomp profiles of
// container runtimes often refuse. Meets Beast's SyncReadStream and
// SyncWriteStream; a wait past the deadline fails with error::timed_out.
class DaemonStream {
 public:
  DaemonStream() = default;
  ~DaemonStream() { Close(); }
  DaemonStream(const DaemonStream&) = delete;
  DaemonStream& operator=(const DaemonStream&) = delete;

  void SetDeadline(Millis limit) { deadline_ = std::chrono::steady_clock::now() + limit; }

  error_code Connect(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return SystemError(errno);
    // A daemon whose accept queue is full makes connect() wait; the send
    // timeout bounds that wait.
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(
        std::max(deadline_ - std::chrono::steady_clock::now(),
                 std::chrono::steady_clock::duration(std::chrono::milliseconds(1))));
    timeval tv{static_cast<time_t>(left.count() / 1'000'000),
               static_cast<suseconds_t>(left.count() % 1'000'000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      const int err = errno;
      return err == EAGAIN || err == EINPROGRESS ? asio::error::timed_out : SystemError(err);
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
    return {};
  }

  void Close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, error_code& ec) {
    return Transfer(buffers, POLLIN, ec, [](int fd, msghdr* msg) { return ::recvmsg(fd, msg, 0); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, error_code& ec) {
    return Transfer(buffers, POLLOUT, ec,
                    [](int fd, msghdr* msg) { return ::sendmsg(fd, msg, MSG_NOSIGNAL); });
  }
  template <typename Buffers>
  size_t read_some(const Buffers& buffers) {
    return OrThrow([&](error_code& ec) { return read_some(buffers, ec); });
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers) {
    return OrThrow([&](error_code& ec) { return write_some(buffers, ec); });
  }

 private:
  template <typename Step>
  static size_t OrThrow(Step step) {
    error_code ec;
    const size_t n = step(ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  // One recvmsg or sendmsg over the first buffers of the sequence, after
  // waiting for `events` until the deadline. End of file is error::eof.
  template <typename Buffers, typename Io>
  size_t Transfer(const Buffers& buffers, short events, error_code& ec, Io io) {
    std::array<iovec, 16> iov{};
    size_t count = 0;
    size_t total = 0;
    for (auto it = asio::buffer_sequence_begin(buffers);
         it != asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
      const asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count++] = {const_cast<void*>(b.data()), b.size()};
      total += b.size();
    }
    ec = {};
    if (total == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    for (;;) {
      const ssize_t n = io(fd_, &msg);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        ec = SystemError(errno);
        return 0;
      }
      if (ec = Wait(events); ec) return 0;
    }
  }

  error_code Wait(short events) {
    for (;;) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(
          deadline_ - std::chrono::steady_clock::now());
      if (left.count() <= 0) return asio::error::timed_out;
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT32_MAX)));
      if (r > 0) return {};  // ready, or an error or hang-up the next call reports
      if (r < 0 && errno != EINTR) return SystemError(errno);
    }
  }

  int fd_ = -1;
  std::chrono::steady_clock::time_point deadline_{};
};

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

std::unexpected<Error> NoAnswer(const std::string& socket_path, Millis limit) {
  return MakeError(ErrorCode::kTimeout, "no answer from the cutover daemon at " + socket_path +
                                            " within " + FormatDuration(limit));
}

// A failed connect: no such socket, refused, not permitted, or no room in
// the daemon's accept queue before the deadline.
std::unexpected<Error> Unreachable(const std::string& socket_path, const error_code& ec,
                                   Millis limit) {
  if (ec == asio::error::timed_out) return NoAnswer(socket_path, limit);
  return MakeError(ErrorCode::kUnavailable,
                   "cannot reach the cutover daemon at " + socket_path + ": " + ec.message());
}

// A failed read or write on an open connection.
std::unexpected<Error> Broken(const std::string& socket_path, const error_code& ec, Millis limit) {
  if (ec == asio::error::timed_out) return NoAnswer(socket_path, limit);
  return MakeError(ErrorCode::kUnavailable, "lost the connection to the cutover daemon at " +
                                                socket_path + ": " + ec.message());
}

// Connects `stream` to the daemon and sends `request`, both within `limit`;
// the deadline stays set for what follows.
Status Send(DaemonStream& stream, const std::string& socket_path,
            const http::request<http::string_body>& request, Millis limit) {
  stream.SetDeadline(limit);
  if (error_code ec = stream.Connect(socket_path)) return Unreachable(socket_path, ec, limit);
  error_code ec;
  http::write(stream, request, ec);
  if (ec) return Broken(socket_path, ec, limit);
  return {};
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, Millis timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<ApiResponse> ApiClient::Call(std::string_view method, std::string_view path,
                                    std::string_view json_body) {
  auto request = MakeRequest(socket_path_, actor_, method, path, json_body, "application/json");
  if (!request) return std::unexpected(std::move(request.error()));

  // One deadline bounds the whole exchange.
  DaemonStream stream;
  if (Status sent = Send(stream, socket_path_, *request, timeout_); !sent) {
    return std::unexpected(std::move(sent.error()));
  }
  error_code ec;
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  http::read(stream, buffer, parser, ec);
  if (ec) return Broken(socket_path_, ec, timeout_);
  http::response<http::string_body> response = parser.release();
  return ApiResponse{static_cast<int>(response.result_int()), std::move(response.body())};
}

Result<ApiResponse> ApiClient::Stream(std::string_view method, std::string_view path,
                                      std::string_view json_body,
                                      const std::function<bool(const SseEvent&)>& on_event,
                                      Millis idle_timeout) {
  auto request = MakeRequest(socket_path_, actor_, method, path, json_body, "text/event-stream");
  if (!request) return std::unexpected(std::move(request.error()));

  // Connecting and sending share the client's timeout; then each wait for
  // data has a deadline of its own, and `on_event` runs here between them.
  DaemonStream stream;
  if (Status sent = Send(stream, socket_path_, *request, timeout_); !sent) {
    return std::unexpected(std::move(sent.error()));
  }
  error_code ec;
  boost::beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  // An event stream has no length and may run for days; a plain answer is
  // bounded below, as it is read.
  parser.body_limit(boost::none);
  // The head of a stream comes with its first event or keep-alive, so its
  // wait is bounded like theirs.
  stream.SetDeadline(idle_timeout);
  http::read_header(stream, buffer, parser, ec);
  if (ec) return Broken(socket_path_, ec, idle_timeout);

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
    stream.SetDeadline(idle_timeout);
    http::read_some(stream, buffer, parser, ec);
    if (ec == asio::error::timed_out) {
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
    if (ec && ec != http::error::need_buffer) return Broken(socket_path_, ec, idle_timeout);
  }
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
