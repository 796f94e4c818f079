// Reading a Prometheus text exposition (what /metrics serves) in tests.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cutover::test {

// One sample of a Prometheus text exposition.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;  // +Inf reads as 1e300
};

std::vector<MetricSample> ParseMetrics(std::string_view text);

// The samples named `name` whose labels include `labels`.
std::vector<MetricSample> MatchingMetrics(const std::vector<MetricSample>& samples,
                                          std::string_view name,
                                          const std::map<std::string, std::string>& labels);

}  // namespace cutover::test
