// The two databases the runner knows, behind one interface: the history
// table, the runner lock, and running one statement. Private to the
// runner. One thread at a time, except Interrupt() (any thread, through
// RunCancel).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "migrate/runner.h"

namespace cutover {

// A statement the database refused.
struct DbError {
  std::string message;   // the database's own text
  std::string sqlstate;  // PostgreSQL; empty for SQLite
  std::string detail;
  std::string hint;
  int position = 0;           // 1-based character in the statement, 0: unknown
  bool lock_timeout = false;  // SQLSTATE 55P03 (PostgreSQL) or SQLITE_BUSY
  bool cancelled = false;
};

using ExecResult = std::expected<void, DbError>;

// An index as the catalog has it.
struct IndexInfo {
  std::string qualified;  // schema.name, quoted where needed: what DROP INDEX takes
  bool valid = true;      // false: a failed concurrent build left it, unused
};

class MigrationDb {
 public:
  virtual ~MigrationDb() = default;

  virtual Dialect dialect() const = 0;

  // Takes the runner lock, waiting up to `wait` while another runner holds
  // it (`waiting` is told once who holds it). A no-op where each file's
  // exclusive transaction is the lock (SQLite).
  virtual Status Lock(Millis wait, const std::function<void(std::string_view)>& waiting) = 0;

  // Creates the history table when missing (after Lock).
  virtual Status EnsureHistory() = 0;
  // The history, by version; empty when the table does not exist.
  virtual Result<std::vector<AppliedMigration>> History() = 0;
  virtual Result<std::optional<AppliedMigration>> HistoryRow(std::string_view version) = 0;

  // Records that `file` starts (status running). Inside the file's
  // transaction where the database has one connection (SQLite), so that a
  // rolled-back file leaves no row.
  virtual Status MarkRunning(const MigrationFile& file, std::string_view release,
                             std::string_view allowed) = 0;
  // Records success; inside the file's transaction when `in_transaction`.
  virtual Status MarkSucceeded(std::string_view version, int statements, bool in_transaction) = 0;
  // Records a failure, outside any transaction (after the rollback).
  virtual Status MarkFailed(const MigrationFile& file, std::string_view release,
                            std::string_view allowed, std::string_view error) = 0;
  // A no-transaction file's progress, durable at once: how many statements
  // are applied, and the SHA-256 of their text.
  virtual Status MarkProgress(std::string_view version, int statements_done,
                              std::string_view done_sha256) = 0;

  // The file's transaction: exclusive on SQLite (the runner lock there).
  virtual ExecResult Begin() = 0;
  virtual ExecResult Commit() = 0;
  virtual void Rollback() = 0;
  // The lock timeout for the statements that follow (PostgreSQL).
  virtual ExecResult SetLockTimeout(Millis timeout) = 0;
  // Runs one statement of a migration file.
  virtual ExecResult Exec(std::string_view statement) = 0;
  // The same, stopped (an error with `cancelled`) once `cancelled` is true,
  // whether it turned true while the statement ran or just before it
  // started, when an interrupt would still find the connection idle.
  virtual ExecResult ExecUnlessCancelled(std::string_view statement,
                                         const std::atomic<bool>& cancelled) = 0;

  // The index named `name` (as the catalog stores it) on `table` (as a
  // statement writes it, resolved through the statements' search path):
  // nullopt when there is none. SQLite has no invalid indexes and answers
  // nullopt.
  virtual Result<std::optional<IndexInfo>> FindIndex(std::string_view table,
                                                     std::string_view name) = 0;

  // Interrupts the statement that runs; callable from any thread.
  virtual std::function<void()> Interrupter() = 0;
  // Where the database's notices go (PostgreSQL NOTICE, WARNING).
  virtual void SetNoticeSink(std::function<void(std::string_view)> sink) = 0;
};

Result<std::unique_ptr<MigrationDb>> OpenPostgres(const DatabaseUrl& url);
Result<std::unique_ptr<MigrationDb>> OpenSqlite(const DatabaseUrl& url, Millis busy_timeout,
                                                bool create);

}  // namespace cutover
