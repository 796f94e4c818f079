// The Controller's side of migrations: running a phase on the blocking pool,
// what a release ships with, when going back is refused, and the contract
// that follows the end of a rollback window. Control thread only (the runs
// themselves happen on the blocking pool).
#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.h"
#include "controller/controller_state.h"
#include "driver/process_supervisor.h"
#include "router/router.h"

namespace cutover {

namespace asio = boost::asio;

namespace {

Result<DatabaseUrl> UrlOf(const ServiceConfig& sc) {
  if (!sc.migrations) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("service '{}' has no migrations configured", sc.name));
  }
  return ParseDatabaseUrl(sc.migrations->database);
}

// The bodies that run on the blocking pool. Free functions, so that their
// arguments live in the coroutine frame (GCC 12 mishandles the captures of
// a coroutine lambda handed to co_spawn).
asio::awaitable<Result<RunReport>> RunOnPool(DatabaseUrl url, std::string dir, Phase phase,
                                             RunOptions options) {
  co_return RunMigrations(url, dir, phase, options);
}

asio::awaitable<Result<DatabaseStatus>> ReadOnPool(DatabaseUrl url, std::string dir) {
  co_return ReadMigrationStatus(url, dir);
}

}  // namespace

asio::awaitable<Result<RunReport>> RunMigrationPhase(Controller::State& st, const ServiceConfig& sc,
                                                     Phase phase, RunOptions options,
                                                     std::function<void(std::string)> progress) {
  Result<DatabaseUrl> url = UrlOf(sc);
  if (!url) co_return std::unexpected(url.error());
  options.lock_timeout = sc.migrations->lock_timeout;
  options.lock_wait = sc.migrations->lock_wait;
  asio::io_context& control = st.control;
  // Posted lines run on the control thread before the result resumes this
  // coroutine: both go through the same queue, in order.
  options.progress = [&control, progress](std::string_view line) {
    asio::post(control, [progress, text = std::string(line)] { progress(text); });
  };
  co_return co_await asio::co_spawn(st.blocking->get_executor(),
                                    RunOnPool(*url, sc.migrations->dir, phase, options),
                                    asio::use_awaitable);
}

asio::awaitable<Result<DatabaseStatus>> ReadMigrationsOffThread(Controller::State& st,
                                                                const ServiceConfig& sc) {
  Result<DatabaseUrl> url = UrlOf(sc);
  if (!url) co_return std::unexpected(url.error());
  co_return co_await asio::co_spawn(st.blocking->get_executor(),
                                    ReadOnPool(*url, sc.migrations->dir), asio::use_awaitable);
}

void RecordMigrations(const DatabaseStatus& status, ReleaseSpec& spec) {
  spec.migrations_recorded = true;
  spec.migrations_known.clear();
  spec.contract.clear();
  for (const MigrationState& m : status.files) {
    if (m.filename.empty()) continue;  // gone from the folder: not shipped with this release
    spec.migrations_known = std::max(spec.migrations_known, m.version);
    if (m.phase == Phase::kContract && m.state != "applied" && m.state != "changed") {
      spec.contract.push_back(m.version);
    }
  }
}

std::string SchemaRefusal(const DatabaseStatus& status, const ReleaseSpec& spec,
                          std::string_view release) {
  for (const MigrationState& m : status.files) {
    if (m.phase != Phase::kContract || !m.applied || m.applied->status != "succeeded") continue;
    // A release knows the contract files it shipped with: it was written to
    // live without what they remove.
    if (spec.migrations_recorded && m.version <= spec.migrations_known) continue;
    std::string name = m.filename.empty() ? m.version + "_" + m.name : m.filename;
    return fmt::format(
        "contract migration {} ran at {} (for release {}), and {} {}; it may depend on what "
        "that contract removed. Deploy a release that ships with it, or force",
        name, FormatUtcTime(m.applied->finished_unix_ms),
        m.applied->release.empty() ? std::string("-") : m.applied->release, release,
        spec.migrations_recorded
            ? fmt::format("only knows migrations up to {}", spec.migrations_known.empty()
                                                                ? std::string("none")
                                                                : spec.migrations_known)
            : std::string("was deployed without a record of its migrations"));
  }
  return {};
}

std::string DescribeRun(const RunReport& report) {
  std::string out;
  std::vector<std::string> applied;
  int64_t total = 0;
  for (const FileRun& f : report.files) {
    if (f.outcome != "applied") continue;
    applied.push_back(f.attempts > 1 ? fmt::format("{} (after {} attempts)", f.filename, f.attempts)
                                     : f.filename);
    total += f.elapsed_ms;
  }
  out = applied.empty() ? fmt::format("no {} files to run", PhaseName(report.phase))
                        : fmt::format("applied {} file(s) in {}: {}", applied.size(),
                                      FormatDuration(Millis(total)), fmt::join(applied, ", "));
  for (const LintFinding& f : report.lint) {
    if (f.allowed) {
      out += fmt::format("\nallowed: {}", f.ToString());
    } else if (f.severity == Severity::kWarning) {
      out += fmt::format("\nwarning: {}", f.ToString());
    }
  }
  return out;
}

