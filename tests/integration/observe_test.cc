// Observing a release after the switch, as a user sees it, against the real
// cutover binary and real cutover-testapp instances run by the process
// driver: the router's own figures of the new color are held against the
// service's thresholds for the observe window, under constant load through
// the main listener. A release that answers 500 too often or is much slower
// than the one before is switched back at once; a healthy one is kept; too
// little traffic is settled by on_inconclusive; `cutover abort` switches back
// and `cutover promote` ends the watch. The figures also show in `cutover
// status` and in /metrics, and observe's config errors carry their place.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "daemon_fixture.h"
#include "harness.h"
#include "support/load_generator.h"
#include "support/net.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kMetricsToken = "observe-metrics-0123456789abcdef";

int64_t UnixMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first line of `text` that starts with `prefix`; empty when none does.
std::string LineStartingWith(const std::string& text, std::string_view prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(prefix)) return line;
  }
  return {};
}

// How long step `name` of `deployment` took, in ms; -1 when it has not ended.
int64_t StepMillis(const json& deployment, std::string_view name) {
  const json* step = Step(deployment, name);
  if (step == nullptr || step->value("finished_unix_ms", int64_t{0}) == 0) return -1;
  return step->value("finished_unix_ms", int64_t{0}) - step->value("started_unix_ms", int64_t{0});
}

// The observe block of the service "web". Short windows keep the tests fast;
// the load below gives well over min_requests per interval.
struct ObserveOptions {
  std::string window = "4s";
  std::string interval = "2s";
  std::vector<std::string> thresholds = {"max_error_rate: 5%"};
  std::string min_requests = "20";
  std::string on_inconclusive;  // empty: the default (promote)
  std::string promotion = "auto";
};

constexpr int64_t kWindowMs = 4000;  // ObserveOptions::window

// How a breach of `max_error_rate: 5%` names its threshold: as the config
// writes it.
constexpr std::string_view kErrorRateBreach = "> max_error_rate 5%";

class Observe : public DaemonFixture {
 protected:
  Observe() : DaemonFixture("cutover-observe") {}

  // The command that serves GET / with the release label, plus `extra` flags.
  static std::string AppCommand(std::string_view extra = "") {
    std::string cmd = "'" + TestappBinary() + "' --name $CUTOVER_RELEASE --quiet";
    if (!extra.empty()) cmd += " " + std::string(extra);
    return cmd;
  }

  std::string Config(const ObserveOptions& ob, std::string_view top_extra) const {
    // Test programs may run side by side; each takes its own slice of the
    // instance port range so two daemons never pick the same port.
    const int lo = 20000 + static_cast<int>(::getpid() % 397) * 25;
    std::string text = "listen: 127.0.0.1:{port}\n";
    text += "ports: " + std::to_string(lo) + "-" + std::to_string(lo + 24) + "\n";
    text += "logs: " + dir_->File("logs") + "\n";
    text += top_extra;
    text += "services:\n  web:\n    hosts: [localhost]\n";
    text += "    driver:\n      type: process\n      command: " + json(AppCommand()).dump() +
            "\n      stop_timeout: 2s\n";
    text += "    health: {path: /healthz, interval: 200ms, timeout: 190ms, deadline: 10s}\n";
    text += "    promotion: " + ob.promotion + "\n    rollback_window: 10m\n";
    text += "    observe:\n      window: " + ob.window + "\n      interval: " + ob.interval + "\n";
    for (const std::string& t : ob.thresholds) text += "      " + t + "\n";
    text += "      min_requests: " + ob.min_requests + "\n";
    if (!ob.on_inconclusive.empty()) text += "      on_inconclusive: " + ob.on_inconclusive + "\n";
    return text;
  }

  void StartDaemon(const ObserveOptions& ob = {}, std::string_view top_extra = "") {
    auto d = Daemon::Start(*dir_, Config(ob, top_extra));
    ASSERT_TRUE(d) << d.error().message;
    daemon_ = std::move(*d);
  }

  CliResult Cli(const std::vector<std::string>& args) const { return daemon_->Cli(args); }

  // The first release lands on blue and is not observed (nothing to go back to).
  void DeployFirst() {
    CliResult r = Cli({"deploy", "web", "--release", "v1"});
    ASSERT_EQ(r.exit_code, 0) << r.out << "\ndaemon:\n" << daemon_->process().Output();
    EXPECT_TRUE(Contains(LineStartingWith(r.out, "[--] observe"), "nothing to go back to"))
        << r.out;
    ASSERT_EQ(GetText(daemon_->port()), "v1");
  }

