// Checks against real servers and real shell commands: small HTTP servers on
// 127.0.0.1 port 0 play the preview and live listeners.
#include "checks/checks.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
using Request = http::request<http::string_body>;

// What a test server answers to one request.
struct Reply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool chunked = false;
  bool hang = false;  // read the request, never answer
  std::string raw;    // written as is, then the connection is closed
};

// An HTTP/1.1 server on 127.0.0.1:0 with its own thread. `handler` runs on
// that thread.
class TestServer {
 public:
  using Handler = std::function<Reply(const Request&)>;

  explicit TestServer(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {
    boost::system::error_code ec;
    const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) port_ = acceptor_.local_endpoint(ec).port();
    if (ec) port_ = 0;
    asio::co_spawn(io_, Accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  HostPort address() const { return {"127.0.0.1", port_}; }
  int requests() const { return requests_.load(); }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec) co_return;
      asio::co_spawn(io_, Serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Serve(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      Request request;
      auto [ec, n] = co_await http::async_read(socket, buffer, request, kTuple);
      if (ec) co_return;
      ++requests_;
      Reply reply = handler_(request);
      if (reply.hang) {
        char byte;
        co_await socket.async_read_some(asio::buffer(&byte, 1), kTuple);
        co_return;
      }
      if (!reply.raw.empty()) {
        co_await asio::async_write(socket, asio::buffer(reply.raw), kTuple);
        socket.shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      }
      http::response<http::string_body> response{static_cast<http::status>(reply.status), 11};
      for (const auto& [name, value] : reply.headers) response.insert(name, value);
      response.body() = reply.body;
      if (reply.chunked) {
        response.chunked(true);
      } else {
        response.prepare_payload();
      }
      response.keep_alive(request.keep_alive());
      auto [wec, written] = co_await http::async_write(socket, response, kTuple);
      if (wec || !request.keep_alive()) {
        socket.shutdown(tcp::socket::shutdown_send, ec);
        co_return;
      }
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// Runs one check to completion on a fresh io_context, as the control thread would.
CheckResult RunToEnd(const CheckConfig& check, const CheckContext& ctx) {
  asio::io_context io;
  std::optional<CheckResult> result;
  asio::co_spawn(io, RunCheck(check, ctx), [&](std::exception_ptr error, CheckResult r) {
    if (!error) result = std::move(r);
  });
  io.run();
  EXPECT_TRUE(result.has_value()) << "RunCheck ended with an exception";
  return result.value_or(CheckResult{});
}

CheckConfig HttpCheck(const std::string& path) {
  CheckConfig check;
  check.kind = CheckConfig::Kind::kHttp;
  check.http.path = path;
  check.timeout = 10s;
  check.retries = 0;
  check.retry_interval = 10ms;
  return check;
}

CheckConfig CommandCheck(const std::string& command) {
  CheckConfig check;
  check.kind = CheckConfig::Kind::kCommand;
  check.command = command;
  check.timeout = 20s;
  check.retries = 0;
  check.retry_interval = 10ms;
  return check;
}

CheckContext Context(const HostPort& preview, const HostPort& live = {"127.0.0.1", 1}) {
  CheckContext ctx;
  ctx.preview = preview;
  ctx.live = live;
  ctx.host = "shop.example.com";
  ctx.release = "v42";
  return ctx;
}

// True once `pid` no longer runs (a zombie waiting for init counts as gone).
bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return true;
  const char state = line[close + 2];
  return state == 'Z' || state == 'X';
}

// Whether this process has a child left to reap (a zombie the check left behind).
bool HasChildren() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- http ----

TEST(HttpCheckTest, PassesOnA2xxAnswer) {
  TestServer preview([](const Request&) { return Reply{200, "hello"}; });
  ASSERT_NE(preview.address().port, 0);
  CheckResult result = RunToEnd(HttpCheck("/"), Context(preview.address()));
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.name, "http GET /");
  EXPECT_EQ(result.attempts, 1);
  EXPECT_EQ(result.message, "");
}

TEST(HttpCheckTest, UsesTheConfiguredName) {
  TestServer preview([](const Request&) { return Reply{200, "hello"}; });
  CheckConfig check = HttpCheck("/");
  check.name = "home page";
  EXPECT_EQ(RunToEnd(check, Context(preview.address())).name, "home page");
}

TEST(HttpCheckTest, WrongStatusNamesExpectedAndActualWithTheBody) {
  TestServer preview([](const Request&) { return Reply{503, "down for maintenance"}; });
  CheckConfig check = HttpCheck("/");
  check.http.expect_status = 200;
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message, "GET /: expected status 200, got 503 (body: \"down for maintenance\")");
}

TEST(HttpCheckTest, AnyRedirectPassesAndA404FailsWithoutAnExpectedStatus) {
  TestServer preview([](const Request& request) {
    if (request.target() == "/old") return Reply{302, "", {{"Location", "/new"}}};
    return Reply{404, "no such page"};
  });
  EXPECT_TRUE(RunToEnd(HttpCheck("/old"), Context(preview.address())).passed);
  CheckResult result = RunToEnd(HttpCheck("/missing"), Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "GET /missing: expected status 2xx or 3xx, got 404 (body: \"no such page\")");
}

TEST(HttpCheckTest, LongBodiesAreCutInTheMessage) {
  TestServer preview([](const Request&) { return Reply{500, std::string(5000, 'x')}; });
  CheckResult result = RunToEnd(HttpCheck("/"), Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.message.find("(body: \"" + std::string(200, 'x') + "\"...)"), std::string::npos)
      << result.message;
  EXPECT_LT(result.message.size(), 300u);
}

TEST(HttpCheckTest, BodySubstringMismatchShowsWhatCameBack) {
  TestServer preview([](const Request&) { return Reply{200, "<h1>Welcome to v1</h1>"}; });
  CheckConfig check = HttpCheck("/");
  check.http.expect_body = "v2";
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "GET /: expected body to contain \"v2\", got \"<h1>Welcome to v1</h1>\"");

