// Migrations in deployments, as a user sees them, against a real PostgreSQL
// 15 (one server for this binary, one database per test), the real cutover
// binary and cutover-testapp instances run by the process driver: expand
// runs before the candidate starts, verify-live asks the live release again
// on the expanded schema, backfill follows the switch, and contract waits
// until the release before is gone (the rollback window closed, or
// `cutover contract`). A lint error, a failing file or a live release that
// breaks on the new schema stop the deployment with live traffic untouched;
// a rollback past a contract is refused unless forced. `cutover migrate`
// reads a service's config; a SQLite database works in deployments too.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daemon_fixture.h"
#include "harness.h"
#include "support/child_process.h"
#include "support/load_generator.h"
#include "support/net.h"
#include "support/postgres_server.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The files of the two releases every scenario starts from: v1 creates the
// table (with a column only v1 uses), v2 adds a column, fills it, and drops
// v1's column once v1 is gone.
constexpr std::string_view kCreateItems = "20260101000000_create_items.expand.sql";
constexpr std::string_view kCreateItemsSql =
    "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, legacy text);\n"
    "INSERT INTO items (name, legacy) VALUES ('apple', 'a'), ('pear', 'p');\n";
constexpr std::string_view kAddNote = "20260102000000_add_note.expand.sql";
constexpr std::string_view kAddNoteVersion = "20260102000000";
constexpr std::string_view kFillNote = "20260102000001_fill_note.backfill.sql";
constexpr std::string_view kDropLegacy = "20260102000002_drop_legacy.contract.sql";
constexpr std::string_view kDropLegacyVersion = "20260102000002";

