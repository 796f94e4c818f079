// The demo's scenario (demo.sh) in both variants, with what a user of it
// would see checked from the outside: the deployments cutover recorded,
// every request of the shopper traffic, and the router's counters.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/metrics.h"
#include "support/postgres_server.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using cutover::test::MatchingMetrics;
using cutover::test::MetricSample;
using cutover::test::ParseMetrics;

constexpr int64_t kRollbackWindowMs = 20000;

struct Request {
  int64_t unix_ms = 0;
  std::string method, path;
  int status = 0;
  std::string release, result;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<Request> ReadShopperLog(const fs::path& path) {
  std::vector<Request> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    Request r;
    fields >> r.unix_ms >> r.method >> r.path >> r.status >> r.release >> r.result;
    EXPECT_FALSE(fields.fail()) << "malformed shopper line: " << line;
    out.push_back(std::move(r));
  }
  return out;
}

const json* Step(const json& deployment, const std::string& name) {
  for (const json& s : deployment["steps"]) {
    if (s["name"] == name) return &s;
  }
  return nullptr;
}

class ShopDemo : public ::testing::Test {
 protected:
  // Runs demo.sh with ARGS; its output goes to out/demo.out. Returns its
  // exit status.
  int RunDemo(const std::string& args) {
    artifacts_ = fs::temp_directory_path() /
                 ("cutover-demo-test-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(artifacts_);
    fs::create_directories(artifacts_);
    const std::string command = "BUILD='" + std::string(CUTOVER_BUILD_DIR) + "' '" +
                                std::string(CUTOVER_SOURCE_DIR) + "/examples/shop/demo.sh' " +
                                args + " --artifacts '" + artifacts_.string() + "' >'" +
                                (artifacts_ / "demo.out").string() + "' 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- demo output (kept in " << artifacts_.string() << ") ---\n"
                << ReadFile(artifacts_ / "demo.out");
    } else {
      fs::remove_all(artifacts_);
    }
  }

  // Everything the demo shows, asserted on what it recorded.
  void ExpectScenario() {
    const json history = json::parse(ReadFile(artifacts_ / "history.json"));
    std::vector<json> deployments(history["deployments"].begin(), history["deployments"].end());
    std::sort(deployments.begin(), deployments.end(),
              [](const json& a, const json& b) { return a["id"] < b["id"]; });
    std::vector<std::string> seen;
    for (const json& d : deployments) {
      seen.push_back(d["release"].get<std::string>() + " " + d["kind"].get<std::string>() + " " +
                     d["outcome"].get<std::string>() + " at " + d["failed_step"].dump());
    }
    // v2 and the rollback to v1 were both undone later, so both read
    // rolled_back; the refused rollback to v1 failed at its schema step.
    EXPECT_EQ(seen, (std::vector<std::string>{
                        "v1 deploy succeeded at null", "v2 deploy rolled_back at null",
                        "v1 rollback rolled_back at null", "v2 rollback succeeded at null",
                        "v1 rollback failed at \"schema\"", "v3 deploy failed at \"check\"",
                        "v4 deploy rolled_back at \"observe\""}));
    ASSERT_EQ(deployments.size(), 7u);

    // The contract ran once, for the roll forward to v2, after its window.
    const json& forward = deployments[3];
    const json* contract = Step(forward, "contract");
    ASSERT_NE(contract, nullptr) << forward.dump();
    EXPECT_EQ((*contract)["outcome"], "ok") << contract->dump();
    const json* forward_switch = Step(forward, "switch");
    ASSERT_NE(forward_switch, nullptr);
    EXPECT_GE((*contract)["started_unix_ms"].get<int64_t>(),
              (*forward_switch)["finished_unix_ms"].get<int64_t>() + kRollbackWindowMs);
    for (size_t i = 0; i < deployments.size(); ++i) {
      if (i == 3) continue;
      EXPECT_EQ(Step(deployments[i], "contract"), nullptr) << deployments[i].dump();
    }
    const json* schema = Step(deployments[4], "schema");
    ASSERT_NE(schema, nullptr);
    EXPECT_EQ((*schema)["outcome"], "failed");
    EXPECT_NE((*schema)["message"].get<std::string>().find("drop_order_note"), std::string::npos)
        << schema->dump();

    // v3 halted at its checks, live untouched; v4 rolled back by observe.
    const json* v3_check = Step(deployments[5], "check");
    ASSERT_NE(v3_check, nullptr);
    EXPECT_EQ((*v3_check)["outcome"], "failed");
    const json* v3_switch = Step(deployments[5], "switch");
    ASSERT_NE(v3_switch, nullptr);
    EXPECT_EQ((*v3_switch)["outcome"], "skipped");
    const json* v4_observe = Step(deployments[6], "observe");
    ASSERT_NE(v4_observe, nullptr);
    EXPECT_EQ((*v4_observe)["outcome"], "failed") << v4_observe->dump();

    // The shopper traffic: served by v1, v2 and (briefly) v4, never by v3;
    // its only errors are v4's 500s while v4 was live; no cart ever lost an item.
    const std::vector<Request> requests = ReadShopperLog(artifacts_ / "shopper.log");
    std::map<std::string, int> by_release;
    int errors = 0;
    const int64_t v4_start = deployments[6]["started_unix_ms"];
    const int64_t v4_end = deployments[6]["finished_unix_ms"];
    for (const Request& r : requests) {
      ++by_release[r.release];
      if (r.result == "ok") continue;
      ++errors;
      EXPECT_EQ(r.release, "v4") << r.unix_ms << " " << r.path << " " << r.result;
      EXPECT_EQ(r.status, 500) << r.unix_ms << " " << r.path << " " << r.result;
      EXPECT_GE(r.unix_ms, v4_start);
      EXPECT_LE(r.unix_ms, v4_end + 1000);
    }
    EXPECT_GT(requests.size(), 500u);
    EXPECT_GT(by_release["v1"], 50);
    EXPECT_GT(by_release["v2"], 200);
    EXPECT_GT(by_release["v4"], 0);
    EXPECT_EQ(by_release.count("v3"), 0u);
    EXPECT_EQ(by_release.count("-"), 0u) << "answers without the shop's release header";
    EXPECT_GT(errors, 0) << "v4's defect never showed";

    const json summary = json::parse(ReadFile(artifacts_ / "shopper-summary.json"));
    EXPECT_EQ(summary["requests"].get<size_t>(), requests.size());
    EXPECT_EQ(summary["errors"].get<int>(), errors);
    EXPECT_FALSE(summary["errors_by_reason"].contains("cart_mismatch")) << summary.dump();

    // The router's own counters, per color and release, agree: no 5xx but
    // v4's; each release counted at least the shopper requests it answered,
    // and v4's series on blue holds none of what v1 served there before.
    std::map<std::string, uint64_t> counted;  // "color release" -> requests
    for (const MetricSample& m :
         MatchingMetrics(ParseMetrics(ReadFile(artifacts_ / "metrics.txt")),
                         "cutover_color_requests_total", {{"service", "shop"}})) {
      const std::string& release = m.labels.at("release");
      counted[m.labels.at("color") + " " + release] += static_cast<uint64_t>(m.value);
      if (m.labels.at("class") == "5xx" && release != "v4") {
        EXPECT_EQ(m.value, 0) << m.labels.at("color") << " " << release;
      }
    }
    for (const char* key : {"blue v1", "green v2", "blue v3", "blue v4"}) {
      EXPECT_TRUE(counted.contains(key)) << key;
    }
    EXPECT_GE(counted["blue v1"], static_cast<uint64_t>(by_release["v1"]));
    EXPECT_GE(counted["green v2"], static_cast<uint64_t>(by_release["v2"]));
    EXPECT_GE(counted["blue v4"], static_cast<uint64_t>(by_release["v4"]));
    EXPECT_LT(counted["blue v4"] - by_release["v4"], static_cast<uint64_t>(by_release["v1"]))
        << "v4's series counts v1's requests";

    const std::string out = ReadFile(artifacts_ / "demo.out");
    ExpectNothingLeftRunning(out);
    EXPECT_NE(out.find("requests served per color and release"), std::string::npos);
    EXPECT_NE(out.find("what the shopper traffic saw"), std::string::npos);
  }

