// Deployments, as a user sees them: `cutover deploy` starts a release on the
// idle color with the process driver (or takes given targets with the static
// one), waits until it is healthy, checks it through the preview listener,
// waits for approval when asked to, switches, and keeps the previous release
// for a rollback. A failure or an abort before the switch leaves live traffic
// where it was and stops the candidate. Every deployment here runs under
// constant load on the main listener, which must not see a single failed
// request. Each test ends with a clean stop of the daemon, after which no
// instance it started may still run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

constexpr std::string_view kPreviewToken = "preview-secret-0123456789";

// Runs `cutover ARGS...` against `daemon` (stdout and stderr together).
CliResult RunCli(const Daemon& daemon, const std::vector<std::string>& args) {
  return daemon.Cli(args);
}

// The ports listed by a deployment's start step ("... port(s) 20001, 20002").
std::vector<uint16_t> StartedPorts(const json& deployment) {
  std::vector<uint16_t> out;
  if (!deployment.is_object()) return out;
  for (const json& step : deployment["steps"]) {
    if (step["name"] != "start") continue;
    std::string message = step["message"].get<std::string>();
    size_t at = message.find("port(s) ");
    if (at == std::string::npos) return out;
    std::istringstream in(message.substr(at + 8));
    for (std::string item; std::getline(in, item, ',');) {
      const size_t digits = item.find_first_not_of(' ');
      uint16_t port = 0;
      if (digits == std::string::npos) continue;
      auto [end, ec] = std::from_chars(item.data() + digits, item.data() + item.size(), port);
      if (ec == std::errc()) out.push_back(port);
    }
  }
  return out;
}

// The position of each of `needles` in `text`, each looked for after the one
// before; npos for one not found there.
std::vector<size_t> InOrder(const std::string& text, const std::vector<std::string>& needles) {
  std::vector<size_t> at;
  size_t from = 0;
  for (const std::string& n : needles) {
    size_t p = text.find(n, from);
    at.push_back(p);
    if (p != std::string::npos) from = p + n.size();
  }
  return at;
}

// How the service "web" is run in one test.
struct WebService {
  // The process driver's command; empty: the static driver with `static_blue`.
  std::string command;
  std::string static_blue;
  std::string promotion = "auto";
  std::string deadline = "10s";
  std::string checks;  // YAML list items, indented for the "checks:" key
};

// A daemon in its own folder; the fixture stops it cleanly at the end and
// then proves that no instance it started still runs.
class Deploy : public DaemonFixture {
 protected:
  Deploy() : DaemonFixture("cutover-deploy") {}

