// Rollback and recovery, as a user sees them, against the real cutover
// binary and real cutover-testapp instances run by the process driver:
// `cutover rollback` inside and after the rollback window, the refusals, a
// daemon killed with or without a deployment running, a clean stop with and
// without --keep-instances, an instance that crashes while live, the static
// driver, and the first deployment of a fresh service. Live traffic runs
// during each of them and must not lose a request.
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "api/client.h"
#include "harness.h"
#include "support/child_process.h"
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

// Every instance of a test gets this variable (with the test's folder as its
// value) through the service's driver env, so the test can find its own
// processes in /proc and no other.
constexpr std::string_view kTagVariable = "CUTOVER_ROLLBACK_TEST_TAG";

size_t Count(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// A process of an instance, found through /proc.
struct InstanceProcess {
  pid_t pid = 0;
  std::string release;
  std::string color;
  uint16_t port = 0;
  bool testapp = false;  // the app itself, not the /bin/sh running it
};

// The processes (zombies excluded) whose environment holds kTagVariable=tag.
std::vector<InstanceProcess> TaggedProcesses(const std::string& tag) {
  std::vector<InstanceProcess> out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  const std::string want = std::string(kTagVariable) + "=" + tag;
  while (dirent* entry = ::readdir(proc)) {
    const std::string name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string base = "/proc/" + name;
    // Read without a stream: a process that exits between the open and the
    // read makes the read fail (ESRCH), which a stream would throw.
    const std::string stat = ReadFile(base + "/stat").value_or(std::string());
    const size_t paren = stat.rfind(") ");
    if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
    const char state = stat[paren + 2];
    if (state == 'Z' || state == 'X') continue;
    const std::string env = ReadFile(base + "/environ").value_or(std::string());
    InstanceProcess p;
    bool tagged = false;
    std::istringstream vars(env);
    for (std::string var; std::getline(vars, var, '\0');) {
      if (var == want) tagged = true;
      if (var.starts_with("CUTOVER_RELEASE=")) p.release = var.substr(16);
      if (var.starts_with("CUTOVER_COLOR=")) p.color = var.substr(14);
      if (var.starts_with("PORT=")) p.port = static_cast<uint16_t>(std::stoi("0" + var.substr(5)));
    }
    if (!tagged) continue;
    p.pid = std::stoi(name);
    std::error_code ec;
    const std::string exe = std::filesystem::read_symlink(base + "/exe", ec).string();
    p.testapp = exe.find("cutover-testapp") != std::string::npos;
    out.push_back(std::move(p));
  }
  ::closedir(proc);
  return out;
}

// True when a TCP connect to 127.0.0.1:port is refused: nothing listens.
bool Refuses(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 &&
         errno == ECONNREFUSED;
}

// One GET / to 127.0.0.1:port: the body when 200, else what went wrong.
std::string GetBody(uint16_t port) {
  auto r = HttpGet("127.0.0.1", port, "/", "localhost", {}, DeadlineIn(seconds(5)));
  if (!r) return "error: " + r.error().message;
  if (r->status != 200) return "status " + std::to_string(r->status) + ": " + r->body;
  return r->body;
}

LoadOptions LoadOn(uint16_t port) {
  LoadOptions o;
  o.port = port;
  // Constant, moderate load: enough to catch a lost request at every step
  // without starving the daemon and the instances of two shared cores.
  o.connections = 8;
  o.pause = milliseconds(2);
  return o;
}

// The summary of a load run must show traffic and not one failed request.
void ExpectNoFailures(const LoadSummary& s, std::string_view when) {
  EXPECT_GT(s.responses, 0u) << when << ": no traffic went through";
  EXPECT_EQ(s.errors, 0u) << when << ": " << s.ToString();
  EXPECT_EQ(s.non_2xx, 0u) << when << ": " << s.ToString();
}

// Lets at least `n` more requests through `load`.
bool MoreTraffic(const LoadGenerator& load, uint64_t n = 200) {
  return load.WaitForCompleted(load.Completed() + n, DeadlineIn(seconds(10)));
}

struct ServiceOptions {
  int instances = 1;
  std::string promotion = "auto";
  std::string rollback_window = "10m";
  std::string stop_timeout = "2s";
  // Shell text run before the app (e.g. "sleep 0.5;").
  std::string command_prefix;
};

class Rollback : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("cutover-rollback");
    ASSERT_TRUE(dir) << dir.error().message;
    dir_.emplace(std::move(*dir));
    tag_ = dir_->path().string();
  }

  // Stops what still runs (a daemon stops its instances) and checks that no
  // process of the test is left; kills any that is.
  void TearDown() override {
    if (keep_daemon_ && keep_daemon_->Running()) {
      (void)keep_daemon_->Signal(SIGTERM);
      EXPECT_TRUE(keep_daemon_->Wait(DeadlineIn(seconds(15))).has_value());
    }
    if (daemon_ && daemon_->process().Running()) {
      std::optional<int> code = daemon_->Stop();
      const std::optional<ExitStatus>& how = daemon_->process().exit_status();
      EXPECT_EQ(code, std::optional<int>(0)) << "the daemon did not stop cleanly ("
                                             << (how ? how->ToString() : "still running") << "):\n"
                                             << daemon_->process().Output();
    }
    if (!dir_) return;
    const bool none_left =
        WaitUntil([&] { return TaggedProcesses(tag_).empty(); }, DeadlineIn(seconds(10)));
    EXPECT_TRUE(none_left) << TaggedProcesses(tag_).size()
                           << " instance process(es) still run after the daemon stopped";
    for (const InstanceProcess& p : TaggedProcesses(tag_)) ::kill(p.pid, SIGKILL);
  }

  // A process-driver service "web" on Host: localhost whose instances answer
  // GET / with their release label.
  std::string ProcessConfig(const ServiceOptions& o) const {
    return "listen: 127.0.0.1:{port}\n"
           "services:\n"
           "  web:\n"
           "    hosts: [localhost]\n"
           "    driver:\n"
           "      type: process\n"
           "      command: \"" +
           o.command_prefix + "'" + TestappBinary() +
           "' --name $CUTOVER_RELEASE --quiet\"\n"
           "      instances: " +
           std::to_string(o.instances) +
           "\n"
           "      stop_timeout: " +
           o.stop_timeout +
           "\n"
           "      env: {" +
           std::string(kTagVariable) + ": '" + tag_ +
           "'}\n"
           "    health: {path: /healthz, interval: 150ms, timeout: 120ms, "
           "unhealthy_threshold: 3, deadline: 20s}\n"
           "    promotion: " +
           o.promotion +
           "\n"
           "    rollback_window: " +
           o.rollback_window + "\n";
  }

  void StartDaemon(const ServiceOptions& o = {}) {
    auto d = Daemon::Start(*dir_, ProcessConfig(o));
    ASSERT_TRUE(d) << d.error().message;
    daemon_ = std::move(*d);
  }

  // `cutover ARGS...` against daemon_ (bounded in time by the harness).
  CliResult Cli(const std::vector<std::string>& args) const { return daemon_->Cli(args); }

  // `cutover deploy web --release RELEASE` must succeed.
  void Deploy(const std::string& release, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"deploy", "web", "--release", release};
    args.insert(args.end(), extra.begin(), extra.end());
    CliResult r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.out << "\ndaemon:\n" << daemon_->process().Output();
  }

  json Service() const { return daemon_->GetJson("/v1/services/web"); }

  json Deployment(int64_t id) const {
    return daemon_->GetJson("/v1/services/web/deployments/" + std::to_string(id));
  }

  // Starts a deployment through the API without following it; its id.
  int64_t StartDeploy(const std::string& release) {
    auto r = daemon_->Api("POST", "/v1/services/web/deploy", R"({"release":")" + release + R"("})");
    if (!r || r->status != 202) {
      ADD_FAILURE() << "deploy " << release << ": "
                    << (r ? std::to_string(r->status) + " " + r->body : r.error().message);
      return 0;
    }
    return ParseJson(r->body).value("id", int64_t{0});
  }

  // Waits until step `step` of deployment `id` has `outcome`.
  bool WaitStep(int64_t id, std::string_view step, std::string_view outcome) const {
    return WaitUntil(
        [&] {
          json d = Deployment(id);
          if (!d.is_object()) return false;
          for (const json& s : d["steps"]) {
            if (s.value("name", "") == step) return s.value("outcome", "") == outcome;
          }
          return false;
        },
        DeadlineIn(seconds(20)), milliseconds(20));
  }

  bool WaitOutcome(int64_t id, std::string_view outcome) const {
    return WaitUntil(
        [&] {
          json d = Deployment(id);
          return d.is_object() && d.value("outcome", "") == outcome;
        },
        DeadlineIn(seconds(20)), milliseconds(20));
  }

  // With promotion: manual, deploys `release` and promotes it once it waits.
  void DeployAndPromote(const std::string& release) {
    const int64_t id = StartDeploy(release);
    ASSERT_NE(id, 0);
    ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
    CliResult r = Cli({"promote", "web"});
    ASSERT_EQ(r.exit_code, 0) << r.out;
    ASSERT_TRUE(WaitOutcome(id, "succeeded")) << Deployment(id).dump(2);
  }

  // The instance ports of `color`, from the targets the daemon reports.
  std::vector<uint16_t> Ports(std::string_view color) const {
    std::vector<uint16_t> out;
    json s = Service();
    if (!s.is_object()) return out;
    for (const json& t : s["colors"][std::string(color)]["targets"]) {
      const std::string address = t.value("address", "");
      out.push_back(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
    return out;
  }

  std::string SlotState(std::string_view color) const {
    json s = Service();
    return s.is_object() ? s["colors"][std::string(color)].value("state", "") : "";
  }

  // The pids of the running test apps of `release`.
  std::vector<pid_t> AppPids(std::string_view release) const {
    std::vector<pid_t> out;
    for (const InstanceProcess& p : TaggedProcesses(tag_)) {
      if (p.testapp && p.release == release) out.push_back(p.pid);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  bool NoProcessOf(std::string_view release) const {
    for (const InstanceProcess& p : TaggedProcesses(tag_)) {
      if (p.release == release) return false;
    }
    return true;
  }

  std::string MainGet() const { return GetBody(daemon_->port()); }
  std::string PreviewGet() const { return GetBody(daemon_->preview_port()); }

  std::optional<TempDir> dir_;
  std::string tag_;
  // A daemon replaced by a later one on the same folder; kept until the end
  // so that its process group is not signalled while instances run.
  std::unique_ptr<Daemon> retired_daemon_;
  std::unique_ptr<Daemon> daemon_;
  // A `cutover serve --keep-instances` the test runs itself.
  std::unique_ptr<ChildProcess> keep_daemon_;
};

TEST_F(Rollback, InsideTheWindowSwitchesBackAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.rollback_window = "10m"}));
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_EQ(MainGet(), "v1");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  EXPECT_EQ(MainGet(), "v2");
  const std::vector<pid_t> v1_pids = AppPids("v1");
  ASSERT_EQ(v1_pids.size(), 1u);
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  CliResult r = Cli({"rollback", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("rollback from v2 to v1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("v1 was still running; switched back at once"), std::string::npos) << r.out;
  EXPECT_EQ(MainGet(), "v1");
  // Switched back to the very instance that ran before: nothing was started.
  EXPECT_EQ(AppPids("v1"), v1_pids);
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  ExpectNoFailures(summary, "deploy v2 and roll back");
  EXPECT_GT(summary.by_body["v2"], 0u) << summary.ToString();

  auto history = daemon_->Api("GET", "/v1/services/web/deployments");
  ASSERT_TRUE(history && history->status == 200);
  json list = ParseJson(history->body)["deployments"];
  ASSERT_EQ(list.size(), 3u) << list.dump(2);
  EXPECT_EQ(list[0].value("release", ""), "v1");
  EXPECT_EQ(list[0].value("outcome", ""), "succeeded") << list[0].dump(2);
  EXPECT_NE(list[0].value("message", "").find("rollback from v2 to v1"), std::string::npos)
      << list[0].dump(2);
  EXPECT_EQ(list[1].value("release", ""), "v2");
  EXPECT_EQ(list[1].value("outcome", ""), "rolled_back") << list[1].dump(2);
  EXPECT_EQ(list[2].value("release", ""), "v1");
  EXPECT_EQ(list[2].value("outcome", ""), "succeeded");
  EXPECT_EQ(list[0].value("kind", ""), "rollback") << list[0].dump(2);
  EXPECT_EQ(list[1].value("kind", ""), "deploy") << list[1].dump(2);
  EXPECT_TRUE(list[0]["switch_ms"].is_number_integer()) << list[0].dump(2);
  EXPECT_TRUE(list[0]["failed_step"].is_null()) << list[0].dump(2);
  CliResult h = Cli({"history", "web"});
  EXPECT_EQ(h.exit_code, 0) << h.out;
  EXPECT_TRUE(std::regex_search(h.out, std::regex(R"(3\s+v1\s+blue\s+rollback\s+succeeded)")))
      << h.out;
  EXPECT_TRUE(std::regex_search(h.out, std::regex(R"(2\s+v2\s+green\s+deploy\s+rolled_back)")))
      << h.out;
}

TEST_F(Rollback, AfterTheWindowStartsThePreviousReleaseAgainFirst) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.rollback_window = "1s"}));
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  const std::vector<uint16_t> v1_ports = Ports("blue");
  ASSERT_EQ(v1_ports.size(), 1u);
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  ASSERT_TRUE(WaitUntil([&] { return SlotState("blue") == "stopped"; }, DeadlineIn(seconds(10))))
      << Service().dump(2);
  EXPECT_EQ(Service()["colors"]["blue"].value("release", ""), "v1");
  for (uint16_t port : v1_ports) {
    EXPECT_TRUE(WaitUntil([&] { return Refuses(port); }, DeadlineIn(seconds(5))))
        << "v1 still listens on " << port;
  }
  EXPECT_TRUE(NoProcessOf("v1"));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  CliResult r = Cli({"rollback", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("v1 had been stopped; started it again, waited until healthy, then "
                       "switched"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(MainGet(), "v1");
  EXPECT_EQ(AppPids("v1").size(), 1u);
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  ExpectNoFailures(summary, "deploy v2, retire v1, roll back to v1");
  EXPECT_GT(summary.by_body["v1"], 0u) << summary.ToString();
  EXPECT_GT(summary.by_body["v2"], 0u) << summary.ToString();

  auto history = daemon_->Api("GET", "/v1/services/web/deployments");
  ASSERT_TRUE(history && history->status == 200);
  json list = ParseJson(history->body)["deployments"];
  ASSERT_EQ(list.size(), 3u) << list.dump(2);
  EXPECT_EQ(list[0].value("release", ""), "v1");
  EXPECT_EQ(list[0].value("outcome", ""), "succeeded") << list[0].dump(2);
  EXPECT_EQ(list[1].value("release", ""), "v2");
  EXPECT_EQ(list[1].value("outcome", ""), "rolled_back") << list[1].dump(2);
}

TEST_F(Rollback, RefusedWithNothingToGoBackToOrWhileADeploymentRuns) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.promotion = "manual"}));
  ASSERT_NO_FATAL_FAILURE(DeployAndPromote("v1"));
  ASSERT_EQ(MainGet(), "v1");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  // Only v1 was ever deployed.
  CliResult nothing = Cli({"rollback", "web"});
  EXPECT_EQ(nothing.exit_code, 1) << nothing.out;
  EXPECT_NE(nothing.out.find("there is no previous release on green to roll back to"),
            std::string::npos)
      << nothing.out;
  auto api = daemon_->Api("POST", "/v1/services/web/rollback");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 409) << api->body;

  // v2 waits for approval: rollback is refused, abort is the way out.
  const int64_t id = StartDeploy("v2");
  ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
  api = daemon_->Api("POST", "/v1/services/web/rollback");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 409) << api->body;
  EXPECT_NE(api->body.find("abort it instead"), std::string::npos) << api->body;
  CliResult running = Cli({"rollback", "web"});
  EXPECT_EQ(running.exit_code, 1) << running.out;
  EXPECT_NE(running.out.find("deployment " + std::to_string(id) + " of v2 is running"),
            std::string::npos)
      << running.out;
  EXPECT_NE(running.out.find("abort it instead"), std::string::npos) << running.out;

  CliResult aborted = Cli({"abort", "web"});
  EXPECT_EQ(aborted.exit_code, 0) << aborted.out;
  EXPECT_TRUE(WaitOutcome(id, "aborted")) << Deployment(id).dump(2);
  EXPECT_EQ(MainGet(), "v1");
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  ExpectNoFailures(summary, "refused rollbacks and an aborted deployment");
  EXPECT_EQ(summary.by_body.size(), 1u) << summary.ToString();
}

