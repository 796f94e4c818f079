// Checks: prove a release before it goes live (DESIGN.md §3 step 6). An http
// check sends one request through the preview route to the idle color; a
// command check runs the user's smoke command with the preview and live URLs
// in its environment; a session check creates state on the live color and
// reads it back on the idle one, through one cookie jar.
//
// Thread: the control thread. RunCheck is asynchronous on the caller's
// executor and never blocks it. A check may be cancelled with a terminal
// cancellation of the awaiting operation: it then stops at once (a command's
// process group is killed and reaped) and reports "cancelled".
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "common/types.h"
#include "config/config.h"

namespace cutover {

// Where and as whom a check runs. Listen addresses 0.0.0.0, :: or an empty
// host are reached through the loopback address.
struct CheckContext {
  HostPort preview;  // the preview listener: routes by Host to the service's idle color
  HostPort live;     // the main listener: routes to the live color
  std::string host;  // Host header that selects the service (its first host, or "localhost")
  std::string preview_token;  // when non-empty, sent as X-Cutover-Preview-Token on preview requests
  std::string release;        // label of the release being checked
  std::string workdir;        // cwd for command checks (absolute); empty: the daemon's
};

struct CheckResult {
  bool passed = false;
  std::string name;     // CheckConfig::name, or CheckName(check)
  std::string message;  // on failure: what was expected and what came back, e.g.
                        // "GET /: expected status 200, got 503 (body: \"...\")"
  std::string output;   // command checks: the last 4 KiB of combined stdout+stderr
  int attempts = 0;     // attempts made, 1 + retries used
};

// The name a check is shown under: CheckConfig::name when set, else one made
// from what it does ("http GET /", "command ./smoke.sh", "session").
std::string CheckName(const CheckConfig& check);

// Runs `check` until it passes or its retries are spent. Each attempt is
// bounded by check.timeout; attempts are check.retry_interval apart; a failed
// result describes the last attempt. `check` and `ctx` must outlive the
// returned awaitable.
boost::asio::awaitable<CheckResult> RunCheck(const CheckConfig& check, const CheckContext& ctx);

}  // namespace cutover
