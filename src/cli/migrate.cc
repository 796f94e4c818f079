// `cutover migrate`: status, plan and lint read; expand, backfill and
// contract apply. Progress goes to stderr, results to stdout.
#include "cli/migrate.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "api/json.h"
#include "cli/output.h"
#include "config/config.h"
#include "migrate/lint.h"
#include "migrate/runner.h"

namespace cutover {

namespace {

int ExitFor(const Error& e) {
  switch (e.code) {
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
      return kExitUnreachable;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
    case ErrorCode::kConflict:
      return kExitFailed;
    default:
      return kExitUsage;
  }
}

struct Target {
  DatabaseUrl url;
  std::string dir;
  RunOptions run;
};

Result<Target> ResolveTarget(const MigrateOptions& o) {
  Target t;
  if (!o.service.empty()) {
    if (!o.database.empty() || !o.dir.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "give either --service (database and folder from the config) or "
                       "--database and --dir, not both");
    }
    std::string path = o.config;
    if (path.empty()) {
      const char* env = std::getenv("CUTOVER_CONFIG");
      path = env != nullptr && *env != '\0' ? env : "cutover.yaml";
    }
    auto config = LoadConfig(path);
    if (!config) {
      std::string message = config.error().empty() ? path + ": invalid configuration"
                                                   : config.error().front().ToString();
      return MakeError(ErrorCode::kInvalidArgument, message);
    }
    const ServiceConfig* sc = config->FindService(o.service);
    if (sc == nullptr) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: no service named '{}'", path, o.service));
    }
    if (!sc->migrations) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}: service '{}' has no migrations (add migrations: "
                                   "{{database: URL, dir: PATH}})",
                                   path, o.service));
    }
    Result<DatabaseUrl> url = ParseDatabaseUrl(sc->migrations->database);
    if (!url) return std::unexpected(url.error());
    t.url = *url;
    t.dir = sc->migrations->dir;
    t.run.lock_timeout = sc->migrations->lock_timeout;
    t.run.lock_wait = sc->migrations->lock_wait;
  } else {
    if (o.dir.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "give --service S (with --config), or --dir DIR (and --database URL)");
    }
    t.dir = o.dir;
    if (!o.database.empty()) {
      Result<DatabaseUrl> url = ParseDatabaseUrl(o.database);
      if (!url) return std::unexpected(url.error());
      t.url = *url;
    } else if (o.action != "lint") {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("migrate {} needs the database: --database URL", o.action));
    }
  }
  if (!o.lock_wait.empty()) {
    Result<Millis> d = ParseDuration(o.lock_wait);
    if (!d) return std::unexpected(d.error().Wrap("--lock-wait"));
    t.run.lock_wait = *d;
  }
  if (!o.lock_timeout.empty()) {
    Result<Millis> d = ParseDuration(o.lock_timeout);
    if (!d || d->count() <= 0) {
      return MakeError(
          ErrorCode::kInvalidArgument,
          "--lock-timeout: " + (d ? std::string("must be more than 0") : d.error().message));
    }
    t.run.lock_timeout = *d;
  }
  t.run.release = o.release.empty() ? "manual" : o.release;
  return t;
}

Json FindingsJson(const std::vector<LintFinding>& findings) {
  Json out = Json::array();
  for (const LintFinding& f : findings) out.push_back(ToJson(f));
  return out;
}

void PrintFindings(const std::vector<LintFinding>& findings) {
  for (const LintFinding& f : findings) {
    fmt::print("{}: {}\n", f.severity == Severity::kError && !f.allowed ? "error" : "warning",
               f.ToString());
  }
}

int ErrorCount(const std::vector<LintFinding>& findings) {
  int n = 0;
  for (const LintFinding& f : findings) n += f.severity == Severity::kError && !f.allowed;
  return n;
}

