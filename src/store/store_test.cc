#include "store/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cutover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh directory under the system temp folder, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "cutover-store-test.XXXXXX").string();
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    // A test may have made a folder unwritable; give it back so it can be removed.
    for (const auto& entry : fs::recursive_directory_iterator(path_, ec)) {
      if (entry.is_directory(ec)) fs::permissions(entry.path(), fs::perms::owner_all, ec);
    }
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Another program's view of a database file, through the sqlite3 C API.
class RawDb {
 public:
  explicit RawDb(const fs::path& path) {
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(db);
  }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
    ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << (err != nullptr ? err : "");
    sqlite3_free(err);
  }
  // The first column of the first row, or "" when there is none.
  std::string Query(const std::string& sql) {
    sqlite3_stmt* raw = nullptr;
    if (sqlite3_prepare_v2(db_.get(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_.get());
      return "";
    }
    std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(raw, &sqlite3_finalize);
    if (sqlite3_step(stmt.get()) != SQLITE_ROW) return "";
    const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
    return text != nullptr ? reinterpret_cast<const char*>(text) : "";
  }

 private:
  struct Close {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
  };
  std::unique_ptr<sqlite3, Close> db_;
};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed"; }

  std::string StorePath() const { return (dir_.path() / "state" / "cutover.db").string(); }

  std::unique_ptr<Store> OpenOrFail(const std::string& path) {
    auto store = OpenSqliteStore(path);
    EXPECT_TRUE(store.has_value()) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  TempDir dir_;
};

AuditEvent Event(std::string service, std::string action, std::string detail) {
  return AuditEvent{.service = std::move(service),
                    .action = std::move(action),
                    .actor = "cli",
                    .detail = std::move(detail),
                    .outcome = "ok"};
}

TEST_F(StoreTest, OpenCreatesFileAndParentDirectories) {
  const std::string path = (dir_.path() / "a" / "b" / "cutover.db").string();
  ASSERT_FALSE(fs::exists(dir_.path() / "a"));
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(fs::is_regular_file(path));
}

TEST_F(StoreTest, NewStoreHasDocumentedFormat) {
  const std::string path = StorePath();
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  RawDb raw(path);
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'application'"), "cutover");
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'schema_version'"), "2");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('services', 'audit', 'audit_service_id', 'slots', 'deployments', "
                      "'deployments_service_id', 'deployments_running', 'deployment_steps')"),
            "8");
}

TEST_F(StoreTest, ExistingEmptyFileBecomesAStore) {
  const std::string path = (dir_.path() / "empty.db").string();
  { std::ofstream touch(path); }
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->SetLiveColor("shop", Color::kGreen).has_value());
}

TEST_F(StoreTest, LiveColorIsUnsetInNewStore) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  auto color = store->LiveColor("shop");
  ASSERT_TRUE(color.has_value()) << color.error().message;
  EXPECT_EQ(*color, std::nullopt);
}

TEST_F(StoreTest, SetLiveColorReplacesThePreviousOne) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->SetLiveColor("shop", Color::kBlue).has_value());
  EXPECT_EQ(store->LiveColor("shop").value(), Color::kBlue);
  ASSERT_TRUE(store->SetLiveColor("shop", Color::kGreen).has_value());
  EXPECT_EQ(store->LiveColor("shop").value(), Color::kGreen);
}

TEST_F(StoreTest, SetLiveColorWithAuditWritesBothTogether) {
  const std::string path = StorePath();
  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
    Status s = store->SetLiveColor("shop", Color::kGreen, Event("shop", "switch", "blue -> green"));
    ASSERT_TRUE(s.has_value()) << s.error().message;
  }
  auto reopened = OpenOrFail(path);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->LiveColor("shop").value(), Color::kGreen);
  auto audit = reopened->RecentAudit("shop", 10);
  ASSERT_TRUE(audit.has_value()) << audit.error().message;
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].detail, "blue -> green");
  EXPECT_EQ((*audit)[0].outcome, "ok");
}

