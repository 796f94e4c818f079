// The SQLite Store: one database file in WAL mode, written with synchronous=FULL so that a state
// change is on disk when the call returns. The durable format is specified in docs/store.md.
// Owned by the control thread; one connection, opened without SQLite's own mutexes.
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "store/store.h"

namespace cutover {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kApplication = "cutover";

// The schema, as ordered steps: step i moves a store from schema version i to i + 1, inside one
// transaction that also records the new version in `meta`. A step that has shipped is never
// edited; a format change is a new step appended here and described in docs/store.md.
constexpr std::array<const char*, 2> kSchemaSteps = {
    // Version 1: the marker, live colors, the audit trail.
    R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('application', 'cutover');
CREATE TABLE services (
  name            TEXT PRIMARY KEY,
  live_color      TEXT NOT NULL CHECK (live_color IN ('blue', 'green')),
  updated_unix_ms INTEGER NOT NULL
);
CREATE TABLE audit (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  time_unix_ms INTEGER NOT NULL,
  service      TEXT NOT NULL,
  action       TEXT NOT NULL,
  actor        TEXT NOT NULL,
  detail       TEXT NOT NULL,
  outcome      TEXT NOT NULL
);
CREATE INDEX audit_service_id ON audit (service, id);
)sql",
    // Version 2: what runs on each color, and the journal of deployments with their steps.
    R"sql(
CREATE TABLE slots (
  service         TEXT NOT NULL,
  color           TEXT NOT NULL CHECK (color IN ('blue', 'green')),
  release         TEXT NOT NULL,
  state           TEXT NOT NULL,
  spec_json       TEXT NOT NULL,
  updated_unix_ms INTEGER NOT NULL,
  PRIMARY KEY (service, color)
);
CREATE TABLE deployments (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  service          TEXT NOT NULL,
  release          TEXT NOT NULL,
  color            TEXT NOT NULL CHECK (color IN ('blue', 'green')),
  actor            TEXT NOT NULL,
  started_unix_ms  INTEGER NOT NULL,
  finished_unix_ms INTEGER NOT NULL,
  outcome          TEXT NOT NULL,
  message          TEXT NOT NULL,
  spec_json        TEXT NOT NULL
);
CREATE INDEX deployments_service_id ON deployments (service, id);
CREATE INDEX deployments_running ON deployments (id) WHERE outcome = 'running';
CREATE TABLE deployment_steps (
  deployment_id    INTEGER NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  position         INTEGER NOT NULL,
  name             TEXT NOT NULL,
  outcome          TEXT NOT NULL,
  started_unix_ms  INTEGER NOT NULL,
  finished_unix_ms INTEGER NOT NULL,
  message          TEXT NOT NULL,
  PRIMARY KEY (deployment_id, position)
);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(kSchemaSteps.size());

struct DbClose {
  // close_v2 defers the close until every statement is finalized, so member order cannot leak.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalize {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalize>;

// Resets a cached statement when one use of it ends. A statement left mid-result keeps a read
// snapshot open, which stops WAL checkpoints and lets the -wal file grow without bound.
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StmtUse() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }

 private:
  int fd_;
};

// A failed sqlite3 call before the caller names the file and the operation.
struct SqlError {
  int rc = SQLITE_ERROR;
  std::string message;
};
template <typename T>
using SqlResult = std::expected<T, SqlError>;

SqlError LastError(sqlite3* db, int rc) {
  std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  // SQLite's text for open and I/O failures is generic ("unable to open database file"); the
  // OS error is what tells a user to fix a permission or free some disk.
  int primary = rc & 0xff;
  int os_errno = db != nullptr ? sqlite3_system_errno(db) : 0;
  if (os_errno != 0 && (primary == SQLITE_CANTOPEN || primary == SQLITE_IOERR ||
                        primary == SQLITE_FULL || primary == SQLITE_READONLY)) {
    message += " (" + std::system_category().message(os_errno) + ")";
  }
  return SqlError{rc, std::move(message)};
}

ErrorCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return ErrorCode::kUnavailable;
    case SQLITE_NOMEM:
    case SQLITE_MISUSE:
    case SQLITE_INTERNAL:
      return ErrorCode::kInternal;
    default:
      return ErrorCode::kIo;
  }
}

Error ToError(const SqlError& e, std::string_view path, std::string_view operation) {
  std::string message(path);
  message += ": ";
  message += operation;
  message += ": ";
  message += e.message;
  return Error{CodeFor(e.rc), std::move(message)};
}

