// Tests of the test support library and of cutover-testapp, which the
// integration tests, the demo and the benchmarks stand on.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/child_process.h"
#include "support/load_generator.h"
#include "support/net.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace cutover::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kTestApp = CUTOVER_TESTAPP;
constexpr const char* kLocal = "127.0.0.1";

TempDir MakeTempDir() {
  auto dir = TempDir::Create();
  if (!dir) {
    ADD_FAILURE() << dir.error().message;
    std::abort();
  }
  return std::move(*dir);
}

// True when `pid` no longer runs (gone, or a zombie waiting for its parent).
bool ProcessGone(pid_t pid) {
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

// ---------------------------------------------------------------- TempDir

TEST(TempDir, CreatesADirectoryAndRemovesItWithItsContents) {
  std::filesystem::path where;
  {
    TempDir dir = MakeTempDir();
    where = dir.path();
    ASSERT_TRUE(std::filesystem::is_directory(where));
    std::filesystem::create_directories(where / "a" / "b");
    ASSERT_TRUE(WriteFile(where / "a" / "b" / "f.txt", "hello").has_value());
    EXPECT_EQ(ReadFile(dir.File("a/b/f.txt")).value_or(""), "hello");
  }
  EXPECT_FALSE(std::filesystem::exists(where));
}

TEST(TempDir, MovingTransfersOwnership) {
  TempDir a = MakeTempDir();
  std::filesystem::path where = a.path();
  {
    TempDir b = std::move(a);
    EXPECT_EQ(b.path(), where);
    EXPECT_TRUE(a.path().empty());
    EXPECT_TRUE(std::filesystem::exists(where));
  }
  EXPECT_FALSE(std::filesystem::exists(where));
}

TEST(TempDir, TwoDirectoriesAreDistinct) {
  TempDir a = MakeTempDir();
  TempDir b = MakeTempDir();
  EXPECT_NE(a.path(), b.path());
}

// ---------------------------------------------------------------- ChildProcess

Result<ChildProcess> Shell(const std::string& script, ChildOptions options = {}) {
  options.argv = {"/bin/sh", "-c", script};
  return ChildProcess::Spawn(options);
}

TEST(ChildProcess, ReportsTheExitCode) {
  auto child = Shell("exit 3");
  ASSERT_TRUE(child.has_value()) << child.error().message;
  auto status = child->Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(3)) << status->ToString();
  EXPECT_FALSE(child->Running());
}

TEST(ChildProcess, PassesEnvironmentAndWorkingDirectoryAndCapturesOutput) {
  TempDir dir = MakeTempDir();
  ChildOptions options;
  options.env = {{"GREETING", "hello"}, {"HOME", "/nowhere"}};
  options.working_dir = dir.path();
  options.output_file = dir.File("out.log");
  auto child = Shell("echo \"$GREETING $HOME\"; pwd -P; echo oops >&2", options);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  auto status = child->Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(0));
  std::string want =
      "hello /nowhere\n" + std::filesystem::canonical(dir.path()).string() + "\noops\n";
  EXPECT_EQ(child->Output(), want);
}

TEST(ChildProcess, UnsetsEnvironmentVariables) {
  TempDir dir = MakeTempDir();
  ::setenv("CUTOVER_TEST_INHERITED", "yes", 1);
  ChildOptions options;
  options.env = {{"KEEP_ME", "1"}};
  options.unset_env = {"CUTOVER_TEST_INHERITED"};
  options.output_file = dir.File("out.log");
  options.argv = {"/bin/sh", "-c", "echo \"[${CUTOVER_TEST_INHERITED-unset}] [$KEEP_ME]\""};
  auto child = ChildProcess::Spawn(options);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  ASSERT_TRUE(child->Wait(DeadlineIn(seconds(10))).has_value());
  EXPECT_EQ(child->Output(), "[unset] [1]\n");

  options.unset_env.clear();
  options.output_file = dir.File("inherited.log");
  child = ChildProcess::Spawn(options);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  ASSERT_TRUE(child->Wait(DeadlineIn(seconds(10))).has_value());
  EXPECT_EQ(child->Output(), "[yes] [1]\n");
  ::unsetenv("CUTOVER_TEST_INHERITED");
}

