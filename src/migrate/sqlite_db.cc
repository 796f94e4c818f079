// MigrationDb on SQLite: one connection; each file runs in an exclusive
// transaction, which is also what keeps two runners apart (the second waits
// up to the busy timeout).
#include <fmt/format.h>
#include <sqlite3.h>

#include <filesystem>

#include "migrate/db.h"

namespace cutover {

namespace {

constexpr const char* kCreateHistory = R"sql(
CREATE TABLE IF NOT EXISTS cutover_migrations (
  version TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  phase TEXT NOT NULL,
  checksum TEXT NOT NULL,
  status TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  release TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  allowed TEXT NOT NULL DEFAULT '',
  statements_done INTEGER NOT NULL DEFAULT 0,
  done_checksum TEXT NOT NULL DEFAULT ''
))sql";

constexpr const char* kSelectHistory =
    "SELECT version, name, phase, checksum, status, started_at, coalesce(finished_at, 0), "
    "release, error, allowed, statements_done, done_checksum FROM cutover_migrations";

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
}

// The number of UTF-8 characters in the first `bytes` bytes of `text`.
int Characters(std::string_view text, size_t bytes) {
  int n = 0;
  for (size_t i = 0; i < bytes && i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++n;
  }
  return n;
}

class SqliteDb final : public MigrationDb {
 public:
  SqliteDb(DatabaseUrl url, sqlite3* db) : url_(std::move(url)), db_(db) {}
  ~SqliteDb() override { sqlite3_close_v2(db_); }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Status Lock(Millis, const std::function<void(std::string_view)>&) override { return {}; }

  Status EnsureHistory() override {
    if (ExecResult r = Exec(kCreateHistory); !r) {
      return MakeError(ErrorCode::kUnavailable,
                       fmt::format("{}: create the history table cutover_migrations: {}",
                                   url_.display, r.error().message));
    }
    return {};
  }

  Result<std::vector<AppliedMigration>> History() override {
    Result<bool> exists = HistoryExists();
    if (!exists) return std::unexpected(exists.error());
    std::vector<AppliedMigration> out;
    if (!*exists) return out;
    Result<Stmt> s = Prepare(std::string(kSelectHistory) + " ORDER BY version");
    if (!s) return std::unexpected(s.error());
    int rc;
    while ((rc = sqlite3_step(s->get())) == SQLITE_ROW) out.push_back(Row(s->get()));
    if (rc != SQLITE_DONE) return std::unexpected(Failure("read the history table"));
    return out;
  }

  Result<std::optional<AppliedMigration>> HistoryRow(std::string_view version) override {
    Result<bool> exists = HistoryExists();
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return std::optional<AppliedMigration>();
    Result<Stmt> s = Prepare(std::string(kSelectHistory) + " WHERE version = ?1");
    if (!s) return std::unexpected(s.error());
    sqlite3_bind_text(s->get(), 1, version.data(), static_cast<int>(version.size()),
                      SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->get());
    if (rc == SQLITE_ROW) return std::optional<AppliedMigration>(Row(s->get()));
    if (rc != SQLITE_DONE) return std::unexpected(Failure("read the history table"));
    return std::optional<AppliedMigration>();
  }

  Status MarkRunning(const MigrationFile& file, std::string_view release,
                     std::string_view allowed) override {
    return Write(
        "INSERT INTO cutover_migrations (version, name, phase, checksum, status, started_at, "
        "release, allowed) VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6, ?7) "
        "ON CONFLICT (version) DO UPDATE SET name = ?2, phase = ?3, checksum = ?4, "
        "status = 'running', started_at = ?5, finished_at = NULL, release = ?6, error = '', "
        "allowed = ?7",
        {file.version, file.name, std::string(PhaseName(file.phase)), file.sha256,
         std::to_string(NowUnixMs()), std::string(release), std::string(allowed)});
  }

  Status MarkSucceeded(std::string_view version, int statements, bool) override {
    return Write(
        "UPDATE cutover_migrations SET status = 'succeeded', finished_at = ?2, error = '', "
        "statements_done = ?3 WHERE version = ?1",
        {std::string(version), std::to_string(NowUnixMs()), std::to_string(statements)});
  }

  Status MarkFailed(const MigrationFile& file, std::string_view release, std::string_view allowed,
                    std::string_view error) override {
    return Write(
        "INSERT INTO cutover_migrations (version, name, phase, checksum, status, started_at, "
        "finished_at, release, allowed, error) "
        "VALUES (?1, ?2, ?3, ?4, 'failed', ?5, ?5, ?6, ?7, ?8) "
        "ON CONFLICT (version) DO UPDATE SET status = 'failed', finished_at = ?5, error = ?8",
        {file.version, file.name, std::string(PhaseName(file.phase)), file.sha256,
         std::to_string(NowUnixMs()), std::string(release), std::string(allowed),
         std::string(error)});
  }

  Status MarkProgress(std::string_view version, int statements_done,
                      std::string_view done_sha256) override {
    return Write(
        "UPDATE cutover_migrations SET statements_done = ?2, done_checksum = ?3 WHERE version = ?1",
        {std::string(version), std::to_string(statements_done), std::string(done_sha256)});
  }

