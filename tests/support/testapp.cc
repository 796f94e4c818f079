// cutover-testapp: the HTTP/1.1 backend behind cutover in tests, the demo and
// benchmarks. It answers with its name (the color it plays), and has routes
// to make it slow, fail, stream, echo headers, tunnel a WebSocket, keep a
// cart session, or die in the middle of a response. With --database and
// --prepare it also plays an app with a warm database pool of one: one
// PostgreSQL connection opened at start, one statement prepared on it once.
// With --fail-every N and --delay D it plays a bad release: every Nth request
// is answered 500 "injected failure", every request waits D before its
// answer (other connections keep being served meanwhile). /healthz and
// /__stats are spared both, so such a release still passes its health
// checks and a test can still read its counts.
//
// Threading: one io_context on the main thread, one coroutine per connection.
//
//   GET  /                      200, body NAME, header X-Served-By: NAME
//   GET  /healthz               200 "ok", or 503 "unhealthy"
//   POST /admin/health?ok=0|1   sets the health answer
//   GET  /slow?ms=N             waits N ms, then 200 NAME
//   GET  /status?code=N         status N, body NAME
//   GET  /headers               the request head as received, one line each
//   GET  /download?bytes=N[&chunked=1]  N bytes of 'x', streamed
//   POST|PUT /upload            reads the body streaming; "NAME <bytes>"
//   GET  /ws                    WebSocket echo, replies "NAME:<message>"
//   GET  /die                   promises 1000000 bytes, sends a few, exits(1)
//   GET  /__stats               {"requests": N, "bad_requests": M}; N counts
//                               every request but /__stats and /healthz,
//                               malformed ones included
//   POST /cart/add?item=X       adds X to the `sid` cookie's cart
//   GET  /cart                  the cart's items, comma-separated
//   GET  /db                    runs the statement prepared at start: 200
//                               "rows N", or 500 with the database's error;
//                               404 without --database
//
// SIGTERM/SIGINT: stop accepting, close idle connections, finish requests in
// flight, exit 0.
#include <libpq-fe.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "support/testapp_sessions.h"
#include "support/url_query.h"

namespace cutover::test {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
constexpr size_t kPiece = 64 * 1024;
constexpr uint64_t kMaxSlowMs = 10 * 60 * 1000;

struct Flags {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string name;
  std::string port_file;
  bool unhealthy = false;
  std::string sessions = "memory";
  bool quiet = false;
  std::string database;                // a libpq URI; empty: no /db route
  std::string prepare;                 // the statement /db runs
  uint64_t fail_every = 0;             // every Nth request but /healthz answers 500; 0: none
  std::chrono::milliseconds delay{0};  // added before every answer but /healthz
};

constexpr std::string_view kUsage =
    "usage: cutover-testapp [--port P] [--host ADDR] [--name NAME] [--port-file PATH]\n"
    "                       [--unhealthy] [--sessions memory|file:PATH] [--quiet]\n"
    "                       [--database postgres://... --prepare SQL]\n"
    "                       [--fail-every N] [--delay DURATION]\n"
    "  --port defaults to $PORT, else 0 (any free port); --name to $CUTOVER_COLOR,\n"
    "  else \"testapp\"; --quiet turns off the per-request log line.\n"
    "  --database opens one connection at start and prepares --prepare on it once;\n"
    "  GET /db executes that statement.\n"
    "  --fail-every N answers every Nth request (any path but /healthz and /__stats)\n"
    "  with 500 \"injected failure\"; --delay DURATION (e.g. 20ms) waits that long\n"
    "  before answering any request but those two.\n";

template <typename T>
std::optional<T> ParseNumber(std::string_view s) {
  T v{};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  const char* env_name = std::getenv("CUTOVER_COLOR");
  flags.name = (env_name != nullptr && *env_name != '\0') ? env_name : "testapp";
  std::optional<std::string> port_text;
  if (const char* env_port = std::getenv("PORT"); env_port != nullptr && *env_port != '\0') {
    port_text = env_port;
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::optional<std::string> inline_value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      inline_value = std::string(arg.substr(eq + 1));
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> Result<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) {
        return MakeError(ErrorCode::kInvalidArgument, std::string(arg) + " needs a value");
      }
      return std::string(argv[++i]);
    };
    if (arg == "--unhealthy") {
      flags.unhealthy = true;
    } else if (arg == "--quiet") {
      flags.quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage.data(), stdout);
      std::exit(0);
    } else if (arg == "--port" || arg == "--host" || arg == "--name" || arg == "--port-file" ||
               arg == "--sessions" || arg == "--database" || arg == "--prepare" ||
               arg == "--fail-every" || arg == "--delay") {
      auto v = value();
      if (!v) return std::unexpected(v.error());
      if (arg == "--port") port_text = *v;
      if (arg == "--host") flags.host = *v;
      if (arg == "--name") flags.name = *v;
      if (arg == "--port-file") flags.port_file = *v;
      if (arg == "--sessions") flags.sessions = *v;
      if (arg == "--database") flags.database = *v;
      if (arg == "--prepare") flags.prepare = *v;
      if (arg == "--fail-every") {
        auto n = ParseNumber<uint64_t>(*v);
        if (!n || *n == 0) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "bad --fail-every '" + *v + "' (want a count >= 1)");
        }
        flags.fail_every = *n;
      }
      if (arg == "--delay") {
        auto d = ParseDuration(*v);
        if (!d) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "bad --delay '" + *v + "': " + d.error().message);
        }
        flags.delay = *d;
      }
    } else {
      return MakeError(ErrorCode::kInvalidArgument, "unknown flag " + std::string(arg));
    }
  }
  if (flags.database.empty() != flags.prepare.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "--database and --prepare go together");
  }
  if (port_text) {
    auto port = ParseNumber<uint16_t>(*port_text);
    if (!port) return MakeError(ErrorCode::kInvalidArgument, "bad port '" + *port_text + "'");
    flags.port = *port;
  }
  return flags;
}