TEST_F(Rollback, DaemonKilledMidDeploymentKeepsLiveAndStopsTheCandidate) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.promotion = "manual"}));
  ASSERT_NO_FATAL_FAILURE(DeployAndPromote("v1"));
  auto before = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*before)) << before->Snapshot().ToString();

  const int64_t id = StartDeploy("v2");
  ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
  const std::vector<uint16_t> v2_ports = Ports("green");
  ASSERT_EQ(v2_ports.size(), 1u);
  const std::vector<pid_t> v1_pids = AppPids("v1");
  ASSERT_EQ(v1_pids.size(), 1u);
  ASSERT_EQ(AppPids("v2").size(), 1u);
  json blue = Service()["colors"]["blue"];
  ASSERT_EQ(blue["logs"].size(), 1u) << blue.dump(2);
  const std::string v1_log = blue["logs"][0].get<std::string>();
  ASSERT_TRUE(MoreTraffic(*before)) << before->Snapshot().ToString();
  LoadSummary summary = before->Stop();
  ExpectNoFailures(summary, "before the kill");

  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_EQ(MainGet(), "v1");
  auto after = LoadGenerator::Start(LoadOn(daemon_->port()));

  json d = Deployment(id);
  EXPECT_EQ(d.value("outcome", ""), "interrupted") << d.dump(2);
  for (uint16_t port : v2_ports) {
    EXPECT_TRUE(WaitUntil([&] { return Refuses(port); }, DeadlineIn(seconds(10))))
        << "the candidate still listens on " << port;
  }
  EXPECT_TRUE(WaitUntil([&] { return NoProcessOf("v2"); }, DeadlineIn(seconds(10))))
      << "a process of the candidate v2 outlived the restart";
  EXPECT_EQ(SlotState("green"), "stopped") << Service().dump(2);

  const std::string log = daemon_->process().Output();
  EXPECT_NE(log.find("adopted 1 running instance(s) of v1 on blue"), std::string::npos) << log;
  EXPECT_EQ(AppPids("v1"), v1_pids) << "v1 is not served by the instance that ran before";
  auto v1_log_text = ReadFile(v1_log);
  ASSERT_TRUE(v1_log_text) << v1_log_text.error().message;
  EXPECT_EQ(Count(*v1_log_text, "--- cutover: starting instance"), 1u) << *v1_log_text;

  ASSERT_TRUE(MoreTraffic(*after)) << after->Snapshot().ToString();
  summary = after->Stop();
  ExpectNoFailures(summary, "after the restart");
  EXPECT_EQ(summary.by_body.size(), 1u) << summary.ToString();
}

