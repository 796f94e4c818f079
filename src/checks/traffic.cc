#include "checks/traffic.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>

#include "checks/http_exchange.h"

namespace cutover {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// What the stream's requests share; they may outlive the stream's own
// coroutine when it is cancelled.
struct Stream {
  explicit Stream(asio::any_io_executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
  std::vector<TrafficSample> samples;
  int pending = 0;
  asio::steady_timer done;  // cancelled when the last request ends
};

asio::awaitable<void> SendOne(std::shared_ptr<Stream> stream, HostPort to, HttpOutgoing out,
                              Millis timeout) {
  const auto started = std::chrono::steady_clock::now();
  asio::steady_timer deadline(co_await asio::this_coro::executor, timeout);
  auto raced = co_await (SendHttpRequest(to, out) || deadline.async_wait(kTuple));
  TrafficSample sample;
  if (raced.index() == 0) {
    const Result<HttpReply>& reply = std::get<0>(raced);
    if (reply) sample.status = reply->status;
  }
  sample.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  stream->samples.push_back(sample);
  if (--stream->pending == 0) stream->done.cancel();
}

}  // namespace

asio::awaitable<std::vector<TrafficSample>> DriveTraffic(const std::vector<CheckRequest>& requests,
                                                         int rate, Millis duration, Millis timeout,
                                                         const CheckContext& ctx) {
  co_await asio::this_coro::throw_if_cancelled(false);
  asio::any_io_executor ex = co_await asio::this_coro::executor;
  auto stream = std::make_shared<Stream>(ex);
  if (requests.empty() || rate <= 0) co_return stream->samples;
  const int64_t total = std::max<int64_t>(1, duration.count() * rate / 1000);
  const auto start = std::chrono::steady_clock::now();
  asio::steady_timer pace(ex);
  for (int64_t i = 0; i < total; ++i) {
    pace.expires_at(start + std::chrono::microseconds(i * 1'000'000 / rate));
    co_await pace.async_wait(kTuple);
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) break;
    const CheckRequest& r = requests[static_cast<size_t>(i) % requests.size()];
    HttpOutgoing out = OutgoingFor(r, ctx.host, ctx.preview_token);
    ++stream->pending;
    asio::co_spawn(ex, SendOne(stream, ReachableAddress(ctx.preview), std::move(out), timeout),
                   asio::detached);
  }
  if (stream->pending > 0) {
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() == asio::cancellation_type::none) {
      co_await stream->done.async_wait(kTuple);
    }
  }
  co_return stream->samples;
}

}  // namespace cutover
