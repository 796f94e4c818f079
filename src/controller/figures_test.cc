#include "controller/figures.h"

#include <gtest/gtest.h>

namespace cutover {
namespace {

// A snapshot with `n` responses of `status`, each taking `us`.
StatsSnapshot Served(uint64_t n, int status, uint64_t us) {
  StatsShard shard;
  for (uint64_t i = 0; i < n; ++i) shard.RecordResponse(status, us);
  StatsSnapshot s;
  for (size_t k = 0; k < 5; ++k) s.responses[k] = shard.responses[k].load();
  for (size_t b = 0; b < kLatencyBuckets; ++b) s.latency[b] = shard.latency[b].load();
  s.latency_sum_us = shard.latency_sum_us.load();
  return s;
}

StatsSnapshot Sum(StatsSnapshot a, const StatsSnapshot& b) {
  a.Add(b);
  return a;
}

TEST(LatencyQuantileTest, InterpolatesInsideTheBucket) {
  StatsSnapshot s = Served(100, 200, 2500);  // all in the 2000..3000us bucket
  EXPECT_EQ(LatencyQuantileUs(s.latency, 0.5), 2500u);
  EXPECT_EQ(LatencyQuantileUs(s.latency, 0.99), 2990u);
  StatsSnapshot none;
  EXPECT_EQ(LatencyQuantileUs(none.latency, 0.99), 0u);
}

TEST(LatencyQuantileTest, TheSlowTailDecidesP99) {
  StatsSnapshot s = Sum(Served(98, 200, 400), Served(2, 200, 90'000));
  EXPECT_LT(LatencyQuantileUs(s.latency, 0.5), 500u);
  EXPECT_GT(LatencyQuantileUs(s.latency, 0.99), 75'000u);
  EXPECT_LE(LatencyQuantileUs(s.latency, 0.99), 100'000u);
}

TEST(FiguresTest, ErrorsAreTheFiveHundreds) {
  StatsSnapshot before = Served(10, 200, 1000);
  StatsSnapshot after = Sum(before, Sum(Served(90, 200, 1000), Served(10, 503, 1000)));
  Figures f = Between(before, after, 4.0);
  EXPECT_EQ(f.requests, 100u);
  EXPECT_EQ(f.errors, 10u);
  EXPECT_DOUBLE_EQ(f.error_rate, 0.1);
  EXPECT_DOUBLE_EQ(f.requests_per_second, 25.0);
  EXPECT_EQ(f.ToString(), "100 requests (25.0/s), 10% errors, p50 750us, p99 995us");
  EXPECT_EQ(Between(before, before, 1.0).ToString(), "no requests");
}

TEST(FigureHistoryTest, LastAndBetweenUseTheNearestEarlierSamples) {
  FigureHistory h(10);
  StatsSnapshot total;
  EXPECT_FALSE(h.Last(1000, 0).has_value());
  for (int64_t t = 0; t <= 5000; t += 1000) {
    h.Record(t, total);
    total.Add(Served(10, t >= 3000 ? 500 : 200, 1000));
  }
  // Samples at 0..5000 hold 0, 10, ..., 50 responses; those served after
  // the sample at 3s are 500s.
  std::optional<Figures> last = h.Last(2000, 5000);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->requests, 20u);
  EXPECT_EQ(last->errors, 20u);
  std::optional<Figures> early = h.Between(0, 2500);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->requests, 20u);
  EXPECT_EQ(early->errors, 0u);
  EXPECT_FALSE(h.Between(5000, 5000).has_value());
}

TEST(FigureHistoryTest, KeepsAtMostItsCapacity) {
  FigureHistory h(3);
  StatsSnapshot total;
  for (int64_t t = 0; t < 10; ++t) {
    total.Add(Served(1, 200, 100));
    h.Record(t * 1000, total);
  }
  std::optional<Figures> all = h.Between(0, 9000);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->requests, 2u);  // only the samples at 7s, 8s and 9s are left
}

// The releases of a list, oldest first, with what each served.
std::vector<std::string> Releases(const std::vector<ReleaseServed>& list) {
  std::vector<std::string> out;
  for (const ReleaseServed& r : list)
    out.push_back(r.release + ":" + std::to_string(r.served.total()));
  return out;
}

TEST(AddServedTest, EachReleaseCountsOnlyWhatItServed) {
  std::vector<ReleaseServed> blue;
  AddServed(blue, "v1", Served(5, 200, 300));
  AddServed(blue, "v1", Served(2, 500, 300));
  AddServed(blue, "v3", Served(3, 200, 300));
  EXPECT_EQ(Releases(blue), (std::vector<std::string>{"v1:7", "v3:3"}));
  EXPECT_EQ(blue[0].served.responses[4], 2u);
  EXPECT_EQ(blue[1].served.responses[4], 0u);
  // v1 comes back (a rollback): its own series goes on, and it is last.
  AddServed(blue, "v1", Served(1, 200, 300));
  EXPECT_EQ(Releases(blue), (std::vector<std::string>{"v3:3", "v1:8"}));
}

TEST(AddServedTest, ARunningReleaseShowsBeforeItServesButNoReleaseOnlyOnceItAnswered) {
  std::vector<ReleaseServed> green;
  AddServed(green, "", StatsSnapshot{});
  EXPECT_TRUE(green.empty());
  AddServed(green, "", Served(4, 503, 100));
  AddServed(green, "v2", StatsSnapshot{});
  EXPECT_EQ(Releases(green), (std::vector<std::string>{":4", "v2:0"}));
}

TEST(AddServedTest, KeepsTheReleasesThatHeldTheColorLast) {
  std::vector<ReleaseServed> blue;
  for (size_t i = 0; i < kReleasesKept + 3; ++i)
    AddServed(blue, "v" + std::to_string(i), Served(1, 200, 300));
  ASSERT_EQ(blue.size(), kReleasesKept);
  EXPECT_EQ(blue.front().release, "v3");
  EXPECT_EQ(blue.back().release, "v" + std::to_string(kReleasesKept + 2));
}

TEST(FormatTest, RatesAndLatencies) {
  EXPECT_EQ(FormatRate(0), "0%");
  EXPECT_EQ(FormatRate(0.0004), "0.04%");
  EXPECT_EQ(FormatRate(0.025), "2.5%");
  EXPECT_EQ(FormatRate(0.5), "50%");
  EXPECT_EQ(FormatRate(0.05), "5%");
  EXPECT_EQ(FormatRate(0.1818), "18.18%");
  EXPECT_EQ(FormatLatency(850), "850us");
  EXPECT_EQ(FormatLatency(3200), "3.2ms");
  EXPECT_EQ(FormatLatency(40'000), "40ms");
  EXPECT_EQ(FormatLatency(1'200'000), "1.20s");
}

}  // namespace
}  // namespace cutover