TEST_F(Rollback, DaemonKilledWhileIdleAdoptsLiveInstancesAndDeploysAgain) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  const std::vector<pid_t> v1_pids = AppPids("v1");
  const std::vector<pid_t> v2_pids = AppPids("v2");
  ASSERT_EQ(v1_pids.size(), 1u);
  ASSERT_EQ(v2_pids.size(), 1u);
  auto before = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*before)) << before->Snapshot().ToString();
  LoadSummary summary = before->Stop();
  ExpectNoFailures(summary, "before the kill");

  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_EQ(MainGet(), "v2");
  auto after = LoadGenerator::Start(LoadOn(daemon_->port()));
  const std::string log = daemon_->process().Output();
  EXPECT_NE(log.find("adopted 1 running instance(s) of v2 on green"), std::string::npos) << log;
  EXPECT_NE(log.find("adopted 1 running instance(s) of v1 on blue"), std::string::npos) << log;
  EXPECT_EQ(AppPids("v2"), v2_pids);
  EXPECT_EQ(AppPids("v1"), v1_pids);
  EXPECT_EQ(SlotState("blue"), "running") << Service().dump(2);
  ASSERT_TRUE(MoreTraffic(*after)) << after->Snapshot().ToString();

  // The adopted rollback slot is retired by the next deployment.
  ASSERT_NO_FATAL_FAILURE(Deploy("v3"));
  EXPECT_EQ(MainGet(), "v3");
  EXPECT_TRUE(WaitUntil([&] { return NoProcessOf("v1"); }, DeadlineIn(seconds(10))));
  EXPECT_EQ(AppPids("v2"), v2_pids);
  ASSERT_TRUE(MoreTraffic(*after)) << after->Snapshot().ToString();
  summary = after->Stop();
  ExpectNoFailures(summary, "after the restart and a new deployment");
  EXPECT_GT(summary.by_body["v3"], 0u) << summary.ToString();
}

