// The switch, as a user sees it: live traffic moves from one color to the
// other without a failed request, requests and tunnels already open on the old
// color finish there (tunnels until the drain timeout), the live color
// survives a crash of the daemon, and a color without a healthy target is only
// made live on purpose.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "harness.h"
#include "support/load_generator.h"
#include "support/raw_http.h"
#include "support/wait.h"
#include "support/ws_client.h"

namespace cutover::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The service object of `service` from the control API; null on any failure.
nlohmann::json ServiceJson(const Daemon& daemon, const std::string& service) {
  auto r = daemon.Api("GET", "/v1/services/" + service);
  if (!r || r->status != 200) return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

// Requests in flight to the targets of `color`, as the control API reports.
int64_t InFlight(const Daemon& daemon, const std::string& color) {
  nlohmann::json j = ServiceJson(daemon, "web");
  if (!j.is_object()) return -1;
  int64_t sum = 0;
  for (const auto& t : j["colors"][color]["targets"]) sum += t["in_flight"].get<int64_t>();
  return sum;
}

// Blue and green backends behind one daemon serving the service "web" on
// Host: localhost, blue live. Members are declared so that the daemon goes
// first and the folder last.
class Switch : public ::testing::Test {
 protected:
  void StartAll(std::string_view drain_timeout = "1s") {
    TwoColorStack s;
    Status started = StartTwoColors(
        "cutover-switch",
        [&](const Backend& b, const Backend& g) { return TwoColorConfig(b, g, "", drain_timeout); },
        s);
    ASSERT_TRUE(started) << started.error().message;
    dir_ = std::move(s.dir);
    blue_ = std::move(s.blue);
    green_ = std::move(s.green);
    daemon_ = std::move(s.daemon);
  }

  // One GET / on a fresh connection; the body names the color that answered.
  std::string Get(std::string_view target = "/") {
    auto r = HttpGet("127.0.0.1", daemon_->port(), target);
    if (!r) return "error: " + r.error().message;
    if (r->status != 200) return "status " + std::to_string(r->status) + ": " + r->body;
    return r->body;
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<Backend> blue_;
  std::unique_ptr<Backend> green_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(Switch, ManySwitchesUnderLoadLoseNoRequest) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  LoadOptions options;
  options.port = daemon_->port();
  options.connections = 64;
  auto load = LoadGenerator::Start(options);
  ASSERT_TRUE(load->WaitForCompleted(500, DeadlineIn(seconds(10)))) << load->Snapshot().ToString();

  constexpr int kSwitches = 200;
  for (int i = 0; i < kSwitches; ++i) {
    const std::string to = i % 2 == 0 ? "green" : "blue";
    Status s = daemon_->Switch("web", to);
    ASSERT_TRUE(s) << "switch " << i << " to " << to << ": " << s.error().message;
    // Let traffic through on each color before flipping again: more than
    // the requests that were already in flight on the old one.
    const uint64_t before = load->Completed();
    ASSERT_TRUE(load->WaitForCompleted(before + 2 * options.connections, DeadlineIn(seconds(5))))
        << "traffic stalled after switch " << i << ": " << load->Snapshot().ToString();
  }
  LoadSummary summary = load->Stop();

  EXPECT_EQ(summary.errors, 0u) << summary.ToString();
  EXPECT_EQ(summary.non_2xx, 0u) << summary.ToString();
  EXPECT_EQ(summary.by_body.size(), 2u) << summary.ToString();
  // Each color was live half the time: each must have answered a good share.
  EXPECT_GE(summary.by_body["blue"], summary.responses / 10) << summary.ToString();
  EXPECT_GE(summary.by_body["green"], summary.responses / 10) << summary.ToString();
  EXPECT_EQ(ServiceJson(*daemon_, "web")["live"], "blue");
}

TEST_F(Switch, OneKeepAliveConnectionMovesWithTheNextRequest) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  auto conn = RawConn::Connect("127.0.0.1", daemon_->port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto first = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->body, "blue");

  ASSERT_TRUE(daemon_->Switch("web", "green"));
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto second = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->body, "green");
}

