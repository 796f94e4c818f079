// Prometheus text exposition (format 0.0.4) of the router's figures, per
// service, color and target. Pure function of a snapshot; any thread.
#pragma once

#include <string>
#include <vector>

#include "common/types.h"
#include "controller/figures.h"
#include "router/router.h"
#include "router/stats.h"

namespace cutover {

struct TargetMetrics {
  std::string address;
  bool healthy = false;
  StatsSnapshot stats;
};

struct ServiceMetrics {
  std::string name;
  Color live = Color::kBlue;
  std::vector<TargetMetrics> targets[2];  // by Color
  StatsSnapshot unrouted[2];              // answered 503 without a target
  // What each color served (its targets and its 503s), by the release it
  // held at the time; the color's current release last.
  std::vector<ReleaseServed> served[2];
};

std::string RenderPrometheus(const std::vector<ServiceMetrics>& services,
                             const RouterCounters& router);

}  // namespace cutover
