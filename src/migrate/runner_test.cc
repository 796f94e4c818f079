// Tests of the migration runner against a real PostgreSQL 15 server (one per
// test binary, a fresh database per test) and against SQLite files, checking
// what a user sees: the run report, the history (ReadMigrationStatus) and the
// schema and data, read back with a connection of the test's own.
#include "migrate/runner.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "migrate/db.h"
#include "support/net.h"
#include "support/postgres_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover {
namespace {

using namespace std::chrono_literals;
using test::PgRows;
using test::PgSession;
using test::PostgresServer;

std::string FreshDatabaseName() {
  static std::atomic<int> counter{0};
  return "runner_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

testing::AssertionResult HasText(std::string_view text, std::string_view want) {
  if (text.find(want) != std::string_view::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << want << "\" not in:\n" << text;
}

// --- The harness itself. ---

TEST(PostgresServerTest, SharedServerGivesEachTestItsOwnDatabase) {
  if (!test::PostgresAvailable()) GTEST_SKIP() << test::PostgresUnavailableReason();
  auto server = test::SharedPostgresServer();
  ASSERT_TRUE(server.has_value()) << server.error().message;
  PostgresServer& pg = **server;
  EXPECT_TRUE(pg.running());
  EXPECT_EQ(pg.Url("shop"), "postgres://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/shop");
  EXPECT_EQ(pg.Url(), "postgres://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/postgres");

  std::string name = FreshDatabaseName();
  ASSERT_TRUE(pg.CreateDatabase(name).has_value());
  auto session = PgSession::Connect(pg.Url(name));
  ASSERT_TRUE(session.has_value()) << session.error().message;
  auto db = session->QueryValue("SELECT current_database()");
  ASSERT_TRUE(db.has_value()) << db.error().message;
  EXPECT_EQ(db->value_or(""), name);
  auto version = session->QueryValue("SHOW server_version_num");
  ASSERT_TRUE(version.has_value()) << version.error().message;
  EXPECT_TRUE(version->value_or("").starts_with("15")) << version->value_or("");

  auto again = pg.CreateDatabase(name);
  ASSERT_FALSE(again.has_value());
  EXPECT_TRUE(HasText(again.error().message, "already exists"));
  EXPECT_FALSE(pg.CreateDatabase("bad name; DROP").has_value());

  auto bad = session->Query("SELEC 1");
  ASSERT_FALSE(bad.has_value());
  EXPECT_TRUE(HasText(bad.error().message, "syntax error"));
}

TEST(PostgresServerTest, StopEndsTheServerAndDestructionRemovesItsFolder) {
  if (!test::PostgresAvailable()) GTEST_SKIP() << test::PostgresUnavailableReason();
  std::filesystem::path root;
  uint16_t port = 0;
  {
    auto server = PostgresServer::Start();
    ASSERT_TRUE(server.has_value()) << server.error().message;
    root = server->root();
    port = server->port();
    EXPECT_TRUE(std::filesystem::exists(root / "data" / "PG_VERSION"));
    EXPECT_TRUE(test::WaitForPort("127.0.0.1", port, test::DeadlineIn(1s)));
    EXPECT_FALSE(server->Log().empty());

    ASSERT_TRUE(server->Stop().has_value()) << server->Log();
    EXPECT_FALSE(server->running());
    EXPECT_FALSE(PgSession::Connect(server->Url()).has_value());
    EXPECT_TRUE(std::filesystem::exists(root)) << "the folder stays until destruction";
  }
  EXPECT_FALSE(std::filesystem::exists(root));
  EXPECT_FALSE(test::ConnectTcp("127.0.0.1", port, test::DeadlineIn(100ms)).has_value());
}

// --- ParseDatabaseUrl ---

TEST(ParseDatabaseUrlTest, PostgresUrlsGoToLibpqAsTheyAre) {
  auto url = ParseDatabaseUrl("postgres://app:s3cret@db.internal:5432/shop?sslmode=disable");
  ASSERT_TRUE(url.has_value()) << url.error().message;
  EXPECT_EQ(url->dialect, Dialect::kPostgres);
  EXPECT_EQ(url->target, "postgres://app:s3cret@db.internal:5432/shop?sslmode=disable");
  EXPECT_EQ(url->display.find("s3cret"), std::string::npos) << url->display;
  EXPECT_TRUE(HasText(url->display, "db.internal:5432/shop"));
  EXPECT_TRUE(HasText(url->display, "app"));

  auto long_scheme = ParseDatabaseUrl("postgresql://db.internal/shop");
  ASSERT_TRUE(long_scheme.has_value()) << long_scheme.error().message;
  EXPECT_EQ(long_scheme->dialect, Dialect::kPostgres);
  EXPECT_EQ(long_scheme->target, "postgresql://db.internal/shop");
  EXPECT_EQ(long_scheme->display, "postgresql://db.internal/shop");

  auto query_password = ParseDatabaseUrl("postgres://app@db.internal/shop?password=s3cret");
  ASSERT_TRUE(query_password.has_value()) << query_password.error().message;
  EXPECT_EQ(query_password->target, "postgres://app@db.internal/shop?password=s3cret");
  EXPECT_EQ(query_password->display.find("s3cret"), std::string::npos) << query_password->display;
}

TEST(ParseDatabaseUrlTest, RelativeSqlitePathsResolveAgainstTheBaseDir) {
  auto relative = ParseDatabaseUrl("sqlite:data/app.db", "/srv/shop");
  ASSERT_TRUE(relative.has_value()) << relative.error().message;
  EXPECT_EQ(relative->dialect, Dialect::kSqlite);
  EXPECT_EQ(relative->target, "/srv/shop/data/app.db");
  EXPECT_TRUE(HasText(relative->display, "/srv/shop/data/app.db"));

  auto absolute = ParseDatabaseUrl("sqlite:/var/lib/shop/app.db", "/srv/shop");
  ASSERT_TRUE(absolute.has_value()) << absolute.error().message;
  EXPECT_EQ(absolute->target, "/var/lib/shop/app.db");

  auto no_base = ParseDatabaseUrl("sqlite:data/app.db");
  ASSERT_TRUE(no_base.has_value()) << no_base.error().message;
  EXPECT_EQ(no_base->target, "data/app.db");
}

TEST(ParseDatabaseUrlTest, RejectsUnknownSchemesAndEmptyPaths) {
  auto mysql = ParseDatabaseUrl("mysql://db.internal/shop");
  ASSERT_FALSE(mysql.has_value());
  EXPECT_EQ(mysql.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(HasText(mysql.error().message, "mysql://db.internal/shop"));

  EXPECT_FALSE(ParseDatabaseUrl("sqlite:").has_value());
  EXPECT_FALSE(ParseDatabaseUrl("").has_value());
  EXPECT_FALSE(ParseDatabaseUrl("/var/lib/shop/app.db").has_value());
}

// --- Reading a SQLite database the way a user's own client would. ---

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

Result<PgRows> SqliteQuery(const std::string& path, std::string_view sql) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, SqliteCloser> db(raw);
  if (rc != SQLITE_OK) {
    return MakeError(ErrorCode::kIo, "open " + path + ": " + sqlite3_errstr(rc));
  }
  sqlite3_busy_timeout(db.get(), 10'000);
  sqlite3_stmt* raw_stmt = nullptr;
  rc = sqlite3_prepare_v2(db.get(), sql.data(), static_cast<int>(sql.size()), &raw_stmt, nullptr);
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt(raw_stmt);
  if (rc != SQLITE_OK) return MakeError(ErrorCode::kInternal, sqlite3_errmsg(db.get()));
  PgRows rows;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int c = 0; c < sqlite3_column_count(stmt.get()); ++c) {
      const unsigned char* text = sqlite3_column_text(stmt.get(), c);
      row.emplace_back(text == nullptr ? "" : reinterpret_cast<const char*>(text));
    }
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return MakeError(ErrorCode::kInternal, sqlite3_errmsg(db.get()));
  return rows;
}

// True while another connection holds the database's write lock (the
// runner's exclusive transaction).
bool SqliteWriteLocked(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, SqliteCloser> db(raw);
  if (rc != SQLITE_OK) return false;
  rc = sqlite3_exec(db.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

std::string Describe(const RunReport& report) {
  std::string out = std::string("ok=") + (report.ok ? "true" : "false") +
                    " phase=" + std::string(PhaseName(report.phase)) + " error=" + report.error +
                    "\n";
  for (const FileRun& f : report.files) {
    out += "  file " + f.filename + ": " + f.outcome + " attempts=" + std::to_string(f.attempts) +
           (f.message.empty() ? "" : " message=" + f.message) + "\n";
  }
  for (const LintFinding& l : report.lint) {
    out += "  lint " + l.file + ":" + std::to_string(l.line) + ": " + l.rule + ": " + l.message +
           (l.allowed ? " (allowed: " + l.allow_reason + ")" : "") + "\n";
  }
  return out;
}

std::vector<std::string> Filenames(const RunReport& report) {
  std::vector<std::string> out;
  for (const FileRun& f : report.files) out.push_back(f.filename);
  return out;
}

std::string DialectLabel(Dialect d) { return std::string(DialectName(d)); }

constexpr std::string_view kRelease = "v1.4.0";

// --- One database and one migrations folder per test. ---

class RunnerFixture : public testing::Test {
 protected:
  explicit RunnerFixture(Dialect dialect) : dialect_(dialect) {}

  void SetUp() override {
    auto tmp = test::TempDir::Create("cutover-runner");
    ASSERT_TRUE(tmp.has_value()) << tmp.error().message;
    tmp_.emplace(std::move(*tmp));
    dir_ = tmp_->File("migrations");
    std::filesystem::create_directory(dir_);
    std::string raw;
    if (pg()) {
      if (!test::PostgresAvailable()) GTEST_SKIP() << test::PostgresUnavailableReason();
      auto server = test::SharedPostgresServer();
      ASSERT_TRUE(server.has_value()) << server.error().message;
      server_ = *server;
      std::string name = FreshDatabaseName();
      auto created = server_->CreateDatabase(name);
      ASSERT_TRUE(created.has_value()) << created.error().message;
      raw = server_->Url(name);
    } else {
      raw = "sqlite:" + tmp_->File("app.db");
    }
    auto url = ParseDatabaseUrl(raw);
    ASSERT_TRUE(url.has_value()) << url.error().message;
    url_ = *url;
  }

  bool pg() const { return dialect_ == Dialect::kPostgres; }

  void Write(const std::string& filename, const std::string& sql) {
    auto written = test::WriteFile(std::filesystem::path(dir_) / filename, sql);
    ASSERT_TRUE(written.has_value()) << written.error().message;
  }

  // One run; the progress lines land in progress_.
  RunReport Run(Phase phase, RunOptions options = {}) {
    if (options.release.empty()) options.release = std::string(kRelease);
    if (!options.progress) {
      options.progress = [this](std::string_view line) { progress_.emplace_back(line); };
    }
    auto report = RunMigrations(url_, dir_, phase, options);
    EXPECT_TRUE(report.has_value()) << report.error().message;
    if (!report) {
      RunReport failed;
      failed.ok = false;
      failed.error = report.error().message;
      return failed;
    }
    return *report;
  }

  DatabaseStatus ReadStatus() {
    auto status = ReadMigrationStatus(url_, dir_);
    EXPECT_TRUE(status.has_value()) << status.error().message;
    return status ? *status : DatabaseStatus{};
  }

  static const MigrationState* Find(const DatabaseStatus& status, std::string_view filename) {
    for (const MigrationState& s : status.files) {
      if (s.filename == filename) return &s;
    }
    return nullptr;
  }

  // The state ReadMigrationStatus reports for `filename` ("" when absent).
  std::string StateOf(std::string_view filename) {
    DatabaseStatus status = ReadStatus();
    const MigrationState* s = Find(status, filename);
    return s == nullptr ? std::string() : s->state;
  }

  Result<PgRows> Query(std::string_view sql) {
    if (pg()) {
      auto session = PgSession::Connect(url_.target);
      if (!session) return std::unexpected(session.error());
      return session->Query(sql);
    }
    return SqliteQuery(url_.target, sql);
  }

  PgRows Rows(std::string_view sql) {
    auto rows = Query(sql);
    EXPECT_TRUE(rows.has_value()) << sql << ": " << rows.error().message;
    return rows ? *rows : PgRows{};
  }

  // The first column of the first row, or "" when there is none.
  std::string Value(std::string_view sql) {
    PgRows rows = Rows(sql);
    return rows.empty() || rows.front().empty() ? std::string() : rows.front().front();
  }

  bool TableExists(const std::string& table) {
    if (pg()) {
      return Value("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '" +
                   table + "'") == "1";
    }
    if (!std::filesystem::exists(url_.target)) return false;
    return Value("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '" + table +
                 "'") == "1";
  }

  bool ColumnExists(const std::string& table, const std::string& column) {
    if (pg()) {
      return Value(
                 "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
                 "AND table_name = '" +
                 table + "' AND column_name = '" + column + "'") == "1";
    }
    return Value("SELECT count(*) FROM pragma_table_info('" + table + "') WHERE name = '" + column +
                 "'") == "1";
  }

  // History rows of the table itself, whatever ReadMigrationStatus makes of them.
  int HistoryRows(std::string_view version = {}) {
    if (!TableExists("cutover_migrations")) return 0;
    std::string sql = "SELECT count(*) FROM cutover_migrations";
    if (!version.empty()) sql += " WHERE version = '" + std::string(version) + "'";
    return std::atoi(Value(sql).c_str());
  }

  // A statement that keeps the database busy for about `seconds` (PostgreSQL)
  // or for a while (SQLite: a counting query; 0 means practically forever).
  std::string SlowStatement(int seconds) const {
    if (pg()) return "SELECT pg_sleep(" + std::to_string(seconds) + ");";
    std::string limit = seconds == 0 ? "1000000000000" : "1500000";
    return "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < " + limit +
           ") SELECT count(*) FROM c;";
  }

  std::string AllProgress() const {
    std::string out;
    for (const std::string& line : progress_) out += line + "\n";
    return out;
  }

  Dialect dialect_;
  std::optional<test::TempDir> tmp_;
  std::string dir_;
  DatabaseUrl url_;
  PostgresServer* server_ = nullptr;
  std::vector<std::string> progress_;
};

class RunnerTest : public RunnerFixture, public testing::WithParamInterface<Dialect> {
 protected:
  RunnerTest() : RunnerFixture(GetParam()) {}
};

class PostgresRunnerTest : public RunnerFixture {
 protected:
  PostgresRunnerTest() : RunnerFixture(Dialect::kPostgres) {}

  static constexpr std::string_view kOrdersRefFile = "20260102000000_orders_ref.expand.sql";

  // Writes the file that builds the unique index orders_ref concurrently
  // with `create`, after the header lines `headers` (each ending in a
  // newline).
  void WriteOrdersRefIndex(
      const std::string& headers = "",
      const std::string& create = "CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON orders (ref)") {
    Write(std::string(kOrdersRefFile), "-- cutover: no-transaction\n" + headers + create + ";\n");
  }

  // Applies a table orders, opens a writer's transaction on it in writer_,
  // and writes the file that builds orders_ref under a 200 ms lock timeout:
  // the build creates its index, then waits for the writer's transaction
  // and times out, leaving the index INVALID, until writer_ commits.
  void OpenWriterOnOrders() {
    Write("20260101000000_create_orders.expand.sql",
          "CREATE TABLE orders (id integer, ref text);\nINSERT INTO orders VALUES (1, 'a');\n");
    ASSERT_TRUE(Run(Phase::kExpand).ok);
    auto writer = PgSession::Connect(url_.target);
    ASSERT_TRUE(writer.has_value()) << writer.error().message;
    writer_.emplace(std::move(*writer));
    ASSERT_TRUE(writer_->Query("BEGIN; INSERT INTO orders VALUES (2, 'b');").has_value());
    WriteOrdersRefIndex("-- cutover: lock-timeout=200ms\n");
  }

  std::optional<PgSession> writer_;

  // Applies a table orders whose refs repeat, leaves an INVALID index
  // orders_ref by a failed build outside cutover, then removes the repeat.
  void LeaveInvalidOrdersRef() {
    Write("20260101000000_create_orders.expand.sql",
          "CREATE TABLE orders (id integer, ref text);\n"
          "INSERT INTO orders VALUES (1, 'a'), (2, 'a');\n");
    ASSERT_TRUE(Run(Phase::kExpand).ok);
    EXPECT_FALSE(Query("CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON orders (ref)").has_value());
    ASSERT_EQ(OrdersRefValid(), "f");
    Rows("DELETE FROM orders WHERE id = 2");
  }

  // "t" or "f" for the index orders_ref's validity, "" when there is none.
  std::string OrdersRefValid() {
    return Value(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'orders_ref'");
  }
};

INSTANTIATE_TEST_SUITE_P(Dialects, RunnerTest,
                         testing::Values(Dialect::kPostgres, Dialect::kSqlite),
                         [](const testing::TestParamInfo<Dialect>& info) {
                           return DialectLabel(info.param);
                         });

// --- Order, idempotence, history. ---

TEST_P(RunnerTest, AppliesFilesInVersionOrderAndOnlyOnce) {
  // Names sort the other way round, and the later file is written first.
  const std::string create = "20260101000000_z_create_orders.expand.sql";
  const std::string add = "20260102000000_b_add_note.expand.sql";
  const std::string seed = "20260103000000_a_seed.expand.sql";
  const std::string create_sql =
      "-- the orders of the shop\nCREATE TABLE orders (id integer PRIMARY KEY, total integer);\n";
  const std::string add_sql = "ALTER TABLE orders ADD COLUMN note text;\n";
  const std::string seed_sql = "INSERT INTO orders (id, total, note) VALUES (1, 5, 'first');\n";
  Write(seed, seed_sql);
  Write(add, add_sql);
  Write(create, create_sql);

  RunReport report = Run(Phase::kExpand);
  ASSERT_TRUE(report.ok) << Describe(report);
  EXPECT_EQ(report.phase, Phase::kExpand);
  EXPECT_EQ(Filenames(report), (std::vector<std::string>{create, add, seed})) << Describe(report);
  for (const FileRun& f : report.files) {
    EXPECT_EQ(f.outcome, "applied") << f.filename;
    EXPECT_EQ(f.attempts, 1) << f.filename;
    EXPECT_TRUE(f.message.empty()) << f.message;
    EXPECT_GE(f.elapsed_ms, 0);
  }
  EXPECT_EQ(Value("SELECT note FROM orders WHERE id = 1"), "first");

  DatabaseStatus status = ReadStatus();
  EXPECT_EQ(status.url.target, url_.target);
  ASSERT_EQ(status.files.size(), 3u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {create, create_sql}, {add, add_sql}, {seed, seed_sql}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const MigrationState& s = status.files[i];
    SCOPED_TRACE(expected[i].first);
    EXPECT_EQ(s.filename, expected[i].first);
    EXPECT_EQ(s.version, expected[i].first.substr(0, 14));
    EXPECT_EQ(s.phase, Phase::kExpand);
    EXPECT_EQ(s.state, "applied");
    ASSERT_TRUE(s.applied.has_value());
    EXPECT_EQ(s.applied->version, s.version);
    EXPECT_EQ(s.applied->status, "succeeded");
    EXPECT_EQ(s.applied->release, kRelease);
    EXPECT_EQ(s.applied->sha256, Sha256Hex(expected[i].second));
    EXPECT_TRUE(s.applied->error.empty()) << s.applied->error;
    EXPECT_GT(s.applied->started_unix_ms, 0);
    EXPECT_GE(s.applied->finished_unix_ms, s.applied->started_unix_ms);
  }
  EXPECT_EQ(status.files[0].name, "z_create_orders");

  RunReport again = Run(Phase::kExpand, RunOptions{.release = "v1.5.0"});
  ASSERT_TRUE(again.ok) << Describe(again);
  EXPECT_TRUE(again.files.empty()) << Describe(again);
  EXPECT_EQ(HistoryRows(), 3);
  EXPECT_EQ(Value("SELECT count(*) FROM orders"), "1");
  DatabaseStatus after = ReadStatus();
  const MigrationState* first = Find(after, create);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->applied.has_value());
  EXPECT_EQ(first->applied->release, kRelease) << "a later run does not rewrite the history";
}

TEST_P(RunnerTest, StatusOfAnUntouchedDatabaseShowsEveryFilePending) {
  Write("20260101000000_create_orders.expand.sql", "CREATE TABLE orders (id integer);\n");
  DatabaseStatus status = ReadStatus();
  ASSERT_EQ(status.files.size(), 1u);
  EXPECT_EQ(status.files[0].state, "pending");
  EXPECT_FALSE(status.files[0].applied.has_value());
  EXPECT_FALSE(TableExists("cutover_migrations"));
}

TEST_P(RunnerTest, RunsOnlyTheRequestedPhase) {
  const std::string expand = "20260101000000_create_orders.expand.sql";
  const std::string backfill = "20260102000000_seed_orders.backfill.sql";
  const std::string contract = "20260103000000_drop_legacy.contract.sql";
  Write(expand, "CREATE TABLE orders (id integer PRIMARY KEY, legacy text);\n");
  Write(backfill, "INSERT INTO orders (id, legacy) VALUES (1, 'old');\n");
  Write(contract, "ALTER TABLE orders DROP COLUMN legacy;\n");

  RunReport expanded = Run(Phase::kExpand);
  ASSERT_TRUE(expanded.ok) << Describe(expanded);
  EXPECT_EQ(Filenames(expanded), std::vector<std::string>{expand});
  EXPECT_EQ(StateOf(expand), "applied");
  EXPECT_EQ(StateOf(backfill), "pending");
  EXPECT_EQ(StateOf(contract), "pending");
  EXPECT_TRUE(ColumnExists("orders", "legacy"));
  EXPECT_EQ(Value("SELECT count(*) FROM orders"), "0");

  RunReport backfilled = Run(Phase::kBackfill);
  ASSERT_TRUE(backfilled.ok) << Describe(backfilled);
  EXPECT_EQ(backfilled.phase, Phase::kBackfill);
  EXPECT_EQ(Filenames(backfilled), std::vector<std::string>{backfill});
  EXPECT_EQ(Value("SELECT count(*) FROM orders"), "1");
  EXPECT_EQ(StateOf(contract), "pending");
  EXPECT_TRUE(ColumnExists("orders", "legacy"));

  RunReport contracted = Run(Phase::kContract);
  ASSERT_TRUE(contracted.ok) << Describe(contracted);
  EXPECT_EQ(Filenames(contracted), std::vector<std::string>{contract});
  EXPECT_FALSE(ColumnExists("orders", "legacy"));
  EXPECT_TRUE(ColumnExists("orders", "id"));
  DatabaseStatus status = ReadStatus();
  ASSERT_EQ(status.files.size(), 3u);
  for (const MigrationState& s : status.files) EXPECT_EQ(s.state, "applied") << s.filename;
  EXPECT_EQ(status.files[2].phase, Phase::kContract);
  ASSERT_TRUE(status.files[2].applied.has_value());
  EXPECT_EQ(status.files[2].applied->phase, Phase::kContract);
}

TEST_P(RunnerTest, OnlyRunsTheListedVersions) {
  const std::string a = "20260102000000_drop_a.contract.sql";
  const std::string b = "20260103000000_drop_b.contract.sql";
  Write("20260101000000_create.expand.sql", "CREATE TABLE t (a integer, b integer, c integer);\n");
  Write(a, "ALTER TABLE t DROP COLUMN a;\n");
  Write(b, "ALTER TABLE t DROP COLUMN b;\n");
  ASSERT_TRUE(Run(Phase::kExpand).ok);

  RunOptions options;
  options.only = std::vector<std::string>{"20260103000000"};
  RunReport report = Run(Phase::kContract, options);
  ASSERT_TRUE(report.ok) << Describe(report);
  EXPECT_EQ(Filenames(report), std::vector<std::string>{b});
  EXPECT_TRUE(ColumnExists("t", "a"));
  EXPECT_FALSE(ColumnExists("t", "b"));
  EXPECT_EQ(StateOf(a), "pending");
  EXPECT_EQ(StateOf(b), "applied");
}

// --- Integrity ---

TEST_P(RunnerTest, RefusesToRunWhenAnAppliedFileChanged) {
  const std::string create = "20260101000000_create_orders.expand.sql";
  const std::string customers = "20260102000000_create_customers.expand.sql";
  const std::string original = "CREATE TABLE orders (id integer);\n";
  Write(create, original);
  ASSERT_TRUE(Run(Phase::kExpand).ok);

  Write(create, "CREATE TABLE orders (id integer, total integer);\n");
  Write(customers, "CREATE TABLE customers (id integer);\n");
  RunReport report = Run(Phase::kExpand);
  EXPECT_FALSE(report.ok);
  EXPECT_TRUE(HasText(report.error, create));
  EXPECT_TRUE(report.files.empty()) << Describe(report);
  EXPECT_FALSE(TableExists("customers"));
  EXPECT_FALSE(ColumnExists("orders", "total"));

  DatabaseStatus status = ReadStatus();
  const MigrationState* changed = Find(status, create);
  ASSERT_NE(changed, nullptr);
  EXPECT_EQ(changed->state, "changed");
  ASSERT_TRUE(changed->applied.has_value());
  EXPECT_EQ(changed->applied->sha256, Sha256Hex(original));
  EXPECT_EQ(StateOf(customers), "pending");
  EXPECT_EQ(HistoryRows(), 1);

  // Restoring the file as it ran lets the run go on.
  Write(create, original);
  RunReport restored = Run(Phase::kExpand);
  ASSERT_TRUE(restored.ok) << Describe(restored);
  EXPECT_EQ(Filenames(restored), std::vector<std::string>{customers});
}

TEST_P(RunnerTest, AnAppliedFileThatIsGoneShowsAsMissing) {
  const std::string create = "20260101000000_create_orders.expand.sql";
  Write(create, "CREATE TABLE orders (id integer);\n");
  ASSERT_TRUE(Run(Phase::kExpand).ok);
  std::filesystem::remove(std::filesystem::path(dir_) / create);
  DatabaseStatus status = ReadStatus();
  ASSERT_EQ(status.files.size(), 1u);
  EXPECT_EQ(status.files[0].state, "missing");
  EXPECT_EQ(status.files[0].version, "20260101000000");
  EXPECT_TRUE(status.files[0].filename.empty());
  ASSERT_TRUE(status.files[0].applied.has_value());
  EXPECT_EQ(status.files[0].applied->name, "create_orders");
}

// --- Failures ---

TEST_P(RunnerTest, AFailingFileStopsTheRunAndTheFixedFileResumesIt) {
  const std::string orders = "20260101000000_create_orders.expand.sql";
  const std::string widgets = "20260102000000_create_widgets.expand.sql";
  const std::string gadgets = "20260103000000_create_gadgets.expand.sql";
  Write(orders, "CREATE TABLE orders (id integer);\n");
  Write(widgets,
        "CREATE TABLE widgets (id integer, name text);\n"
        "-- every widget has a name\n"
        "SELEC name FROM widgets;\n");
  Write(gadgets, "CREATE TABLE gadgets (id integer);\n");

  RunReport report = Run(Phase::kExpand);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.files.size(), 2u) << Describe(report);
  EXPECT_EQ(report.files[0].filename, orders);
  EXPECT_EQ(report.files[0].outcome, "applied");
  EXPECT_EQ(report.files[1].filename, widgets);
  EXPECT_EQ(report.files[1].outcome, "failed");
  EXPECT_TRUE(HasText(report.files[1].message, widgets + ":3:"));
  EXPECT_TRUE(HasText(report.files[1].message, "syntax error"));
  EXPECT_TRUE(HasText(report.files[1].message, "SELEC"));
  EXPECT_TRUE(HasText(report.error, widgets + ":3:"));

  EXPECT_TRUE(TableExists("orders"));
  EXPECT_FALSE(TableExists("widgets")) << "the file's first statement is rolled back";
  EXPECT_FALSE(TableExists("gadgets")) << "no file runs after a failure";

  DatabaseStatus status = ReadStatus();
  const MigrationState* failed = Find(status, widgets);
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->state, "failed");
  ASSERT_TRUE(failed->applied.has_value());
  EXPECT_EQ(failed->applied->status, "failed");
  EXPECT_EQ(failed->applied->release, kRelease);
  EXPECT_TRUE(HasText(failed->applied->error, widgets + ":3:"));
  EXPECT_TRUE(HasText(failed->applied->error, "syntax error"));
  EXPECT_EQ(StateOf(gadgets), "pending");
  EXPECT_EQ(HistoryRows(gadgets.substr(0, 14)), 0);

  Write(widgets,
        "CREATE TABLE widgets (id integer, name text);\n"
        "-- every widget has a name\n"
        "SELECT name FROM widgets;\n");
  RunReport resumed = Run(Phase::kExpand, RunOptions{.release = "v1.4.1"});
  ASSERT_TRUE(resumed.ok) << Describe(resumed);
  EXPECT_EQ(Filenames(resumed), (std::vector<std::string>{widgets, gadgets}));
  EXPECT_TRUE(TableExists("widgets"));
  EXPECT_TRUE(TableExists("gadgets"));
  status = ReadStatus();
  for (const MigrationState& s : status.files) EXPECT_EQ(s.state, "applied") << s.filename;
  const MigrationState* fixed = Find(status, widgets);
  ASSERT_NE(fixed, nullptr);
  ASSERT_TRUE(fixed->applied.has_value());
  EXPECT_EQ(fixed->applied->status, "succeeded");
  EXPECT_EQ(fixed->applied->release, "v1.4.1");
  EXPECT_TRUE(fixed->applied->error.empty()) << fixed->applied->error;
  EXPECT_EQ(HistoryRows(widgets.substr(0, 14)), 1);
}

TEST_P(RunnerTest, AFailedExpandFileBlocksTheContractPhase) {
  const std::string broken = "20260101000000_broken.expand.sql";
  Write(broken, "CREATE TABLE orders (id integer);\nINSERT INTO nowhere VALUES (1);\n");
  Write("20260102000000_drop_orders.contract.sql", "DROP TABLE orders;\n");
  EXPECT_FALSE(Run(Phase::kExpand).ok);
  RunReport contract = Run(Phase::kContract);
  EXPECT_FALSE(contract.ok);
  EXPECT_TRUE(contract.files.empty()) << Describe(contract);
  EXPECT_TRUE(HasText(contract.error, broken));
}

// --- Transactions ---

TEST_P(RunnerTest, NoTransactionFileAppliesItsStatementsOneByOne) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE TABLE orders (id integer, note text);\n");
  const std::string index = "20260102000000_index_orders.expand.sql";
  const std::string concurrently = pg() ? "CONCURRENTLY " : "";
  Write(index, "-- cutover: no-transaction\n-- cutover: lock-timeout=5s\nCREATE INDEX " +
                   concurrently + "orders_note_idx ON orders (note);\nCREATE INDEX " +
                   concurrently + "orders_id_idx ON orders (id);\n");

  RunReport report = Run(Phase::kExpand);
  ASSERT_TRUE(report.ok) << Describe(report);
  ASSERT_EQ(report.files.size(), 2u);
  EXPECT_EQ(report.files[1].outcome, "applied");
  if (pg()) {
    EXPECT_EQ(Value("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname IN ('orders_note_idx', 'orders_id_idx') AND i.indisvalid"),
              "2");
  } else {
    EXPECT_EQ(Value("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                    "('orders_note_idx', 'orders_id_idx')"),
              "2");
  }
  DatabaseStatus status = ReadStatus();
  const MigrationState* s = Find(status, index);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, "applied");
  ASSERT_TRUE(s->applied.has_value());
  EXPECT_EQ(s->applied->statements_done, 2);
}

TEST_F(PostgresRunnerTest, ConcurrentIndexNeedsTheNoTransactionHeader) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE TABLE orders (id integer, note text);\n");
  const std::string index = "20260102000000_index_orders.expand.sql";
  Write(index, "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);\n");
  RunReport report = Run(Phase::kExpand);
  EXPECT_FALSE(report.ok);
  ASSERT_FALSE(report.files.empty());
  EXPECT_TRUE(HasText(report.files.back().message, index + ":1:"));
  EXPECT_TRUE(HasText(report.files.back().message, "cannot run inside a transaction block"));
  EXPECT_EQ(StateOf(index), "failed");
}

TEST_F(PostgresRunnerTest, NoTransactionFileResumesAfterItsAppliedStatements) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE TABLE orders (id integer, note text);\n");
  const std::string index = "20260102000000_index_orders.expand.sql";
  const std::string first = "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);\n";
  Write(index, "-- cutover: no-transaction\n" + first +
                   "CREATE INDEX CONCURRENTLY orders_id_idx ON orders (nosuchcolumn);\n");
  RunReport failed = Run(Phase::kExpand);
  EXPECT_FALSE(failed.ok);
  ASSERT_FALSE(failed.files.empty());
  EXPECT_TRUE(HasText(failed.files.back().message, index + ":3:"));
  EXPECT_TRUE(HasText(failed.files.back().message, "nosuchcolumn"));
  DatabaseStatus status = ReadStatus();
  const MigrationState* s = Find(status, index);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, "failed");
  ASSERT_TRUE(s->applied.has_value());
  EXPECT_EQ(s->applied->statements_done, 1);

  // The first index exists; running the fixed file again does not try to
  // create it a second time.
  Write(index, "-- cutover: no-transaction\n" + first +
                   "CREATE INDEX CONCURRENTLY orders_id_idx ON orders (id);\n");
  RunReport resumed = Run(Phase::kExpand);
  ASSERT_TRUE(resumed.ok) << Describe(resumed);
  EXPECT_EQ(Value("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'"), "2");
  EXPECT_EQ(StateOf(index), "applied");
}