  // `cutover deploy web --release v2 --command APP EXTRA`.
  std::vector<std::string> DeployArgs(std::string_view extra = "") const {
    return {"deploy", "web", "--release", "v2", "--command", AppCommand(extra)};
  }

  // Constant load on the main listener: 4 connections with a short pause
  // give a few hundred requests a second, far above min_requests per
  // interval, without starving two shared cores; enough traffic before the
  // deploy that the previous release has figures over a whole interval.
  static LoadShape SteadyLoad(milliseconds pause = milliseconds(5), bool keep_samples = false) {
    return {.connections = 4, .pause = pause, .first = 200, .keep_samples = keep_samples};
  }

  // Lets at least `n` more requests through the load.
  void MoreTraffic(uint64_t n = 200) {
    EXPECT_TRUE(load_->WaitForCompleted(load_->Completed() + n, DeadlineIn(seconds(10))))
        << load_->Snapshot().ToString();
  }

  // The newest deployment, as `cutover history web --json` shows it.
  json Newest() const {
    CliResult r = Cli({"history", "web", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    json history = ParseJson(r.out);
    if (!history.is_object() || !history.contains("deployments") ||
        history["deployments"].empty()) {
      ADD_FAILURE() << "no deployments in: " << r.out;
      return nullptr;
    }
    return history["deployments"][0];
  }

  // `cutover deploy ... --detach`; the deployment's id.
  int64_t DeployDetached(std::vector<std::string> args) {
    args.push_back("--detach");
    CliResult r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex(R"(deployment (\d+) of web )"))) {
      ADD_FAILURE() << "no deployment id in: " << r.out;
      return -1;
    }
    return std::stoll(m[1]);
  }

  // Waits until `ready` holds for deployment `id`; the deployment.
  json WaitDeployment(int64_t id, const std::function<bool(const json&)>& ready,
                      std::string_view what, seconds limit = seconds(20)) const {
    json last;
    bool ok = WaitUntil(
        [&] {
          last = DeploymentJson(id);
          return last.is_object() && ready(last);
        },
        DeadlineIn(limit), milliseconds(20));
    EXPECT_TRUE(ok) << "deployment " << id << " never " << what << ": " << last.dump(2);
    return last;
  }

  json WaitObserving(int64_t id) const {
    return WaitDeployment(
        id,
        [](const json& d) {
          const json* step = Step(d, "observe");
          return step != nullptr && (*step)["outcome"] == "running";
        },
        "started observing");
  }

  json WaitFinished(int64_t id) const {
    return WaitDeployment(
        id, [](const json& d) { return d["outcome"] != "running"; }, "finished");
  }

  // The service switched back: live is blue with v1, and the rejected v2
  // stays on green for a look at it.
  void ExpectSwitchedBack() {
    EXPECT_EQ(GetText(daemon_->port()), "v1");
    json s = ServiceJson();
    EXPECT_EQ(s["live"], "blue") << s.dump(2);
    EXPECT_EQ(s["colors"]["blue"]["release"], "v1") << s.dump(2);
    EXPECT_EQ(s["colors"]["green"]["release"], "v2") << s.dump(2);
    EXPECT_EQ(s["colors"]["green"]["state"], "running") << s.dump(2);
    EXPECT_TRUE(s["deployment"].is_null()) << s.dump(2);
  }
};

