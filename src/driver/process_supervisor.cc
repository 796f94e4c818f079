#include "driver/process_supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <random>
#include <set>

#include "common/log.h"
#include "driver/instance_file.h"
#include "driver/proc.h"

namespace cutover {

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr Millis kFirstBackoff{100};
constexpr Millis kMaxBackoff{10'000};
// An instance that ran this long before it exited starts again from the
// first backoff step: it was not crash-looping.
constexpr Millis kStableRun{10'000};
constexpr Millis kStopPoll{20};
// Exit polling for processes the kernel cannot give a pidfd for.
constexpr Millis kExitPoll{100};
// After SIGKILL, how long to wait before reporting a process as unkillable
// (stuck in the kernel) rather than waiting for ever.
constexpr Millis kKillGrace{5'000};

constexpr char kStateFile[] = "instances.json";

// "2026-11-26T08:25:49.123Z", as in the daemon's own log.
std::string NowUtc() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms.count());
}

// A line of cutover's own in an instance's log, between the lines of the
// instance, so the log reads as a history of the instance.
void AppendLogLine(const std::string& path, std::string_view message) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return;  // the instance's own output cannot go there either; Start said so
  std::string line = fmt::format("--- cutover: {} at {} ---\n", message, NowUtc());
  ssize_t ignored = ::write(fd.get(), line.data(), line.size());
  (void)ignored;
}

std::vector<std::string> BuildEnvironment(const InstanceSpec& spec) {
  EnvList vars;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view var(*entry);
    size_t eq = var.find('=');
    if (eq == std::string_view::npos) continue;
    vars.emplace_back(std::string(var.substr(0, eq)), std::string(var.substr(eq + 1)));
  }
  auto set = [&vars](const std::string& name, const std::string& value) {
    for (auto& [n, v] : vars) {
      if (n == name) {
        v = value;
        return;
      }
    }
    vars.emplace_back(name, value);
  };
  // Programs that read $PWD would otherwise see the daemon's directory.
  set("PWD", spec.workdir);
  set("PORT", std::to_string(spec.port));
  set("CUTOVER_SERVICE", spec.service);
  set("CUTOVER_COLOR", std::string(ColorName(spec.color)));
  set("CUTOVER_RELEASE", spec.release);
  for (const auto& [name, value] : spec.env) set(name, value);
  std::vector<std::string> env;
  env.reserve(vars.size());
  for (const auto& [name, value] : vars) env.push_back(name + "=" + value);
  return env;
}

bool PortBindable(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

}  // namespace

struct ProcessSupervisor::Instance {
  explicit Instance(asio::io_context& io) : restart_timer(io), poll_timer(io) {}

  // Null once the supervisor forgot the instance: a late completion of one of
  // its waits must then do nothing.
  ProcessSupervisor* owner = nullptr;
  InstanceSpec spec;
  int pid = 0;
  int pgid = 0;
  uint64_t start_time = 0;
  bool own_child = false;  // ours to reap, with a real exit status
  bool adopted = false;
  bool running = false;
  bool stopping = false;
  int restarts = 0;
  std::string last_exit;
  Millis backoff = kFirstBackoff;
  Clock::time_point started_at;
  uint64_t generation = 0;  // one per process started, so a stale watch is ignored
  std::unique_ptr<asio::posix::stream_descriptor> pidfd;
  asio::steady_timer restart_timer;
  asio::steady_timer poll_timer;

  InstanceStatus ToStatus() const {
    return InstanceStatus{spec, running ? pid : 0, running, restarts, last_exit, adopted};
  }
};

ProcessSupervisor::ProcessSupervisor(asio::io_context& control, std::string state_dir,
                                     PortRange ports)
    : control_(control), state_dir_(std::move(state_dir)), ports_(ports), boot_id_(BootId()) {
  // Daemons sharing a range start at different places in it, so that two of
  // them rarely hand out the same port before either instance has bound it.
  const uint32_t span = static_cast<uint32_t>(ports_.last) - ports_.first + 1;
  next_port_offset_ = static_cast<uint32_t>(std::random_device{}() % span);
}

