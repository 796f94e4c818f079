// The deployment steps of the Controller: prepare, start, healthy, check,
// approve, switch, settle; and promote, abort, rollback, history, events.
// Control thread only.
#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <ctime>
#include <variant>

#include "checks/checks.h"
#include "checks/traffic.h"
#include "common/log.h"
#include "controller/controller.h"
#include "controller/controller_state.h"
#include "driver/process_supervisor.h"
#include "router/health_checker.h"
#include "router/router.h"

namespace cutover {

namespace asio = boost::asio;
using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr Millis kHealthPoll{100};
// An instance that exits this many times before its release is healthy
// will not become healthy by waiting: the deployment fails at once.
constexpr int kMaxStartingRestarts = 3;
constexpr int kLogTailLines = 20;
constexpr size_t kMaxReleaseLabel = 64;

Status ValidateRelease(std::string_view release) {
  if (release.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "a release label is required (e.g. v42)");
  }
  if (release.size() > kMaxReleaseLabel) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("release label is {} characters long; at most {}", release.size(),
                                 kMaxReleaseLabel));
  }
  for (char c : release) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != '+') {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("release label {} may only hold letters, digits, '.', '-', "
                                   "'_' and '+'",
                                   Quoted(release)));
    }
  }
  return {};
}

std::string LogPath(const Config& config, std::string_view service, std::string_view release,
                    Color color, int index) {
  return fmt::format("{}/{}/{}-{}-{}.log", config.logs, service, release, ColorName(color), index);
}

// The steps a deployment goes through, in order.
std::vector<std::string_view> PlannedSteps(bool rollback, bool migrations, bool observe) {
  if (rollback) {
    if (migrations) return {"schema", "start", "healthy", "switch"};
    return {"start", "healthy", "switch"};
  }
  std::vector<std::string_view> steps;
  for (std::string_view step : {"prepare", "expand", "verify-live", "start", "healthy", "check",
                                "approve", "switch", "observe", "backfill", "settle"}) {
    const bool migration_step = step == "expand" || step == "verify-live" || step == "backfill";
    if ((migration_step && !migrations) || (step == "observe" && !observe)) continue;
    steps.push_back(step);
  }
  return steps;
}

}  // namespace

std::string ReleaseSpec::ToJson() const {
  Json j;
  j["driver"] = driver == DriverType::kProcess ? "process" : "static";
  if (driver == DriverType::kProcess) {
    j["command"] = command;
    Json env_json = Json::array();
    for (const auto& [k, v] : env) env_json.push_back({k, v});
    j["env"] = env_json;
    j["instances"] = instances;
    j["ports"] = ports;
  } else {
    Json t = Json::array();
    for (const HostPort& hp : targets) t.push_back(hp.ToString());
    j["targets"] = t;
  }
  if (retire_at_unix_ms != 0) j["retire_at_unix_ms"] = retire_at_unix_ms;
  if (migrations_recorded) {
    j["migrations"] = {{"known", migrations_known}, {"contract", contract}};
  }
  return j.dump();
}

Result<ReleaseSpec> ReleaseSpec::FromJson(std::string_view text) {
  ReleaseSpec spec;
  if (text.empty()) return spec;
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return MakeError(ErrorCode::kIo, "the stored release description is not a JSON object");
  }
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  spec.driver = str("driver") == "process" ? DriverType::kProcess : DriverType::kStatic;
  spec.command = str("command");
  if (auto it = j.find("env"); it != j.end() && it->is_array()) {
    for (const Json& pair : *it) {
      if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string()) {
        spec.env.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
      }
    }
  }
  if (auto it = j.find("instances"); it != j.end() && it->is_number_integer()) {
    spec.instances = it->get<int>();
  }
  if (auto it = j.find("ports"); it != j.end() && it->is_array()) {
    for (const Json& p : *it) {
      if (p.is_number_unsigned()) spec.ports.push_back(p.get<uint16_t>());
    }
  }
  if (auto it = j.find("targets"); it != j.end() && it->is_array()) {
    for (const Json& t : *it) {
      if (!t.is_string()) continue;
      Result<HostPort> hp = ParseHostPort(t.get<std::string>());
      if (hp) spec.targets.push_back(*hp);
    }
  }
  if (auto it = j.find("retire_at_unix_ms"); it != j.end() && it->is_number_integer()) {
    spec.retire_at_unix_ms = it->get<int64_t>();
  }
  if (auto it = j.find("migrations"); it != j.end() && it->is_object()) {
    spec.migrations_recorded = true;
    if (auto k = it->find("known"); k != it->end() && k->is_string()) {
      spec.migrations_known = k->get<std::string>();
    }
    if (auto c = it->find("contract"); c != it->end() && c->is_array()) {
      for (const Json& v : *c) {
        if (v.is_string()) spec.contract.push_back(v.get<std::string>());
      }
    }
  }
  return spec;
}

Result<std::vector<uint16_t>> StartInstances(Controller::State& st, ServiceState& s, Color color,
                                             const std::string& release, ReleaseSpec& spec) {
  const ServiceConfig& sc = *s.config;
  std::vector<uint16_t> ports;
  for (int i = 0; i < spec.instances; ++i) {
    Result<uint16_t> port = st.processes.AllocatePort();
    if (!port) return std::unexpected(port.error());
    InstanceSpec is;
    is.service = sc.name;
    is.color = color;
    is.release = release;
    is.index = i;
    is.command = spec.command;
    for (size_t at = is.command.find("{port}"); at != std::string::npos;
         at = is.command.find("{port}", at)) {
      is.command.replace(at, 6, std::to_string(*port));
    }
    is.port = *port;
    is.workdir = sc.driver.workdir;
    is.env = spec.env;
    is.log_path = LogPath(st.config, sc.name, release, color, i);
    is.stop_timeout = sc.driver.stop_timeout;
    if (Status started = st.processes.Start(is); !started) {
      return std::unexpected(started.error().Wrap(fmt::format("instance {}", i)));
    }
    ports.push_back(*port);
  }
  spec.ports = ports;
  return ports;
}

void Controller::State::ArmRetire(ServiceState& s) {
  const Color idle = Other(s.live);
  SlotRecord& slot = s.slots[static_cast<int>(idle)];
  if (slot.state != "running" || s.targets[static_cast<int>(idle)].empty()) return;
  Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
  if (!spec || spec->retire_at_unix_ms == 0) return;
  int64_t wait_ms = std::max<int64_t>(0, spec->retire_at_unix_ms - NowUnixMs());
  s.retire_timer = std::make_unique<asio::steady_timer>(control, Millis(wait_ms));
  std::string name = s.config->name;
  std::string release = slot.release;
  s.retire_timer->async_wait([this, name, idle, release](boost::system::error_code ec) {
    if (ec || shutting_down) return;
    ServiceState* sp = Find(name);
    if (sp == nullptr || sp->active || sp->live == idle) return;
    SlotRecord& slot = sp->slots[static_cast<int>(idle)];
    if (slot.release != release || slot.state != "running") return;
    asio::co_spawn(
        control,
        [this, sp]() -> asio::awaitable<void> {
          co_await RetirePrevious(*this, *sp, "the rollback window closed");
          // The release before is gone: what only it needed can go too.
          if (!sp->config->migrations || shutting_down || sp->active) co_return;
          Result<RunReport> report = co_await ContractLive(*this, *sp, "daemon");
          if (!report) {
            LogWarn("service '{}': contract migrations: {}", sp->config->name,
                    report.error().message);
          } else if (!report->ok) {
            LogWarn("service '{}': contract migrations: {}", sp->config->name, report->error);
          }
        },
        asio::detached);
  });
}

