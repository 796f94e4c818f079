#include "driver/process_supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "driver/instance_file.h"
#include "driver/proc.h"

namespace cutover {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

int CountOf(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

// Running, as a user would see it: exited processes nobody reaped yet are not.
bool Alive(int pid) {
  auto stat = ReadProcStat(pid);
  return stat && stat->state != 'Z' && stat->state != 'X';
}

int ReadPid(const std::string& path) {
  std::ifstream in(path);
  int pid = 0;
  in >> pid;
  return pid;
}

class ProcessSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "cutover-driver-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = fs::canonical(templ).string();
    state_dir_ = dir_ + "/state";
  }

  void TearDown() override {
    if (supervisor_) {
      RunAwait(supervisor_->StopAll());
      supervisor_.reset();
    }
    // Whatever a failed test left behind. Only then: a group id of a process
    // stopped long ago may name somebody else's group by now.
    if (HasFailure()) {
      for (int pgid : stray_groups_) {
        if (Alive(pgid)) ::kill(-pgid, SIGKILL);
      }
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  ProcessSupervisor& Supervisor(PortRange ports = {}) {
    supervisor_ = std::make_unique<ProcessSupervisor>(io_, state_dir_, ports);
    supervisor_->OnEvent([this](const InstanceEvent& e) { events_.push_back(e); });
    return *supervisor_;
  }

  InstanceSpec Spec(std::string command, int index = 0) {
    InstanceSpec spec;
    spec.service = "shop";
    spec.color = Color::kGreen;
    spec.release = "v42";
    spec.index = index;
    spec.command = std::move(command);
    spec.port = static_cast<uint16_t>(20001 + index);
    spec.workdir = dir_;
    spec.log_path = dir_ + "/logs/shop-green-" + std::to_string(index) + ".log";
    spec.stop_timeout = 20s;
    return spec;
  }

  // Runs the control loop until `done` holds; false if `timeout` passed first.
  bool RunUntil(const std::function<bool()>& done, Clock::duration timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      io_.run_one_for(10ms);
    }
    return true;
  }

  void RunAwait(asio::awaitable<void> work) {
    bool finished = false;
    asio::co_spawn(io_, std::move(work), [&](std::exception_ptr) { finished = true; });
    ASSERT_TRUE(RunUntil([&] { return finished; }, 60s));
  }

  std::vector<InstanceStatus> Shop() { return supervisor_->Instances("shop", Color::kGreen); }

  // The one supervised instance of shop/green, once it runs; remembered for cleanup.
  InstanceStatus WaitRunning() {
    EXPECT_TRUE(RunUntil([&] { return Shop().size() == 1 && Shop()[0].running; }));
    InstanceStatus status = Shop().at(0);
    stray_groups_.push_back(status.pid);
    return status;
  }

  bool WaitForLog(const std::string& path, const std::string& text) {
    return RunUntil([&] { return ReadFile(path).find(text) != std::string::npos; });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::string dir_;
  std::string state_dir_;
  std::unique_ptr<ProcessSupervisor> supervisor_;
  std::vector<InstanceEvent> events_;
  std::vector<int> stray_groups_;
};

TEST_F(ProcessSupervisorTest, StartedInstanceSeesItsEnvironmentAndWritesItsLog) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec(
      "echo \"port=$PORT service=$CUTOVER_SERVICE color=$CUTOVER_COLOR release=$CUTOVER_RELEASE "
      "extra=$EXTRA home=$HOME\"; pwd; echo oops >&2; exec sleep 300");
  spec.env = {{"EXTRA", "hello world"}, {"HOME", "/nowhere"}};
  ASSERT_TRUE(supervisor.Start(spec)) << "start failed";
  InstanceStatus status = WaitRunning();
  ASSERT_TRUE(WaitForLog(spec.log_path, "oops\n"));

  std::vector<std::string> lines = Lines(ReadFile(spec.log_path));
  ASSERT_EQ(lines.size(), 4u);
  std::string header = "--- cutover: starting instance 0 of shop release v42 on port 20001 (pid " +
                       std::to_string(status.pid) + ") at ";
  EXPECT_EQ(lines[0].substr(0, header.size()), header);
  EXPECT_TRUE(lines[0].ends_with("Z ---")) << lines[0];
  EXPECT_EQ(lines[1],
            "port=20001 service=shop color=green release=v42 extra=hello world home=/nowhere");
  EXPECT_EQ(lines[2], dir_);
  EXPECT_EQ(lines[3], "oops");

  EXPECT_GT(status.pid, 0);
  EXPECT_EQ(status.restarts, 0);
  EXPECT_EQ(status.last_exit, "");
  EXPECT_FALSE(status.adopted);
  EXPECT_EQ(status.spec.release, "v42");
  // Its own session: the process group a stop signals.
  auto stat = ReadProcStat(status.pid);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->pgrp, status.pid);
  EXPECT_EQ(::getsid(status.pid), status.pid);
}

