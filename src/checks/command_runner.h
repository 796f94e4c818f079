// CommandRunner: runs a command check once — `/bin/sh -c COMMAND` in its own
// process group, in the check's working directory, with the daemon's
// environment plus the CUTOVER_* variables, stdin from /dev/null and stdout
// and stderr captured through one pipe. Internal to src/checks.
// Control thread; asynchronous on the caller's executor, never blocks it.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>
#include <vector>

#include "checks/checks.h"
#include "common/types.h"

namespace cutover {

// Output kept from a command: its last bytes.
inline constexpr size_t kCommandOutputTail = 4 * 1024;

struct CommandRun {
  bool passed = false;  // exited with status 0
  std::string message;  // on failure: "exited with status 3", "timed out after 10s; ..."
  std::string output;   // the last kCommandOutputTail bytes of stdout+stderr
};

// The environment a command check sees, as "NAME=value" entries: the daemon's
// own with CUTOVER_PREVIEW_URL, CUTOVER_LIVE_URL, CUTOVER_RELEASE,
// CUTOVER_SERVICE_HOST and (when set) CUTOVER_PREVIEW_TOKEN replacing any
// inherited values of those names.
std::vector<std::string> CommandEnvironment(const CheckContext& ctx);

// Runs `command` once. When it has not exited within `timeout`, or the
// awaiting operation is cancelled, its whole process group is killed. When
// the shell exits, what it left running in its group is killed too. The
// child is always reaped before this completes.
boost::asio::awaitable<CommandRun> RunCommandOnce(const std::string& command,
                                                  const CheckContext& ctx, Millis timeout);

}  // namespace cutover