std::string ClockTime(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:02}:{:02}:{:02} UTC", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

Error NoSuchService(std::string_view name) {
  return Error{ErrorCode::kNotFound, fmt::format("no service named '{}'", name)};
}

asio::awaitable<void> PublishTable(Controller::State& st) {
  st.table = st.BuildTable();
  auto done =
      std::make_shared<asio::steady_timer>(st.control, asio::steady_timer::time_point::max());
  asio::io_context& control = st.control;
  st.router.Publish(st.table,
                    [done, &control] { asio::post(control, [done] { done->cancel(); }); });
  co_await done->async_wait(kTuple);
}

namespace {

// Journals and streams the steps of one deployment.
class StepJournal {
 public:
  StepJournal(Controller::State& st, Deployment& d) : st_(st), d_(d) {}

  void Begin(std::string_view name, std::string message = {}) {
    StepRecord* step = Find(name);
    if (step == nullptr) {
      d_.record.steps.push_back({std::string(name), "pending", 0, 0, ""});
      step = &d_.record.steps.back();
    }
    step->outcome = "running";
    step->started_unix_ms = NowUnixMs();
    step->message = std::move(message);
    step_started_ = SteadyClock::now();
    current_ = std::string(name);
    Save();
    EmitStep(*step);
  }

  // Updates the running step's message (and outcome, e.g. "waiting").
  void Update(std::string_view outcome, std::string message) {
    StepRecord* step = Find(current_);
    if (step == nullptr) return;
    step->outcome = std::string(outcome);
    step->message = std::move(message);
    Save();
    EmitStep(*step);
  }

  void End(std::string_view outcome, std::string message) {
    StepRecord* step = Find(current_);
    if (step == nullptr) return;
    step->outcome = std::string(outcome);
    step->finished_unix_ms = NowUnixMs();
    if (!message.empty()) step->message = std::move(message);
    Save();
    EmitStep(*step);
  }

  void Finish(std::string_view outcome, std::string message) {
    d_.record.outcome = std::string(outcome);
    d_.record.message = std::move(message);
    d_.record.finished_unix_ms = NowUnixMs();
    for (StepRecord& step : d_.record.steps) {
      if (step.outcome == "pending") step.outcome = "skipped";
    }
    Save();
    int64_t elapsed = d_.record.finished_unix_ms - d_.record.started_unix_ms;
    st_.Emit({d_.record.id, d_.record.service, d_.record.release, "finished", "", d_.record.outcome,
              elapsed, d_.record.message, NowUnixMs()});
  }

  const std::string& current() const { return current_; }

 private:
  StepRecord* Find(std::string_view name) {
    for (StepRecord& step : d_.record.steps) {
      if (step.name == name) return &step;
    }
    return nullptr;
  }
  void Save() {
    if (st_.shutting_down) return;
    Status saved = st_.store.UpdateDeployment(d_.record);
    if (!saved) LogWarn("deployment {}: journal: {}", d_.record.id, saved.error().message);
  }
  void EmitStep(const StepRecord& step) {
    int64_t elapsed =
        std::chrono::duration_cast<Millis>(SteadyClock::now() - step_started_).count();
    st_.Emit({d_.record.id, d_.record.service, d_.record.release, "step", step.name, step.outcome,
              elapsed, step.message, NowUnixMs()});
  }