TEST_F(ProcessSupervisorTest, InstanceInheritsNoDescriptorsOrSignalStateFromTheDaemon) {
  // A descriptor without close-on-exec, a blocked and an ignored signal.
  UniqueFd leaked(::open("/dev/null", O_RDONLY));
  ASSERT_TRUE(leaked.valid());
  sigset_t usr1, previous_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ::sigprocmask(SIG_BLOCK, &usr1, &previous_mask);
  auto previous_pipe = ::signal(SIGPIPE, SIG_IGN);

  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec("exec sleep 300");
  Status started = supervisor.Start(spec);
  ::sigprocmask(SIG_SETMASK, &previous_mask, nullptr);
  ::signal(SIGPIPE, previous_pipe);
  ASSERT_TRUE(started);
  InstanceStatus status = WaitRunning();
  // Once the shell exec'd sleep and the loader closed the libraries it
  // opened, only what the instance inherited is left. A leaked descriptor
  // would stay for good.
  std::string proc = "/proc/" + std::to_string(status.pid);
  std::vector<std::string> fds;
  auto only_stdio = [&] {
    if (ReadFile(proc + "/comm") != "sleep\n") return false;
    fds.clear();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(proc + "/fd", ec)) {
      fds.push_back(entry.path().filename().string());
    }
    std::sort(fds.begin(), fds.end());
    return fds == std::vector<std::string>{"0", "1", "2"};
  };
  EXPECT_TRUE(RunUntil(only_stdio, 5s)) << ::testing::PrintToString(fds);
  EXPECT_EQ(fs::read_symlink(proc + "/fd/0").string(), "/dev/null");
  EXPECT_EQ(fs::read_symlink(proc + "/fd/1").string(), spec.log_path);
  EXPECT_EQ(fs::read_symlink(proc + "/fd/2").string(), spec.log_path);

  std::string process_status = ReadFile(proc + "/status");
  EXPECT_NE(process_status.find("SigBlk:\t0000000000000000\n"), std::string::npos)
      << process_status;
  EXPECT_NE(process_status.find("SigIgn:\t0000000000000000\n"), std::string::npos)
      << process_status;
}

