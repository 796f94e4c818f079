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
  EXPECT_EQ(raw.Query("SELECT value FROM meta WHERE key = 'schema_version'"), "1");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE name IN "
                      "('services', 'audit', 'audit_service_id')"),
            "3");
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
            path + ": store schema version 99 is newer than this cutover (1); upgrade cutover");
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

}  // namespace
}  // namespace cutover