// --- A failed CREATE INDEX CONCURRENTLY ---

TEST_F(PostgresRunnerTest, AFailedConcurrentBuildLeavesNoInvalidIndexBehind) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE TABLE orders (id integer, ref text);\n"
        "INSERT INTO orders VALUES (1, 'a'), (2, 'a'), (3, 'b');\n");
  WriteOrdersRefIndex();
  RunReport failed = Run(Phase::kExpand);
  EXPECT_FALSE(failed.ok);
  ASSERT_EQ(failed.files.size(), 2u) << Describe(failed);
  const std::string& message = failed.files[1].message;
  EXPECT_TRUE(HasText(message, std::string(kOrdersRefFile) + ":2:"));
  EXPECT_TRUE(HasText(message, "could not create unique index"));
  EXPECT_TRUE(HasText(message,
                      "the failed build left the INVALID index public.orders_ref; cutover "
                      "dropped it"));
  EXPECT_EQ(Value("SELECT count(*) FROM pg_class WHERE relname = 'orders_ref'"), "0");

  // Once the data is fixed, the same file runs again (without the drop the
  // name would be taken: "relation orders_ref already exists").
  Rows("DELETE FROM orders WHERE id = 2");
  RunReport again = Run(Phase::kExpand);
  ASSERT_TRUE(again.ok) << Describe(again);
  EXPECT_EQ(OrdersRefValid(), "t");
}