TEST(ChildProcess, WaitTimesOutWhileRunningAndKillEndsIt) {
  auto child = Shell("sleep 30");
  ASSERT_TRUE(child.has_value()) << child.error().message;
  EXPECT_FALSE(child->Wait(DeadlineIn(milliseconds(100))).has_value());
  EXPECT_TRUE(child->Running());
  auto rss = child->RssKiB();
  ASSERT_TRUE(rss.has_value()) << rss.error().message;
  EXPECT_GT(*rss, 0u);
  child->Kill();
  ASSERT_TRUE(child->exit_status().has_value());
  EXPECT_TRUE(child->exit_status()->Signaled(SIGKILL)) << child->exit_status()->ToString();
  EXPECT_FALSE(child->Running());
  EXPECT_FALSE(child->RssKiB().has_value());
}

TEST(ChildProcess, SignalReachesTheChild) {
  TempDir dir = MakeTempDir();
  ChildOptions options;
  options.output_file = dir.File("out.log");
  auto child = Shell("trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done", options);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  ASSERT_TRUE(WaitUntil([&] { return child->Output() == "ready\n"; }, DeadlineIn(seconds(10))));
  ASSERT_TRUE(child->Signal(SIGTERM).has_value());
  auto status = child->Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(7)) << status->ToString();
}

TEST(ChildProcess, RunsInItsOwnGroupAndDestructionKillsTheGroup) {
  TempDir dir = MakeTempDir();
  std::string pid_file = dir.File("grandchild.pid");
  pid_t grandchild = 0;
  {
    auto child = Shell("sleep 30 & echo $! > " + pid_file + ".tmp && mv " + pid_file + ".tmp " +
                       pid_file + "; wait");
    ASSERT_TRUE(child.has_value()) << child.error().message;
    EXPECT_EQ(::getpgid(child->pid()), child->pid());
    EXPECT_NE(::getpgid(child->pid()), ::getpgrp());
    auto text = WaitForFile(pid_file, DeadlineIn(seconds(10)));
    ASSERT_TRUE(text.has_value());
    grandchild = std::stoi(*text);
    EXPECT_EQ(::getpgid(grandchild), child->pid());
    EXPECT_FALSE(ProcessGone(grandchild));
  }
  EXPECT_TRUE(WaitUntil([&] { return ProcessGone(grandchild); }, DeadlineIn(seconds(10))));
}

TEST(ChildProcess, SpawningAMissingProgramFails) {
  ChildOptions options;
  options.argv = {"/nonexistent/program"};
  auto child = ChildProcess::Spawn(options);
  ASSERT_FALSE(child.has_value());
  EXPECT_NE(child.error().message.find("/nonexistent/program"), std::string::npos);
}

// ---------------------------------------------------------------- net helpers

TEST(Net, FreePortIsNotListenedOn) {
  auto port = FreePort();
  ASSERT_TRUE(port.has_value()) << port.error().message;
  EXPECT_GT(*port, 0);
  EXPECT_FALSE(WaitForPort(kLocal, *port, DeadlineIn(milliseconds(100))));
  EXPECT_FALSE(RawConn::Connect(kLocal, *port).has_value());
}

TEST(Net, FreePortsAreAllDifferent) {
  auto ports = FreePorts(64);
  ASSERT_TRUE(ports.has_value()) << ports.error().message;
  ASSERT_EQ(ports->size(), 64u);
  std::set<uint16_t> distinct(ports->begin(), ports->end());
  EXPECT_EQ(distinct.size(), 64u);
}

TEST(Net, WaitForFileTimesOutOnAMissingFile) {
  TempDir dir = MakeTempDir();
  EXPECT_FALSE(WaitForFile(dir.File("none"), DeadlineIn(milliseconds(50))).has_value());
  ASSERT_TRUE(WriteFile(dir.File("port"), "not a port\n").has_value());
  EXPECT_FALSE(WaitForPortFile(dir.File("port"), DeadlineIn(milliseconds(50))).has_value());
}