  void TearDown() override {
    const bool stopped = daemon_ != nullptr;
    DaemonFixture::TearDown();
    if (!stopped) return;
    const auto instances = Instances();
    if (runs_processes_) {
      EXPECT_FALSE(instances.empty()) << "no instance log found in " << LogsDir();
    }
    for (const auto& [port, pid] : instances) {
      EXPECT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, DeadlineIn(seconds(5))))
          << "instance pid " << pid << " (port " << port << ") outlived the daemon";
      EXPECT_TRUE(PortRefuses(port))
          << "port " << port << " still answers after the daemon stopped";
      // An instance is the leader of its own process group: a leftover one
      // must not outlive the test either.
      if (!ProcessGone(pid)) ::kill(-pid, SIGKILL);
    }
  }

  // The command that serves GET / with the release label.
  static std::string TestappCommand(std::string_view extra = "") {
    std::string cmd = TestappBinary() + " --name $CUTOVER_RELEASE --quiet";
    if (!extra.empty()) cmd += " " + std::string(extra);
    return cmd;
  }

  std::string LogsDir() const { return dir_->File("logs"); }

  std::string Config(const WebService& web, std::string_view top_extra) const {
    // Test programs may run side by side; each takes its own slice of the
    // instance port range so two daemons never pick the same port.
    const int lo = 20000 + static_cast<int>(::getpid() % 397) * 25;
    std::string text = "listen: 127.0.0.1:{port}\n";
    text += "ports: " + std::to_string(lo) + "-" + std::to_string(lo + 24) + "\n";
    text += "logs: " + LogsDir() + "\n";
    text += top_extra;
    text += "services:\n  web:\n    hosts: [localhost]\n";
    if (!web.command.empty()) {
      text += "    driver:\n      type: process\n      command: " + json(web.command).dump() +
              "\n      stop_timeout: 2s\n";
    } else {
      text += "    driver:\n      type: static\n";
      if (!web.static_blue.empty()) text += "      blue: [" + web.static_blue + "]\n";
    }
    text +=
        "    health: {path: /healthz, interval: 200ms, timeout: 190ms, deadline: " + web.deadline +
        "}\n";
    text += "    promotion: " + web.promotion + "\n";
    if (!web.checks.empty()) text += "    checks:\n" + web.checks;
    return text;
  }

  void StartDaemon(const WebService& web, std::string_view top_extra = "") {
    runs_processes_ = !web.command.empty();
    auto d = Daemon::Start(*dir_, Config(web, top_extra));
    ASSERT_TRUE(d) << d.error().message;
    daemon_ = std::move(*d);
  }

  // `cutover deploy web --release R --detach`; the deployment's id.
  int64_t DeployDetached(const std::string& release) {
    CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", release, "--detach"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex(R"(deployment (\d+) of web )"))) {
      ADD_FAILURE() << "no deployment id in: " << r.out;
      return -1;
    }
    return std::stoll(m[1]);
  }

  // Deploys `release` until it is live, promoting it when the service waits
  // for approval.
  void DeployLive(const std::string& release, bool manual) {
    if (!manual) {
      CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", release});
      ASSERT_EQ(r.exit_code, 0) << r.out;
    } else {
      int64_t id = DeployDetached(release);
      ASSERT_GT(id, 0);
      WaitStep(id, "approve", "waiting");
      CliResult p = RunCli(*daemon_, {"promote", "web"});
      ASSERT_EQ(p.exit_code, 0) << p.out;
      EXPECT_EQ(WaitFinished(id)["outcome"], "succeeded");
    }
    ASSERT_EQ(GetText(daemon_->port()), release);
  }

  // Every instance the daemon started, from the headers of their log files:
  // port -> pid (one entry per start).
  std::vector<std::pair<uint16_t, pid_t>> Instances() const { return StartedInstances(LogsDir()); }

  // Asserts that the candidate of deployment `d` was stopped: its instances'
  // ports refuse connections and the slot holds no running release.
  void ExpectCandidateStopped(const json& d) {
    std::vector<uint16_t> ports = StartedPorts(d);
    EXPECT_FALSE(ports.empty()) << d.dump(2);
    for (uint16_t port : ports) {
      EXPECT_TRUE(WaitUntil([&] { return PortRefuses(port); }, DeadlineIn(seconds(5))))
          << "the candidate still answers on port " << port;
    }
    json s = ServiceJson();
    const json& slot = s["colors"][d["color"].get<std::string>()];
    EXPECT_TRUE(slot["state"] == "empty" || slot["state"] == "stopped") << s.dump(2);
    EXPECT_TRUE(slot["targets"].empty()) << s.dump(2);
  }

  bool runs_processes_ = false;
};