  check.http.expect_body = "Welcome";
  EXPECT_TRUE(RunToEnd(check, Context(preview.address())).passed);
}

TEST(HttpCheckTest, ChunkedAndUntilCloseBodiesAreRead) {
  TestServer preview([](const Request& request) {
    if (request.target() == "/chunked") return Reply{200, "streamed release v2", {}, true};
    Reply raw;
    raw.raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close release v2";
    return raw;
  });
  CheckConfig check = HttpCheck("/chunked");
  check.http.expect_body = "release v2";
  EXPECT_TRUE(RunToEnd(check, Context(preview.address())).passed);
  check.http.path = "/raw";
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_TRUE(result.passed) << result.message;
}

TEST(HttpCheckTest, BodiesOverOneMebibyteAreCheckedOnTheirStart) {
  TestServer preview([](const Request&) {
    return Reply{200, "marker" + std::string(3 << 20, 'x') + "tail"};
  });
  CheckConfig check = HttpCheck("/");
  check.http.expect_body = "marker";
  EXPECT_TRUE(RunToEnd(check, Context(preview.address())).passed);
  check.http.expect_body = "tail";
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.message.find("(in its first 1 MiB)"), std::string::npos) << result.message;
}

TEST(HttpCheckTest, JsonFieldMatches) {
  TestServer preview([](const Request&) {
    return Reply{200, R"({"db": {"status": "ok", "latency_ms": 3}, "ready": true,)"
                      R"( "workers": [{"name": "a"}, {"name": "b"}], "version": null})"};
  });
  CheckConfig check = HttpCheck("/healthz");
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"db.status", "ok"},     {"db.latency_ms", "3"}, {"ready", "true"},
      {"workers.1.name", "b"}, {"version", "null"},    {"workers.0", R"({"name":"a"})"}};
  for (const auto& [field, value] : fields) {
    check.http.expect_json_field = field;
    check.http.expect_json_value = value;
    CheckResult result = RunToEnd(check, Context(preview.address()));
    EXPECT_TRUE(result.passed) << field << ": " << result.message;
  }
}

TEST(HttpCheckTest, JsonFieldMismatchMissingFieldAndNonJson) {
  TestServer preview([](const Request& request) {
    if (request.target() == "/text") return Reply{200, "all good"};
    return Reply{200, R"({"db": {"status": "degraded"}, "items": [1, 2]})"};
  });
  CheckConfig check = HttpCheck("/healthz");
  check.http.expect_json_field = "db.status";
  check.http.expect_json_value = "ok";
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "GET /healthz: expected JSON field db.status to be \"ok\", got \"degraded\"");

  check.http.expect_json_field = "items.5";
  check.http.expect_json_value = "1";
  result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.message.find("GET /healthz: expected JSON field items.5 to be \"1\", but the "
                                "body has no such field"),
            std::string::npos)
      << result.message;

  check.http.path = "/text";
  check.http.expect_json_field = "status";
  check.http.expect_json_value = "ok";
  result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "GET /text: expected JSON field status to be \"ok\", but the body is not JSON: "
            "\"all good\"");
}

