// The migration runner: lint, integrity, then each pending file in order,
// with its history row written so that a failure, a crash or a second
// runner never applies a file twice.
#include "migrate/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include "migrate/db.h"
#include "migrate/lint.h"

namespace cutover {

namespace {

using SteadyClock = std::chrono::steady_clock;

int PhaseOrder(Phase p) { return static_cast<int>(p); }

Result<std::unique_ptr<MigrationDb>> Open(const DatabaseUrl& url, Millis busy_timeout,
                                          bool create) {
  if (url.dialect == Dialect::kPostgres) return OpenPostgres(url);
  return OpenSqlite(url, busy_timeout, create);
}

// "FILE:LINE: message [SQLSTATE x]" with the database's detail and hint.
std::string Located(const MigrationFile& f, const Statement& s, const DbError& e) {
  int line = s.line;
  if (e.position > 0) {
    int chars = 0;
    for (size_t i = 0; i < s.text.size() && chars < e.position - 1; ++i) {
      if ((static_cast<unsigned char>(s.text[i]) & 0xC0) != 0x80) ++chars;
      if (s.text[i] == '\n') ++line;
    }
  }
  std::string out = fmt::format("{}:{}: {}", f.filename, line, e.message);
  if (!e.sqlstate.empty()) out += fmt::format(" [SQLSTATE {}]", e.sqlstate);
  if (!e.detail.empty()) out += "\nDETAIL: " + e.detail;
  if (!e.hint.empty()) out += "\nHINT: " + e.hint;
  return out;
}

std::string AllowedText(const MigrationFile& f) {
  std::string out;
  for (const LintAllowance& a : f.options.allowances) {
    out += fmt::format("{}{} because {}", out.empty() ? "" : "; ", a.rule, a.reason);
  }
  return out;
}

// SHA-256 of the first `n` statements' text, to tell whether the applied
// part of a no-transaction file is still what ran.
std::string PrefixSha(const std::vector<Statement>& statements, int n) {
  std::string joined;
  for (int i = 0; i < n && i < static_cast<int>(statements.size()); ++i) {
    joined.append(statements[i].text);
    joined.push_back('\0');
  }
  return Sha256Hex(joined);
}

Millis RetryPause(int attempt) {
  return std::min<Millis>(Millis(250) * (1 << std::min(attempt - 1, 4)), Millis(4000));
}

class FileRunner {
 public:
  FileRunner(MigrationDb& db, const RunOptions& options,
             const std::function<void(std::string_view)>& progress)
      : db_(db), options_(options), progress_(progress) {}

  FileRun Run(const MigrationFile& f) {
    FileRun run;
    run.filename = f.filename;
    const auto started = SteadyClock::now();
    statements_ = SplitStatements(f.sql);
    allowed_ = AllowedText(f);
    if (f.options.no_transaction) {
      RunWithoutTransaction(f, run);
    } else {
      RunInTransaction(f, run);
    }
    run.elapsed_ms = std::chrono::duration_cast<Millis>(SteadyClock::now() - started).count();
    return run;
  }

 private:
  bool Cancelled() const { return options_.cancel && options_.cancel->cancelled(); }

  // A cancel stops the statement even when it comes between the check
  // before it and its start.
  ExecResult ExecStatement(const Statement& s) {
    if (!options_.cancel) return db_.Exec(s.text);
    return db_.ExecUnlessCancelled(s.text, options_.cancel->flag());
  }

  Millis LockTimeout(const MigrationFile& f) const {
    return f.options.lock_timeout.value_or(options_.lock_timeout);
  }

  void Fail(const MigrationFile& f, FileRun& run, std::string message, bool cancelled) {
    run.outcome = cancelled ? "cancelled" : "failed";
    run.message = std::move(message);
    Status marked = db_.MarkFailed(f, options_.release, allowed_, run.message);
    if (!marked)
      run.message += "\n(the history could not record it: " + marked.error().message + ")";
  }

  // True when the error is a lock timeout and another attempt is allowed;
  // waits before it.
  bool Retry(const MigrationFile& f, FileRun& run, const Statement* s, const DbError& e) {
    if (!e.lock_timeout || run.attempts > options_.lock_retries || Cancelled()) return false;
    Millis pause = RetryPause(run.attempts);
    progress_(fmt::format("{}:{}: lock timeout ({}); retrying in {} (attempt {} of {})", f.filename,
                          s != nullptr ? s->line : 1, e.message, FormatDuration(pause),
                          run.attempts + 1, options_.lock_retries + 1));
    std::this_thread::sleep_for(pause);
    ++run.attempts;
    return true;
  }