TEST_F(Deploy, FirstReleaseThenSecondWithAutoPromotionKeepsThePreviousForRollback) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(
      {.command = TestappCommand(), .checks = "      - http: {path: /, expect_status: 200}\n"}));

  std::string before = GetText(daemon_->port());
  EXPECT_TRUE(before.starts_with("status 503: ")) << before;
  EXPECT_NE(before.find("service 'web' has no release live yet"), std::string::npos) << before;

  CliResult first = RunCli(*daemon_, {"deploy", "web", "--release", "v1"});
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("first release of web: it lands on blue"), std::string::npos)
      << first.out;
  ASSERT_EQ(GetText(daemon_->port()), "v1");

  ASSERT_NO_FATAL_FAILURE(StartLoad());
  CliResult second = RunCli(*daemon_, {"deploy", "web", "--release", "v2"});
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  LoadSummary load = StopLoadExpectClean();
  EXPECT_EQ(load.by_body.size(), 2u) << load.ToString();
  EXPECT_GT(load.by_body["v1"], 0u) << load.ToString();

  ASSERT_EQ(second.exit_code, 0) << second.out;
  std::vector<size_t> at =
      InOrder(second.out, {"deployment 2 of web v2 to green", "[ok] prepare", "[ok] start",
                           "[ok] healthy", "[ok] check", "[ok] approve", "[ok] switch",
                           "[ok] settle", "== v2 succeeded: v2 is live on green"});
  for (size_t i = 0; i < at.size(); ++i) {
    EXPECT_NE(at[i], std::string::npos) << "line " << i << " missing or out of order in:\n"
                                        << second.out;
  }
  EXPECT_NE(second.out.find("deploying to green (idle); blue stays live"), std::string::npos)
      << second.out;
  EXPECT_NE(second.out.find("http GET /: passed"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("v1 keeps running on blue"), std::string::npos) << second.out;
  EXPECT_EQ(GetText(daemon_->port()), "v2");

  json s = ServiceJson();
  EXPECT_EQ(s["live"], "green") << s.dump(2);
  EXPECT_EQ(s["released"], true) << s.dump(2);
  EXPECT_EQ(s["colors"]["green"]["release"], "v2") << s.dump(2);
  EXPECT_EQ(s["colors"]["green"]["state"], "running") << s.dump(2);
  EXPECT_EQ(s["colors"]["blue"]["release"], "v1") << s.dump(2);
  EXPECT_EQ(s["colors"]["blue"]["state"], "running") << s.dump(2);
  EXPECT_EQ(s["colors"]["blue"]["targets"].size(), 1u) << s.dump(2);
  EXPECT_TRUE(s["deployment"].is_null()) << s.dump(2);

  CliResult status = RunCli(*daemon_, {"status", "web"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  EXPECT_TRUE(std::regex_search(status.out, std::regex(R"(web\s+blue\s+idle\s+v1\s+running)")))
      << status.out;
  EXPECT_TRUE(std::regex_search(status.out, std::regex(R"(web\s+green\s+live\s+v2\s+running)")))
      << status.out;

  json history = History();
  ASSERT_EQ(history["deployments"].size(), 2u) << history.dump(2);
  EXPECT_EQ(history["deployments"][0]["release"], "v2");
  EXPECT_EQ(history["deployments"][0]["color"], "green");
  EXPECT_EQ(history["deployments"][0]["outcome"], "succeeded");
  EXPECT_EQ(history["deployments"][1]["release"], "v1");
  EXPECT_EQ(history["deployments"][1]["color"], "blue");
  EXPECT_EQ(history["deployments"][1]["outcome"], "succeeded");
  for (const json& d : history["deployments"]) {
    EXPECT_EQ(d["kind"], "deploy") << d.dump(2);
    EXPECT_TRUE(d["switch_ms"].is_number_integer()) << d.dump(2);
    EXPECT_TRUE(d["failed_step"].is_null()) << d.dump(2);
  }

  CliResult table = RunCli(*daemon_, {"history", "web"});
  ASSERT_EQ(table.exit_code, 0) << table.out;
  // ID RELEASE COLOR KIND OUTCOME STARTED (date, time) DURATION SWITCH FAILED-STEP
  const std::string row = R"(\s+deploy\s+succeeded\s+\S+\s+\S+\s+\S+\s+\d\S*\s+-\s)";
  EXPECT_TRUE(std::regex_search(table.out, std::regex("2\\s+v2\\s+green" + row))) << table.out;
  EXPECT_TRUE(std::regex_search(table.out, std::regex("1\\s+v1\\s+blue" + row))) << table.out;
}

TEST_F(Deploy, ManualPromotionWaitsWithTheCandidateOnThePreview) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .promotion = "manual"}));
  // A first release waits too; the preview shows it where it lands, the main
  // listener has nothing live yet.
  int64_t first = DeployDetached("v1");
  ASSERT_GT(first, 0);
  WaitStep(first, "approve", "waiting");
  EXPECT_EQ(GetText(daemon_->preview_port()), "v1");
  std::string main_before = GetText(daemon_->port());
  EXPECT_NE(main_before.find("service 'web' has no release live yet"), std::string::npos)
      << main_before;
  ASSERT_EQ(RunCli(*daemon_, {"promote", "web"}).exit_code, 0);
  EXPECT_EQ(WaitFinished(first)["outcome"], "succeeded");
  ASSERT_EQ(GetText(daemon_->port()), "v1");
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  int64_t id = DeployDetached("v2");
  ASSERT_GT(id, 0);
  json waiting = WaitStep(id, "approve", "waiting");
  EXPECT_EQ(waiting["outcome"], "running");
  CliResult status = RunCli(*daemon_, {"status", "web"});
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_NE(status.out.find("web: deployment " + std::to_string(id) + " of v2 to green by cli"),
            std::string::npos)
      << status.out;
  EXPECT_TRUE(std::regex_search(status.out, std::regex(R"(approve\s+waiting\s+waiting for)")))
      << status.out;
  EXPECT_NE((*Step(waiting, "approve"))["message"].get<std::string>().find("cutover promote web"),
            std::string::npos)
      << waiting.dump(2);
  EXPECT_EQ((*Step(waiting, "switch"))["outcome"], "pending");

  EXPECT_EQ(GetText(daemon_->preview_port()), "v2");
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  json s = ServiceJson();
  EXPECT_EQ(s["live"], "blue");
  EXPECT_EQ(s["deployment"]["id"], id) << s.dump(2);

  CliResult promote = RunCli(*daemon_, {"promote", "web"});
  ASSERT_EQ(promote.exit_code, 0) << promote.out;
  EXPECT_NE(promote.out.find("web: deployment " + std::to_string(id) + " promoted"),
            std::string::npos)
      << promote.out;
  json done = WaitFinished(id);
  EXPECT_EQ(done["outcome"], "succeeded") << done.dump(2);
  EXPECT_EQ((*Step(done, "approve"))["message"], "promoted");

  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  StopLoadExpectClean();
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  // The previous release is what the preview shows now.
  EXPECT_EQ(GetText(daemon_->preview_port()), "v1");

  // Nothing is waiting any more.
  CliResult again = RunCli(*daemon_, {"promote", "web"});
  EXPECT_EQ(again.exit_code, 1) << again.out;
  EXPECT_NE(again.out.find("has no deployment waiting for approval"), std::string::npos)
      << again.out;
}

