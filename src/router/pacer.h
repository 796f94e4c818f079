// Pacer: lets a busy worker thread give its core to other threads now and
// then, so that a worker whose event loop always finds work ready does not
// keep its core until the kernel's scheduler tick.
#pragma once

#include <chrono>
#include <cstdint>

namespace cutover {

// An event loop that always finds a handler ready never sleeps, and the
// kernel then switches it out only at the scheduler's tick (4 ms here). With
// more runnable threads than cores (the services behind the router often run
// on the same machine, and two workers may share one core), every connection
// of the threads waiting for that core waits as long: a convoy.
//
// A worker calls Step() once per unit of work: a request begun, a piece of a
// body relayed. Every kCheckEvery steps the pacer reads the wall clock; once
// a window of at least kWindow has passed since the last reading of the
// thread's CPU clock it reads that clock again, and if the thread ran for at
// least three quarters of the window it yields its core once. A thread that
// slept or was preempted for more than a quarter of the window does not:
// others had the core. A yield when no other thread waits for the core costs
// one system call.
class Pacer {
 public:
  using WallClock = std::chrono::steady_clock::time_point (*)();
  using CpuClock = std::chrono::nanoseconds (*)();
  using YieldFn = void (*)();

  static constexpr unsigned kCheckEvery = 8;
  static constexpr std::chrono::microseconds kWindow{1000};

  // The steady clock, the thread's CPU clock and sched_yield.
  Pacer();
  // Other clocks and yield (tests).
  Pacer(WallClock wall, CpuClock cpu, YieldFn yield);

  // One unit of work done. True when it yielded the core.
  bool Step() {
    if (++steps_ % kCheckEvery != 0) return false;
    return Check();
  }

 private:
  bool Check();

  WallClock wall_;
  CpuClock cpu_;
  YieldFn yield_;
  unsigned steps_ = 0;
  // Start of the current window: both clocks read there. Zero at first, so
  // the first check only starts a window.
  std::chrono::steady_clock::time_point window_wall_{};
  std::chrono::nanoseconds window_cpu_{0};
};

}  // namespace cutover
