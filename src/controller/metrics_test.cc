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

TEST(RenderPrometheus, EachReleaseOfAColorHasItsOwnSeries) {
  ServiceMetrics s;
  s.name = "web";
  ReleaseServed v1{"v1", {}};
  v1.served.responses[1] = 40;
  v1.served.latency[0] = 40;
  ReleaseServed v3{"v3", {}};
  v3.served.responses[1] = 6;
  v3.served.responses[4] = 1;
  v3.served.latency[2] = 7;
  s.served[0] = {v1, v3};
  std::string text = RenderPrometheus({s}, RouterCounters{});
  auto has = [&](std::string_view line) {
    return text.find(std::string(line) + "\n") != std::string::npos;
  };
  const std::string blue = "{service=\"web\",color=\"blue\",release=";
  EXPECT_TRUE(has("cutover_color_requests_total" + blue + "\"v1\",class=\"2xx\"} 40")) << text;
  EXPECT_TRUE(has("cutover_color_requests_total" + blue + "\"v3\",class=\"2xx\"} 6")) << text;
  EXPECT_TRUE(has("cutover_color_requests_total" + blue + "\"v3\",class=\"5xx\"} 1")) << text;
  EXPECT_TRUE(has("cutover_color_request_duration_seconds_count" + blue + "\"v3\"} 7")) << text;
  // A color that held no release and answered nothing has no series.
  EXPECT_EQ(text.find("cutover_color_requests_total{service=\"web\",color=\"green\""),
            std::string::npos)
      << text;
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