TEST_F(Observe, ErrorRateOverTheThresholdSwitchesBackWithinTheWindow) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_NO_FATAL_FAILURE(DeployFirst());
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad(milliseconds(5), /*keep_samples=*/true)));

  // v2 answers 500 on every tenth request once it takes the traffic.
  CliResult r = Cli(DeployArgs("--fail-every 10"));
  const Clock::time_point returned = Clock::now();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_FALSE(LineStartingWith(r.out, "[ok] switch").empty()) << r.out;
  const std::string observe = LineStartingWith(r.out, "[!!] observe");
  EXPECT_TRUE(Contains(observe, "error rate")) << r.out;
  EXPECT_TRUE(Contains(observe, kErrorRateBreach)) << r.out;
  EXPECT_TRUE(Contains(observe, "switched back: green -> blue (v1)")) << r.out;
  EXPECT_TRUE(Contains(LineStartingWith(r.out, "!! v2 rolled_back: "), kErrorRateBreach)) << r.out;
  EXPECT_TRUE(LineStartingWith(r.out, "[ok] settle").empty()) << r.out;

  ASSERT_NO_FATAL_FAILURE(ExpectSwitchedBack());
  MoreTraffic();
  LoadSummary load = load_->Stop();

  json d = Newest();
  EXPECT_EQ(d["release"], "v2") << d.dump(2);
  EXPECT_EQ(d["outcome"], "rolled_back") << d.dump(2);
  const std::string message = d["message"].get<std::string>();
  EXPECT_TRUE(message.starts_with("observe: v2 over the last ")) << message;
  EXPECT_EQ(d["failed_step"], "observe") << d.dump(2);
  EXPECT_TRUE(d["switch_ms"].is_number_integer()) << d.dump(2);
  EXPECT_TRUE(Contains(message, "error rate")) << message;
  EXPECT_TRUE(Contains(message, kErrorRateBreach)) << message;
  EXPECT_TRUE(Contains(message, "switched back to v1 on blue")) << message;
  const json* step = Step(d, "observe");
  ASSERT_NE(step, nullptr) << d.dump(2);
  EXPECT_EQ((*step)["outcome"], "failed") << d.dump(2);
  // Judged on the sliding interval, not at the end of the window.
  const int64_t took = StepMillis(d, "observe");
  EXPECT_GE(took, 0) << d.dump(2);
  EXPECT_LT(took, kWindowMs) << d.dump(2);

  // The only failures the users saw are v2's own 500s, between the switch
  // and the switch back: no connection error, no 5xx of the router, and a
  // tenth of what v2 answered, no more.
  EXPECT_EQ(load.errors, 0u) << load.ToString();
  for (const auto& entry : load.by_status) {
    EXPECT_TRUE(entry.first == 200 || entry.first == 500) << load.ToString();
  }
  const uint64_t injected = load.by_body["injected failure"];
  const uint64_t v2_answers = load.by_body["v2"] + injected;
  EXPECT_GT(injected, 0u) << load.ToString();
  EXPECT_EQ(load.by_status[500], injected) << load.ToString();
  EXPECT_GE(injected, v2_answers / 10) << load.ToString();
  EXPECT_LE(injected, v2_answers / 10 + 1) << load.ToString();
  // After the switch back every request was answered by v1.
  uint64_t after = 0;
  for (const LoadSample& s : load.samples) {
    if (s.status == 500) {
      // Sent before the switch back (its answer may be read a little later).
      EXPECT_LT(s.sent, returned) << "a 500 after the deployment was rolled back";
    }
    if (s.sent > returned) {
      ++after;
      EXPECT_EQ(s.status, 200);
      EXPECT_EQ(s.body, "v1");
    }
  }
  EXPECT_GT(after, 0u) << load.ToString();
}

TEST_F(Observe, P99FarAboveThePreviousReleaseSwitchesBack) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.thresholds = {"max_p99_ratio: 3"}}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());
  // Lighter load: v1's tail stays that of the app, not of busy cores, and
  // v2 still gets enough requests a second.
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad(milliseconds(10))));

  // v1 answers at once; v2 takes 150ms over every request, far above what
  // a busy machine adds to v1's tail.
  CliResult r = Cli(DeployArgs("--delay 150ms"));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  const std::string observe = LineStartingWith(r.out, "[!!] observe");
  EXPECT_TRUE(Contains(observe, "p99")) << r.out;
  EXPECT_TRUE(Contains(observe, "> max_p99_ratio 3")) << r.out;
  EXPECT_TRUE(Contains(observe, "v1 before the switch: ")) << r.out;

  ASSERT_NO_FATAL_FAILURE(ExpectSwitchedBack());
  MoreTraffic();
  // Slow is not failed: every request was answered.
  StopLoadExpectClean();

  json d = Newest();
  EXPECT_EQ(d["release"], "v2") << d.dump(2);
  EXPECT_EQ(d["outcome"], "rolled_back") << d.dump(2);
  const std::string message = d["message"].get<std::string>();
  EXPECT_TRUE(Contains(message, "p99")) << message;
  EXPECT_TRUE(Contains(message, "max_p99_ratio 3")) << message;
  EXPECT_TRUE(Contains(message, "switched back to v1 on blue")) << message;
  EXPECT_LT(StepMillis(d, "observe"), kWindowMs) << d.dump(2);
}

