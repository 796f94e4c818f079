// The Controller's private state, shared by its source files (controller.cc:
// services, switches, start; deployment.cc: the deployment steps). Control
// thread only, like the Controller.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
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
#include "controller/figures.h"
#include "migrate/runner.h"
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
  // Migrations: whether the two below were recorded (the service had
  // migrations when the release was deployed), the newest migration version
  // the release shipped with, and the contract files to run once the
  // release before it is gone.
  bool migrations_recorded = false;
  std::string migrations_known;
  std::vector<std::string> contract;

  std::string ToJson() const;
  static Result<ReleaseSpec> FromJson(std::string_view text);
};

// A deployment (or rollback) in progress.
struct Deployment {
  DeploymentRecord record;
  ReleaseSpec spec;
  bool first = false;     // nothing was live: it lands on the live color
  bool rollback = false;  // switching back to the previous release
  bool force = false;     // rollback: even when a contract migration ran since
  bool abort_requested = false;
  bool promote_requested = false;
  std::string abort_actor;
  std::unique_ptr<boost::asio::steady_timer> wake;  // cancelled to interrupt a wait
  std::shared_ptr<RunCancel> migration;             // the migration run of a step, if any
};

struct SeenTarget {
  TargetPtr target;
  StatsSnapshot last;
  std::string release;
};

struct ServiceState {
  const ServiceConfig* config = nullptr;
  Color live = Color::kBlue;
  bool released = true;  // the live color serves a release
  std::vector<TargetPtr> targets[2];
  std::shared_ptr<ShardedStats> unrouted[2];
  std::shared_ptr<RecentPaths> recent;  // recent live GET paths, for replay
  SlotRecord slots[2];
  std::shared_ptr<Deployment> active;
  bool restarted_live = false;  // Start() had to start the live release again
  // Ends the previous release's rollback window.
  std::unique_ptr<boost::asio::steady_timer> retire_timer;
  std::shared_ptr<RunCancel> contract_run;  // set while a contract runs outside a deployment
  // What each color served, sampled every second (SampleFigures).
  FigureHistory figures[2];
  StatsSnapshot served[2];  // everything each color served since the daemon started
  // The same, split by the release the color held when it served it, oldest
  // first; the newest kReleasesKept per color.
  std::vector<ReleaseServed> by_release[2];
  // Every target of a color counted so far, with its last snapshot and the
  // release it is counted for; a target replaced on its color stays here,
  // counted for its own release, until nothing else holds it (its last
  // requests are done).
  std::vector<SeenTarget> seen[2];
  StatsSnapshot unrouted_seen[2];
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
  // Runs what blocks: migrations talk to the database synchronously.
  std::unique_ptr<boost::asio::thread_pool> blocking;
  std::unique_ptr<boost::asio::steady_timer> sampler;

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
  // Adds what every color served since the last call to its history.
  void SampleFigures();
  // Adds what `color` served since it was last counted to its totals: what
  // its targets and its 503s served, for the release it holds now ("" when
  // it has no targets), and what targets it no longer routes to still
  // finished, for the release they ran. Called before the color's targets
  // change.
  void CountServed(ServiceState& s, int color);
  // Samples every second until the daemon stops.
  void StartSampling();
};

// Starts spec.instances instances of `release` on `color` (process driver),
// each on a newly allocated port; records the ports in `spec`.
Result<std::vector<uint16_t>> StartInstances(Controller::State& st, ServiceState& s, Color color,
                                             const std::string& release, ReleaseSpec& spec);

// Rebuilds st.table from the services' state, publishes it and resumes once
// every router worker took it.
boost::asio::awaitable<void> PublishTable(Controller::State& st);

// --- migrations (migrations.cc) ---------------------------------------------

// Runs `phase` of the service's migrations on the blocking pool; `progress`
// is called on the control thread, in order, before the result arrives.
boost::asio::awaitable<Result<RunReport>> RunMigrationPhase(
    Controller::State& st, const ServiceConfig& sc, Phase phase, RunOptions options,
    std::function<void(std::string)> progress);

// Reads the folder and the history on the blocking pool.
boost::asio::awaitable<Result<DatabaseStatus>> ReadMigrationsOffThread(Controller::State& st,
                                                                       const ServiceConfig& sc);

// Records in `spec` what the release ships with: the newest version of the
// folder and the contract files not applied yet.
void RecordMigrations(const DatabaseStatus& status, ReleaseSpec& spec);

// Why going back to `release` (described by `spec`) would break it: a
// contract file it did not ship with has run. Empty when it is safe.
std::string SchemaRefusal(const DatabaseStatus& status, const ReleaseSpec& spec,
                          std::string_view release);

// The lint findings and the run's files as journal text.
std::string DescribeRun(const RunReport& report);

// Ends the rollback window of the idle color now: drains and stops the
// previous release and journals why.
boost::asio::awaitable<void> RetirePrevious(Controller::State& st, ServiceState& s,
                                            std::string why);

// Runs the contract files of the live release (once its predecessor is
// gone), journaled on the deployment that made it live.
boost::asio::awaitable<Result<RunReport>> ContractLive(Controller::State& st, ServiceState& s,
                                                       std::string actor);

// Milliseconds on the steady clock, the time base of the figure histories.
int64_t SteadyMs();

// "14:05:00 UTC": a wall-clock time of day as the CLI and status show it.
std::string ClockTime(int64_t unix_ms);

// kNotFound naming the service.
Error NoSuchService(std::string_view name);

}  // namespace cutover
