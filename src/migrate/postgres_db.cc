// MigrationDb on PostgreSQL through libpq: one connection holds the runner's
// advisory lock and writes the history outside the files' transactions,
// another runs the files.
#include <fmt/format.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <thread>

#include "migrate/db.h"
#include "migrate/libpq.h"

namespace cutover {

namespace {

// The advisory lock key: "cuto" in ASCII, under 2^31 so that pg_locks
// shows it as objid with classid 0.
constexpr int64_t kLockKey = 0x6375746f;

constexpr const char* kCreateHistory = R"sql(
CREATE TABLE IF NOT EXISTS cutover_migrations (
  version text PRIMARY KEY,
  name text NOT NULL,
  phase text NOT NULL,
  checksum text NOT NULL,
  status text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz,
  release text NOT NULL DEFAULT '',
  error text NOT NULL DEFAULT '',
  allowed text NOT NULL DEFAULT '',
  statements_done integer NOT NULL DEFAULT 0,
  done_checksum text NOT NULL DEFAULT ''
))sql";

constexpr const char* kSelectHistory = R"sql(
SELECT version, name, phase, checksum, status,
       (extract(epoch FROM started_at) * 1000)::bigint,
       coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0),
       release, error, allowed, statements_done, done_checksum
  FROM cutover_migrations)sql";