TEST_F(ProcessSupervisorTest, CrashedInstanceIsRestartedWithGrowingBackoff) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec("echo run; exit 3");
  const auto started = Clock::now();
  ASSERT_TRUE(supervisor.Start(spec));
  ASSERT_TRUE(RunUntil([&] { return Shop().size() == 1 && Shop()[0].restarts >= 3; }));
  const auto elapsed = Clock::now() - started;

  // Three restarts wait 100ms, 200ms and 400ms.
  EXPECT_GE(elapsed, 700ms);
  ASSERT_GE(events_.size(), 3u);
  EXPECT_EQ(events_[0].message, "instance 0 exited with status 3; restarting in 100ms");
  EXPECT_EQ(events_[1].message, "instance 0 exited with status 3; restarting in 200ms");
  EXPECT_EQ(events_[2].message, "instance 0 exited with status 3; restarting in 400ms");
  EXPECT_EQ(events_[0].service, "shop");
  EXPECT_EQ(events_[0].color, Color::kGreen);
  EXPECT_EQ(events_[0].release, "v42");
  EXPECT_EQ(events_[0].index, 0);
  EXPECT_EQ(Shop()[0].last_exit, "exited with status 3");

  // The fourth run has started; its own output follows when the shell gets
  // to it, which on a busy machine can be after the count went up.
  std::string log;
  RunUntil([&] {
    log = ReadFile(spec.log_path);
    return CountOf(log, "run\n") >= 4;
  });
  EXPECT_GE(CountOf(log, "--- cutover: starting instance 0 of shop release v42"), 4);
  EXPECT_GE(CountOf(log, "run\n"), 4);
  EXPECT_NE(log.find("--- cutover: instance 0 exited with status 3; restarting in 200ms at "),
            std::string::npos)
      << log;

  RunAwait(supervisor.Stop("shop", Color::kGreen));
  EXPECT_TRUE(Shop().empty());
}

TEST_F(ProcessSupervisorTest, KilledInstanceIsRestartedAndTheSignalReported) {
  ProcessSupervisor& supervisor = Supervisor();
  ASSERT_TRUE(supervisor.Start(Spec("exec sleep 300")));
  InstanceStatus first = WaitRunning();
  ASSERT_EQ(::kill(first.pid, SIGKILL), 0);

  ASSERT_TRUE(RunUntil([&] { return Shop()[0].restarts == 1 && Shop()[0].running; }));
  InstanceStatus second = Shop()[0];
  stray_groups_.push_back(second.pid);
  EXPECT_NE(second.pid, first.pid);
  EXPECT_EQ(second.last_exit, "killed by signal 9");
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].message, "instance 0 killed by signal 9; restarting in 100ms");
  EXPECT_FALSE(Alive(first.pid));
}

TEST_F(ProcessSupervisorTest, StopSendsSigtermToTheWholeProcessGroup) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec(
      "trap 'echo got TERM; exit 0' TERM; sleep 300 & echo $! > grandchild.pid; "
      "echo ready; wait");
  ASSERT_TRUE(supervisor.Start(spec));
  InstanceStatus status = WaitRunning();
  ASSERT_TRUE(WaitForLog(spec.log_path, "ready\n"));
  int grandchild = ReadPid(dir_ + "/grandchild.pid");
  ASSERT_GT(grandchild, 0);
  // Until it has exec'd sleep, the shell's forked child still has the trap's
  // handler, and a SIGTERM then would be caught and lost.
  ASSERT_TRUE(RunUntil(
      [&] { return ReadFile("/proc/" + std::to_string(grandchild) + "/comm") == "sleep\n"; }));

  const auto before = Clock::now();
  RunAwait(supervisor.Stop("shop", Color::kGreen));
  EXPECT_LT(Clock::now() - before, 10s);  // well before the 20s stop timeout

  EXPECT_FALSE(Alive(status.pid));
  EXPECT_FALSE(Alive(grandchild));
  std::string log = ReadFile(spec.log_path);
  EXPECT_NE(log.find("got TERM\n"), std::string::npos) << log;
  EXPECT_NE(log.find("--- cutover: stopping instance 0 (SIGTERM to process group " +
                     std::to_string(status.pid) + ") at "),
            std::string::npos)
      << log;
  EXPECT_TRUE(events_.empty()) << events_[0].message;  // an asked-for exit is no event
  EXPECT_TRUE(Shop().empty());

  auto file = ParseInstanceFile(ReadFile(state_dir_ + "/instances.json"), "instances.json");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_TRUE(file->instances.empty());
}