TEST_F(Rollback, CleanStopStopsEveryInstance) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  std::vector<uint16_t> ports = Ports("blue");
  for (uint16_t p : Ports("green")) ports.push_back(p);
  ASSERT_EQ(ports.size(), 2u);
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "before the stop");

  EXPECT_EQ(daemon_->Stop(), std::optional<int>(0)) << daemon_->process().Output();
  for (uint16_t port : ports) EXPECT_TRUE(Refuses(port)) << "an instance still listens on " << port;
  EXPECT_TRUE(TaggedProcesses(tag_).empty());
}

TEST_F(Rollback, KeepInstancesLeavesThemRunningForTheNextDaemon) {
  // The first daemon only writes the configuration; the one under test runs
  // with --keep-instances on the same file, store and socket.
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_EQ(daemon_->Stop(), std::optional<int>(0));
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve", "--config",        daemon_->config_path(),
            "--workers",     "2",     "--keep-instances"};
  o.output_file = dir_->File("keep.log");
  o.unset_env = {"CUTOVER_CONTROL"};
  auto spawned = ChildProcess::Spawn(o);
  ASSERT_TRUE(spawned) << spawned.error().message;
  keep_daemon_ = std::make_unique<ChildProcess>(std::move(*spawned));
  ApiClient client(daemon_->control(), Millis(2000));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = client.Call("GET", "/v1/services");
        return !keep_daemon_->Running() || (r && r->status == 200);
      },
      DeadlineIn(seconds(15))));
  ASSERT_TRUE(keep_daemon_->Running()) << keep_daemon_->Output();
  ASSERT_TRUE(WaitForPort("127.0.0.1", daemon_->port(), DeadlineIn(seconds(5))));

  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  const std::vector<uint16_t> blue_ports = Ports("blue");
  const std::vector<uint16_t> green_ports = Ports("green");
  ASSERT_EQ(blue_ports.size(), 1u);
  ASSERT_EQ(green_ports.size(), 1u);
  const std::vector<pid_t> v1_pids = AppPids("v1");
  const std::vector<pid_t> v2_pids = AppPids("v2");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "under the --keep-instances daemon");

  ASSERT_TRUE(keep_daemon_->Signal(SIGTERM));
  auto exit = keep_daemon_->Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << "cutover serve --keep-instances did not stop";
  EXPECT_TRUE(exit->Exited(0)) << exit->ToString() << "\n" << keep_daemon_->Output();
  // The instances outlived it and still answer on their ports.
  EXPECT_EQ(GetBody(blue_ports[0]), "v1");
  EXPECT_EQ(GetBody(green_ports[0]), "v2");
  EXPECT_EQ(AppPids("v1"), v1_pids);
  EXPECT_EQ(AppPids("v2"), v2_pids);

  // A daemon started afterwards adopts them and serves at once.
  auto next = Daemon::Start(*dir_, ProcessConfig({}));
  ASSERT_TRUE(next) << next.error().message;
  retired_daemon_ = std::move(daemon_);
  daemon_ = std::move(*next);
  EXPECT_EQ(MainGet(), "v2");
  const std::string log = daemon_->process().Output();
  EXPECT_NE(log.find("adopted 1 running instance(s) of v2 on green"), std::string::npos) << log;
  EXPECT_NE(log.find("adopted 1 running instance(s) of v1 on blue"), std::string::npos) << log;
  EXPECT_EQ(AppPids("v1"), v1_pids);
  EXPECT_EQ(AppPids("v2"), v2_pids);
  load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "after the adoption");

  // Without --keep-instances, a clean stop takes the adopted instances down.
  EXPECT_EQ(daemon_->Stop(), std::optional<int>(0)) << daemon_->process().Output();
  EXPECT_TRUE(Refuses(blue_ports[0]));
  EXPECT_TRUE(Refuses(green_ports[0]));
}