SqlResult<StmtPtr> Prepare(sqlite3* db, std::string_view sql, unsigned flags = 0) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), flags, &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return std::unexpected(LastError(db, rc));
  return stmt;
}

// Parameters are always bound, never spliced into SQL text.
SqlResult<void> BindText(sqlite3* db, sqlite3_stmt* stmt, int index, std::string_view value) {
  int rc =
      sqlite3_bind_text64(stmt, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) return std::unexpected(LastError(db, rc));
  return {};
}

// Binds `values` to parameters first, first + 1, ...
SqlResult<void> BindTexts(sqlite3* db, sqlite3_stmt* stmt, int first,
                          std::initializer_list<std::string_view> values) {
  for (std::string_view value : values) {
    if (auto bound = BindText(db, stmt, first++, value); !bound) return bound;
  }
  return {};
}

SqlResult<void> BindInt(sqlite3* db, sqlite3_stmt* stmt, int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt, index, value);
  if (rc != SQLITE_OK) return std::unexpected(LastError(db, rc));
  return {};
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}

// Runs constant SQL (one or more statements, no parameters).
SqlResult<void> Exec(sqlite3* db, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return std::unexpected(LastError(db, rc));
  return {};
}

// Runs `sql` with text parameters and returns the first column of its first row (nullopt when
// there is no row).
SqlResult<std::optional<std::string>> QueryText(sqlite3* db, std::string_view sql,
                                                std::initializer_list<std::string_view> params) {
  auto stmt = Prepare(db, sql);
  if (!stmt) return std::unexpected(stmt.error());
  if (auto bound = BindTexts(db, stmt->get(), 1, params); !bound) {
    return std::unexpected(bound.error());
  }
  int rc = sqlite3_step(stmt->get());
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return std::unexpected(LastError(db, rc));
  return std::optional<std::string>(ColumnText(stmt->get(), 0));
}

