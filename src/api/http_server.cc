#include "api/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

#include "common/log.h"

namespace cutover {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

struct HttpServer::Shared {
  Shared(HttpRoutes r, HttpServerOptions o) : routes(std::move(r)), options(std::move(o)) {}

  const HttpRoutes routes;
  const HttpServerOptions options;
  bool stopped = false;
  std::function<void()> close_acceptor;
  uint64_t next_connection_id = 0;
  std::map<uint64_t, std::function<void()>> connections;  // id -> closes that connection
};

namespace {

using Shared = HttpServer::Shared;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// How long, and how much, a connection that is being closed after an error
// reply is still read from, so the client gets to read the reply instead of a
// reset.
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kLingerBytes = 8 * 1024 * 1024;
constexpr size_t kMaxUnixPath = sizeof(sockaddr_un{}.sun_path) - 1;

std::string ErrnoMessage(int err) { return std::generic_category().message(err); }

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// umask is process-wide; it is changed only for the instant a socket file or
// folder is created, on the control thread, during startup.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t old_;
};

// Listening sockets and connections must not leak into the processes the
// daemon starts: a child holding the control socket would keep it "live".
void SetCloseOnExec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

enum class SocketState { kLive, kStale };

// Connects without blocking: a listener with a full backlog answers EAGAIN
// rather than making a blocking connect wait for it.
Result<SocketState> ProbeUnixSocket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return MakeError(ErrorCode::kIo, "cannot check " + path + ": " + ErrnoMessage(errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return SocketState::kLive;
  }
  const int err = errno;
  if (err == EAGAIN || err == EINPROGRESS) return SocketState::kLive;
  if (err == ECONNREFUSED || err == ENOENT) return SocketState::kStale;
  return MakeError(ErrorCode::kIo, "cannot check " + path + ": " + ErrnoMessage(err));
}

// "1 MiB" rather than "1048576 bytes" where it divides evenly.
std::string ByteSize(uint64_t bytes) {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0) {
    return std::to_string(bytes / (1024 * 1024)) + " MiB";
  }
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " bytes";
}

bool IsHttpError(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_version).category();
}

void Finish(HttpResponse& response, unsigned version, bool keep_alive) {
  response.version(version);
  response.keep_alive(keep_alive);
  response.set(http::field::server, "cutover");
  response.prepare_payload();
}

// Sends `response` and closes the connection gracefully: half-close, then read
// and drop what the client still sends for a moment, so its own write of a
// rejected body does not turn our reply into a connection reset.
template <typename Stream>
asio::awaitable<void> ReplyAndClose(Stream& stream, HttpResponse response,
                                    const HttpServerOptions& options) {
  Finish(response, 11, false);
  stream.expires_after(options.write_timeout);
  auto [write_ec, written] = co_await http::async_write(stream, response, kAwait);
  if (write_ec) co_return;
  error_code ec;
  stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
  stream.expires_after(kLingerTime);
  char sink[16 * 1024];
  size_t drained = 0;
  while (drained < kLingerBytes) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), kAwait);
    if (read_ec) break;
    drained += n;
  }
}

// What to do about a failed request read: nothing for a vanished or idle
// client, an error reply for a broken or oversized request.
template <typename Stream>
asio::awaitable<void> HandleReadError(Stream& stream, const error_code& ec,
                                      const HttpServerOptions& options) {
  if (!IsHttpError(ec) || ec == http::error::end_of_stream || ec == http::error::partial_message) {
    co_return;  // closed, reset, timed out or stopped
  }
  if (ec == http::error::body_limit) {
    co_await ReplyAndClose(
        stream,
        ErrorResponse(413, "payload_too_large",
                      "request body is larger than " + ByteSize(options.body_limit)),
        options);
  } else if (ec == http::error::header_limit) {
    co_await ReplyAndClose(
        stream,
        ErrorResponse(431, "header_too_large",
                      "request head is larger than " + ByteSize(options.header_limit)),
        options);
  } else {
    co_await ReplyAndClose(
        stream, ErrorResponse(400, "invalid_argument", "malformed HTTP request: " + ec.message()),
        options);
  }
}

// "event: NAME\ndata: LINE\n...\n\n". The wire format has no escaping: a line
// break in `data` starts another data line (the client joins them with "\n"),
// and one in `event` would end the field, so it is dropped.
std::string FormatSseEvent(std::string_view event, std::string_view data) {
  std::string out = "event: ";
  for (char c : event) {
    if (c != '\n' && c != '\r') out += c;
  }
  out += "\ndata: ";
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      out += "\ndata: ";
    } else {
      out += c;
    }
  }
  out += "\n\n";
  return out;
}