TEST_F(ProcessSupervisorTest, StopEscalatesToSigkillAfterTheStopTimeout) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec("trap '' TERM; echo ready; sleep 300");
  spec.stop_timeout = 300ms;
  ASSERT_TRUE(supervisor.Start(spec));
  InstanceStatus status = WaitRunning();
  ASSERT_TRUE(WaitForLog(spec.log_path, "ready\n"));

  const auto before = Clock::now();
  RunAwait(supervisor.Stop("shop", Color::kGreen));
  EXPECT_GE(Clock::now() - before, 300ms);

  EXPECT_FALSE(Alive(status.pid));
  EXPECT_FALSE(GroupAlive(status.pid));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].message, "instance 0 did not stop within 300ms of SIGTERM; sent SIGKILL");
  EXPECT_NE(ReadFile(spec.log_path).find("--- cutover: instance 0 did not stop within 300ms"),
            std::string::npos);
  EXPECT_TRUE(Shop().empty());
}

TEST_F(ProcessSupervisorTest, StopWaitsForAGrandchildThatOutlivesTheLeader) {
  ProcessSupervisor& supervisor = Supervisor();
  // The shell dies of SIGTERM; the process it started ignores it. That
  // process writes its pid before "ready", so the file is whole once the log
  // says ready.
  InstanceSpec spec = Spec(
      "sh -c \"echo \\$\\$ > grandchild.pid; trap '' TERM; echo ready; exec sleep 300\" & wait");
  spec.stop_timeout = 300ms;
  ASSERT_TRUE(supervisor.Start(spec));
  InstanceStatus status = WaitRunning();
  ASSERT_TRUE(WaitForLog(spec.log_path, "ready\n"));
  int grandchild = ReadPid(dir_ + "/grandchild.pid");
  ASSERT_TRUE(Alive(grandchild));

  RunAwait(supervisor.Stop("shop", Color::kGreen));

  EXPECT_FALSE(Alive(status.pid));
  EXPECT_FALSE(Alive(grandchild));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].message, "instance 0 did not stop within 300ms of SIGTERM; sent SIGKILL");
}

TEST_F(ProcessSupervisorTest, StopAllStopsEveryColorAndInstance) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec green0 = Spec("exec sleep 300", 0);
  InstanceSpec green1 = Spec("exec sleep 300", 1);
  InstanceSpec blue0 = Spec("exec sleep 300", 0);
  blue0.color = Color::kBlue;
  blue0.log_path = dir_ + "/logs/shop-blue-0.log";
  ASSERT_TRUE(supervisor.Start(green0));
  ASSERT_TRUE(supervisor.Start(green1));
  ASSERT_TRUE(supervisor.Start(blue0));
  std::vector<int> pids;
  for (const auto& s : supervisor.Instances("shop", Color::kGreen)) pids.push_back(s.pid);
  for (const auto& s : supervisor.Instances("shop", Color::kBlue)) pids.push_back(s.pid);
  ASSERT_EQ(pids.size(), 3u);
  stray_groups_.insert(stray_groups_.end(), pids.begin(), pids.end());
  EXPECT_EQ(supervisor.Instances("shop", Color::kGreen)[1].spec.index, 1);

  RunAwait(supervisor.StopAll());
  for (int pid : pids) EXPECT_FALSE(Alive(pid)) << pid;
  EXPECT_TRUE(supervisor.Instances("shop", Color::kGreen).empty());
  EXPECT_TRUE(supervisor.Instances("shop", Color::kBlue).empty());
  EXPECT_TRUE(events_.empty());
}