  // After a failed concurrent build of `index`: sets `left_index` to the
  // INVALID index the build left, when it was not there `before`; returns a
  // note for the error message when there is more to say.
  std::string AfterFailedBuild(const ConcurrentIndex& index,
                               const Result<std::optional<IndexInfo>>& before,
                               std::string& left_index) {
    if (!before) {
      return fmt::format("\n(cutover could not look for an INVALID index {} before the build: {})",
                         index.name, before.error().message);
    }
    if (*before) {
      if ((*before)->valid) return "";
      return fmt::format(
          "\n(an INVALID index {} was there before: a build that failed earlier left it; "
          "drop it (DROP INDEX CONCURRENTLY {}) and run again)",
          (*before)->qualified, (*before)->qualified);
    }
    Result<std::optional<IndexInfo>> after = db_.FindIndex(index.table, index.name);
    if (!after) {
      return fmt::format(
          "\n(cutover could not look for an INVALID index {} the failed build may have left: "
          "{})",
          index.name, after.error().message);
    }
    if (*after && !(*after)->valid) left_index = (*after)->qualified;
    return "";
  }

  // Drops the INVALID index `left_index`, if any, and says how that went;
  // clears it.
  std::string DropLeftIndex(std::string& left_index) {
    if (left_index.empty()) return "";
    const std::string name = std::exchange(left_index, std::string());
    return "\n(" + LeftIndexNote(name, DropIndex(name)) + ")";
  }

  // What became of the INVALID index `name` a failed build left.
  static std::string LeftIndexNote(const std::string& name, const ExecResult& dropped) {
    if (dropped) {
      return fmt::format("the failed build left the INVALID index {}; cutover dropped it", name);
    }
    return fmt::format(
        "the failed build left the INVALID index {}, and dropping it failed: {}; drop it "
        "(DROP INDEX CONCURRENTLY {}) before running again",
        name, dropped.error().message, name);
  }

  ExecResult DropIndex(const std::string& qualified) {
    return db_.Exec("DROP INDEX CONCURRENTLY IF EXISTS " + qualified);
  }

  std::string Where(const MigrationFile& f, const Statement* s, const DbError& e) const {
    if (s != nullptr) return Located(f, *s, e);
    return fmt::format("{}: {}", f.filename, e.message);
  }

  void RunInTransaction(const MigrationFile& f, FileRun& run) {
    for (;;) {
      if (ExecResult t = db_.SetLockTimeout(LockTimeout(f)); !t) {
        return Fail(f, run, Where(f, nullptr, t.error()), false);
      }
      if (ExecResult begun = db_.Begin(); !begun) {
        if (Retry(f, run, nullptr, begun.error())) continue;
        return Fail(f, run, Where(f, nullptr, begun.error()), Cancelled());
      }
      Result<std::optional<AppliedMigration>> row = db_.HistoryRow(f.version);
      if (row && *row && (*row)->status == "succeeded") {
        db_.Rollback();
        run.outcome = "skipped";
        run.message = "applied by another runner meanwhile";
        return;
      }
      if (Status marked = db_.MarkRunning(f, options_.release, allowed_); !marked) {
        db_.Rollback();
        return Fail(f, run, marked.error().message, false);
      }
      bool retry = false;
      for (const Statement& s : statements_) {
        if (Cancelled()) {
          db_.Rollback();
          return Fail(f, run,
                      fmt::format("{}:{}: cancelled before this statement", f.filename, s.line),
                      true);
        }
        ExecResult done = ExecStatement(s);
        if (done) continue;
        db_.Rollback();
        if (Retry(f, run, &s, done.error())) {
          retry = true;
          break;
        }
        return Fail(f, run, Located(f, s, done.error()), done.error().cancelled || Cancelled());
      }
      if (retry) continue;
      Status marked = db_.MarkSucceeded(f.version, static_cast<int>(statements_.size()), true);
      if (!marked) {
        db_.Rollback();
        return Fail(f, run, marked.error().message, false);
      }
      if (ExecResult committed = db_.Commit(); !committed) {
        db_.Rollback();
        if (Retry(f, run, nullptr, committed.error())) continue;
        return Fail(f, run, Where(f, nullptr, committed.error()), false);
      }
      run.outcome = "applied";
      return;
    }
  }

