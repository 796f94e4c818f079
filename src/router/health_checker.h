// HealthChecker: active health checks of targets. One coroutine per watched
// target sends `GET <path>` on a fresh connection every interval and flips the
// target's healthy flag after the configured number of consecutive passes or
// failures (a 2xx or 3xx answer within the timeout passes). The very first
// result of a target is taken as is, so that a daemon starting up knows its
// targets before it serves. Workers may also clear the flag (passive
// ejection); the checker then needs fresh passes to set it again.
// Control thread only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <unordered_map>

#include "config/config.h"
#include "router/route_table.h"

namespace cutover {

class HealthChecker {
 public:
  explicit HealthChecker(boost::asio::io_context& control);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts checking `target` (kept alive while watched) with `config`.
  void Watch(TargetPtr target, const HealthConfig& config);
  // Stops checking `target`.
  void Unwatch(const Target* target);
  // Stops every check.
  void Stop();

  // Completes once every target watched so far has a first result, or at
  // `deadline`, whichever comes first.
  boost::asio::awaitable<void> WaitFirstRound(Millis deadline);

  // The reason of the last failed check of `target`; empty after a pass.
  std::string LastError(const Target* target) const;

 private:
  struct Check;
  boost::asio::awaitable<void> Loop(std::shared_ptr<Check> check);
  void FirstResultArrived();

  boost::asio::io_context& control_;
  std::unordered_map<const Target*, std::shared_ptr<Check>> checks_;
  size_t first_round_pending_ = 0;
  boost::asio::steady_timer first_round_;
};

// Runs one check of `address` now: Ok on a 2xx/3xx status, else the reason.
boost::asio::awaitable<Status> ProbeOnce(const boost::asio::ip::tcp::endpoint& endpoint,
                                         const std::string& host_header, const std::string& path,
                                         Millis timeout);

}  // namespace cutover