TEST_F(PostgresRunnerTest, AnInvalidIndexLeftByAnEarlierBuildIsNamedNotDropped) {
  ASSERT_NO_FATAL_FAILURE(LeaveInvalidOrdersRef());
  WriteOrdersRefIndex();
  RunReport failed = Run(Phase::kExpand);
  EXPECT_FALSE(failed.ok);
  ASSERT_EQ(failed.files.size(), 1u) << Describe(failed);
  EXPECT_TRUE(HasText(failed.files[0].message, "already exists"));
  EXPECT_TRUE(HasText(failed.files[0].message,
                      "an INVALID index public.orders_ref was there before: a build that failed "
                      "earlier left it; drop it (DROP INDEX CONCURRENTLY public.orders_ref) and "
                      "run again"));
  // Not cutover's to drop: it is still there.
  EXPECT_EQ(Value("SELECT count(*) FROM pg_class WHERE relname = 'orders_ref'"), "1");
}

TEST_F(PostgresRunnerTest, ALockTimeoutInAConcurrentBuildIsRetriedFromACleanSlate) {
  // The writer commits once the runner says the build timed out.
  ASSERT_NO_FATAL_FAILURE(OpenWriterOnOrders());
  RunOptions options;
  options.lock_retries = 5;
  bool committed = false;
  options.progress = [&](std::string_view line) {
    progress_.emplace_back(line);
    if (!committed && HasText(line, "lock timeout")) {
      committed = true;
      auto done = writer_->Query("COMMIT");
      EXPECT_TRUE(done.has_value()) << done.error().message;
    }
  };
  RunReport report = Run(Phase::kExpand, options);
  ASSERT_TRUE(report.ok) << Describe(report) << AllProgress();
  ASSERT_EQ(report.files.size(), 1u);
  EXPECT_EQ(report.files[0].attempts, 2);
  EXPECT_TRUE(HasText(AllProgress(), std::string(kOrdersRefFile) +
                                         ":3: dropping the INVALID index public.orders_ref the "
                                         "failed attempt left"));
  EXPECT_EQ(OrdersRefValid(), "t");
}

