#include "controller/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <ctime>

#include "common/log.h"
#include "controller/controller_state.h"
#include "controller/metrics.h"
#include "driver/process_supervisor.h"
#include "router/health_checker.h"
#include "router/route_table.h"
#include "router/router.h"

namespace cutover {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

ServiceState* Controller::State::Find(std::string_view name) {
  for (ServiceState& s : services) {
    if (s.config->name == name) return &s;
  }
  return nullptr;
}

std::shared_ptr<const RouteTable> Controller::State::BuildTable() {
  std::vector<ServiceRoute> routes;
  routes.reserve(services.size());
  for (const ServiceState& s : services) {
    ServiceRoute r;
    r.name = s.config->name;
    r.hosts = s.config->hosts;
    r.path_prefix = s.config->path_prefix;
    r.live = s.live;
    r.released = s.released;
    r.preview = s.active && s.active->first ? s.active->record.color : Other(s.live);
    r.pools[0] = s.targets[0];
    r.pools[1] = s.targets[1];
    r.drain_timeout = s.config->drain_timeout;
    r.unrouted[0] = s.unrouted[0];
    r.unrouted[1] = s.unrouted[1];
    r.recent = s.recent;
    routes.push_back(std::move(r));
  }
  return std::make_shared<const RouteTable>(++table_version, std::move(routes));
}

ServiceView Controller::State::View(const ServiceState& s) const {
  ServiceView v;
  v.name = s.config->name;
  v.live = s.live;
  v.released = s.released;
  v.driver = s.config->driver.type == DriverType::kProcess ? "process" : "static";
  v.hosts = s.config->hosts;
  v.path_prefix = s.config->path_prefix;
  for (int c = 0; c < 2; ++c) {
    for (const TargetPtr& t : s.targets[c]) {
      TargetView tv;
      tv.address = t->address_text;
      tv.healthy = t->healthy.load(std::memory_order_relaxed);
      tv.in_flight = t->stats.Snapshot().in_flight;
      if (!tv.healthy) tv.health_error = health.LastError(t.get());
      v.targets[c].push_back(std::move(tv));
    }
    const SlotRecord& slot = s.slots[c];
    v.slots[c].figures = s.figures[c].Last(60'000, SteadyMs());
    v.slots[c].release = slot.release;
    v.slots[c].state =
        !slot.state.empty() ? slot.state : (s.targets[c].empty() ? "empty" : "running");
    if (static_cast<Color>(c) != s.live && slot.state == "running") {
      Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
      if (spec && spec->retire_at_unix_ms > 0) {
        v.slots[c].note = "kept for rollback until " + ClockTime(spec->retire_at_unix_ms);
      }
    }
  }
  for (int c = 0; c < 2; ++c) {
    for (const InstanceStatus& i : processes.Instances(s.config->name, static_cast<Color>(c))) {
      v.slots[c].logs.push_back(i.spec.log_path);
      for (size_t t = 0; t < s.targets[c].size(); ++t) {
        if (s.targets[c][t]->address.port == i.spec.port) {
          v.targets[c][t].restarts = i.restarts;
          v.targets[c][t].last_exit = i.last_exit;
        }
      }
    }
  }
  if (s.active) v.deployment = s.active->record;
  return v;
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Controller::State::CountServed(ServiceState& s, int c) {
  auto count = [&](const std::string& release, const StatsSnapshot& delta) {
    s.served[c].Add(delta);
    AddServed(s.by_release[c], release, delta);
  };
  // Replaced targets first: what one served since goes to its own release,
  // and it is forgotten once only this list holds it (its last request is
  // done).
  std::vector<SeenTarget> next;
  next.reserve(s.seen[c].size() + s.targets[c].size());
  for (SeenTarget& seen : s.seen[c]) {
    if (std::find(s.targets[c].begin(), s.targets[c].end(), seen.target) != s.targets[c].end()) {
      continue;
    }
    const bool done = seen.target.use_count() == 1;
    // use_count() reads relaxed. The fence pairs it with the release of the
    // last other holder, so that holder's final counts are in the snapshot.
    if (done) std::atomic_thread_fence(std::memory_order_acquire);
    const StatsSnapshot snap = seen.target->stats.Snapshot();
    StatsSnapshot delta;
    AddDelta(delta, seen.last, snap);
    count(seen.release, delta);
    if (!done) next.push_back({std::move(seen.target), snap, std::move(seen.release)});
  }
  // A bound, should something hold replaced targets for good.
  constexpr size_t kReplacedKept = 64;
  if (next.size() > kReplacedKept) next.erase(next.begin(), next.end() - kReplacedKept);

  // Then the color's targets and its 503s, for the release it holds now
  // (last, so that it stays the newest of the list). A color without
  // targets holds no release: it only answers 503.
  const std::string current = s.targets[c].empty() ? std::string() : s.slots[c].release;
  StatsSnapshot delta;
  for (const TargetPtr& t : s.targets[c]) {
    const StatsSnapshot snap = t->stats.Snapshot();
    StatsSnapshot before;
    for (const SeenTarget& seen : s.seen[c]) {
      if (seen.target == t) before = seen.last;
    }
    AddDelta(delta, before, snap);
    next.push_back({t, snap, current});
  }
  s.seen[c] = std::move(next);
  const StatsSnapshot unrouted = s.unrouted[c]->Snapshot();
  AddDelta(delta, s.unrouted_seen[c], unrouted);
  s.unrouted_seen[c] = unrouted;
  count(current, delta);
}

void Controller::State::SampleFigures() {
  const int64_t now = SteadyMs();
  for (ServiceState& s : services) {
    for (int c = 0; c < 2; ++c) {
      CountServed(s, c);
      s.figures[c].Record(now, s.served[c]);
    }
  }
}

void Controller::State::StartSampling() {
  sampler = std::make_unique<asio::steady_timer>(control);
  SampleFigures();
  asio::co_spawn(
      control,
      [this]() -> asio::awaitable<void> {
        while (!shutting_down) {
          sampler->expires_after(Millis(1000));
          auto [ec] = co_await sampler->async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec || shutting_down) co_return;
          SampleFigures();
        }
      },
      asio::detached);
}

void Controller::State::Emit(const DeploymentEvent& event) {
  // A listener may unsubscribe (or subscribe) from inside its call.
  std::vector<uint64_t> ids;
  for (const auto& [id, fn] : listeners) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = listeners.find(id);
    if (it != listeners.end()) it->second(event);
  }
}

Result<TargetPtr> Controller::State::MakeTarget(ServiceState& s, Color color,
                                                const HostPort& address, bool start_healthy) {
  tcp::resolver resolver(control);
  boost::system::error_code ec;
  auto results = resolver.resolve(address.host, std::to_string(address.port),
                                  tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("service '{}': target {}: cannot resolve: {}", s.config->name,
                                 address.ToString(), ec.message()));
  }
  auto t = std::make_shared<Target>(next_target_id++, s.config->name, color, address,
                                    results.begin()->endpoint(), router.worker_count());
  if (!start_healthy) t->healthy.store(false, std::memory_order_relaxed);
  health.Watch(t, s.config->health);
  return t;
}