TEST_F(ProcessSupervisorTest, StartFailuresSayWhatAndWhere) {
  ProcessSupervisor& supervisor = Supervisor();

  InstanceSpec no_workdir = Spec("exec sleep 300");
  no_workdir.workdir = dir_ + "/missing";
  Status started = supervisor.Start(no_workdir);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(started.error().message, "cannot start instance 0 of shop (green): workdir '" + dir_ +
                                         "/missing': No such file or directory");

  WriteFile(dir_ + "/blocker", "a file, not a directory");
  InstanceSpec bad_log = Spec("exec sleep 300");
  bad_log.log_path = dir_ + "/blocker/shop.log";
  started = supervisor.Start(bad_log);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kIo);
  EXPECT_NE(started.error().message.find("log file '" + dir_ + "/blocker/shop.log'"),
            std::string::npos)
      << started.error().message;
  EXPECT_TRUE(Shop().empty());

  ASSERT_TRUE(supervisor.Start(Spec("exec sleep 300")));
  WaitRunning();
  started = supervisor.Start(Spec("exec sleep 300"));
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kConflict);
  EXPECT_EQ(started.error().message, "instance 0 of shop (green) is already running");
  EXPECT_EQ(Shop().size(), 1u);
}

TEST_F(ProcessSupervisorTest, InstanceFileRecordsWhatRuns) {
  ProcessSupervisor& supervisor = Supervisor();
  InstanceSpec spec = Spec("exec sleep 300");
  spec.env = {{"A", "1"}};
  spec.stop_timeout = 1500ms;
  ASSERT_TRUE(supervisor.Start(spec));
  InstanceStatus status = WaitRunning();

  auto file = ParseInstanceFile(ReadFile(state_dir_ + "/instances.json"), "instances.json");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->boot_id, BootId());
  ASSERT_EQ(file->instances.size(), 1u);
  const InstanceRecord& record = file->instances[0];
  EXPECT_EQ(record.pid, status.pid);
  EXPECT_EQ(record.pgid, status.pid);
  EXPECT_EQ(record.start_time, ReadProcStat(status.pid)->start_time);
  EXPECT_EQ(record.spec.service, "shop");
  EXPECT_EQ(record.spec.color, Color::kGreen);
  EXPECT_EQ(record.spec.release, "v42");
  EXPECT_EQ(record.spec.port, 20001);
  EXPECT_EQ(record.spec.command, "exec sleep 300");
  EXPECT_EQ(record.spec.workdir, dir_);
  EXPECT_EQ(record.spec.env, spec.env);
  EXPECT_EQ(record.spec.log_path, spec.log_path);
  EXPECT_EQ(record.spec.stop_timeout, 1500ms);
  EXPECT_FALSE(fs::exists(state_dir_ + "/instances.json.tmp"));
}

// Two ports side by side: the first held by another program, the second free.
struct HeldPort {
  UniqueFd socket;
  uint16_t port = 0;
};

std::optional<HeldPort> HoldPortBesideAFreeOne() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) continue;
    socklen_t len = sizeof(addr);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    ::listen(fd.get(), 1);
    uint16_t port = ntohs(addr.sin_port);
    if (port == 65535) continue;
    UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in next = addr;
    next.sin_port = htons(static_cast<uint16_t>(port + 1));
    if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&next), sizeof(next)) != 0) continue;
    return HeldPort{std::move(fd), port};
  }
  return std::nullopt;
}

TEST_F(ProcessSupervisorTest, AllocatePortSkipsPortsInUse) {
  auto held = HoldPortBesideAFreeOne();
  ASSERT_TRUE(held);
  const uint16_t busy = held->port;
  const uint16_t free_port = static_cast<uint16_t>(busy + 1);
  ProcessSupervisor& supervisor = Supervisor(PortRange{busy, free_port});

  auto port = supervisor.AllocatePort();
  ASSERT_TRUE(port) << port.error().message;
  EXPECT_EQ(*port, free_port);

  // Once an instance has it, it is not handed out again.
  InstanceSpec spec = Spec("exec sleep 300");
  spec.port = *port;
  ASSERT_TRUE(supervisor.Start(spec));
  WaitRunning();
  auto none = supervisor.AllocatePort();
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(none.error().message, "no free port in " + std::to_string(busy) + "-" +
                                      std::to_string(free_port) +
                                      " (1 used by instances, the others by other programs)");
}