TEST_F(Switch, RequestInFlightFinishesOnTheOldColor) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  auto slow = RawConn::Connect("127.0.0.1", daemon_->port());
  ASSERT_TRUE(slow) << slow.error().message;
  ASSERT_TRUE(slow->Send(BuildRequest("GET", "/slow?ms=2000", "localhost")));
  ASSERT_TRUE(WaitUntil([&] { return InFlight(*daemon_, "blue") == 1; }, DeadlineIn(seconds(5))))
      << "the slow request never reached blue";

  Status s = daemon_->Switch("web", "green");
  ASSERT_TRUE(s) << s.error().message;
  // The switch does not wait for the old color's requests.
  EXPECT_EQ(Get(), "green");
  EXPECT_EQ(slow->bytes_received(), 0u) << "the slow request ended before the switch was done";

  auto res = slow->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue");
  EXPECT_EQ(Get(), "green");
  EXPECT_TRUE(WaitUntil([&] { return InFlight(*daemon_, "blue") == 0; }, DeadlineIn(seconds(5))))
      << "blue still reports a request in flight";
}

TEST_F(Switch, WebSocketStaysOnItsColorUntilTheDrainTimeout) {
  ASSERT_NO_FATAL_FAILURE(StartAll("1s"));
  auto ws = WsClient::Connect("127.0.0.1", daemon_->port(), "/ws");
  ASSERT_TRUE(ws) << ws.error().message;
  EXPECT_EQ(ws->HandshakeHeader("X-Served-By").value_or(""), "blue");
  ASSERT_TRUE(ws->Send("before"));
  auto echo = ws->Read(DeadlineIn(seconds(5)));
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(*echo, "blue:before");

  Status s = daemon_->Switch("web", "green");
  ASSERT_TRUE(s) << s.error().message;
  const auto switched = Clock::now();
  // The tunnel is not cut at the switch: it drains.
  ASSERT_TRUE(ws->Send("after"));
  echo = ws->Read(DeadlineIn(seconds(5)));
  ASSERT_TRUE(echo) << "tunnel closed right after the switch: " << echo.error().message;
  EXPECT_EQ(*echo, "blue:after");

  // ... and closed by the proxy once the service's drain timeout has passed.
  auto end = ws->Read(DeadlineIn(seconds(10)));
  const auto closed_after = Clock::now() - switched;
  ASSERT_FALSE(end) << "unexpected message " << *end;
  EXPECT_FALSE(end.error().code == ErrorCode::kTimeout)
      << "tunnel still open 10s after the switch (drain_timeout 1s)";
  EXPECT_GE(closed_after, milliseconds(500)) << "closed well before the drain timeout";

  // New tunnels go to the new color.
  auto fresh = WsClient::Connect("127.0.0.1", daemon_->port(), "/ws");
  ASSERT_TRUE(fresh) << fresh.error().message;
  ASSERT_TRUE(fresh->Send("x"));
  echo = fresh->Read(DeadlineIn(seconds(5)));
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(*echo, "green:x");
}

// Switching away and straight back (a quick rollback) leaves the tunnels of
// the color that is live again alone: the drain only concerns a color that
// no longer takes traffic.
TEST_F(Switch, WebSocketOnAColorThatIsLiveAgainIsNotDrained) {
  ASSERT_NO_FATAL_FAILURE(StartAll("1s"));
  auto ws = WsClient::Connect("127.0.0.1", daemon_->port(), "/ws");
  ASSERT_TRUE(ws) << ws.error().message;
  ASSERT_TRUE(ws->Send("one"));
  auto echo = ws->Read(DeadlineIn(seconds(5)));
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(*echo, "blue:one");

  ASSERT_TRUE(daemon_->Switch("web", "green"));
  ASSERT_TRUE(daemon_->Switch("web", "blue"));
  // Let well more than the drain timeout pass (a read that times out would
  // leave the client's stream unusable, so this test simply waits), then the
  // tunnel must still be open and echoed by blue.
  std::this_thread::sleep_for(milliseconds(2500));
  // Still open and still echoed by blue.
  ASSERT_TRUE(ws->Send("two"));
  echo = ws->Read(DeadlineIn(seconds(5)));
  ASSERT_TRUE(echo) << echo.error().message;
  EXPECT_EQ(*echo, "blue:two");
}