TEST_F(PostgresRunnerTest, ACancelWhileARetryWaitsStillDropsTheLeftIndex) {
  ASSERT_NO_FATAL_FAILURE(OpenWriterOnOrders());
  RunOptions options;
  options.cancel = std::make_shared<RunCancel>();
  // The deployment is aborted while the runner waits to retry; the writer
  // is done by then, so nothing holds the drop up.
  options.progress = [&](std::string_view line) {
    progress_.emplace_back(line);
    if (HasText(line, "lock timeout") && !options.cancel->cancelled()) {
      options.cancel->Cancel();
      EXPECT_TRUE(writer_->Query("COMMIT").has_value());
    }
  };
  RunReport report = Run(Phase::kExpand, options);
  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.files.size(), 1u) << Describe(report);
  EXPECT_EQ(report.files[0].outcome, "cancelled");
  EXPECT_TRUE(HasText(report.files[0].message, "cancelled before this statement"));
  EXPECT_TRUE(HasText(report.files[0].message,
                      "the failed build left the INVALID index public.orders_ref; cutover dropped "
                      "it"));
  EXPECT_EQ(OrdersRefValid(), "");
}

TEST_F(PostgresRunnerTest, TheLeftIndexIsFoundInItsTablesSchemaOffTheSearchPath) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE SCHEMA shop;\nCREATE TABLE shop.orders (id integer, ref text);\n"
        "INSERT INTO shop.orders VALUES (1, 'a'), (2, 'a');\n");
  WriteOrdersRefIndex("", "CREATE UNIQUE INDEX CONCURRENTLY orders_ref ON shop.orders (ref)");
  RunReport failed = Run(Phase::kExpand);
  EXPECT_FALSE(failed.ok);
  ASSERT_EQ(failed.files.size(), 2u) << Describe(failed);
  EXPECT_TRUE(HasText(failed.files[1].message,
                      "the failed build left the INVALID index shop.orders_ref; cutover dropped "
                      "it"));
  EXPECT_EQ(Value("SELECT count(*) FROM pg_class WHERE relname = 'orders_ref'"), "0");
}