// Rolls back unless committed, so that an early return leaves the file as it was.
class Transaction {
 public:
  static SqlResult<Transaction> Begin(sqlite3* db) {
    // IMMEDIATE takes the write lock now: a second opener waits here (busy_timeout) instead of
    // failing halfway through with a lock upgrade error.
    if (auto begun = Exec(db, "BEGIN IMMEDIATE"); !begun) return std::unexpected(begun.error());
    return Transaction(db);
  }
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    if (db_ != nullptr) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  SqlResult<void> Commit() {
    auto committed = Exec(db_, "COMMIT");
    if (committed) db_ = nullptr;
    return committed;
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

fs::path ParentDir(const fs::path& p) {
  fs::path parent = p.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

// Makes a directory's entries (a new file or folder in it) survive power loss.
Status SyncDirectory(const fs::path& dir, const std::string& path) {
  UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || fsync(fd.get()) != 0) {
    const int err = errno;
    return MakeError(ErrorCode::kIo, path + ": sync directory " + dir.string() + ": " +
                                         std::system_category().message(err));
  }
  return {};
}

// What the open file holds: 0 for a database with nothing in it (a new store), else the schema
// version of a cutover store. Anything else is refused without being modified.
Result<int> ReadSchemaVersion(sqlite3* db, const std::string& path) {
  auto not_a_store = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     path + ": not a cutover store: " + std::string(why));
  };
  auto objects = QueryText(db, "SELECT count(*) FROM sqlite_master", {});
  if (!objects) {
    // NOTADB: the file is not SQLite at all; an encrypted or damaged header reads the same.
    if ((objects.error().rc & 0xff) == SQLITE_NOTADB) return not_a_store(objects.error().message);
    return std::unexpected(ToError(objects.error(), path, "read schema"));
  }
  auto meta =
      QueryText(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'", {});
  if (!meta) return std::unexpected(ToError(meta.error(), path, "read schema"));
  if (!meta->has_value()) {
    if (objects->value_or("0") == "0") return 0;
    return not_a_store("it is an SQLite database with other tables and no cutover marker");
  }

  // Another program's `meta` table may have other columns; that is a foreign file, not a fault.
  auto application = QueryText(db, "SELECT value FROM meta WHERE key = ?1", {"application"});
  if (!application) {
    if ((application.error().rc & 0xff) == SQLITE_ERROR) {
      return not_a_store("its meta table is not cutover's (" + application.error().message + ")");
    }
    return std::unexpected(ToError(application.error(), path, "read meta"));
  }
  if (application->value_or("") != kApplication) {
    return not_a_store("its meta table has no application = cutover marker");
  }

  auto version_text = QueryText(db, "SELECT value FROM meta WHERE key = ?1", {"schema_version"});
  if (!version_text) return std::unexpected(ToError(version_text.error(), path, "read meta"));
  const std::string text = version_text->value_or("");
  int version = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (ec != std::errc() || end != text.data() + text.size() || version < 1) {
    return MakeError(ErrorCode::kIo,
                     path + ": damaged cutover store: meta schema_version is '" + text + "'");
  }
  return version;
}

Status RefuseNewer(const std::string& path, int version) {
  return MakeError(ErrorCode::kConflict, path + ": store schema version " +
                                             std::to_string(version) +
                                             " is newer than this cutover (" +
                                             std::to_string(kSchemaVersion) + "); upgrade cutover");
}

SqlResult<void> WriteSchemaVersion(sqlite3* db, int version) {
  auto stmt = Prepare(db,
                      "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  if (!stmt) return std::unexpected(stmt.error());
  if (auto bound = BindText(db, stmt->get(), 1, std::to_string(version)); !bound) return bound;
  if (int rc = sqlite3_step(stmt->get()); rc != SQLITE_DONE) {
    return std::unexpected(LastError(db, rc));
  }
  return {};
}

// Applies schema steps [from, to) in one transaction. Returns false, having changed nothing, when
// another process moved the version away from `from` first; the caller then reads it again.
Result<bool> ApplySteps(sqlite3* db, const std::string& path, int from, int to) {
  const std::string operation = "upgrade schema to version " + std::to_string(to);
  auto tx = Transaction::Begin(db);
  if (!tx) return std::unexpected(ToError(tx.error(), path, operation));
  auto current = ReadSchemaVersion(db, path);
  if (!current) return std::unexpected(current.error());
  if (*current != from) return false;
  for (int step = from; step < to; ++step) {
    if (auto done = Exec(db, kSchemaSteps[static_cast<size_t>(step)]); !done) {
      return std::unexpected(ToError(done.error(), path, operation));
    }
  }
  if (auto written = WriteSchemaVersion(db, to); !written) {
    return std::unexpected(ToError(written.error(), path, operation));
  }
  if (auto committed = tx->Commit(); !committed) {
    return std::unexpected(ToError(committed.error(), path, operation));
  }
  return true;
}

// Brings the store to kSchemaVersion. A new file gets the whole schema in one transaction; an
// older store takes one transaction per step, so an interrupted upgrade resumes where it stopped.
Status Migrate(sqlite3* db, const std::string& path, int version) {
  // Versions only grow, so each retry after a concurrent change moves strictly forward.
  while (version < kSchemaVersion) {
    const int to = version == 0 ? kSchemaVersion : version + 1;
    auto applied = ApplySteps(db, path, version, to);
    if (!applied) return std::unexpected(applied.error());
    if (*applied) {
      version = to;
      continue;
    }
    auto reread = ReadSchemaVersion(db, path);
    if (!reread) return std::unexpected(reread.error());
    if (*reread > kSchemaVersion) return RefuseNewer(path, *reread);
    version = *reread;
  }
  return {};
}

// SQLite retries a refused read-write open as read-only and reports the errno of that retry
// ("No such file or directory" for a folder we may not write to), so ask the OS directly about
// the access the store needs.
SqlError ExplainOpenFailure(sqlite3* db, int rc, const std::string& path, const fs::path& dir,
                            bool existed) {
  SqlError error = LastError(db, rc);
  if ((rc & 0xff) != SQLITE_CANTOPEN) return error;
  const bool denied = existed ? faccessat(AT_FDCWD, path.c_str(), R_OK | W_OK, AT_EACCESS) != 0
                              : faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0;
  if (!denied) return error;
  const std::string reason = std::system_category().message(errno);
  error.message = existed ? "cannot read and write the file: " + reason
                          : "cannot create the file in folder " + dir.string() + ": " + reason;
  return error;
}

Status SetPragmas(sqlite3* db, const std::string& path) {
  // journal_mode answers with the mode it ended in; a file system without shared-memory support
  // stays in its old mode, and we would silently lose the WAL's crash behaviour.
  auto mode = QueryText(db, "PRAGMA journal_mode = WAL", {});
  if (!mode) return std::unexpected(ToError(mode.error(), path, "set journal_mode=WAL"));
  if (mode->value_or("") != "wal") {
    return MakeError(ErrorCode::kIo, path + ": set journal_mode=WAL: the database stayed in '" +
                                         mode->value_or("") + "' mode");
  }
  // FULL (not WAL's usual NORMAL) syncs the WAL on every commit: a returned state change
  // survives power loss, not only a killed process.
  if (auto done = Exec(db, "PRAGMA synchronous = FULL"); !done) {
    return std::unexpected(ToError(done.error(), path, "set synchronous=FULL"));
  }
  if (auto done = Exec(db, "PRAGMA foreign_keys = ON"); !done) {
    return std::unexpected(ToError(done.error(), path, "set foreign_keys=ON"));
  }
  return {};
}

class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  // Use Open; public only for make_unique.
  SqliteStore(std::string path, DbPtr db) : path_(std::move(path)), db_(std::move(db)) {}

  Result<std::optional<Color>> LiveColor(std::string_view service) override;
  Status SetLiveColor(std::string_view service, Color color) override;
  Status SetLiveColor(std::string_view service, Color color, const AuditEvent& audit) override;
  Status AppendAudit(const AuditEvent& event) override;
  Result<std::vector<AuditEvent>> RecentAudit(std::string_view service, int limit) override;
  Result<SlotRecord> Slot(std::string_view service, Color color) override;
  Status SetSlot(std::string_view service, Color color, const SlotRecord& slot) override;
  Result<int64_t> CreateDeployment(const DeploymentRecord& d) override;
  Status UpdateDeployment(const DeploymentRecord& d) override;
  Result<DeploymentRecord> Deployment(int64_t id) override;
  Result<std::vector<DeploymentRecord>> Deployments(std::string_view service, int limit) override;
  Result<std::vector<DeploymentRecord>> UnfinishedDeployments() override;

 private:
  Status PrepareStatements();
  Status InsertSteps(int64_t deployment_id, const std::vector<StepRecord>& steps,
                     std::string_view operation);
  Result<std::vector<DeploymentRecord>> ReadDeployments(sqlite3_stmt* stmt,
                                                        std::string_view operation);
  Error Damaged(std::string_view operation, std::string_view what) const {
    return Error{ErrorCode::kIo,
                 path_ + ": " + std::string(operation) + ": damaged store: " + std::string(what)};
  }
  Error Fail(int rc, std::string_view operation) const {
    return ToError(LastError(db_.get(), rc), path_, operation);
  }
  std::string ForService(std::string_view what, std::string_view service) const {
    return std::string(what) + " of service '" + std::string(service) + "'";
  }

  std::string path_;
  DbPtr db_;
  StmtPtr get_color_;
  StmtPtr set_color_;
  StmtPtr append_audit_;
  StmtPtr recent_audit_all_;
  StmtPtr recent_audit_service_;
  StmtPtr get_slot_;
  StmtPtr set_slot_;
  StmtPtr insert_deployment_;
  StmtPtr update_deployment_;
  StmtPtr delete_steps_;
  StmtPtr insert_step_;
  StmtPtr deployment_by_id_;
  StmtPtr deployments_of_service_;
  StmtPtr unfinished_deployments_;
};

Result<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path) {
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "store path is empty");

  // Folders that do not exist yet: once the store exists, each new entry is synced in its parent.
  const fs::path dir = ParentDir(path);
  std::vector<fs::path> missing;
  for (fs::path d = dir;; d = ParentDir(d)) {
    std::error_code ec;
    if (fs::exists(d, ec) || ec) break;
    missing.push_back(d);
    if (ParentDir(d) == d) break;
  }
  if (!missing.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo,
                       path + ": create directory " + dir.string() + ": " + ec.message());
    }
  }
  std::error_code exists_ec;
  const bool existed = fs::exists(path, exists_ec);

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
      nullptr);
  DbPtr db(raw);  // a failed open still allocates a handle that must be closed
  if (db == nullptr) return MakeError(ErrorCode::kInternal, path + ": open: out of memory");
  if (rc != SQLITE_OK) {
    return std::unexpected(
        ToError(ExplainOpenFailure(db.get(), rc, path, dir, existed), path, "open"));
  }
  // SQLite quietly falls back to read-only for a write-protected file; every later write would
  // then fail, so say so now.
  if (sqlite3_db_readonly(db.get(), "main") == 1) {
    return MakeError(ErrorCode::kIo, path + ": open: the file is read-only");
  }

  if (auto done = Exec(db.get(), "PRAGMA busy_timeout = 5000"); !done) {
    return std::unexpected(ToError(done.error(), path, "set busy_timeout"));
  }
  // Identify the file before any pragma that writes to it: a foreign file is left as it was.
  auto version = ReadSchemaVersion(db.get(), path);
  if (!version) return std::unexpected(version.error());
  if (*version > kSchemaVersion) return std::unexpected(RefuseNewer(path, *version).error());
  if (auto set = SetPragmas(db.get(), path); !set) return std::unexpected(set.error());
  if (auto migrated = Migrate(db.get(), path, *version); !migrated) {
    return std::unexpected(migrated.error());
  }

  if (!existed) {
    std::vector<fs::path> to_sync = {dir};
    if (!missing.empty()) {
      to_sync = missing;
      to_sync.push_back(ParentDir(missing.back()));
    }
    for (const fs::path& d : to_sync) {
      if (auto synced = SyncDirectory(d, path); !synced) return std::unexpected(synced.error());
    }
  }

  auto store = std::make_unique<SqliteStore>(path, std::move(db));
  if (auto prepared = store->PrepareStatements(); !prepared) {
    return std::unexpected(prepared.error());
  }
  return std::unique_ptr<Store>(std::move(store));
}

