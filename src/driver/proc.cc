#include "driver/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "common/types.h"

namespace cutover {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// The child's descriptors 0-2 are built with dup2, which would be a no-op (and
// keep close-on-exec) on a descriptor that already has the target number, or
// overwrite one still needed. A daemon started with a closed stdin gets such
// low numbers from open(), so move them out of the way.
Status MoveAbove2(UniqueFd& fd) {
  if (fd.get() > 2) return {};
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return MakeError(ErrorCode::kIo, "fcntl(F_DUPFD_CLOEXEC): " + ErrnoText(errno));
  fd = UniqueFd(moved);
  return {};
}

// What the child reports through its error pipe when it cannot exec.
enum class ChildStep : int { kSetsid = 1, kStdio, kChdir, kExec };
struct ChildFailure {
  int step = 0;
  int err = 0;
};

// Writes the decimal digits of `value` to `out` (at least 16 bytes); returns
// their count. Runs in the forked child, where only async-signal-safe code may.
size_t FormatPid(int value, char* out) {
  char digits[16];
  size_t n = 0;
  unsigned v = static_cast<unsigned>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof(digits));
  for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

struct ChildPlan {
  const char* workdir;
  char* const* argv;
  char* const* envp;
  int null_fd;
  int log_fd;
  int error_fd;
  int max_fd;
  const std::string* header_prefix;
  const std::string* header_suffix;
};

[[noreturn]] void ChildFail(int error_fd, ChildStep step) {
  ChildFailure failure{static_cast<int>(step), errno};
  ssize_t ignored = ::write(error_fd, &failure, sizeof(failure));
  (void)ignored;
  ::_exit(127);
}

// Between fork and exec: async-signal-safe calls only (the daemon has other
// threads whose locks may be held at fork time). All signals are blocked on
// entry.
[[noreturn]] void RunChild(const ChildPlan& plan) {
  // Handlers installed by the daemon would be reset by exec anyway, but
  // ignored signals (SIGPIPE) would stay ignored in the command.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  // The kernel's own layout, for the signals libc reserves for itself (its
  // sigaction refuses them): one ignored in the daemon's parent would
  // otherwise stay ignored in the command.
  struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  } kernel_dfl{SIG_DFL, 0, nullptr, 0};
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    if (::sigaction(sig, &dfl, nullptr) != 0) {
      ::syscall(SYS_rt_sigaction, sig, &kernel_dfl, nullptr, sizeof(uint64_t));
    }
  }
  if (::setsid() < 0) ChildFail(plan.error_fd, ChildStep::kSetsid);
  if (::dup2(plan.null_fd, 0) < 0 || ::dup2(plan.log_fd, 1) < 0 || ::dup2(plan.log_fd, 2) < 0) {
    ChildFail(plan.error_fd, ChildStep::kStdio);
  }
  if (::chdir(plan.workdir) < 0) ChildFail(plan.error_fd, ChildStep::kChdir);

  char pid_text[16];
  size_t pid_len = FormatPid(::getpid(), pid_text);
  struct iovec header[3] = {
      {const_cast<char*>(plan.header_prefix->data()), plan.header_prefix->size()},
      {pid_text, pid_len},
      {const_cast<char*>(plan.header_suffix->data()), plan.header_suffix->size()},
  };
  ssize_t ignored = ::writev(1, header, 3);
  (void)ignored;

  // Nothing of the daemon's may leak into the instance: listening sockets
  // would keep ports open after the daemon exits. The error pipe is
  // close-on-exec already and must stay open until exec.
  bool closed = true;
  if (plan.error_fd > 3 && ::close_range(3, plan.error_fd - 1, 0) != 0) closed = false;
  if (closed && ::close_range(plan.error_fd + 1, ~0U, 0) != 0) closed = false;
  if (!closed) {
    for (int fd = 3; fd < plan.max_fd; ++fd) {
      if (fd != plan.error_fd) ::close(fd);
    }
  }

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execve("/bin/sh", plan.argv, plan.envp);
  ChildFail(plan.error_fd, ChildStep::kExec);
}

std::string DescribeSiginfo(const siginfo_t& info) {
  switch (info.si_code) {
    case CLD_EXITED:
      return "exited with status " + std::to_string(info.si_status);
    case CLD_KILLED:
      return "killed by signal " + std::to_string(info.si_status);
    case CLD_DUMPED:
      return "killed by signal " + std::to_string(info.si_status) + " (core dumped)";
    default:
      return "exited (status unknown)";
  }
}