// A response built whole in memory.
struct Reply {
  unsigned status = 200;
  std::string body;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
};

std::string TrimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A warm database pool of one: the connection opened at start and kept for
// the life of the process, with one statement prepared on it once. Like a
// real pool it never prepares again, so a schema change the statement
// depends on shows up as the server's error on the next execution. Queries
// block the app's one thread; they are short test statements.
class WarmConnection {
 public:
  static Result<std::unique_ptr<WarmConnection>> Open(const std::string& url,
                                                      const std::string& sql) {
    std::unique_ptr<WarmConnection> c(new WarmConnection(PQconnectdb(url.c_str())));
    if (c->conn_ == nullptr || PQstatus(c->conn_) != CONNECTION_OK) {
      return MakeError(ErrorCode::kUnavailable,
                       "connect to the database: " +
                           TrimRight(c->conn_ != nullptr ? PQerrorMessage(c->conn_) : "no memory"));
    }
    PGresult* res = PQprepare(c->conn_, kStatement, sql.c_str(), 0, nullptr);
    const bool ok = res != nullptr && PQresultStatus(res) == PGRES_COMMAND_OK;
    std::string error = ok ? "" : TrimRight(PQerrorMessage(c->conn_));
    PQclear(res);
    if (!ok) return MakeError(ErrorCode::kInvalidArgument, "prepare " + sql + ": " + error);
    return c;
  }
  ~WarmConnection() { PQfinish(conn_); }
  WarmConnection(const WarmConnection&) = delete;
  WarmConnection& operator=(const WarmConnection&) = delete;

  // 200 "rows N", or 500 with the database's error text.
  Reply Execute() {
    PGresult* res = PQexecPrepared(conn_, kStatement, 0, nullptr, nullptr, nullptr, 0);
    Reply reply;
    const ExecStatusType status = res != nullptr ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      reply.body = "rows " + std::to_string(status == PGRES_TUPLES_OK ? PQntuples(res) : 0);
    } else {
      reply.status = 500;
      reply.body = TrimRight(res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_));
      if (reply.body.empty()) reply.body = TrimRight(PQerrorMessage(conn_));
    }
    PQclear(res);
    return reply;
  }

 private:
  static constexpr const char* kStatement = "cutover_testapp_db";
  explicit WarmConnection(PGconn* conn) : conn_(conn) {}
  PGconn* conn_;
};

Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return MakeError(ErrorCode::kIo, "open " + tmp);
  bool ok = std::fputs(contents.c_str(), f) >= 0;
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    return MakeError(ErrorCode::kIo, "write " + path);
  }
  return {};
}