TEST_F(PostgresRunnerTest, IfNotExistsOverAnInvalidIndexFailsInsteadOfSkipping) {
  ASSERT_NO_FATAL_FAILURE(LeaveInvalidOrdersRef());
  WriteOrdersRefIndex("",
                      "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS orders_ref ON orders (ref)");
  RunReport failed = Run(Phase::kExpand);
  EXPECT_FALSE(failed.ok);
  ASSERT_EQ(failed.files.size(), 1u) << Describe(failed);
  EXPECT_TRUE(HasText(failed.files[0].message,
                      "an INVALID index public.orders_ref was there before (a build that failed "
                      "earlier left it), so IF NOT EXISTS skipped the build and the index is "
                      "unusable"));
  EXPECT_EQ(StateOf(std::string(kOrdersRefFile)), "failed");
}

// --- Two runners ---

TEST_P(RunnerTest, TwoRunnersAtOnceApplyEachFileExactlyOnce) {
  const std::string create = "20260101000000_create_counter.expand.sql";
  const std::string slow = "20260102000000_slow.expand.sql";
  const std::string last = "20260103000000_count_again.expand.sql";
  Write(create, "CREATE TABLE counter (n integer);\nINSERT INTO counter VALUES (1);\n");
  Write(slow, SlowStatement(1) + "\nINSERT INTO counter VALUES (2);\n");
  Write(last, "INSERT INTO counter VALUES (3);\n");

  struct Outcome {
    Result<RunReport> report = MakeError(ErrorCode::kInternal, "did not run");
    std::vector<std::string> progress;
  };
  Outcome outcomes[2];
  std::latch start(2);
  auto runner = [&](Outcome& out) {
    RunOptions options;
    options.release = std::string(kRelease);
    options.progress = [&out](std::string_view line) { out.progress.emplace_back(line); };
    start.arrive_and_wait();
    out.report = RunMigrations(url_, dir_, Phase::kExpand, options);
  };
  std::thread first(runner, std::ref(outcomes[0]));
  std::thread second(runner, std::ref(outcomes[1]));
  first.join();
  second.join();

  std::vector<std::string> applied;
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(o.report.has_value()) << o.report.error().message;
    ASSERT_TRUE(o.report->ok) << Describe(*o.report);
    for (const FileRun& f : o.report->files) {
      EXPECT_EQ(f.outcome, "applied") << f.filename;
      applied.push_back(f.filename);
    }
  }
  std::sort(applied.begin(), applied.end());
  EXPECT_EQ(applied, (std::vector<std::string>{create, slow, last}));
  EXPECT_EQ(Rows("SELECT n FROM counter ORDER BY n"), (PgRows{{"1"}, {"2"}, {"3"}}));
  EXPECT_EQ(HistoryRows(), 3);
  for (const MigrationState& s : ReadStatus().files) EXPECT_EQ(s.state, "applied") << s.filename;

  if (pg()) {
    // One runner at a time: the second waited for the first and then found
    // nothing left to do.
    const bool first_idle = outcomes[0].report->files.empty();
    const bool second_idle = outcomes[1].report->files.empty();
    EXPECT_TRUE(first_idle != second_idle)
        << Describe(*outcomes[0].report) << Describe(*outcomes[1].report);
  }
}

