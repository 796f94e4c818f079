#include "cli/serve.h"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <thread>

#include "api/client.h"
#include "api/server.h"
#include "common/log.h"
#include "config/config.h"
#include "controller/controller.h"
#include "driver/process_supervisor.h"
#include "router/health_checker.h"
#include "router/router.h"
#include "store/store.h"

namespace cutover {

namespace asio = boost::asio;

namespace {
// How long requests in flight may take to finish when the daemon stops.
constexpr Millis kShutdownGrace{10'000};
constexpr Millis kEventFlush{200};
}  // namespace

int RunServe(const ServeOptions& options) {
  auto loaded = LoadConfig(options.config_path);
  if (!loaded) {
    for (const Diagnostic& d : loaded.error()) fmt::print(stderr, "{}\n", d.ToString());
    return 2;
  }
  const Config& config = *loaded;
  // A peer closing its end must be an error code, not a signal.
  ::signal(SIGPIPE, SIG_IGN);

  // Another daemon answering on this control socket would share the listen
  // ports (SO_REUSEPORT): refuse before binding anything.
  if (ApiClient(config.control, Millis(2000)).Call("GET", "/v1/services")) {
    LogError("another cutover daemon is listening on {}", config.control);
    return 1;
  }

  int workers = options.workers > 0 ? options.workers : config.workers;
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  asio::io_context control(1);
  auto store = OpenSqliteStore(config.store);
  if (!store) {
    LogError("store: {}", store.error().message);
    return 1;
  }

  RouterOptions ropts;
  ropts.listen = config.listen;
  ropts.workers = workers;
  ropts.io_uring = config.io_uring;
  ropts.timeouts = config.timeouts;
  ropts.limits = config.limits;
  ropts.access_log = config.access_log;
  if (config.preview.enabled) {
    ropts.preview_listen = {config.preview.listen};
    ropts.preview_token = config.preview.token;
  }
  auto router = Router::Create(ropts);
  if (!router) {
    LogError("router: {}", router.error().message);
    return 1;
  }

  HealthChecker health(control);
  ProcessSupervisor processes(control, std::filesystem::path(config.store).parent_path().string(),
                              config.ports);
  Controller controller(control, config, **store, **router, health, processes);
  if (Status s = controller.Start(); !s) {
    LogError("{}", s.error().message);
    return 1;
  }
  // Learn the targets' health before serving, so that the first request
  // already avoids a target that is down.
  Millis first_round{0};
  for (const ServiceConfig& s : config.services)
    first_round = std::max(first_round, s.health.timeout);
  bool ready = false;
  asio::co_spawn(
      control,
      [&]() -> asio::awaitable<void> {
        co_await health.WaitFirstRound(first_round + Millis(200));
        co_await controller.WaitForRestartedReleases();
        ready = true;
      },
      asio::detached);
  while (!ready && control.run_one() > 0) {
  }

  auto api = ApiServer::Start(control, config.control, controller);
  if (!api) {
    LogError("control socket: {}", api.error().message);
    return 1;
  }
  std::unique_ptr<MetricsServer> metrics;
  if (config.metrics_listen) {
    auto m =
        MetricsServer::Start(control, *config.metrics_listen, config.metrics_token, controller);
    if (!m) {
      LogError("metrics listener: {}", m.error().message);
      return 1;
    }
    metrics = std::move(*m);
  }

  (*router)->Start(controller.table());
  std::string listening;
  for (const HostPort& hp : (*router)->bound_addresses()) {
    listening += (listening.empty() ? "" : ", ") + hp.ToString();
  }
  LogInfo("cutover serving on {} with {} worker{} ({}); control socket {}", listening, workers,
          workers == 1 ? "" : "s", (*router)->io(), config.control);
  for (const HostPort& hp : (*router)->bound_preview_addresses()) {
    LogInfo("preview (the idle colors) on {}{}", hp.ToString(),
            config.preview.token.empty() ? "" : ", token required");
  }

  asio::signal_set signals(control, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    LogInfo("received {}; draining (up to {})", sig == SIGINT ? "SIGINT" : "SIGTERM",
            FormatDuration(kShutdownGrace));
    if (metrics) metrics->Stop();
    health.Stop();
    (*router)->Shutdown(kShutdownGrace);
    asio::co_spawn(
        control,
        [&]() -> asio::awaitable<void> {
          co_await controller.Shutdown(options.keep_instances);
          // Lets event streams send the deployments' last ("interrupted")
          // event before the control socket closes.
          asio::steady_timer flush(control, kEventFlush);
          co_await flush.async_wait(asio::as_tuple(asio::use_awaitable));
          (*api)->Stop();
          control.stop();
        },
        asio::detached);
  });
  control.run();
  // Let what the stop cancelled (event streams, waits) finish while the
  // controller they refer to still exists.
  control.restart();
  for (int i = 0; i < 1000 && control.poll() > 0; ++i) {
  }
  LogInfo("stopped");
  return 0;
}

}  // namespace cutover