TEST_F(StoreTest, LiveColorSurvivesReopen) {
  const std::string path = StorePath();
  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->SetLiveColor("shop", Color::kGreen).has_value());
  }
  auto reopened = OpenOrFail(path);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->LiveColor("shop").value(), Color::kGreen);
}

TEST_F(StoreTest, LiveColorSurvivesKillRightAfterSet) {
  const std::string path = StorePath();
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    auto store = OpenSqliteStore(path);
    if (!store || !(*store)->SetLiveColor("shop", Color::kGreen)) _exit(1);
    kill(getpid(), SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LiveColor("shop").value(), Color::kGreen);
}

TEST_F(StoreTest, ServicesAreIndependent) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->SetLiveColor("shop", Color::kGreen).has_value());
  EXPECT_EQ(store->LiveColor("blog").value(), std::nullopt);
  ASSERT_TRUE(store->SetLiveColor("blog", Color::kBlue).has_value());
  EXPECT_EQ(store->LiveColor("shop").value(), Color::kGreen);
  EXPECT_EQ(store->LiveColor("blog").value(), Color::kBlue);
}

TEST_F(StoreTest, RecentAuditIsNewestFirstLimitedAndFiltered) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->AppendAudit(Event("shop", "switch", "blue -> green")).has_value());
  ASSERT_TRUE(store->AppendAudit(Event("blog", "switch", "green -> blue")).has_value());
  ASSERT_TRUE(store->AppendAudit(Event("shop", "rollback", "green -> blue")).has_value());
  ASSERT_TRUE(store->AppendAudit(Event("shop", "switch", "blue -> green (forced)")).has_value());

  auto all = store->RecentAudit("", 10);
  ASSERT_TRUE(all.has_value()) << all.error().message;
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[0].detail, "blue -> green (forced)");
  EXPECT_EQ((*all)[1].action, "rollback");
  EXPECT_EQ((*all)[2].service, "blog");
  EXPECT_EQ((*all)[3].detail, "blue -> green");
  for (size_t i = 1; i < all->size(); ++i) EXPECT_GT((*all)[i - 1].id, (*all)[i].id);

  auto shop = store->RecentAudit("shop", 2);
  ASSERT_TRUE(shop.has_value()) << shop.error().message;
  ASSERT_EQ(shop->size(), 2u);
  EXPECT_EQ((*shop)[0].detail, "blue -> green (forced)");
  EXPECT_EQ((*shop)[1].action, "rollback");
  EXPECT_EQ((*shop)[1].actor, "cli");
  EXPECT_EQ((*shop)[1].outcome, "ok");

  auto blog = store->RecentAudit("blog", 10);
  ASSERT_TRUE(blog.has_value());
  ASSERT_EQ(blog->size(), 1u);
  EXPECT_EQ((*blog)[0].detail, "green -> blue");

  EXPECT_TRUE(store->RecentAudit("none", 10).value().empty());
  EXPECT_TRUE(store->RecentAudit("shop", 0).value().empty());
  auto negative = store->RecentAudit("shop", -1);
  ASSERT_FALSE(negative.has_value());
  EXPECT_EQ(negative.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, AuditTimeIsAssignedWhenZeroAndKeptWhenGiven) {
  const std::string path = StorePath();
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const int64_t before = now_ms();
  ASSERT_TRUE(store->AppendAudit(Event("shop", "switch", "assigned")).has_value());
  const int64_t after = now_ms();
  AuditEvent given = Event("shop", "switch", "given");
  given.time_unix_ms = 1'700'000'000'000;
  ASSERT_TRUE(store->AppendAudit(given).has_value());
  store.reset();

  auto reopened = OpenOrFail(path);
  ASSERT_NE(reopened, nullptr);
  auto events = reopened->RecentAudit("shop", 10);
  ASSERT_TRUE(events.has_value());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].time_unix_ms, 1'700'000'000'000);
  EXPECT_GE((*events)[1].time_unix_ms, before);
  EXPECT_LE((*events)[1].time_unix_ms, after);
  EXPECT_GT((*events)[1].id, 0);
}

TEST_F(StoreTest, RefusesAFileThatIsNotSqlite) {
  const std::string path = (dir_.path() / "notes.db").string();
  { std::ofstream(path) << "hello"; }
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message, HasSubstr(path + ": not a cutover store: "));
  EXPECT_EQ(ReadFile(path), "hello");
}

