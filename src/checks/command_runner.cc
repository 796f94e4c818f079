#include "checks/command_runner.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "checks/http_exchange.h"

extern char** environ;

namespace cutover {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string ErrnoMessage(int error) {
  return std::error_code(error, std::system_category()).message();
}

asio::awaitable<bool> Cancelled() {
  auto state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The last kCommandOutputTail bytes of what a command wrote.
class OutputTail {
 public:
  void Append(const char* data, size_t n) {
    text_.append(data, n);
    // Trimmed in batches, so a chatty command costs O(1) per byte.
    if (text_.size() > 4 * kCommandOutputTail) KeepLast();
  }
  std::string Take() {
    if (text_.size() > kCommandOutputTail) KeepLast();
    return std::move(text_);
  }

 private:
  void KeepLast() {
    size_t start = text_.size() - kCommandOutputTail;
    // Start on a character boundary, not inside a UTF-8 sequence.
    for (int i = 0; i < 3 && start < text_.size() && (text_[start] & 0xC0) == 0x80; ++i) ++start;
    text_.erase(0, start);
  }

  std::string text_;
};

// A running command: its shell, which leads a process group of the same id.
class Child {
 public:
  Child(const asio::any_io_executor& executor, pid_t pid) : pid_(pid), poll_(executor) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd >= 0) pidfd_.emplace(executor, fd);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (exit_) return;
    // Only when the awaiting coroutine is destroyed before it finished (its
    // executor shut down). SIGKILL makes this wait brief; leaving a zombie or
    // a running command behind would be worse.
    ::kill(-pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  bool reaped() const { return exit_.has_value(); }

  // SIGKILL to every process of the group.
  void KillGroup() {
    if (!exit_) ::kill(-pid_, SIGKILL);
  }

  // Waits for the shell to exit, kills what it left in its group and reaps
  // it. Returns its wait status; an error when cancelled first (the child is
  // then still running) or when its status was lost. Once reaped, returns
  // the same again: a wait raced by another operation can finish after it
  // lost the race, and its outcome must not be lost with its result.
  asio::awaitable<Result<int>> WaitExit() {
    if (exit_) co_return *exit_;
    Millis poll_interval{5};
    for (;;) {
      siginfo_t info{};
      // WNOWAIT leaves a zombie: its pid, and with it the process group id,
      // cannot be reused before the group is killed below.
      if (::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        if (errno == EINTR) continue;
        // Only when the process reaps children behind our back (SIGCHLD ignored).
        exit_ = MakeError(ErrorCode::kInternal, "its exit status was lost: " + ErrnoMessage(errno));
        co_return *exit_;
      }
      if (info.si_pid == pid_) break;
      if (pidfd_) {
        auto [ec] = co_await pidfd_->async_wait(asio::posix::descriptor_base::wait_read, kTuple);
        if (ec == asio::error::operation_aborted) {
          co_return MakeError(ErrorCode::kUnavailable, "cancelled");
        }
        if (ec) pidfd_.reset();  // not pollable here: fall back to polling
      } else {
        // Kernels without pidfd_open: poll, backing off.
        poll_.expires_after(poll_interval);
        auto [ec] = co_await poll_.async_wait(kTuple);
        if (ec) co_return MakeError(ErrorCode::kUnavailable, "cancelled");
        poll_interval = std::min(poll_interval * 2, Millis(100));
      }
    }
    // The check is over: whatever the command left running goes with it.
    ::kill(-pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_ = status;
    co_return status;
  }

 private:
  pid_t pid_;
  std::optional<Result<int>> exit_;  // set once reaped
  std::optional<asio::posix::stream_descriptor> pidfd_;
  asio::steady_timer poll_;
};

// Reads the pipe into `tail` until every writer has closed it.
asio::awaitable<void> ReadAll(asio::posix::stream_descriptor& pipe, OutputTail& tail) {
  std::array<char, 4096> buffer;
  for (;;) {
    auto [ec, n] = co_await pipe.async_read_some(asio::buffer(buffer), kTuple);
    tail.Append(buffer.data(), n);
    if (ec || co_await Cancelled()) co_return;
  }
}

// What is already in the pipe, without waiting for more.
void DrainReady(asio::posix::stream_descriptor& pipe, OutputTail& tail) {
  boost::system::error_code ec;
  pipe.non_blocking(true, ec);
  if (ec) return;
  std::array<char, 4096> buffer;
  for (;;) {
    size_t n = pipe.read_some(asio::buffer(buffer), ec);
    tail.Append(buffer.data(), n);
    if (ec) return;
  }
}

Result<pid_t> Spawn(const std::string& command, const std::string& workdir,
                    const std::vector<std::string>& environment, int output_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0) {
    return MakeError(ErrorCode::kInternal, "cannot start /bin/sh: " + ErrnoMessage(rc));
  }
  if (int rc = posix_spawnattr_init(&attr); rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return MakeError(ErrorCode::kInternal, "cannot start /bin/sh: " + ErrnoMessage(rc));
  }
  int rc = 0;
  auto step = [&rc](int r) {
    if (rc == 0) rc = r;
  };
  if (!workdir.empty()) step(posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str()));
  step(posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO));
  step(posix_spawn_file_actions_adddup2(&actions, output_fd, STDERR_FILENO));
  step(posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0));
  // Sockets and files the daemon holds without O_CLOEXEC stay out of the command.
  step(posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1));
  // Its own process group, so that a timeout can kill everything it started;
  // default signal handling, whatever the daemon ignores or blocks.
  step(posix_spawnattr_setflags(
      &attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));
  step(posix_spawnattr_setpgroup(&attr, 0));
  sigset_t none;
  sigemptyset(&none);
  step(posix_spawnattr_setsigmask(&attr, &none));
  sigset_t all;
  sigfillset(&all);
  step(posix_spawnattr_setsigdefault(&attr, &all));

  std::vector<char*> envp;
  envp.reserve(environment.size() + 1);
  for (const std::string& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
  envp.push_back(nullptr);
  char sh[] = "/bin/sh";
  char dash_c[] = "-c";
  char* argv[] = {sh, dash_c, const_cast<char*>(command.c_str()), nullptr};

  pid_t pid = -1;
  if (rc == 0) rc = posix_spawn(&pid, sh, &actions, &attr, argv, envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::string where = workdir.empty() ? std::string() : " in " + workdir;
    return MakeError(ErrorCode::kUnavailable,
                     "cannot start /bin/sh" + where + ": " + ErrnoMessage(rc));
  }
  return pid;
}