ProcessSupervisor::~ProcessSupervisor() {
  for (auto& [key, list] : instances_) {
    for (auto& instance : list) Forget(instance);
  }
}

void ProcessSupervisor::OnEvent(std::function<void(const InstanceEvent&)> callback) {
  on_event_ = std::move(callback);
}

std::string ProcessSupervisor::StatePath() const {
  return (std::filesystem::path(state_dir_) / kStateFile).string();
}

Result<uint16_t> ProcessSupervisor::AllocatePort() {
  if (ports_.last < ports_.first) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("empty port range {}-{}", ports_.first, ports_.last));
  }
  std::set<uint16_t> used;
  for (const auto& [key, list] : instances_) {
    for (const auto& instance : list) used.insert(instance->spec.port);
  }
  const uint32_t span = uint32_t{ports_.last} - ports_.first + 1;
  for (uint32_t i = 0; i < span; ++i) {
    uint32_t offset = (next_port_offset_ + i) % span;
    auto port = static_cast<uint16_t>(ports_.first + offset);
    if (used.contains(port) || !PortBindable(port)) continue;
    next_port_offset_ = (offset + 1) % span;
    return port;
  }
  return MakeError(ErrorCode::kUnavailable,
                   fmt::format("no free port in {}-{} ({} used by instances, the others by other "
                               "programs)",
                               ports_.first, ports_.last, used.size()));
}

Status ProcessSupervisor::Spawn(Instance& instance) {
  const InstanceSpec& spec = instance.spec;
  SpawnRequest request;
  request.command = spec.command;
  request.workdir = spec.workdir;
  request.env = BuildEnvironment(spec);
  request.log_path = spec.log_path;
  request.header_prefix =
      fmt::format("--- cutover: starting instance {} of {} release {} on port {} (pid ", spec.index,
                  spec.service, spec.release, spec.port);
  request.header_suffix = fmt::format(") at {} ---\n", NowUtc());
  auto pid = SpawnInSession(request);
  if (!pid) return std::unexpected(pid.error());

  instance.pid = *pid;
  instance.pgid = *pid;  // setsid made it the leader of a new group
  auto stat = ReadProcStat(*pid);
  instance.start_time = stat ? stat->start_time : 0;
  instance.own_child = true;
  instance.adopted = false;
  instance.running = true;
  instance.started_at = Clock::now();
  ++instance.generation;
  instance.pidfd.reset();
  // The child cannot be reaped before we wait for it, so the pid still names
  // it even if it already exited.
  if (int fd = OpenPidfd(*pid); fd >= 0) {
    instance.pidfd = std::make_unique<asio::posix::stream_descriptor>(control_, fd);
  }
  return {};
}

Status ProcessSupervisor::Start(const InstanceSpec& spec) {
  Key key{spec.service, spec.color};
  auto it = instances_.find(key);
  if (it != instances_.end()) {
    for (const auto& other : it->second) {
      if (other->spec.index == spec.index && !other->stopping) {
        return MakeError(ErrorCode::kConflict,
                         fmt::format("instance {} of {} ({}) is already running", spec.index,
                                     spec.service, ColorName(spec.color)));
      }
    }
  }
  auto instance = std::make_shared<Instance>(control_);
  instance->owner = this;
  instance->spec = spec;
  if (auto spawned = Spawn(*instance); !spawned) {
    return std::unexpected(spawned.error().Wrap(fmt::format(
        "cannot start instance {} of {} ({})", spec.index, spec.service, ColorName(spec.color))));
  }
  instances_[key].push_back(instance);
  Watch(instance);
  SaveState();
  return {};
}