  // The processes that still use `folder`: run from it, name it on their
  // command line, or hold a file of it open (redis-server's log); "PID
  // (command)" each.
  static std::vector<std::string> ProcessesUsing(const std::string& folder) {
    std::vector<std::string> out;
    std::error_code ec;
    // Processes come and go while this reads: errors end a listing quietly.
    for (fs::directory_iterator entry("/proc", ec), end; !ec && entry != end; entry.increment(ec)) {
      const std::string pid = entry->path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string cmdline = ReadFile(entry->path() / "cmdline");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      std::error_code link_ec;
      bool uses = cmdline.find(folder) != std::string::npos ||
                  fs::read_symlink(entry->path() / "cwd", link_ec).string().starts_with(folder);
      for (fs::directory_iterator fd(entry->path() / "fd", link_ec), fds_end;
           !link_ec && fd != fds_end; fd.increment(link_ec)) {
        std::error_code target_ec;
        if (fs::read_symlink(fd->path(), target_ec).string().starts_with(folder)) uses = true;
      }
      if (uses) out.push_back(pid + " (" + cmdline + ")");
    }
    return out;
  }

  // The demo stopped every process it started (the daemon, the shop's
  // instances, Redis, PostgreSQL) and removed its folder. A process may take
  // a moment to exit after its pid file is gone, so this waits up to 10 s.
  static void ExpectNothingLeftRunning(const std::string& out) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(folder (/tmp/cutover-demo\.\w+))")))
        << "the demo did not name its folder";
    const std::string folder = m[1];
    EXPECT_FALSE(fs::exists(folder)) << folder;
    std::vector<std::string> left = ProcessesUsing(folder);
    for (int i = 0; i < 100 && !left.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      left = ProcessesUsing(folder);
    }
    EXPECT_TRUE(left.empty()) << "outlived the demo: " << ::testing::PrintToString(left);
  }

  fs::path artifacts_;
};

TEST_F(ShopDemo, SqliteScenario) {
  ASSERT_EQ(RunDemo(""), 0);
  ExpectScenario();
}

TEST_F(ShopDemo, RedisAndPostgresScenario) {
  if (!cutover::test::PostgresAvailable()) {
    GTEST_SKIP() << cutover::test::PostgresUnavailableReason();
  }
  if (std::system("command -v redis-server >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "redis-server is not installed (scripts/setup installs it)";
  }
  ASSERT_EQ(RunDemo("--services"), 0);
  ExpectScenario();
}

}  // namespace