Status SqliteStore::PrepareStatements() {
  struct Entry {
    StmtPtr* stmt;
    std::string sql;
  };
  // Each read of deployments is one statement, so a deployment and its steps come from one
  // snapshot. A deployment without steps still yields one row, with NULL step columns.
  const std::string select_deployments =
      "SELECT d.id, d.service, d.release, d.color, d.actor, d.started_unix_ms, "
      "d.finished_unix_ms, d.outcome, d.message, d.spec_json, s.position, s.name, s.outcome, "
      "s.started_unix_ms, s.finished_unix_ms, s.message FROM ";
  const std::string join_steps = " LEFT JOIN deployment_steps AS s ON s.deployment_id = d.id ";
  const Entry entries[] = {
      {&get_color_, "SELECT live_color FROM services WHERE name = ?1"},
      {&set_color_,
       "INSERT INTO services (name, live_color, updated_unix_ms) VALUES (?1, ?2, ?3) "
       "ON CONFLICT (name) DO UPDATE SET live_color = excluded.live_color, "
       "updated_unix_ms = excluded.updated_unix_ms"},
      {&append_audit_,
       "INSERT INTO audit (time_unix_ms, service, action, actor, detail, outcome) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)"},
      {&recent_audit_all_,
       "SELECT id, time_unix_ms, service, action, actor, detail, outcome FROM audit "
       "ORDER BY id DESC LIMIT ?1"},
      {&recent_audit_service_,
       "SELECT id, time_unix_ms, service, action, actor, detail, outcome FROM audit "
       "WHERE service = ?2 ORDER BY id DESC LIMIT ?1"},
      {&get_slot_,
       "SELECT release, state, spec_json, updated_unix_ms FROM slots "
       "WHERE service = ?1 AND color = ?2"},
      {&set_slot_,
       "INSERT INTO slots (service, color, release, state, spec_json, updated_unix_ms) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
       "ON CONFLICT (service, color) DO UPDATE SET release = excluded.release, "
       "state = excluded.state, spec_json = excluded.spec_json, "
       "updated_unix_ms = excluded.updated_unix_ms"},
      {&insert_deployment_,
       "INSERT INTO deployments (service, release, color, actor, started_unix_ms, "
       "finished_unix_ms, outcome, message, spec_json) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"},
      {&update_deployment_,
       "UPDATE deployments SET finished_unix_ms = ?2, outcome = ?3, message = ?4 WHERE id = ?1"},
      {&delete_steps_, "DELETE FROM deployment_steps WHERE deployment_id = ?1"},
      {&insert_step_,
       "INSERT INTO deployment_steps (deployment_id, position, name, outcome, started_unix_ms, "
       "finished_unix_ms, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&deployment_by_id_, select_deployments + "deployments AS d" + join_steps +
                               "WHERE d.id = ?1 ORDER BY s.position"},
      {&deployments_of_service_,
       select_deployments +
           "(SELECT * FROM deployments WHERE service = ?2 ORDER BY id DESC LIMIT ?1) AS d" +
           join_steps + "ORDER BY d.id DESC, s.position"},
      // The literal outcome lets SQLite use the partial index deployments_running.
      {&unfinished_deployments_, select_deployments + "deployments AS d" + join_steps +
                                     "WHERE d.outcome = 'running' ORDER BY d.id, s.position"},
  };
  for (const Entry& e : entries) {
    auto stmt = Prepare(db_.get(), e.sql, SQLITE_PREPARE_PERSISTENT);
    if (!stmt) return std::unexpected(ToError(stmt.error(), path_, "prepare statements"));
    *e.stmt = std::move(*stmt);
  }
  return {};
}

