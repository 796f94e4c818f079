// Traffic: a steady stream of requests at the preview, for an analysis
// check that judges the idle color by the figures it produces. Control
// thread; asynchronous on the caller's executor.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <vector>

#include "checks/checks.h"
#include "config/config.h"

namespace cutover {

// One request of the stream and how it ended.
struct TrafficSample {
  int status = 0;  // 0: no answer (connection failed, or none within the timeout)
  uint64_t latency_us = 0;
};

// Sends `requests` in turn to the preview (ctx.preview, with its Host and
// token), `rate` per second for `duration`, each bounded by `timeout`;
// requests overlap when the idle color is slower than the rate. Returns one
// sample per request sent. A terminal cancellation stops sending and
// returns what came back so far.
boost::asio::awaitable<std::vector<TrafficSample>> DriveTraffic(
    const std::vector<CheckRequest>& requests, int rate, Millis duration, Millis timeout,
    const CheckContext& ctx);

}  // namespace cutover