TEST_F(Observe, HealthyReleaseIsKeptAfterTheWindow) {
  ASSERT_NO_FATAL_FAILURE(
      StartDaemon({.thresholds = {"max_error_rate: 5%", "max_error_rate_increase: 2%"}}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad()));

  CliResult r = Cli(DeployArgs());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const std::string observe = LineStartingWith(r.out, "[ok] observe");
  EXPECT_TRUE(Contains(observe, "healthy over ")) << r.out;
  EXPECT_TRUE(Contains(observe, "0% errors")) << r.out;
  EXPECT_TRUE(Contains(observe, "v1 before the switch: ")) << r.out;
  const size_t at_switch = r.out.find("[ok] switch");
  const size_t at_observe = r.out.find("[ok] observe");
  const size_t at_settle = r.out.find("[ok] settle");
  EXPECT_TRUE(at_switch < at_observe && at_observe < at_settle && at_settle != std::string::npos)
      << r.out;
  EXPECT_FALSE(LineStartingWith(r.out, "== v2 succeeded: v2 is live on green").empty()) << r.out;

  EXPECT_EQ(GetText(daemon_->port()), "v2");
  MoreTraffic();
  LoadSummary load = StopLoadExpectClean();
  EXPECT_GT(load.by_body["v1"], 0u) << load.ToString();
  EXPECT_GT(load.by_body["v2"], 0u) << load.ToString();

  json d = Newest();
  EXPECT_EQ(d["outcome"], "succeeded") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "observe"), "ok") << d.dump(2);
  // Kept only once the whole window was watched.
  EXPECT_GE(StepMillis(d, "observe"), kWindowMs - 100) << d.dump(2);
  EXPECT_EQ(ServiceJson()["live"], "green");
}

TEST_F(Observe, TooLittleTrafficWithPromoteKeepsTheRelease) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.window = "3s", .on_inconclusive = "promote"}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());

  CliResult r = Cli(DeployArgs());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  const std::string observe = LineStartingWith(r.out, "[ok] observe");
  EXPECT_TRUE(Contains(observe, "inconclusive: 0 request(s) in ")) << r.out;
  EXPECT_TRUE(Contains(observe, "fewer than min_requests 20")) << r.out;
  EXPECT_TRUE(Contains(observe, "kept (on_inconclusive: promote)")) << r.out;

  json d = Newest();
  EXPECT_EQ(d["outcome"], "succeeded") << d.dump(2);
  const std::string message = StepMessage(d, "observe");
  EXPECT_TRUE(Contains(message, "inconclusive")) << message;
  EXPECT_TRUE(Contains(message, "on_inconclusive: promote")) << message;
  EXPECT_EQ(GetText(daemon_->port()), "v2");
}

TEST_F(Observe, TooLittleTrafficWithRollbackSwitchesBack) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.window = "3s", .on_inconclusive = "rollback"}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());

  CliResult r = Cli(DeployArgs());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  const std::string observe = LineStartingWith(r.out, "[!!] observe");
  EXPECT_TRUE(Contains(observe, "inconclusive: 0 request(s) in ")) << r.out;
  EXPECT_TRUE(Contains(observe, "(on_inconclusive: rollback)")) << r.out;
  EXPECT_TRUE(Contains(observe, "switched back: green -> blue (v1)")) << r.out;

  json d = Newest();
  EXPECT_EQ(d["outcome"], "rolled_back") << d.dump(2);
  const std::string message = d["message"].get<std::string>();
  EXPECT_TRUE(Contains(message, "inconclusive")) << message;
  EXPECT_TRUE(Contains(message, "on_inconclusive: rollback")) << message;
  EXPECT_TRUE(Contains(message, "switched back to v1 on blue")) << message;
  ASSERT_NO_FATAL_FAILURE(ExpectSwitchedBack());
}

