// Figures: what one color of a service served over an interval (requests,
// errors, latency percentiles), computed from samples of the router's
// cumulative counters. The control thread samples every second and keeps
// a few minutes per color; observing a release and `cutover status` read
// them. Plain values; control thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "router/stats.h"

namespace cutover {

// What a color served between two samples.
struct Figures {
  double seconds = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;    // 5xx answers, the router's own 502, 503 and 504 included
  double error_rate = 0;  // errors / requests, 0 without requests
  double requests_per_second = 0;
  uint64_t p50_us = 0;  // 0 without requests
  uint64_t p99_us = 0;

  // "120 requests, 2.5% errors, p50 3ms, p99 40ms"
  std::string ToString() const;
};

// The `q` quantile (0..1) of a latency histogram, in microseconds:
// interpolated inside its bucket; the open last bucket reports its lower
// bound.
uint64_t LatencyQuantileUs(const uint64_t (&latency)[kLatencyBuckets], double q);

// Adds what happened between `before` and `after` (two snapshots of one
// target) to `total`.
void AddDelta(StatsSnapshot& total, const StatsSnapshot& before, const StatsSnapshot& after);

// What one release served on one color.
struct ReleaseServed {
  std::string release;  // "" for what the color answered while it held none
  StatsSnapshot served;
};

// How many releases of a color `AddServed` keeps.
constexpr size_t kReleasesKept = 8;

// Adds `delta` to what `release` served in `list`, which keeps the releases
// in the order they last held the color, the current one last: the entry
// moves to the end (or is added there), and the oldest ones beyond
// kReleasesKept are dropped. No release ("") gets an entry only once it
// served something.
void AddServed(std::vector<ReleaseServed>& list, const std::string& release,
               const StatsSnapshot& delta);

// Figures of the traffic between snapshot `from` and `to`, `seconds` apart.
Figures Between(const StatsSnapshot& from, const StatsSnapshot& to, double seconds);

// "2.5%" / "0.04%": how error rates are shown.
std::string FormatRate(double rate);
// "850us", "3ms", "1.2s"
std::string FormatLatency(uint64_t us);

// Cumulative samples of one color, oldest first, at most `capacity`.
class FigureHistory {
 public:
  explicit FigureHistory(size_t capacity = 600) : capacity_(capacity) {}

  // `total` is everything the color served so far (it only grows).
  void Record(int64_t at_ms, const StatsSnapshot& total);

  // The figures of the last `interval_ms` before `at_ms` (from the newest
  // sample at or before `at_ms - interval_ms`, or the oldest one), nullopt
  // with fewer than two samples in reach.
  std::optional<Figures> Last(int64_t interval_ms, int64_t at_ms) const;
  // The figures between two moments (nearest samples at or before each).
  std::optional<Figures> Between(int64_t from_ms, int64_t to_ms) const;

 private:
  struct Sample {
    int64_t at_ms;
    StatsSnapshot total;
  };
  const Sample* AtOrBefore(int64_t at_ms) const;

  size_t capacity_;
  std::deque<Sample> samples_;
};

}  // namespace cutover
