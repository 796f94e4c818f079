#include "support/metrics.h"

#include <cstdlib>
#include <regex>
#include <sstream>

namespace cutover::test {

std::vector<MetricSample> ParseMetrics(std::string_view text) {
  static const std::regex kLine(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  std::vector<MetricSample> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (line.empty() || line[0] == '#' || !std::regex_match(line, m, kLine)) continue;
    MetricSample s;
    s.name = m[1];
    const std::string labels = m[3];
    for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it) {
      s.labels[(*it)[1]] = (*it)[2];
    }
    s.value = m[4] == "+Inf" ? 1e300 : std::strtod(m[4].str().c_str(), nullptr);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<MetricSample> MatchingMetrics(const std::vector<MetricSample>& samples,
                                          std::string_view name,
                                          const std::map<std::string, std::string>& labels) {
  std::vector<MetricSample> out;
  for (const MetricSample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (match) out.push_back(s);
  }
  return out;
}

}  // namespace cutover::test
