// DaemonFixture: the shape most integration tests share. A folder of the
// test's own, one daemon (the test starts it), and constant load through the
// daemon's main listener when the test asks for it. TearDown stops the load,
// stops the daemon and expects a clean exit. Header-only; one test thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "harness.h"
#include "support/load_generator.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover::test {

// How hard the load pushes, and how much of it must go through before the
// test goes on.
struct LoadShape {
  int connections = 6;
  std::chrono::milliseconds pause{2};
  uint64_t first = 50;  // requests completed before StartLoad returns
  bool keep_samples = false;
};

// A CLI run on its own thread, for commands that follow a deployment while
// the test acts on it.
class BackgroundCli {
 public:
  BackgroundCli(const Daemon& daemon, std::vector<std::string> args)
      : thread_([this, &daemon, args = std::move(args)] { result_ = daemon.Cli(args); }) {}
  ~BackgroundCli() {
    if (thread_.joinable()) thread_.join();
  }
  CliResult Join() {
    if (thread_.joinable()) thread_.join();
    return result_;
  }

 private:
  CliResult result_;
  std::thread thread_;
};

class DaemonFixture : public ::testing::Test {
 protected:
  explicit DaemonFixture(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    auto dir = TempDir::Create(prefix_);
    ASSERT_TRUE(dir) << dir.error().message;
    dir_.emplace(std::move(*dir));
  }

  void TearDown() override {
    if (load_) load_->Stop();
    if (!daemon_) return;
    std::optional<int> code = daemon_->Stop();
    EXPECT_EQ(code, std::optional<int>(0)) << "the daemon did not stop cleanly; its output:\n"
                                           << daemon_->process().Output();
  }

  // Constant load on the main listener (Host: localhost), as production
  // traffic would be.
  void StartLoad(LoadShape shape = {}) {
    LoadOptions options;
    options.port = daemon_->port();
    options.host_header = "localhost";
    options.connections = shape.connections;
    options.pause = shape.pause;
    options.keep_samples = shape.keep_samples;
    load_ = LoadGenerator::Start(options);
    ASSERT_TRUE(load_->WaitForCompleted(shape.first, DeadlineIn(std::chrono::seconds(10))))
        << load_->Snapshot().ToString();
  }

  // Waits until the load has seen `body` (a release answering) a few times.
  void WaitLoadSees(const std::string& body) {
    ASSERT_TRUE(WaitUntil([&] { return load_->Snapshot().by_body[body] > 20; },
                          DeadlineIn(std::chrono::seconds(10))))
        << load_->Snapshot().ToString();
  }

  // Stops the load and asserts that not one request failed.
  LoadSummary StopLoadExpectClean() {
    LoadSummary s = load_->Stop();
    EXPECT_GT(s.responses, 0u) << s.ToString();
    EXPECT_EQ(s.errors, 0u) << "requests failed: " << s.ToString();
    EXPECT_EQ(s.non_2xx, 0u) << "requests failed: " << s.ToString();
    return s;
  }

  // The service "web" and its deployments, as the API shows them (null
  // unless it answered 200).
  nlohmann::json ServiceJson() const { return daemon_->GetJson("/v1/services/web"); }
  nlohmann::json DeploymentJson(int64_t id) const {
    return daemon_->GetJson("/v1/services/web/deployments/" + std::to_string(id));
  }
  nlohmann::json History() const { return daemon_->GetJson("/v1/services/web/deployments"); }

  // Waits until step `name` of deployment `id` has `outcome`; the deployment.
  nlohmann::json WaitStep(int64_t id, std::string_view name, std::string_view outcome,
                          std::chrono::seconds timeout = std::chrono::seconds(20)) const {
    nlohmann::json last;
    bool ok = WaitUntil(
        [&] {
          last = DeploymentJson(id);
          return StepOutcome(last, name) == outcome;
        },
        DeadlineIn(timeout), std::chrono::milliseconds(20));
    EXPECT_TRUE(ok) << "step " << name << " of deployment " << id << " never became " << outcome
                    << ": " << last.dump(2);
    return last;
  }

  // Waits until deployment `id` is no longer running; the deployment.
  nlohmann::json WaitFinished(int64_t id) const {
    nlohmann::json last;
    bool ok = WaitUntil(
        [&] {
          last = DeploymentJson(id);
          return last.is_object() && last["outcome"] != "running";
        },
        DeadlineIn(std::chrono::seconds(20)), std::chrono::milliseconds(20));
    EXPECT_TRUE(ok) << "deployment " << id << " never finished: " << last.dump(2);
    return last;
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<LoadGenerator> load_;

 private:
  std::string prefix_;
};

}  // namespace cutover::test