TEST_F(Deploy, AbortDuringApprovalStopsTheCandidateAndLeavesLiveAlone) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .promotion = "manual"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/true));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  BackgroundCli follow(*daemon_, {"deploy", "web", "--release", "v2"});
  int64_t id = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        json s = ServiceJson();
        if (!s.is_object() || !s["deployment"].is_object()) return false;
        id = s["deployment"]["id"].get<int64_t>();
        return true;
      },
      DeadlineIn(seconds(10))));
  json waiting = WaitStep(id, "approve", "waiting");
  std::vector<uint16_t> ports = StartedPorts(waiting);
  ASSERT_EQ(ports.size(), 1u) << waiting.dump(2);
  EXPECT_EQ(GetText(ports[0]), "v2") << "the candidate does not run on its port";

  CliResult abort = RunCli(*daemon_, {"abort", "web"});
  ASSERT_EQ(abort.exit_code, 0) << abort.out;
  EXPECT_NE(abort.out.find("is being aborted"), std::string::npos) << abort.out;

  CliResult deploy = follow.Join();
  EXPECT_EQ(deploy.exit_code, 1) << deploy.out;
  EXPECT_NE(deploy.out.find("!! v2 aborted: aborted by cli (live traffic is untouched)"),
            std::string::npos)
      << deploy.out;

  json done = WaitFinished(id);
  EXPECT_EQ(done["outcome"], "aborted") << done.dump(2);
  EXPECT_EQ((*Step(done, "approve"))["outcome"], "aborted") << done.dump(2);
  EXPECT_EQ((*Step(done, "switch"))["outcome"], "skipped") << done.dump(2);
  ExpectCandidateStopped(done);

  StopLoadExpectClean();
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  json s = ServiceJson();
  EXPECT_EQ(s["live"], "blue");
  EXPECT_EQ(s["colors"]["blue"]["release"], "v1");
  EXPECT_EQ(s["colors"]["blue"]["state"], "running");
  std::string preview = GetText(daemon_->preview_port());
  EXPECT_TRUE(preview.starts_with("status 503: ")) << preview;
  EXPECT_NE(preview.find("service 'web' has no release on its idle color (green) to preview"),
            std::string::npos)
      << preview;
}

