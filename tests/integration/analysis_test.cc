// Analysis checks as a user sees them, against the real cutover binary and
// real cutover-testapp instances: before the switch, a steady stream of
// requests at the preview (a configured mix, or a replay of paths the live
// release was asked for) judges the idle color with the service's observe
// thresholds. A release that fails too often never goes live; a good one
// does, and the check's figures are in the journal.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include "daemon_fixture.h"
#include "harness.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"

namespace cutover::test {
namespace {

using nlohmann::json;

class Analysis : public DaemonFixture {
 protected:
  Analysis() : DaemonFixture("cutover-analysis") {}

  static std::string Testapp(std::string_view name, std::string_view extra = "") {
    std::string cmd = TestappBinary() + " --name " + std::string(name) + " --quiet";
    if (!extra.empty()) cmd += " " + std::string(extra);
    return cmd;
  }

  // A process-driver service whose only check is `analysis`.
  void StartDaemon(std::string_view analysis) {
    const int lo = 20000 + static_cast<int>(::getpid() % 397) * 25;
    std::string yaml = "listen: 127.0.0.1:{port}\n";
    yaml += "ports: " + std::to_string(lo) + "-" + std::to_string(lo + 24) + "\n";
    yaml += "services:\n  web:\n    hosts: [localhost]\n";
    yaml += "    driver:\n      type: process\n      command: " +
            json(TestappBinary() + " --name $CUTOVER_RELEASE --quiet").dump() +
            "\n      stop_timeout: 2s\n";
    yaml += "    health: {path: /healthz, interval: 200ms, timeout: 190ms}\n";
    yaml += "    observe: {max_error_rate: 5%}\n";
    yaml += "    checks:\n      - analysis: " + std::string(analysis) + "\n";
    auto d = Daemon::Start(*dir_, yaml);
    ASSERT_TRUE(d) << d.error().message;
    daemon_ = std::move(*d);
  }

  std::string Live() const {
    auto r = HttpGet("127.0.0.1", daemon_->port(), "/");
    return r ? r->body : "error: " + r.error().message;
  }

  json LastDeployment() const {
    auto r = daemon_->Api("GET", "/v1/services/web/deployments");
    if (!r || r->status != 200) return nullptr;
    json j = json::parse(r->body, nullptr, false);
    if (!j.is_object() || j["deployments"].empty()) return nullptr;
    return j["deployments"][0];
  }
};

TEST_F(Analysis, AReleaseThatFailsTooOftenAtThePreviewNeverGoesLive) {
  StartDaemon("{requests: [GET /, GET /cart], duration: 2s, rate: 40}");
  CliResult v1 = daemon_->Cli({"deploy", "web", "--release", "v1"});
  ASSERT_EQ(v1.exit_code, 0) << v1.out;
  EXPECT_TRUE(Contains(v1.out, "analysis: passed (v1 at the preview: 80 requests")) << v1.out;

  CliResult v2 = daemon_->Cli(
      {"deploy", "web", "--release", "v2", "--command", Testapp("v2", "--fail-every 5")});
  EXPECT_EQ(v2.exit_code, 1) << v2.out;
  EXPECT_TRUE(Contains(v2.out,
                       "analysis failed: error rate 20% (16 of 80 requests) > "
                       "max_error_rate 5%"))
      << v2.out;
  EXPECT_TRUE(Contains(v2.out, "(live traffic is untouched)")) << v2.out;
  EXPECT_EQ(Live(), "v1");
  json d = LastDeployment();
  EXPECT_EQ(d.value("outcome", ""), "failed") << d.dump();
  EXPECT_TRUE(Contains(StepMessage(d, "check"), "v2 at the preview: 80 requests")) << d.dump();
}

TEST_F(Analysis, AGoodReleasePassesAndItsFiguresAreJournaled) {
  StartDaemon("{requests: [GET /], duration: 1s, rate: 30}");
  ASSERT_EQ(daemon_->Cli({"deploy", "web", "--release", "v1"}).exit_code, 0);
  CliResult v2 = daemon_->Cli({"deploy", "web", "--release", "v2"});
  ASSERT_EQ(v2.exit_code, 0) << v2.out;
  EXPECT_EQ(Live(), "v2");
  json d = LastDeployment();
  EXPECT_EQ(d.value("outcome", ""), "succeeded");
  const std::string check = StepMessage(d, "check");
  EXPECT_TRUE(Contains(check,
                       "analysis: passed (v2 at the preview: 30 requests (30.0/s), 0% "
                       "errors"))
      << check;
  EXPECT_TRUE(Contains(check, "v1 live: ")) << check;
}

TEST_F(Analysis, ReplaySendsTheLiveReleasesRecentPathsToTheCandidate) {
  StartDaemon("{replay: 10, duration: 1s, rate: 20}");
  CliResult v1 = daemon_->Cli({"deploy", "web", "--release", "v1"});
  ASSERT_EQ(v1.exit_code, 0) << v1.out;
  EXPECT_TRUE(Contains(v1.out, "analysis: skipped (nothing is live yet)")) << v1.out;
  // Live traffic on three paths, on one keep-alive connection so that one
  // router worker sees it all: that worker keeps one GET in eight, and eight
  // steps through the three paths in turn, so all three are kept.
  const char* paths[] = {"/", "/cart", "/?page=2"};
  auto conn = RawConn::Connect("127.0.0.1", daemon_->port());
  ASSERT_TRUE(conn) << conn.error().message;
  for (int i = 0; i < 96; ++i) {
    ASSERT_TRUE(conn->Send(BuildRequest("GET", paths[i % 3], "localhost")));
    auto r = conn->ReadResponse(DeadlineIn(std::chrono::seconds(10)));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200) << r->body;
  }
  conn->Close();
  // v2 logs every request it gets (no --quiet).
  CliResult v2 = daemon_->Cli(
      {"deploy", "web", "--release", "v2", "--command", TestappBinary() + " --name v2"});
  ASSERT_EQ(v2.exit_code, 0) << v2.out;
  EXPECT_TRUE(Contains(v2.out, "(3 replayed live paths): 20 requests")) << v2.out;
  // What the candidate got before it went live: the three live paths, and
  // nothing else but health checks.
  CliResult logs = daemon_->Cli({"logs", "web"});
  ASSERT_EQ(logs.exit_code, 0) << logs.out;
  std::map<std::string, int> got;
  std::istringstream lines(logs.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("GET ")) ++got[line.substr(4)];
  }
  EXPECT_GT(got["/"], 0) << logs.out;
  EXPECT_GT(got["/cart"], 0) << logs.out;
  EXPECT_GT(got["/?page=2"], 0) << logs.out;
  EXPECT_EQ(got["/"] + got["/cart"] + got["/?page=2"], 20) << logs.out;
  for (const auto& [path, n] : got) {
    EXPECT_TRUE(path == "/" || path == "/cart" || path == "/?page=2" || path == "/healthz")
        << path << " was sent to the candidate";
  }

  // The candidate gets exactly those paths: a release failing every
  // request but the health checks is caught by the replay.
  CliResult v3 = daemon_->Cli(
      {"deploy", "web", "--release", "v3", "--command", Testapp("v3", "--fail-every 1")});
  EXPECT_EQ(v3.exit_code, 1) << v3.out;
  EXPECT_TRUE(Contains(v3.out, "analysis failed: error rate 100%")) << v3.out;
  EXPECT_EQ(Live(), "v2");
}

}  // namespace
}  // namespace cutover::test