void Controller::State::SetTargets(ServiceState& s, Color color, std::vector<TargetPtr> targets) {
  // What the outgoing targets served since the last sample still counts,
  // for the release they ran.
  CountServed(s, static_cast<int>(color));
  for (const TargetPtr& t : s.targets[static_cast<int>(color)]) health.Unwatch(t.get());
  s.targets[static_cast<int>(color)] = std::move(targets);
}

void Controller::State::SaveSlot(ServiceState& s, Color color) {
  Status saved = store.SetSlot(s.config->name, color, s.slots[static_cast<int>(color)]);
  if (!saved)
    LogWarn("service '{}': saving the {} slot: {}", s.config->name, ColorName(color),
            saved.error().message);
}

Controller::Controller(asio::io_context& control, const Config& config, Store& store,
                       Router& router, HealthChecker& health, ProcessSupervisor& processes)
    : state_(std::make_unique<State>(State{control,
                                           config,
                                           store,
                                           router,
                                           health,
                                           processes,
                                           {},
                                           0,
                                           0,
                                           {},
                                           {},
                                           0,
                                           false,
                                           std::make_unique<asio::thread_pool>(2)})) {}

Controller::~Controller() {
  // A migration that still runs was cancelled by Shutdown; wait for it to
  // return before the state it reports to goes away.
  for (ServiceState& s : state_->services) {
    if (s.contract_run) s.contract_run->Cancel();
    if (s.active && s.active->migration) s.active->migration->Cancel();
  }
  state_->blocking->join();
}

