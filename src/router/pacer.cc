#include "router/pacer.h"

#include <sched.h>
#include <time.h>

namespace cutover {

namespace {
std::chrono::steady_clock::time_point SteadyNow() { return std::chrono::steady_clock::now(); }

// The calling thread's own CPU time (a system call: no vDSO for it).
std::chrono::nanoseconds ThreadCpuTime() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

void SchedYield() { ::sched_yield(); }
}  // namespace

Pacer::Pacer() : Pacer(&SteadyNow, &ThreadCpuTime, &SchedYield) {}

Pacer::Pacer(WallClock wall, CpuClock cpu, YieldFn yield) : wall_(wall), cpu_(cpu), yield_(yield) {}

bool Pacer::Check() {
  const auto now = wall_();
  const auto wall = now - window_wall_;
  if (wall < kWindow) return false;
  const std::chrono::nanoseconds cpu = cpu_();
  const bool busy = (cpu - window_cpu_) * 4 >= wall * 3;
  window_cpu_ = cpu;
  if (!busy) {
    window_wall_ = now;
    return false;
  }
  yield_();
  // The window starts when the thread has its core again; its CPU clock
  // stood still meanwhile.
  window_wall_ = wall_();
  return true;
}

}  // namespace cutover
