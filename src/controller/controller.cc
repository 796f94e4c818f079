#include "controller/controller.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"
#include "controller/metrics.h"
#include "router/health_checker.h"
#include "router/route_table.h"
#include "router/router.h"

namespace cutover {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct ServiceState {
  const ServiceConfig* config = nullptr;
  Color live = Color::kBlue;
  std::vector<TargetPtr> targets[2];
  std::shared_ptr<ShardedStats> unrouted[2];
};

struct Controller::State {
  asio::io_context& control;
  const Config& config;
  Store& store;
  Router& router;
  HealthChecker& health;
  std::vector<ServiceState> services;
  uint32_t next_target_id = 0;
  uint64_t table_version = 0;
  std::shared_ptr<const RouteTable> table;

  ServiceState* Find(std::string_view name) {
    for (ServiceState& s : services) {
      if (s.config->name == name) return &s;
    }
    return nullptr;
  }

  std::shared_ptr<const RouteTable> BuildTable() {
    std::vector<ServiceRoute> routes;
    routes.reserve(services.size());
    for (const ServiceState& s : services) {
      ServiceRoute r;
      r.name = s.config->name;
      r.hosts = s.config->hosts;
      r.path_prefix = s.config->path_prefix;
      r.live = s.live;
      r.pools[0] = s.targets[0];
      r.pools[1] = s.targets[1];
      r.drain_timeout = s.config->drain_timeout;
      r.unrouted[0] = s.unrouted[0];
      r.unrouted[1] = s.unrouted[1];
      routes.push_back(std::move(r));
    }
    return std::make_shared<const RouteTable>(++table_version, std::move(routes));
  }

  ServiceView View(const ServiceState& s) const {
    ServiceView v;
    v.name = s.config->name;
    v.live = s.live;
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
    }
    return v;
  }
};

Controller::Controller(asio::io_context& control, const Config& config, Store& store,
                       Router& router, HealthChecker& health)
    : state_(std::make_unique<State>(State{control, config, store, router, health, {}, 0, 0, {}})) {
}

Controller::~Controller() = default;

Status Controller::Start() {
  State& st = *state_;
  size_t workers = st.router.worker_count();
  tcp::resolver resolver(st.control);
  for (const ServiceConfig& sc : st.config.services) {
    ServiceState s;
    s.config = &sc;
    Result<std::optional<Color>> stored = st.store.LiveColor(sc.name);
    if (!stored) return std::unexpected(stored.error());
    s.live = stored->value_or(Color::kBlue);
    for (int c = 0; c < 2; ++c) {
      s.unrouted[c] = std::make_shared<ShardedStats>(workers);
      const std::vector<HostPort>& addrs = c == 0 ? sc.driver.blue : sc.driver.green;
      for (const HostPort& hp : addrs) {
        boost::system::error_code ec;
        auto results =
            resolver.resolve(hp.host, std::to_string(hp.port), tcp::resolver::numeric_service, ec);
        if (ec || results.empty()) {
          return MakeError(ErrorCode::kInvalidArgument,
                           fmt::format("service '{}': target {}: cannot resolve: {}", sc.name,
                                       hp.ToString(), ec.message()));
        }
        auto t = std::make_shared<Target>(st.next_target_id++, sc.name, static_cast<Color>(c), hp,
                                          results.begin()->endpoint(), workers);
        st.health.Watch(t, sc.health);
        s.targets[c].push_back(std::move(t));
      }
    }
    LogInfo("service '{}': live color {}{}", sc.name, ColorName(s.live),
            stored->has_value() ? " (stored)" : " (first start)");
    st.services.push_back(std::move(s));
  }
  st.table = st.BuildTable();
  return {};
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
    return MakeError(ErrorCode::kNotFound, fmt::format("no service named '{}'", name));
  }
  return state_->View(*s);
}

asio::awaitable<Result<ServiceView>> Controller::Switch(std::string name, Color to, bool force,
                                                        std::string actor) {
  State& st = *state_;
  ServiceState* s = st.Find(name);
  if (s == nullptr) {
    co_return MakeError(ErrorCode::kNotFound, fmt::format("no service named '{}'", name));
  }
  const Color from = s->live;
  const std::vector<TargetPtr>& pool = s->targets[static_cast<int>(to)];
  size_t healthy = std::count_if(pool.begin(), pool.end(), [](const TargetPtr& t) {
    return t->healthy.load(std::memory_order_relaxed);
  });
  std::string detail =
      fmt::format("{} -> {}{}", ColorName(from), ColorName(to), force ? " (forced)" : "");
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
  st.table = st.BuildTable();
  co_await PublishAndWait(st.table);
  LogInfo("service '{}': switched {} by {}", name, detail, actor);
  co_return st.View(*s);
}

asio::awaitable<void> Controller::PublishAndWait(std::shared_ptr<const RouteTable> table) {
  State& st = *state_;
  auto done =
      std::make_shared<asio::steady_timer>(st.control, asio::steady_timer::time_point::max());
  asio::io_context& control = st.control;
  st.router.Publish(std::move(table),
                    [done, &control] { asio::post(control, [done] { done->cancel(); }); });
  co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
}

std::string Controller::PrometheusMetrics() const {
  std::vector<ServiceMetrics> services;
  for (const ServiceState& s : state_->services) {
    ServiceMetrics m;
    m.name = s.config->name;
    m.live = s.live;
    for (int c = 0; c < 2; ++c) {
      m.unrouted[c] = s.unrouted[c]->Snapshot();
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
