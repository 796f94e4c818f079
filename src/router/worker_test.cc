#include "router/worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <thread>

namespace cutover {
namespace {

namespace asio = boost::asio;

// Keeps the calling thread busy for `cpu` of its own CPU time.
void Spin(std::chrono::microseconds cpu) {
  const auto until = ThreadCpuTime() + cpu;
  while (ThreadCpuTime() < until) {
  }
}

struct Chain {
  int ran = 0;
  uint64_t yields = 0;
};

// Runs `count` handlers in one stretch, each posting the next so that the
// loop always has one ready, each spinning for `each` of CPU time.
Chain RunChain(int count, std::chrono::microseconds each) {
  asio::io_context ctx(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  std::atomic<uint64_t> yields{0};
  Chain chain;
  std::function<void()> step = [&] {
    Spin(each);
    if (++chain.ran < count) asio::post(ctx, step);
  };
  asio::post(ctx, step);
  RunEventLoop(ctx, yields);
  EXPECT_TRUE(ctx.stopped());
  chain.yields = yields.load();
  return chain;
}

TEST(RunEventLoop, ThreadBusyPastTheBudgetYieldsAndStillRunsEveryHandler) {
  // 40 handlers of a quarter of the budget each: ten budgets in all.
  Chain chain = RunChain(40, kBusyBudget / 4);
  EXPECT_EQ(chain.ran, 40);
  EXPECT_GE(chain.yields, 1u);
}

TEST(RunEventLoop, ThreadThatPausesBetweenHandlersNeverYields) {
  asio::io_context ctx(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  std::atomic<uint64_t> yields{0};
  asio::steady_timer timer(ctx);
  int ran = 0;
  // Short handlers a millisecond apart, twice the budget in wall time: the
  // loop waits for each, so it never stays busy.
  std::function<void()> arm = [&] {
    timer.expires_after(std::chrono::milliseconds(1));
    timer.async_wait([&](boost::system::error_code) {
      if (++ran < 2 * 40) arm();
    });
  };
  arm();
  RunEventLoop(ctx, yields);
  EXPECT_EQ(ran, 80);
  EXPECT_EQ(yields.load(), 0u);
}

TEST(RunEventLoop, ShortHandlersBackToBackNeverYield) {
  // 200 handlers in one stretch, far less than the budget of CPU time in all.
  Chain chain = RunChain(200, std::chrono::microseconds(0));
  EXPECT_EQ(chain.ran, 200);
  EXPECT_EQ(chain.yields, 0u);
}

TEST(RunEventLoop, StopFromAHandlerEndsTheLoopLikeAWorkersDrain) {
  asio::io_context ctx(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  std::atomic<uint64_t> yields{0};
  auto guard = asio::make_work_guard(ctx);  // never out of work by itself
  asio::steady_timer far(ctx, std::chrono::hours(1));
  far.async_wait([](boost::system::error_code) {});
  asio::steady_timer soon(ctx, std::chrono::milliseconds(1));
  bool stopped_here = false;
  soon.async_wait([&](boost::system::error_code) {
    stopped_here = true;
    ctx.stop();
  });
  RunEventLoop(ctx, yields);
  EXPECT_TRUE(stopped_here);
  EXPECT_TRUE(ctx.stopped());
}

TEST(RunEventLoop, StopFromAnotherThreadWakesTheWaitingLoop) {
  asio::io_context ctx(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
  std::atomic<uint64_t> yields{0};
  auto guard = asio::make_work_guard(ctx);
  asio::steady_timer far(ctx, std::chrono::hours(1));  // the loop waits in the reactor
  far.async_wait([](boost::system::error_code) {});
  std::promise<void> running;
  asio::post(ctx, [&] { running.set_value(); });
  std::thread loop([&] { RunEventLoop(ctx, yields); });
  running.get_future().wait();
  ctx.stop();
  loop.join();  // returns: a loop that missed the stop would hang here
  EXPECT_TRUE(ctx.stopped());
}

}  // namespace
}  // namespace cutover