TEST(HttpCheckTest, RetriesUntilItPasses) {
  std::atomic<int> calls{0};
  TestServer preview([&](const Request&) {
    return ++calls <= 2 ? Reply{503, "starting"} : Reply{200, "ready"};
  });
  CheckConfig check = HttpCheck("/");
  check.retries = 2;
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(preview.requests(), 3);
}

TEST(HttpCheckTest, ReportsTheLastFailureOnceRetriesAreSpent) {
  std::atomic<int> calls{0};
  TestServer preview([&](const Request&) {
    return Reply{500, "failure " + std::to_string(++calls)};
  });
  CheckConfig check = HttpCheck("/");
  check.retries = 2;
  CheckResult result = RunToEnd(check, Context(preview.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.attempts, 3);
  EXPECT_EQ(result.message, "GET /: expected status 2xx or 3xx, got 500 (body: \"failure 3\")");
}

TEST(HttpCheckTest, TimesOutWhenTheServerNeverAnswers) {
  TestServer preview([](const Request&) {
    Reply reply;
    reply.hang = true;
    return reply;
  });
  CheckConfig check = HttpCheck("/slow");
  check.timeout = 300ms;
  check.retries = 1;
  const auto start = std::chrono::steady_clock::now();
  CheckResult result = RunToEnd(check, Context(preview.address()));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.attempts, 2);
  EXPECT_EQ(result.message, "GET /slow: no complete answer within 300ms");
  EXPECT_LT(elapsed, 5s);
}

TEST(HttpCheckTest, RefusedConnectionSaysWhere) {
  // A port that was just free: nothing listens on it.
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  CheckResult result = RunToEnd(HttpCheck("/"), Context({"127.0.0.1", port}));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "GET /: cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");
}

TEST(HttpCheckTest, SendsHostTokenHeadersAndBody) {
  std::mutex mu;
  Request seen;
  TestServer preview([&](const Request& request) {
    std::lock_guard lock(mu);
    seen = request;
    return Reply{201, "created"};
  });
  CheckConfig check = HttpCheck("/orders?dry_run=1");
  check.http.method = "POST";
  check.http.headers = {{"Content-Type", "application/json"}, {"X-Smoke", "yes"}};
  check.http.body = R"({"sku": "gadget"})";
  check.http.expect_status = 201;
  CheckContext ctx = Context(preview.address());
  ctx.preview_token = "s3cret";
  CheckResult result = RunToEnd(check, ctx);
  EXPECT_TRUE(result.passed) << result.message;

  std::lock_guard lock(mu);
  EXPECT_EQ(seen.method(), http::verb::post);
  EXPECT_EQ(seen.target(), "/orders?dry_run=1");
  EXPECT_EQ(seen[http::field::host], "shop.example.com");
  EXPECT_EQ(seen["X-Cutover-Preview-Token"], "s3cret");
  EXPECT_EQ(seen["X-Smoke"], "yes");
  EXPECT_EQ(seen[http::field::content_type], "application/json");
  EXPECT_EQ(seen[http::field::content_length], "17");
  EXPECT_EQ(seen.body(), R"({"sku": "gadget"})");
}

TEST(HttpCheckTest, NoTokenHeaderWithoutAToken) {
  std::atomic<bool> had_token{true};
  TestServer preview([&](const Request& request) {
    had_token = request.find("X-Cutover-Preview-Token") != request.end();
    return Reply{200, "ok"};
  });
  EXPECT_TRUE(RunToEnd(HttpCheck("/"), Context(preview.address())).passed);
  EXPECT_FALSE(had_token.load());
}

TEST(HttpCheckTest, WildcardListenAddressIsReachedOnLoopback) {
  TestServer preview([](const Request&) { return Reply{200, "ok"}; });
  CheckResult result = RunToEnd(HttpCheck("/"), Context({"0.0.0.0", preview.address().port}));
  EXPECT_TRUE(result.passed) << result.message;
}

// ---- command ----

class CommandCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = test::TempDir::Create("cutover-checks");
    ASSERT_TRUE(dir.has_value()) << dir.error().message;
    dir_.emplace(std::move(*dir));
    ctx_ = Context({"0.0.0.0", 8081}, {"127.0.0.1", 8080});
    ctx_.workdir = dir_->path().string();
  }

  std::optional<test::TempDir> dir_;
  CheckContext ctx_;
};