TEST_F(PostgresRunnerTest, ASecondRunnerGivesUpAfterTheLockWait) {
  Write("20260101000000_slow.expand.sql", SlowStatement(2));
  std::atomic<bool> running{false};
  RunOptions slow_options;
  slow_options.progress = [&](std::string_view line) {
    if (line.find("running") != std::string_view::npos) running = true;
  };
  auto slow = std::async(std::launch::async,
                         [&] { return RunMigrations(url_, dir_, Phase::kExpand, slow_options); });
  ASSERT_TRUE(test::WaitUntil([&] { return running.load(); }, test::DeadlineIn(10s)));

  RunOptions impatient;
  impatient.lock_wait = Millis(200);
  std::vector<std::string> lines;
  impatient.progress = [&](std::string_view line) { lines.emplace_back(line); };
  auto second = RunMigrations(url_, dir_, Phase::kExpand, impatient);
  std::string said;
  for (const auto& l : lines) said += l + "\n";
  // A lock wait that runs out is a stopped run, not an unreadable database.
  EXPECT_TRUE(second.has_value()) << second.error().message;
  if (second) {
    EXPECT_FALSE(second->ok) << Describe(*second);
    EXPECT_TRUE(second->files.empty()) << Describe(*second);
    EXPECT_TRUE(HasText(second->error, "another")) << Describe(*second);
  }
  EXPECT_TRUE(HasText(said, "another")) << "the waiting runner says what it waits for";

  auto done = slow.get();
  ASSERT_TRUE(done.has_value()) << done.error().message;
  EXPECT_TRUE(done->ok) << Describe(*done);
  EXPECT_EQ(HistoryRows(), 1);
}