Result<std::optional<Color>> SqliteStore::LiveColor(std::string_view service) {
  const std::string operation = ForService("read live color", service);
  StmtUse use(get_color_.get());
  if (auto b = BindText(db_.get(), use.get(), 1, service); !b) {
    return std::unexpected(ToError(b.error(), path_, operation));
  }
  int rc = sqlite3_step(use.get());
  if (rc == SQLITE_DONE) return std::optional<Color>();
  if (rc != SQLITE_ROW) return std::unexpected(Fail(rc, operation));
  const std::string stored = ColumnText(use.get(), 0);
  std::optional<Color> color = ParseColor(stored);
  if (!color) {
    return MakeError(ErrorCode::kIo,
                     path_ + ": " + operation + ": damaged store: color '" + stored + "'");
  }
  return color;
}

Status SqliteStore::SetLiveColor(std::string_view service, Color color) {
  const std::string operation = ForService("store live color", service);
  StmtUse use(set_color_.get());
  auto bound = BindTexts(db_.get(), use.get(), 1, {service, ColorName(color)});
  if (bound) bound = BindInt(db_.get(), use.get(), 3, NowUnixMs());
  if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
  // One statement in autocommit mode: DONE means committed and synced.
  if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE)
    return std::unexpected(Fail(rc, operation));
  return {};
}