TEST_F(Observe, TooLittleTrafficWithWaitKeepsWatchingUntilPromoted) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.window = "3s", .on_inconclusive = "wait"}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());

  const int64_t id = DeployDetached(DeployArgs());
  ASSERT_GT(id, 0);
  json d = WaitObserving(id);
  ASSERT_NE(Step(d, "observe"), nullptr) << d.dump(2);
  const int64_t observing_since = (*Step(d, "observe"))["started_unix_ms"].get<int64_t>();

  // Once the 3s window has passed, the observe step says what it waits for...
  d = WaitDeployment(
      id,
      [](const json& now) {
        return Contains(StepMessage(now, "observe"), "waiting for traffic (on_inconclusive: wait)");
      },
      "said it waits for traffic", seconds(10));
  EXPECT_GE(UnixMs(), observing_since + 3000);
  // ...and the deployment still runs, on v2.
  EXPECT_EQ(d["outcome"], "running") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "observe"), "running") << d.dump(2);
  EXPECT_TRUE(Contains(StepMessage(d, "observe"), "inconclusive: 0 request(s) in ")) << d.dump(2);
  json s = ServiceJson();
  EXPECT_EQ(s["live"], "green") << s.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v2");

  CliResult p = Cli({"promote", "web"});
  EXPECT_EQ(p.exit_code, 0) << p.out;
  d = WaitFinished(id);
  EXPECT_EQ(d["outcome"], "succeeded") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "observe"), "ok") << d.dump(2);
  EXPECT_TRUE(Contains(StepMessage(d, "observe"), "promoted while observing")) << d.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  EXPECT_EQ(ServiceJson()["live"], "green");
}

// The promote that approves a manual deployment is not also taken as the end
// of its observe step.
TEST_F(Observe, ThePromoteThatApprovesDoesNotEndTheWatch) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.window = "3s", .promotion = "manual"}));
  // Deploys with ARGS and approves it once it waits for approval; the
  // finished deployment.
  auto approved = [&](const std::vector<std::string>& args) {
    const int64_t id = DeployDetached(args);
    WaitStep(id, "approve", "waiting");
    CliResult p = Cli({"promote", "web"});
    EXPECT_EQ(p.exit_code, 0) << p.out;
    return WaitFinished(id);
  };
  ASSERT_EQ(approved({"deploy", "web", "--release", "v1"})["outcome"], "succeeded");
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad()));

  json d = approved(DeployArgs());
  EXPECT_EQ(d["outcome"], "succeeded") << d.dump(2);
  EXPECT_EQ(StepMessage(d, "approve"), "promoted") << d.dump(2);
  const std::string observe = StepMessage(d, "observe");
  EXPECT_FALSE(Contains(observe, "promoted while observing")) << d.dump(2);
  EXPECT_TRUE(Contains(observe, "healthy over 3")) << d.dump(2);
  EXPECT_GE(StepMillis(d, "observe"), 3000) << d.dump(2);
  StopLoadExpectClean();
}

TEST_F(Observe, AbortWhileObservingSwitchesBack) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.window = "60s"}));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad()));

  BackgroundCli deploy(*daemon_, DeployArgs());
  int64_t id = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = daemon_->Api("GET", "/v1/services/web");
        json s = r && r->status == 200 ? ParseJson(r->body) : json();
        if (!s.is_object() || !s["deployment"].is_object()) return false;
        id = s["deployment"]["id"].get<int64_t>();
        return s["deployment"]["release"] == "v2";
      },
      DeadlineIn(seconds(20))));
  WaitObserving(id);
  EXPECT_EQ(GetText(daemon_->port()), "v2");

  CliResult a = Cli({"abort", "web"});
  EXPECT_EQ(a.exit_code, 0) << a.out;
  CliResult r = deploy.Join();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(Contains(LineStartingWith(r.out, "[!!] observe"), "aborted by")) << r.out;

  json d = Newest();
  EXPECT_EQ(d["id"], id) << d.dump(2);
  EXPECT_EQ(d["outcome"], "rolled_back") << d.dump(2);
  const std::string message = d["message"].get<std::string>();
  EXPECT_TRUE(Contains(message, "aborted by")) << message;
  EXPECT_TRUE(Contains(message, "switched back to v1 on blue")) << message;
  ASSERT_NO_FATAL_FAILURE(ExpectSwitchedBack());
  // Both switches are lossless: not one request failed.
  MoreTraffic();
  LoadSummary load = StopLoadExpectClean();
  EXPECT_GT(load.by_body["v2"], 0u) << load.ToString();
}