TEST_F(ProcessSupervisorTest, AdoptTakesOverTheLiveInstancesOfADaemonThatWasKilled) {
  // The previous daemon: starts two instances, then is killed outright.
  pid_t daemon = ::fork();
  ASSERT_GE(daemon, 0);
  if (daemon == 0) {
    asio::io_context io;
    ProcessSupervisor old(io, state_dir_, PortRange{});
    if (old.Start(Spec("exec sleep 300", 0)) && old.Start(Spec("exec sleep 300", 1))) {
      auto running = old.Instances("shop", Color::kGreen);
      WriteFile(dir_ + "/pids",
                std::to_string(running[0].pid) + " " + std::to_string(running[1].pid) + "\n");
    }
    ::kill(::getpid(), SIGKILL);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(daemon, &status, 0), daemon);
  int pid0 = 0, pid1 = 0;
  std::ifstream(dir_ + "/pids") >> pid0 >> pid1;
  ASSERT_GT(pid0, 0);
  ASSERT_GT(pid1, 0);
  stray_groups_.push_back(pid0);
  stray_groups_.push_back(pid1);
  EXPECT_TRUE(Alive(pid0));
  // Instance 1 dies while no daemon runs.
  ASSERT_EQ(::kill(-pid1, SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] { return !Alive(pid1); }));

  ProcessSupervisor& supervisor = Supervisor();
  auto found = supervisor.Adopt();
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), 2u);
  const InstanceStatus& live = (*found)[0];
  const InstanceStatus& dead = (*found)[1];
  EXPECT_EQ(live.spec.index, 0);
  EXPECT_TRUE(live.running);
  EXPECT_TRUE(live.adopted);
  EXPECT_EQ(live.pid, pid0);
  EXPECT_EQ(live.spec.command, "exec sleep 300");
  EXPECT_EQ(dead.spec.index, 1);
  EXPECT_FALSE(dead.running);
  EXPECT_FALSE(dead.adopted);
  EXPECT_EQ(dead.pid, 0);
  EXPECT_EQ(dead.last_exit, "exited while no daemon was watching (status unknown)");

  std::vector<InstanceStatus> supervised = Shop();
  ASSERT_EQ(supervised.size(), 1u);
  EXPECT_EQ(supervised[0].pid, pid0);

  // The adopted instance is watched: when it dies it is restarted.
  ASSERT_EQ(::kill(-pid0, SIGKILL), 0);
  ASSERT_TRUE(RunUntil([&] { return Shop()[0].restarts == 1 && Shop()[0].running; }));
  InstanceStatus restarted = Shop()[0];
  stray_groups_.push_back(restarted.pid);
  EXPECT_NE(restarted.pid, pid0);
  EXPECT_FALSE(restarted.adopted);
  EXPECT_EQ(restarted.last_exit, "exited (status unknown: adopted)");
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].message, "instance 0 exited (status unknown: adopted); restarting in 100ms");

  auto file = ParseInstanceFile(ReadFile(state_dir_ + "/instances.json"), "instances.json");
  ASSERT_TRUE(file);
  ASSERT_EQ(file->instances.size(), 1u);
  EXPECT_EQ(file->instances[0].pid, restarted.pid);
  EXPECT_EQ(file->instances[0].restarts, 1);
}

TEST_F(ProcessSupervisorTest, InstancesOutliveTheSupervisorAndAreAdoptedByTheNextOne) {
  int pid = 0;
  {
    ProcessSupervisor first(io_, state_dir_, PortRange{});
    ASSERT_TRUE(first.Start(Spec("exec sleep 300")));
    pid = first.Instances("shop", Color::kGreen).at(0).pid;
    stray_groups_.push_back(pid);
  }
  io_.poll();
  EXPECT_TRUE(Alive(pid));

  ProcessSupervisor& supervisor = Supervisor();
  auto found = supervisor.Adopt();
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), 1u);
  EXPECT_TRUE((*found)[0].adopted);
  EXPECT_EQ((*found)[0].pid, pid);

  RunAwait(supervisor.Stop("shop", Color::kGreen));
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(Shop().empty());
}

