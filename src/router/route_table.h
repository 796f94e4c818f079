// RouteTable: an immutable snapshot of where each service's traffic goes. The
// control thread builds one per change and publishes it to every worker
// (shared_ptr<const RouteTable>); a request pins the table it started with, so
// no lock is taken on the per-request path. Targets are long-lived objects
// shared by successive tables: their health flag and figures survive changes.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/types.h"
#include "router/recent_paths.h"
#include "router/stats.h"

namespace cutover {

// One host:port endpoint serving a color. Created by the control thread.
struct Target {
  Target(uint32_t id, std::string service, Color color, HostPort address,
         boost::asio::ip::tcp::endpoint endpoint, size_t workers)
      : id(id),
        service(std::move(service)),
        color(color),
        address(std::move(address)),
        address_text(this->address.ToString()),
        endpoint(endpoint),
        stats(workers) {}

  const uint32_t id;  // unique within a daemon; indexes per-worker pools
  const std::string service;
  const Color color;
  const HostPort address;
  const std::string address_text;
  const boost::asio::ip::tcp::endpoint endpoint;

  // Written by the health checker (control thread) and, for passive
  // ejection, by workers; read by workers when picking a target.
  std::atomic<bool> healthy{true};
  ShardedStats stats;
};

using TargetPtr = std::shared_ptr<Target>;

struct ServiceRoute {
  std::string name;
  std::vector<std::string> hosts;  // lower-case; "*" for any
  std::string path_prefix = "/";
  Color live = Color::kBlue;
  std::vector<TargetPtr> pools[2];  // by Color
  Millis drain_timeout{30'000};
  uint32_t index = 0;  // position in RouteTable::services()
  // Requests answered for this service without reaching a target (503), by color.
  std::shared_ptr<ShardedStats> unrouted[2];
  // A sample of the paths of recent live GET requests (for replay).
  std::shared_ptr<RecentPaths> recent;
  // False until a first release went live: the router then says so.
  bool released = true;
  // Where the preview listeners send the service: the idle color, or during
  // a first deployment the color it lands on.
  Color preview = Color::kGreen;

  const std::vector<TargetPtr>& live_pool() const { return pools[static_cast<int>(live)]; }
};

class RouteTable {
 public:
  // `services` in configuration order; earlier services win ties.
  RouteTable(uint64_t version, std::vector<ServiceRoute> services);

  // The service claiming `host` (a Host header value, any case, with or
  // without ":port") and `path`; nullptr when none does. Longest path prefix
  // wins; exact host names win over "*".
  const ServiceRoute* Match(std::string_view host, std::string_view path) const;

  // True when `target` is in the live pool of its service.
  bool Routes(const Target* target) const;

  const std::vector<ServiceRoute>& services() const { return services_; }
  uint64_t version() const { return version_; }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  uint64_t version_;
  std::vector<ServiceRoute> services_;
  // host -> services claiming it, longest path prefix first
  std::unordered_map<std::string, std::vector<const ServiceRoute*>, StringHash, std::equal_to<>>
      by_host_;
  std::vector<const ServiceRoute*> wildcard_;
  std::vector<const Target*> live_targets_;  // sorted
};

// Lower-cases `host` and strips a ":port" into `out`; returns the view of it.
// Hosts longer than the buffer yield an empty view.
std::string_view NormalizeHost(std::string_view host, char (&out)[256]);

// True when `path` is under `prefix` ("/api" matches "/api", "/api/x",
// "/api?q"; not "/apix"). A prefix ending in '/' matches as a plain prefix.
bool PathHasPrefix(std::string_view path, std::string_view prefix);

}  // namespace cutover