TEST(Wait, WaitUntilReturnsWhenTheConditionHolds) {
  int calls = 0;
  EXPECT_TRUE(WaitUntil([&] { return ++calls == 3; }, DeadlineIn(seconds(10)), milliseconds(1)));
  EXPECT_EQ(calls, 3);
  EXPECT_FALSE(WaitUntil([] { return false; }, DeadlineIn(milliseconds(20))));
}

// ---------------------------------------------------------------- cutover-testapp

struct RunningApp {
  ChildProcess process;
  uint16_t port = 0;
};

// Starts cutover-testapp on a free port (via --port 0 and a port file).
std::optional<RunningApp> Launch(const TempDir& dir, const std::string& tag,
                                 std::vector<std::string> args,
                                 std::vector<std::pair<std::string, std::string>> env = {}) {
  std::string port_file = dir.File(tag + ".port");
  ChildOptions options;
  options.argv = {kTestApp, "--port", "0", "--port-file", port_file};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = std::move(env);
  options.unset_env = {"PORT", "CUTOVER_COLOR"};
  options.output_file = dir.File(tag + ".log");
  auto process = ChildProcess::Spawn(options);
  if (!process) {
    ADD_FAILURE() << process.error().message;
    return std::nullopt;
  }
  auto port = WaitForPortFile(port_file, DeadlineIn(seconds(20)));
  if (!port) {
    ADD_FAILURE() << "no port file from cutover-testapp; output:\n" << process->Output();
    return std::nullopt;
  }
  return RunningApp{std::move(*process), *port};
}

class TestApp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto app = Launch(dir_, "blue", {"--name", "blue"});
    ASSERT_TRUE(app.has_value());
    app_.emplace(std::move(*app));
  }
  uint16_t port() const { return app_->port; }
  Result<RawResponse> Get(std::string_view target, const HeaderList& headers = {}) {
    return HttpGet(kLocal, port(), target, "localhost", headers);
  }
  Result<RawResponse> Post(std::string_view target, const HeaderList& headers = {},
                           std::string_view body = {}) {
    return HttpRequest(kLocal, port(), "POST", target, "localhost", headers, body);
  }
  int StatsRequests() {
    auto res = Get("/__stats");
    if (!res) return -1;
    size_t at = res->body.find("\"requests\": ");
    if (at == std::string::npos) return -1;
    return std::stoi(res->body.substr(at + 12));
  }

  TempDir dir_ = MakeTempDir();
  std::optional<RunningApp> app_;
};

TEST_F(TestApp, AnswersWithItsName) {
  auto res = Get("/");
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue");
  EXPECT_EQ(res->Header("x-served-by").value_or(""), "blue");
  EXPECT_EQ(res->Header("Content-Length").value_or(""), "4");
}

TEST_F(TestApp, LogsOneLinePerRequest) {
  ASSERT_TRUE(Get("/status?code=201").has_value());
  EXPECT_TRUE(WaitUntil(
      [&] { return app_->process.Output().find("GET /status?code=201\n") != std::string::npos; },
      DeadlineIn(seconds(10))))
      << app_->process.Output();
}

TEST(TestAppFlags, NameAndPortComeFromTheEnvironment) {
  TempDir dir = MakeTempDir();
  auto port = FreePort();
  ASSERT_TRUE(port.has_value());
  ChildOptions options;
  options.argv = {kTestApp};
  options.env = {{"PORT", std::to_string(*port)}, {"CUTOVER_COLOR", "green"}};
  options.output_file = dir.File("app.log");
  auto child = ChildProcess::Spawn(options);
  ASSERT_TRUE(child.has_value()) << child.error().message;
  ASSERT_TRUE(WaitForPort(kLocal, *port, DeadlineIn(seconds(20)))) << child->Output();
  auto res = HttpGet(kLocal, *port, "/");
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->body, "green");
}

TEST(TestAppFlags, UnknownFlagIsAUsageError) {
  ChildOptions options;
  options.argv = {kTestApp, "--bogus"};
  auto child = ChildProcess::Spawn(options);
  ASSERT_TRUE(child.has_value());
  auto status = child->Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(2)) << status->ToString();
}