TEST_F(CommandCheckTest, PassesOnExitZeroAndKeepsItsOutput) {
  CheckResult result = RunToEnd(CommandCheck("echo smoke ok"), ctx_);
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.name, "command echo smoke ok");
  EXPECT_EQ(result.output, "smoke ok\n");
  EXPECT_FALSE(HasChildren());
}

TEST_F(CommandCheckTest, FailureReportsTheStatusAndCombinedOutput) {
  CheckResult result =
      RunToEnd(CommandCheck("echo 'checking cart'; echo 'cart is empty' >&2; exit 3"), ctx_);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message, "exited with status 3");
  EXPECT_EQ(result.output, "checking cart\ncart is empty\n");
  EXPECT_FALSE(HasChildren());
}

TEST_F(CommandCheckTest, KeepsTheLastFourKibOfOutput) {
  CheckResult result =
      RunToEnd(CommandCheck("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; "
                            "echo LAST; exit 1"),
               ctx_);
  EXPECT_FALSE(result.passed);
  EXPECT_LE(result.output.size(), 4096u);
  EXPECT_GT(result.output.size(), 4000u);
  EXPECT_TRUE(result.output.ends_with("line-1999\nLAST\n")) << result.output;
}

TEST_F(CommandCheckTest, SeesTheCheckEnvironmentAndRunsInTheWorkdir) {
  ::setenv("CUTOVER_CHECKS_TEST_INHERITED", "from-daemon", 1);
  ctx_.preview_token = "s3cret";
  CheckResult result = RunToEnd(CommandCheck("echo \"preview=$CUTOVER_PREVIEW_URL\"; "
                                             "echo \"live=$CUTOVER_LIVE_URL\"; "
                                             "echo \"release=$CUTOVER_RELEASE\"; "
                                             "echo \"host=$CUTOVER_SERVICE_HOST\"; "
                                             "echo \"token=$CUTOVER_PREVIEW_TOKEN\"; "
                                             "echo \"inherited=$CUTOVER_CHECKS_TEST_INHERITED\"; "
                                             "echo \"pwd=$(pwd -P)\""),
                                ctx_);
  ::unsetenv("CUTOVER_CHECKS_TEST_INHERITED");
  EXPECT_TRUE(result.passed) << result.message;
  const std::string workdir = std::filesystem::canonical(dir_->path()).string();
  EXPECT_EQ(result.output,
            "preview=http://127.0.0.1:8081\n"
            "live=http://127.0.0.1:8080\n"
            "release=v42\n"
            "host=shop.example.com\n"
            "token=s3cret\n"
            "inherited=from-daemon\n"
            "pwd=" +
                workdir + "\n");
}

TEST_F(CommandCheckTest, NoTokenVariableWithoutAToken) {
  ::setenv("CUTOVER_PREVIEW_TOKEN", "stale", 1);
  CheckResult result =
      RunToEnd(CommandCheck("echo \"token=${CUTOVER_PREVIEW_TOKEN-unset}\""), ctx_);
  ::unsetenv("CUTOVER_PREVIEW_TOKEN");
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.output, "token=unset\n");
}

TEST_F(CommandCheckTest, TimeoutKillsTheWholeProcessGroup) {
  CheckConfig check = CommandCheck("sleep 100 & echo $! > sleep.pid; wait");
  check.timeout = 1s;
  const auto start = std::chrono::steady_clock::now();
  CheckResult result = RunToEnd(check, ctx_);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message, "timed out after 1s; its process group was killed");
  EXPECT_LT(elapsed, 30s);
  EXPECT_FALSE(HasChildren());

  const std::string pid_text = ReadAll(dir_->path() / "sleep.pid");
  ASSERT_FALSE(pid_text.empty()) << "the command did not start in time";
  const pid_t sleeper = std::stoi(pid_text);
  EXPECT_TRUE(test::WaitUntil([&] { return ProcessGone(sleeper); }, test::DeadlineIn(10s)))
      << "sleep 100 (pid " << sleeper << ") survived the timeout";
}

