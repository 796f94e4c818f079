#include "router/pacer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace cutover {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;
using Clock = std::chrono::steady_clock;

// The pacer's clocks for the tests below: plain values the test moves on.
struct FakeClocks {
  Clock::time_point wall = Clock::time_point{} + std::chrono::hours(1);
  nanoseconds cpu{0};
  microseconds off_core_per_yield{0};  // another thread's turn after a yield
  int wall_reads = 0;
  int cpu_reads = 0;
  int yields = 0;
};
FakeClocks* clocks = nullptr;

Pacer FakePacer(FakeClocks& c) {
  clocks = &c;
  return Pacer([] { return ++clocks->wall_reads, clocks->wall; },
               [] { return ++clocks->cpu_reads, clocks->cpu; },
               [] {
                 ++clocks->yields;
                 clocks->wall += clocks->off_core_per_yield;
               });
}

// `steps` steps, each `wall` long, of which the thread ran `cpu`.
int Work(Pacer& p, FakeClocks& c, int steps, microseconds wall, microseconds cpu) {
  int yielded = 0;
  for (int i = 0; i < steps; ++i) {
    c.wall += wall;
    c.cpu += cpu;
    if (p.Step()) ++yielded;
  }
  return yielded;
}

TEST(Pacer, ThreadBusyAllTheTimeYieldsAboutOncePerWindow) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  // 100 ms of requests of 100 µs each, the thread on its core throughout.
  const int yielded = Work(p, c, 1000, microseconds(100), microseconds(100));
  EXPECT_EQ(yielded, c.yields);
  const int windows = 100'000 / static_cast<int>(Pacer::kWindow.count());
  EXPECT_LE(yielded, windows);
  EXPECT_GE(yielded, windows / 2);
}

TEST(Pacer, ThreadThatRanHalfOfEachWindowNeverYields) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  // Sleeping or preempted half the time: others had the core.
  EXPECT_EQ(Work(p, c, 1000, microseconds(100), microseconds(50)), 0);
  EXPECT_EQ(c.yields, 0);
}

TEST(Pacer, ThreeQuartersOfTheWindowOnTheCoreIsBusy) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  EXPECT_GT(Work(p, c, 1000, microseconds(100), microseconds(80)), 0);
  FakeClocks d;
  Pacer q = FakePacer(d);
  EXPECT_EQ(Work(q, d, 1000, microseconds(100), microseconds(70)), 0);
}

TEST(Pacer, StepsBetweenChecksReadNoClock) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  Work(p, c, Pacer::kCheckEvery - 1, microseconds(1000), microseconds(1000));
  EXPECT_EQ(c.wall_reads, 0);
  EXPECT_EQ(c.cpu_reads, 0);
  // The next step checks: one reading of each clock, which starts the first
  // window without a yield.
  EXPECT_FALSE(p.Step());
  EXPECT_EQ(c.wall_reads, 1);
  EXPECT_EQ(c.cpu_reads, 1);
}

TEST(Pacer, CpuClockIsReadOnlyOnceAWindowHasPassed) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  Work(p, c, Pacer::kCheckEvery, microseconds(1), microseconds(1));  // starts a window
  // Checks a few microseconds apart: the wall clock says the window is not
  // over, so the (costlier) CPU clock is left alone.
  Work(p, c, 10 * Pacer::kCheckEvery, microseconds(1), microseconds(1));
  EXPECT_EQ(c.wall_reads, 11);
  EXPECT_EQ(c.cpu_reads, 1);
  EXPECT_EQ(c.yields, 0);
}

TEST(Pacer, WindowAfterATurnOffTheCoreStartsAfresh) {
  FakeClocks c;
  Pacer p = FakePacer(c);
  Work(p, c, 100, microseconds(100), microseconds(100));
  const int before = c.yields;
  // Preempted for 4 ms: the first check after that sees a window the thread
  // mostly did not run in, and does not yield.
  c.wall += std::chrono::milliseconds(4);
  EXPECT_EQ(Work(p, c, Pacer::kCheckEvery, microseconds(100), microseconds(100)), 0);
  // Busy again from there: it yields within two windows.
  EXPECT_GE(Work(p, c, 3 * Pacer::kCheckEvery, microseconds(100), microseconds(100)), 1);
  EXPECT_GT(c.yields, before);
}

TEST(Pacer, TimeOffTheCoreDuringAYieldDoesNotCountAgainstTheNextWindow) {
  FakeClocks c;
  // Every yield hands the core to another thread for 3 ms.
  c.off_core_per_yield = microseconds(3000);
  Pacer p = FakePacer(c);
  const int yielded = Work(p, c, 1000, microseconds(100), microseconds(100));
  // As often as when nobody takes the core: the window restarts once the
  // thread runs again.
  EXPECT_GE(yielded, 100'000 / static_cast<int>(Pacer::kWindow.count()) / 2);
}

TEST(Pacer, SpinningThreadYieldsWithTheRealClocks) {
  Pacer p;
  const auto give_up = Clock::now() + std::chrono::seconds(10);
  bool yielded = false;
  while (!yielded && Clock::now() < give_up) yielded = p.Step();
  EXPECT_TRUE(yielded);
}

TEST(Pacer, ThreadThatSleepsBetweenStepsNeverYieldsWithTheRealClocks) {
  Pacer p;
  int yielded = 0;
  for (int i = 0; i < 20 * static_cast<int>(Pacer::kCheckEvery); ++i) {
    std::this_thread::sleep_for(microseconds(200));
    if (p.Step()) ++yielded;
  }
  EXPECT_EQ(yielded, 0);
}

}  // namespace
}  // namespace cutover