std::string Applied(const MigrationState& s) {
  if (!s.applied) return "-";
  const AppliedMigration& a = *s.applied;
  int64_t when = a.finished_unix_ms != 0 ? a.finished_unix_ms : a.started_unix_ms;
  return fmt::format("{} by {}", FormatUtcTime(when), a.release.empty() ? "-" : a.release);
}

int PrintStatus(const Target& t, bool json) {
  Result<DatabaseStatus> status = ReadMigrationStatus(t.url, t.dir);
  if (!status) return Fail(ExitFor(status.error()), status.error().message);
  if (json) {
    Json files = Json::array();
    for (const MigrationState& s : status->files) {
      Json j = {{"version", s.version},
                {"name", s.name},
                {"filename", s.filename},
                {"phase", PhaseName(s.phase)},
                {"state", s.state}};
      if (s.applied) {
        j["release"] = s.applied->release;
        j["started_unix_ms"] = s.applied->started_unix_ms;
        j["finished_unix_ms"] = s.applied->finished_unix_ms;
        j["error"] = s.applied->error;
        j["allowed"] = s.applied->allowed;
      }
      files.push_back(std::move(j));
    }
    fmt::print("{}\n", Json{{"database", t.url.display}, {"dir", t.dir}, {"files", files}}.dump());
    return kExitOk;
  }
  fmt::print("database {}\nfolder   {}\n\n", t.url.display, t.dir);
  if (status->files.empty()) {
    fmt::print("no migration files\n");
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {{"VERSION", "PHASE", "STATE", "NAME", "APPLIED"}};
  for (const MigrationState& s : status->files) {
    rows.push_back({s.version, std::string(PhaseName(s.phase)), s.state, s.name, Applied(s)});
  }
  PrintTable(rows);
  for (const MigrationState& s : status->files) {
    if (s.applied && !s.applied->error.empty() && s.state != "applied") {
      fmt::print("\n{} {}:\n{}\n", s.filename.empty() ? s.version : s.filename, s.state,
                 s.applied->error);
    }
  }
  return kExitOk;
}

// The files a phase would run: pending, failed or interrupted ones.
std::vector<const MigrationFile*> Pending(const std::vector<MigrationFile>& files,
                                          const DatabaseStatus* status, Phase phase) {
  std::vector<const MigrationFile*> out;
  for (const MigrationFile& f : files) {
    if (f.phase != phase) continue;
    bool done = false;
    if (status != nullptr) {
      for (const MigrationState& s : status->files) {
        if (s.version == f.version && (s.state == "applied" || s.state == "changed")) done = true;
      }
    }
    if (!done) out.push_back(&f);
  }
  return out;
}

int PrintLint(const Target& t, bool json, bool plan) {
  Result<std::vector<MigrationFile>> files = LoadMigrations(t.dir);
  if (!files) return Fail(kExitUsage, files.error().message);
  std::optional<DatabaseStatus> status;
  if (!t.url.target.empty()) {
    Result<DatabaseStatus> read = ReadMigrationStatus(t.url, t.dir);
    if (!read) return Fail(ExitFor(read.error()), read.error().message);
    status = std::move(*read);
  }
  const Dialect dialect = t.url.target.empty() ? Dialect::kPostgres : t.url.dialect;
  // An applied file that changed since stops every run: the runner refuses.
  std::vector<std::string> changed;
  if (status) {
    for (const MigrationState& m : status->files) {
      if (m.state != "changed") continue;
      changed.push_back(
          fmt::format("{} was changed after it was applied; runs refuse until it "
                      "is restored (put the change in a new file)",
                      m.filename));
    }
  }
  std::vector<LintFinding> all;
  size_t linted = 0;
  Json phases = Json::object();
  for (Phase phase : {Phase::kExpand, Phase::kBackfill, Phase::kContract}) {
    std::vector<const MigrationFile*> pending = Pending(*files, status ? &*status : nullptr, phase);
    linted += pending.size();
    std::vector<LintFinding> findings;
    Json names = Json::array();
    for (const MigrationFile* f : pending) {
      std::vector<LintFinding> found = cutover::Lint(*f, dialect);
      findings.insert(findings.end(), found.begin(), found.end());
      names.push_back(f->filename);
    }
    if (plan && !json) {
      if (pending.empty()) {
        fmt::print("{}: nothing to run\n", PhaseName(phase));
      } else {
        fmt::print("{}: {} file(s) would run, in this order:\n", PhaseName(phase), pending.size());
        for (const MigrationFile* f : pending) {
          fmt::print("  {}{}\n", f->filename, f->options.no_transaction ? " (no transaction)" : "");
        }
      }
      for (const LintFinding& f : findings) {
        fmt::print("  {}: {}\n", f.severity == Severity::kError && !f.allowed ? "error" : "warning",
                   f.ToString());
      }
    }
    phases[std::string(PhaseName(phase))] = {{"files", names}, {"lint", FindingsJson(findings)}};
    all.insert(all.end(), findings.begin(), findings.end());
  }
  const int lint_errors = ErrorCount(all);
  const int errors = lint_errors + static_cast<int>(changed.size());
  if (json) {
    Json out = {{"errors", errors}, {"changed", changed}};
    if (plan) {
      out["phases"] = phases;
    } else {
      out["findings"] = FindingsJson(all);
    }
    fmt::print("{}\n", out.dump());
  } else {
    for (const std::string& c : changed) fmt::print("error: {}\n", c);
    if (!plan) {
      PrintFindings(all);
      fmt::print("{} file(s) linted{}: {} error(s), {} warning(s)\n", linted,
                 status ? " (those not applied yet)" : "", errors,
                 all.size() - static_cast<size_t>(lint_errors));
    }
  }
  return errors > 0 ? kExitFailed : kExitOk;
}

int Apply(Target& t, Phase phase, bool json) {
  t.run.progress = [](std::string_view line) {
    fmt::print(stderr, "{}\n", line);
    std::fflush(stderr);
  };
  Result<RunReport> report = RunMigrations(t.url, t.dir, phase, t.run);
  if (!report) return Fail(ExitFor(report.error()), report.error().message);
  if (json) {
    Json files = Json::array();
    for (const FileRun& f : report->files) {
      files.push_back({{"filename", f.filename},
                       {"outcome", f.outcome},
                       {"elapsed_ms", f.elapsed_ms},
                       {"attempts", f.attempts},
                       {"message", f.message}});
    }
    fmt::print("{}\n", Json{{"phase", PhaseName(phase)},
                            {"ok", report->ok},
                            {"error", report->error},
                            {"files", files},
                            {"lint", FindingsJson(report->lint)}}
                           .dump());
    return report->ok ? kExitOk : kExitFailed;
  }
  PrintFindings(report->lint);
  if (!report->ok) return Fail(kExitFailed, report->error);
  int64_t total = 0;
  for (const FileRun& f : report->files) total += f.elapsed_ms;
  if (report->files.empty()) {
    fmt::print("{}: nothing to run\n", PhaseName(phase));
  } else {
    fmt::print("{}: applied {} file(s) in {}\n", PhaseName(phase), report->files.size(),
               FormatDuration(Millis(total)));
  }
  return kExitOk;
}

}  // namespace

int RunMigrate(const MigrateOptions& options) {
  Result<Target> target = ResolveTarget(options);
  if (!target) return Fail(ExitFor(target.error()), target.error().message);
  if (options.action == "status") return PrintStatus(*target, options.json);
  if (options.action == "lint") return PrintLint(*target, options.json, false);
  if (options.action == "plan") {
    if (target->url.target.empty()) {
      return Fail(kExitUsage, "migrate plan needs the database: --database URL");
    }
    return PrintLint(*target, options.json, true);
  }
  std::optional<Phase> phase = ParsePhase(options.action);
  if (!phase) {
    return Fail(kExitUsage, fmt::format("unknown migrate action '{}' (status, plan, lint, expand, "
                                        "backfill, contract)",
                                        options.action));
  }
  return Apply(*target, *phase, options.json);
}

}  // namespace cutover