void ProcessSupervisor::Watch(const InstancePtr& instance) {
  const uint64_t generation = instance->generation;
  auto on_ready = [instance, generation](const boost::system::error_code& ec) {
    if (ec || instance->owner == nullptr || instance->generation != generation ||
        !instance->running) {
      return;
    }
    instance->owner->CheckExit(instance);
  };
  if (instance->pidfd) {
    instance->pidfd->async_wait(asio::posix::descriptor_base::wait_read, on_ready);
  } else {
    instance->poll_timer.expires_after(kExitPoll);
    instance->poll_timer.async_wait(on_ready);
  }
}

void ProcessSupervisor::CheckExit(const InstancePtr& instance) {
  std::optional<std::string> how;
  if (instance->own_child) {
    how = PeekChildExit(instance->pid);
  } else if (instance->pidfd || !ProcessAlive(instance->pid, instance->start_time)) {
    // Not our child: only its parent learns the status.
    how = "exited (status unknown: adopted)";
  }
  if (!how) {
    // A pidfd that reports readable while the process runs would spin the
    // loop; watch by polling instead.
    instance->pidfd.reset();
    Watch(instance);
    return;
  }
  if (!instance->stopping) {
    // What the command left behind in its group would hold its port and
    // files against the restarted instance. For a child the group id cannot
    // have been reused yet: the leader is not reaped.
    ::kill(-instance->pgid, SIGKILL);
  }
  if (instance->own_child) ReapChild(instance->pid);
  OnExit(instance, std::move(*how));
}

void ProcessSupervisor::OnExit(const InstancePtr& instance, std::string how) {
  instance->running = false;
  instance->pid = 0;
  instance->pidfd.reset();
  instance->poll_timer.cancel();
  instance->last_exit = std::move(how);
  if (!instance->stopping) {
    if (Clock::now() - instance->started_at >= kStableRun) instance->backoff = kFirstBackoff;
    ScheduleRestart(instance,
                    fmt::format("instance {} {}", instance->spec.index, instance->last_exit),
                    "restarting");
  }
  SaveState();
}

void ProcessSupervisor::ScheduleRestart(const InstancePtr& instance, const std::string& what,
                                        std::string_view verb) {
  Millis delay = instance->backoff;
  instance->backoff = std::min(delay * 2, kMaxBackoff);
  std::string message = fmt::format("{}; {} in {}", what, verb, FormatDuration(delay));
  AppendLogLine(instance->spec.log_path, message);
  Emit(*instance, message);
  instance->restart_timer.expires_after(delay);
  instance->restart_timer.async_wait([instance](const boost::system::error_code& ec) {
    if (ec || instance->owner == nullptr || instance->stopping) return;
    instance->owner->Restart(instance);
  });
}

void ProcessSupervisor::Restart(const InstancePtr& instance) {
  if (auto spawned = Spawn(*instance); !spawned) {
    ScheduleRestart(instance,
                    fmt::format("instance {} could not be restarted: {}", instance->spec.index,
                                spawned.error().message),
                    "retrying");
    return;
  }
  ++instance->restarts;
  Watch(instance);
  SaveState();
}

void ProcessSupervisor::Emit(const Instance& instance, const std::string& message) {
  const InstanceSpec& spec = instance.spec;
  LogWarn("service {} ({}) release {}: {}", spec.service, ColorName(spec.color), spec.release,
          message);
  if (on_event_) {
    on_event_(InstanceEvent{spec.service, spec.color, spec.release, spec.index, message});
  }
}

asio::awaitable<void> ProcessSupervisor::Stop(std::string service, Color color) {
  auto it = instances_.find(Key{service, color});
  if (it == instances_.end()) co_return;
  co_await StopInstances(it->second);
}

asio::awaitable<void> ProcessSupervisor::StopAll() {
  std::vector<InstancePtr> all;
  for (const auto& [key, list] : instances_) all.insert(all.end(), list.begin(), list.end());
  co_await StopInstances(std::move(all));
}