Result<std::string> ReadSmallFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return MakeError(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                     path + ": " + ErrnoText(errno));
  }
  std::string text;
  char buf[1024];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    // A process that exits while its stat is read makes read() fail with ESRCH.
    if (n < 0) {
      return MakeError(errno == ESRCH ? ErrorCode::kNotFound : ErrorCode::kIo,
                       path + ": " + ErrnoText(errno));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace

Result<int> SpawnInSession(const SpawnRequest& request) {
  struct stat st {};
  if (::stat(request.workdir.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "workdir " + Quoted(request.workdir) + ": " + ErrnoText(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "workdir " + Quoted(request.workdir) + " is not a directory");
  }

  std::error_code ec;
  std::filesystem::path log_dir = std::filesystem::path(request.log_path).parent_path();
  if (!log_dir.empty()) std::filesystem::create_directories(log_dir, ec);
  if (ec) {
    return MakeError(ErrorCode::kIo, "cannot create the directory of log file " +
                                         Quoted(request.log_path) + ": " + ec.message());
  }
  UniqueFd log_fd(
      ::open(request.log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!log_fd.valid()) {
    return MakeError(ErrorCode::kIo,
                     "cannot open log file " + Quoted(request.log_path) + ": " + ErrnoText(errno));
  }
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd.valid()) return MakeError(ErrorCode::kIo, "/dev/null: " + ErrnoText(errno));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kIo, "pipe2: " + ErrnoText(errno));
  }
  UniqueFd error_read(pipe_fds[0]);
  UniqueFd error_write(pipe_fds[1]);
  for (UniqueFd* fd : {&log_fd, &null_fd, &error_write}) {
    if (auto moved = MoveAbove2(*fd); !moved) return std::unexpected(moved.error());
  }

  // Everything the child needs is built here: it may not allocate.
  std::string shell = "/bin/sh";
  std::string dash_c = "-c";
  std::string command = request.command;
  std::vector<char*> argv = {shell.data(), dash_c.data(), command.data(), nullptr};
  std::vector<std::string> env = request.env;
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (std::string& var : env) envp.push_back(var.data());
  envp.push_back(nullptr);
  struct rlimit nofile {};
  int max_fd = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  }
  ChildPlan plan{request.workdir.c_str(),
                 argv.data(),
                 envp.data(),
                 null_fd.get(),
                 log_fd.get(),
                 error_write.get(),
                 max_fd,
                 &request.header_prefix,
                 &request.header_suffix};

  // Blocked across fork so that no handler of the daemon runs in the child
  // before the dispositions are reset.
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = ::fork();
  if (pid == 0) RunChild(plan);
  int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) return MakeError(ErrorCode::kIo, "fork: " + ErrnoText(fork_errno));

  // The pipe reads end-of-file once the child exec'd (close-on-exec), or
  // carries why it could not.
  error_write = UniqueFd();
  ChildFailure failure;
  ssize_t n;
  do {
    n = ::read(error_read.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n == 0) return pid;

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof(failure))) {
    return MakeError(ErrorCode::kInternal, "the new process failed before exec");
  }
  std::string reason = ErrnoText(failure.err);
  switch (static_cast<ChildStep>(failure.step)) {
    case ChildStep::kSetsid:
      return MakeError(ErrorCode::kInternal, "setsid: " + reason);
    case ChildStep::kStdio:
      return MakeError(ErrorCode::kIo,
                       "redirecting output to " + Quoted(request.log_path) + ": " + reason);
    case ChildStep::kChdir:
      return MakeError(ErrorCode::kInvalidArgument,
                       "workdir " + Quoted(request.workdir) + ": " + reason);
    case ChildStep::kExec:
      return MakeError(ErrorCode::kIo, "cannot execute /bin/sh: " + reason);
  }
  return MakeError(ErrorCode::kInternal, "the new process failed before exec: " + reason);
}

Result<ProcStat> ReadProcStat(int pid) {
  if (pid <= 0) return MakeError(ErrorCode::kNotFound, "no process " + std::to_string(pid));
  auto text = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::unexpected(text.error());
  // The command name (field 2) is in parentheses and may hold spaces and
  // parentheses itself: fields are counted from the last ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos) {
    return MakeError(ErrorCode::kInternal, "/proc/" + std::to_string(pid) + "/stat: unexpected");
  }
  std::string_view rest = std::string_view(*text).substr(close + 1);
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state)
  size_t i = 0;
  while (i < rest.size() && fields.size() < 20) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t start = i;
    while (i < rest.size() && rest[i] != ' ' && rest[i] != '\n') ++i;
    if (i > start) fields.push_back(rest.substr(start, i - start));
  }
  if (fields.size() < 20) {
    return MakeError(ErrorCode::kInternal, "/proc/" + std::to_string(pid) + "/stat: too short");
  }
  auto number = [](std::string_view s, auto& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
  };
  ProcStat stat;
  stat.state = fields[0].empty() ? '?' : fields[0][0];
  if (!number(fields[1], stat.ppid) || !number(fields[2], stat.pgrp) ||
      !number(fields[19], stat.start_time)) {
    return MakeError(ErrorCode::kInternal, "/proc/" + std::to_string(pid) + "/stat: bad field");
  }
  return stat;
}

bool ProcessAlive(int pid, uint64_t start_time) {
  auto stat = ReadProcStat(pid);
  return stat && stat->state != 'Z' && stat->state != 'X' && stat->start_time == start_time;
}

bool GroupAlive(int pgid) {
  if (pgid <= 0) return false;
  if (::kill(-pgid, 0) != 0 && errno == ESRCH) return false;
  // kill() also reaches zombies, and a zombie whose parent never reaps it
  // (an init that does not) would keep the group "alive" forever.
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return true;
  bool alive = false;
  while (struct dirent* entry = ::readdir(proc)) {
    int pid = 0;
    std::string_view name = entry->d_name;
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || p != name.data() + name.size()) continue;
    auto stat = ReadProcStat(pid);
    if (stat && stat->pgrp == pgid && stat->state != 'Z' && stat->state != 'X') {
      alive = true;
      break;
    }
  }
  ::closedir(proc);
  return alive;
}

// Through syscall(2): glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
int OpenPidfd(int pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

std::optional<std::string> PeekChildExit(int pid) {
  siginfo_t info;
  while (true) {
    std::memset(&info, 0, sizeof(info));
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0) break;
    if (errno == EINTR) continue;
    // ECHILD: reaped by someone else in this process; it is gone all the same.
    return "exited (status unknown)";
  }
  if (info.si_pid == 0) return std::nullopt;
  return DescribeSiginfo(info);
}

void ReapChild(int pid) {
  siginfo_t info;
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) != 0 && errno == EINTR) {
  }
}

std::string BootId() {
  auto text = ReadSmallFile("/proc/sys/kernel/random/boot_id");
  if (!text) return "";
  while (!text->empty() && (text->back() == '\n' || text->back() == ' ')) text->pop_back();
  return *text;
}

}  // namespace cutover