  Controller::State& st_;
  Deployment& d_;
  std::string current_;
  SteadyClock::time_point step_started_{};
};

// Runs migration `phase` for deployment `d` as its journal's running step:
// progress lines update the step, and an abort cancels the file that runs.
asio::awaitable<Result<RunReport>> RunStepPhase(Controller::State& st, const ServiceConfig& sc,
                                                Deployment& d, StepJournal& journal, Phase phase) {
  RunOptions options;
  options.release = d.record.release;
  d.migration = std::make_shared<RunCancel>();
  options.cancel = d.migration;
  Result<RunReport> report = co_await RunMigrationPhase(
      st, sc, phase, options,
      [&journal](std::string line) { journal.Update("running", std::move(line)); });
  d.migration.reset();
  co_return report;
}

// Waits on the deployment's wake timer for at most `d`; returns early when
// promote or abort is asked.
asio::awaitable<void> Nap(Deployment& d, Millis duration) {
  d.wake->expires_after(duration);
  co_await d.wake->async_wait(kTuple);
}

// Completes once an abort was asked (or the daemon stops).
asio::awaitable<void> WaitForAbort(Deployment& d, const Controller::State& st) {
  // Cancelled when the check finishes first: stop quietly, not by throwing.
  co_await asio::this_coro::throw_if_cancelled(false);
  while (!d.abort_requested && !st.shutting_down) {
    co_await Nap(d, Millis(60'000));
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) co_return;
  }
}

std::string HealthProblem(Controller::State& st, const ServiceState& s, Color color) {
  std::string out;
  for (const TargetPtr& t : s.targets[static_cast<int>(color)]) {
    if (t->healthy.load(std::memory_order_relaxed)) continue;
    std::string why = st.health.LastError(t.get());
    out += fmt::format("{}{}: {}", out.empty() ? "" : "; ", t->address_text,
                       why.empty() ? "no health check passed yet" : why);
  }
  return out;
}

// The starting instances that keep exiting, with their last log lines.
std::string CrashingInstances(Controller::State& st, const ServiceState& s, Color color) {
  for (const InstanceStatus& i : st.processes.Instances(s.config->name, color)) {
    if (i.restarts < kMaxStartingRestarts) continue;
    return fmt::format(
        "instance {} keeps exiting while starting ({}; restarted {} times); "
        "last lines of {}:\n{}",
        i.spec.index, i.last_exit, i.restarts, i.spec.log_path,
        ProcessSupervisor::TailLog(i.spec.log_path, kLogTailLines));
  }
  return {};
}

std::string LogTails(Controller::State& st, const ServiceState& s, Color color) {
  std::string out;
  for (const InstanceStatus& i : st.processes.Instances(s.config->name, color)) {
    out += fmt::format("\nlast lines of {}:\n{}", i.spec.log_path,
                       ProcessSupervisor::TailLog(i.spec.log_path, kLogTailLines));
  }
  return out;
}

// The check context of the service, before its target is chosen.
CheckContext BaseContext(Controller::State& st, const ServiceConfig& sc) {
  CheckContext ctx;
  const std::vector<HostPort>& preview = st.router.bound_preview_addresses();
  const std::vector<HostPort>& live = st.router.bound_addresses();
  if (!preview.empty()) ctx.preview = preview.front();
  if (!live.empty()) ctx.live = live.front();
  ctx.host = sc.hosts.empty() || sc.hosts.front() == "*" ? "localhost" : sc.hosts.front();
  ctx.preview_token = st.config.preview.token;
  ctx.workdir = sc.driver.workdir.empty()
                    ? std::filesystem::path(st.config.file).parent_path().string()
                    : sc.driver.workdir;
  return ctx;
}

// Runs the live release's checks against each of its running instances
// after expand: a warm process (pooled connections, prepared statements)
// can break on a schema a fresh one copes with. Session checks compare two
// colors and are left out; with no other check, the health path is asked.
// Returns what passed; sets `problem` on a failure (or an abort).
asio::awaitable<std::string> VerifyLive(Controller::State& st, ServiceState& s, Deployment& d,
                                        std::string& problem) {
  const ServiceConfig& sc = *s.config;
  std::vector<CheckConfig> checks;
  for (const CheckConfig& c : sc.checks) {
    if (c.kind == CheckConfig::Kind::kHttp || c.kind == CheckConfig::Kind::kCommand) {
      checks.push_back(c);
    }
  }
  if (checks.empty()) {
    CheckConfig health;
    health.kind = CheckConfig::Kind::kHttp;
    health.http.path = sc.health.path;
    health.name = "health GET " + sc.health.path;
    health.timeout = sc.health.timeout;
    health.retries = 1;
    health.retry_interval = Millis(200);
    checks.push_back(std::move(health));
  }
  const std::string& label = s.slots[static_cast<int>(s.live)].release;
  const std::string release = label.empty() ? std::string("the live release") : label;
  // Copies: the pool may be replaced while a check runs.
  const std::vector<TargetPtr> targets = s.targets[static_cast<int>(s.live)];
  CheckContext ctx = BaseContext(st, sc);
  ctx.preview_token.clear();  // the instances are asked directly
  ctx.release = release;
  for (const TargetPtr& t : targets) {
    ctx.preview = t->address;
    for (const CheckConfig& check : checks) {
      std::variant<CheckResult, std::monostate> raced =
          co_await (RunCheck(check, ctx) || WaitForAbort(d, st));
      if (raced.index() == 1 || d.abort_requested || st.shutting_down) {
        problem = "aborted";
        co_return std::string();
      }
      const CheckResult& result = std::get<0>(raced);
      if (!result.passed) {
        problem = fmt::format(
            "verify-live: the live release {} fails {} on {} after expand: {}. The expanded "
            "schema breaks the release that takes the traffic now: fix it forward at once "
            "(a new expand file, or a release that copes){}",
            release, result.name, t->address_text, result.message,
            result.output.empty() ? std::string() : "\noutput:\n" + result.output);
        co_return std::string();
      }
    }
  }
  co_return fmt::format("{} check(s) passed on each of {} running instance(s) of {}", checks.size(),
                        targets.size(), release);
}

// Why `now` breaks the thresholds, judged against `before` (the previous
// release's figures before the switch); empty when it does not.
std::string Breach(const ObserveConfig& ob, const Figures& now,
                   const std::optional<Figures>& before, std::string_view old_release) {
  if (ob.max_error_rate && now.error_rate > *ob.max_error_rate) {
    return fmt::format("error rate {} ({} of {} requests) > max_error_rate {}",
                       FormatRate(now.error_rate), now.errors, now.requests,
                       FormatRate(*ob.max_error_rate));
  }
  const bool comparable = before && before->requests >= ob.min_requests;
  if (ob.max_error_rate_increase && comparable &&
      now.error_rate - before->error_rate > *ob.max_error_rate_increase) {
    return fmt::format(
        "error rate {} ({} of {} requests) is {} points above {}'s {} before the switch > "
        "max_error_rate_increase {}",
        FormatRate(now.error_rate), now.errors, now.requests,
        FormatRate(now.error_rate - before->error_rate), old_release,
        FormatRate(before->error_rate), FormatRate(*ob.max_error_rate_increase));
  }
  if (ob.max_p99 && now.p99_us > static_cast<uint64_t>(ob.max_p99->count()) * 1000) {
    return fmt::format("p99 {} > max_p99 {}", FormatLatency(now.p99_us),
                       FormatDuration(*ob.max_p99));
  }
  if (ob.max_p99_ratio && comparable && before->p99_us > 0 &&
      static_cast<double>(now.p99_us) > *ob.max_p99_ratio * static_cast<double>(before->p99_us)) {
    return fmt::format("p99 {} is {:.1f}x {}'s {} before the switch > max_p99_ratio {:g}",
                       FormatLatency(now.p99_us),
                       static_cast<double>(now.p99_us) / static_cast<double>(before->p99_us),
                       old_release, FormatLatency(before->p99_us), *ob.max_p99_ratio);
  }
  return {};
}

// An analysis check: a steady stream of requests at the preview, and the
// idle color's figures judged with the observe thresholds, the live
// color's figures of the last interval as the comparison.
asio::awaitable<CheckResult> RunAnalysis(ServiceState& s, const CheckConfig& check,
                                         const CheckContext& ctx) {
  const ObserveConfig& ob = s.config->observe;
  CheckResult result;
  result.name = CheckName(check);
  result.attempts = 1;
  std::vector<CheckRequest> requests = check.requests;
  if (check.replay > 0) {
    for (std::string& path : s.recent->Sample(static_cast<size_t>(check.replay))) {
      CheckRequest r;
      r.path = std::move(path);
      requests.push_back(std::move(r));
    }
    if (requests.empty()) {
      result.message = fmt::format(
          "no live GET request to replay yet (one in {} is kept); give requests instead, or "
          "deploy again once the live release has had traffic",
          RecentPaths::kEvery);
      co_return result;
    }
  }
  std::vector<TrafficSample> samples =
      co_await DriveTraffic(requests, check.rate, check.duration, check.timeout, ctx);
  StatsSnapshot measured;
  // No answer counts as the 502 the router would have sent.
  for (const TrafficSample& t : samples)
    measured.RecordResponse(t.status == 0 ? 502 : t.status, t.latency_us);
  const Figures figures =
      Between(StatsSnapshot{}, measured, static_cast<double>(check.duration.count()) / 1000.0);
  const std::string& label = s.slots[static_cast<int>(s.live)].release;
  const std::string live = label.empty() ? std::string("the live release") : label;
  std::optional<Figures> before;
  if (s.released) {
    before = s.figures[static_cast<int>(s.live)].Last(ob.interval.count(), SteadyMs());
  }
  const std::string live_figures =
      !s.released ? std::string("nothing live to compare with")
                  : fmt::format("{} live: {}", live,
                                before ? before->ToString() : std::string("no figures"));
  const std::string replayed =
      check.replay > 0 ? fmt::format(" ({} replayed live paths)", requests.size()) : std::string();
  const std::string summary = fmt::format("{} at the preview{}: {}; {}", ctx.release, replayed,
                                          figures.ToString(), live_figures);
  if (figures.requests == 0) {
    result.message = "no request could be sent to the preview";
    co_return result;
  }
  std::string breach = Breach(ob, figures, before, live);
  result.passed = breach.empty();
  result.message = result.passed ? summary : breach + "; " + summary;
  co_return result;
}

// Runs one check of the check step: analysis here, the others in src/checks.
asio::awaitable<CheckResult> RunStepCheck(ServiceState& s, const CheckConfig& check,
                                          const CheckContext& ctx) {
  if (check.kind == CheckConfig::Kind::kAnalysis) co_return co_await RunAnalysis(s, check, ctx);
  co_return co_await RunCheck(check, ctx);
}

struct ObserveVerdict {
  bool keep = true;  // false: switch back
  std::string message;
};

// Watches the new live color for the observe window: the figures of the
// sliding interval (and, at the end, of the whole window) against the
// thresholds and the previous release's figures before the switch.
asio::awaitable<ObserveVerdict> Observe(Controller::State& st, ServiceState& s, Deployment& d,
                                        StepJournal& journal, Color from, int64_t switched_ms) {
  const ObserveConfig& ob = s.config->observe;
  const std::string& old_label = s.slots[static_cast<int>(from)].release;
  const std::string old_release =
      old_label.empty() ? std::string("the previous release") : old_label;
  const std::string& release = d.record.release;
  const FigureHistory& history = s.figures[static_cast<int>(d.record.color)];
  const std::optional<Figures> before =
      s.figures[static_cast<int>(from)].Last(ob.interval.count(), switched_ms);
  const std::string baseline = fmt::format("{} before the switch: {}", old_release,
                                           before ? before->ToString() : "no figures");
  const int64_t until = switched_ms + ob.window.count();
  int64_t last_report = 0;
  for (;;) {
    co_await Nap(d, Millis(1000));
    if (st.shutting_down) co_return ObserveVerdict{true, "the daemon is stopping"};
    if (d.abort_requested) {
      std::string who = d.abort_actor.empty() ? std::string("request") : d.abort_actor;
      co_return ObserveVerdict{false, fmt::format("aborted by {} while observing", who)};
    }
    const int64_t now = SteadyMs();
    std::optional<Figures> window = history.Between(switched_ms, now);
    const std::string so_far = window ? window->ToString() : std::string("no figures");
    if (d.promote_requested) {
      co_return ObserveVerdict{
          true, fmt::format("promoted while observing; {}: {}; {}", release, so_far, baseline)};
    }
    std::optional<Figures> sliding =
        history.Between(std::max(switched_ms, now - ob.interval.count()), now);
    if (sliding && sliding->requests >= ob.min_requests) {
      if (std::string breach = Breach(ob, *sliding, before, old_release); !breach.empty()) {
        const double span =
            static_cast<double>(std::min<int64_t>(ob.interval.count(), now - switched_ms)) / 1000;
        co_return ObserveVerdict{false, fmt::format("{} over the last {:.1f}s: {}; {}", release,
                                                    span, breach, baseline)};
      }
    }
    const bool report = now - last_report >= 5000;
    if (report) last_report = now;
    if (now < until) {
      if (report) {
        journal.Update("running", fmt::format("{} so far: {}; {}; until {}", release, so_far,
                                              baseline, ClockTime(NowUnixMs() + (until - now))));
      }
      continue;
    }
    const bool enough = window && window->requests >= ob.min_requests;
    if (enough) {
      if (std::string breach = Breach(ob, *window, before, old_release); !breach.empty()) {
        co_return ObserveVerdict{false, fmt::format("{} over {}: {}; {}", release,
                                                    FormatDuration(ob.window), breach, baseline)};
      }
      co_return ObserveVerdict{
          true, fmt::format("healthy over {:.1f}s: {}; {}", (now - switched_ms) / 1000.0,
                            window->ToString(), baseline)};
    }
    std::string why =
        fmt::format("inconclusive: {} request(s) in {:.1f}s, fewer than min_requests {}",
                    window ? window->requests : 0, (now - switched_ms) / 1000.0, ob.min_requests);
    switch (ob.on_inconclusive) {
      case ObserveConfig::OnInconclusive::kPromote:
        co_return ObserveVerdict{true, why + "; kept (on_inconclusive: promote)"};
      case ObserveConfig::OnInconclusive::kRollback:
        co_return ObserveVerdict{false, why + " (on_inconclusive: rollback)"};
      case ObserveConfig::OnInconclusive::kWait:
        if (report) {
          journal.Update("running", why + "; waiting for traffic (on_inconclusive: wait)");
        }
        break;
    }
  }
}

}  // namespace

Result<DeploymentRecord> Controller::Deploy(DeployRequest req) {
  State& st = *state_;
  ServiceState* s = st.Find(req.service);
  if (s == nullptr) {
    return std::unexpected(NoSuchService(req.service));
  }
  if (Status valid = ValidateRelease(req.release); !valid) return std::unexpected(valid.error());
  if (st.shutting_down) {
    return MakeError(ErrorCode::kUnavailable, "the daemon is stopping; deploy after it restarts");
  }
  const ServiceConfig& sc = *s->config;
  if (s->active) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("service '{}': deployment {} of {} is already running (step {})",
                                 sc.name, s->active->record.id, s->active->record.release, [&] {
                                   for (const StepRecord& step : s->active->record.steps) {
                                     if (step.outcome == "running" || step.outcome == "waiting") {
                                       return step.name;
                                     }
                                   }
                                   return std::string("prepare");
                                 }()));
  }
  auto d = std::make_shared<Deployment>();
  d->first = !s->released;
  const Color color = d->first ? s->live : Other(s->live);
  ReleaseSpec& spec = d->spec;
  spec.driver = sc.driver.type;
  if (sc.driver.type == DriverType::kProcess) {
    if (!req.targets.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("service '{}' runs its releases as processes; targets are "
                                   "for the static driver",
                                   sc.name));
    }
    spec.command = req.command.empty() ? sc.driver.command : req.command;
    spec.env = sc.driver.env;
    for (const auto& [k, v] : req.env) {
      if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0])) ||
          k.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
              std::string::npos) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("env: {} is not a valid variable name", Quoted(k)));
      }
      if (k == "PORT" || k.starts_with("CUTOVER_")) {
        return MakeError(ErrorCode::kInvalidArgument,
                         fmt::format("env: {} is set by cutover for every instance", Quoted(k)));
      }
      spec.env.emplace_back(k, v);
    }
    spec.instances = sc.driver.instances;
  } else {
    if (!req.command.empty() || !req.env.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("service '{}' uses the static driver: cutover does not run "
                                   "its releases, so a command or environment does not apply",
                                   sc.name));
    }
    spec.targets = req.targets;
    if (spec.targets.empty()) {
      spec.targets = color == Color::kBlue ? sc.driver.blue : sc.driver.green;
    }
    if (spec.targets.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("service '{}' has no {} targets in its configuration; give "
                                   "the release's targets (--targets host:port,...)",
                                   sc.name, ColorName(color)));
    }
    const std::vector<TargetPtr>& live_pool = s->targets[static_cast<int>(s->live)];
    for (const HostPort& hp : spec.targets) {
      for (const TargetPtr& t : live_pool) {
        if (!d->first && t->address == hp) {
          return MakeError(ErrorCode::kInvalidArgument,
                           fmt::format("target {} serves the live color ({}); the new release "
                                       "needs targets of its own",
                                       hp.ToString(), ColorName(s->live)));
        }
      }
    }
  }
  d->record.service = sc.name;
  d->record.release = req.release;
  d->record.color = color;
  d->record.actor = req.actor.empty() ? "api" : req.actor;
  d->record.spec_json = spec.ToJson();
  for (std::string_view step :
       PlannedSteps(false, sc.migrations.has_value(), sc.observe.window.count() > 0)) {
    d->record.steps.push_back({std::string(step), "pending", 0, 0, ""});
  }
  d->record.started_unix_ms = NowUnixMs();
  Result<int64_t> id = st.store.CreateDeployment(d->record);
  if (!id) return std::unexpected(id.error().Wrap("journal the deployment"));
  d->record.id = *id;
  d->wake = std::make_unique<asio::steady_timer>(st.control);
  s->active = d;
  LogInfo("service '{}': deployment {} of {} to {} started by {}", sc.name, *id, req.release,
          ColorName(color), d->record.actor);
  asio::co_spawn(st.control, RunDeployment(sc.name, *id), asio::detached);
  return d->record;
}