class App {
 public:
  App(asio::io_context& ioc, Flags flags, std::unique_ptr<SessionStore> sessions,
      std::unique_ptr<WarmConnection> database)
      : ioc_(ioc),
        flags_(std::move(flags)),
        healthy_(!flags_.unhealthy),
        sessions_(std::move(sessions)),
        database_(std::move(database)),
        acceptor_(ioc) {}

  // Binds and listens, then publishes the port (stdout and the port file).
  Status Listen() {
    beast::error_code ec;
    std::string host = flags_.host == "localhost" ? "127.0.0.1" : flags_.host;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return MakeError(ErrorCode::kInvalidArgument, "bad --host '" + flags_.host + "'");
    tcp::endpoint endpoint(address, flags_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo, "listen on " + host + ":" + std::to_string(flags_.port) +
                                           ": " + ec.message());
    }
    uint16_t port = acceptor_.local_endpoint(ec).port();
    std::printf("%s listening on %s:%u\n", flags_.name.c_str(), host.c_str(), port);
    std::fflush(stdout);
    if (!flags_.port_file.empty()) {
      if (auto st = WriteFileAtomically(flags_.port_file, std::to_string(port) + "\n"); !st) {
        return st;
      }
    }
    return {};
  }

  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kToken);
      if (stopping_) co_return;
      if (ec) {
        // Out of descriptors or a transient failure: retry shortly.
        asio::steady_timer pause(ioc_, std::chrono::milliseconds(10));
        co_await pause.async_wait(kToken);
        continue;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      asio::co_spawn(ioc_, Serve(std::move(socket)), asio::detached);
    }
  }

  // Stops accepting and closes connections waiting for their next request;
  // requests in flight finish and then close their connections.
  void Stop() {
    if (stopping_) return;
    stopping_ = true;
    std::printf("%s stopping\n", flags_.name.c_str());
    std::fflush(stdout);
    beast::error_code ignored;
    acceptor_.close(ignored);
    for (auto& [id, socket] : idle_) {
      socket->shutdown(tcp::socket::shutdown_both, ignored);
      socket->close(ignored);
    }
  }

 private:
  // Marks a connection as waiting for input, so Stop() may close it.
  class IdleMark {
   public:
    IdleMark(App& app, uint64_t id, tcp::socket& socket) : app_(app), id_(id) {
      app_.idle_[id_] = &socket;
    }
    ~IdleMark() { app_.idle_.erase(id_); }
    IdleMark(const IdleMark&) = delete;
    IdleMark& operator=(const IdleMark&) = delete;

   private:
    App& app_;
    uint64_t id_;
  };

  using Request = http::request<http::buffer_body>;

  void Log(std::string_view method, std::string_view target) {
    if (flags_.quiet) return;
    std::printf("%.*s %.*s\n", static_cast<int>(method.size()), method.data(),
                static_cast<int>(target.size()), target.data());
    std::fflush(stdout);
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    const uint64_t id = next_conn_id_++;
    beast::flat_buffer buffer;
    std::vector<char> piece(kPiece);
    while (!stopping_) {
      http::request_parser<http::buffer_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      beast::error_code ec;
      {
        IdleMark idle(*this, id, socket);
        std::tie(ec, std::ignore) =
            co_await http::async_read_header(socket, buffer, parser, kToken);
      }
      if (ec) {
        if (parser.got_some() || buffer.size() > 0) {
          ++requests_;
          co_await RejectMalformed(socket, ec);
        }
        co_return;
      }
      Request& req = parser.get();
      const std::string target(req.target());
      const std::string_view path = TargetPath(target);
      if (path != "/__stats" && path != "/healthz") ++requests_;
      Log(req.method_string(), target);

      // Faults played on purpose; health checks are spared so the release
      // still gets through its health step, and /__stats so tests can read it.
      bool inject_failure = false;
      if (path != "/healthz" && path != "/__stats") {
        if (flags_.delay.count() > 0) {
          // A timer, not a sleep: the other connections keep being served.
          asio::steady_timer wait(socket.get_executor(), flags_.delay);
          co_await wait.async_wait(kToken);
        }
        inject_failure = flags_.fail_every > 0 && ++faulty_requests_ % flags_.fail_every == 0;
      }

      if (path == "/ws" && websocket::is_upgrade(req) && !inject_failure) {
        co_await ServeWebSocket(std::move(socket), req);
        co_return;
      }

      // Consume the body whatever the route, so the next request on this
      // connection starts where it should; /upload reports the count.
      if (!parser.is_done()) {
        auto expect = req[http::field::expect];
        if (beast::iequals(expect, "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [wec, n] = co_await asio::async_write(socket, asio::buffer(kContinue), kToken);
          if (wec) co_return;
        }
      }
      uint64_t body_bytes = 0;
      while (!parser.is_done()) {
        req.body().data = piece.data();
        req.body().size = piece.size();
        auto [rec, n] = co_await http::async_read(socket, buffer, parser, kToken);
        if (rec == http::error::need_buffer) rec = {};
        body_bytes += piece.size() - req.body().size;
        if (rec) {
          if (rec != http::error::partial_message && rec != asio::error::eof) {
            co_await RejectMalformed(socket, rec);
          }
          co_return;
        }
      }

      if (inject_failure) {
        const bool keep = req.keep_alive() && !stopping_;
        // A named reply: g++ 12 mishandles a temporary argument of a co_await.
        const Reply failure{500, "injected failure"};
        if (!co_await Write(socket, req, keep, failure)) co_return;
        if (!keep) break;
        continue;
      }
      if (path == "/download" && req.method() == http::verb::get) {
        if (!co_await Download(socket, req, ParseQuery(target))) co_return;
        if (!req.keep_alive() || stopping_) break;
        continue;
      }
      if (path == "/die" && req.method() == http::verb::get) {
        co_await Die(socket);
        co_return;
      }
      Reply reply = co_await Handle(socket, req, target, path, body_bytes);
      bool keep = req.keep_alive() && !stopping_;
      if (!co_await Write(socket, req, keep, reply)) co_return;
      if (!keep) break;
    }
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  }

  // A request that could not be parsed still counts as received (so tests
  // see that it reached the app); it is answered 400 and the connection closed.
  asio::awaitable<void> RejectMalformed(tcp::socket& socket, beast::error_code why) {
    ++bad_requests_;
    Log("BAD", why.message());
    std::string res =
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nX-Served-By: " + flags_.name +
        "\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request";
    co_await asio::async_write(socket, asio::buffer(res), kToken);
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  }

  asio::awaitable<Reply> Handle(tcp::socket& socket, Request& req, const std::string& target,
                                std::string_view path, uint64_t body_bytes) {
    const http::verb method = req.method();
    const bool get = method == http::verb::get || method == http::verb::head;
    auto text = [](unsigned status, std::string body) {
      Reply r;
      r.status = status;
      r.body = std::move(body);
      return r;
    };
    const Reply not_allowed = text(405, "method not allowed");

    if (path == "/") co_return get ? text(200, flags_.name) : not_allowed;
    if (path == "/healthz") {
      if (!get) co_return not_allowed;
      co_return healthy_ ? text(200, "ok") : text(503, "unhealthy");
    }
    if (path == "/admin/health") {
      if (method != http::verb::post) co_return not_allowed;
      auto ok = ParseQuery(target)["ok"];
      if (ok != "0" && ok != "1") co_return text(400, "want ok=0 or ok=1");
      healthy_ = ok == "1";
      co_return text(200, healthy_ ? "ok" : "unhealthy");
    }
    if (path == "/slow") {
      if (!get) co_return not_allowed;
      auto ms = ParseNumber<uint64_t>(ParseQuery(target)["ms"]);
      if (!ms || *ms > kMaxSlowMs) co_return text(400, "want ms=0..600000");
      asio::steady_timer timer(socket.get_executor(), std::chrono::milliseconds(*ms));
      co_await timer.async_wait(kToken);
      co_return text(200, flags_.name);
    }
    if (path == "/status") {
      auto code = ParseNumber<unsigned>(ParseQuery(target)["code"]);
      if (!code || *code < 200 || *code > 599) co_return text(400, "want code=200..599");
      co_return text(*code, flags_.name);
    }
    if (path == "/headers") {
      if (!get) co_return not_allowed;
      std::string echo = std::string(req.method_string()) + " " + target + " HTTP/" +
                         std::to_string(req.version() / 10) + "." +
                         std::to_string(req.version() % 10) + "\n";
      for (const auto& field : req) {
        echo.append(field.name_string()).append(": ").append(field.value()).append("\n");
      }
      co_return text(200, std::move(echo));
    }
    if (path == "/upload") {
      if (method != http::verb::post && method != http::verb::put) co_return not_allowed;
      co_return text(200, flags_.name + " " + std::to_string(body_bytes));
    }
    if (path == "/__stats") {
      if (!get) co_return not_allowed;
      Reply r = text(200, "{\"requests\": " + std::to_string(requests_) +
                              ", \"bad_requests\": " + std::to_string(bad_requests_) + "}");
      r.content_type = "application/json";
      co_return r;
    }
    if (path == "/cart/add" || path == "/cart") co_return Cart(req, target, path);
    if (path == "/db" && database_) co_return get ? database_->Execute() : not_allowed;
    if (path == "/ws") co_return text(400, "websocket upgrade required");
    if (path == "/download" || path == "/die") co_return not_allowed;
    co_return text(404, "not found");
  }

  Reply Cart(const Request& req, const std::string& target, std::string_view path) {
    Reply r;
    std::optional<std::string> sid = CookieValue(req[http::field::cookie], "sid");
    if (path == "/cart/add") {
      if (req.method() != http::verb::post) return Reply{405, "method not allowed"};
      std::string item = ParseQuery(target)["item"];
      bool bad = item.empty() || item.find_first_of(" \t\r\n,") != std::string::npos;
      if (bad) return Reply{400, "want item=X without spaces or commas"};
      if (!sid || sid->empty() || sid->find_first_of(" \t\r\n") != std::string::npos) {
        sid = NewSessionId();
        r.headers.emplace_back("Set-Cookie", "sid=" + *sid + "; Path=/; HttpOnly");
      }
      if (auto st = sessions_->Add(*sid, item); !st) return Reply{500, st.error().message};
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      return Reply{405, "method not allowed"};
    }
    if (!sid) return r;
    auto items = sessions_->Items(*sid);
    if (!items) return Reply{500, items.error().message};
    for (size_t i = 0; i < items->size(); ++i) {
      if (i > 0) r.body += ",";
      r.body += (*items)[i];
    }
    return r;
  }

  // Returns false when the connection failed.
  asio::awaitable<bool> Write(tcp::socket& socket, const Request& req, bool keep,
                              const Reply& reply) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.result(reply.status);
    res.set("X-Served-By", flags_.name);
    res.set(http::field::content_type, reply.content_type);
    for (const auto& [k, v] : reply.headers) res.insert(k, v);
    res.keep_alive(keep);
    const bool bodiless = reply.status == 204 || reply.status == 304;
    if (!bodiless) res.content_length(reply.body.size());
    beast::error_code ec;
    if (req.method() == http::verb::head || bodiless) {
      http::response_serializer<http::string_body> sr{res};
      std::tie(ec, std::ignore) = co_await http::async_write_header(socket, sr, kToken);
    } else {
      res.body() = reply.body;
      std::tie(ec, std::ignore) = co_await http::async_write(socket, res, kToken);
    }
    co_return !ec;
  }

  // Streams `bytes` of 'x' from one reused 64 KiB piece. False on failure.
  asio::awaitable<bool> Download(tcp::socket& socket, const Request& req,
                                 std::map<std::string, std::string> query) {
    auto bytes = ParseNumber<uint64_t>(query["bytes"]);
    if (!bytes) {
      // Named, not a temporary: GCC 12 destroys a temporary argument of a
      // co_await'ed call twice.
      Reply bad{400, "want bytes=N"};
      co_return co_await Write(socket, req, req.keep_alive(), bad);
    }
    const bool chunked = query["chunked"] == "1";
    http::response<http::buffer_body> res;
    res.version(req.version());
    res.result(http::status::ok);
    res.set("X-Served-By", flags_.name);
    res.set(http::field::content_type, "application/octet-stream");
    if (chunked) {
      res.chunked(true);
    } else {
      res.content_length(*bytes);
    }
    res.keep_alive(req.keep_alive() && !stopping_);
    res.body().data = nullptr;
    res.body().more = true;
    http::response_serializer<http::buffer_body> sr{res};
    auto [ec, n] = co_await http::async_write_header(socket, sr, kToken);
    if (ec) co_return false;
    std::string piece(kPiece, 'x');
    uint64_t left = *bytes;
    while (left > 0) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(left, piece.size()));
      res.body().data = piece.data();
      res.body().size = take;
      res.body().more = true;
      std::tie(ec, n) = co_await http::async_write(socket, sr, kToken);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return false;
      left -= take;
    }
    res.body().data = nullptr;
    res.body().size = 0;
    res.body().more = false;
    std::tie(ec, n) = co_await http::async_write(socket, sr, kToken);
    co_return !ec;
  }

  // Simulates a target killed mid-response: the head promises far more body
  // than is ever sent.
  asio::awaitable<void> Die(tcp::socket& socket) {
    std::string res = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Served-By: " + flags_.name +
                      "\r\nContent-Length: 1000000\r\n\r\npartial";
    co_await asio::async_write(socket, asio::buffer(res), kToken);
    std::printf("%s dying\n", flags_.name.c_str());
    std::fflush(stdout);
    ::_exit(1);
  }

  asio::awaitable<void> ServeWebSocket(tcp::socket socket, Request& req) {
    const uint64_t id = next_conn_id_++;
    websocket::stream<tcp::socket> ws(std::move(socket));
    std::string name = flags_.name;
    ws.set_option(websocket::stream_base::decorator(
        [name](websocket::response_type& res) { res.set("X-Served-By", name); }));
    auto [ec] = co_await ws.async_accept(req, kToken);
    if (ec) co_return;
    beast::flat_buffer buffer;
    while (!stopping_) {
      std::size_t n = 0;
      {
        IdleMark idle(*this, id, ws.next_layer());
        std::tie(ec, n) = co_await ws.async_read(buffer, kToken);
      }
      if (ec) co_return;
      std::string reply = flags_.name + ":" + beast::buffers_to_string(buffer.data());
      buffer.consume(buffer.size());
      ws.text(ws.got_text());
      std::tie(ec, n) = co_await ws.async_write(asio::buffer(reply), kToken);
      if (ec) co_return;
    }
  }

  asio::io_context& ioc_;
  const Flags flags_;
  bool healthy_;
  std::unique_ptr<SessionStore> sessions_;
  std::unique_ptr<WarmConnection> database_;  // null without --database
  tcp::acceptor acceptor_;
  bool stopping_ = false;
  uint64_t next_conn_id_ = 0;
  uint64_t requests_ = 0;
  uint64_t bad_requests_ = 0;
  uint64_t faulty_requests_ = 0;  // requests subject to --fail-every
  std::map<uint64_t, tcp::socket*> idle_;
};

