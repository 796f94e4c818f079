// Deadlines and condition polling for tests that drive real processes and
// sockets. Owned by the test support library; safe to call from any thread.
#pragma once

#include <chrono>
#include <functional>

namespace cutover::test {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline DeadlineIn(Clock::duration d) { return Clock::now() + d; }

// Milliseconds left until `deadline`, clamped to [0, INT_MAX]; for poll(2).
int MillisUntil(Deadline deadline);

// Calls `condition` until it returns true or `deadline` passes. Returns whether
// the condition became true. The condition is always evaluated at least once,
// and once more after the deadline, so a slow poll never loses a late success.
bool WaitUntil(const std::function<bool()>& condition, Deadline deadline,
               Clock::duration poll_interval = std::chrono::milliseconds(10));

}  // namespace cutover::test