TEST_F(StoreTest, RefusesAnotherProgramsSqliteDatabase) {
  const std::string path = (dir_.path() / "app.db").string();
  RawDb(path).Exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message, HasSubstr(path + ": not a cutover store: "));
  // Left exactly as it was: no marker added, journal mode not changed.
  RawDb raw(path);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE name = 'meta'"), "0");
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "delete");
}

TEST_F(StoreTest, RefusesADatabaseWithAnotherProgramsMetaTable) {
  const std::string path = (dir_.path() / "app.db").string();
  RawDb(path).Exec("CREATE TABLE meta (name TEXT, version INTEGER)");
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message, HasSubstr(path + ": not a cutover store: "));
}

TEST_F(StoreTest, RefusesANewerSchemaVersion) {
  const std::string path = StorePath();
  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
  }
  RawDb(path).Exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().message,
            path + ": store schema version 99 is newer than this cutover (2); upgrade cutover");
}

TEST_F(StoreTest, UnwritableDirectoryIsReportedWithThePath) {
  if (geteuid() == 0) GTEST_SKIP() << "root is not stopped by directory permissions";
  const fs::path locked = dir_.path() / "locked";
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);

  const std::string in_locked = (locked / "cutover.db").string();
  auto store = OpenSqliteStore(in_locked);
  ASSERT_FALSE(store.has_value());
  EXPECT_THAT(store.error().message, HasSubstr(in_locked + ": open: "));
  EXPECT_THAT(store.error().message, HasSubstr("Permission denied"));

  const std::string below_locked = (locked / "state" / "cutover.db").string();
  auto nested = OpenSqliteStore(below_locked);
  ASSERT_FALSE(nested.has_value());
  EXPECT_THAT(nested.error().message,
              HasSubstr(below_locked + ": create directory " + (locked / "state").string()));
  EXPECT_THAT(nested.error().message, HasSubstr("Permission denied"));
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StepRecord Step(std::string name, std::string outcome, int64_t started_unix_ms,
                int64_t finished_unix_ms, std::string message = "") {
  return StepRecord{.name = std::move(name),
                    .outcome = std::move(outcome),
                    .started_unix_ms = started_unix_ms,
                    .finished_unix_ms = finished_unix_ms,
                    .message = std::move(message)};
}

DeploymentRecord NewDeployment(std::string service, std::string release, Color color) {
  return DeploymentRecord{
      .service = std::move(service),
      .release = std::move(release),
      .color = color,
      .actor = "cli",
      .started_unix_ms = 1'700'000'000'000,
      .spec_json = R"({"command":["./app","--port","9001"]})",
      .steps = {Step("prepare", "ok", 1'700'000'000'000, 1'700'000'000'050),
                Step("start", "running", 1'700'000'000'050, 0)},
  };
}

void ExpectSameDeployment(const DeploymentRecord& got, const DeploymentRecord& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.service, want.service);
  EXPECT_EQ(got.release, want.release);
  EXPECT_EQ(got.color, want.color);
  EXPECT_EQ(got.actor, want.actor);
  EXPECT_EQ(got.started_unix_ms, want.started_unix_ms);
  EXPECT_EQ(got.finished_unix_ms, want.finished_unix_ms);
  EXPECT_EQ(got.outcome, want.outcome);
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(got.spec_json, want.spec_json);
  ASSERT_EQ(got.steps.size(), want.steps.size());
  for (size_t i = 0; i < got.steps.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_EQ(got.steps[i].name, want.steps[i].name);
    EXPECT_EQ(got.steps[i].outcome, want.steps[i].outcome);
    EXPECT_EQ(got.steps[i].started_unix_ms, want.steps[i].started_unix_ms);
    EXPECT_EQ(got.steps[i].finished_unix_ms, want.steps[i].finished_unix_ms);
    EXPECT_EQ(got.steps[i].message, want.steps[i].message);
  }
}