TEST_F(CommandCheckTest, ProcessesLeftBehindAreKilledWhenItExits) {
  CheckResult result = RunToEnd(CommandCheck("sleep 100 & echo $! > sleep.pid"), ctx_);
  EXPECT_TRUE(result.passed) << result.message;
  const pid_t sleeper = std::stoi(ReadAll(dir_->path() / "sleep.pid"));
  EXPECT_TRUE(test::WaitUntil([&] { return ProcessGone(sleeper); }, test::DeadlineIn(10s)));
}

TEST_F(CommandCheckTest, RetriesACommand) {
  // Fails until it has run three times.
  CheckConfig check = CommandCheck("echo x >> runs; [ $(wc -l < runs) -ge 3 ]");
  check.retries = 5;
  CheckResult result = RunToEnd(check, ctx_);
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.attempts, 3);
}

TEST_F(CommandCheckTest, DaemonFileDescriptorsDoNotLeakIntoTheCommand) {
  const int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  CheckResult result = RunToEnd(CommandCheck("ls /proc/$$/fd"), ctx_);
  ::close(leaked);
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.output, "0\n1\n2\n");
}

TEST_F(CommandCheckTest, StdinIsEmpty) {
  CheckResult result = RunToEnd(CommandCheck("cat; echo done"), ctx_);
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.output, "done\n");
}

TEST_F(CommandCheckTest, MissingWorkdirIsReported) {
  ctx_.workdir = (dir_->path() / "gone").string();
  CheckResult result = RunToEnd(CommandCheck("true"), ctx_);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "cannot start /bin/sh in " + ctx_.workdir + ": No such file or directory");
}

TEST_F(CommandCheckTest, KilledBySignalIsReported) {
  CheckResult result = RunToEnd(CommandCheck("kill -TERM $$"), ctx_);
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message, "was killed by signal 15 (SIGTERM)");
}

TEST_F(CommandCheckTest, CancellingKillsTheCommand) {
  CheckConfig check = CommandCheck("sleep 100 & echo $! > sleep.pid; wait");
  check.timeout = 60s;
  check.retries = 3;
  asio::io_context io;
  asio::cancellation_signal cancel;
  std::optional<CheckResult> result;
  asio::co_spawn(
      io, RunCheck(check, ctx_),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr error, CheckResult r) {
        if (!error) result = std::move(r);
      }));
  const std::filesystem::path pid_file = dir_->path() / "sleep.pid";
  // Cancel once the command runs (the poll runs on the same io_context).
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer poll(io);
        while (ReadAll(pid_file).empty() || !ReadAll(pid_file).ends_with("\n")) {
          poll.expires_after(10ms);
          co_await poll.async_wait(kTuple);
        }
        cancel.emit(asio::cancellation_type::terminal);
      },
      asio::detached);
  io.run();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(result->passed);
  EXPECT_EQ(result->attempts, 1);
  EXPECT_EQ(result->message, "cancelled; its process group was killed");
  EXPECT_FALSE(HasChildren());
  const pid_t sleeper = std::stoi(ReadAll(pid_file));
  EXPECT_TRUE(test::WaitUntil([&] { return ProcessGone(sleeper); }, test::DeadlineIn(10s)));
}

// ---- session ----

// Carts by session id, as an app keeps them.
struct CartStore {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> carts;
  int next_session = 1;
};

std::string CookieValue(const Request& request, const std::string& name) {
  auto it = request.find(http::field::cookie);
  if (it == request.end()) return "";
  std::string header(it->value());
  const std::string key = name + "=";
  size_t at = 0;
  while ((at = header.find(key, at)) != std::string::npos) {
    if (at == 0 || header[at - 1] == ' ' || header[at - 1] == ';') {
      const size_t end = header.find(';', at);
      return header.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
    }
    at += key.size();
  }
  return "";
}

// A shop: POST /cart/add?item=X adds to the session's cart (starting a
// session when there is none), GET /cart lists it.
TestServer::Handler Shop(CartStore& store) {
  return [&store](const Request& request) {
    std::lock_guard lock(store.mu);
    std::string sid = CookieValue(request, "sid");
    const std::string target(request.target());
    if (request.method() == http::verb::post && target.starts_with("/cart/add?item=")) {
      Reply reply{200, "added"};
      if (sid.empty() || !store.carts.contains(sid)) {
        sid = "s" + std::to_string(store.next_session++);
        store.carts[sid];
        reply.headers.emplace_back("Set-Cookie", "sid=" + sid + "; Path=/; HttpOnly");
        reply.headers.emplace_back("Set-Cookie", "theme=dark; Max-Age=3600");
      }
      store.carts[sid].push_back(target.substr(target.find('=') + 1));
      return reply;
    }
    if (target == "/cart") {
      auto it = store.carts.find(sid);
      if (it == store.carts.end()) return Reply{200, "items: "};
      std::string items;
      for (const std::string& item : it->second) items += (items.empty() ? "" : ",") + item;
      return Reply{200, "items: " + items};
    }
    return Reply{404, "not found"};
  };
}

