#include "router/stats.h"

#include <algorithm>

namespace cutover {

size_t LatencyBucket(uint64_t latency_us) {
  auto it = std::lower_bound(kLatencyBucketsUs.begin(), kLatencyBucketsUs.end(), latency_us);
  return static_cast<size_t>(it - kLatencyBucketsUs.begin());
}

void StatsShard::RecordResponse(int status, uint64_t latency_us) {
  Add(responses[StatusClassIndex(status)], 1);
  Add(latency[LatencyBucket(latency_us)], 1);
  Add(latency_sum_us, latency_us);
}

void StatsSnapshot::RecordResponse(int status, uint64_t latency_us) {
  responses[StatusClassIndex(status)] += 1;
  latency[LatencyBucket(latency_us)] += 1;
  latency_sum_us += latency_us;
}

uint64_t StatsSnapshot::total() const {
  uint64_t t = 0;
  for (uint64_t r : responses) t += r;
  return t;
}

void StatsSnapshot::Add(const StatsSnapshot& o) {
  for (size_t i = 0; i < 5; ++i) responses[i] += o.responses[i];
  proxy_errors += o.proxy_errors;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  in_flight += o.in_flight;
  for (size_t i = 0; i < kLatencyBuckets; ++i) latency[i] += o.latency[i];
  latency_sum_us += o.latency_sum_us;
}

StatsSnapshot ShardedStats::Snapshot() const {
  StatsSnapshot s;
  for (size_t w = 0; w < count_; ++w) {
    const StatsShard& sh = shards_[w];
    for (size_t i = 0; i < 5; ++i)
      s.responses[i] += sh.responses[i].load(std::memory_order_relaxed);
    s.proxy_errors += sh.proxy_errors.load(std::memory_order_relaxed);
    s.bytes_in += sh.bytes_in.load(std::memory_order_relaxed);
    s.bytes_out += sh.bytes_out.load(std::memory_order_relaxed);
    s.in_flight += sh.in_flight.load(std::memory_order_relaxed);
    for (size_t i = 0; i < kLatencyBuckets; ++i) {
      s.latency[i] += sh.latency[i].load(std::memory_order_relaxed);
    }
    s.latency_sum_us += sh.latency_sum_us.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace cutover