TEST_F(TestApp, KeepsConnectionsAliveAndAnswersPipelinedRequests) {
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value()) << conn.error().message;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")).has_value());
    auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
    ASSERT_TRUE(res.has_value()) << res.error().message;
    EXPECT_EQ(res->body, "blue");
    EXPECT_TRUE(res->KeepAlive());
  }
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/status?code=202", "localhost") +
                         BuildRequest("GET", "/nope", "localhost"))
                  .has_value());
  auto first = conn->ReadResponse(DeadlineIn(seconds(10)));
  auto second = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->status, 202);
  EXPECT_EQ(second->status, 404);

  ASSERT_TRUE(
      conn->Send(BuildRequest("GET", "/", "localhost", {{"Connection", "close"}})).has_value());
  auto last = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(last.has_value());
  EXPECT_FALSE(last->KeepAlive());
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(10))));
}

TEST_F(TestApp, HealthCanBeToggled) {
  EXPECT_EQ(Get("/healthz")->status, 200);
  EXPECT_EQ(Get("/healthz")->body, "ok");
  EXPECT_EQ(Post("/admin/health?ok=0")->status, 200);
  EXPECT_EQ(Get("/healthz")->status, 503);
  EXPECT_EQ(Get("/")->status, 200);
  EXPECT_EQ(Post("/admin/health?ok=1")->status, 200);
  EXPECT_EQ(Get("/healthz")->status, 200);
  EXPECT_EQ(Post("/admin/health?ok=maybe")->status, 400);
}

TEST(TestAppFlags, StartsUnhealthyWhenAsked) {
  TempDir dir = MakeTempDir();
  auto app = Launch(dir, "sick", {"--unhealthy"});
  ASSERT_TRUE(app.has_value());
  auto res = HttpGet(kLocal, app->port, "/healthz");
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(HttpGet(kLocal, app->port, "/")->body, "testapp");
}

TEST_F(TestApp, SlowRequestsDoNotBlockOthers) {
  auto slow = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(slow.has_value());
  auto sent = Clock::now();
  ASSERT_TRUE(slow->Send(BuildRequest("GET", "/slow?ms=1500", "localhost")).has_value());
  auto quick = Get("/");
  ASSERT_TRUE(quick.has_value());
  EXPECT_EQ(quick->body, "blue");
  EXPECT_LT(Clock::now() - sent, milliseconds(1500));
  auto res = slow->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_GE(Clock::now() - sent, milliseconds(1500));
  EXPECT_EQ(res->body, "blue");
}

TEST_F(TestApp, ServesManyConcurrentConnections) {
  constexpr int kConns = 200;
  std::vector<RawConn> conns;
  auto start = Clock::now();
  for (int i = 0; i < kConns; ++i) {
    auto c = RawConn::Connect(kLocal, port());
    ASSERT_TRUE(c.has_value()) << i << ": " << c.error().message;
    ASSERT_TRUE(c->Send(BuildRequest("GET", "/slow?ms=500", "localhost")).has_value());
    conns.push_back(std::move(*c));
  }
  for (auto& c : conns) {
    auto res = c.ReadResponse(DeadlineIn(seconds(20)));
    ASSERT_TRUE(res.has_value()) << res.error().message;
    EXPECT_EQ(res->body, "blue");
  }
  // Served one after another, this would take 100 s.
  EXPECT_LT(Clock::now() - start, seconds(10));
}

TEST_F(TestApp, AnswersWithTheRequestedStatus) {
  auto res = Get("/status?code=503");
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "blue");
  res = Get("/status?code=204");
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->status, 204);
  EXPECT_EQ(res->body, "");
  EXPECT_EQ(Get("/status?code=99")->status, 400);
  EXPECT_EQ(Get("/status")->status, 400);
  EXPECT_EQ(Get("/no/such/path")->status, 404);
  EXPECT_EQ(Post("/")->status, 405);
}

TEST_F(TestApp, EchoesTheRequestHead) {
  auto res = HttpGet(kLocal, port(), "/headers?x=1", "shop.example.com",
                     {{"X-Request-Id", "abc123"}, {"x-forwarded-for", "10.0.0.1"}});
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body,
            "GET /headers?x=1 HTTP/1.1\n"
            "Host: shop.example.com\n"
            "X-Request-Id: abc123\n"
            "x-forwarded-for: 10.0.0.1\n"
            "Connection: close\n");
}