// The SseWriter of one connection. The response head goes out with the first
// write, so that a handler can still answer with an error until then.
template <typename Stream>
class ConnectionSseWriter final : public SseWriter {
 public:
  ConnectionSseWriter(Stream& stream, const Shared& shared, unsigned version)
      : stream_(stream), shared_(shared), version_(version) {}

  asio::awaitable<bool> Send(std::string_view event, std::string_view data) override {
    co_return co_await Write(FormatSseEvent(event, data));
  }

  asio::awaitable<bool> KeepAlive() override { co_return co_await Write(": keep-alive\n\n"); }

  // Ends a stream whose handler returned without sending anything: an empty
  // stream is still a complete answer.
  asio::awaitable<void> Finish() {
    if (!started_) co_await Write({});
  }

  bool started() const { return started_; }

 private:
  asio::awaitable<bool> Write(std::string text) {
    if (gone_ || shared_.stopped) {
      gone_ = true;
      co_return false;
    }
    if (!started_) {
      started_ = true;
      text.insert(0, Head());
    }
    // Per write only: between events the stream may rightly sit idle for long.
    stream_.expires_after(shared_.options.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(text), kAwait);
    stream_.expires_never();
    if (ec) gone_ = true;
    co_return !ec;
  }

  std::string Head() const {
    // Written by hand: Beast's serializer insists on a length or chunking,
    // and this body is ended by closing the connection.
    return "HTTP/" + std::to_string(version_ / 10) + "." + std::to_string(version_ % 10) +
           " 200 OK\r\n"
           "Server: cutover\r\n"
           "Content-Type: text/event-stream\r\n"
           "Cache-Control: no-store\r\n"
           "Connection: close\r\n"
           "\r\n";
  }

  Stream& stream_;
  const Shared& shared_;
  const unsigned version_;
  bool started_ = false;
  bool gone_ = false;
};

// Completes when the server stops: Stop() sets `stopped` and then cancels
// `stop_timer`. Checked first, for a stop that came before the wait began.
asio::awaitable<void> WaitForStop(const Shared& shared, asio::steady_timer& stop_timer) {
  if (shared.stopped) co_return;
  co_await stop_timer.async_wait(kAwait);
}

// Runs a stream route's handler on its own (child) coroutine, so that a stop
// can cancel whatever it awaits.
asio::awaitable<std::optional<HttpResponse>> RunStreamHandler(const HttpRoutes& routes,
                                                              const HttpRequest& request,
                                                              SseWriter& events) {
  // After a stop the handler may still await Send(); that must come back as
  // false, not as Asio's operation_aborted exception.
  co_await asio::this_coro::throw_if_cancelled(false);
  co_return co_await routes.Dispatch(request, events);
}

template <typename Protocol>
asio::awaitable<void> ServeConnection(std::shared_ptr<Shared> shared,
                                      typename Protocol::socket socket) {
  using Stream = beast::basic_stream<Protocol>;
  if (shared->stopped) co_return;
  Stream stream(std::move(socket));
  asio::steady_timer stop_timer(stream.get_executor(), asio::steady_timer::time_point::max());
  const uint64_t id = shared->next_connection_id++;
  shared->connections.emplace(id, [&stream, &stop_timer] {
    stop_timer.cancel();
    stream.close();
  });
  struct Unregister {
    Shared& shared;
    uint64_t id;
    ~Unregister() { shared.connections.erase(id); }
  } unregister{*shared, id};

  const HttpServerOptions& options = shared->options;
  beast::flat_buffer buffer;
  while (!shared->stopped) {
    if (buffer.size() == 0) {
      // Between requests the client may take its time; once it starts one,
      // the head must arrive within the header timeout.
      stream.expires_after(options.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), kAwait);
      if (ec) co_return;
      buffer.commit(n);
    }

    http::request_parser<http::string_body> parser;
    parser.header_limit(options.header_limit);
    parser.body_limit(options.body_limit);
    stream.expires_after(options.header_timeout);
    if (auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, kAwait); ec) {
      co_await HandleReadError(stream, ec, options);
      co_return;
    }
    // Checked on the head alone, so that an unauthorised client never gets
    // a body read on its behalf.
    if (options.authorize) {
      if (std::optional<HttpResponse> denied = options.authorize(parser.get())) {
        co_await ReplyAndClose(stream, std::move(*denied), options);
        co_return;
      }
    }
    if (!parser.is_done()) {
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
        stream.expires_after(options.write_timeout);
        if (auto [ec, n] = co_await http::async_write(stream, go_on, kAwait); ec) co_return;
      }
      stream.expires_after(options.body_timeout);
      if (auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAwait); ec) {
        co_await HandleReadError(stream, ec, options);
        co_return;
      }
    }

    HttpRequest request = parser.release();
    // A handler may wait long (a switch waits for every router worker); the
    // client's own timeout governs that wait.
    stream.expires_never();
    HttpResponse response;
    if (shared->routes.IsStream(request)) {
      if (shared->stopped) co_return;
      ConnectionSseWriter<Stream> events(stream, *shared, request.version());
      using namespace asio::experimental::awaitable_operators;
      // Unlike a plain handler, a stream has no natural end: a stop ends it.
      auto outcome = co_await (RunStreamHandler(shared->routes, request, events) ||
                               WaitForStop(*shared, stop_timer));
      std::optional<HttpResponse>* answer = std::get_if<0>(&outcome);
      if (events.started() || answer == nullptr || !answer->has_value()) {
        co_await events.Finish();
        error_code ec;
        stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
        co_return;
      }
      response = std::move(**answer);
    } else {
      response = co_await shared->routes.Dispatch(request);
    }
    const bool keep_alive = request.keep_alive() && !shared->stopped;
    Finish(response, request.version(), keep_alive);
    stream.expires_after(options.write_timeout);
    if (auto [ec, n] = co_await http::async_write(stream, response, kAwait); ec) co_return;
    if (!keep_alive) {
      error_code ec;
      stream.socket().shutdown(asio::socket_base::shutdown_send, ec);
      co_return;
    }
  }
}