  void RunWithoutTransaction(const MigrationFile& f, FileRun& run) {
    Result<std::optional<AppliedMigration>> row = db_.HistoryRow(f.version);
    if (!row) return Fail(f, run, row.error().message, false);
    if (*row && (*row)->status == "succeeded") {
      run.outcome = "skipped";
      run.message = "applied by another runner meanwhile";
      return;
    }
    int skip = 0;
    if (*row && (*row)->statements_done > 0) {
      skip = std::min<int>((*row)->statements_done, static_cast<int>(statements_.size()));
      if (PrefixSha(statements_, skip) != (*row)->done_sha256) {
        return Fail(f, run,
                    fmt::format("{}: {} statement(s) of this file were applied before it "
                                "stopped, and they changed since; restore them as they ran "
                                "(only the statement that failed and those after it may "
                                "change)",
                                f.filename, skip),
                    false);
      }
      progress_(
          fmt::format("{}: resuming after the {} statement(s) applied before", f.filename, skip));
    }
    if (Status marked = db_.MarkRunning(f, options_.release, allowed_); !marked) {
      return Fail(f, run, marked.error().message, false);
    }
    if (ExecResult t = db_.SetLockTimeout(LockTimeout(f)); !t) {
      return Fail(f, run, Where(f, nullptr, t.error()), false);
    }
    // The INVALID index (schema-qualified) that the last attempt of the
    // statement that runs left behind; empty when none.
    std::string left_index;
    for (int i = skip; i < static_cast<int>(statements_.size()); ++i) {
      const Statement& s = statements_[i];
      if (Cancelled()) {
        return Fail(f, run,
                    fmt::format("{}:{}: cancelled before this statement", f.filename, s.line) +
                        DropLeftIndex(left_index),
                    true);
      }
      if (!left_index.empty()) {
        progress_(fmt::format("{}:{}: dropping the INVALID index {} the failed attempt left",
                              f.filename, s.line, left_index));
        if (ExecResult dropped = DropIndex(left_index); !dropped) {
          if (Retry(f, run, &s, dropped.error())) {
            --i;
            continue;
          }
          return Fail(
              f, run,
              fmt::format("{}:{}: {}", f.filename, s.line, LeftIndexNote(left_index, dropped)),
              dropped.error().cancelled || Cancelled());
        }
        left_index.clear();
      }
      std::optional<ConcurrentIndex> index;
      if (db_.dialect() == Dialect::kPostgres) index = ConcurrentIndexOf(s.text);
      Result<std::optional<IndexInfo>> before = std::optional<IndexInfo>();
      if (index) before = db_.FindIndex(index->table, index->name);
      ExecResult done = ExecStatement(s);
      if (!done) {
        const std::string note = index ? AfterFailedBuild(*index, before, left_index) : "";
        if (Retry(f, run, &s, done.error())) {
          --i;
          continue;
        }
        return Fail(f, run, Located(f, s, done.error()) + note + DropLeftIndex(left_index),
                    done.error().cancelled || Cancelled());
      }
      if (index && index->if_not_exists && before && *before && !(*before)->valid) {
        // IF NOT EXISTS found the name taken and skipped the build.
        return Fail(f, run,
                    fmt::format("{}:{}: an INVALID index {} was there before (a build that "
                                "failed earlier left it), so IF NOT EXISTS skipped the build "
                                "and the index is unusable; drop it (DROP INDEX CONCURRENTLY "
                                "{}) and run again",
                                f.filename, s.line, (*before)->qualified, (*before)->qualified),
                    false);
      }
      if (Status saved = db_.MarkProgress(f.version, i + 1, PrefixSha(statements_, i + 1));
          !saved) {
        return Fail(f, run, saved.error().message, false);
      }
    }
    if (Status marked = db_.MarkSucceeded(f.version, static_cast<int>(statements_.size()), false);
        !marked) {
      return Fail(f, run, marked.error().message, false);
    }
    run.outcome = "applied";
  }

