#include "router/health_checker.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace cutover {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
namespace {
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
}

struct HealthChecker::Check {
  TargetPtr target;
  HealthConfig config;
  bool stopped = false;
  bool have_first = false;
  bool believed_healthy = true;
  int passes = 0;
  int failures = 0;
  std::string last_error;
  std::unique_ptr<asio::steady_timer> timer;
};

HealthChecker::HealthChecker(asio::io_context& control)
    : control_(control), first_round_(control) {}

HealthChecker::~HealthChecker() { Stop(); }

void HealthChecker::Watch(TargetPtr target, const HealthConfig& config) {
  Unwatch(target.get());
  auto check = std::make_shared<Check>();
  check->target = std::move(target);
  check->config = config;
  check->timer = std::make_unique<asio::steady_timer>(control_);
  checks_[check->target.get()] = check;
  ++first_round_pending_;
  asio::co_spawn(control_, Loop(check), asio::detached);
}

void HealthChecker::Unwatch(const Target* target) {
  auto it = checks_.find(target);
  if (it == checks_.end()) return;
  it->second->stopped = true;
  it->second->timer->cancel();
  if (!it->second->have_first) FirstResultArrived();
  checks_.erase(it);
}

void HealthChecker::Stop() {
  while (!checks_.empty()) Unwatch(checks_.begin()->first);
}

void HealthChecker::FirstResultArrived() {
  if (first_round_pending_ > 0 && --first_round_pending_ == 0) first_round_.cancel();
}

asio::awaitable<void> HealthChecker::WaitFirstRound(Millis deadline) {
  if (first_round_pending_ == 0) co_return;
  first_round_.expires_after(deadline);
  co_await first_round_.async_wait(kTuple);
}

std::string HealthChecker::LastError(const Target* target) const {
  auto it = checks_.find(target);
  return it == checks_.end() ? std::string() : it->second->last_error;
}

asio::awaitable<Status> ProbeOnce(const tcp::endpoint& endpoint, const std::string& host_header,
                                  const std::string& path, Millis timeout) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  asio::steady_timer timer(executor, timeout);
  auto work = [&]() -> asio::awaitable<Status> {
    auto [cec] = co_await socket.async_connect(endpoint, kTuple);
    if (cec) co_return MakeError(ErrorCode::kUnavailable, "connect: " + cec.message());
    std::string request = fmt::format(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cutover-health\r\nConnection: close\r\n\r\n",
        path, host_header);
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(request), kTuple);
    if (wec) co_return MakeError(ErrorCode::kUnavailable, "send: " + wec.message());
    char buf[512];
    size_t have = 0;
    while (have < 12) {
      auto [rec, n] =
          co_await socket.async_read_some(asio::buffer(buf + have, sizeof(buf) - have), kTuple);
      if (rec || n == 0) {
        co_return MakeError(ErrorCode::kUnavailable,
                            "no response: " + (rec ? rec.message() : std::string("closed")));
      }
      have += n;
    }
    std::string_view line(buf, have);
    if (!line.starts_with("HTTP/1.") || line[8] != ' ') {
      co_return MakeError(ErrorCode::kUnavailable, "not an HTTP response");
    }
    int status = 0;
    for (int i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') {
        co_return MakeError(ErrorCode::kUnavailable, "not an HTTP response");
      }
      status = status * 10 + (line[i] - '0');
    }
    if (status < 200 || status >= 400) {
      co_return MakeError(ErrorCode::kUnavailable, fmt::format("{} answered {}", path, status));
    }
    co_return Status{};
  };
  auto result = co_await (work() || timer.async_wait(kTuple));
  if (result.index() == 1) {
    co_return MakeError(ErrorCode::kTimeout,
                        fmt::format("no answer within {}", FormatDuration(timeout)));
  }
  co_return std::get<0>(std::move(result));
}

asio::awaitable<void> HealthChecker::Loop(std::shared_ptr<Check> check) {
  Target& t = *check->target;
  const std::string host = t.address.host;
  while (!check->stopped) {
    Status r = co_await ProbeOnce(t.endpoint, host, check->config.path, check->config.timeout);
    if (check->stopped) break;
    bool flag = t.healthy.load(std::memory_order_relaxed);
    if (check->believed_healthy && !flag) {
      // A worker ejected it: it must earn its way back.
      check->believed_healthy = false;
      check->passes = 0;
    }
    if (r) {
      check->last_error.clear();
      check->failures = 0;
      ++check->passes;
      if (!check->have_first || check->passes >= check->config.healthy_threshold) {
        check->believed_healthy = true;
        t.healthy.store(true, std::memory_order_relaxed);
      }
    } else {
      check->last_error = r.error().message;
      check->passes = 0;
      ++check->failures;
      if (!check->have_first || check->failures >= check->config.unhealthy_threshold) {
        check->believed_healthy = false;
        t.healthy.store(false, std::memory_order_relaxed);
      }
    }
    if (!check->have_first) {
      check->have_first = true;
      FirstResultArrived();
    }
    check->timer->expires_after(check->config.interval);
    co_await check->timer->async_wait(kTuple);
  }
}

}  // namespace cutover