TEST_F(Rollback, CrashedLiveInstanceIsRestartedAndReported) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.instances = 2}));
  // Subscribed before the first deployment, so its events prove the stream
  // is up before the crash. The stream ends at the first instance event, or
  // when the daemon stops.
  std::mutex mu;
  std::vector<SseEvent> events;
  std::thread stream([&] {
    ApiClient client(daemon_->control(), Millis(5000));
    auto r = client.Stream(
        "GET", "/v1/events", {},
        [&](const SseEvent& e) {
          std::lock_guard lock(mu);
          events.push_back(e);
          return e.event != "instance";
        },
        Millis(60'000));
    (void)r;
  });
  auto seen = [&](std::string_view kind) -> std::optional<SseEvent> {
    std::lock_guard lock(mu);
    for (const SseEvent& e : events) {
      if (e.event == kind) return e;
    }
    return std::nullopt;
  };
  // Whatever happens below, the stream thread is joined.
  struct Joiner {
    std::function<void()> fn;
    ~Joiner() { fn(); }
  } joiner{[&] {
    if (!stream.joinable()) return;
    if (!seen("instance") && daemon_->process().Running()) daemon_->Stop();
    stream.join();
  }};

  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  EXPECT_TRUE(WaitUntil([&] { return seen("finished").has_value(); }, DeadlineIn(seconds(10))));
  std::vector<InstanceProcess> apps;
  for (const InstanceProcess& p : TaggedProcesses(tag_)) {
    if (p.testapp) apps.push_back(p);
  }
  ASSERT_EQ(apps.size(), 2u);
  const InstanceProcess victim = apps[0];
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  ASSERT_EQ(::kill(victim.pid, SIGKILL), 0);
  EXPECT_TRUE(WaitUntil([&] { return seen("instance").has_value(); }, DeadlineIn(seconds(10))));
  // A new process serves the same port again, healthy.
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (const InstanceProcess& p : TaggedProcesses(tag_)) {
          if (p.testapp && p.port == victim.port && p.pid != victim.pid) return true;
        }
        return false;
      },
      DeadlineIn(seconds(10))));
  EXPECT_TRUE(daemon_->WaitHealth("web", "blue", true));
  EXPECT_EQ(GetBody(victim.port), "v1");
  ASSERT_TRUE(MoreTraffic(*load, 500)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  // A request in flight on the killed instance went to the other one.
  EXPECT_EQ(summary.errors, 0u) << summary.ToString();
  EXPECT_EQ(summary.non_2xx, 0u) << summary.ToString();

  // Traffic recovers on both instances, the restarted one included.
  auto after = HttpGet("127.0.0.1", victim.port, "/__stats");
  ASSERT_TRUE(after) << after.error().message;
  const uint64_t seen_before = ParseJson(after->body).value("requests", uint64_t{0});
  load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load, 500)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "after the restart");
  after = HttpGet("127.0.0.1", victim.port, "/__stats");
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_GT(ParseJson(after->body).value("requests", uint64_t{0}), seen_before)
      << "the restarted instance gets no traffic";

  std::optional<SseEvent> e = seen("instance");
  ASSERT_TRUE(e) << "no instance event on /v1/events";
  json data = ParseJson(e->data);
  EXPECT_EQ(data.value("kind", ""), "instance") << e->data;
  EXPECT_EQ(data.value("release", ""), "v1") << e->data;
  EXPECT_NE(data.value("message", "").find("restarting"), std::string::npos) << e->data;
  CliResult status = Cli({"status", "web"});
  EXPECT_EQ(status.exit_code, 0) << status.out;
  EXPECT_NE(status.out.find("restarted 1x"), std::string::npos) << status.out;

  // The events of one more deployment let the daemon see that the event
  // stream's client has gone (a subscriber still attached when the daemon
  // stops is CleanStopWithAnEventSubscriberExitsCleanly).
  stream.join();
  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  EXPECT_EQ(MainGet(), "v2");
}