Status SqliteStore::SetLiveColor(std::string_view service, Color color, const AuditEvent& audit) {
  const std::string operation = ForService("store live color", service);
  auto tx = Transaction::Begin(db_.get());
  if (!tx) return std::unexpected(ToError(tx.error(), path_, operation));
  if (Status s = SetLiveColor(service, color); !s) return s;
  if (Status s = AppendAudit(audit); !s) return s;
  // The statements above ran inside the transaction; this commit is the
  // one synced write.
  if (auto committed = tx->Commit(); !committed) {
    return std::unexpected(ToError(committed.error(), path_, operation));
  }
  return {};
}

Status SqliteStore::AppendAudit(const AuditEvent& event) {
  const std::string operation = ForService("append audit event", event.service);
  const int64_t time_unix_ms = event.time_unix_ms != 0 ? event.time_unix_ms : NowUnixMs();
  StmtUse use(append_audit_.get());
  sqlite3* db = db_.get();
  sqlite3_stmt* stmt = use.get();
  auto bound = BindInt(db, stmt, 1, time_unix_ms);
  if (bound) {
    bound = BindTexts(db, stmt, 2,
                      {event.service, event.action, event.actor, event.detail, event.outcome});
  }
  if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
  if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) return std::unexpected(Fail(rc, operation));
  return {};
}

Result<std::vector<AuditEvent>> SqliteStore::RecentAudit(std::string_view service, int limit) {
  const std::string operation =
      service.empty() ? std::string("read audit trail") : ForService("read audit trail", service);
  if (limit < 0) {
    return MakeError(ErrorCode::kInvalidArgument, path_ + ": " + operation + ": limit " +
                                                      std::to_string(limit) + " is negative");
  }
  StmtUse use(service.empty() ? recent_audit_all_.get() : recent_audit_service_.get());
  auto bound = BindInt(db_.get(), use.get(), 1, limit);
  if (bound && !service.empty()) bound = BindText(db_.get(), use.get(), 2, service);
  if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));

  std::vector<AuditEvent> events;
  int rc;
  while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = use.get();
    events.push_back(AuditEvent{
        .id = sqlite3_column_int64(s, 0),
        .time_unix_ms = sqlite3_column_int64(s, 1),
        .service = ColumnText(s, 2),
        .action = ColumnText(s, 3),
        .actor = ColumnText(s, 4),
        .detail = ColumnText(s, 5),
        .outcome = ColumnText(s, 6),
    });
  }
  if (rc != SQLITE_DONE) return std::unexpected(Fail(rc, operation));
  return events;
}