std::vector<int64_t> Ids(const std::vector<DeploymentRecord>& deployments) {
  std::vector<int64_t> ids;
  for (const DeploymentRecord& d : deployments) ids.push_back(d.id);
  return ids;
}

TEST_F(StoreTest, SlotIsEmptyWhenNeverStored) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  auto slot = store->Slot("shop", Color::kBlue);
  ASSERT_TRUE(slot.has_value()) << slot.error().message;
  EXPECT_EQ(slot->release, "");
  EXPECT_EQ(slot->state, "");
  EXPECT_EQ(slot->spec_json, "");
  EXPECT_EQ(slot->updated_unix_ms, 0);
}

TEST_F(StoreTest, SetSlotReplacesOnlyThatColorOfThatService) {
  const std::string path = StorePath();
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  const SlotRecord v1{.release = "v1",
                      .state = "running",
                      .spec_json = R"({"port":9001})",
                      .updated_unix_ms = 1'700'000'000'000};
  ASSERT_TRUE(store->SetSlot("shop", Color::kBlue, v1).has_value());
  const SlotRecord v2{.release = "v2", .state = "starting", .spec_json = R"({"port":9002})"};
  const int64_t before = NowUnixMs();
  Status set = store->SetSlot("shop", Color::kGreen, v2);
  const int64_t after = NowUnixMs();
  ASSERT_TRUE(set.has_value()) << set.error().message;

  auto blue = store->Slot("shop", Color::kBlue);
  ASSERT_TRUE(blue.has_value()) << blue.error().message;
  EXPECT_EQ(blue->release, "v1");
  EXPECT_EQ(blue->state, "running");
  EXPECT_EQ(blue->spec_json, R"({"port":9001})");
  EXPECT_EQ(blue->updated_unix_ms, 1'700'000'000'000);

  auto green = store->Slot("shop", Color::kGreen);
  ASSERT_TRUE(green.has_value()) << green.error().message;
  EXPECT_EQ(green->release, "v2");
  EXPECT_EQ(green->state, "starting");
  EXPECT_GE(green->updated_unix_ms, before);
  EXPECT_LE(green->updated_unix_ms, after);

  EXPECT_EQ(store->Slot("blog", Color::kBlue).value().release, "");

  // Replacing a slot overwrites every field, including an emptied release.
  const SlotRecord stopped{.release = "", .state = "stopped", .updated_unix_ms = 5};
  ASSERT_TRUE(store->SetSlot("shop", Color::kBlue, stopped).has_value());
  auto replaced = store->Slot("shop", Color::kBlue);
  ASSERT_TRUE(replaced.has_value());
  EXPECT_EQ(replaced->release, "");
  EXPECT_EQ(replaced->state, "stopped");
  EXPECT_EQ(replaced->spec_json, "");
  EXPECT_EQ(replaced->updated_unix_ms, 5);

  // Colors are stored as the same text as the services table uses.
  RawDb raw(path);
  EXPECT_EQ(raw.Query("SELECT group_concat(color, ',') FROM "
                      "(SELECT color FROM slots WHERE service = 'shop' ORDER BY color)"),
            "blue,green");
}

TEST_F(StoreTest, CreateDeploymentRoundTripsWithSteps) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  DeploymentRecord d = NewDeployment("shop", "v2", Color::kGreen);
  d.message = "deploying v2";
  auto id = store->CreateDeployment(d);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  EXPECT_GT(*id, 0);

  auto got = store->Deployment(*id);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  d.id = *id;
  ExpectSameDeployment(*got, d);
}

TEST_F(StoreTest, CreateDeploymentAssignsIdsAndStartTime) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  DeploymentRecord d = NewDeployment("shop", "v1", Color::kBlue);
  d.started_unix_ms = 0;
  d.steps.clear();
  const int64_t before = NowUnixMs();
  auto first = store->CreateDeployment(d);
  const int64_t after = NowUnixMs();
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto second = store->CreateDeployment(d);
  ASSERT_TRUE(second.has_value()) << second.error().message;
  EXPECT_GT(*second, *first);

  auto got = store->Deployment(*first);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_GE(got->started_unix_ms, before);
  EXPECT_LE(got->started_unix_ms, after);
  EXPECT_EQ(got->finished_unix_ms, 0);
  EXPECT_EQ(got->outcome, "running");
  EXPECT_TRUE(got->steps.empty());
}