TEST_F(Observe, StatusAndMetricsShowEachColorsFigures) {
  auto metrics_port = FreePort();
  ASSERT_TRUE(metrics_port) << metrics_port.error().message;
  ASSERT_NO_FATAL_FAILURE(
      StartDaemon({}, "metrics_listen: 127.0.0.1:" + std::to_string(*metrics_port) +
                          "\nmetrics_token: " + std::string(kMetricsToken) + "\n"));
  ASSERT_NO_FATAL_FAILURE(DeployFirst());
  ASSERT_NO_FATAL_FAILURE(StartLoad(SteadyLoad()));
  CliResult r = Cli(DeployArgs());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  MoreTraffic();

  // JSON: the live color's figures over the last minute.
  json green;
  ASSERT_TRUE(WaitUntil(
      [&] {
        CliResult s = Cli({"status", "web", "--json"});
        json j = ParseJson(s.out);
        if (s.exit_code != 0 || !j.is_object()) return false;
        green = j["colors"]["green"];
        return green.contains("figures") && green["figures"]["requests"].get<uint64_t>() > 0;
      },
      DeadlineIn(seconds(10))))
      << green.dump(2);
  EXPECT_EQ(green["release"], "v2") << green.dump(2);
  const json& f = green["figures"];
  EXPECT_EQ(f["errors"], 0) << f.dump(2);
  EXPECT_EQ(f["error_rate"], 0) << f.dump(2);
  EXPECT_GT(f["requests_per_second"].get<double>(), 0) << f.dump(2);
  EXPECT_GT(f["seconds"].get<double>(), 0) << f.dump(2);
  EXPECT_GE(f["p99_ms"].get<double>(), f["p50_ms"].get<double>()) << f.dump(2);

  // Text: the slot table has the figure columns, filled in for green.
  CliResult text = Cli({"status", "web"});
  ASSERT_EQ(text.exit_code, 0) << text.out;
  EXPECT_TRUE(std::regex_search(text.out, std::regex(R"(REQ/S\s+ERRORS\s+P50\s+P99)"))) << text.out;
  EXPECT_TRUE(std::regex_search(
      text.out, std::regex(R"(web\s+green\s+live\s+v2\s+running\s+\d+\.\d\s+0%\s+\d\S*\s+\d\S*)")))
      << text.out;

  // /metrics: per color, labelled with the release it runs.
  const HeaderList auth = {{"Authorization", "Bearer " + std::string(kMetricsToken)}};
  auto scraped = HttpGet("127.0.0.1", *metrics_port, "/metrics", "localhost", auth);
  ASSERT_TRUE(scraped) << scraped.error().message;
  ASSERT_EQ(scraped->status, 200) << scraped->body;
  std::vector<MetricSample> m = ParseMetrics(scraped->body);
  const std::map<std::string, std::string> v2 = {
      {"service", "web"}, {"color", "green"}, {"release", "v2"}};
  std::map<std::string, std::string> ok = v2;
  ok["class"] = "2xx";
  std::vector<MetricSample> requests = MatchingMetrics(m, "cutover_color_requests_total", ok);
  ASSERT_EQ(requests.size(), 1u) << scraped->body;
  EXPECT_GT(requests[0].value, 0) << scraped->body;
  std::map<std::string, std::string> failed = v2;
  failed["class"] = "5xx";
  std::vector<MetricSample> errors = MatchingMetrics(m, "cutover_color_requests_total", failed);
  ASSERT_EQ(errors.size(), 1u) << scraped->body;
  EXPECT_EQ(errors[0].value, 0) << scraped->body;
  std::vector<MetricSample> buckets =
      MatchingMetrics(m, "cutover_color_request_duration_seconds_bucket", v2);
  EXPECT_GT(buckets.size(), 2u) << scraped->body;
  std::map<std::string, std::string> inf = v2;
  inf["le"] = "+Inf";
  std::vector<MetricSample> all =
      MatchingMetrics(m, "cutover_color_request_duration_seconds_bucket", inf);
  ASSERT_EQ(all.size(), 1u) << scraped->body;
  EXPECT_GE(all[0].value, requests[0].value) << scraped->body;
  std::vector<MetricSample> count =
      MatchingMetrics(m, "cutover_color_request_duration_seconds_count", v2);
  ASSERT_EQ(count.size(), 1u) << scraped->body;
  EXPECT_EQ(count[0].value, all[0].value) << scraped->body;
  // The previous release keeps its own series on blue.
  EXPECT_EQ(
      MatchingMetrics(m, "cutover_color_request_duration_seconds_bucket",
                      {{"service", "web"}, {"color", "blue"}, {"release", "v1"}, {"le", "+Inf"}})
          .size(),
      1u)
      << scraped->body;
  StopLoadExpectClean();
}