  MigrationDb& db_;
  const RunOptions& options_;
  const std::function<void(std::string_view)>& progress_;
  std::vector<Statement> statements_;
  std::string allowed_;
};

}  // namespace

Result<DatabaseUrl> ParseDatabaseUrl(std::string_view url, const std::string& base_dir) {
  DatabaseUrl out;
  if (url.starts_with("postgres://") || url.starts_with("postgresql://")) {
    out.dialect = Dialect::kPostgres;
    out.target = std::string(url);
    out.display = out.target;
    // Hide a password: scheme://user:PASSWORD@host
    size_t scheme = out.display.find("://") + 3;
    size_t at = out.display.find('@', scheme);
    size_t colon = out.display.find(':', scheme);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      out.display.replace(colon + 1, at - colon - 1, "***");
    }
    if (size_t q = out.display.find("password="); q != std::string::npos) {
      size_t end = out.display.find('&', q);
      out.display.replace(q + 9, (end == std::string::npos ? out.display.size() : end) - q - 9,
                          "***");
    }
    return out;
  }
  if (url.starts_with("sqlite:")) {
    std::string_view path = url.substr(7);
    if (path.starts_with("//")) path.remove_prefix(2);  // sqlite:///abs/path
    if (path.empty()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "database URL 'sqlite:' names no file; write sqlite:PATH");
    }
    std::filesystem::path p(path);
    if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
    out.dialect = Dialect::kSqlite;
    out.target = p.lexically_normal().string();
    out.display = "sqlite:" + out.target;
    return out;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   fmt::format("database URL {} is neither postgres://... (or postgresql://...) "
                               "nor sqlite:PATH",
                               Quoted(url)));
}

void RunCancel::Cancel() {
  cancelled_.store(true);
  std::lock_guard lock(mu_);
  if (interrupt_) interrupt_();
}

void RunCancel::Attach(std::function<void()> interrupt) {
  std::lock_guard lock(mu_);
  interrupt_ = std::move(interrupt);
}

void RunCancel::Detach() {
  std::lock_guard lock(mu_);
  interrupt_ = nullptr;
}

Result<DatabaseStatus> ReadMigrationStatus(const DatabaseUrl& url, const std::string& dir) {
  Result<std::vector<MigrationFile>> files = LoadMigrations(dir);
  if (!files) return std::unexpected(files.error());
  DatabaseStatus status;
  status.url = url;
  std::vector<AppliedMigration> history;
  const bool missing_file = url.dialect == Dialect::kSqlite && !std::filesystem::exists(url.target);
  if (!missing_file) {
    Result<std::unique_ptr<MigrationDb>> db = Open(url, Millis(5000), false);
    if (!db) return std::unexpected(db.error());
    Result<std::vector<AppliedMigration>> rows = (*db)->History();
    if (!rows) return std::unexpected(rows.error());
    history = std::move(*rows);
  }
  std::map<std::string, AppliedMigration> by_version;
  for (AppliedMigration& row : history) by_version.emplace(row.version, std::move(row));
  for (const MigrationFile& f : *files) {
    MigrationState s{f.version, f.name, f.filename, f.phase, "pending", std::nullopt};
    if (auto it = by_version.find(f.version); it != by_version.end()) {
      s.applied = std::move(it->second);
      by_version.erase(it);
      if (s.applied->status == "succeeded") {
        s.state = s.applied->sha256 == f.sha256 ? "applied" : "changed";
      } else if (s.applied->status == "running") {
        s.state = "interrupted";
      } else {
        s.state = "failed";
      }
    }
    status.files.push_back(std::move(s));
  }
  for (auto& [version, row] : by_version) {
    MigrationState s{version, row.name, "", row.phase, "missing", row};
    if (row.status != "succeeded") s.state = row.status == "running" ? "interrupted" : "failed";
    status.files.push_back(std::move(s));
  }
  std::sort(status.files.begin(), status.files.end(),
            [](const MigrationState& a, const MigrationState& b) { return a.version < b.version; });
  return status;
}