struct ResultDeleter {
  void operator()(PGresult* r) const { Pq().PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { Pq().PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, ConnDeleter>;

std::string Field(const PGresult* r, int row, int col) {
  return Pq().PQgetisnull(r, row, col) ? std::string() : std::string(Pq().PQgetvalue(r, row, col));
}

std::string ConnError(PGconn* c) {
  std::string m = Pq().PQerrorMessage(c);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

DbError ResultError(PGconn* c, const PGresult* r) {
  DbError e;
  auto field = [&](int code) {
    const char* v = r == nullptr ? nullptr : Pq().PQresultErrorField(r, code);
    return v == nullptr ? std::string() : std::string(v);
  };
  e.message = field(PG_DIAG_MESSAGE_PRIMARY);
  if (e.message.empty()) e.message = ConnError(c);
  e.sqlstate = field(PG_DIAG_SQLSTATE);
  e.detail = field(PG_DIAG_MESSAGE_DETAIL);
  e.hint = field(PG_DIAG_MESSAGE_HINT);
  std::string position = field(PG_DIAG_STATEMENT_POSITION);
  if (!position.empty()) e.position = std::atoi(position.c_str());
  e.lock_timeout = e.sqlstate == "55P03";
  e.cancelled = e.sqlstate == "57014";
  return e;
}

void ForwardNotice(void* arg, const char* message) {
  auto* sink = static_cast<std::function<void(std::string_view)>*>(arg);
  std::string_view m = message;
  while (!m.empty() && m.back() == '\n') m.remove_suffix(1);
  if (*sink) (*sink)(m);
}

class PostgresDb final : public MigrationDb {
 public:
  PostgresDb(DatabaseUrl url, PgConn control, PgConn work)
      : url_(std::move(url)), control_(std::move(control)), work_(std::move(work)) {
    Pq().PQsetNoticeProcessor(work_.get(), ForwardNotice, &notice_sink_);
    Pq().PQsetNoticeProcessor(control_.get(), ForwardNotice, &notice_sink_);
    cancel_ = std::shared_ptr<PGcancel>(Pq().PQgetCancel(work_.get()), Pq().PQfreeCancel);
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  Status Lock(Millis wait, const std::function<void(std::string_view)>& waiting) override {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    Millis pause{50};
    bool told = false;
    for (;;) {
      Result<PgResult> r = Query(control_.get(), "SELECT pg_try_advisory_lock($1::bigint)",
                                 {std::to_string(kLockKey)});
      if (!r) return std::unexpected(r.error());
      if (Field(r->get(), 0, 0) == "t") return {};
      std::string holder = Holder();
      if (!told && waiting) {
        waiting(fmt::format("waiting for another migration runner{} to finish", holder));
        told = true;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return MakeError(ErrorCode::kTimeout,
                         fmt::format("{}: another migration runner{} still holds the lock "
                                     "after {}",
                                     url_.display, holder, FormatDuration(wait)));
      }
      std::this_thread::sleep_for(pause);
      pause = std::min<Millis>(pause * 2, Millis(1000));
    }
  }

  Status EnsureHistory() override {
    Result<PgResult> exists =
        Query(control_.get(), "SELECT to_regclass('cutover_migrations') IS NOT NULL", {});
    if (!exists) return std::unexpected(exists.error());
    if (Field(exists->get(), 0, 0) == "t") return {};
    Result<PgResult> r = Query(control_.get(), kCreateHistory, {});
    if (!r) return std::unexpected(r.error().Wrap("create the history table cutover_migrations"));
    return {};
  }

  Result<std::vector<AppliedMigration>> History() override {
    Result<PgResult> exists =
        Query(control_.get(), "SELECT to_regclass('cutover_migrations') IS NOT NULL", {});
    if (!exists) return std::unexpected(exists.error());
    if (Field(exists->get(), 0, 0) != "t") return std::vector<AppliedMigration>{};
    Result<PgResult> r =
        Query(control_.get(), std::string(kSelectHistory) + " ORDER BY version", {});
    if (!r) return std::unexpected(r.error().Wrap("read the history table cutover_migrations"));
    std::vector<AppliedMigration> out;
    for (int i = 0; i < Pq().PQntuples(r->get()); ++i) out.push_back(Row(r->get(), i));
    return out;
  }

  Result<std::optional<AppliedMigration>> HistoryRow(std::string_view version) override {
    Result<PgResult> r = Query(control_.get(), std::string(kSelectHistory) + " WHERE version = $1",
                               {std::string(version)});
    if (!r) return std::unexpected(r.error());
    if (Pq().PQntuples(r->get()) == 0) return std::optional<AppliedMigration>();
    return std::optional<AppliedMigration>(Row(r->get(), 0));
  }

  Status MarkRunning(const MigrationFile& file, std::string_view release,
                     std::string_view allowed) override {
    return Write(
        control_.get(),
        "INSERT INTO cutover_migrations (version, name, phase, checksum, status, "
        "release, allowed) VALUES ($1, $2, $3, $4, 'running', $5, $6) "
        "ON CONFLICT (version) DO UPDATE SET name = $2, phase = $3, checksum = $4, "
        "status = 'running', started_at = clock_timestamp(), finished_at = NULL, release = $5, "
        "error = '', allowed = $6",
        {file.version, file.name, std::string(PhaseName(file.phase)), file.sha256,
         std::string(release), std::string(allowed)});
  }

  Status MarkSucceeded(std::string_view version, int statements, bool in_transaction) override {
    return Write(
        in_transaction ? work_.get() : control_.get(),
        "UPDATE cutover_migrations SET status = 'succeeded', finished_at = clock_timestamp(), "
        "error = '', statements_done = $2 WHERE version = $1",
        {std::string(version), std::to_string(statements)});
  }

  Status MarkFailed(const MigrationFile& file, std::string_view release, std::string_view allowed,
                    std::string_view error) override {
    return Write(
        control_.get(),
        "INSERT INTO cutover_migrations (version, name, phase, checksum, status, "
        "release, allowed, error, finished_at) "
        "VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, clock_timestamp()) "
        "ON CONFLICT (version) DO UPDATE SET status = 'failed', finished_at = clock_timestamp(), "
        "error = $7",
        {file.version, file.name, std::string(PhaseName(file.phase)), file.sha256,
         std::string(release), std::string(allowed), std::string(error)});
  }

  Status MarkProgress(std::string_view version, int statements_done,
                      std::string_view done_sha256) override {
    return Write(control_.get(),
                 "UPDATE cutover_migrations SET statements_done = $2, done_checksum = $3 "
                 "WHERE version = $1",
                 {std::string(version), std::to_string(statements_done), std::string(done_sha256)});
  }

  ExecResult Begin() override { return Exec("BEGIN"); }
  ExecResult Commit() override { return Exec("COMMIT"); }
  void Rollback() override { PgResult(Pq().PQexec(work_.get(), "ROLLBACK")); }

  ExecResult SetLockTimeout(Millis timeout) override {
    return Exec(fmt::format("SET lock_timeout = '{}ms'", timeout.count()));
  }

  ExecResult Exec(std::string_view statement) override {
    return Outcome(PgResult(Pq().PQexec(work_.get(), std::string(statement).c_str())));
  }

  ExecResult ExecUnlessCancelled(std::string_view statement,
                                 const std::atomic<bool>& cancelled) override {
    PGconn* c = work_.get();
    if (Pq().PQsendQuery(c, std::string(statement).c_str()) == 0) {
      return std::unexpected(DbError{.message = ConnError(c)});
    }
    // The last result is the statement's (or the first error, which ends a
    // string of statements), as PQexec would return it.
    PgResult last;
    for (;;) {
      AwaitResult(c, cancelled);
      PgResult r(Pq().PQgetResult(c));
      if (!r) break;
      ExecStatusType status = Pq().PQresultStatus(r.get());
      last = std::move(r);
      if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) break;
    }
    return Outcome(std::move(last));
  }

  Result<std::optional<IndexInfo>> FindIndex(std::string_view table,
                                             std::string_view name) override {
    // On the statements' connection: its search path is theirs.
    Result<PgResult> r = Query(work_.get(),
                               "SELECT format('%I.%I', n.nspname, c.relname), i.indisvalid "
                               "FROM pg_index AS i "
                               "JOIN pg_class AS c ON c.oid = i.indexrelid "
                               "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
                               "WHERE i.indrelid = to_regclass($1) AND c.relname = $2",
                               {std::string(table), std::string(name)});
    if (!r) return std::unexpected(r.error());
    if (Pq().PQntuples(r->get()) == 0) return std::optional<IndexInfo>();
    return std::optional<IndexInfo>(
        IndexInfo{.qualified = Field(r->get(), 0, 0), .valid = Field(r->get(), 0, 1) == "t"});
  }

  std::function<void()> Interrupter() override {
    std::shared_ptr<PGcancel> cancel = cancel_;
    return [cancel] {
      char buffer[256];
      if (cancel) Pq().PQcancel(cancel.get(), buffer, sizeof buffer);
    };
  }

  void SetNoticeSink(std::function<void(std::string_view)> sink) override {
    notice_sink_ = std::move(sink);
  }

 private:
  // What a statement's result means for the migration.
  ExecResult Outcome(PgResult r) {
    ExecStatusType status = r ? Pq().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
      return {};
    }
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      // Nothing feeds COPY FROM STDIN here; end it so the connection stays usable.
      Pq().PQputCopyEnd(work_.get(), "COPY is not supported in migration files");
      while (PgResult(Pq().PQgetResult(work_.get()))) {
      }
      return std::unexpected(DbError{.message = "COPY FROM STDIN / TO STDOUT cannot run in a "
                                                "migration file; use INSERT or COPY from a "
                                                "server-side file"});
    }
    return std::unexpected(ResultError(work_.get(), r.get()));
  }

  // Waits until libpq holds the next result. A cancel request that reached
  // the server before the statement did was ignored there (the connection
  // was idle), so while `cancelled` is true and the statement still runs,
  // the request is sent again: first 200 ms after the flag is seen (a cancel
  // that worked has ended the statement by then, and no stray request is
  // left to hit the next one), then every 500 ms.
  void AwaitResult(PGconn* c, const std::atomic<bool>& cancelled) {
    using std::chrono::milliseconds;
    using std::chrono::steady_clock;
    std::optional<steady_clock::time_point> next_cancel;
    while (Pq().PQisBusy(c) != 0) {
      if (cancelled.load()) {
        steady_clock::time_point now = steady_clock::now();
        if (!next_cancel) {
          next_cancel = now + milliseconds(200);
        } else if (now >= *next_cancel) {
          char buffer[256];
          Pq().PQcancel(cancel_.get(), buffer, sizeof buffer);
          next_cancel = now + milliseconds(500);
        }
      }
      pollfd p{.fd = Pq().PQsocket(c), .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, 100) < 0 && errno != EINTR) return;
      // A broken connection: PQgetResult then reports it.
      if (Pq().PQconsumeInput(c) == 0) return;
    }
  }

  static AppliedMigration Row(const PGresult* r, int i) {
    AppliedMigration m;
    m.version = Field(r, i, 0);
    m.name = Field(r, i, 1);
    m.phase = ParsePhase(Field(r, i, 2)).value_or(Phase::kExpand);
    m.sha256 = Field(r, i, 3);
    m.status = Field(r, i, 4);
    m.started_unix_ms = std::atoll(Field(r, i, 5).c_str());
    m.finished_unix_ms = std::atoll(Field(r, i, 6).c_str());
    m.release = Field(r, i, 7);
    m.error = Field(r, i, 8);
    m.allowed = Field(r, i, 9);
    m.statements_done = std::atoi(Field(r, i, 10).c_str());
    m.done_sha256 = Field(r, i, 11);
    return m;
  }

  // " (PID 1234, since 09:30:00)" for the connection holding the lock.
  std::string Holder() {
    Result<PgResult> r = Query(control_.get(),
                               "SELECT l.pid, a.application_name FROM pg_locks l "
                               "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                               "WHERE l.locktype = 'advisory' AND l.classid = 0 AND "
                               "l.objid = $1::bigint AND l.objsubid = 1 AND l.granted AND "
                               "l.database = (SELECT oid FROM pg_database WHERE datname = "
                               "current_database())",
                               {std::to_string(kLockKey)});
    if (!r || Pq().PQntuples(r->get()) == 0) return {};
    std::string app = Field(r->get(), 0, 1);
    return fmt::format(" (backend pid {}{})", Field(r->get(), 0, 0),
                       app.empty() ? std::string() : ", " + app);
  }

  Result<PgResult> Query(PGconn* c, const std::string& sql,
                         const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    PgResult r(Pq().PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    ExecStatusType status = r ? Pq().PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      DbError e = ResultError(c, r.get());
      return MakeError(ErrorCode::kUnavailable, fmt::format("{}: {}", url_.display, e.message));
    }
    return r;
  }

  Status Write(PGconn* c, const std::string& sql, const std::vector<std::string>& params) {
    Result<PgResult> r = Query(c, sql, params);
    if (!r) return std::unexpected(r.error().Wrap("write the history table cutover_migrations"));
    return {};
  }

  DatabaseUrl url_;
  PgConn control_;
  PgConn work_;
  std::shared_ptr<PGcancel> cancel_;
  std::function<void(std::string_view)> notice_sink_;
};

Result<PgConn> Connect(const DatabaseUrl& url) {
  if (Result<const LibPq*> lib = LoadLibPq(); !lib) return std::unexpected(lib.error());
  const char* keywords[] = {"dbname", "connect_timeout", "fallback_application_name", nullptr};
  const char* values[] = {url.target.c_str(), "10", "cutover migrate", nullptr};
  PgConn c(Pq().PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (!c || Pq().PQstatus(c.get()) != CONNECTION_OK) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("cannot connect to {}: {}", url.display,
                                 c ? ConnError(c.get()) : std::string("out of memory")));
  }
  return c;
}

}  // namespace

Result<std::unique_ptr<MigrationDb>> OpenPostgres(const DatabaseUrl& url) {
  Result<PgConn> control = Connect(url);
  if (!control) return std::unexpected(control.error());
  Result<PgConn> work = Connect(url);
  if (!work) return std::unexpected(work.error());
  return std::make_unique<PostgresDb>(url, std::move(*control), std::move(*work));
}

}  // namespace cutover