// --- Lock timeouts ---

class LockTimeoutTest : public PostgresRunnerTest {
 protected:
  void SetUp() override {
    PostgresRunnerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    Write("20260101000000_create_orders.expand.sql", "CREATE TABLE orders (id integer);\n");
    ASSERT_TRUE(Run(Phase::kExpand).ok);
    Write(alter_, "-- cutover: lock-timeout=200ms\nALTER TABLE orders ADD COLUMN note text;\n");
    auto holder = PgSession::Connect(url_.target);
    ASSERT_TRUE(holder.has_value()) << holder.error().message;
    holder_.emplace(std::move(*holder));
    auto locked = holder_->Query("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;");
    ASSERT_TRUE(locked.has_value()) << locked.error().message;
  }

  const std::string alter_ = "20260102000000_add_note.expand.sql";
  std::optional<PgSession> holder_;
};

TEST_F(LockTimeoutTest, RetriesUntilTheLockIsFree) {
  // The other session keeps its lock for a second, longer than several
  // lock timeouts, then commits.
  std::thread release([this] {
    std::this_thread::sleep_for(1s);
    auto committed = holder_->Query("COMMIT");
    EXPECT_TRUE(committed.has_value()) << committed.error().message;
  });
  RunOptions options;
  options.lock_retries = 20;
  RunReport report = Run(Phase::kExpand, options);
  release.join();
  ASSERT_TRUE(report.ok) << Describe(report);
  ASSERT_EQ(report.files.size(), 1u);
  EXPECT_EQ(report.files[0].outcome, "applied");
  EXPECT_GT(report.files[0].attempts, 1);
  EXPECT_TRUE(HasText(AllProgress(), "lock timeout"));
  EXPECT_TRUE(ColumnExists("orders", "note"));
  EXPECT_EQ(StateOf(alter_), "applied");
  EXPECT_EQ(HistoryRows(), 2);
}

TEST_F(LockTimeoutTest, FailsWhenTheLockOutlastsTheRetries) {
  RunOptions options;
  options.lock_retries = 1;
  auto started = std::chrono::steady_clock::now();
  RunReport report = Run(Phase::kExpand, options);
  auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(holder_->Query("ROLLBACK").has_value());

  EXPECT_FALSE(report.ok);
  ASSERT_EQ(report.files.size(), 1u) << Describe(report);
  EXPECT_EQ(report.files[0].outcome, "failed");
  EXPECT_EQ(report.files[0].attempts, 2);
  EXPECT_TRUE(HasText(report.files[0].message, alter_ + ":2:"));
  EXPECT_TRUE(HasText(report.files[0].message, "lock timeout"));
  EXPECT_LT(elapsed, 10s) << "the file's own lock timeout applies, not the default";
  EXPECT_FALSE(ColumnExists("orders", "note"));
  EXPECT_EQ(StateOf(alter_), "failed");

  // Once the lock is free, the same file applies.
  RunReport again = Run(Phase::kExpand);
  ASSERT_TRUE(again.ok) << Describe(again);
  EXPECT_TRUE(ColumnExists("orders", "note"));
}

// --- Lint ---

TEST_P(RunnerTest, LintErrorsStopTheRunBeforeAnythingIsApplied) {
  const std::string create = "20260101000000_create_orders.expand.sql";
  const std::string drop = "20260102000000_drop_note.expand.sql";
  Write(create, "CREATE TABLE orders (id integer, note text);\n");
  Write(drop, "ALTER TABLE orders DROP COLUMN note;\n");

  RunReport report = Run(Phase::kExpand);
  EXPECT_FALSE(report.ok);
  EXPECT_TRUE(report.files.empty()) << Describe(report);
  EXPECT_FALSE(report.error.empty());
  const LintFinding* finding = nullptr;
  for (const LintFinding& l : report.lint) {
    if (l.rule == "drop-column") finding = &l;
  }
  ASSERT_NE(finding, nullptr) << Describe(report);
  EXPECT_EQ(finding->file, drop);
  EXPECT_EQ(finding->line, 1);
  EXPECT_EQ(finding->severity, Severity::kError);
  EXPECT_FALSE(finding->allowed);
  EXPECT_TRUE(HasText(finding->message, "note"));
  EXPECT_FALSE(TableExists("orders")) << "not even the lint-clean file runs";
  EXPECT_EQ(HistoryRows(), 0);
  for (const MigrationState& s : ReadStatus().files) {
    EXPECT_EQ(s.state, "pending") << s.filename;
    EXPECT_FALSE(s.applied.has_value()) << s.filename;
  }

  const std::string reason = "no release reads orders.note since v1.2";
  Write(drop, "-- cutover: allow drop-column because " + reason +
                  "\nALTER TABLE orders DROP COLUMN note;\n");
  RunReport allowed = Run(Phase::kExpand);
  ASSERT_TRUE(allowed.ok) << Describe(allowed);
  EXPECT_EQ(Filenames(allowed), (std::vector<std::string>{create, drop}));
  bool saw_allowed = false;
  for (const LintFinding& l : allowed.lint) {
    if (l.rule != "drop-column") continue;
    saw_allowed = true;
    EXPECT_TRUE(l.allowed);
    EXPECT_EQ(l.allow_reason, reason);
    EXPECT_EQ(l.line, 2);
  }
  EXPECT_TRUE(saw_allowed) << Describe(allowed);
  EXPECT_FALSE(ColumnExists("orders", "note"));
  DatabaseStatus status = ReadStatus();
  const MigrationState* s = Find(status, drop);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->applied.has_value());
  EXPECT_TRUE(HasText(s->applied->allowed, "drop-column"));
  EXPECT_TRUE(HasText(s->applied->allowed, reason));
}