TEST_F(TestApp, StreamsDownloadsWithLengthOrChunked) {
  constexpr uint64_t kBytes = 1024 * 1024 + 3;
  auto res = Get("/download?bytes=" + std::to_string(kBytes));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->Header("Content-Length").value_or(""), std::to_string(kBytes));
  EXPECT_FALSE(res->chunked);
  EXPECT_EQ(res->body, std::string(kBytes, 'x'));

  res = Get("/download?bytes=" + std::to_string(kBytes) + "&chunked=1");
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_TRUE(res->chunked);
  EXPECT_FALSE(res->Has("Content-Length"));
  EXPECT_EQ(res->body, std::string(kBytes, 'x'));

  res = Get("/download?bytes=0&chunked=1");
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->body, "");
}

TEST_F(TestApp, LargeDownloadIsNotHeldInMemory) {
  constexpr uint64_t kBytes = 256ull * 1024 * 1024;
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(
      conn->Send(BuildRequest("GET", "/download?bytes=" + std::to_string(kBytes), "localhost"))
          .has_value());
  auto res = conn->ReadResponse(DeadlineIn(seconds(60)), ReadOptions{.discard_body = true});
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->body_bytes, kBytes);
  auto rss = app_->process.RssKiB();
  ASSERT_TRUE(rss.has_value());
  EXPECT_LT(*rss, 64u * 1024) << "testapp RSS after a 256 MiB download: " << *rss << " KiB";
}

TEST_F(TestApp, ConsumesUploadsWithLengthOrChunked) {
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value());
  std::string body(3 * 1024 * 1024, 'u');
  ASSERT_TRUE(conn->Send(BuildRequest("POST", "/upload", "localhost", {}, body)).has_value());
  auto res = conn->ReadResponse(DeadlineIn(seconds(20)));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->body, "blue 3145728");

  std::string chunked =
      BuildRequest("PUT", "/upload", "localhost", {{"Transfer-Encoding", "chunked"}});
  uint64_t total = 0;
  for (size_t size : {1, 100, 70000, 5}) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "%zx\r\n", size);
    chunked += hex + std::string(size, 'c') + "\r\n";
    total += size;
  }
  chunked += "0\r\nX-Trailer: yes\r\n\r\n";
  ASSERT_TRUE(conn->Send(chunked).has_value());
  res = conn->ReadResponse(DeadlineIn(seconds(20)));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->body, "blue " + std::to_string(total));

  // The connection is still in step after both bodies.
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")).has_value());
  res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body, "blue");
}

TEST_F(TestApp, AnswersExpectContinue) {
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(conn->Send(BuildRequest("POST", "/upload", "localhost",
                                      {{"Content-Length", "5"}, {"Expect", "100-continue"}}))
                  .has_value());
  auto interim = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(interim.has_value()) << interim.error().message;
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(conn->Send("hello").has_value());
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->body, "blue 5");
}

TEST_F(TestApp, EchoesWebSocketMessages) {
  auto ws = WsClient::Connect(kLocal, port(), "/ws");
  ASSERT_TRUE(ws.has_value()) << ws.error().message;
  EXPECT_EQ(ws->HandshakeHeader("X-Served-By").value_or(""), "blue");
  for (std::string msg : {"hello", "second message"}) {
    ASSERT_TRUE(ws->Send(msg).has_value());
    auto echo = ws->Read();
    ASSERT_TRUE(echo.has_value()) << echo.error().message;
    EXPECT_EQ(*echo, "blue:" + msg);
  }
  EXPECT_TRUE(ws->Close().has_value());
  EXPECT_EQ(Get("/ws")->status, 400);
}

TEST_F(TestApp, WebSocketToAMissingRouteFails) {
  auto ws = WsClient::Connect(kLocal, port(), "/nope");
  ASSERT_FALSE(ws.has_value());
  EXPECT_NE(ws.error().message.find("404"), std::string::npos) << ws.error().message;
}

TEST_F(TestApp, DieCutsTheResponseShortAndExits) {
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/die", "localhost")).has_value());
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_FALSE(res.has_value());
  EXPECT_NE(res.error().message.find("closed in the response body"), std::string::npos)
      << res.error().message;
  auto status = app_->process.Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(1)) << status->ToString();
}