TEST_F(Rollback, StaticDriverDeploysToGivenTargetsAndRollsBack) {
  auto a = Backend::Start(*dir_, "A");
  ASSERT_TRUE(a) << a.error().message;
  auto b = Backend::Start(*dir_, "B");
  ASSERT_TRUE(b) << b.error().message;
  auto d = Daemon::Start(*dir_,
                         "listen: 127.0.0.1:{port}\n"
                         "services:\n"
                         "  web:\n"
                         "    hosts: [localhost]\n"
                         "    driver: {type: static, blue: [" +
                             (*a)->address() +
                             "]}\n"
                             "    health: {path: /healthz, interval: 150ms, timeout: 120ms}\n");
  ASSERT_TRUE(d) << d.error().message;
  daemon_ = std::move(*d);
  ASSERT_TRUE(daemon_->WaitHealth("web", "blue", true));
  ASSERT_EQ(MainGet(), "A");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  ASSERT_NO_FATAL_FAILURE(Deploy("v2", {"--targets", (*b)->address()}));
  EXPECT_EQ(Service().value("live", ""), "green");
  EXPECT_EQ(MainGet(), "B");
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();

  CliResult r = Cli({"rollback", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("switched back at once"), std::string::npos) << r.out;
  EXPECT_EQ(Service().value("live", ""), "blue");
  EXPECT_EQ(MainGet(), "A");
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  ExpectNoFailures(summary, "static deploy and rollback");
  EXPECT_GT(summary.by_body["B"], 0u) << summary.ToString();
}

TEST_F(Rollback, FirstDeploymentIsPreviewedBeforeItGoesLive) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.promotion = "manual"}));
  std::string main = MainGet();
  EXPECT_TRUE(main.starts_with("status 503")) << main;
  EXPECT_NE(main.find("service 'web' has no release live yet"), std::string::npos) << main;
  std::string preview = PreviewGet();
  EXPECT_TRUE(preview.starts_with("status 503")) << preview;
  EXPECT_NE(preview.find("service 'web' has no release on its idle color (green) to preview"),
            std::string::npos)
      << preview;

  const int64_t id = StartDeploy("v1");
  ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
  EXPECT_EQ(PreviewGet(), "v1");
  main = MainGet();
  EXPECT_NE(main.find("has no release live yet"), std::string::npos) << main;

  CliResult r = Cli({"promote", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_TRUE(WaitOutcome(id, "succeeded")) << Deployment(id).dump(2);
  EXPECT_EQ(MainGet(), "v1");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  LoadSummary summary = load->Stop();
  ExpectNoFailures(summary, "after the first release went live");
  EXPECT_EQ(summary.by_body.size(), 1u) << summary.ToString();
}

TEST_F(Rollback, RollbackAfterARestartUsesTheAdoptedInstances) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_NO_FATAL_FAILURE(Deploy("v2"));
  const std::vector<pid_t> v1_pids = AppPids("v1");
  ASSERT_EQ(v1_pids.size(), 1u);
  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  CliResult r = Cli({"rollback", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("v1 was still running; switched back at once"), std::string::npos) << r.out;
  EXPECT_EQ(MainGet(), "v1");
  EXPECT_EQ(AppPids("v1"), v1_pids);
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "rollback after a restart");
}