TEST_F(PostgresRunnerTest, LintAsksForConcurrentIndexesInExpandFiles) {
  Write("20260101000000_create_orders.expand.sql",
        "CREATE TABLE orders (id integer, note text);\n");
  const std::string index = "20260102000000_index_orders.expand.sql";
  Write(index, "CREATE INDEX orders_note_idx ON orders (note);\n");
  RunReport report = Run(Phase::kExpand);
  EXPECT_FALSE(report.ok);
  bool found = false;
  for (const LintFinding& l : report.lint) {
    if (l.rule == "index-without-concurrently" && l.file == index) found = true;
  }
  EXPECT_TRUE(found) << Describe(report);
  EXPECT_FALSE(TableExists("orders"));
}

// --- Cancel ---

TEST_P(RunnerTest, CancelInterruptsTheRunningFile) {
  const std::string create = "20260101000000_create_orders.expand.sql";
  const std::string slow = "20260102000000_slow.expand.sql";
  const std::string after = "20260103000000_create_later.expand.sql";
  Write(create, "CREATE TABLE orders (id integer);\n");
  Write(slow, "CREATE TABLE slow_marker (id integer);\n" + SlowStatement(pg() ? 30 : 0) + "\n");
  Write(after, "CREATE TABLE later (id integer);\n");

  auto cancel = std::make_shared<RunCancel>();
  std::mutex mu;
  std::vector<std::string> lines;
  std::atomic<bool> slow_started{false};
  RunOptions options;
  options.release = std::string(kRelease);
  options.cancel = cancel;
  options.progress = [&](std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(line);
    if (line.find(slow) != std::string_view::npos) slow_started = true;
  };
  auto run = std::async(std::launch::async,
                        [&] { return RunMigrations(url_, dir_, Phase::kExpand, options); });

  ASSERT_TRUE(test::WaitUntil([&] { return slow_started.load(); }, test::DeadlineIn(20s)));
  // Wait until the slow statement itself runs, so the cancel interrupts it
  // rather than stopping the runner between statements.
  if (pg()) {
    auto watcher = PgSession::Connect(url_.target);
    ASSERT_TRUE(watcher.has_value()) << watcher.error().message;
    EXPECT_TRUE(test::WaitUntil(
        [&] {
          auto n = watcher->QueryValue(
              "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
              "'%pg_sleep(30)%' AND pid <> pg_backend_pid()");
          return n && n->value_or("") == "1";
        },
        test::DeadlineIn(10s)));
  } else {
    EXPECT_TRUE(
        test::WaitUntil([&] { return SqliteWriteLocked(url_.target); }, test::DeadlineIn(10s)));
  }

  auto cancelled_at = std::chrono::steady_clock::now();
  cancel->Cancel();
  EXPECT_TRUE(cancel->cancelled());
  bool returned = run.wait_for(5s) == std::future_status::ready;
  EXPECT_TRUE(returned) << "the run did not return within 5s of Cancel()";
  // Never leave the test hanging on a missed interrupt.
  while (!returned) {
    cancel->Cancel();
    returned = run.wait_for(1s) == std::future_status::ready;
  }
  auto took = std::chrono::steady_clock::now() - cancelled_at;
  EXPECT_LT(took, 5s);

  auto report = run.get();
  ASSERT_TRUE(report.has_value()) << report.error().message;
  EXPECT_FALSE(report->ok);
  ASSERT_FALSE(report->files.empty()) << Describe(*report);
  EXPECT_EQ(report->files.back().filename, slow);
  EXPECT_EQ(report->files.back().outcome, "cancelled") << Describe(*report);
  EXPECT_TRUE(HasText(report->files.back().message, slow));

  EXPECT_TRUE(TableExists("orders"));
  EXPECT_FALSE(TableExists("slow_marker")) << "the cancelled file is rolled back";
  EXPECT_FALSE(TableExists("later")) << "no file starts after a cancel";
  DatabaseStatus status = ReadStatus();
  const MigrationState* s = Find(status, slow);
  ASSERT_NE(s, nullptr);
  EXPECT_NE(s->state, "applied");
  if (s->applied) {
    EXPECT_NE(s->applied->status, "succeeded");
  }
  EXPECT_EQ(StateOf(after), "pending");
  if (pg()) {
    EXPECT_TRUE(test::WaitUntil(
        [&] {
          return Value(
                     "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query "
                     "LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()") == "0";
        },
        test::DeadlineIn(5s)))
        << "the server still runs the cancelled statement";
  }
}

// The runner looks for a cancel before each statement. A cancel that comes
// after that look and before the statement reaches the database finds the
// connection idle, and an interrupt then does nothing; the statement must
// still stop once it runs.
TEST_P(RunnerTest, ACancelThatCameJustBeforeTheStatementStillStopsIt) {
  Result<std::unique_ptr<MigrationDb>> db = pg() ? OpenPostgres(url_) : OpenSqlite(url_, 10s, true);
  ASSERT_TRUE(db.has_value()) << db.error().message;
  RunCancel cancel;
  cancel.Attach((*db)->Interrupter());
  cancel.Cancel();  // interrupts a connection that runs nothing yet

  // Without the cancel this runs for 30 s (PostgreSQL) or about a second.
  ExecResult r = (*db)->ExecUnlessCancelled(SlowStatement(pg() ? 30 : 1), cancel.flag());
  cancel.Detach();
  ASSERT_FALSE(r.has_value()) << "the statement ran to its end";
  EXPECT_TRUE(r.error().cancelled) << r.error().message;

  // The connection is still usable, and nothing else is cancelled on it.
  EXPECT_TRUE((*db)->Exec("CREATE TABLE after_cancel (id integer)").has_value());
  EXPECT_TRUE(TableExists("after_cancel"));
}

TEST_P(RunnerTest, CancelBeforeTheRunAppliesNothing) {
  Write("20260101000000_create_orders.expand.sql", "CREATE TABLE orders (id integer);\n");
  RunOptions options;
  options.cancel = std::make_shared<RunCancel>();
  options.cancel->Cancel();
  RunReport report = Run(Phase::kExpand, options);
  EXPECT_FALSE(report.ok);
  EXPECT_FALSE(TableExists("orders"));
  EXPECT_EQ(StateOf("20260101000000_create_orders.expand.sql"), "pending");
}

}  // namespace
}  // namespace cutover