Result<RunReport> RunMigrations(const DatabaseUrl& url, const std::string& dir, Phase phase,
                                const RunOptions& options) {
  std::function<void(std::string_view)> progress =
      options.progress ? options.progress : [](std::string_view) {};
  Result<std::vector<MigrationFile>> files = LoadMigrations(dir);
  if (!files) return std::unexpected(files.error());
  Result<std::unique_ptr<MigrationDb>> opened = Open(url, options.busy_timeout, true);
  if (!opened) return std::unexpected(opened.error());
  MigrationDb& db = **opened;
  db.SetNoticeSink([&](std::string_view notice) { progress(notice); });
  if (options.cancel) options.cancel->Attach(db.Interrupter());
  struct Detach {
    const RunOptions& o;
    ~Detach() {
      if (o.cancel) o.cancel->Detach();
    }
  } detach{options};

  RunReport report;
  report.phase = phase;
  auto stop = [&](std::string error) {
    report.ok = false;
    report.error = std::move(error);
    return report;
  };
  if (Status locked = db.Lock(options.lock_wait, progress); !locked) {
    if (locked.error().code == ErrorCode::kTimeout) return stop(locked.error().message);
    return std::unexpected(locked.error());
  }
  if (Status ensured = db.EnsureHistory(); !ensured) return std::unexpected(ensured.error());
  Result<std::vector<AppliedMigration>> history = db.History();
  if (!history) return std::unexpected(history.error());
  std::map<std::string, const AppliedMigration*> rows;
  for (const AppliedMigration& row : *history) rows.emplace(row.version, &row);

  for (const MigrationFile& f : *files) {
    auto it = rows.find(f.version);
    if (it == rows.end()) continue;
    const AppliedMigration& row = *it->second;
    if (row.status == "succeeded" && row.sha256 != f.sha256) {
      return stop(fmt::format(
          "{} was changed after it was applied (by release {} at {}): what ran had SHA-256 "
          "{}, the file now has {}; restore it, and put the change in a new file",
          f.filename, row.release.empty() ? "-" : row.release,
          row.finished_unix_ms ? FormatUtcTime(row.finished_unix_ms) : std::string("?"),
          row.sha256.substr(0, 12), f.sha256.substr(0, 12)));
    }
    if (row.status != "succeeded" && PhaseOrder(f.phase) < PhaseOrder(phase)) {
      return stop(
          fmt::format("{} ({}) {}: run {} first, after fixing it", f.filename, PhaseName(f.phase),
                      row.status == "running" ? "was interrupted" : "failed", PhaseName(f.phase)));
    }
  }

  std::vector<const MigrationFile*> pending;
  for (const MigrationFile& f : *files) {
    if (f.phase != phase) continue;
    auto it = rows.find(f.version);
    if (it != rows.end() && it->second->status == "succeeded") continue;
    if (options.only &&
        std::find(options.only->begin(), options.only->end(), f.version) == options.only->end()) {
      continue;
    }
    pending.push_back(&f);
  }
  if (options.only) {
    for (const std::string& version : *options.only) {
      bool present = std::any_of(files->begin(), files->end(),
                                 [&](const MigrationFile& f) { return f.version == version; });
      auto it = rows.find(version);
      bool done = it != rows.end() && it->second->status == "succeeded";
      if (!present && !done) {
        return stop(
            fmt::format("migration {} is not in {} any more and was never applied", version, dir));
      }
    }
  }

  for (const MigrationFile* f : pending) {
    std::vector<LintFinding> found = Lint(*f, url.dialect);
    report.lint.insert(report.lint.end(), found.begin(), found.end());
  }
  if (HasLintErrors(report.lint)) {
    int errors = static_cast<int>(std::count_if(
        report.lint.begin(), report.lint.end(),
        [](const LintFinding& l) { return l.severity == Severity::kError && !l.allowed; }));
    return stop(fmt::format("{} lint error(s); nothing was applied", errors));
  }

  FileRunner runner(db, options, progress);
  for (const MigrationFile* f : pending) {
    if (options.cancel && options.cancel->cancelled()) {
      return stop(fmt::format("cancelled before {}", f->filename));
    }
    progress(fmt::format("{}: running{}", f->filename,
                         f->options.no_transaction ? " (no transaction)" : ""));
    FileRun run = runner.Run(*f);
    if (run.outcome == "applied") {
      progress(
          fmt::format("{}: applied in {}", f->filename, FormatDuration(Millis(run.elapsed_ms))));
    } else if (run.outcome == "skipped") {
      progress(fmt::format("{}: {}", f->filename, run.message));
    }
    bool failed = run.outcome == "failed" || run.outcome == "cancelled";
    std::string message = run.message;
    if (run.outcome != "skipped") report.files.push_back(std::move(run));
    if (failed) return stop(message);
  }
  return report;
}

}  // namespace cutover