testing::AssertionResult Has(std::string_view text, std::string_view want) {
  if (text.find(want) != std::string_view::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "\"" << want << "\" not in:\n" << text;
}

// How the service "web" is run in one test.
struct WebService {
  std::string command;  // the process driver's command
  std::string promotion = "auto";
  std::string rollback_window = "10m";
  std::string checks;  // YAML list items, indented for the "checks:" key
  // The migrations' database and folder as the config writes them.
  std::string database;
  std::string dir;
};

// A daemon (and a database) in its own folder; the fixture stops the daemon
// cleanly at the end and then proves that no instance it started still runs.
class Migrations : public DaemonFixture {
 protected:
  Migrations() : DaemonFixture("cutover-migrate") {}

  void SetUp() override {
    DaemonFixture::SetUp();
    std::filesystem::create_directories(MigrationsDir());
  }

  void TearDown() override {
    const bool stopped = daemon_ != nullptr;
    DaemonFixture::TearDown();
    if (!stopped) return;
    for (const auto& [port, pid] : Instances()) {
      EXPECT_TRUE(WaitUntil([&] { return ProcessGone(pid); }, DeadlineIn(seconds(5))))
          << "instance pid " << pid << " (port " << port << ") outlived the daemon";
      if (!ProcessGone(pid)) ::kill(-pid, SIGKILL);
    }
  }

  // Creates this test's database on the shared server; false (with the
  // reason in `skip`) when PostgreSQL is not installed here.
  bool UsePostgres(std::string& skip) {
    if (!PostgresAvailable()) {
      skip = PostgresUnavailableReason();
      return false;
    }
    auto server = test::SharedPostgresServer();
    if (!server) {
      ADD_FAILURE() << server.error().message;
      return false;
    }
    static std::atomic<int> counter{0};
    const std::string name =
        "migrate_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    Status created = (*server)->CreateDatabase(name);
    if (!created) {
      ADD_FAILURE() << created.error().message;
      return false;
    }
    db_url_ = (*server)->Url(name);
    auto session = PgSession::Connect(db_url_);
    if (!session) {
      ADD_FAILURE() << session.error().message;
      return false;
    }
    pg_.emplace(std::move(*session));
    return true;
  }

  std::string MigrationsDir() const { return dir_->File("migrations"); }
  std::string LogsDir() const { return dir_->File("logs"); }

  void WriteMigration(std::string_view filename, std::string_view sql) {
    ASSERT_TRUE(WriteFile(MigrationsDir() + "/" + std::string(filename), sql));
  }

  // The command that serves GET / with the release label.
  static std::string TestappCommand(std::string_view extra = "") {
    std::string cmd = "'" + TestappBinary() + "' --name $CUTOVER_RELEASE --quiet";
    if (!extra.empty()) cmd += " " + std::string(extra);
    return cmd;
  }

  // A service on this test's PostgreSQL database and migrations folder.
  WebService PgService() const {
    return {.command = TestappCommand(), .database = db_url_, .dir = MigrationsDir()};
  }

  std::string Config(const WebService& web) const {
    // Test programs may run side by side; each takes its own slice of the
    // instance port range so two daemons never pick the same port.
    const int lo = 20000 + static_cast<int>(::getpid() % 397) * 25;
    std::string text = "listen: 127.0.0.1:{port}\n";
    text += "ports: " + std::to_string(lo) + "-" + std::to_string(lo + 24) + "\n";
    text += "logs: " + LogsDir() + "\n";
    text += "services:\n  web:\n    hosts: [localhost]\n";
    text += "    driver:\n      type: process\n      command: " + json(web.command).dump() +
            "\n      stop_timeout: 2s\n";
    text += "    health: {path: /healthz, interval: 200ms, timeout: 190ms, deadline: 10s}\n";
    text += "    promotion: " + web.promotion + "\n";
    text += "    rollback_window: " + web.rollback_window + "\n";
    if (!web.checks.empty()) text += "    checks:\n" + web.checks;
    text += "    migrations: {database: " + json(web.database).dump() +
            ", dir: " + json(web.dir).dump() + ", lock_wait: 10s}\n";
    return text;
  }

  void StartDaemon(const WebService& web) {
    auto d = Daemon::Start(*dir_, Config(web));
    ASSERT_TRUE(d) << d.error().message;
    daemon_ = std::move(*d);
  }

  CliResult Cli(const std::vector<std::string>& args) const { return daemon_->Cli(args); }

  // The newest deployment of web.
  json Newest() const {
    auto r = daemon_->Api("GET", "/v1/services/web/deployments");
    if (!r || r->status != 200) return nullptr;
    json list = ParseJson(r->body);
    if (!list.is_object() || list["deployments"].empty()) return nullptr;
    return list["deployments"][0];
  }

  // `cutover deploy web --release R --detach`; the deployment's id.
  int64_t DeployDetached(const std::string& release) {
    CliResult r = Cli({"deploy", "web", "--release", release, "--detach"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex(R"(deployment (\d+) of web )"))) {
      ADD_FAILURE() << "no deployment id in: " << r.out;
      return -1;
    }
    return std::stoll(m[1]);
  }

  // Deploys `release` until it is live (promoting it when asked to wait);
  // the deployment's id.
  int64_t DeployLive(const std::string& release, bool manual = false) {
    int64_t id = -1;
    if (!manual) {
      CliResult r = Cli({"deploy", "web", "--release", release});
      EXPECT_EQ(r.exit_code, 0) << r.out << "\ndaemon:\n" << daemon_->process().Output();
      json d = Newest();
      if (d.is_object()) id = d["id"].get<int64_t>();
    } else {
      id = DeployDetached(release);
      if (id <= 0) return id;
      WaitStep(id, "approve", "waiting");
      CliResult p = Cli({"promote", "web"});
      EXPECT_EQ(p.exit_code, 0) << p.out;
      EXPECT_EQ(WaitFinished(id)["outcome"], "succeeded");
    }
    EXPECT_EQ(GetText(daemon_->port()), release);
    return id;
  }

  // Every instance the daemon started, from the headers of their log files:
  // port -> pid (one entry per start).
  std::vector<std::pair<uint16_t, pid_t>> Instances() const { return StartedInstances(LogsDir()); }

  // Whether any instance of `release` was ever started (it has a log file).
  bool EverStarted(std::string_view release) const {
    std::error_code ec;
    if (!std::filesystem::exists(LogsDir(), ec)) return false;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(LogsDir(), ec)) {
      if (entry.path().filename().string().starts_with(std::string(release) + "-")) return true;
    }
    return false;
  }

  // The ports of `color`'s targets as the daemon reports them.
  std::vector<uint16_t> Ports(std::string_view color) const {
    std::vector<uint16_t> out;
    json s = ServiceJson();
    if (!s.is_object()) return out;
    for (const json& t : s["colors"][std::string(color)]["targets"]) {
      const std::string address = t.value("address", "");
      out.push_back(static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
    }
    return out;
  }

  // One row of the history table: status, release, allowed, error,
  // finished_at in Unix ms; empty when the version has no row.
  std::vector<std::string> HistoryRow(std::string_view version) {
    auto rows = pg_->Query(
        "SELECT status, release, allowed, error, "
        "coalesce((extract(epoch FROM finished_at) * 1000)::bigint, 0) "
        "FROM cutover_migrations WHERE version = '" +
        std::string(version) + "'");
    EXPECT_TRUE(rows) << rows.error().message;
    if (!rows || rows->empty()) return {};
    return (*rows)[0];
  }

  // The one value `sql` selects, or what went wrong.
  std::string Value(std::string_view sql) {
    auto v = pg_->QueryValue(sql);
    if (!v) return "error: " + v.error().message;
    return v->value_or("(no row)");
  }

  // Whether table `table` has column `column`.
  bool HasColumn(std::string_view table, std::string_view column) {
    const std::string n =
        Value("SELECT count(*) FROM information_schema.columns WHERE table_name = '" +
              std::string(table) + "' AND column_name = '" + std::string(column) + "'");
    EXPECT_TRUE(n == "0" || n == "1") << n;
    return n == "1";
  }

  // v1 goes live with the table, then v2 with an expand, a backfill and a
  // contract file, under load; returns v2's deployment as soon as it is
  // live (the load may not have seen v2 yet).
  json DeployV1ThenV2() {
    WriteMigration(kCreateItems, kCreateItemsSql);
    const int64_t first = DeployLive("v1");
    EXPECT_GT(first, 0);
    EXPECT_EQ(StepOutcome(DeploymentJson(first), "verify-live"), "skipped");
    WriteMigration(kAddNote, "ALTER TABLE items ADD COLUMN note text;\n");
    WriteMigration(kFillNote, "UPDATE items SET note = name WHERE note IS NULL;\n");
    WriteMigration(kDropLegacy, "ALTER TABLE items DROP COLUMN legacy;\n");
    StartLoad();
    CliResult r = Cli({"deploy", "web", "--release", "v2"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return Newest();
  }

  std::string db_url_;
  std::optional<PgSession> pg_;
};

#define USE_POSTGRES()               \
  do {                               \
    std::string skip_reason;         \
    if (!UsePostgres(skip_reason)) { \
      if (HasFailure()) return;      \
      GTEST_SKIP() << skip_reason;   \
    }                                \
  } while (false)

TEST_F(Migrations, ExpandBeforeTheCandidateBackfillAfterTheSwitchContractAfterTheWindow) {
  USE_POSTGRES();
  WebService web = PgService();
  // Long enough for the checks below to run inside it on a loaded machine.
  web.rollback_window = "8s";
  ASSERT_NO_FATAL_FAILURE(StartDaemon(web));
  json v2 = DeployV1ThenV2();
  ASSERT_TRUE(v2.is_object());
  ASSERT_EQ(v2["release"], "v2") << v2.dump(2);
  const int64_t id = v2["id"].get<int64_t>();

  // Right after the switch: the contract waits for v1 to be gone.
  std::vector<std::string> contract = HistoryRow(kDropLegacyVersion);
  EXPECT_TRUE(contract.empty()) << "the contract ran before the rollback window closed: "
                                << contract[0];
  EXPECT_TRUE(HasColumn("items", "legacy"));
  const std::vector<uint16_t> v1_ports = Ports("blue");
  ASSERT_EQ(v1_ports.size(), 1u) << ServiceJson().dump(2);
  EXPECT_EQ(ServiceJson()["colors"]["blue"]["state"], "running");
  CliResult status =
      Cli({"migrate", "status", "--service", "web", "--config", daemon_->config_path(), "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  json files = ParseJson(status.out)["files"];
  ASSERT_EQ(files.size(), 4u) << status.out;
  EXPECT_EQ(files[3]["filename"], kDropLegacy) << status.out;
  EXPECT_EQ(files[3]["state"], "pending") << status.out;
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));

  // Expand ran (and finished) before the candidate started.
  CliResult history = Cli({"history", "web", "--json"});
  ASSERT_EQ(history.exit_code, 0) << history.out;
  json listed = ParseJson(history.out)["deployments"][0];
  ASSERT_EQ(listed["id"], id) << history.out;
  std::vector<std::string> expand = HistoryRow(kAddNoteVersion);
  ASSERT_EQ(expand.size(), 5u);
  EXPECT_EQ(expand[0], "succeeded");
  EXPECT_EQ(expand[1], "v2");
  const int64_t expand_finished = std::stoll(expand[4]);
  ASSERT_NE(Step(listed, "start"), nullptr) << listed.dump(2);
  const int64_t start_started = (*Step(listed, "start"))["started_unix_ms"].get<int64_t>();
  EXPECT_GT(expand_finished, 0);
  EXPECT_LE(expand_finished, start_started)
      << "the expand file finished after the candidate started: " << listed.dump(2);
  for (std::string_view name : {"expand", "verify-live", "start", "healthy", "check", "approve",
                                "switch", "backfill", "settle"}) {
    EXPECT_EQ(StepOutcome(listed, name), "ok") << name << ": " << listed.dump(2);
  }
  EXPECT_TRUE(Has(StepMessage(listed, "expand"), std::string(kAddNote)));
  EXPECT_TRUE(
      Has(StepMessage(listed, "expand"), "1 contract file(s) run once the release before is gone"));
  EXPECT_TRUE(Has(StepMessage(listed, "verify-live"), "v1"));
  EXPECT_TRUE(Has(StepMessage(listed, "backfill"), std::string(kFillNote)));
  EXPECT_EQ(Value("SELECT count(*) FROM items WHERE note IS NULL"), "0");

  // The window closes: v1 is drained and stopped, then the contract runs.
  json done = WaitStep(id, "contract", "ok");
  EXPECT_TRUE(Has(StepMessage(done, "contract"), "applied 1 file(s)"));
  EXPECT_TRUE(Has(StepMessage(done, "contract"), std::string(kDropLegacy)));
  std::vector<std::string> names;
  for (const json& step : done["steps"]) names.push_back(step["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"prepare", "expand", "verify-live", "start", "healthy",
                                             "check", "approve", "switch", "backfill", "settle",
                                             "contract"}));
  EXPECT_EQ(ServiceJson()["colors"]["blue"]["state"], "stopped") << ServiceJson().dump(2);
  for (uint16_t port : v1_ports) {
    EXPECT_TRUE(WaitUntil([&] { return PortRefuses(port); }, DeadlineIn(seconds(5))))
        << "v1 still listens on " << port;
  }
  contract = HistoryRow(kDropLegacyVersion);
  ASSERT_EQ(contract.size(), 5u);
  EXPECT_EQ(contract[0], "succeeded");
  EXPECT_EQ(contract[1], "v2");
  EXPECT_FALSE(HasColumn("items", "legacy"));
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  LoadSummary load = StopLoadExpectClean();
  EXPECT_GT(load.by_body["v1"], 0u) << load.ToString();
}

TEST_F(Migrations, RollbackPastAContractIsRefusedUnlessForced) {
  USE_POSTGRES();
  WebService web = PgService();
  web.rollback_window = "2s";
  ASSERT_NO_FATAL_FAILURE(StartDaemon(web));
  json v2 = DeployV1ThenV2();
  ASSERT_TRUE(v2.is_object());
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  WaitStep(v2["id"].get<int64_t>(), "contract", "ok");
  ASSERT_FALSE(HasColumn("items", "legacy"));

  CliResult refused = Cli({"rollback", "web"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_TRUE(Has(refused.out, "refused"));
  EXPECT_TRUE(Has(refused.out, std::string(kDropLegacy)));
  EXPECT_TRUE(Has(refused.out, "(for release v2)"));
  EXPECT_TRUE(Has(refused.out, "v1 only knows migrations up to 20260101000000"));
  EXPECT_TRUE(Has(refused.out, "cutover rollback web --force"));
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  json attempt = Newest();
  EXPECT_EQ(attempt["release"], "v1") << attempt.dump(2);
  EXPECT_EQ(attempt["outcome"], "failed") << attempt.dump(2);
  EXPECT_EQ(StepOutcome(attempt, "schema"), "failed") << attempt.dump(2);
  EXPECT_EQ(StepOutcome(attempt, "start"), "skipped") << attempt.dump(2);
  EXPECT_EQ(ServiceJson()["colors"]["blue"]["state"], "stopped");

  CliResult forced = Cli({"rollback", "web", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.out;
  EXPECT_TRUE(Has(forced.out, "v1 had been stopped; started it again"));
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v1"));
  json back = Newest();
  EXPECT_EQ(back["outcome"], "succeeded") << back.dump(2);
  EXPECT_EQ(StepOutcome(back, "schema"), "skipped") << back.dump(2);
  StopLoadExpectClean();
}

TEST_F(Migrations, ContractCommandEndsTheWindowNowButNotDuringADeployment) {
  USE_POSTGRES();
  WebService web = PgService();
  web.promotion = "manual";
  web.rollback_window = "10m";
  ASSERT_NO_FATAL_FAILURE(StartDaemon(web));
  WriteMigration(kCreateItems, kCreateItemsSql);
  ASSERT_GT(DeployLive("v1", /*manual=*/true), 0);
  WriteMigration(kAddNote, "ALTER TABLE items ADD COLUMN note text;\n");
  WriteMigration(kDropLegacy, "ALTER TABLE items DROP COLUMN legacy;\n");

  // v2 waits for approval: its expand ran, and contract must wait for it.
  const int64_t id = DeployDetached("v2");
  ASSERT_GT(id, 0);
  WaitStep(id, "approve", "waiting");
  CliResult busy = Cli({"contract", "web"});
  EXPECT_EQ(busy.exit_code, 1) << busy.out;
  EXPECT_TRUE(Has(busy.out, "deployment " + std::to_string(id) +
                                " of v2 is running; contract after it finished"));
  auto api = daemon_->Api("POST", "/v1/services/web/contract");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 409) << api->body;
  EXPECT_TRUE(HistoryRow(kDropLegacyVersion).empty());
  EXPECT_TRUE(HasColumn("items", "note"));

  ASSERT_EQ(Cli({"promote", "web"}).exit_code, 0);
  ASSERT_EQ(WaitFinished(id)["outcome"], "succeeded");
  ASSERT_EQ(GetText(daemon_->port()), "v2");
  const std::vector<uint16_t> v1_ports = Ports("blue");
  ASSERT_EQ(v1_ports.size(), 1u);
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  CliResult contract = Cli({"contract", "web"});
  EXPECT_EQ(contract.exit_code, 0) << contract.out;
  EXPECT_TRUE(Has(contract.out, "stopped v1 on blue"));
  EXPECT_TRUE(Has(contract.out, "web: applied " + std::string(kDropLegacy)));
  CliResult status = Cli({"status", "web", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  json service = ParseJson(status.out);
  EXPECT_EQ(service["colors"]["blue"]["state"], "stopped") << status.out;
  EXPECT_EQ(service["colors"]["blue"]["release"], "v1") << status.out;
  EXPECT_TRUE(WaitUntil([&] { return PortRefuses(v1_ports[0]); }, DeadlineIn(seconds(5))))
      << "v1 still listens on " << v1_ports[0];
  std::vector<std::string> row = HistoryRow(kDropLegacyVersion);
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[0], "succeeded");
  EXPECT_EQ(row[1], "v2");
  EXPECT_FALSE(HasColumn("items", "legacy"));
  json d = DeploymentJson(id);
  EXPECT_EQ(StepOutcome(d, "contract"), "ok") << d.dump(2);

  CliResult again = Cli({"contract", "web"});
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_TRUE(Has(again.out, "web: no contract migrations to run"));
  EXPECT_EQ(GetText(daemon_->port()), "v2");
  StopLoadExpectClean();
}

TEST_F(Migrations, VerifyLiveCatchesTheLiveReleaseBreakingOnTheExpandedSchema) {
  USE_POSTGRES();
  WebService web = PgService();
  // A warm pool: one connection, `SELECT * FROM items` prepared once.
  web.command = TestappCommand("--database '" + db_url_ + "' --prepare 'SELECT * FROM items'");
  web.checks = "      - http: {path: /db, expect_status: 200}\n        retries: 0\n";
  ASSERT_NO_FATAL_FAILURE(StartDaemon(web));
  WriteMigration(kCreateItems, kCreateItemsSql);
  ASSERT_GT(DeployLive("v1"), 0);
  ASSERT_EQ(GetText(daemon_->port(), "/db"), "rows 2");
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  WriteMigration(kAddNote, "ALTER TABLE items ADD COLUMN note text;\n");
  CliResult r = Cli({"deploy", "web", "--release", "v2"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, "verify-live: the live release v1 fails http GET /db on 127.0.0.1:"));
  EXPECT_TRUE(Has(r.out, "cached plan must not change result type"));
  EXPECT_TRUE(Has(r.out, "fix it forward at once"));
  // The live release is broken by now: the deployment must not say otherwise.
  EXPECT_FALSE(Has(r.out, "live traffic is untouched"));

  json d = Newest();
  EXPECT_EQ(d["release"], "v2") << d.dump(2);
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "expand"), "ok") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "verify-live"), "failed") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "start"), "skipped") << d.dump(2);
  // The candidate never started.
  EXPECT_FALSE(EverStarted("v2"));
  json service = ServiceJson();
  EXPECT_NE(service["colors"]["green"]["state"], "running") << service.dump(2);
  EXPECT_TRUE(service["colors"]["green"]["targets"].empty()) << service.dump(2);
  // What verify-live saw, the users of v1 see too; the expand stays applied.
  EXPECT_TRUE(Has(GetText(daemon_->port(), "/db"), "cached plan must not change result type"));
  std::vector<std::string> expand = HistoryRow(kAddNoteVersion);
  ASSERT_EQ(expand.size(), 5u);
  EXPECT_EQ(expand[0], "succeeded");
  EXPECT_EQ(GetText(daemon_->port()), "v1");
  LoadSummary load = StopLoadExpectClean();
  EXPECT_EQ(load.by_body.size(), 1u) << load.ToString();
}