TEST_F(StoreTest, DeploymentOfUnknownIdIsNotFound) {
  const std::string path = StorePath();
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  auto missing = store->Deployment(42);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, path + ": read deployment 42: no such deployment");
}

TEST_F(StoreTest, UpdateDeploymentReplacesOutcomeAndSteps) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  DeploymentRecord d = NewDeployment("shop", "v2", Color::kGreen);
  d.steps = {Step("prepare", "ok", 10, 20), Step("start", "ok", 20, 30),
             Step("healthy", "running", 30, 0)};
  auto id = store->CreateDeployment(d);
  ASSERT_TRUE(id.has_value()) << id.error().message;
  d.id = *id;

  // The identity of a deployment stays; its progress is replaced, steps included.
  DeploymentRecord update = d;
  update.finished_unix_ms = 99;
  update.outcome = "failed";
  update.message = "green never became healthy";
  update.steps = {Step("prepare", "ok", 10, 20), Step("healthy", "failed", 30, 99, "timed out")};
  Status updated = store->UpdateDeployment(update);
  ASSERT_TRUE(updated.has_value()) << updated.error().message;
  auto got = store->Deployment(*id);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ExpectSameDeployment(*got, update);

  // A longer list after a shorter one, and an empty one, replace it too.
  update.steps.push_back(Step("rollback", "ok", 99, 100));
  update.steps.push_back(Step("settle", "skipped", 100, 100));
  ASSERT_TRUE(store->UpdateDeployment(update).has_value());
  ExpectSameDeployment(store->Deployment(*id).value(), update);
  update.steps.clear();
  ASSERT_TRUE(store->UpdateDeployment(update).has_value());
  ExpectSameDeployment(store->Deployment(*id).value(), update);
}

TEST_F(StoreTest, UpdateDeploymentOfUnknownIdIsNotFoundAndChangesNothing) {
  const std::string path = StorePath();
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  DeploymentRecord d = NewDeployment("shop", "v2", Color::kGreen);
  auto id = store->CreateDeployment(d);
  ASSERT_TRUE(id.has_value()) << id.error().message;

  DeploymentRecord unknown = d;
  unknown.id = *id + 1;
  unknown.outcome = "succeeded";
  Status updated = store->UpdateDeployment(unknown);
  ASSERT_FALSE(updated.has_value());
  EXPECT_EQ(updated.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(updated.error().message,
            path + ": update deployment " + std::to_string(*id + 1) + ": no such deployment");
  RawDb raw(path);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM deployments"), "1");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM deployment_steps"), "2");
}

