// Linux process primitives of the process driver: spawning a command in a
// session of its own, reading /proc, pidfds and exit statuses. Plain
// functions with no state; the ProcessSupervisor calls them on the control
// thread, but any thread may.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace cutover {

// Owns one file descriptor; closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

struct SpawnRequest {
  std::string command;           // run as /bin/sh -c COMMAND
  std::string workdir;           // must exist
  std::vector<std::string> env;  // the whole environment, "NAME=value"
  std::string log_path;          // stdout and stderr are appended here; parents are created
  // The child writes header_prefix + its pid + header_suffix to the log before
  // it runs the command, so the line always comes before the command's output.
  std::string header_prefix;
  std::string header_suffix;
};

// Starts the command in a new session (so its process group id is its pid),
// with stdin on /dev/null, no descriptor above 2, no blocked signals and every
// signal at its default disposition. Returns its pid once the exec succeeded;
// a failure (workdir missing, log not writable, exec refused) is an error
// saying what and where, and leaves no process behind.
Result<int> SpawnInSession(const SpawnRequest& request);

// What /proc/PID/stat says about a process.
struct ProcStat {
  char state = '?';  // 'R', 'S', 'Z' (exited, not reaped yet), ...
  int ppid = 0;
  int pgrp = 0;
  uint64_t start_time = 0;  // clock ticks after boot; with the pid, names one process
};

// kNotFound when there is no such process.
Result<ProcStat> ReadProcStat(int pid);

// Whether process `pid` exists, has not exited, and started at `start_time`
// (so a recycled pid is never taken for the process that had it before).
bool ProcessAlive(int pid, uint64_t start_time);

// Whether any process of group `pgid` is still running. Exited processes
// waiting for a parent to reap them do not count.
bool GroupAlive(int pgid);

// pidfd_open(2): a descriptor that becomes readable when `pid` exits; -1 when
// the kernel cannot give one (errno says why).
int OpenPidfd(int pid);

// For a child of this process: nullopt while it runs; once it exited, how
// ("exited with status 3", "killed by signal 9"), without reaping it, so that
// its pid and process group cannot be reused before ReapChild.
std::optional<std::string> PeekChildExit(int pid);
void ReapChild(int pid);

// This boot of the machine (/proc/sys/kernel/random/boot_id); empty if unknown.
std::string BootId();

}  // namespace cutover
