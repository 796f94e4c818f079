// ChildProcess: a process started by a test (the cutover daemon, the test
// backend, a shell command), in its own process group, with stdout and stderr
// sent to a file. Destroying it kills the whole group and reaps the child, so
// a failing test never leaves a server behind. One owner thread; not
// thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "support/wait.h"

namespace cutover::test {

struct ChildOptions {
  // argv[0] is looked up in PATH when it has no slash.
  std::vector<std::string> argv;
  // Added to (or replacing in) the parent's environment.
  std::vector<std::pair<std::string, std::string>> env;
  // Names removed from the inherited environment.
  std::vector<std::string> unset_env;
  // Empty: the parent's working directory.
  std::filesystem::path working_dir;
  // stdout and stderr are appended here; empty: /dev/null.
  std::filesystem::path output_file;
};

// How a child ended: exactly one of `code` (exit status) or `signal` is set.
struct ExitStatus {
  std::optional<int> code;
  std::optional<int> signal;

  bool Exited(int want) const { return code.has_value() && *code == want; }
  bool Signaled(int want) const { return signal.has_value() && *signal == want; }
  std::string ToString() const;  // "exit 0", "signal 9"
};

class ChildProcess {
 public:
  static Result<ChildProcess> Spawn(const ChildOptions& options);

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills the process group with SIGKILL and reaps the child if still running.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  const std::filesystem::path& output_file() const { return output_file_; }

  // Sends `sig` to the child only (e.g. SIGTERM to test graceful shutdown).
  Status Signal(int sig);
  // Sends `sig` to every process in the child's group.
  Status SignalGroup(int sig);
  // SIGKILL to the whole group, then reaps the child (waits up to 10s).
  void Kill();

  // Waits for the child to exit; nullopt if it is still running at `deadline`.
  std::optional<ExitStatus> Wait(Deadline deadline);
  // True until the child has exited (reaps it when it has).
  bool Running();
  // The exit status once the child has been reaped.
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }

  // Resident set size in KiB from /proc/PID/status (VmRSS).
  Result<uint64_t> RssKiB() const;
  // What the child wrote so far (empty when output goes to /dev/null).
  std::string Output() const;

 private:
  ChildProcess(pid_t pid, std::filesystem::path output_file)
      : pid_(pid), output_file_(std::move(output_file)) {}
  bool Reap(bool block);
  void Release();

  pid_t pid_ = -1;  // -1 once moved from
  std::filesystem::path output_file_;
  std::optional<ExitStatus> exit_status_;
};

}  // namespace cutover::test