TEST_F(StoreTest, DeploymentsAreNewestFirstLimitedAndPerService) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  std::vector<int64_t> shop_ids;
  for (const char* release : {"v1", "v2", "v3"}) {
    auto id = store->CreateDeployment(NewDeployment("shop", release, Color::kGreen));
    ASSERT_TRUE(id.has_value()) << id.error().message;
    shop_ids.push_back(*id);
    ASSERT_TRUE(store->CreateDeployment(NewDeployment("blog", release, Color::kBlue)));
  }

  auto all = store->Deployments("shop", 10);
  ASSERT_TRUE(all.has_value()) << all.error().message;
  EXPECT_EQ(Ids(*all), (std::vector<int64_t>{shop_ids[2], shop_ids[1], shop_ids[0]}));
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].release, "v3");
  EXPECT_EQ((*all)[2].release, "v1");
  for (const DeploymentRecord& d : *all) {
    EXPECT_EQ(d.service, "shop");
    EXPECT_EQ(d.color, Color::kGreen);
    ASSERT_EQ(d.steps.size(), 2u);
    EXPECT_EQ(d.steps[0].name, "prepare");
    EXPECT_EQ(d.steps[1].name, "start");
  }

  auto newest_two = store->Deployments("shop", 2);
  ASSERT_TRUE(newest_two.has_value()) << newest_two.error().message;
  EXPECT_EQ(Ids(*newest_two), (std::vector<int64_t>{shop_ids[2], shop_ids[1]}));
  for (const DeploymentRecord& d : *newest_two) EXPECT_EQ(d.steps.size(), 2u);

  EXPECT_EQ(store->Deployments("blog", 10).value().size(), 3u);
  EXPECT_TRUE(store->Deployments("none", 10).value().empty());
  EXPECT_TRUE(store->Deployments("shop", 0).value().empty());
  auto negative = store->Deployments("shop", -1);
  ASSERT_FALSE(negative.has_value());
  EXPECT_EQ(negative.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(StoreTest, UnfinishedDeploymentsAreTheRunningOnesOldestFirst) {
  auto store = OpenOrFail(StorePath());
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->UnfinishedDeployments().value().empty());

  auto shop_v1 = store->CreateDeployment(NewDeployment("shop", "v1", Color::kGreen));
  auto blog_v1 = store->CreateDeployment(NewDeployment("blog", "v1", Color::kBlue));
  auto shop_v2 = store->CreateDeployment(NewDeployment("shop", "v2", Color::kBlue));
  auto blog_v2 = store->CreateDeployment(NewDeployment("blog", "v2", Color::kGreen));
  ASSERT_TRUE(shop_v1 && blog_v1 && shop_v2 && blog_v2);

  DeploymentRecord finished = store->Deployment(*blog_v1).value();
  finished.outcome = "succeeded";
  finished.finished_unix_ms = 1'700'000'000'500;
  ASSERT_TRUE(store->UpdateDeployment(finished).has_value());

  auto unfinished = store->UnfinishedDeployments();
  ASSERT_TRUE(unfinished.has_value()) << unfinished.error().message;
  EXPECT_EQ(Ids(*unfinished), (std::vector<int64_t>{*shop_v1, *shop_v2, *blog_v2}));
  for (const DeploymentRecord& d : *unfinished) {
    EXPECT_EQ(d.outcome, "running");
    EXPECT_EQ(d.steps.size(), 2u);
  }
  EXPECT_EQ((*unfinished)[1].color, Color::kBlue);
  EXPECT_EQ((*unfinished)[2].service, "blog");
}

TEST_F(StoreTest, SlotsAndDeploymentsSurviveReopen) {
  const std::string path = StorePath();
  DeploymentRecord d = NewDeployment("shop", "v2", Color::kGreen);
  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store
                    ->SetSlot("shop", Color::kGreen,
                              SlotRecord{.release = "v2", .state = "running", .spec_json = "{}"})
                    .has_value());
    auto id = store->CreateDeployment(d);
    ASSERT_TRUE(id.has_value()) << id.error().message;
    d.id = *id;
    d.outcome = "succeeded";
    d.finished_unix_ms = 1'700'000'000'900;
    d.steps.back() = Step("start", "ok", 1'700'000'000'050, 1'700'000'000'900, "pid 4242");
    ASSERT_TRUE(store->UpdateDeployment(d).has_value());
  }
  auto reopened = OpenOrFail(path);
  ASSERT_NE(reopened, nullptr);
  auto slot = reopened->Slot("shop", Color::kGreen);
  ASSERT_TRUE(slot.has_value()) << slot.error().message;
  EXPECT_EQ(slot->release, "v2");
  EXPECT_EQ(slot->state, "running");
  EXPECT_EQ(slot->spec_json, "{}");
  auto got = reopened->Deployment(d.id);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  ExpectSameDeployment(*got, d);
  EXPECT_TRUE(reopened->UnfinishedDeployments().value().empty());
}