TEST_F(Switch, LiveColorSurvivesAKilledDaemon) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  ASSERT_TRUE(daemon_->Switch("web", "green"));
  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;

  EXPECT_EQ(Get(), "green");
  CliResult status = daemon_->Cli({"status", "web", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  auto j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << status.out;
  EXPECT_EQ(j["live"], "green") << status.out;
}

TEST_F(Switch, ColorWithoutHealthyTargetIsRefusedUnlessForced) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  green_->process().Kill();
  ASSERT_TRUE(daemon_->WaitHealth("web", "green", false)) << "green never reported unhealthy";

  auto refused = daemon_->Api("POST", "/v1/services/web/switch", R"({"to":"green"})");
  ASSERT_TRUE(refused) << refused.error().message;
  EXPECT_EQ(refused->status, 409) << refused->body;
  auto err = nlohmann::json::parse(refused->body, nullptr, false);
  ASSERT_FALSE(err.is_discarded()) << refused->body;
  EXPECT_EQ(err["code"], "conflict");
  EXPECT_EQ(err["message"],
            "service 'web': green has no healthy target (0 of 1 healthy); force the switch to "
            "make it live anyway");
  EXPECT_EQ(ServiceJson(*daemon_, "web")["live"], "blue");
  EXPECT_EQ(Get(), "blue");

  CliResult cli = daemon_->Cli({"switch", "web", "--to", "green"});
  EXPECT_EQ(cli.exit_code, 1) << cli.out;
  EXPECT_EQ(cli.out,
            "cutover: service 'web': green has no healthy target (0 of 1 healthy); force the "
            "switch to make it live anyway\n");

  auto forced = daemon_->Api("POST", "/v1/services/web/switch", R"({"to":"green","force":true})");
  ASSERT_TRUE(forced) << forced.error().message;
  EXPECT_EQ(forced->status, 200) << forced->body;
  EXPECT_EQ(ServiceJson(*daemon_, "web")["live"], "green");
  // Live traffic now meets a color that cannot answer: the proxy says so.
  auto r = HttpGet("127.0.0.1", daemon_->port(), "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 503) << r->body;
}

TEST_F(Switch, PooledConnectionsAreReplacedAfterSwitchingAwayAndBack) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  LoadOptions options;
  options.port = daemon_->port();
  options.connections = 16;

  // Each phase keeps 16 client connections busy, so each color has a pool of
  // several upstream connections when the next switch comes.
  auto phase = [&](const std::string& want) {
    auto load = LoadGenerator::Start(options);
    EXPECT_TRUE(load->WaitForCompleted(400, DeadlineIn(seconds(10))));
    LoadSummary summary = load->Stop();
    EXPECT_EQ(summary.errors, 0u) << want << ": " << summary.ToString();
    EXPECT_EQ(summary.non_2xx, 0u) << want << ": " << summary.ToString();
    EXPECT_EQ(summary.by_body[want], summary.responses) << want << ": " << summary.ToString();
  };
  phase("blue");
  ASSERT_TRUE(daemon_->Switch("web", "green"));
  phase("green");
  ASSERT_TRUE(daemon_->Switch("web", "blue"));
  phase("blue");
  // Single requests on fresh client connections use the pool too.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get(), "blue");
  ASSERT_TRUE(daemon_->Switch("web", "green"));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get(), "green");
  ASSERT_TRUE(daemon_->Switch("web", "blue"));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Get(), "blue");
}

}  // namespace
}  // namespace cutover::test
