// The Controller's private state, shared by its source files (controller.cc:
// services, switches, start; deployment.cc: the deployment steps). Control
// thread only, like the Controller.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "config/config.h"
#include "controller/controller.h"
#include "router/route_table.h"
#include "store/store.h"

namespace cutover {

class Router;
class HealthChecker;
class ProcessSupervisor;

// How a release runs on a color, kept in its slot (SlotRecord::spec_json) so
// that a restarted daemon can adopt, restart or stop it.
struct ReleaseSpec {
  DriverType driver = DriverType::kStatic;
  std::string command;  // process: with "{port}" still in it
  EnvList env;          // process: configured + deploy --env
  int instances = 1;
  std::vector<uint16_t> ports;    // process: one per instance, once started
  std::vector<HostPort> targets;  // static
  int64_t retire_at_unix_ms = 0;  // the previous release: when its rollback window ends

  std::string ToJson() const;
  static Result<ReleaseSpec> FromJson(std::string_view text);
};

// A deployment (or rollback) in progress.
struct Deployment {
  DeploymentRecord record;
  ReleaseSpec spec;
  bool first = false;     // nothing was live: it lands on the live color
  bool rollback = false;  // switching back to the previous release
  bool abort_requested = false;
  bool promote_requested = false;
  std::string abort_actor;
  std::unique_ptr<boost::asio::steady_timer> wake;  // cancelled to interrupt a wait
};

struct ServiceState {
  const ServiceConfig* config = nullptr;
  Color live = Color::kBlue;
  bool released = true;  // the live color serves a release
  std::vector<TargetPtr> targets[2];
  std::shared_ptr<ShardedStats> unrouted[2];
  SlotRecord slots[2];
  std::shared_ptr<Deployment> active;
  bool restarted_live = false;  // Start() had to start the live release again
  // Ends the previous release's rollback window.
  std::unique_ptr<boost::asio::steady_timer> retire_timer;
};

struct Controller::State {
  boost::asio::io_context& control;
  const Config& config;
  Store& store;
  Router& router;
  HealthChecker& health;
  ProcessSupervisor& processes;
  std::vector<ServiceState> services;
  uint32_t next_target_id = 0;
  uint64_t table_version = 0;
  std::shared_ptr<const RouteTable> table;
  std::map<uint64_t, std::function<void(const DeploymentEvent&)>> listeners;
  uint64_t next_listener = 0;
  bool shutting_down = false;

  ServiceState* Find(std::string_view name);
  std::shared_ptr<const RouteTable> BuildTable();
  ServiceView View(const ServiceState& s) const;
  void Emit(const DeploymentEvent& event);

  // Creates a target of `s` on `color` for `address` and watches its
  // health. New candidates start unhealthy until their first check passes.
  Result<TargetPtr> MakeTarget(ServiceState& s, Color color, const HostPort& address,
                               bool start_healthy);
  // Replaces the targets of `color` (unwatching the old ones).
  void SetTargets(ServiceState& s, Color color, std::vector<TargetPtr> targets);
  // Persists a slot, logging (not failing) when the store refuses.
  void SaveSlot(ServiceState& s, Color color);
  // Starts the rollback window timer of the idle color from its spec.
  void ArmRetire(ServiceState& s);
};

// Starts spec.instances instances of `release` on `color` (process driver),
// each on a newly allocated port; records the ports in `spec`.
Result<std::vector<uint16_t>> StartInstances(Controller::State& st, ServiceState& s, Color color,
                                             const std::string& release, ReleaseSpec& spec);

// Rebuilds st.table from the services' state, publishes it and resumes once
// every router worker took it.
boost::asio::awaitable<void> PublishTable(Controller::State& st);

// "14:05:00 UTC": a wall-clock time of day as the CLI and status show it.
std::string ClockTime(int64_t unix_ms);

// kNotFound naming the service.
Error NoSuchService(std::string_view name);

}  // namespace cutover