  ExecResult Begin() override { return Exec("BEGIN EXCLUSIVE"); }
  ExecResult Commit() override { return Exec("COMMIT"); }
  void Rollback() override {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  ExecResult SetLockTimeout(Millis) override { return {}; }

  ExecResult Exec(std::string_view statement) override {
    const char* at = statement.data();
    const char* end = statement.data() + statement.size();
    while (at < end) {
      sqlite3_stmt* raw = nullptr;
      const char* tail = nullptr;
      int rc = sqlite3_prepare_v2(db_, at, static_cast<int>(end - at), &raw, &tail);
      Stmt s(raw);
      if (rc != SQLITE_OK) return std::unexpected(StatementError(rc, statement, at));
      if (!s) break;  // only comments or whitespace were left
      while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      }
      if (rc != SQLITE_DONE) return std::unexpected(StatementError(rc, statement, at));
      at = tail;
    }
    return {};
  }

  ExecResult ExecUnlessCancelled(std::string_view statement,
                                 const std::atomic<bool>& cancelled) override {
    // SQLite calls the handler every 1000 steps of its virtual machine while
    // the statement runs; true ends the statement with SQLITE_INTERRUPT.
    sqlite3_progress_handler(
        db_, 1000, [](void* flag) { return static_cast<std::atomic<bool>*>(flag)->load() ? 1 : 0; },
        const_cast<std::atomic<bool>*>(&cancelled));
    ExecResult r = Exec(statement);
    sqlite3_progress_handler(db_, 0, nullptr, nullptr);
    return r;
  }

  Result<std::optional<IndexInfo>> FindIndex(std::string_view, std::string_view) override {
    return std::optional<IndexInfo>();
  }

  std::function<void()> Interrupter() override {
    sqlite3* db = db_;
    return [db] { sqlite3_interrupt(db); };
  }

  void SetNoticeSink(std::function<void(std::string_view)>) override {}

 private:
  static AppliedMigration Row(sqlite3_stmt* s) {
    AppliedMigration m;
    m.version = Text(s, 0);
    m.name = Text(s, 1);
    m.phase = ParsePhase(Text(s, 2)).value_or(Phase::kExpand);
    m.sha256 = Text(s, 3);
    m.status = Text(s, 4);
    m.started_unix_ms = sqlite3_column_int64(s, 5);
    m.finished_unix_ms = sqlite3_column_int64(s, 6);
    m.release = Text(s, 7);
    m.error = Text(s, 8);
    m.allowed = Text(s, 9);
    m.statements_done = sqlite3_column_int(s, 10);
    m.done_sha256 = Text(s, 11);
    return m;
  }

  DbError StatementError(int rc, std::string_view statement, const char* prepared_at) {
    DbError e;
    e.message = sqlite3_errmsg(db_);
    int offset = sqlite3_error_offset(db_);
    size_t base = static_cast<size_t>(prepared_at - statement.data());
    if (offset >= 0)
      e.position = Characters(statement, base + offset) + 1;
    else
      e.position = Characters(statement, base) + 1;
    int primary = rc & 0xff;
    e.lock_timeout = primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
    e.cancelled = primary == SQLITE_INTERRUPT;
    return e;
  }

  Error Failure(std::string_view what) {
    return Error{ErrorCode::kUnavailable,
                 fmt::format("{}: {}: {}", url_.display, what, sqlite3_errmsg(db_))};
  }

  Result<bool> HistoryExists() {
    Result<Stmt> s =
        Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cutover_migrations'");
    if (!s) return std::unexpected(s.error());
    int rc = sqlite3_step(s->get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return std::unexpected(Failure("read the schema"));
    }
    return rc == SQLITE_ROW;
  }

  Result<Stmt> Prepare(const std::string& sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      sqlite3_finalize(raw);
      return std::unexpected(Failure("prepare"));
    }
    return Stmt(raw);
  }

  Status Write(const std::string& sql, const std::vector<std::string>& params) {
    Result<Stmt> s = Prepare(sql);
    if (!s) return std::unexpected(s.error().Wrap("write the history table cutover_migrations"));
    for (size_t i = 0; i < params.size(); ++i) {
      sqlite3_bind_text(s->get(), static_cast<int>(i + 1), params[i].data(),
                        static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
    }
    if (sqlite3_step(s->get()) != SQLITE_DONE) {
      return std::unexpected(Failure("write the history table cutover_migrations"));
    }
    return {};
  }

  DatabaseUrl url_;
  sqlite3* db_;
};

}  // namespace

Result<std::unique_ptr<MigrationDb>> OpenSqlite(const DatabaseUrl& url, Millis busy_timeout,
                                                bool create) {
  if (create) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(url.target).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  }
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(url.target.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return MakeError(rc == SQLITE_CANTOPEN ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                     fmt::format("cannot open {}: {}", url.display, why));
  }
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  return std::make_unique<SqliteDb>(url, db);
}

}  // namespace cutover