template <typename Protocol>
asio::awaitable<void> AcceptLoop(std::shared_ptr<Shared> shared,
                                 std::shared_ptr<typename Protocol::acceptor> acceptor) {
  while (!shared->stopped) {
    auto [ec, socket] = co_await acceptor->async_accept(kAwait);
    if (shared->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or memory: pause instead of spinning on accept.
      LogWarn("api: accept failed: {}; retrying in 100ms", ec.message());
      asio::steady_timer pause(acceptor->get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(kAwait);
      continue;
    }
    if (shared->connections.size() >= shared->options.max_connections) {
      // Refusing one client is better than running the daemon out of
      // descriptors it needs for proxying.
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    SetCloseOnExec(socket.native_handle());
    asio::co_spawn(acceptor->get_executor(), ServeConnection<Protocol>(shared, std::move(socket)),
                   asio::detached);
  }
}

template <typename Protocol>
void StartAccepting(const std::shared_ptr<Shared>& shared, typename Protocol::acceptor acceptor) {
  auto owned = std::make_shared<typename Protocol::acceptor>(std::move(acceptor));
  // Weak: the accept loop owns the acceptor, so it is released with the loop
  // even when the io_context goes away before this server.
  shared->close_acceptor = [weak = std::weak_ptr(owned)] {
    if (auto acceptor = weak.lock()) {
      error_code ec;
      acceptor->close(ec);
    }
  };
  asio::co_spawn(owned->get_executor(), AcceptLoop<Protocol>(shared, owned), asio::detached);
}

bool ConstantTimeEquals(std::string_view given, std::string_view secret) {
  // Time depends only on the secret's length, never on where a mismatch is.
  unsigned char diff = given.size() == secret.size() ? 0 : 1;
  for (size_t i = 0; i < secret.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= g ^ static_cast<unsigned char>(secret[i]);
  }
  return diff == 0;
}

}  // namespace

Result<asio::local::stream_protocol::acceptor> ListenUnixSocket(asio::io_context& ctx,
                                                                const std::string& path) {
  if (path.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "control socket path is empty");
  }
  if (path.size() > kMaxUnixPath) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "control socket path is too long (" + std::to_string(path.size()) +
                         " bytes, at most " + std::to_string(kMaxUnixPath) + "): " + path);
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    ScopedUmask umask(077);
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo, "cannot create " + parent.string() + ": " + ec.message());
    }
  }

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return MakeError(ErrorCode::kConflict,
                       path + " exists and is not a socket; not replacing it");
    }
    auto state = ProbeUnixSocket(path);
    if (!state) return std::unexpected(std::move(state.error()));
    if (*state == SocketState::kLive) {
      return MakeError(ErrorCode::kConflict, "another cutover daemon is listening on " + path);
    }
    // A socket nobody listens on is what a crashed daemon leaves behind.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return MakeError(ErrorCode::kIo,
                       "cannot remove stale socket " + path + ": " + ErrnoMessage(errno));
    }
  } else if (errno != ENOENT) {
    return MakeError(ErrorCode::kIo, "cannot check " + path + ": " + ErrnoMessage(errno));
  }

  asio::local::stream_protocol::acceptor acceptor(ctx);
  error_code ec;
  acceptor.open(asio::local::stream_protocol(), ec);
  if (ec) return MakeError(ErrorCode::kIo, "cannot listen on " + path + ": " + ec.message());
  SetCloseOnExec(acceptor.native_handle());
  {
    ScopedUmask umask(077);
    acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  }
  if (ec) {
    return MakeError(ec == asio::error::address_in_use ? ErrorCode::kConflict : ErrorCode::kIo,
                     "cannot listen on " + path + ": " + ec.message());
  }
  // The umask already gave 0600; chmod makes it so whatever the file system.
  if (::chmod(path.c_str(), 0600) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return MakeError(ErrorCode::kIo, "cannot set the mode of " + path + ": " + ErrnoMessage(err));
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    return MakeError(ErrorCode::kIo, "cannot listen on " + path + ": " + ec.message());
  }
  return acceptor;
}