TEST_F(TestApp, StatsCountRequestsButNotHealthOrStats) {
  EXPECT_EQ(StatsRequests(), 0);
  ASSERT_TRUE(Get("/").has_value());
  ASSERT_TRUE(Get("/healthz").has_value());
  ASSERT_TRUE(Get("/missing").has_value());
  EXPECT_EQ(StatsRequests(), 2);
  EXPECT_EQ(StatsRequests(), 2);
  EXPECT_EQ(Get("/__stats")->Header("Content-Type").value_or(""), "application/json");
}

TEST_F(TestApp, MalformedRequestsAreCountedAndRejected) {
  auto conn = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(conn.has_value());
  ASSERT_TRUE(conn->Send("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").has_value());
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(10))));
  auto stats = Get("/__stats");
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->body, "{\"requests\": 1, \"bad_requests\": 1}");
}

// Adds `item` to the cart of `cookie` (a "sid=..." string, empty for none) and
// returns the cookie to use next.
std::string AddToCart(uint16_t port, const std::string& cookie, const std::string& item) {
  HeaderList headers;
  if (!cookie.empty()) headers.emplace_back("Cookie", cookie);
  auto res = HttpRequest(kLocal, port, "POST", "/cart/add?item=" + item, "localhost", headers);
  EXPECT_TRUE(res.has_value());
  if (!res) return cookie;
  EXPECT_EQ(res->status, 200) << res->body;
  auto set = res->Header("Set-Cookie");
  if (!set) return cookie;
  return set->substr(0, set->find(';'));
}

std::string Cart(uint16_t port, const std::string& cookie) {
  auto res = HttpGet(kLocal, port, "/cart", "localhost", {{"Cookie", "theme=dark; " + cookie}});
  EXPECT_TRUE(res.has_value());
  return res ? res->body : "<error>";
}

TEST(TestAppSessions, MemorySessionsStayInOneInstance) {
  TempDir dir = MakeTempDir();
  auto blue = Launch(dir, "blue", {"--name", "blue", "--sessions", "memory"});
  auto green = Launch(dir, "green", {"--name", "green"});
  ASSERT_TRUE(blue && green);
  std::string cookie = AddToCart(blue->port, "", "apple");
  ASSERT_TRUE(cookie.starts_with("sid=")) << cookie;
  EXPECT_EQ(AddToCart(blue->port, cookie, "pear"), cookie);
  EXPECT_EQ(Cart(blue->port, cookie), "apple,pear");
  EXPECT_EQ(Cart(green->port, cookie), "");

  std::string other = AddToCart(blue->port, "", "plum");
  EXPECT_NE(other, cookie);
  EXPECT_EQ(Cart(blue->port, other), "plum");
  EXPECT_EQ(HttpRequest(kLocal, blue->port, "POST", "/cart/add?item=a%20b", "localhost")->status,
            400);
}

TEST(TestAppSessions, FileSessionsAreSharedBetweenInstances) {
  TempDir dir = MakeTempDir();
  std::string sessions = "file:" + dir.File("sessions.txt");
  auto blue = Launch(dir, "blue", {"--name", "blue", "--sessions", sessions});
  auto green = Launch(dir, "green", {"--name", "green", "--sessions", sessions});
  ASSERT_TRUE(blue && green);
  std::string cookie = AddToCart(blue->port, "", "gadget");
  ASSERT_TRUE(cookie.starts_with("sid=")) << cookie;
  EXPECT_EQ(Cart(green->port, cookie), "gadget");
  AddToCart(green->port, cookie, "widget");
  EXPECT_EQ(Cart(blue->port, cookie), "gadget,widget");
  EXPECT_EQ(Cart(blue->port, "sid=unknown"), "");
}