Result<DeploymentRecord> Controller::Rollback(std::string_view service, std::string_view actor,
                                              bool force) {
  State& st = *state_;
  ServiceState* s = st.Find(service);
  if (s == nullptr) {
    return std::unexpected(NoSuchService(service));
  }
  if (s->active) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("service '{}': deployment {} of {} is running; abort it instead "
                                 "(live traffic has not moved)",
                                 service, s->active->record.id, s->active->record.release));
  }
  const Color prev = Other(s->live);
  const SlotRecord& slot = s->slots[static_cast<int>(prev)];
  // A static color's configured targets have no label but a stored spec.
  bool has_spec = !slot.spec_json.empty();
  if (!has_spec && s->targets[static_cast<int>(prev)].empty()) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("service '{}': there is no previous release on {} to roll "
                                 "back to",
                                 service, ColorName(prev)));
  }
  auto d = std::make_shared<Deployment>();
  d->rollback = true;
  d->force = force;
  if (has_spec) {
    Result<ReleaseSpec> spec = ReleaseSpec::FromJson(slot.spec_json);
    if (!spec) return std::unexpected(spec.error());
    d->spec = *spec;
  } else {
    d->spec.driver = DriverType::kStatic;
    for (const TargetPtr& t : s->targets[static_cast<int>(prev)]) {
      d->spec.targets.push_back(t->address);
    }
  }
  d->spec.retire_at_unix_ms = 0;
  d->record.service = std::string(service);
  d->record.release = slot.release.empty() ? "(configured)" : slot.release;
  d->record.color = prev;
  d->record.actor = actor.empty() ? "api" : std::string(actor);
  d->record.spec_json = d->spec.ToJson();
  d->record.message = fmt::format("rollback from {} to {}",
                                  s->slots[static_cast<int>(s->live)].release.empty()
                                      ? std::string("the live release")
                                      : s->slots[static_cast<int>(s->live)].release,
                                  d->record.release);
  for (std::string_view step : PlannedSteps(true, s->config->migrations.has_value(), false)) {
    d->record.steps.push_back({std::string(step), "pending", 0, 0, ""});
  }
  d->record.started_unix_ms = NowUnixMs();
  Result<int64_t> id = st.store.CreateDeployment(d->record);
  if (!id) return std::unexpected(id.error().Wrap("journal the rollback"));
  d->record.id = *id;
  d->wake = std::make_unique<asio::steady_timer>(st.control);
  s->active = d;
  asio::co_spawn(st.control, RunDeployment(std::string(service), *id), asio::detached);
  return d->record;
}