Result<SlotRecord> SqliteStore::Slot(std::string_view service, Color color) {
  const std::string operation = ForService("read slot " + std::string(ColorName(color)), service);
  StmtUse use(get_slot_.get());
  if (auto b = BindTexts(db_.get(), use.get(), 1, {service, ColorName(color)}); !b) {
    return std::unexpected(ToError(b.error(), path_, operation));
  }
  int rc = sqlite3_step(use.get());
  if (rc == SQLITE_DONE) return SlotRecord{};
  if (rc != SQLITE_ROW) return std::unexpected(Fail(rc, operation));
  sqlite3_stmt* s = use.get();
  return SlotRecord{
      .release = ColumnText(s, 0),
      .state = ColumnText(s, 1),
      .spec_json = ColumnText(s, 2),
      .updated_unix_ms = sqlite3_column_int64(s, 3),
  };
}

Status SqliteStore::SetSlot(std::string_view service, Color color, const SlotRecord& slot) {
  const std::string operation = ForService("store slot " + std::string(ColorName(color)), service);
  const int64_t updated_unix_ms = slot.updated_unix_ms != 0 ? slot.updated_unix_ms : NowUnixMs();
  StmtUse use(set_slot_.get());
  auto bound = BindTexts(db_.get(), use.get(), 1,
                         {service, ColorName(color), slot.release, slot.state, slot.spec_json});
  if (bound) bound = BindInt(db_.get(), use.get(), 6, updated_unix_ms);
  if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
  // One statement in autocommit mode: DONE means committed and synced.
  if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
    return std::unexpected(Fail(rc, operation));
  }
  return {};
}

// Positions are the indices of `steps`, so reading them back in position order restores the list.
Status SqliteStore::InsertSteps(int64_t deployment_id, const std::vector<StepRecord>& steps,
                                std::string_view operation) {
  sqlite3* db = db_.get();
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepRecord& step = steps[i];
    StmtUse use(insert_step_.get());
    sqlite3_stmt* stmt = use.get();
    auto bound = BindInt(db, stmt, 1, deployment_id);
    if (bound) bound = BindInt(db, stmt, 2, static_cast<int64_t>(i));
    if (bound) bound = BindTexts(db, stmt, 3, {step.name, step.outcome});
    if (bound) bound = BindInt(db, stmt, 5, step.started_unix_ms);
    if (bound) bound = BindInt(db, stmt, 6, step.finished_unix_ms);
    if (bound) bound = BindText(db, stmt, 7, step.message);
    if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
    if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
      return std::unexpected(Fail(rc, operation));
    }
  }
  return {};
}

Result<int64_t> SqliteStore::CreateDeployment(const DeploymentRecord& d) {
  const std::string operation = ForService("create deployment", d.service);
  const int64_t started_unix_ms = d.started_unix_ms != 0 ? d.started_unix_ms : NowUnixMs();
  sqlite3* db = db_.get();
  // The deployment and its steps are one commit: a crash never leaves a deployment without the
  // steps it was created with.
  auto tx = Transaction::Begin(db);
  if (!tx) return std::unexpected(ToError(tx.error(), path_, operation));
  int64_t id = 0;
  {
    StmtUse use(insert_deployment_.get());
    sqlite3_stmt* stmt = use.get();
    auto bound = BindTexts(db, stmt, 1, {d.service, d.release, ColorName(d.color), d.actor});
    if (bound) bound = BindInt(db, stmt, 5, started_unix_ms);
    if (bound) bound = BindInt(db, stmt, 6, d.finished_unix_ms);
    if (bound) bound = BindTexts(db, stmt, 7, {d.outcome, d.message, d.spec_json});
    if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
    if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
      return std::unexpected(Fail(rc, operation));
    }
    id = sqlite3_last_insert_rowid(db);
  }
  if (Status s = InsertSteps(id, d.steps, operation); !s) return std::unexpected(s.error());
  if (auto committed = tx->Commit(); !committed) {
    return std::unexpected(ToError(committed.error(), path_, operation));
  }
  return id;
}

