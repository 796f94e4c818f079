// Per-target traffic figures. Each router worker writes only its own shard
// (plain relaxed loads and stores: one writer per shard, no locked
// instructions on the per-request path); the control thread sums the shards
// when it reports. Shards are cache-line aligned so workers never share one.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace cutover {

// Upper bounds, in microseconds, of the latency histogram's buckets; the last
// bucket (+Inf) is implicit.
inline constexpr std::array<uint32_t, 30> kLatencyBucketsUs = {
    250,     500,     1000,    2000,    3000,    5000,     7500,     10000,    15000,    20000,
    30000,   50000,   75000,   100000,  150000,  200000,   300000,   500000,   750000,   1000000,
    1500000, 2000000, 3000000, 5000000, 7500000, 10000000, 15000000, 30000000, 60000000, 120000000};
inline constexpr size_t kLatencyBuckets = kLatencyBucketsUs.size() + 1;

// Index of the latency bucket `latency_us` falls in.
size_t LatencyBucket(uint64_t latency_us);

// Index of a response's status class: 0 for 1xx ... 4 for 5xx.
inline size_t StatusClassIndex(int status) {
  int c = status / 100 - 1;
  return c < 0 ? 0 : (c > 4 ? 4 : static_cast<size_t>(c));
}

struct alignas(64) StatsShard {
  std::atomic<uint64_t> responses[5] = {};  // by status class
  std::atomic<uint64_t> proxy_errors = {};  // 502/504 answered by the router
  std::atomic<uint64_t> bytes_in = {};      // request bytes sent to the target
  std::atomic<uint64_t> bytes_out = {};     // response bytes received from it
  std::atomic<int64_t> in_flight = {};
  std::atomic<uint64_t> latency[kLatencyBuckets] = {};
  std::atomic<uint64_t> latency_sum_us = {};

  // Single-writer increment: the owning worker is the only writer.
  static void Add(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void Add(std::atomic<int64_t>& c, int64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  void RecordResponse(int status, uint64_t latency_us);
};

// Sum of all shards at one moment (values may be a few requests apart).
struct StatsSnapshot {
  uint64_t responses[5] = {};
  uint64_t proxy_errors = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  int64_t in_flight = 0;
  uint64_t latency[kLatencyBuckets] = {};
  uint64_t latency_sum_us = 0;

  uint64_t total() const;
  void Add(const StatsSnapshot& other);
  // Counts one response of `status` that took `latency_us`.
  void RecordResponse(int status, uint64_t latency_us);
};

// One shard per worker thread.
class ShardedStats {
 public:
  explicit ShardedStats(size_t workers)
      : shards_(std::make_unique<StatsShard[]>(workers)), count_(workers) {}
  StatsShard& shard(size_t worker) { return shards_[worker]; }
  StatsSnapshot Snapshot() const;

 private:
  std::unique_ptr<StatsShard[]> shards_;
  size_t count_;
};

}  // namespace cutover