asio::awaitable<void> RetirePrevious(Controller::State& st, ServiceState& s, std::string why) {
  const Color idle = Other(s.live);
  SlotRecord& slot = s.slots[static_cast<int>(idle)];
  const std::string release = slot.release;
  if (s.retire_timer) s.retire_timer->cancel();
  LogInfo("service '{}': {}; stopping {} on {}", s.config->name, why, release, ColorName(idle));
  st.SetTargets(s, idle, {});
  co_await PublishTable(st);
  if (s.config->driver.type == DriverType::kProcess) {
    co_await st.processes.Stop(s.config->name, idle);
  }
  s.slots[static_cast<int>(idle)].state = "stopped";
  st.SaveSlot(s, idle);
  std::string message = fmt::format("{}: previous release {} on {} was drained and stopped", why,
                                    release, ColorName(idle));
  Status audited = st.store.AppendAudit({0, 0, s.config->name, "retire", "daemon", message, "ok"});
  if (!audited) LogWarn("audit: {}", audited.error().message);
  st.Emit({0, s.config->name, release, "service", "", "ok", 0, message, NowUnixMs()});
}

asio::awaitable<Result<RunReport>> ContractLive(Controller::State& st, ServiceState& s,
                                                std::string actor) {
  const ServiceConfig& sc = *s.config;
  const SlotRecord& live = s.slots[static_cast<int>(s.live)];
  Result<ReleaseSpec> spec = ReleaseSpec::FromJson(live.spec_json);
  RunOptions options;
  options.release = live.release;
  // A release deployed with migrations runs the contract files it shipped
  // with; one deployed before has no record, and an explicit contract runs
  // every pending file.
  if (spec && spec->migrations_recorded) options.only = spec->contract;
  if (options.only && options.only->empty()) {
    RunReport nothing;
    nothing.phase = Phase::kContract;
    co_return nothing;
  }
  // The deployment that made the live release live carries the step.
  Result<std::vector<DeploymentRecord>> recent = st.store.Deployments(sc.name, 20);
  std::optional<DeploymentRecord> owner;
  if (recent) {
    for (DeploymentRecord& r : *recent) {
      if (r.release == live.release && r.color == s.live && r.outcome == "succeeded") {
        owner = std::move(r);
        break;
      }
    }
  }
  // Streamed while it runs, written to the owner's journal once it ended.
  auto emit = [&](std::string_view outcome, const std::string& message) {
    if (!owner) return;
    st.Emit({owner->id, sc.name, owner->release, "step", "contract", std::string(outcome), 0,
             message, NowUnixMs()});
  };
  const int64_t started = NowUnixMs();
  emit("running", fmt::format("contract migrations of {} (asked by {})", live.release, actor));
  s.contract_run = std::make_shared<RunCancel>();
  options.cancel = s.contract_run;
  Result<RunReport> report = co_await RunMigrationPhase(
      st, sc, Phase::kContract, options, [&](std::string line) { emit("running", line); });
  s.contract_run.reset();
  const bool ok = report && report->ok;
  const std::string message = !report       ? report.error().message
                              : !report->ok ? report->error + "\n" + DescribeRun(*report)
                                            : DescribeRun(*report);
  if (owner) {
    auto step = std::find_if(owner->steps.begin(), owner->steps.end(),
                             [](const StepRecord& r) { return r.name == "contract"; });
    // A run that found nothing left leaves the step of the run that did the work.
    const bool nothing_new = ok && report->files.empty() && step != owner->steps.end();
    if (!nothing_new) {
      StepRecord record{"contract", ok ? "ok" : "failed", started, NowUnixMs(), message};
      if (step == owner->steps.end()) {
        owner->steps.push_back(std::move(record));
      } else {
        *step = std::move(record);
      }
      Status saved = st.store.UpdateDeployment(*owner);
      if (!saved) LogWarn("deployment {}: journal: {}", owner->id, saved.error().message);
    }
    emit(ok ? "ok" : "failed", message);
  }
  if (!report) co_return report;
  Status audited = st.store.AppendAudit({0, 0, sc.name, "contract", actor,
                                         report->ok ? DescribeRun(*report) : report->error,
                                         report->ok ? "ok" : "failed"});
  if (!audited) LogWarn("audit: {}", audited.error().message);
  co_return report;
}

}  // namespace cutover
