// Controller: the control plane of a daemon. It owns the services' state (live
// color, targets), persists every change to the Store first, then publishes a
// new immutable route table to the router's workers. Control thread only:
// every method must be called on the control io_context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "config/config.h"
#include "controller/figures.h"
#include "migrate/runner.h"
#include "store/store.h"

namespace cutover {

class Router;
class RouteTable;
class HealthChecker;
class ProcessSupervisor;

struct TargetView {
  std::string address;  // "host:port"
  bool healthy = false;
  int64_t in_flight = 0;
  std::string health_error;  // why the last health check failed; empty when it passed
  int restarts = 0;          // process driver: times its instance was restarted
  std::string last_exit;     // process driver: how its instance last exited
};

// What one color of a service runs.
struct SlotView {
  std::string release;             // empty: nothing deployed there
  std::string state;               // "empty", "starting", "running", "stopped"
  std::string note;                // e.g. "kept for rollback until 14:05:00 UTC"
  std::vector<std::string> logs;   // process driver: the instances' log files
  std::optional<Figures> figures;  // what the color served over the last minute
};

struct ServiceView {
  std::string name;
  Color live = Color::kBlue;
  bool released = true;  // false until a first release went live
  std::string driver;    // "static" or "process"
  std::vector<std::string> hosts;
  std::string path_prefix;
  std::vector<TargetView> targets[2];          // indexed by Color
  SlotView slots[2];                           // indexed by Color
  std::optional<DeploymentRecord> deployment;  // the one running now
};

// What `cutover deploy` asks for.
struct DeployRequest {
  std::string service;
  std::string release;
  std::string actor;
  std::string command;            // process: replaces the configured command when set
  EnvList env;                    // process: added to the configured environment
  std::vector<HostPort> targets;  // static: the release's targets, else the configured ones
};

// One thing that happened to a deployment, as streamed to clients.
struct DeploymentEvent {
  int64_t deployment_id = 0;
  std::string service;
  std::string release;
  std::string kind;        // "step", "finished", "instance"
  std::string step;        // for "step"
  std::string outcome;     // step outcome, or the deployment's for "finished"
  int64_t elapsed_ms = 0;  // since the step (or, for "finished", the deployment) began
  std::string message;
  int64_t time_unix_ms = 0;
};

// What `cutover contract` did.
struct ContractResult {
  std::string retired;  // how the previous release was stopped; empty when none ran
  RunReport report;
};

class Controller {
 public:
  // Borrows everything; all must outlive the Controller.
  Controller(boost::asio::io_context& control, const Config& config, Store& store, Router& router,
             HealthChecker& health, ProcessSupervisor& processes);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Reads each service's live color from the store (blue when none), creates
  // the targets, starts their health checks and builds the first route table.
  // Called once, before the router starts.
  [[nodiscard]] Status Start();

  // Completes once every live release that Start() had to start again (its
  // instances did not outlive the previous daemon) is healthy, or its
  // health deadline passed: traffic then reaches a release that is ready.
  boost::asio::awaitable<void> WaitForRestartedReleases();

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

  // Prometheus text exposition of the router's figures, as of now.
  std::string PrometheusMetrics();

  // Starts a deployment and returns its record at once; it goes on in the
  // background (events through Subscribe). kNotFound for an unknown
  // service, kInvalidArgument for a bad request, kConflict while another
  // deployment of the service runs.
  Result<DeploymentRecord> Deploy(DeployRequest request);
  // Lets a deployment waiting for approval go on to its switch.
  Result<DeploymentRecord> Promote(std::string_view service, std::string_view actor);
  // Ends a deployment before its switch: candidate stopped, live untouched.
  Result<DeploymentRecord> Abort(std::string_view service, std::string_view actor);
  // Switches back to the previous release: at once while it still runs,
  // after starting it again (and waiting until healthy) once it was stopped.
  // Runs like a deployment (same events, same history). Refused (the
  // rollback fails at its first step) when a contract migration that
  // release did not ship with has run, unless `force`.
  Result<DeploymentRecord> Rollback(std::string_view service, std::string_view actor,
                                    bool force = false);

  // Ends the rollback window now (the previous release is drained and
  // stopped), then runs the contract migrations of the live release.
  // kConflict while a deployment runs; kInvalidArgument without migrations.
  boost::asio::awaitable<Result<ContractResult>> Contract(std::string service, std::string actor);

  Result<std::vector<DeploymentRecord>> Deployments(std::string_view service, int limit) const;
  Result<DeploymentRecord> GetDeployment(std::string_view service, int64_t id) const;

  // Calls `listener` on the control thread for every event from now on,
  // until Unsubscribe.
  uint64_t Subscribe(std::function<void(const DeploymentEvent&)> listener);
  void Unsubscribe(uint64_t id);

  // Ends the running deployments (as interrupted) and stops every instance
  // the daemon runs. For a clean daemon shutdown.
  boost::asio::awaitable<void> Shutdown(bool keep_instances);

  // The private state, defined in controller_state.h for the controller's
  // own source files.
  struct State;

 private:
  boost::asio::awaitable<void> RunDeployment(std::string service, int64_t id);

  std::unique_ptr<State> state_;
};

}  // namespace cutover