CheckRequest Req(std::string method, std::string path, std::string expect_body = "") {
  CheckRequest request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.expect_body = std::move(expect_body);
  return request;
}

CheckConfig SessionCheck() {
  CheckConfig check;
  check.kind = CheckConfig::Kind::kSession;
  check.timeout = 10s;
  check.retries = 0;
  check.retry_interval = 10ms;
  check.on_live = {Req("POST", "/cart/add?item=gadget"), Req("POST", "/cart/add?item=widget")};
  check.on_idle = {Req("GET", "/cart", "gadget,widget")};
  return check;
}

TEST(SessionCheckTest, PassesWhenBothReleasesShareTheSessionStore) {
  CartStore shared;
  std::mutex mu;
  std::vector<std::string> preview_cookies;
  auto shop = Shop(shared);
  TestServer live(shop);
  TestServer preview([&](const Request& request) {
    {
      std::lock_guard lock(mu);
      auto it = request.find(http::field::cookie);
      preview_cookies.emplace_back(it == request.end() ? "" : std::string(it->value()));
    }
    return shop(request);
  });
  CheckContext ctx = Context(preview.address(), live.address());
  ctx.preview_token = "s3cret";
  CheckResult result = RunToEnd(SessionCheck(), ctx);
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.name, "session");
  EXPECT_EQ(live.requests(), 2);
  std::lock_guard lock(mu);
  EXPECT_EQ(preview_cookies, std::vector<std::string>{"sid=s1; theme=dark"});
}

TEST(SessionCheckTest, FailsWithAnExplanationWhenSessionsStayInOneRelease) {
  CartStore live_memory;
  CartStore preview_memory;
  TestServer live(Shop(live_memory));
  TestServer preview(Shop(preview_memory));
  CheckResult result = RunToEnd(SessionCheck(), Context(preview.address(), live.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "state created on the live release is not visible on the new one: GET /cart: "
            "expected body to contain \"gadget,widget\", got \"items: \"; the app probably keeps "
            "sessions in its own memory — keep them in a store both releases share (a database, "
            "Redis, files)");
}

TEST(SessionCheckTest, AFailureOnTheLiveReleaseSaysSo) {
  CartStore store;
  TestServer live([](const Request&) { return Reply{500, "database is down"}; });
  TestServer preview(Shop(store));
  CheckResult result = RunToEnd(SessionCheck(), Context(preview.address(), live.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "the live release itself failed the request: POST /cart/add?item=gadget: expected "
            "status 2xx or 3xx, got 500 (body: \"database is down\")");
  EXPECT_EQ(preview.requests(), 0);
}

TEST(SessionCheckTest, RetriesStartAFreshSession) {
  CartStore shared;
  std::atomic<int> cart_reads{0};
  auto shop = Shop(shared);
  TestServer live(shop);
  TestServer preview([&](const Request& request) {
    // The first read comes too early, as if replication lagged.
    if (++cart_reads == 1) return Reply{503, "warming up"};
    return shop(request);
  });
  CheckConfig check = SessionCheck();
  check.retries = 1;
  CheckResult result = RunToEnd(check, Context(preview.address(), live.address()));
  EXPECT_TRUE(result.passed) << result.message;
  EXPECT_EQ(result.attempts, 2);
  // The second attempt made its own session: the first cart was not reused.
  std::lock_guard lock(shared.mu);
  EXPECT_EQ(shared.carts.size(), 2u);
}

TEST(SessionCheckTest, TimeoutNamesTheRequestInFlight) {
  CartStore store;
  TestServer live(Shop(store));
  TestServer preview([](const Request&) {
    Reply reply;
    reply.hang = true;
    return reply;
  });
  CheckConfig check = SessionCheck();
  check.timeout = 500ms;
  CheckResult result = RunToEnd(check, Context(preview.address(), live.address()));
  EXPECT_FALSE(result.passed);
  EXPECT_EQ(result.message,
            "the new release failed the request: GET /cart: no complete answer within 500ms");
}

}  // namespace
}  // namespace cutover