// Many test connections at once must not run into the default soft limit.
void RaiseFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
}

int Main(int argc, char** argv) {
  auto flags = ParseFlags(argc, argv);
  if (!flags) {
    std::fprintf(stderr, "cutover-testapp: %s\n%s", flags.error().message.c_str(), kUsage.data());
    return 2;
  }
  auto sessions = SessionStore::Open(flags->sessions);
  if (!sessions) {
    std::fprintf(stderr, "cutover-testapp: %s\n", sessions.error().message.c_str());
    return 2;
  }
  std::unique_ptr<WarmConnection> database;
  if (!flags->database.empty()) {
    auto opened = WarmConnection::Open(flags->database, flags->prepare);
    if (!opened) {
      std::fprintf(stderr, "cutover-testapp: %s\n", opened.error().message.c_str());
      return 1;
    }
    database = std::move(*opened);
  }
  ::signal(SIGPIPE, SIG_IGN);
  RaiseFileLimit();

  asio::io_context ioc(1);
  App app(ioc, std::move(*flags), std::move(*sessions), std::move(database));
  if (auto st = app.Listen(); !st) {
    std::fprintf(stderr, "cutover-testapp: %s\n", st.error().message.c_str());
    return 1;
  }
  asio::signal_set signals(ioc, SIGTERM, SIGINT);
  signals.async_wait([&](beast::error_code ec, int) {
    if (!ec) app.Stop();
  });
  asio::co_spawn(ioc, app.Accept(), asio::detached);
  ioc.run();
  std::printf("stopped\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace cutover::test

int main(int argc, char** argv) { return cutover::test::Main(argc, argv); }
