#include "controller/metrics.h"

#include <gtest/gtest.h>

namespace cutover {
namespace {

TEST(RenderPrometheus, LabelsEveryTargetWithServiceAndColor) {
  ServiceMetrics s;
  s.name = "web";
  s.live = Color::kGreen;
  TargetMetrics t;
  t.address = "127.0.0.1:9002";
  t.healthy = true;
  t.stats.responses[1] = 7;
  t.stats.responses[4] = 2;
  t.stats.latency[0] = 5;
  t.stats.latency[3] = 4;
  s.targets[1].push_back(t);
  RouterCounters rc;
  rc.unmatched = 3;
  std::string text = RenderPrometheus({s}, rc);
  EXPECT_NE(text.find("cutover_live{service=\"web\",color=\"green\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("cutover_live{service=\"web\",color=\"blue\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("cutover_requests_total{service=\"web\",color=\"green\",target=\"127.0.0.1:"
                      "9002\",class=\"2xx\"} 7\n"),
            std::string::npos);
  EXPECT_NE(text.find("class=\"5xx\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("cutover_target_healthy{service=\"web\",color=\"green\",target=\"127.0.0.1:"
                      "9002\"} 1\n"),
            std::string::npos);
  // Buckets are cumulative and end with +Inf equal to the count.
  EXPECT_NE(text.find("le=\"0.00025\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("le=\"+Inf\"} 9\n"), std::string::npos);
  EXPECT_NE(text.find("cutover_request_duration_seconds_count{service=\"web\",color=\"green\","
                      "target=\"127.0.0.1:9002\"} 9\n"),
            std::string::npos);
  EXPECT_NE(text.find("cutover_unmatched_requests_total 3\n"), std::string::npos);
}

TEST(RenderPrometheus, EveryFamilyHasHelpAndType) {
  std::string text = RenderPrometheus({}, RouterCounters{});
  size_t helps = 0, types = 0;
  for (size_t p = text.find("# HELP"); p != std::string::npos; p = text.find("# HELP", p + 1)) {
    ++helps;
  }
  for (size_t p = text.find("# TYPE"); p != std::string::npos; p = text.find("# TYPE", p + 1)) {
    ++types;
  }
  EXPECT_GT(helps, 5u);
  EXPECT_EQ(helps, types);
}

}  // namespace
}  // namespace cutover