Status SqliteStore::UpdateDeployment(const DeploymentRecord& d) {
  const std::string operation = "update deployment " + std::to_string(d.id);
  sqlite3* db = db_.get();
  // The new outcome and the new step list land together or not at all.
  auto tx = Transaction::Begin(db);
  if (!tx) return std::unexpected(ToError(tx.error(), path_, operation));
  {
    StmtUse use(update_deployment_.get());
    sqlite3_stmt* stmt = use.get();
    auto bound = BindInt(db, stmt, 1, d.id);
    if (bound) bound = BindInt(db, stmt, 2, d.finished_unix_ms);
    if (bound) bound = BindTexts(db, stmt, 3, {d.outcome, d.message});
    if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
    if (int rc = sqlite3_step(stmt); rc != SQLITE_DONE) {
      return std::unexpected(Fail(rc, operation));
    }
    if (sqlite3_changes64(db) == 0) {
      return MakeError(ErrorCode::kNotFound, path_ + ": " + operation + ": no such deployment");
    }
  }
  {
    StmtUse use(delete_steps_.get());
    if (auto b = BindInt(db, use.get(), 1, d.id); !b) {
      return std::unexpected(ToError(b.error(), path_, operation));
    }
    if (int rc = sqlite3_step(use.get()); rc != SQLITE_DONE) {
      return std::unexpected(Fail(rc, operation));
    }
  }
  if (Status s = InsertSteps(d.id, d.steps, operation); !s) return s;
  if (auto committed = tx->Commit(); !committed) {
    return std::unexpected(ToError(committed.error(), path_, operation));
  }
  return {};
}

// Reads the rows of one of the deployment queries: one row per step (or one row with NULL step
// columns for a deployment without steps), rows of one deployment adjacent, steps in order.
Result<std::vector<DeploymentRecord>> SqliteStore::ReadDeployments(sqlite3_stmt* s,
                                                                   std::string_view operation) {
  std::vector<DeploymentRecord> deployments;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const int64_t id = sqlite3_column_int64(s, 0);
    if (deployments.empty() || deployments.back().id != id) {
      const std::string stored_color = ColumnText(s, 3);
      std::optional<Color> color = ParseColor(stored_color);
      if (!color) {
        return std::unexpected(Damaged(
            operation, "deployment " + std::to_string(id) + " has color '" + stored_color + "'"));
      }
      deployments.push_back(DeploymentRecord{
          .id = id,
          .service = ColumnText(s, 1),
          .release = ColumnText(s, 2),
          .color = *color,
          .actor = ColumnText(s, 4),
          .started_unix_ms = sqlite3_column_int64(s, 5),
          .finished_unix_ms = sqlite3_column_int64(s, 6),
          .outcome = ColumnText(s, 7),
          .message = ColumnText(s, 8),
          .spec_json = ColumnText(s, 9),
      });
    }
    if (sqlite3_column_type(s, 10) == SQLITE_NULL) continue;
    deployments.back().steps.push_back(StepRecord{
        .name = ColumnText(s, 11),
        .outcome = ColumnText(s, 12),
        .started_unix_ms = sqlite3_column_int64(s, 13),
        .finished_unix_ms = sqlite3_column_int64(s, 14),
        .message = ColumnText(s, 15),
    });
  }
  if (rc != SQLITE_DONE) return std::unexpected(Fail(rc, operation));
  return deployments;
}

Result<DeploymentRecord> SqliteStore::Deployment(int64_t id) {
  const std::string operation = "read deployment " + std::to_string(id);
  StmtUse use(deployment_by_id_.get());
  if (auto b = BindInt(db_.get(), use.get(), 1, id); !b) {
    return std::unexpected(ToError(b.error(), path_, operation));
  }
  auto deployments = ReadDeployments(use.get(), operation);
  if (!deployments) return std::unexpected(deployments.error());
  if (deployments->empty()) {
    return MakeError(ErrorCode::kNotFound, path_ + ": " + operation + ": no such deployment");
  }
  return std::move(deployments->front());
}

Result<std::vector<DeploymentRecord>> SqliteStore::Deployments(std::string_view service,
                                                               int limit) {
  const std::string operation = ForService("read deployments", service);
  if (limit < 0) {
    return MakeError(ErrorCode::kInvalidArgument, path_ + ": " + operation + ": limit " +
                                                      std::to_string(limit) + " is negative");
  }
  StmtUse use(deployments_of_service_.get());
  auto bound = BindInt(db_.get(), use.get(), 1, limit);
  if (bound) bound = BindText(db_.get(), use.get(), 2, service);
  if (!bound) return std::unexpected(ToError(bound.error(), path_, operation));
  return ReadDeployments(use.get(), operation);
}

Result<std::vector<DeploymentRecord>> SqliteStore::UnfinishedDeployments() {
  StmtUse use(unfinished_deployments_.get());
  return ReadDeployments(use.get(), "read unfinished deployments");
}

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return SqliteStore::Open(path);
}

}  // namespace cutover