TEST_F(Migrations, LintErrorStopsTheDeploymentBeforeAnythingRunsUntilAllowed) {
  USE_POSTGRES();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(PgService()));
  WriteMigration(kCreateItems, kCreateItemsSql);
  ASSERT_GT(DeployLive("v1"), 0);
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  const std::string file = "20260102000000_drop_legacy.expand.sql";
  WriteMigration(file, "SELECT 1;\nALTER TABLE items DROP COLUMN legacy;\n");
  CliResult r = Cli({"deploy", "web", "--release", "v2"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, file + ":2: drop-column"));
  EXPECT_TRUE(Has(r.out, "1 lint error(s); nothing was applied"));
  EXPECT_TRUE(Has(r.out, "live traffic is untouched"));
  json d = Newest();
  EXPECT_EQ(d["outcome"], "failed") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "expand"), "failed") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "start"), "skipped") << d.dump(2);
  EXPECT_FALSE(EverStarted("v2"));
  EXPECT_TRUE(HistoryRow("20260102000000").empty());
  EXPECT_TRUE(HasColumn("items", "legacy"));
  EXPECT_EQ(GetText(daemon_->port()), "v1");

  WriteMigration(file,
                 "-- cutover: allow drop-column because no release reads legacy any more\n"
                 "ALTER TABLE items DROP COLUMN legacy;\n");
  CliResult allowed = Cli({"deploy", "web", "--release", "v3"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed.out;
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v3"));
  std::vector<std::string> row = HistoryRow("20260102000000");
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[0], "succeeded");
  EXPECT_EQ(row[1], "v3");
  EXPECT_TRUE(Has(row[2], "drop-column"));
  EXPECT_TRUE(Has(row[2], "no release reads legacy any more"));
  EXPECT_FALSE(HasColumn("items", "legacy"));
  LoadSummary load = StopLoadExpectClean();
  EXPECT_EQ(load.by_body.count("v2"), 0u) << load.ToString();
}