TEST_F(StoreTest, DeploymentUpdateSurvivesKillRightAfterIt) {
  const std::string path = StorePath();
  const pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    auto store = OpenSqliteStore(path);
    if (!store) _exit(1);
    DeploymentRecord d = NewDeployment("shop", "v2", Color::kGreen);
    auto id = (*store)->CreateDeployment(d);
    if (!id) _exit(1);
    d.id = *id;
    d.steps.back().outcome = "ok";
    d.steps.push_back(Step("switch", "running", 1'700'000'000'100, 0));
    if (!(*store)->UpdateDeployment(d)) _exit(1);
    kill(getpid(), SIGKILL);
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  auto store = OpenOrFail(path);
  ASSERT_NE(store, nullptr);
  auto unfinished = store->UnfinishedDeployments();
  ASSERT_TRUE(unfinished.has_value()) << unfinished.error().message;
  ASSERT_EQ(unfinished->size(), 1u);
  ASSERT_EQ((*unfinished)[0].steps.size(), 3u);
  EXPECT_EQ((*unfinished)[0].steps[1].outcome, "ok");
  EXPECT_EQ((*unfinished)[0].steps[2].name, "switch");
}

// A store as cutover 0.1 wrote it: schema version 1, exactly as that version created it.
void WriteVersion1Store(const fs::path& path) {
  RawDb raw(path);
  raw.Exec("PRAGMA journal_mode = WAL");
  raw.Exec(R"sql(
BEGIN;
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
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
INSERT INTO services (name, live_color, updated_unix_ms) VALUES
  ('shop', 'green', 1700000000000), ('blog', 'blue', 1700000000001);
INSERT INTO audit (time_unix_ms, service, action, actor, detail, outcome) VALUES
  (1700000000000, 'shop', 'switch', 'cli', 'blue -> green', 'ok'),
  (1700000000001, 'blog', 'switch', 'api', 'green -> blue', 'ok');
COMMIT;
)sql");
}

TEST_F(StoreTest, Version1StoreUpgradesInPlaceKeepingColorsAndAudit) {
  const std::string path = (dir_.path() / "old.db").string();
  WriteVersion1Store(path);

  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->LiveColor("shop").value(), Color::kGreen);
    EXPECT_EQ(store->LiveColor("blog").value(), Color::kBlue);
    auto audit = store->RecentAudit("", 10);
    ASSERT_TRUE(audit.has_value()) << audit.error().message;
    ASSERT_EQ(audit->size(), 2u);
    EXPECT_EQ((*audit)[0].service, "blog");
    EXPECT_EQ((*audit)[0].actor, "api");
    EXPECT_EQ((*audit)[1].detail, "blue -> green");
    EXPECT_EQ((*audit)[1].time_unix_ms, 1'700'000'000'000);

    // The new tables work, and the audit trail keeps counting from where it was.
    EXPECT_EQ(store->Slot("shop", Color::kGreen).value().release, "");
    ASSERT_TRUE(store->SetSlot("shop", Color::kBlue, SlotRecord{.release = "v2"}).has_value());
    auto id = store->CreateDeployment(NewDeployment("shop", "v2", Color::kBlue));
    ASSERT_TRUE(id.has_value()) << id.error().message;
    ASSERT_TRUE(store->AppendAudit(Event("shop", "deploy", "v2 -> blue")).has_value());
    EXPECT_EQ(store->RecentAudit("shop", 1).value().at(0).id, 3);
  }

  RawDb raw(path);
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'schema_version'"), "2");
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'application'"), "cutover");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('slots', 'deployments', 'deployment_steps')"),
            "3");

  auto reopened = OpenOrFail(path);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->LiveColor("shop").value(), Color::kGreen);
  EXPECT_EQ(reopened->Slot("shop", Color::kBlue).value().release, "v2");
  EXPECT_EQ(reopened->Deployments("shop", 10).value().size(), 1u);
  EXPECT_EQ(reopened->RecentAudit("", 10).value().size(), 3u);
}

TEST_F(StoreTest, RefusesTheNextSchemaVersionAndLeavesTheFileAsItWas) {
  const std::string path = StorePath();
  {
    auto store = OpenOrFail(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->SetLiveColor("shop", Color::kGreen).has_value());
  }
  RawDb(path).Exec("UPDATE meta SET value = '3' WHERE key = 'schema_version'");
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, ErrorCode::kConflict);
  EXPECT_THAT(store.error().message, HasSubstr("store schema version 3 is newer"));
  RawDb raw(path);
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'schema_version'"), "3");
  EXPECT_EQ(raw.Query("SELECT live_color FROM services WHERE name = 'shop'"), "green");
}

}  // namespace
}  // namespace cutover
