// The migration runner: applies a service's migration files to its database
// (PostgreSQL through libpq, or SQLite) and keeps their history in a table
// of that database, `cutover_migrations`. One runner at a time per
// database: on PostgreSQL a session advisory lock held on a connection of
// its own, on SQLite an exclusive transaction per file.
//
// Every function here blocks on the database: call them from a thread that
// may block (the CLI's, or the controller's migration thread), never from
// an io_context thread. A RunCancel may be triggered from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "migrate/lint.h"
#include "migrate/migration.h"

namespace cutover {

// Where migrations run: `postgres://...` / `postgresql://...` (handed to
// libpq as is) or `sqlite:PATH`.
struct DatabaseUrl {
  Dialect dialect = Dialect::kPostgres;
  std::string target;   // the libpq connection URI, or the SQLite file's path
  std::string display;  // the URL with its password hidden, for messages
};

// Parses a database URL; a relative SQLite path is resolved against
// `base_dir` (the config file's directory) when that is not empty.
Result<DatabaseUrl> ParseDatabaseUrl(std::string_view url, const std::string& base_dir = {});

// One row of the history table.
struct AppliedMigration {
  std::string version;
  std::string name;
  Phase phase = Phase::kExpand;
  std::string sha256;
  std::string status;  // "running", "succeeded", "failed"
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;
  std::string release;      // the release that ran it
  std::string error;        // a failure's error, "FILE:LINE: ..."
  std::string allowed;      // the lint rules its `allow` headers overrode, with reasons
  int statements_done = 0;  // no-transaction files: statements applied so far
  std::string done_sha256;  // of those statements' text, to resume only where nothing changed
};

// A file of the folder (or a history row whose file is gone) and where it
// stands.
struct MigrationState {
  std::string version;
  std::string name;
  std::string filename;  // empty for a row whose file is missing
  Phase phase = Phase::kExpand;
  // "pending", "applied", "failed", "interrupted" (a runner died while it
  // ran), "changed" (applied, and the file differs from what ran),
  // "missing" (applied, and the file is gone)
  std::string state;
  std::optional<AppliedMigration> applied;
};

struct DatabaseStatus {
  DatabaseUrl url;
  std::vector<MigrationState> files;  // by version
};

// Reads the folder and the history table (which need not exist yet).
Result<DatabaseStatus> ReadMigrationStatus(const DatabaseUrl& url, const std::string& dir);

// Interrupts a run from another thread: the statement that runs is
// cancelled (PostgreSQL) or interrupted (SQLite), its file fails and is
// rolled back when it runs in a transaction, and no further file starts.
class RunCancel {
 public:
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  const std::atomic<bool>& flag() const { return cancelled_; }

  // The runner's side: what Cancel() must interrupt while a statement runs.
  void Attach(std::function<void()> interrupt);
  void Detach();

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::function<void()> interrupt_;
};

struct RunOptions {
  std::string release;  // recorded with each file it runs
  // Only these versions (e.g. the contract files a release shipped with);
  // every pending file of the phase when unset.
  std::optional<std::vector<std::string>> only;
  Millis lock_wait{120'000};    // how long to wait for another runner
  Millis lock_timeout{2'000};   // PostgreSQL lock_timeout unless a file sets its own
  int lock_retries = 5;         // attempts after a lock timeout (SQLSTATE 55P03)
  Millis busy_timeout{10'000};  // SQLite
  std::function<void(std::string_view message)> progress;  // one line per event
  std::shared_ptr<RunCancel> cancel;
};

// What happened to one file in a run.
struct FileRun {
  std::string filename;
  std::string outcome;  // "applied", "failed", "cancelled"
  int64_t elapsed_ms = 0;
  int attempts = 1;     // more than 1 after lock timeouts
  std::string message;  // a failure's error, "FILE:LINE: ..."
};

struct RunReport {
  Phase phase = Phase::kExpand;
  std::vector<LintFinding> lint;  // of the files the run would apply
  std::vector<FileRun> files;     // in order; the last one failed when !ok
  bool ok = true;
  std::string error;  // why the run stopped: lint errors, a failed file, a lock wait
};

// Lints, then applies the pending files of `phase` in version order. Stops
// before anything runs on a lint error, a changed or missing applied file,
// or a file of an earlier phase that failed; stops at the first file that
// fails (the history records the error; running again after the fix
// resumes with that file). Fails (Result error) only when the database or
// the folder cannot be read at all.
Result<RunReport> RunMigrations(const DatabaseUrl& url, const std::string& dir, Phase phase,
                                const RunOptions& options);

}  // namespace cutover