Result<DeploymentRecord> Controller::Promote(std::string_view service, std::string_view actor) {
  ServiceState* s = state_->Find(service);
  if (s == nullptr) {
    return std::unexpected(NoSuchService(service));
  }
  if (!s->active || s->active->rollback) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("service '{}' has no deployment waiting for approval or "
                                 "being observed",
                                 service));
  }
  s->active->promote_requested = true;
  s->active->wake->cancel();
  LogInfo("service '{}': deployment {} promoted by {}", service, s->active->record.id, actor);
  return s->active->record;
}

Result<DeploymentRecord> Controller::Abort(std::string_view service, std::string_view actor) {
  ServiceState* s = state_->Find(service);
  if (s == nullptr) {
    return std::unexpected(NoSuchService(service));
  }
  if (!s->active) {
    return MakeError(ErrorCode::kConflict,
                     fmt::format("service '{}' has no deployment running", service));
  }
  const bool observing = std::any_of(
      s->active->record.steps.begin(), s->active->record.steps.end(),
      [](const StepRecord& step) { return step.name == "observe" && step.outcome == "running"; });
  for (const StepRecord& step : s->active->record.steps) {
    if (step.name == "switch" && step.outcome != "pending" && !observing) {
      return MakeError(ErrorCode::kConflict,
                       fmt::format("service '{}': deployment {} has already switched; use "
                                   "rollback to go back",
                                   service, s->active->record.id));
    }
  }
  s->active->abort_requested = true;
  s->active->abort_actor = std::string(actor);
  s->active->wake->cancel();
  if (s->active->migration) s->active->migration->Cancel();
  return s->active->record;
}

Result<std::vector<DeploymentRecord>> Controller::Deployments(std::string_view service,
                                                              int limit) const {
  if (state_->Find(service) == nullptr) {
    return std::unexpected(NoSuchService(service));
  }
  return state_->store.Deployments(service, limit);
}

Result<DeploymentRecord> Controller::GetDeployment(std::string_view service, int64_t id) const {
  if (state_->Find(service) == nullptr) {
    return std::unexpected(NoSuchService(service));
  }
  Result<DeploymentRecord> d = state_->store.Deployment(id);
  if (!d && d.error().code != ErrorCode::kNotFound) return d;
  if (!d || d->service != service) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("service '{}' has no deployment {}", service, id));
  }
  return d;
}

uint64_t Controller::Subscribe(std::function<void(const DeploymentEvent&)> listener) {
  uint64_t id = ++state_->next_listener;
  state_->listeners.emplace(id, std::move(listener));
  return id;
}

void Controller::Unsubscribe(uint64_t id) { state_->listeners.erase(id); }

asio::awaitable<void> Controller::Shutdown(bool keep_instances) {
  State& st = *state_;
  // From here on the deployments' own coroutines stop writing the journal.
  st.shutting_down = true;
  if (st.sampler) st.sampler->cancel();
  for (ServiceState& s : st.services) {
    if (s.retire_timer) s.retire_timer->cancel();
    if (s.contract_run) s.contract_run->Cancel();
    if (!s.active) continue;
    if (s.active->migration) s.active->migration->Cancel();
    DeploymentRecord& r = s.active->record;
    r.outcome = "interrupted";
    r.message = "the daemon stopped during this deployment; live traffic stayed where it was";
    r.finished_unix_ms = NowUnixMs();
    for (StepRecord& step : r.steps) {
      if (step.outcome == "running" || step.outcome == "waiting") step.outcome = "interrupted";
      if (step.outcome == "pending") step.outcome = "skipped";
    }
    Status saved = st.store.UpdateDeployment(r);
    if (!saved) LogWarn("deployment {}: journal: {}", r.id, saved.error().message);
    st.Emit({r.id, r.service, r.release, "finished", "", r.outcome, 0, r.message, NowUnixMs()});
    if (!s.active->first || r.color != s.live || !s.released) {
      // The candidate never went live: it does not outlive the daemon.
      SlotRecord& slot = s.slots[static_cast<int>(r.color)];
      if (slot.release == r.release && !(r.color == s.live && s.released)) {
        slot.state = "stopped";
        st.SaveSlot(s, r.color);
        co_await st.processes.Stop(s.config->name, r.color);
      }
    }
    s.active->wake->cancel();
  }
  if (!keep_instances) co_await st.processes.StopAll();
}