namespace {

// Ends, as interrupted, the deployments a killed daemon left running; their
// candidates are stopped below unless they went live.
Status MarkInterrupted(Store& store, std::vector<DeploymentRecord>& out) {
  Result<std::vector<DeploymentRecord>> unfinished = store.UnfinishedDeployments();
  if (!unfinished) return std::unexpected(unfinished.error());
  for (DeploymentRecord& d : *unfinished) {
    d.outcome = "interrupted";
    d.finished_unix_ms = NowUnixMs();
    d.message = "the daemon stopped during this deployment; live traffic stayed where it was";
    for (StepRecord& step : d.steps) {
      if (step.outcome == "running" || step.outcome == "waiting") {
        step.outcome = "interrupted";
        step.finished_unix_ms = d.finished_unix_ms;
      }
    }
    if (Status s = store.UpdateDeployment(d); !s) return s;
    out.push_back(std::move(d));
  }
  return {};
}

}  // namespace

Status Controller::Start() {
  State& st = *state_;
  size_t workers = st.router.worker_count();
  std::vector<DeploymentRecord> interrupted;
  if (Status s = MarkInterrupted(st.store, interrupted); !s) return s;
  Result<std::vector<InstanceStatus>> found = st.processes.Adopt();
  if (!found) return std::unexpected(found.error());
  std::vector<InstanceStatus> adopted = std::move(*found);
  st.processes.OnEvent([&st](const InstanceEvent& e) {
    std::string message = fmt::format("{} ({} on {})", e.message, e.release, ColorName(e.color));
    Status audited = st.store.AppendAudit({0, 0, e.service, "instance", "daemon", message, "ok"});
    if (!audited) LogWarn("audit: {}", audited.error().message);
    ServiceState* s = st.Find(e.service);
    int64_t id = s != nullptr && s->active ? s->active->record.id : 0;
    st.Emit({id, e.service, e.release, "instance", "", "", 0, message, NowUnixMs()});
  });
  st.services.reserve(st.config.services.size());
  for (const ServiceConfig& sc : st.config.services) {
    st.services.emplace_back();
    ServiceState& s = st.services.back();
    s.config = &sc;
    Result<std::optional<Color>> stored = st.store.LiveColor(sc.name);
    if (!stored) return std::unexpected(stored.error());
    s.live = stored->value_or(Color::kBlue);
    s.recent = std::make_shared<RecentPaths>(workers);
    for (int c = 0; c < 2; ++c) {
      s.unrouted[c] = std::make_shared<ShardedStats>(workers);
      Result<SlotRecord> slot = st.store.Slot(sc.name, static_cast<Color>(c));
      if (!slot) return std::unexpected(slot.error());
      s.slots[c] = std::move(*slot);
    }
    // A candidate of an interrupted deployment never went live: stop it.
    for (const DeploymentRecord& d : interrupted) {
      if (d.service != sc.name) continue;
      SlotRecord& slot = s.slots[static_cast<int>(d.color)];
      bool went_live = d.color == s.live && slot.state == "running" && slot.release == d.release;
      if (!went_live && slot.release == d.release) {
        LogWarn("service '{}': deployment {} of {} was interrupted; its candidate is stopped",
                sc.name, d.id, d.release);
        slot.state = "stopped";
        st.SaveSlot(s, d.color);
      }
    }
    for (int c = 0; c < 2; ++c) {
      const Color color = static_cast<Color>(c);
      SlotRecord& slot = s.slots[c];
      std::vector<TargetPtr> targets;
      if (sc.driver.type == DriverType::kStatic) {
        std::vector<HostPort> addrs = c == 0 ? sc.driver.blue : sc.driver.green;
        if (!slot.release.empty() && slot.state != "stopped") {
          Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
          if (spec && !spec->targets.empty()) addrs = spec->targets;
        }
        if (slot.state == "stopped") addrs.clear();
        for (const HostPort& hp : addrs) {
          Result<TargetPtr> t = st.MakeTarget(s, color, hp, /*start_healthy=*/true);
          if (!t) return std::unexpected(t.error());
          targets.push_back(std::move(*t));
        }
      } else if (!slot.release.empty() && slot.state != "stopped") {
        Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
        if (!spec) return std::unexpected(spec.error().Wrap("service '" + sc.name + "' slot"));
        std::vector<uint16_t> ports;
        for (const InstanceStatus& i : adopted) {
          if (i.spec.service == sc.name && i.spec.color == color &&
              i.spec.release == slot.release && i.running) {
            ports.push_back(i.spec.port);
          }
        }
        if (!ports.empty()) {
          LogInfo("service '{}': adopted {} running instance(s) of {} on {}", sc.name, ports.size(),
                  slot.release, ColorName(color));
        } else if (color == s.live) {
          // The live release must serve: start it again before traffic comes.
          LogWarn("service '{}': the instances of live release {} are gone; starting them again",
                  sc.name, slot.release);
          Result<std::vector<uint16_t>> started = StartInstances(st, s, color, slot.release, *spec);
          if (!started) return std::unexpected(started.error());
          ports = *started;
          s.restarted_live = true;
        } else {
          slot.state = "stopped";
          st.SaveSlot(s, color);
        }
        for (uint16_t port : ports) {
          // Adopted instances serve already; restarted ones must prove it.
          Result<TargetPtr> t = st.MakeTarget(s, color, HostPort{"127.0.0.1", port},
                                              /*start_healthy=*/!s.restarted_live);
          if (!t) return std::unexpected(t.error());
          targets.push_back(std::move(*t));
        }
      }
      s.targets[c] = std::move(targets);
    }
    // Adopted processes nobody claims (an interrupted candidate, a stopped
    // slot) are stopped rather than orphaned.
    for (int c = 0; c < 2; ++c) {
      const Color color = static_cast<Color>(c);
      bool claimed = s.slots[c].state != "stopped" && !s.slots[c].release.empty();
      for (const InstanceStatus& i : adopted) {
        if (i.spec.service == sc.name && i.spec.color == color && i.running &&
            (!claimed || i.spec.release != s.slots[c].release)) {
          asio::co_spawn(st.control, st.processes.Stop(sc.name, color), asio::detached);
          break;
        }
      }
    }
    const SlotRecord& live_slot = s.slots[static_cast<int>(s.live)];
    s.released = !s.targets[static_cast<int>(s.live)].empty() &&
                 (live_slot.release.empty() || live_slot.state == "running");
    st.ArmRetire(s);
    LogInfo("service '{}': live color {}{}{}", sc.name, ColorName(s.live),
            stored->has_value() ? " (stored)" : " (first start)",
            s.released ? "" : ", no release live yet");
  }
  st.table = st.BuildTable();
  st.StartSampling();
  return {};
}