asio::awaitable<void> ProcessSupervisor::StopInstances(std::vector<InstancePtr> victims) {
  struct Pending {
    InstancePtr instance;
    int pgid = 0;
    Clock::time_point kill_at;
    bool killed = false;
    Clock::time_point give_up_at;
    bool done = false;
  };
  std::vector<Pending> pending;
  const Clock::time_point now = Clock::now();
  for (const InstancePtr& instance : victims) {
    const bool first = !instance->stopping;
    instance->stopping = true;
    instance->restart_timer.cancel();
    if (!instance->running) continue;
    if (first) {
      AppendLogLine(instance->spec.log_path,
                    fmt::format("stopping instance {} (SIGTERM to process group {})",
                                instance->spec.index, instance->pgid));
      ::kill(-instance->pgid, SIGTERM);
    }
    pending.push_back(Pending{instance, instance->pgid, now + instance->spec.stop_timeout});
  }

  asio::steady_timer timer(control_);
  while (true) {
    bool waiting = false;
    const Clock::time_point t = Clock::now();
    for (Pending& p : pending) {
      if (p.done) continue;
      // The leader may be gone while a child it started still runs.
      if (!p.instance->running && !GroupAlive(p.pgid)) {
        p.done = true;
        continue;
      }
      if (!p.killed && t >= p.kill_at) {
        ::kill(-p.pgid, SIGKILL);
        p.killed = true;
        p.give_up_at = t + kKillGrace;
        std::string message =
            fmt::format("instance {} did not stop within {} of SIGTERM; sent SIGKILL",
                        p.instance->spec.index, FormatDuration(p.instance->spec.stop_timeout));
        AppendLogLine(p.instance->spec.log_path, message);
        Emit(*p.instance, message);
      } else if (p.killed && t >= p.give_up_at) {
        LogError("service {} ({}): process group {} of instance {} survived SIGKILL",
                 p.instance->spec.service, ColorName(p.instance->spec.color), p.pgid,
                 p.instance->spec.index);
        p.done = true;
        continue;
      }
      waiting = true;
    }
    if (!waiting) break;
    timer.expires_after(kStopPoll);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  for (const InstancePtr& instance : victims) {
    Key key{instance->spec.service, instance->spec.color};
    auto it = instances_.find(key);
    if (it == instances_.end()) continue;
    auto& list = it->second;
    auto found = std::find(list.begin(), list.end(), instance);
    if (found == list.end()) continue;  // another Stop got there first
    list.erase(found);
    if (list.empty()) instances_.erase(it);
    Forget(instance);
  }
  SaveState();
}

void ProcessSupervisor::Forget(const InstancePtr& instance) {
  instance->owner = nullptr;
  instance->restart_timer.cancel();
  instance->poll_timer.cancel();
  instance->pidfd.reset();
}

std::vector<InstanceStatus> ProcessSupervisor::Instances(std::string_view service,
                                                         Color color) const {
  std::vector<InstanceStatus> out;
  auto it = instances_.find(Key{std::string(service), color});
  if (it == instances_.end()) return out;
  for (const auto& instance : it->second) out.push_back(instance->ToStatus());
  std::stable_sort(out.begin(), out.end(), [](const InstanceStatus& a, const InstanceStatus& b) {
    return a.spec.index < b.spec.index;
  });
  return out;
}

void ProcessSupervisor::SaveState() {
  InstanceFile file;
  file.boot_id = boot_id_;
  for (const auto& [key, list] : instances_) {
    for (const auto& instance : list) {
      file.instances.push_back(InstanceRecord{instance->spec, instance->running ? instance->pid : 0,
                                              instance->pgid, instance->start_time,
                                              instance->restarts, instance->last_exit});
    }
  }
  if (auto written = WriteFileAtomically(StatePath(), SerializeInstanceFile(file)); !written) {
    LogError("cannot record the running instances: {}", written.error().message);
  }
}

Result<std::vector<InstanceStatus>> ProcessSupervisor::Adopt() {
  const std::string path = StatePath();
  auto text = ReadFileIfExists(path);
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::vector<InstanceStatus>();
  auto file = ParseInstanceFile(**text, path);
  if (!file) return std::unexpected(file.error());

  // A pid from another boot names nothing we started.
  const bool same_boot = !file->boot_id.empty() && file->boot_id == boot_id_;
  std::set<int> known;
  for (const auto& [key, list] : instances_) {
    for (const auto& instance : list) {
      if (instance->running) known.insert(instance->pid);
    }
  }

  std::vector<InstanceStatus> found;
  for (InstanceRecord& record : file->instances) {
    InstanceStatus status{record.spec, 0, false, record.restarts, record.last_exit, false};
    if (same_boot && record.pid > 0 && record.start_time != 0 && !known.contains(record.pid)) {
      // Open the pidfd first and check the start time after: if it still
      // matches, the pidfd is that process and not one that got its pid since.
      UniqueFd pidfd(OpenPidfd(record.pid));
      auto stat = ReadProcStat(record.pid);
      if (stat && stat->state != 'Z' && stat->state != 'X' &&
          stat->start_time == record.start_time) {
        auto instance = std::make_shared<Instance>(control_);
        instance->owner = this;
        instance->spec = record.spec;
        instance->pid = record.pid;
        instance->pgid = record.pgid > 0 ? record.pgid : record.pid;
        instance->start_time = record.start_time;
        instance->own_child = stat->ppid == ::getpid();
        instance->adopted = true;
        instance->running = true;
        instance->restarts = record.restarts;
        instance->last_exit = record.last_exit;
        instance->started_at = Clock::now();
        instance->generation = 1;
        if (pidfd.valid()) {
          instance->pidfd =
              std::make_unique<asio::posix::stream_descriptor>(control_, pidfd.release());
        }
        instances_[Key{record.spec.service, record.spec.color}].push_back(instance);
        known.insert(record.pid);
        Watch(instance);
        status = instance->ToStatus();
      }
    }
    if (!status.running && record.pid > 0) {
      status.last_exit = "exited while no daemon was watching (status unknown)";
    }
    found.push_back(std::move(status));
  }
  SaveState();
  return found;
}

std::string ProcessSupervisor::TailLog(const std::string& path, int lines) {
  if (lines <= 0) return "";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size <= 0) return "";

  // Read backwards until the text holds `lines` line breaks before its final
  // one, or a bound is reached (a log without line breaks).
  constexpr off_t kChunk = 8192;
  constexpr off_t kMaxRead = 1 << 20;
  std::string tail;
  off_t pos = size;
  int breaks = 0;
  bool skipped_final = false;
  while (pos > 0 && size - pos < kMaxRead) {
    off_t n = std::min(kChunk, pos);
    pos -= n;
    std::string chunk(static_cast<size_t>(n), '\0');
    size_t got = 0;
    while (got < chunk.size()) {
      ssize_t r =
          ::pread(fd.get(), chunk.data() + got, chunk.size() - got, pos + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    chunk.resize(got);
    for (size_t i = chunk.size(); i-- > 0;) {
      if (chunk[i] != '\n') continue;
      if (!skipped_final && pos + static_cast<off_t>(i) == size - 1) {
        skipped_final = true;
        continue;
      }
      ++breaks;
    }
    tail.insert(0, chunk);
    if (breaks >= lines) break;
  }

  if (!tail.empty() && tail.back() == '\n') tail.pop_back();
  size_t start = tail.size();
  int taken = 0;
  while (taken < lines) {
    size_t nl = start == 0 ? std::string::npos : tail.rfind('\n', start - 1);
    if (nl == std::string::npos) {
      start = 0;
      break;
    }
    start = nl;
    ++taken;
    if (taken == lines) {
      ++start;
      break;
    }
  }
  return tail.substr(start);
}

}  // namespace cutover
