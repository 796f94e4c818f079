#include "router/stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <thread>
#include <vector>

namespace cutover {
namespace {

uint64_t LatencyTotal(const StatsSnapshot& s) {
  return std::accumulate(std::begin(s.latency), std::end(s.latency), uint64_t{0});
}

// Bucket holding exactly one recorded latency, or -1.
int OnlyBucket(const StatsSnapshot& s) {
  int found = -1;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    if (s.latency[i] == 1 && found == -1) {
      found = static_cast<int>(i);
    } else if (s.latency[i] != 0) {
      return -1;
    }
  }
  return found;
}

int BucketOf(uint64_t latency_us) {
  ShardedStats stats(1);
  stats.shard(0).RecordResponse(200, latency_us);
  return OnlyBucket(stats.Snapshot());
}

TEST(StatusClassIndexTest, Classes) {
  EXPECT_EQ(StatusClassIndex(100), 0u);
  EXPECT_EQ(StatusClassIndex(101), 0u);
  EXPECT_EQ(StatusClassIndex(199), 0u);
  EXPECT_EQ(StatusClassIndex(200), 1u);
  EXPECT_EQ(StatusClassIndex(204), 1u);
  EXPECT_EQ(StatusClassIndex(299), 1u);
  EXPECT_EQ(StatusClassIndex(301), 2u);
  EXPECT_EQ(StatusClassIndex(404), 3u);
  EXPECT_EQ(StatusClassIndex(499), 3u);
  EXPECT_EQ(StatusClassIndex(500), 4u);
  EXPECT_EQ(StatusClassIndex(503), 4u);
  EXPECT_EQ(StatusClassIndex(599), 4u);
}

TEST(StatusClassIndexTest, OutOfRangeIsClamped) {
  EXPECT_EQ(StatusClassIndex(0), 0u);
  EXPECT_EQ(StatusClassIndex(99), 0u);
  EXPECT_EQ(StatusClassIndex(-500), 0u);
  EXPECT_EQ(StatusClassIndex(600), 4u);
  EXPECT_EQ(StatusClassIndex(999), 4u);
}

TEST(LatencyBucketsTest, BoundsAreIncreasing) {
  EXPECT_TRUE(std::is_sorted(kLatencyBucketsUs.begin(), kLatencyBucketsUs.end()));
  EXPECT_EQ(std::adjacent_find(kLatencyBucketsUs.begin(), kLatencyBucketsUs.end()),
            kLatencyBucketsUs.end());
  EXPECT_EQ(kLatencyBuckets, kLatencyBucketsUs.size() + 1);
}

TEST(RecordResponseTest, BucketUpperBoundsAreInclusive) {
  EXPECT_EQ(BucketOf(0), 0);
  EXPECT_EQ(BucketOf(1), 0);
  EXPECT_EQ(BucketOf(250), 0);
  EXPECT_EQ(BucketOf(251), 1);
  EXPECT_EQ(BucketOf(500), 1);
  EXPECT_EQ(BucketOf(501), 2);
  for (size_t i = 0; i < kLatencyBucketsUs.size(); ++i) {
    EXPECT_EQ(BucketOf(kLatencyBucketsUs[i]), static_cast<int>(i)) << kLatencyBucketsUs[i];
    EXPECT_EQ(BucketOf(uint64_t{kLatencyBucketsUs[i]} + 1), static_cast<int>(i + 1))
        << kLatencyBucketsUs[i] + 1;
  }
}

TEST(RecordResponseTest, SlowerThanTheLastBoundGoesToInf) {
  const int inf = static_cast<int>(kLatencyBuckets - 1);
  EXPECT_EQ(BucketOf(uint64_t{kLatencyBucketsUs.back()} + 1), inf);
  EXPECT_EQ(BucketOf(3'600'000'000ull), inf);
  EXPECT_EQ(BucketOf(UINT64_MAX / 2), inf);
}

TEST(RecordResponseTest, CountsStatusClassAndLatencySum) {
  ShardedStats stats(1);
  StatsShard& shard = stats.shard(0);
  shard.RecordResponse(200, 1000);
  shard.RecordResponse(201, 3000);
  shard.RecordResponse(404, 10);
  shard.RecordResponse(502, 2'000'000);
  shard.RecordResponse(101, 0);
  StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.responses[0], 1u);
  EXPECT_EQ(s.responses[1], 2u);
  EXPECT_EQ(s.responses[2], 0u);
  EXPECT_EQ(s.responses[3], 1u);
  EXPECT_EQ(s.responses[4], 1u);
  EXPECT_EQ(s.total(), 5u);
  EXPECT_EQ(s.latency_sum_us, 1000u + 3000u + 10u + 2'000'000u);
  EXPECT_EQ(LatencyTotal(s), 5u);
  EXPECT_EQ(s.latency[0], 2u);   // 10us and 0us
  EXPECT_EQ(s.latency[2], 1u);   // 1000us
  EXPECT_EQ(s.latency[4], 1u);   // 3000us
  EXPECT_EQ(s.latency[21], 1u);  // 2s
}

TEST(ShardedStatsTest, NewStatsAreZero) {
  ShardedStats stats(3);
  StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.total(), 0u);
  EXPECT_EQ(s.proxy_errors, 0u);
  EXPECT_EQ(s.bytes_in, 0u);
  EXPECT_EQ(s.bytes_out, 0u);
  EXPECT_EQ(s.in_flight, 0);
  EXPECT_EQ(LatencyTotal(s), 0u);
  EXPECT_EQ(s.latency_sum_us, 0u);
}

TEST(ShardedStatsTest, SnapshotSumsAllShards) {
  ShardedStats stats(3);
  for (size_t w = 0; w < 3; ++w) {
    StatsShard& shard = stats.shard(w);
    for (size_t i = 0; i <= w; ++i) shard.RecordResponse(200, 100);
    shard.RecordResponse(503, 100'000);
    StatsShard::Add(shard.proxy_errors, w);
    StatsShard::Add(shard.bytes_in, 10 * (w + 1));
    StatsShard::Add(shard.bytes_out, 100 * (w + 1));
    StatsShard::Add(shard.in_flight, int64_t{2});
  }
  StatsShard::Add(stats.shard(1).in_flight, int64_t{-3});

  StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.responses[1], 1u + 2u + 3u);
  EXPECT_EQ(s.responses[4], 3u);
  EXPECT_EQ(s.total(), 9u);
  EXPECT_EQ(s.proxy_errors, 0u + 1u + 2u);
  EXPECT_EQ(s.bytes_in, 10u + 20u + 30u);
  EXPECT_EQ(s.bytes_out, 100u + 200u + 300u);
  EXPECT_EQ(s.in_flight, 3 * 2 - 3);
  EXPECT_EQ(s.latency[0], 6u);
  EXPECT_EQ(s.latency[13], 3u);  // 100ms bucket
  EXPECT_EQ(s.latency_sum_us, 6u * 100u + 3u * 100'000u);
}

TEST(ShardedStatsTest, InFlightCanGoUpAndDown) {
  ShardedStats stats(2);
  StatsShard::Add(stats.shard(0).in_flight, int64_t{1});
  StatsShard::Add(stats.shard(1).in_flight, int64_t{1});
  EXPECT_EQ(stats.Snapshot().in_flight, 2);
  StatsShard::Add(stats.shard(0).in_flight, int64_t{-1});
  EXPECT_EQ(stats.Snapshot().in_flight, 1);
  StatsShard::Add(stats.shard(1).in_flight, int64_t{-1});
  EXPECT_EQ(stats.Snapshot().in_flight, 0);
}

TEST(ShardedStatsTest, ShardsDoNotShareCacheLines) {
  ShardedStats stats(2);
  auto a = reinterpret_cast<uintptr_t>(&stats.shard(0));
  auto b = reinterpret_cast<uintptr_t>(&stats.shard(1));
  EXPECT_EQ(a % 64, 0u);
  EXPECT_EQ(b % 64, 0u);
  EXPECT_GE(b - a, 64u);
}

TEST(ShardedStatsTest, OneWriterPerShardFromManyThreads) {
  constexpr size_t kWorkers = 2;
  constexpr int kPerWorker = 10'000;
  ShardedStats stats(kWorkers);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&stats, w] {
      StatsShard& shard = stats.shard(w);
      for (int i = 0; i < kPerWorker; ++i) {
        shard.RecordResponse(200, 1);
        StatsShard::Add(shard.bytes_out, 2);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  StatsSnapshot s = stats.Snapshot();
  EXPECT_EQ(s.responses[1], kWorkers * kPerWorker);
  EXPECT_EQ(s.bytes_out, 2 * kWorkers * kPerWorker);
  EXPECT_EQ(s.latency[0], kWorkers * kPerWorker);
}

TEST(StatsSnapshotTest, AddSumsEveryField) {
  StatsSnapshot a;
  a.responses[0] = 1;
  a.responses[4] = 2;
  a.proxy_errors = 3;
  a.bytes_in = 4;
  a.bytes_out = 5;
  a.in_flight = 6;
  a.latency[0] = 7;
  a.latency[kLatencyBuckets - 1] = 8;
  a.latency_sum_us = 9;

  StatsSnapshot b;
  b.responses[0] = 10;
  b.responses[1] = 20;
  b.proxy_errors = 30;
  b.bytes_in = 40;
  b.bytes_out = 50;
  b.in_flight = -2;
  b.latency[5] = 70;
  b.latency[kLatencyBuckets - 1] = 80;
  b.latency_sum_us = 90;

  a.Add(b);
  EXPECT_EQ(a.responses[0], 11u);
  EXPECT_EQ(a.responses[1], 20u);
  EXPECT_EQ(a.responses[4], 2u);
  EXPECT_EQ(a.total(), 33u);
  EXPECT_EQ(a.proxy_errors, 33u);
  EXPECT_EQ(a.bytes_in, 44u);
  EXPECT_EQ(a.bytes_out, 55u);
  EXPECT_EQ(a.in_flight, 4);
  EXPECT_EQ(a.latency[0], 7u);
  EXPECT_EQ(a.latency[5], 70u);
  EXPECT_EQ(a.latency[kLatencyBuckets - 1], 88u);
  EXPECT_EQ(a.latency_sum_us, 99u);
  // The argument is left as it was.
  EXPECT_EQ(b.responses[0], 10u);
  EXPECT_EQ(b.latency_sum_us, 90u);
}

TEST(StatsSnapshotTest, AddOfTwoShardedSnapshotsMatchesOneService) {
  ShardedStats blue(2);
  ShardedStats green(2);
  blue.shard(0).RecordResponse(200, 300);
  blue.shard(1).RecordResponse(500, 300);
  green.shard(1).RecordResponse(200, 300);
  StatsSnapshot sum = blue.Snapshot();
  sum.Add(green.Snapshot());
  EXPECT_EQ(sum.total(), 3u);
  EXPECT_EQ(sum.responses[1], 2u);
  EXPECT_EQ(sum.responses[4], 1u);
  EXPECT_EQ(sum.latency[1], 3u);
  EXPECT_EQ(sum.latency_sum_us, 900u);
}

}  // namespace
}  // namespace cutover