asio::awaitable<void> Controller::WaitForRestartedReleases() {
  State& st = *state_;
  asio::steady_timer poll(st.control);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    bool waiting = false;
    for (const ServiceState& s : st.services) {
      if (!s.restarted_live) continue;
      if (std::chrono::steady_clock::now() - start >= s.config->health.deadline) continue;
      for (const TargetPtr& t : s.targets[static_cast<int>(s.live)]) {
        waiting = waiting || !t->healthy.load(std::memory_order_relaxed);
      }
    }
    if (!waiting) co_return;
    poll.expires_after(Millis(50));
    co_await poll.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

std::shared_ptr<const RouteTable> Controller::table() const { return state_->table; }

std::vector<ServiceView> Controller::ListServices() const {
  std::vector<ServiceView> out;
  for (const ServiceState& s : state_->services) out.push_back(state_->View(s));
  return out;
}

Result<ServiceView> Controller::GetService(std::string_view name) const {
  ServiceState* s = state_->Find(name);
  if (s == nullptr) {
    return std::unexpected(NoSuchService(name));
  }
  return state_->View(*s);
}

asio::awaitable<Result<ServiceView>> Controller::Switch(std::string name, Color to, bool force,
                                                        std::string actor) {
  State& st = *state_;
  ServiceState* s = st.Find(name);
  if (s == nullptr) {
    co_return std::unexpected(NoSuchService(name));
  }
  if (s->active) {
    co_return MakeError(ErrorCode::kConflict,
                        fmt::format("service '{}': deployment {} of {} is running; promote or "
                                    "abort it first",
                                    name, s->active->record.id, s->active->record.release));
  }
  const Color from = s->live;
  const std::vector<TargetPtr>& pool = s->targets[static_cast<int>(to)];
  size_t healthy = std::count_if(pool.begin(), pool.end(), [](const TargetPtr& t) {
    return t->healthy.load(std::memory_order_relaxed);
  });
  std::string detail =
      fmt::format("{} -> {}{}", ColorName(from), ColorName(to), force ? " (forced)" : "");
  if (s->config->migrations && !force && to != from) {
    const SlotRecord& slot = s->slots[static_cast<int>(to)];
    Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
    Result<DatabaseStatus> status = co_await ReadMigrationsOffThread(st, *s->config);
    std::string why;
    if (!status) {
      why = fmt::format("service '{}': cannot check the schema: {}", name, status.error().message);
    } else if (spec) {
      std::string refusal = SchemaRefusal(
          *status, *spec, slot.release.empty() ? std::string("that release") : slot.release);
      if (!refusal.empty()) why = fmt::format("service '{}': {}", name, refusal);
    }
    if (!why.empty()) {
      Status audited = st.store.AppendAudit({0, 0, name, "switch", actor, detail, why});
      if (!audited) LogWarn("audit: {}", audited.error().message);
      co_return MakeError(ErrorCode::kConflict, why + " (--force switches anyway)");
    }
    // The check took a moment: a deployment may have started meanwhile.
    if (s->active) {
      co_return MakeError(
          ErrorCode::kConflict,
          fmt::format("service '{}': deployment {} started meanwhile", name, s->active->record.id));
    }
  }
  if (healthy == 0 && !force) {
    std::string why = pool.empty()
                          ? fmt::format("service '{}': {} has no targets", name, ColorName(to))
                          : fmt::format("service '{}': {} has no healthy target (0 of {} healthy)",
                                        name, ColorName(to), pool.size());
    Status audited = st.store.AppendAudit({0, 0, name, "switch", actor, detail, why});
    if (!audited) LogWarn("audit: {}", audited.error().message);
    co_return MakeError(ErrorCode::kConflict, why + "; force the switch to make it live anyway");
  }
  // Persist first: a daemon killed right after the answer must come back on
  // the color it announced.
  // The audit line goes in the same transaction: publishing cannot fail.
  if (Status saved = st.store.SetLiveColor(name, to, {0, 0, name, "switch", actor, detail, "ok"});
      !saved) {
    co_return std::unexpected(saved.error().Wrap(fmt::format("service '{}': switch", name)));
  }
  s->live = to;
  co_await PublishTable(st);
  LogInfo("service '{}': switched {} by {}", name, detail, actor);
  co_return st.View(*s);
}

asio::awaitable<Result<ContractResult>> Controller::Contract(std::string name, std::string actor) {
  State& st = *state_;
  ServiceState* s = st.Find(name);
  if (s == nullptr) co_return std::unexpected(NoSuchService(name));
  if (!s->config->migrations) {
    co_return MakeError(ErrorCode::kInvalidArgument,
                        fmt::format("service '{}' has no migrations configured", name));
  }
  if (s->active) {
    co_return MakeError(ErrorCode::kConflict,
                        fmt::format("service '{}': deployment {} of {} is running; contract "
                                    "after it finished",
                                    name, s->active->record.id, s->active->record.release));
  }
  if (s->contract_run) {
    co_return MakeError(ErrorCode::kConflict,
                        fmt::format("service '{}': its contract migrations run already", name));
  }
  if (!s->released) {
    co_return MakeError(ErrorCode::kConflict,
                        fmt::format("service '{}' has no release live yet", name));
  }
  // The database and the folder must be readable before the previous
  // release is stopped for the contract's sake.
  Result<DatabaseStatus> readable = co_await ReadMigrationsOffThread(st, *s->config);
  if (!readable) co_return std::unexpected(readable.error());
  if (s->active) {
    co_return MakeError(
        ErrorCode::kConflict,
        fmt::format("service '{}': deployment {} started meanwhile", name, s->active->record.id));
  }
  ContractResult result;
  const Color idle = Other(s->live);
  const SlotRecord& slot = s->slots[static_cast<int>(idle)];
  if (!s->targets[static_cast<int>(idle)].empty() &&
      (slot.state == "running" || slot.state == "starting" || slot.state.empty())) {
    std::string release = slot.release.empty() ? std::string("the previous release") : slot.release;
    co_await RetirePrevious(st, *s, fmt::format("the rollback window was ended by {}", actor));
    result.retired = fmt::format("stopped {} on {}: rolling back to it is no longer instant",
                                 release, ColorName(idle));
  }
  Result<RunReport> report = co_await ContractLive(st, *s, actor);
  if (!report) co_return std::unexpected(report.error());
  result.report = std::move(*report);
  co_return result;
}

std::string Controller::PrometheusMetrics() {
  std::vector<ServiceMetrics> services;
  for (ServiceState& s : state_->services) {
    // Up to what the router counted this instant; the next sample records it.
    for (int c = 0; c < 2; ++c) state_->CountServed(s, c);
    ServiceMetrics m;
    m.name = s.config->name;
    m.live = s.live;
    for (int c = 0; c < 2; ++c) {
      m.unrouted[c] = s.unrouted[c]->Snapshot();
      m.served[c] = s.by_release[c];
      for (const TargetPtr& t : s.targets[c]) {
        m.targets[c].push_back(
            {t->address_text, t->healthy.load(std::memory_order_relaxed), t->stats.Snapshot()});
      }
    }
    services.push_back(std::move(m));
  }
  return RenderPrometheus(services, state_->router.counters());
}

}  // namespace cutover