TEST_F(Deploy, UnhealthyReleaseFailsAtTheDeadlineWithItsLogTail) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .deadline = "2s"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult r = RunCli(
      *daemon_, {"deploy", "web", "--release", "v2", "--command", TestappCommand("--unhealthy")});
  StopLoadExpectClean();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("[!!] healthy"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not healthy after 2s: 127.0.0.1:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("last lines of " + LogsDir() + "/web/v2-green-0.log:"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("--- cutover: starting instance 0 of web release v2 on port"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("v2 listening on 127.0.0.1:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("!! v2 failed: not healthy after 2s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("live traffic is untouched"), std::string::npos) << r.out;

  json d = History()["deployments"][0];
  EXPECT_EQ(d["release"], "v2");
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  EXPECT_EQ((*Step(d, "healthy"))["outcome"], "failed") << d.dump(2);
  EXPECT_EQ((*Step(d, "check"))["outcome"], "skipped") << d.dump(2);
  ExpectCandidateStopped(d);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  EXPECT_EQ(ServiceJson()["live"], "blue");
}

TEST_F(Deploy, InstanceThatExitsAtOnceFailsWithoutWaitingForTheDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .deadline = "60s"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult r = RunCli(
      *daemon_, {"deploy", "web", "--release", "v2", "--command", "sh -c 'echo boom; exit 3'"});
  StopLoadExpectClean();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("keeps exiting while starting"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("exited with status 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("boom"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("not healthy after"), std::string::npos) << r.out;

  json d = History()["deployments"][0];
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  const std::string message = d["message"].get<std::string>();
  EXPECT_NE(message.find("instance 0 keeps exiting while starting (exited with status 3"),
            std::string::npos)
      << message;
  std::string healthy;
  for (const json& step : d["steps"]) {
    if (step["name"] == "healthy") healthy = step["message"].get<std::string>();
  }
  EXPECT_NE(healthy.find("boom"), std::string::npos) << d.dump(2);
  json s = ServiceJson();
  EXPECT_TRUE(s["colors"]["green"]["targets"].empty()) << s.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
}

TEST_F(Deploy, AbortDuringACheckStopsTheCheck) {
  const std::string started = dir_->File("check-started");
  const std::string finished = dir_->File("check-finished");
  const std::string script = dir_->File("slow-check.sh");
  ASSERT_TRUE(WriteFile(script,
                        "[ \"$CUTOVER_RELEASE\" = v1 ] && exit 0\n"
                        "touch " +
                            started +
                            "\n"
                            "sleep 5\n"
                            "touch " +
                            finished + "\n"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(),
                                       .checks = "      - command: " + json("sh " + script).dump() +
                                                 "\n        timeout: 30s\n        retries: 0\n"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  BackgroundCli follow(*daemon_, {"deploy", "web", "--release", "v2"});
  ASSERT_TRUE(WaitUntil([&] { return std::filesystem::exists(started); }, DeadlineIn(seconds(10))));
  CliResult abort = RunCli(*daemon_, {"abort", "web"});
  ASSERT_EQ(abort.exit_code, 0) << abort.out;
  CliResult deploy = follow.Join();
  EXPECT_EQ(deploy.exit_code, 1) << deploy.out;
  StopLoadExpectClean();
  json d = History()["deployments"][0];
  EXPECT_EQ(d["outcome"], "aborted") << d.dump(2);
  EXPECT_FALSE(std::filesystem::exists(finished))
      << "the check ran to its end after the abort: " << d.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
}

TEST_F(Deploy, FailureMessageKeepsTheLogTailLinesIntact) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .deadline = "1s"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());
  CliResult r = RunCli(
      *daemon_, {"deploy", "web", "--release", "v2", "--command", TestappCommand("--unhealthy")});
  StopLoadExpectClean();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  json d = History()["deployments"][0];
  // The summary is one line; the healthy step keeps the log tail.
  EXPECT_EQ(d["message"].get<std::string>().find('\n'), std::string::npos) << d.dump();
  std::string message;
  for (const json& step : d["steps"]) {
    if (step["name"] == "healthy") message = step["message"].get<std::string>();
  }
  // The instance's last line, as it wrote it, is a line of the message.
  std::istringstream lines(message);
  int found = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("listening on") == std::string::npos) continue;
    ++found;
    EXPECT_TRUE(std::regex_match(line, std::regex(R"(v2 listening on 127\.0\.0\.1:\d+)")))
        << "a line the instance printed was changed: '" << line << "'";
  }
  EXPECT_EQ(found, 1) << message;
}

// The static driver: blue is configured and live from the start, the new
// release brings its own target.
TEST_F(Deploy, FailedHttpCheckShowsExpectedAndGot) {
  auto v1 = Backend::Start(*dir_, "v1");
  ASSERT_TRUE(v1) << v1.error().message;
  auto v2 = Backend::Start(*dir_, "v2");
  ASSERT_TRUE(v2) << v2.error().message;
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.static_blue = (*v1)->address(),
                                       .checks = "      - http: {path: /missing, expect_status: "
                                                 "200}\n        retries: 1\n        "
                                                 "retry_interval: 100ms\n"}));
  ASSERT_TRUE(daemon_->WaitHealth("web", "blue", true));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult r =
      RunCli(*daemon_, {"deploy", "web", "--release", "v2", "--targets", (*v2)->address()});
  StopLoadExpectClean();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("http GET /missing failed: GET /missing: expected status 200, got 404"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("live traffic is untouched"), std::string::npos) << r.out;

  CliResult command = RunCli(*daemon_, {"deploy", "web", "--release", "v3", "--command", "true"});
  EXPECT_EQ(command.exit_code, 1) << command.out;
  EXPECT_NE(command.out.find("service 'web' uses the static driver"), std::string::npos)
      << command.out;

  json d = History()["deployments"][0];
  EXPECT_EQ(d["release"], "v2") << d.dump(2);
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  EXPECT_EQ((*Step(d, "check"))["outcome"], "failed") << d.dump(2);
  EXPECT_NE((*Step(d, "check"))["message"].get<std::string>().find("expected status 200, got 404"),
            std::string::npos)
      << d.dump(2);
  json s = ServiceJson();
  EXPECT_EQ(s["live"], "blue");
  EXPECT_TRUE(s["colors"]["green"]["targets"].empty()) << s.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  // The check asked twice (one retry); the live release was never asked.
  auto seen = (*v2)->RequestsSeen();
  ASSERT_TRUE(seen);
  EXPECT_EQ(*seen, 2u);
}