TEST_F(TestApp, SigtermFinishesRequestsInFlightAndExitsZero) {
  auto idle = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(idle.has_value());
  ASSERT_TRUE(idle->Send(BuildRequest("GET", "/", "localhost")).has_value());
  ASSERT_TRUE(idle->ReadResponse(DeadlineIn(seconds(10))).has_value());

  auto busy = RawConn::Connect(kLocal, port());
  ASSERT_TRUE(busy.has_value());
  ASSERT_TRUE(busy->Send(BuildRequest("GET", "/slow?ms=1000", "localhost")).has_value());
  ASSERT_TRUE(
      WaitUntil([&] { return app_->process.Output().find("GET /slow") != std::string::npos; },
                DeadlineIn(seconds(10))));

  ASSERT_TRUE(app_->process.Signal(SIGTERM).has_value());
  EXPECT_TRUE(idle->ClosedByPeer(DeadlineIn(seconds(10))));
  EXPECT_TRUE(WaitUntil([&] { return !RawConn::Connect(kLocal, port()).has_value(); },
                        DeadlineIn(seconds(10))));
  auto res = busy->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res.has_value()) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue");
  EXPECT_FALSE(res->KeepAlive());
  auto status = app_->process.Wait(DeadlineIn(seconds(10)));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->Exited(0)) << status->ToString();
}

// ---------------------------------------------------------------- LoadGenerator

TEST_F(TestApp, LoadGeneratorCountsBodiesWithoutErrors) {
  auto load = LoadGenerator::Start({.port = port(), .connections = 64, .keep_samples = true});
  ASSERT_TRUE(load->WaitForCompleted(500, DeadlineIn(seconds(30))));
  LoadSummary sum = load->Stop();
  EXPECT_GE(sum.total, 500u);
  EXPECT_EQ(sum.responses, sum.total);
  EXPECT_EQ(sum.by_body["blue"], sum.total) << sum.ToString();
  EXPECT_EQ(sum.by_status[200], sum.total);
  EXPECT_EQ(sum.non_2xx, 0u);
  EXPECT_EQ(sum.errors, 0u) << sum.ToString();
  EXPECT_EQ(sum.connections_opened, 64u);
  ASSERT_EQ(sum.samples.size(), sum.total);
  EXPECT_TRUE(std::is_sorted(sum.samples.begin(), sum.samples.end(),
                             [](const auto& a, const auto& b) { return a.sent < b.sent; }));
  // Stopping again changes nothing.
  EXPECT_EQ(load->Stop().total, sum.total);
}

TEST_F(TestApp, LoadGeneratorReconnectsWhenTheServerCloses) {
  auto load = LoadGenerator::Start(
      {.port = port(), .headers = {{"Connection", "close"}}, .connections = 4});
  ASSERT_TRUE(load->WaitForCompleted(200, DeadlineIn(seconds(30))));
  LoadSummary sum = load->Stop();
  EXPECT_EQ(sum.errors, 0u) << sum.ToString();
  EXPECT_EQ(sum.by_body["blue"], sum.total);
  EXPECT_EQ(sum.connections_opened, sum.total);
}

TEST_F(TestApp, LoadGeneratorCountsNon2xx) {
  auto load =
      LoadGenerator::Start({.port = port(), .target = "/status?code=503", .connections = 2});
  ASSERT_TRUE(load->WaitForCompleted(50, DeadlineIn(seconds(30))));
  LoadSummary sum = load->Stop();
  EXPECT_EQ(sum.non_2xx, sum.total);
  EXPECT_EQ(sum.by_status[503], sum.total);
  EXPECT_EQ(sum.errors, 0u);
  ASSERT_FALSE(sum.first_errors.empty());
  EXPECT_EQ(sum.first_errors[0], "status 503: blue");
}

TEST_F(TestApp, LoadGeneratorCountsErrorsWhenTheServerGoesAway) {
  auto load = LoadGenerator::Start({.port = port(), .connections = 4});
  ASSERT_TRUE(load->WaitForCompleted(100, DeadlineIn(seconds(30))));
  app_->process.Kill();
  ASSERT_TRUE(
      WaitUntil([&] { return load->Snapshot().connect_errors > 0; }, DeadlineIn(seconds(10))));
  LoadSummary sum = load->Stop();
  EXPECT_GT(sum.errors, 0u);
  EXPECT_GT(sum.connect_errors, 0u);
  EXPECT_EQ(sum.total, sum.responses + sum.errors);
  EXPECT_FALSE(sum.first_errors.empty());
}

}  // namespace
}  // namespace cutover::test