std::string ExitDescription(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) +
           (name ? " (SIG" + std::string(name) + ")" : std::string());
  }
  return "ended with wait status " + std::to_string(status);
}

}  // namespace

std::vector<std::string> CommandEnvironment(const CheckContext& ctx) {
  std::vector<std::pair<std::string_view, std::string>> ours = {
      {"CUTOVER_PREVIEW_URL", "http://" + ReachableAddress(ctx.preview).ToString()},
      {"CUTOVER_LIVE_URL", "http://" + ReachableAddress(ctx.live).ToString()},
      {"CUTOVER_RELEASE", ctx.release},
      {"CUTOVER_SERVICE_HOST", ctx.host},
  };
  if (!ctx.preview_token.empty()) ours.emplace_back("CUTOVER_PREVIEW_TOKEN", ctx.preview_token);

  std::vector<std::string> out;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::string_view name = text.substr(0, text.find('='));
    // A token inherited from the daemon's own environment would be stale.
    if (name == "CUTOVER_PREVIEW_TOKEN") continue;
    if (std::any_of(ours.begin(), ours.end(), [&](const auto& v) { return v.first == name; })) {
      continue;
    }
    out.emplace_back(text);
  }
  for (const auto& [name, value] : ours) {
    std::string entry(name);
    entry += '=';
    entry += value;
    out.push_back(std::move(entry));
  }
  return out;
}

asio::awaitable<CommandRun> RunCommandOnce(const std::string& command, const CheckContext& ctx,
                                           Millis timeout) {
  auto executor = co_await asio::this_coro::executor;
  CommandRun run;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    run.message = "cannot create a pipe: " + ErrnoMessage(errno);
    co_return run;
  }
  asio::posix::stream_descriptor output(executor, fds[0]);
  UniqueFd write_end(fds[1]);
  Result<pid_t> pid = Spawn(command, ctx.workdir, CommandEnvironment(ctx), write_end.get());
  // From here only the command's processes hold the write end: the pipe ends
  // when the last of them has closed it.
  write_end.Reset();
  if (!pid) {
    run.message = pid.error().message;
    co_return run;
  }

  Child child(executor, *pid);
  OutputTail tail;
  asio::steady_timer deadline(executor, timeout);
  std::optional<Result<int>> status;
  bool timed_out = false;
  auto first = co_await (child.WaitExit() || ReadAll(output, tail) || deadline.async_wait(kTuple));
  if (first.index() == 0) {
    status = std::get<0>(std::move(first));
  } else if (first.index() == 1) {
    // The output closed; the shell may still be finishing.
    auto second = co_await (child.WaitExit() || deadline.async_wait(kTuple));
    if (second.index() == 0) {
      status = std::get<0>(std::move(second));
    } else {
      timed_out = true;
    }
  } else {
    timed_out = true;
  }
  const bool cancelled = co_await Cancelled();
  if (!child.reaped()) {
    child.KillGroup();
    // SIGKILL cannot be caught: this wait is short.
    Result<int> killed = co_await child.WaitExit();
    if (!status || !*status) status = std::move(killed);
  }
  DrainReady(output, tail);
  run.output = tail.Take();

  if (cancelled) {
    run.message = "cancelled; its process group was killed";
  } else if (timed_out) {
    run.message = "timed out after " + FormatDuration(timeout) + "; its process group was killed";
  } else if (!*status) {
    run.message = status->error().message;
  } else if (WIFEXITED(**status) && WEXITSTATUS(**status) == 0) {
    run.passed = true;
  } else {
    run.message = ExitDescription(**status);
  }
  co_return run;
}

}  // namespace cutover