TEST_F(Deploy, FailedCommandCheckKeepsItsOutputInTheHistory) {
  const std::string script = dir_->File("smoke.sh");
  ASSERT_TRUE(WriteFile(script,
                        "echo \"smoke: trying $CUTOVER_RELEASE at $CUTOVER_PREVIEW_URL\"\n"
                        "[ \"$CUTOVER_RELEASE\" = v1 ] && exit 0\n"
                        "echo 'smoke: the checkout page is broken' >&2\n"
                        "exit 1\n"));
  ASSERT_NO_FATAL_FAILURE(StartDaemon(
      {.command = TestappCommand(),
       .checks = "      - command: " + json("sh " + script).dump() + "\n        retries: 0\n"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", "v2"});
  StopLoadExpectClean();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("smoke: the checkout page is broken"), std::string::npos) << r.out;

  json d = History()["deployments"][0];
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  int64_t id = d["id"].get<int64_t>();
  json one = DeploymentJson(id);
  ASSERT_NE(Step(one, "check"), nullptr) << one.dump(2);
  const std::string message = (*Step(one, "check"))["message"].get<std::string>();
  EXPECT_EQ((*Step(one, "check"))["outcome"], "failed");
  EXPECT_NE(message.find("command sh " + script + " failed: exited with status 1"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("output:\n"), std::string::npos) << message;
  EXPECT_NE(message.find("smoke: trying v2 at http://127.0.0.1:" +
                         std::to_string(daemon_->preview_port())),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("smoke: the checkout page is broken"), std::string::npos) << message;
  ExpectCandidateStopped(one);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
}

TEST_F(Deploy, SessionCheckNeedsStateBothReleasesShare) {
  const std::string shared = "file:" + dir_->File("sessions");
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand("--sessions " + shared),
                                       .checks = "      - session:\n"
                                                 "          on_live: [POST /cart/add?item=gadget]\n"
                                                 "          on_idle: [GET /cart, expect_body: "
                                                 "gadget]\n"
                                                 "        retries: 0\n"}));
  CliResult first = RunCli(*daemon_, {"deploy", "web", "--release", "v1"});
  ASSERT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("session: skipped (nothing is live yet)"), std::string::npos)
      << first.out;
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult memory = RunCli(*daemon_, {"deploy", "web", "--release", "v2", "--command",
                                       TestappCommand("--sessions memory")});
  EXPECT_EQ(memory.exit_code, 1) << memory.out;
  EXPECT_NE(memory.out.find("session failed: state created on the live release is not visible "
                            "on the new one: GET /cart: expected body to contain"),
            std::string::npos)
      << memory.out;
  EXPECT_NE(memory.out.find("keep them in a store both releases share"), std::string::npos)
      << memory.out;
  EXPECT_EQ(GetText(daemon_->port()), "v1");

  CliResult file = RunCli(*daemon_, {"deploy", "web", "--release", "v3"});
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v3"));
  LoadSummary load = StopLoadExpectClean();
  EXPECT_EQ(file.exit_code, 0) << file.out;
  EXPECT_NE(file.out.find("session: passed"), std::string::npos) << file.out;
  EXPECT_EQ(load.by_body.count("v2"), 0u) << load.ToString();
  EXPECT_EQ(GetText(daemon_->port()), "v3");

  json history = History();
  ASSERT_EQ(history["deployments"].size(), 3u) << history.dump(2);
  EXPECT_EQ(history["deployments"][0]["outcome"], "succeeded");
  EXPECT_EQ(history["deployments"][1]["outcome"], "failed");
  EXPECT_EQ(history["deployments"][1]["failed_step"], "check") << history.dump(2);
  EXPECT_TRUE(history["deployments"][1]["switch_ms"].is_null()) << history.dump(2);
}

