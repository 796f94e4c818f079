#include "controller/metrics.h"

#include <fmt/format.h>

#include <iterator>

namespace cutover {
namespace {

constexpr const char* kClassNames[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// Label values are service names and host:port addresses, which the config
// loader restricts to characters that need no escaping beyond these.
std::string Escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

// The latency histogram of `stats` as the series of `name`.
void Histogram(std::string& out, std::string_view name, std::string_view labels,
               const StatsSnapshot& stats) {
  auto it = std::back_inserter(out);
  uint64_t cumulative = 0;
  for (size_t b = 0; b < kLatencyBucketsUs.size(); ++b) {
    cumulative += stats.latency[b];
    fmt::format_to(it, "{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, kLatencyBucketsUs[b] / 1e6,
                   cumulative);
  }
  cumulative += stats.latency[kLatencyBuckets - 1];
  fmt::format_to(it, "{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, cumulative);
  fmt::format_to(it, "{}_sum{{{}}} {}\n", name, labels, stats.latency_sum_us / 1e6);
  fmt::format_to(it, "{}_count{{{}}} {}\n", name, labels, cumulative);
}

}  // namespace

std::string RenderPrometheus(const std::vector<ServiceMetrics>& services,
                             const RouterCounters& router) {
  std::string out;
  auto it = std::back_inserter(out);

  Header(out, "cutover_live", "gauge", "1 for the live color of each service.");
  for (const ServiceMetrics& s : services) {
    for (int c = 0; c < 2; ++c) {
      fmt::format_to(it, "cutover_live{{service=\"{}\",color=\"{}\"}} {}\n", Escape(s.name),
                     ColorName(static_cast<Color>(c)), static_cast<int>(s.live) == c ? 1 : 0);
    }
  }

  // Calls fn(labels, target) for every target.
  auto each_target = [&](auto&& fn) {
    for (const ServiceMetrics& s : services) {
      for (int c = 0; c < 2; ++c) {
        for (const TargetMetrics& t : s.targets[c]) {
          std::string labels =
              fmt::format("service=\"{}\",color=\"{}\",target=\"{}\"", Escape(s.name),
                          ColorName(static_cast<Color>(c)), Escape(t.address));
          fn(labels, t);
        }
      }
    }
  };

  Header(out, "cutover_target_healthy", "gauge", "1 when the target passes its health checks.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    fmt::format_to(it, "cutover_target_healthy{{{}}} {}\n", l, t.healthy ? 1 : 0);
  });
  Header(out, "cutover_requests_total", "counter",
         "Responses relayed or answered for a target, by status class.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    for (int k = 0; k < 5; ++k) {
      fmt::format_to(it, "cutover_requests_total{{{},class=\"{}\"}} {}\n", l, kClassNames[k],
                     t.stats.responses[k]);
    }
  });
  Header(out, "cutover_proxy_errors_total", "counter",
         "Requests the target failed (connect, reset, timeout): answered 502/504 or cut short.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    fmt::format_to(it, "cutover_proxy_errors_total{{{}}} {}\n", l, t.stats.proxy_errors);
  });
  Header(out, "cutover_in_flight", "gauge", "Requests in progress at the target.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    fmt::format_to(it, "cutover_in_flight{{{}}} {}\n", l, t.stats.in_flight);
  });
  Header(out, "cutover_bytes_in_total", "counter", "Request body bytes sent to the target.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    fmt::format_to(it, "cutover_bytes_in_total{{{}}} {}\n", l, t.stats.bytes_in);
  });
  Header(out, "cutover_bytes_out_total", "counter", "Response bytes received from the target.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    fmt::format_to(it, "cutover_bytes_out_total{{{}}} {}\n", l, t.stats.bytes_out);
  });
  Header(out, "cutover_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response.");
  each_target([&](const std::string& l, const TargetMetrics& t) {
    Histogram(out, "cutover_request_duration_seconds", l, t.stats);
  });

  Header(out, "cutover_unrouted_requests_total", "counter",
         "Requests answered 503 because the color had no healthy target.");
  for (const ServiceMetrics& s : services) {
    for (int c = 0; c < 2; ++c) {
      fmt::format_to(it, "cutover_unrouted_requests_total{{service=\"{}\",color=\"{}\"}} {}\n",
                     Escape(s.name), ColorName(static_cast<Color>(c)), s.unrouted[c].total());
    }
  }

  // Per color and release: what each release served on each color, so that
  // two releases can be compared side by side.
  auto each_release = [&](auto&& fn) {
    for (const ServiceMetrics& s : services) {
      for (int c = 0; c < 2; ++c) {
        for (const ReleaseServed& r : s.served[c]) {
          fn(fmt::format("service=\"{}\",color=\"{}\",release=\"{}\"", Escape(s.name),
                         ColorName(static_cast<Color>(c)), Escape(r.release)),
             r.served);
        }
      }
    }
  };
  Header(out, "cutover_color_requests_total", "counter",
         "Responses of each color (its targets and its 503s) while it held the release, by status "
         "class.");
  each_release([&](const std::string& l, const StatsSnapshot& served) {
    for (int k = 0; k < 5; ++k) {
      fmt::format_to(it, "cutover_color_requests_total{{{},class=\"{}\"}} {}\n", l, kClassNames[k],
                     served.responses[k]);
    }
  });
  Header(out, "cutover_color_request_duration_seconds", "histogram",
         "Time from the request head to the end of the response, per color and release.");
  each_release([&](const std::string& l, const StatsSnapshot& served) {
    Histogram(out, "cutover_color_request_duration_seconds", l, served);
  });

  Header(out, "cutover_bad_requests_total", "counter",
         "Requests refused as malformed (400, 431, 501, 505).");
  fmt::format_to(it, "cutover_bad_requests_total {}\n", router.bad_requests);
  Header(out, "cutover_unmatched_requests_total", "counter",
         "Requests for a Host no service claims (404).");
  fmt::format_to(it, "cutover_unmatched_requests_total {}\n", router.unmatched);
  Header(out, "cutover_header_timeouts_total", "counter",
         "Clients cut off for not sending a request head in time.");
  fmt::format_to(it, "cutover_header_timeouts_total {}\n", router.header_timeouts);
  Header(out, "cutover_connections_total", "counter", "Client connections accepted.");
  fmt::format_to(it, "cutover_connections_total {}\n", router.connections);
  Header(out, "cutover_open_connections", "gauge", "Client connections open now.");
  fmt::format_to(it, "cutover_open_connections {}\n", router.open_connections);
  Header(out, "cutover_worker_open_connections", "gauge",
         "Client connections open now, by router worker thread.");
  for (size_t i = 0; i < router.open_by_worker.size(); ++i) {
    fmt::format_to(it, "cutover_worker_open_connections{{worker=\"{}\"}} {}\n", i,
                   router.open_by_worker[i]);
  }
  Header(out, "cutover_worker_yields_total", "counter",
         "Times a router worker thread, having run for at least three quarters of the last "
         "millisecond, yielded its core once.");
  for (size_t i = 0; i < router.yields_by_worker.size(); ++i) {
    fmt::format_to(it, "cutover_worker_yields_total{{worker=\"{}\"}} {}\n", i,
                   router.yields_by_worker[i]);
  }
  return out;
}

}  // namespace cutover
