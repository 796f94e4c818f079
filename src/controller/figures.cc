#include "controller/figures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace cutover {

uint64_t LatencyQuantileUs(const uint64_t (&latency)[kLatencyBuckets], double q) {
  uint64_t total = 0;
  for (uint64_t n : latency) total += n;
  if (total == 0) return 0;
  // The rank of the quantile among the requests, 1-based.
  const double rank = std::max(1.0, std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    if (latency[i] == 0) continue;
    if (static_cast<double>(seen + latency[i]) >= rank) {
      const double lower = i == 0 ? 0.0 : kLatencyBucketsUs[i - 1];
      if (i == kLatencyBuckets - 1) return static_cast<uint64_t>(lower);
      const double upper = kLatencyBucketsUs[i];
      const double within = (rank - static_cast<double>(seen)) / static_cast<double>(latency[i]);
      return static_cast<uint64_t>(lower + (upper - lower) * within);
    }
    seen += latency[i];
  }
  return kLatencyBucketsUs.back();
}

void AddDelta(StatsSnapshot& total, const StatsSnapshot& before, const StatsSnapshot& after) {
  for (size_t i = 0; i < 5; ++i) total.responses[i] += after.responses[i] - before.responses[i];
  total.proxy_errors += after.proxy_errors - before.proxy_errors;
  total.bytes_in += after.bytes_in - before.bytes_in;
  total.bytes_out += after.bytes_out - before.bytes_out;
  for (size_t i = 0; i < kLatencyBuckets; ++i)
    total.latency[i] += after.latency[i] - before.latency[i];
  total.latency_sum_us += after.latency_sum_us - before.latency_sum_us;
}

void AddServed(std::vector<ReleaseServed>& list, const std::string& release,
               const StatsSnapshot& delta) {
  auto it = std::find_if(list.begin(), list.end(),
                         [&](const ReleaseServed& r) { return r.release == release; });
  if (it == list.end()) {
    if (release.empty() && delta.total() == 0) return;
    list.push_back({release, {}});
  } else if (it + 1 != list.end()) {
    std::rotate(it, it + 1, list.end());
  }
  list.back().served.Add(delta);
  if (list.size() > kReleasesKept) list.erase(list.begin(), list.end() - kReleasesKept);
}

Figures Between(const StatsSnapshot& from, const StatsSnapshot& to, double seconds) {
  Figures f;
  f.seconds = seconds;
  StatsSnapshot d;
  for (size_t i = 0; i < 5; ++i) d.responses[i] = to.responses[i] - from.responses[i];
  for (size_t i = 0; i < kLatencyBuckets; ++i) d.latency[i] = to.latency[i] - from.latency[i];
  f.requests = d.total();
  f.errors = d.responses[4];
  f.error_rate = f.requests == 0 ? 0 : static_cast<double>(f.errors) / f.requests;
  f.requests_per_second = seconds > 0 ? f.requests / seconds : 0;
  f.p50_us = LatencyQuantileUs(d.latency, 0.50);
  f.p99_us = LatencyQuantileUs(d.latency, 0.99);
  return f;
}

std::string FormatRate(double rate) {
  // Two decimals at most, as a threshold would be written: "5%", "2.5%".
  std::string text = fmt::format("{:.2f}", rate * 100);
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text + "%";
}

std::string FormatLatency(uint64_t us) {
  if (us < 1000) return fmt::format("{}us", us);
  if (us < 10'000) return fmt::format("{:.1f}ms", us / 1000.0);
  if (us < 1'000'000) return fmt::format("{}ms", us / 1000);
  return fmt::format("{:.2f}s", us / 1e6);
}

std::string Figures::ToString() const {
  if (requests == 0) return "no requests";
  return fmt::format("{} requests ({:.1f}/s), {} errors, p50 {}, p99 {}", requests,
                     requests_per_second, FormatRate(error_rate), FormatLatency(p50_us),
                     FormatLatency(p99_us));
}

void FigureHistory::Record(int64_t at_ms, const StatsSnapshot& total) {
  samples_.push_back({at_ms, total});
  while (samples_.size() > capacity_) samples_.pop_front();
}

const FigureHistory::Sample* FigureHistory::AtOrBefore(int64_t at_ms) const {
  const Sample* found = nullptr;
  for (const Sample& s : samples_) {
    if (s.at_ms > at_ms) break;
    found = &s;
  }
  return found;
}

std::optional<Figures> FigureHistory::Between(int64_t from_ms, int64_t to_ms) const {
  if (samples_.size() < 2) return std::nullopt;
  const Sample* to = AtOrBefore(to_ms);
  const Sample* from = AtOrBefore(from_ms);
  if (from == nullptr) from = &samples_.front();
  if (to == nullptr || to->at_ms <= from->at_ms) return std::nullopt;
  return cutover::Between(from->total, to->total, (to->at_ms - from->at_ms) / 1000.0);
}

std::optional<Figures> FigureHistory::Last(int64_t interval_ms, int64_t at_ms) const {
  return Between(at_ms - interval_ms, at_ms);
}

}  // namespace cutover