TEST_F(Deploy, SecondDeploymentWhileOneRunsIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(), .promotion = "manual"}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/true));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  BackgroundCli follow(*daemon_, {"deploy", "web", "--release", "v2"});
  int64_t id = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        json s = ServiceJson();
        if (!s.is_object() || !s["deployment"].is_object()) return false;
        id = s["deployment"]["id"].get<int64_t>();
        return true;
      },
      DeadlineIn(seconds(10))));
  WaitStep(id, "approve", "waiting");

  const std::string expected = "service 'web': deployment " + std::to_string(id) +
                               " of v2 is already running (step approve)";
  CliResult second = RunCli(*daemon_, {"deploy", "web", "--release", "v3"});
  EXPECT_EQ(second.exit_code, 1) << second.out;
  EXPECT_NE(second.out.find(expected), std::string::npos) << second.out;
  auto api = daemon_->Api("POST", "/v1/services/web/deploy", R"({"release":"v3"})");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 409) << api->body;
  EXPECT_NE(api->body.find(expected), std::string::npos) << api->body;

  ASSERT_EQ(RunCli(*daemon_, {"promote", "web"}).exit_code, 0);
  CliResult first = follow.Join();
  EXPECT_EQ(first.exit_code, 0) << first.out;
  EXPECT_NE(first.out.find("== v2 succeeded"), std::string::npos) << first.out;
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  LoadSummary load = StopLoadExpectClean();
  EXPECT_EQ(load.by_body.count("v3"), 0u) << load.ToString();
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  json history = History();
  ASSERT_EQ(history["deployments"].size(), 2u) << history.dump(2);
}

TEST_F(Deploy, LogsHistoryAndJsonProgress) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand()}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", "v2", "--json"});
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  StopLoadExpectClean();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::istringstream lines(r.out);
  std::vector<json> events;
  for (std::string line; std::getline(lines, line);) {
    // Empty lines are the subject of JsonProgressHasNoEmptyLines.
    if (line.empty()) continue;
    json e = ParseJson(line);
    ASSERT_TRUE(e.is_object()) << "not one JSON object: " << line << "\nin:\n" << r.out;
    events.push_back(std::move(e));
  }
  ASSERT_FALSE(events.empty());
  std::vector<std::string> ok_steps;
  for (const json& e : events) {
    EXPECT_EQ(e["service"], "web") << e.dump();
    EXPECT_EQ(e["release"], "v2") << e.dump();
    if (e["kind"] == "step" && e["outcome"] == "ok") ok_steps.push_back(e["step"]);
  }
  EXPECT_EQ(ok_steps, (std::vector<std::string>{"prepare", "start", "healthy", "check", "approve",
                                                "switch", "settle"}));
  EXPECT_EQ(events.back()["kind"], "finished");
  EXPECT_EQ(events.back()["outcome"], "succeeded");

  CliResult logs = RunCli(*daemon_, {"logs", "web"});
  ASSERT_EQ(logs.exit_code, 0) << logs.out;
  EXPECT_NE(logs.out.find("--- cutover: starting instance 0 of web release v2 on port"),
            std::string::npos)
      << logs.out;
  EXPECT_NE(logs.out.find("v2 listening on 127.0.0.1:"), std::string::npos) << logs.out;
  EXPECT_EQ(logs.out.find("v1 listening"), std::string::npos) << logs.out;
  CliResult blue = RunCli(*daemon_, {"logs", "web", "--color", "blue"});
  ASSERT_EQ(blue.exit_code, 0) << blue.out;
  EXPECT_NE(blue.out.find("v1 listening on 127.0.0.1:"), std::string::npos) << blue.out;

  CliResult history = RunCli(*daemon_, {"history", "web", "--json"});
  ASSERT_EQ(history.exit_code, 0) << history.out;
  json h = ParseJson(history.out);
  ASSERT_TRUE(h.is_object()) << history.out;
  ASSERT_EQ(h["deployments"].size(), 2u) << history.out;
  for (const json& d : h["deployments"]) {
    EXPECT_EQ(d["outcome"], "succeeded") << d.dump(2);
    EXPECT_EQ(d["actor"], "cli") << d.dump(2);
    std::vector<std::string> names;
    for (const json& step : d["steps"]) {
      names.push_back(step["name"]);
      EXPECT_EQ(step["outcome"], "ok") << d.dump(2);
      EXPECT_GT(step["finished_unix_ms"].get<int64_t>(), 0) << d.dump(2);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"prepare", "start", "healthy", "check", "approve",
                                               "switch", "settle"}));
  }
  EXPECT_EQ(h["deployments"][0]["release"], "v2");
  EXPECT_EQ(h["deployments"][1]["release"], "v1");
}