TEST_F(Rollback, DaemonKilledDuringTheFirstDeploymentStaysUnreleased) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.promotion = "manual"}));
  const int64_t id = StartDeploy("v1");
  ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
  const std::vector<uint16_t> ports = Ports("blue");
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(PreviewGet(), "v1");
  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;
  std::string main = MainGet();
  EXPECT_NE(main.find("has no release live yet"), std::string::npos) << main;
  EXPECT_EQ(Deployment(id).value("outcome", ""), "interrupted");
  EXPECT_TRUE(WaitUntil([&] { return Refuses(ports[0]); }, DeadlineIn(seconds(10))));
  EXPECT_TRUE(WaitUntil([&] { return NoProcessOf("v1"); }, DeadlineIn(seconds(10))));
  EXPECT_FALSE(Service().value("released", true)) << Service().dump(2);
  // A new first deployment works.
  const int64_t again = StartDeploy("v1b");
  ASSERT_TRUE(WaitStep(again, "approve", "waiting")) << Deployment(again).dump(2);
  EXPECT_EQ(PreviewGet(), "v1b");
  ASSERT_EQ(Cli({"promote", "web"}).exit_code, 0);
  ASSERT_TRUE(WaitOutcome(again, "succeeded")) << Deployment(again).dump(2);
  EXPECT_EQ(MainGet(), "v1b");
}

TEST_F(Rollback, CleanStopDuringADeploymentNeverMakesTheCandidateLive) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.promotion = "{auto_after: 1s}", .stop_timeout = "3s"}));
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  const int64_t id = StartDeploy("v2");
  ASSERT_TRUE(WaitStep(id, "approve", "waiting")) << Deployment(id).dump(2);
  const std::vector<uint16_t> ports = Ports("green");
  ASSERT_EQ(ports.size(), 1u);
  // A request in flight keeps the candidate from exiting at once on SIGTERM,
  // as a real application finishing its work does.
  auto slow = RawConn::Connect("127.0.0.1", ports[0]);
  ASSERT_TRUE(slow) << slow.error().message;
  ASSERT_TRUE(slow->Send(BuildRequest("GET", "/slow?ms=2500", "localhost")));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = HttpGet("127.0.0.1", ports[0], "/__stats");
        return r && ParseJson(r->body).value("requests", 0) >= 1;
      },
      DeadlineIn(seconds(5))))
      << "the slow request never reached the candidate";

  EXPECT_EQ(daemon_->Stop(), std::optional<int>(0)) << daemon_->process().Output();
  auto next = Daemon::Start(*dir_, ProcessConfig({.promotion = "{auto_after: 1s}"}));
  ASSERT_TRUE(next) << next.error().message;
  retired_daemon_ = std::move(daemon_);
  daemon_ = std::move(*next);
  EXPECT_EQ(Deployment(id).value("outcome", ""), "interrupted") << Deployment(id).dump(2);
  EXPECT_EQ(Service().value("live", ""), "blue") << Service().dump(2);
  // v1 is started again; whether it answers the very first request is the
  // subject of RestartAfterACleanStopAnswersFromTheLiveReleaseAtOnce.
  EXPECT_TRUE(WaitUntil([&] { return MainGet() == "v1"; }, DeadlineIn(seconds(10)))) << MainGet();
  EXPECT_TRUE(NoProcessOf("v2"));
  // The slow request was let finish before the candidate stopped.
  auto answer = slow->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(answer->body, "v2");
}