TEST_F(Migrations, FailingExpandFileStopsTheDeploymentAndTheNextOneResumesThere) {
  USE_POSTGRES();
  ASSERT_NO_FATAL_FAILURE(StartDaemon(PgService()));
  WriteMigration(kCreateItems, kCreateItemsSql);
  ASSERT_GT(DeployLive("v1"), 0);
  ASSERT_NO_FATAL_FAILURE(StartLoad());

  WriteMigration(kAddNote,
                 "ALTER TABLE items ADD COLUMN note text;\n"
                 "ALTER TABLE no_such_table ADD COLUMN tag text;\n");
  CliResult r = Cli({"deploy", "web", "--release", "v2"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, std::string(kAddNote) + ":2: "));
  EXPECT_TRUE(Has(r.out, "relation \"no_such_table\" does not exist"));
  EXPECT_TRUE(Has(r.out, "live traffic is untouched"));
  EXPECT_FALSE(EverStarted("v2"));
  std::vector<std::string> row = HistoryRow(kAddNoteVersion);
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[0], "failed");
  EXPECT_TRUE(Has(row[3], std::string(kAddNote) + ":2: "));
  // The file ran in a transaction: its first statement is gone too.
  EXPECT_FALSE(HasColumn("items", "note"));
  EXPECT_EQ(GetText(daemon_->port()), "v1");

  WriteMigration(kAddNote,
                 "ALTER TABLE items ADD COLUMN note text;\n"
                 "ALTER TABLE items ADD COLUMN tag text;\n");
  CliResult fixed = Cli({"deploy", "web", "--release", "v2"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out;
  EXPECT_TRUE(Has(fixed.out, std::string(kAddNote)));
  ASSERT_NO_FATAL_FAILURE(WaitLoadSees("v2"));
  row = HistoryRow(kAddNoteVersion);
  ASSERT_EQ(row.size(), 5u);
  EXPECT_EQ(row[0], "succeeded");
  EXPECT_EQ(row[1], "v2");
  EXPECT_TRUE(HasColumn("items", "note"));
  EXPECT_TRUE(HasColumn("items", "tag"));
  StopLoadExpectClean();
}

TEST_F(Migrations, MigrateCommandsReadTheServiceConfig) {
  USE_POSTGRES();
  // The config is only read: no daemon runs.
  const std::string config = dir_->File("cutover.yaml");
  std::string text = Config(PgService());
  text.replace(text.find("{port}"), 6, "18080");
  ASSERT_TRUE(WriteFile(config, "preview: off\n" + text));
  WriteMigration(kCreateItems, kCreateItemsSql);
  WriteMigration(kAddNote, "ALTER TABLE items ADD COLUMN note text;\n");
  WriteMigration(kDropLegacy, "ALTER TABLE items DROP COLUMN legacy;\n");
  const std::vector<std::string> service = {"--service", "web", "--config", config};
  auto migrate = [&](std::string action, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"migrate", std::move(action)};
    args.insert(args.end(), service.begin(), service.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return RunCutoverIn(*dir_, args);
  };

  CliResult status = migrate("status", {"--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  json j = ParseJson(status.out);
  EXPECT_EQ(j["dir"], MigrationsDir()) << status.out;
  ASSERT_EQ(j["files"].size(), 3u) << status.out;
  for (const json& f : j["files"]) EXPECT_EQ(f["state"], "pending") << status.out;

  CliResult plan = migrate("plan");
  EXPECT_EQ(plan.exit_code, 0) << plan.out;
  EXPECT_TRUE(Has(plan.out, "expand: 2 file(s) would run, in this order:\n  " +
                                std::string(kCreateItems) + "\n  " + std::string(kAddNote)));
  EXPECT_TRUE(Has(plan.out, "backfill: nothing to run"));
  EXPECT_TRUE(Has(plan.out,
                  "contract: 1 file(s) would run, in this order:\n  " + std::string(kDropLegacy)));

  CliResult lint = migrate("lint");
  EXPECT_EQ(lint.exit_code, 0) << lint.out;
  EXPECT_TRUE(Has(lint.out, "3 file(s) linted (those not applied yet): 0 error(s)"));
  const std::string bad = "20260103000000_require_name.expand.sql";
  WriteMigration(bad, "ALTER TABLE items ALTER COLUMN name SET NOT NULL;\n");
  lint = migrate("lint");
  EXPECT_EQ(lint.exit_code, 1) << lint.out;
  EXPECT_TRUE(Has(lint.out, "error: " + bad + ":1: set-not-null"));
  EXPECT_TRUE(Has(lint.out, "1 error(s)"));
  CliResult lint_json = migrate("lint", {"--json"});
  EXPECT_EQ(lint_json.exit_code, 1) << lint_json.out;
  EXPECT_EQ(ParseJson(lint_json.out)["errors"], 1) << lint_json.out;
  EXPECT_EQ(migrate("plan").exit_code, 1);
  // Nothing ran while a file has a lint error.
  CliResult refused = migrate("expand");
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_TRUE(Has(refused.out, "1 lint error(s); nothing was applied"));
  ASSERT_TRUE(std::filesystem::remove(MigrationsDir() + "/" + bad));

  CliResult expand = migrate("expand", {"--release", "v7"});
  EXPECT_EQ(expand.exit_code, 0) << expand.out;
  EXPECT_TRUE(Has(expand.out, std::string(kCreateItems) + ": running"));
  EXPECT_TRUE(Has(expand.out, "expand: applied 2 file(s) in "));
  EXPECT_TRUE(HasColumn("items", "note"));
  status = migrate("status", {"--json"});
  ASSERT_EQ(status.exit_code, 0) << status.out;
  j = ParseJson(status.out);
  ASSERT_EQ(j["files"].size(), 3u) << status.out;
  EXPECT_EQ(j["files"][0]["state"], "applied") << status.out;
  EXPECT_EQ(j["files"][0]["release"], "v7") << status.out;
  EXPECT_EQ(j["files"][1]["state"], "applied") << status.out;
  EXPECT_EQ(j["files"][2]["state"], "pending") << status.out;
  CliResult table = migrate("status");
  EXPECT_EQ(table.exit_code, 0) << table.out;
  EXPECT_TRUE(Has(table.out, "VERSION"));
  EXPECT_TRUE(Has(table.out, "by v7"));
  CliResult nothing = migrate("expand");
  EXPECT_EQ(nothing.exit_code, 0) << nothing.out;
  EXPECT_TRUE(Has(nothing.out, "expand: nothing to run"));
}

TEST_F(Migrations, SqliteDatabaseBesideTheConfigFile) {
  // Both paths are relative to the config file, which sits in dir_.
  ASSERT_NO_FATAL_FAILURE(StartDaemon({.command = TestappCommand(),
                                       .rollback_window = "10m",
                                       .database = "sqlite:app.db",
                                       .dir = "migrations"}));
  WriteMigration(kCreateItems, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);\n");
  const int64_t v1 = DeployLive("v1");
  ASSERT_GT(v1, 0);
  EXPECT_EQ(StepOutcome(DeploymentJson(v1), "expand"), "ok");
  WriteMigration(kAddNote, "ALTER TABLE items ADD COLUMN note TEXT;\n");
  ASSERT_NO_FATAL_FAILURE(StartLoad());
  const int64_t v2 = DeployLive("v2");
  ASSERT_GT(v2, 0);
  json d = DeploymentJson(v2);
  EXPECT_EQ(StepOutcome(d, "expand"), "ok") << d.dump(2);
  EXPECT_EQ(StepOutcome(d, "verify-live"), "ok") << d.dump(2);
  StopLoadExpectClean();

  const std::string file = dir_->File("app.db");
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto count = [&](const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    int n = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return n;
  };
  EXPECT_EQ(count("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'items'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM pragma_table_info('items') WHERE name = 'note'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM cutover_migrations WHERE status = 'succeeded'"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM cutover_migrations WHERE release = 'v2' AND version = '" +
                  std::string(kAddNoteVersion) + "'"),
            1);
  sqlite3_close(db);
}

}  // namespace
}  // namespace cutover::test