TEST_F(Deploy, JsonProgressHasNoEmptyLines) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand()}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());
  CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", "v2", "--json"});
  StopLoadExpectClean();
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::istringstream lines(r.out);
  int objects = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(ParseJson(line).is_object()) << "not one JSON object: '" << line << "'";
    ++objects;
  }
  EXPECT_GE(objects, 8) << r.out;
}

TEST_F(Deploy, BadInputIsRefusedWithoutTouchingAnything) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand()}));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult unknown = RunCli(*daemon_, {"deploy", "nope", "--release", "v2"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.out;
  EXPECT_NE(unknown.out.find("cutover: no service named 'nope'"), std::string::npos) << unknown.out;
  auto api = daemon_->Api("POST", "/v1/services/nope/deploy", R"({"release":"v2"})");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 404) << api->body;

  CliResult missing = RunCli(*daemon_, {"deploy", "web"});
  EXPECT_EQ(missing.exit_code, 2) << missing.out;
  EXPECT_NE(missing.out.find("--release"), std::string::npos) << missing.out;

  CliResult targets =
      RunCli(*daemon_, {"deploy", "web", "--release", "v2", "--targets", "127.0.0.1:1"});
  EXPECT_EQ(targets.exit_code, 1) << targets.out;
  EXPECT_NE(targets.out.find("service 'web' runs its releases as processes; targets are for the "
                             "static driver"),
            std::string::npos)
      << targets.out;
  api = daemon_->Api("POST", "/v1/services/web/deploy",
                     R"({"release":"v2","targets":["127.0.0.1:1"]})");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 400) << api->body;

  CliResult label = RunCli(*daemon_, {"deploy", "web", "--release", "v 2"});
  EXPECT_EQ(label.exit_code, 1) << label.out;
  EXPECT_NE(label.out.find("may only hold letters, digits, '.', '-', '_' and '+'"),
            std::string::npos)
      << label.out;
  api = daemon_->Api("POST", "/v1/services/web/deploy", R"({"release":"v2;rm"})");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 400) << api->body;
  CliResult long_label = RunCli(*daemon_, {"deploy", "web", "--release", std::string(65, 'v')});
  EXPECT_EQ(long_label.exit_code, 1) << long_label.out;
  EXPECT_NE(long_label.out.find("release label is 65 characters long; at most 64"),
            std::string::npos)
      << long_label.out;

  StopLoadExpectClean();
  json history = History();
  ASSERT_EQ(history["deployments"].size(), 1u) << history.dump(2);
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  EXPECT_TRUE(ServiceJson()["deployment"].is_null());
}

TEST_F(Deploy, PreviewTokenGuardsTheIdleColorAndNeverReachesTheApp) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon(
      {.command = TestappCommand(), .checks = "      - http: {path: /, expect_status: 200}\n"},
      "preview: {listen: 127.0.0.1:{preview_port}, token: " + std::string(kPreviewToken) + "}\n"));
  ASSERT_NO_FATAL_FAILURE(DeployLive("v1", /*manual=*/false));
  ASSERT_NO_FATAL_FAILURE(StartLoad());
  // The http check goes through the preview: it must carry the token itself.
  CliResult r = RunCli(*daemon_, {"deploy", "web", "--release", "v2"});
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  StopLoadExpectClean();
  ASSERT_EQ(r.exit_code, 0) << r.out;

  const uint16_t preview = daemon_->preview_port();
  auto none = HttpGet("127.0.0.1", preview, "/");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(none->status, 401) << none->body;
  EXPECT_NE(none->body.find("X-Cutover-Preview-Token"), std::string::npos) << none->body;
  auto wrong = HttpGet("127.0.0.1", preview, "/", "localhost",
                       {{"X-Cutover-Preview-Token", "preview-secret-WRONG-56789"}});
  ASSERT_TRUE(wrong) << wrong.error().message;
  EXPECT_EQ(wrong->status, 403) << wrong->body;
  EXPECT_EQ(wrong->body.find(kPreviewToken), std::string::npos) << wrong->body;

  const HeaderList token = {{"X-Cutover-Preview-Token", std::string(kPreviewToken)}};
  EXPECT_EQ(GetText(preview, "/", token), "v1");
  std::string echoed = GetText(preview, "/headers", token);
  EXPECT_NE(echoed.find("GET /headers HTTP/1.1"), std::string::npos) << echoed;
  std::string lower = echoed;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  EXPECT_EQ(lower.find("x-cutover-preview-token"), std::string::npos) << echoed;
  EXPECT_EQ(echoed.find(kPreviewToken), std::string::npos) << echoed;
  // The main listener needs no token.
  EXPECT_EQ(GetText(daemon_->port()), "v2");
}

}  // namespace
}  // namespace cutover::test