TEST_F(ProcessSupervisorTest, AdoptNeverTakesARecycledPid) {
  // Records naming live processes that are not the ones recorded: this test
  // itself under another start time, and under another boot.
  auto self = ReadProcStat(::getpid());
  ASSERT_TRUE(self);
  InstanceFile recycled;
  recycled.boot_id = BootId();
  InstanceRecord record{Spec("exec sleep 300"), ::getpid(), ::getpid(),
                        self->start_time + 1,   0,          ""};
  recycled.instances.push_back(record);
  ASSERT_TRUE(WriteFileAtomically(state_dir_ + "/instances.json", SerializeInstanceFile(recycled)));
  ProcessSupervisor& supervisor = Supervisor();
  auto found = supervisor.Adopt();
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), 1u);
  EXPECT_FALSE((*found)[0].adopted);
  EXPECT_FALSE((*found)[0].running);
  EXPECT_TRUE(Shop().empty());

  InstanceFile other_boot;
  other_boot.boot_id = "another-boot";
  record.start_time = self->start_time;
  other_boot.instances.push_back(record);
  ASSERT_TRUE(
      WriteFileAtomically(state_dir_ + "/instances.json", SerializeInstanceFile(other_boot)));
  ProcessSupervisor next(io_, state_dir_, PortRange{});
  found = next.Adopt();
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_EQ(found->size(), 1u);
  EXPECT_FALSE((*found)[0].adopted);
  EXPECT_TRUE(next.Instances("shop", Color::kGreen).empty());
}

TEST_F(ProcessSupervisorTest, AdoptWithoutAnInstanceFileFindsNothing) {
  auto found = Supervisor().Adopt();
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_TRUE(found->empty());
}

TEST_F(ProcessSupervisorTest, AdoptReportsABrokenInstanceFile) {
  fs::create_directories(state_dir_);
  WriteFile(state_dir_ + "/instances.json", "{\"format\": 1, \"instances\": [{\"pid\": 1}]}");
  auto found = Supervisor().Adopt();
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(found.error().message.starts_with(state_dir_ + "/instances.json: "))
      << found.error().message;

  WriteFile(state_dir_ + "/instances.json", "{not json");
  found = supervisor_->Adopt();
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().message, state_dir_ + "/instances.json: not valid JSON");
}

TEST_F(ProcessSupervisorTest, TailLogReturnsTheLastLines) {
  std::string path = dir_ + "/app.log";
  std::string text;
  for (int i = 1; i <= 10; ++i) text += "line " + std::to_string(i) + "\n";
  WriteFile(path, text);
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 3), "line 8\nline 9\nline 10");
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 1), "line 10");
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 50), text.substr(0, text.size() - 1));
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 0), "");

  WriteFile(path, "first\nsecond\nunfinished");
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 2), "second\nunfinished");

  WriteFile(path, "");
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 5), "");
  EXPECT_EQ(ProcessSupervisor::TailLog(dir_ + "/missing.log", 5), "");
}

TEST_F(ProcessSupervisorTest, TailLogOfABigFile) {
  std::string path = dir_ + "/big.log";
  {
    std::ofstream out(path);
    for (int i = 1; i <= 300'000; ++i) out << "request " << i << " served in 3ms\n";
  }
  ASSERT_GT(fs::file_size(path), 5u << 20);
  EXPECT_EQ(ProcessSupervisor::TailLog(path, 2),
            "request 299999 served in 3ms\nrequest 300000 served in 3ms");
}

}  // namespace
}  // namespace cutover
