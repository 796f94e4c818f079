// Controller: the control plane of a daemon. It owns the services' state (live
// color, targets), persists every change to the Store first, then publishes a
// new immutable route table to the router's workers. Control thread only:
// every method must be called on the control io_context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "config/config.h"
#include "store/store.h"

namespace cutover {

class Router;
class RouteTable;
class HealthChecker;

struct TargetView {
  std::string address;  // "host:port"
  bool healthy = false;
  int64_t in_flight = 0;
  std::string health_error;  // why the last health check failed; empty when it passed
};

struct ServiceView {
  std::string name;
  Color live = Color::kBlue;
  std::vector<std::string> hosts;
  std::string path_prefix;
  std::vector<TargetView> targets[2];  // indexed by Color
};

class Controller {
 public:
  // Borrows everything; all must outlive the Controller.
  Controller(boost::asio::io_context& control, const Config& config, Store& store, Router& router,
             HealthChecker& health);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Reads each service's live color from the store (blue when none), creates
  // the targets, starts their health checks and builds the first route table.
  // Called once, before the router starts.
  [[nodiscard]] Status Start();

  // The route table the router must serve now.
  std::shared_ptr<const RouteTable> table() const;

  std::vector<ServiceView> ListServices() const;
  Result<ServiceView> GetService(std::string_view name) const;

  // Makes `to` the live color of `name`: refuses (kConflict) a color without a
  // healthy target unless `force`; writes the store, then publishes the new
  // route table and completes once every worker routes by it. `actor` names
  // who asked, for the audit trail.
  boost::asio::awaitable<Result<ServiceView>> Switch(std::string name, Color to, bool force,
                                                     std::string actor);

  // Prometheus text exposition of the router's figures.
  std::string PrometheusMetrics() const;

 private:
  // Hands `table` to the router and resumes once every worker took it.
  boost::asio::awaitable<void> PublishAndWait(std::shared_ptr<const RouteTable> table);

  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace cutover
