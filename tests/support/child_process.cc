#include "support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "support/temp_dir.h"

extern char** environ;

namespace cutover::test {
namespace {

std::vector<std::string> BuildEnv(const ChildOptions& options) {
  std::vector<std::string> out;
  auto overridden = [&](std::string_view entry) {
    std::string_view name = entry.substr(0, entry.find('='));
    for (const auto& [k, v] : options.env) {
      if (k == name) return true;
    }
    return std::find(options.unset_env.begin(), options.unset_env.end(), name) !=
           options.unset_env.end();
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) out.emplace_back(*e);
  }
  for (const auto& [k, v] : options.env) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Owns posix_spawn's attribute objects so every return path destroys them.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

std::string ExitStatus::ToString() const {
  if (code) return "exit " + std::to_string(*code);
  if (signal) return "signal " + std::to_string(*signal);
  return "unknown";
}

Result<ChildProcess> ChildProcess::Spawn(const ChildOptions& options) {
  if (options.argv.empty()) return MakeError(ErrorCode::kInvalidArgument, "empty argv");
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = BuildEnv(options);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  std::error_code ec;
  std::filesystem::path output = "/dev/null";
  if (!options.output_file.empty()) {
    output = std::filesystem::absolute(options.output_file, ec);
    if (ec) return MakeError(ErrorCode::kIo, "bad output path: " + ec.message());
  }

  SpawnSetup setup;
  int rc = posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
  if (rc == 0) {
    rc = posix_spawn_file_actions_addopen(&setup.actions, 1, output.c_str(),
                                          O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  if (rc == 0) rc = posix_spawn_file_actions_adddup2(&setup.actions, 1, 2);
  if (rc == 0 && !options.working_dir.empty()) {
    rc = posix_spawn_file_actions_addchdir_np(&setup.actions, options.working_dir.c_str());
  }
  // Own process group, so Kill() reaches whatever the child starts; a clean
  // signal mask and default dispositions, whatever the test runner ignores.
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  if (rc == 0) {
    rc = posix_spawnattr_setflags(
        &setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  if (rc == 0) rc = posix_spawnattr_setpgroup(&setup.attr, 0);
  if (rc == 0) rc = posix_spawnattr_setsigmask(&setup.attr, &empty);
  if (rc == 0) rc = posix_spawnattr_setsigdefault(&setup.attr, &defaults);
  if (rc != 0) {
    return MakeError(ErrorCode::kInternal, std::string("posix_spawn setup: ") + std::strerror(rc));
  }

  pid_t pid = -1;
  rc = posix_spawnp(&pid, argv[0], &setup.actions, &setup.attr, argv.data(), envp.data());
  if (rc != 0) {
    return MakeError(ErrorCode::kIo,
                     "spawn " + options.argv[0] + ": " + std::string(std::strerror(rc)));
  }
  return ChildProcess(pid, options.output_file.empty() ? std::filesystem::path() : output);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_),
      output_file_(std::move(other.output_file_)),
      exit_status_(std::move(other.exit_status_)) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Release();
    pid_ = other.pid_;
    output_file_ = std::move(other.output_file_);
    exit_status_ = std::move(other.exit_status_);
    other.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() { Release(); }

void ChildProcess::Release() {
  if (pid_ <= 0) return;
  Kill();
  pid_ = -1;
}

Status ChildProcess::Signal(int sig) {
  if (pid_ <= 0 || exit_status_) return MakeError(ErrorCode::kConflict, "process has exited");
  if (::kill(pid_, sig) != 0) {
    return MakeError(ErrorCode::kIo, std::string("kill: ") + std::strerror(errno));
  }
  return {};
}

Status ChildProcess::SignalGroup(int sig) {
  if (pid_ <= 0) return MakeError(ErrorCode::kConflict, "no process");
  if (::kill(-pid_, sig) != 0) {
    return MakeError(ErrorCode::kIo, std::string("kill group: ") + std::strerror(errno));
  }
  return {};
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  // The group outlives a reaped leader while its other members run.
  ::kill(-pid_, SIGKILL);
  if (exit_status_) return;
  ::kill(pid_, SIGKILL);
  if (!Wait(DeadlineIn(std::chrono::seconds(10)))) Reap(/*block=*/true);
}

bool ChildProcess::Reap(bool block) {
  if (exit_status_) return true;
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  ExitStatus st;
  if (r < 0) {
    st.code = -1;  // reaped elsewhere; the status is lost
  } else if (WIFEXITED(status)) {
    st.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    st.signal = WTERMSIG(status);
  } else {
    return false;
  }
  exit_status_ = st;
  return true;
}

std::optional<ExitStatus> ChildProcess::Wait(Deadline deadline) {
  auto interval = std::chrono::milliseconds(1);
  for (;;) {
    if (Reap(/*block=*/false)) return exit_status_;
    auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
    interval = std::min(interval * 2, std::chrono::milliseconds(20));
  }
}

bool ChildProcess::Running() { return pid_ > 0 && !Reap(/*block=*/false); }

Result<uint64_t> ChildProcess::RssKiB() const {
  if (pid_ <= 0 || exit_status_) return MakeError(ErrorCode::kConflict, "process has exited");
  auto text = ReadFile("/proc/" + std::to_string(pid_) + "/status");
  if (!text) return std::unexpected(text.error());
  std::string_view s = *text;
  size_t at = s.find("VmRSS:");
  if (at == std::string_view::npos) return MakeError(ErrorCode::kNotFound, "no VmRSS");
  s.remove_prefix(at + 6);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  uint64_t kib = 0;
  auto [ptr, err] = std::from_chars(s.data(), s.data() + s.size(), kib);
  if (err != std::errc()) return MakeError(ErrorCode::kInternal, "bad VmRSS line");
  return kib;
}

std::string ChildProcess::Output() const {
  if (output_file_.empty()) return {};
  auto text = ReadFile(output_file_);
  return text ? *text : std::string();
}

}  // namespace cutover::test