asio::awaitable<void> Controller::RunDeployment(std::string service, int64_t id) {
  State& st = *state_;
  ServiceState* sp = st.Find(service);
  if (sp == nullptr || !sp->active || sp->active->record.id != id) co_return;
  ServiceState& s = *sp;
  std::shared_ptr<Deployment> dp = s.active;
  Deployment& d = *dp;
  const ServiceConfig& sc = *s.config;
  const Color color = d.record.color;
  const bool process = d.spec.driver == DriverType::kProcess;
  StepJournal journal(st, d);
  SlotRecord previous_slot = s.slots[static_cast<int>(color)];
  bool started = false;

  // Ends the deployment before its switch: candidate stopped, live untouched.
  // `live_untouched`: false when a step already changed what the live
  // release sees (verify-live found the expanded schema breaks it).
  auto fail = [&](std::string outcome, std::string message,
                  bool live_untouched = true) -> asio::awaitable<void> {
    if (!journal.current().empty()) {
      StepRecord* step = nullptr;
      for (StepRecord& r : d.record.steps) {
        if (r.name == journal.current()) step = &r;
      }
      if (step != nullptr && (step->outcome == "running" || step->outcome == "waiting")) {
        journal.End(outcome == "aborted" ? "aborted" : "failed", message);
      }
    }
    if (st.shutting_down) co_return;
    if (started && !(d.rollback && previous_slot.state == "running")) {
      st.SetTargets(s, color, {});
      co_await PublishTable(st);
      if (process) co_await st.processes.Stop(sc.name, color);
      SlotRecord& slot = s.slots[static_cast<int>(color)];
      slot = d.rollback ? previous_slot : SlotRecord{};
      if (d.rollback) slot.state = "stopped";
      st.SaveSlot(s, color);
    }
    s.active.reset();
    // A first deployment had the preview on the color it landed on.
    if (d.first) co_await PublishTable(st);
    // The step holds the whole story (log tails, output); the summary is its
    // first line.
    std::string summary = message.substr(0, message.find('\n'));
    if (live_untouched) summary += " (live traffic is untouched)";
    journal.Finish(outcome, std::move(summary));
    LogWarn("service '{}': deployment {} of {} {}: {}", sc.name, id, d.record.release, outcome,
            message);
  };
  auto aborted = [&] { return d.abort_requested || st.shutting_down; };
  auto abort_message = [&] {
    return fmt::format("aborted by {}", d.abort_actor.empty() ? "request" : d.abort_actor);
  };

  // --- prepare -------------------------------------------------------------
  if (!d.rollback) {
    journal.Begin("prepare");
    std::string message;
    SlotRecord& slot = s.slots[static_cast<int>(color)];
    if (d.first) {
      message = fmt::format(
          "first release of {}: it lands on {} and goes live once healthy "
          "and checked",
          sc.name, ColorName(color));
    } else if (slot.state == "running" || slot.state == "starting" ||
               (process && !s.targets[static_cast<int>(color)].empty())) {
      if (s.retire_timer) s.retire_timer->cancel();
      std::string old = slot.release.empty() ? std::string("the configured targets") : slot.release;
      st.SetTargets(s, color, {});
      co_await PublishTable(st);
      if (process) co_await st.processes.Stop(sc.name, color);
      slot.state = "stopped";
      st.SaveSlot(s, color);
      message = fmt::format("retired {} (the previous rollback slot) from {}; {} stays live", old,
                            ColorName(color), ColorName(s.live));
    } else {
      message =
          fmt::format("deploying to {} (idle); {} stays live", ColorName(color), ColorName(s.live));
    }
    journal.End("ok", message);
    if (aborted()) {
      co_await fail("aborted", abort_message());
      co_return;
    }
  }
  // --- expand, verify-live -----------------------------------------------
  if (!d.rollback && sc.migrations) {
    journal.Begin("expand");
    Result<RunReport> report = co_await RunStepPhase(st, sc, d, journal, Phase::kExpand);
    if (!report) {
      co_await fail("failed", "expand: " + report.error().message);
      co_return;
    }
    if (!report->ok) {
      std::string message = "expand: " + report->error;
      for (const LintFinding& f : report->lint) {
        if (f.severity == Severity::kError && !f.allowed) message += "\n" + f.ToString();
      }
      // Both arguments are made first: GCC 12 destroys a conditional's
      // temporaries twice inside a co_await expression.
      std::string outcome = aborted() ? "aborted" : "failed";
      if (aborted()) message = abort_message() + " during expand: " + report->error;
      co_await fail(std::move(outcome), std::move(message));
      co_return;
    }
    Result<DatabaseStatus> status = co_await ReadMigrationsOffThread(st, sc);
    if (!status) {
      co_await fail("failed", "expand: " + status.error().message);
      co_return;
    }
    RecordMigrations(*status, d.spec);
    d.record.spec_json = d.spec.ToJson();
    std::string message = DescribeRun(*report);
    if (!d.spec.contract.empty()) {
      message += fmt::format("\n{} contract file(s) run once the release before is gone",
                             d.spec.contract.size());
    }
    journal.End("ok", std::move(message));
    if (aborted()) {
      co_await fail("aborted", abort_message());
      co_return;
    }

    journal.Begin("verify-live");
    if (d.first || !s.released) {
      journal.End("skipped", "nothing is live yet");
    } else {
      std::string problem;
      std::string summary = co_await VerifyLive(st, s, d, problem);
      if (!problem.empty()) {
        std::string outcome = aborted() ? "aborted" : "failed";
        if (aborted()) problem = abort_message() + " during verify-live";
        co_await fail(std::move(outcome), std::move(problem), /*live_untouched=*/aborted());
        co_return;
      }
      journal.End("ok", std::move(summary));
    }
    if (aborted()) {
      co_await fail("aborted", abort_message());
      co_return;
    }
  }

  // --- schema (rollback) -------------------------------------------------
  if (d.rollback && sc.migrations) {
    journal.Begin("schema");
    if (d.force) {
      journal.End("skipped", "forced: the schema is not checked");
    } else {
      Result<DatabaseStatus> status = co_await ReadMigrationsOffThread(st, sc);
      if (!status) {
        co_await fail("failed",
                      fmt::format("cannot check the schema: {}; force the rollback to go back "
                                  "without the check",
                                  status.error().message));
        co_return;
      }
      if (std::string refusal = SchemaRefusal(*status, d.spec, d.record.release);
          !refusal.empty()) {
        co_await fail("failed",
                      fmt::format("refused: {} (cutover rollback {} --force)", refusal, sc.name));
        co_return;
      }
      journal.End("ok", fmt::format("no contract migration has run since {}", d.record.release));
    }
  }

  // --- start ---------------------------------------------------------------
  const bool already_running =
      d.rollback && !s.targets[static_cast<int>(color)].empty() && previous_slot.state != "stopped";
  journal.Begin("start");
  if (already_running) {
    journal.End("skipped", fmt::format("{} still runs on {}", d.record.release, ColorName(color)));
  } else {
    std::vector<TargetPtr> targets;
    std::string message;
    if (process) {
      Result<std::vector<uint16_t>> ports = StartInstances(st, s, color, d.record.release, d.spec);
      started = true;
      if (!ports) {
        co_await fail("failed", ports.error().message);
        co_return;
      }
      std::vector<std::string> listed;
      for (uint16_t port : *ports) {
        Result<TargetPtr> t = st.MakeTarget(s, color, {"127.0.0.1", port}, false);
        if (!t) {
          co_await fail("failed", t.error().message);
          co_return;
        }
        targets.push_back(*t);
        listed.push_back(std::to_string(port));
      }
      message = fmt::format("{} instance(s) of {} on {}, port(s) {}", ports->size(),
                            d.record.release, ColorName(color), fmt::join(listed, ", "));
    } else {
      started = true;
      std::vector<std::string> listed;
      for (const HostPort& hp : d.spec.targets) {
        Result<TargetPtr> t = st.MakeTarget(s, color, hp, false);
        if (!t) {
          co_await fail("failed", t.error().message);
          co_return;
        }
        targets.push_back(*t);
        listed.push_back(hp.ToString());
      }
      message =
          fmt::format("{} on {}: {}", d.record.release, ColorName(color), fmt::join(listed, ", "));
    }
    st.SetTargets(s, color, std::move(targets));
    SlotRecord& slot = s.slots[static_cast<int>(color)];
    d.record.spec_json = d.spec.ToJson();
    slot = SlotRecord{d.record.release, "starting", d.record.spec_json, 0};
    st.SaveSlot(s, color);
    co_await PublishTable(st);
    journal.End("ok", message);
  }

  // --- healthy -------------------------------------------------------------
  journal.Begin("healthy");
  {
    const auto deadline = SteadyClock::now() + sc.health.deadline;
    for (;;) {
      const std::vector<TargetPtr>& pool = s.targets[static_cast<int>(color)];
      bool all = !pool.empty() && std::all_of(pool.begin(), pool.end(), [](const TargetPtr& t) {
        return t->healthy.load(std::memory_order_relaxed);
      });
      if (all) {
        journal.End("ok", fmt::format("{} of {} target(s) healthy", pool.size(), pool.size()));
        break;
      }
      if (aborted()) {
        co_await fail("aborted", abort_message());
        co_return;
      }
      if (process) {
        if (std::string crash = CrashingInstances(st, s, color); !crash.empty()) {
          co_await fail("failed", crash);
          co_return;
        }
      }
      if (SteadyClock::now() >= deadline) {
        std::string message =
            fmt::format("not healthy after {}: {}", FormatDuration(sc.health.deadline),
                        HealthProblem(st, s, color));
        if (process) message += LogTails(st, s, color);
        co_await fail("failed", message);
        co_return;
      }
      co_await Nap(d, kHealthPoll);
    }
  }

  // --- check ---------------------------------------------------------------
  if (!d.rollback) {
    journal.Begin("check");
    std::vector<std::string> passed;
    CheckContext ctx = BaseContext(st, sc);
    ctx.release = d.record.release;
    if (!sc.checks.empty() && st.router.bound_preview_addresses().empty()) {
      co_await fail("failed", "checks need the preview listener, which is off");
      co_return;
    }
    for (const CheckConfig& check : sc.checks) {
      if ((check.kind == CheckConfig::Kind::kSession ||
           (check.kind == CheckConfig::Kind::kAnalysis && check.replay > 0)) &&
          d.first) {
        passed.push_back(CheckName(check) + ": skipped (nothing is live yet)");
        continue;
      }
      journal.Update("running", fmt::format("running {}", CheckName(check)));
      // An abort cancels the check that is running (its command is killed).
      std::variant<CheckResult, std::monostate> raced =
          co_await (RunStepCheck(s, check, ctx) || WaitForAbort(d, st));
      if (raced.index() == 1) {
        co_await fail("aborted", abort_message() + " while " + CheckName(check) + " ran");
        co_return;
      }
      CheckResult result = std::get<0>(std::move(raced));
      if (aborted()) {
        co_await fail("aborted", abort_message());
        co_return;
      }
      if (!result.passed) {
        std::string message = fmt::format("{} failed: {}", result.name, result.message);
        if (!result.output.empty()) message += "\noutput:\n" + result.output;
        co_await fail("failed", message);
        co_return;
      }
      std::string note = result.attempts > 1      ? fmt::format(" (attempt {})", result.attempts)
                         : result.message.empty() ? std::string()
                                                  : " (" + result.message + ")";
      passed.push_back(fmt::format("{}: passed{}", result.name, note));
    }
    journal.End("ok", sc.checks.empty() ? std::string("no checks configured")
                                        : fmt::format("{}", fmt::join(passed, "; ")));

    // --- approve -------------------------------------------------------------
    journal.Begin("approve");
    const PromotionConfig& promotion = sc.promotion;
    if (promotion.mode == PromotionConfig::Mode::kAuto) {
      journal.End("ok", "promotion: auto");
    } else {
      const bool timed = promotion.mode == PromotionConfig::Mode::kAutoAfter;
      const auto until = SteadyClock::now() + promotion.auto_after;
      journal.Update(
          "waiting",
          timed
              ? fmt::format("goes on at {} unless promoted or aborted first (cutover promote "
                            "{} / cutover abort {})",
                            ClockTime(NowUnixMs() + promotion.auto_after.count()), sc.name, sc.name)
              : fmt::format("waiting for `cutover promote {}` (or `cutover abort {}`)", sc.name,
                            sc.name));
      for (;;) {
        if (aborted()) {
          co_await fail("aborted", abort_message());
          co_return;
        }
        if (d.promote_requested) {
          journal.End("ok", "promoted");
          break;
        }
        if (timed && SteadyClock::now() >= until) {
          journal.End("ok", fmt::format("promoted automatically after {}",
                                        FormatDuration(promotion.auto_after)));
          break;
        }
        co_await Nap(d, timed ? std::min<Millis>(Millis(1000), std::chrono::duration_cast<Millis>(
                                                                   until - SteadyClock::now()))
                              : Millis(60'000));
      }
    }
    // Approval took any promote sent so far; one sent from here on ends
    // the observe step.
    d.promote_requested = false;
    if (aborted()) {
      co_await fail("aborted", abort_message());
      co_return;
    }
  }

  // --- switch --------------------------------------------------------------
  journal.Begin("switch");
  const Color from = s.live;
  std::string detail =
      d.first ? fmt::format("first release {} live on {}", d.record.release, ColorName(color))
              : fmt::format("{} -> {} ({})", ColorName(from), ColorName(color), d.record.release);
  if (Status saved = st.store.SetLiveColor(
          sc.name, color,
          {0, 0, sc.name, d.rollback ? "rollback" : "deploy", d.record.actor, detail, "ok"});
      !saved) {
    co_await fail("failed", saved.error().message);
    co_return;
  }
  s.slots[static_cast<int>(color)].state = "running";
  st.SaveSlot(s, color);
  s.live = color;
  s.released = true;
  if (!d.first) {
    SlotRecord& old = s.slots[static_cast<int>(from)];
    if (!s.targets[static_cast<int>(from)].empty()) {
      Result<ReleaseSpec> old_spec = ReleaseSpec::FromJson(old.spec_json);
      ReleaseSpec spec = old_spec ? *old_spec : ReleaseSpec{};
      if (old.spec_json.empty()) {
        spec.driver = DriverType::kStatic;
        for (const TargetPtr& t : s.targets[static_cast<int>(from)]) {
          spec.targets.push_back(t->address);
        }
      }
      spec.retire_at_unix_ms = NowUnixMs() + sc.rollback_window.count();
      old.spec_json = spec.ToJson();
      if (old.state.empty()) old.state = "running";
      st.SaveSlot(s, from);
    }
  }
  co_await PublishTable(st);
  journal.End("ok", detail + "; every router worker routes by it");

  // --- observe ---------------------------------------------------------------
  if (!d.rollback && sc.observe.window.count() > 0) {
    journal.Begin("observe");
    if (d.first) {
      journal.End("skipped", "nothing was live before: there is nothing to go back to");
    } else {
      // A sample at the switch marks where the new release's figures begin.
      st.SampleFigures();
      const int64_t switched_ms = SteadyMs();
      ObserveVerdict verdict = co_await Observe(st, s, d, journal, from, switched_ms);
      if (st.shutting_down) co_return;
      if (verdict.keep) {
        journal.End("ok", verdict.message);
      } else {
        // The previous release still runs: going back is one more switch.
        std::string back = fmt::format("{} -> {} ({})", ColorName(color), ColorName(from),
                                       s.slots[static_cast<int>(from)].release);
        Status saved = st.store.SetLiveColor(
            sc.name, from, {0, 0, sc.name, "rollback", "daemon", back + ": observe", "ok"});
        if (!saved) {
          journal.End("failed",
                      verdict.message + "; switching back failed: " + saved.error().message);
          journal.Finish("failed", "observe judged against " + d.record.release +
                                       " but switching back failed: " + saved.error().message);
          s.active.reset();
          co_return;
        }
        s.live = from;
        SlotRecord& old = s.slots[static_cast<int>(from)];
        if (Result<ReleaseSpec> spec = ReleaseSpec::FromJson(old.spec_json); spec) {
          spec->retire_at_unix_ms = 0;
          old.spec_json = spec->ToJson();
        }
        old.state = "running";
        st.SaveSlot(s, from);
        // The rejected release stays on the idle color like any previous
        // release, for a look at it (or `cutover rollback` to it) until its
        // window closes.
        SlotRecord& rejected = s.slots[static_cast<int>(color)];
        d.spec.retire_at_unix_ms = NowUnixMs() + sc.rollback_window.count();
        rejected.spec_json = d.spec.ToJson();
        st.SaveSlot(s, color);
        co_await PublishTable(st);
        journal.End("failed", verdict.message + "; switched back: " + back);
        st.ArmRetire(s);
        s.active.reset();
        journal.Finish("rolled_back",
                       fmt::format("observe: {}; switched back to {} on {}",
                                   verdict.message.substr(0, verdict.message.find("; ")),
                                   s.slots[static_cast<int>(from)].release, ColorName(from)));
        LogWarn("service '{}': deployment {} of {} rolled back: {}", sc.name, id, d.record.release,
                verdict.message);
        co_return;
      }
    }
  }

  // --- backfill --------------------------------------------------------------
  // Data-only files run once the new release, which writes the new shape,
  // takes all the traffic. A failure here does not move traffic back.
  std::string backfill_problem;
  if (!d.rollback && sc.migrations) {
    journal.Begin("backfill");
    Result<RunReport> report = co_await RunStepPhase(st, sc, d, journal, Phase::kBackfill);
    if (!report || !report->ok) {
      backfill_problem = report ? report->error : report.error().message;
      journal.End("failed", fmt::format("{}\n{} stays live. Fix the file and run `cutover "
                                        "migrate backfill --service {}`; contract waits for it",
                                        backfill_problem, d.record.release, sc.name));
    } else {
      journal.End("ok", DescribeRun(*report));
    }
  }

  // --- settle --------------------------------------------------------------
  if (!d.rollback) {
    journal.Begin("settle");
    const SlotRecord& old = s.slots[static_cast<int>(from)];
    if (d.first) {
      journal.End("ok", "nothing was live before");
    } else if (s.targets[static_cast<int>(from)].empty()) {
      journal.End("ok", fmt::format("nothing runs on {} to keep", ColorName(from)));
    } else {
      std::string label = old.release.empty() ? "the previous release" : old.release;
      // The window began at the switch (observe and backfill came since).
      Result<ReleaseSpec> old_spec = ReleaseSpec::FromJson(old.spec_json);
      int64_t retire_at = old_spec && old_spec->retire_at_unix_ms != 0
                              ? old_spec->retire_at_unix_ms
                              : NowUnixMs() + sc.rollback_window.count();
      journal.End("ok", fmt::format("{} keeps running on {} until {} (rollback window {}); "
                                    "`cutover rollback {}` switches back at once",
                                    label, ColorName(from), ClockTime(retire_at),
                                    FormatDuration(sc.rollback_window), sc.name));
    }
  }
  st.ArmRetire(s);
  s.active.reset();
  // A first deployment had the preview on the color it landed on.
  if (d.first) co_await PublishTable(st);
  if (d.rollback) {
    // The release rolled back from keeps its record, marked as such.
    Result<std::vector<DeploymentRecord>> recent = st.store.Deployments(sc.name, 20);
    if (recent) {
      for (DeploymentRecord& r : *recent) {
        if (r.id != id && r.outcome == "succeeded" && r.color == from) {
          r.outcome = "rolled_back";
          r.message += (r.message.empty() ? "" : "; ") +
                       fmt::format("rolled back by {} (deployment {})", d.record.actor, id);
          Status saved = st.store.UpdateDeployment(r);
          if (!saved) LogWarn("deployment {}: journal: {}", r.id, saved.error().message);
          break;
        }
      }
    }
    journal.Finish("succeeded",
                   already_running
                       ? fmt::format("{}: {} was still running; switched back at once",
                                     d.record.message, d.record.release)
                       : fmt::format("{}: {} had been stopped; started it again, waited until "
                                     "healthy, then switched",
                                     d.record.message, d.record.release));
  } else {
    journal.Finish(
        "succeeded",
        fmt::format("{} is live on {}{}", d.record.release, ColorName(color),
                    backfill_problem.empty() ? std::string()
                                             : "; its backfill failed: " + backfill_problem));
  }
  LogInfo("service '{}': {} of {} finished: {}", sc.name, d.rollback ? "rollback" : "deployment",
          d.record.release, d.record.message);
  // The previous release was gone already: no rollback window to wait for
  // before contract. Not after a first release: contract files in the
  // folder then are more likely the next release's than its own, and
  // `cutover contract` runs them when they are meant.
  if (!d.rollback && !d.first && sc.migrations && !d.spec.contract.empty() && !st.shutting_down &&
      s.targets[static_cast<int>(Other(s.live))].empty() && !s.active) {
    Result<RunReport> report = co_await ContractLive(st, s, "daemon");
    if (!report) {
      LogWarn("service '{}': contract migrations: {}", sc.name, report.error().message);
    } else if (!report->ok) {
      LogWarn("service '{}': contract migrations: {}", sc.name, report->error);
    }
  }
}

}  // namespace cutover