TEST_F(Rollback, RestartAfterACleanStopAnswersFromTheLiveReleaseAtOnce) {
  // An app that takes half a second to listen, as real ones do.
  const ServiceOptions options{.command_prefix = "sleep 0.5; exec "};
  ASSERT_NO_FATAL_FAILURE(StartDaemon(options));
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  EXPECT_EQ(daemon_->Stop(), std::optional<int>(0)) << daemon_->process().Output();
  EXPECT_TRUE(TaggedProcesses(tag_).empty());

  auto next = Daemon::Start(*dir_, ProcessConfig(options));
  ASSERT_TRUE(next) << next.error().message;
  retired_daemon_ = std::move(daemon_);
  daemon_ = std::move(*next);
  EXPECT_EQ(MainGet(), "v1");
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "right after a restart");
}

TEST_F(Rollback, CrashedInstanceUnderHeavyLoadLosesNoRequest) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.instances = 2}));
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  std::vector<InstanceProcess> apps;
  for (const InstanceProcess& p : TaggedProcesses(tag_)) {
    if (p.testapp) apps.push_back(p);
  }
  ASSERT_EQ(apps.size(), 2u);
  LoadOptions heavy = LoadOn(daemon_->port());
  heavy.connections = 32;
  heavy.pause = milliseconds(0);
  auto load = LoadGenerator::Start(heavy);
  ASSERT_TRUE(MoreTraffic(*load, 500)) << load->Snapshot().ToString();
  ASSERT_EQ(::kill(apps[0].pid, SIGKILL), 0);
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (const InstanceProcess& p : TaggedProcesses(tag_)) {
          if (p.testapp && p.port == apps[0].port && p.pid != apps[0].pid) return true;
        }
        return false;
      },
      DeadlineIn(seconds(10))));
  EXPECT_TRUE(daemon_->WaitHealth("web", "blue", true));
  ASSERT_TRUE(MoreTraffic(*load, 500)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "an instance killed under heavy load");
}

TEST_F(Rollback, StaticConfiguredTargetsCanBeRolledBackToAfterTheWindow) {
  auto a = Backend::Start(*dir_, "A");
  ASSERT_TRUE(a) << a.error().message;
  auto b = Backend::Start(*dir_, "B");
  ASSERT_TRUE(b) << b.error().message;
  auto d = Daemon::Start(*dir_,
                         "listen: 127.0.0.1:{port}\n"
                         "services:\n"
                         "  web:\n"
                         "    hosts: [localhost]\n"
                         "    driver: {type: static, blue: [" +
                             (*a)->address() +
                             "]}\n"
                             "    rollback_window: 1s\n"
                             "    health: {path: /healthz, interval: 150ms, timeout: 120ms}\n");
  ASSERT_TRUE(d) << d.error().message;
  daemon_ = std::move(*d);
  ASSERT_TRUE(daemon_->WaitHealth("web", "blue", true));
  auto load = LoadGenerator::Start(LoadOn(daemon_->port()));
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ASSERT_NO_FATAL_FAILURE(Deploy("v2", {"--targets", (*b)->address()}));
  ASSERT_TRUE(WaitUntil([&] { return Ports("blue").empty(); }, DeadlineIn(seconds(10))))
      << Service().dump(2);
  EXPECT_EQ(SlotState("blue"), "stopped") << Service().dump(2);

  CliResult r = Cli({"rollback", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("had been stopped"), std::string::npos) << r.out;
  EXPECT_EQ(MainGet(), "A");
  ASSERT_TRUE(MoreTraffic(*load)) << load->Snapshot().ToString();
  ExpectNoFailures(load->Stop(), "static rollback after the window");
}

TEST_F(Rollback, CleanStopWithAnEventSubscriberExitsCleanly) {
  ASSERT_NO_FATAL_FAILURE(StartDaemon());
  std::atomic<int> events{0};
  std::atomic<bool> ended{false};
  std::thread stream([&] {
    ApiClient client(daemon_->control(), Millis(5000));
    auto r = client.Stream(
        "GET", "/v1/events", {},
        [&](const SseEvent&) {
          ++events;
          return true;
        },
        Millis(60'000));
    (void)r;
    ended = true;
  });
  struct Joiner {
    std::function<void()> fn;
    ~Joiner() { fn(); }
  } joiner{[&] {
    if (daemon_->process().Running()) daemon_->process().Kill();
    stream.join();
  }};
  // Events of a deployment prove the stream is attached.
  ASSERT_NO_FATAL_FAILURE(Deploy("v1"));
  ASSERT_TRUE(WaitUntil([&] { return events > 0; }, DeadlineIn(seconds(10))));

  const std::optional<int> code = daemon_->Stop();
  const std::optional<ExitStatus>& how = daemon_->process().exit_status();
  EXPECT_EQ(code, std::optional<int>(0)) << (how ? how->ToString() : "still running") << "\n"
                                         << daemon_->process().Output();
  EXPECT_TRUE(WaitUntil([&] { return ended.load(); }, DeadlineIn(seconds(5))))
      << "the event stream did not end with the daemon";
}

}  // namespace
}  // namespace cutover::test