// What each release answered on each color, read from /metrics on the
// control socket: "color release" -> requests.
std::map<std::string, double> RequestsByRelease(const Daemon& daemon) {
  std::map<std::string, double> out;
  auto scraped = daemon.Api("GET", "/metrics");
  if (!scraped || scraped->status != 200) return out;
  for (const MetricSample& m : MatchingMetrics(
           ParseMetrics(scraped->body), "cutover_color_requests_total", {{"service", "web"}})) {
    out[m.labels.at("color") + " " + m.labels.at("release")] += m.value;
  }
  return out;
}

TEST_F(Observe, EachReleaseOfAColorIsCountedApartUpToTheScrape) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_NO_FATAL_FAILURE(DeployFirst());  // one request to v1
  auto get = [&](int n, const std::string& want) {
    for (int i = 0; i < n; ++i) ASSERT_EQ(GetText(daemon_->port()), want);
  };
  ASSERT_NO_FATAL_FAILURE(get(29, "v1"));
  // Counted the moment they were answered, not at the next sample.
  EXPECT_EQ(RequestsByRelease(*daemon_), (std::map<std::string, double>{{"blue v1", 30}}));

  CliResult r = Cli(DeployArgs());
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_NO_FATAL_FAILURE(get(10, "v2"));
  // v3 replaces v1 on blue: v1's series stays as it ended, v3's starts at 0.
  r = Cli({"deploy", "web", "--release", "v3", "--command", AppCommand()});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_NO_FATAL_FAILURE(get(5, "v3"));
  EXPECT_EQ(RequestsByRelease(*daemon_),
            (std::map<std::string, double>{{"blue v1", 30}, {"green v2", 10}, {"blue v3", 5}}));

  // Back to v2, which still runs on green: its own series goes on.
  r = Cli({"rollback", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_NO_FATAL_FAILURE(get(3, "v2"));
  EXPECT_EQ(RequestsByRelease(*daemon_),
            (std::map<std::string, double>{{"blue v1", 30}, {"green v2", 13}, {"blue v3", 5}}));
}

// ---- config errors ----

// `cutover validate` on a config whose service's observe block (the key on
// line 7) holds `observe` (from line 8 on).
CliResult ValidateObserve(const TempDir& dir, const std::string& name, const std::string& observe) {
  const std::string path = dir.File(name);
  const std::string text =
      "listen: 127.0.0.1:0\n"
      "preview: off\n"
      "services:\n"
      "  web:\n"
      "    hosts: [localhost]\n"
      "    driver: {type: process, command: \"true {port}\"}\n"
      "    observe:\n" +
      observe;
  EXPECT_TRUE(WriteFile(path, text));
  return RunCutoverIn(dir, {"validate", "--config", path});
}

TEST(ObserveConfig, ValidateReportsObserveErrorsWithTheirPlace) {
  auto dir = TempDir::Create("cutover-observe");
  ASSERT_TRUE(dir) << dir.error().message;

  CliResult unitless = ValidateObserve(*dir, "unitless.yaml",
                                       "      window: 5s\n"
                                       "      max_error_rate: 5\n");
  EXPECT_EQ(unitless.exit_code, 2) << unitless.out;
  EXPECT_EQ(unitless.out, dir->File("unitless.yaml") +
                              ":9:23: services.web.observe.max_error_rate: '5' is not a "
                              "percentage (write it with %, e.g. 5%)\n");

  CliResult bare = ValidateObserve(*dir, "bare.yaml",
                                   "      window: 5s\n"
                                   "      min_requests: 10\n");
  EXPECT_EQ(bare.exit_code, 2) << bare.out;
  std::smatch m;
  const std::string file = dir->File("bare.yaml");
  ASSERT_TRUE(std::regex_search(bare.out, m, std::regex(R"(^(.+):(\d+):(\d+): (.+)\n$)")))
      << bare.out;
  EXPECT_EQ(m[1], file) << bare.out;
  // The observe block: its key's line or its first entry's.
  EXPECT_TRUE(m[2] == "7" || m[2] == "8") << bare.out;
  EXPECT_TRUE(Contains(m[4].str(),
                       "observe needs at least one threshold: max_error_rate, "
                       "max_error_rate_increase, max_p99 or max_p99_ratio"))
      << bare.out;
  EXPECT_TRUE(m[4].str().starts_with("services.web.observe")) << bare.out;
}

}  // namespace
}  // namespace cutover::test