Result<asio::ip::tcp::acceptor> ListenTcp(asio::io_context& ctx, const HostPort& address) {
  std::string host = address.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  asio::ip::tcp::resolver resolver(ctx);
  error_code ec;
  auto results = resolver.resolve(
      host, std::to_string(address.port),
      asio::ip::resolver_base::passive | asio::ip::resolver_base::numeric_service, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cannot resolve " + address.ToString() + ": " + ec.message());
  }
  error_code last = asio::error::host_not_found;
  for (const auto& entry : results) {
    asio::ip::tcp::acceptor acceptor(ctx);
    const auto endpoint = entry.endpoint();
    acceptor.open(endpoint.protocol(), last);
    if (last) continue;
    SetCloseOnExec(acceptor.native_handle());
    acceptor.set_option(asio::socket_base::reuse_address(true), last);
    if (!last) acceptor.bind(endpoint, last);
    if (!last) acceptor.listen(asio::socket_base::max_listen_connections, last);
    if (!last) return acceptor;
  }
  return MakeError(ErrorCode::kIo,
                   "cannot listen on " + address.ToString() + ": " + last.message());
}

Result<std::unique_ptr<HttpServer>> HttpServer::ServeUnix(asio::io_context& ctx,
                                                          const std::string& socket_path,
                                                          HttpRoutes routes,
                                                          HttpServerOptions options) {
  auto acceptor = ListenUnixSocket(ctx, socket_path);
  if (!acceptor) return std::unexpected(std::move(acceptor.error()));
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->socket_path_ = socket_path;
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    server->socket_dev_ = st.st_dev;
    server->socket_ino_ = st.st_ino;
  }
  server->shared_ = std::make_shared<Shared>(std::move(routes), std::move(options));
  StartAccepting<asio::local::stream_protocol>(server->shared_, std::move(*acceptor));
  return server;
}

Result<std::unique_ptr<HttpServer>> HttpServer::ServeTcp(asio::io_context& ctx,
                                                         const HostPort& address, HttpRoutes routes,
                                                         HttpServerOptions options) {
  auto acceptor = ListenTcp(ctx, address);
  if (!acceptor) return std::unexpected(std::move(acceptor.error()));
  std::unique_ptr<HttpServer> server(new HttpServer());
  error_code ec;
  server->port_ = acceptor->local_endpoint(ec).port();
  server->shared_ = std::make_shared<Shared>(std::move(routes), std::move(options));
  StartAccepting<asio::ip::tcp>(server->shared_, std::move(*acceptor));
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (!shared_ || shared_->stopped) return;
  shared_->stopped = true;
  if (auto close = std::exchange(shared_->close_acceptor, nullptr)) close();
  // Closing completes the connections' pending operations later, on the
  // io_context; each then unregisters itself.
  for (auto& [id, close] : shared_->connections) close();
  if (!socket_path_.empty()) {
    struct stat st {};
    if (::lstat(socket_path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
        st.st_ino == socket_ino_) {
      ::unlink(socket_path_.c_str());
    }
  }
}

std::function<std::optional<HttpResponse>(const HttpRequest&)> RequireBearerToken(
    std::string token) {
  return [token = std::move(token)](const HttpRequest& request) -> std::optional<HttpResponse> {
    constexpr std::string_view kScheme = "Bearer ";
    const auto header = request[http::field::authorization];
    const std::string_view value(header.data(), header.size());
    if (!token.empty() && value.size() > kScheme.size() &&
        beast::iequals(value.substr(0, kScheme.size()), kScheme) &&
        ConstantTimeEquals(value.substr(kScheme.size()), token)) {
      return std::nullopt;
    }
    HttpResponse response = ErrorResponse(401, "unauthorized", "a valid bearer token is required");
    response.set(http::field::www_authenticate, "Bearer");
    return response;
  };
}

}  // namespace cutover
