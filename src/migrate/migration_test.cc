#include "migrate/migration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace cutover {
namespace {

using ::testing::HasSubstr;

TEST(ParseMigrationTest, ReadsVersionNamePhaseAndChecksum) {
  Result<MigrationFile> f = ParseMigration("20261126093000_add_gift_message.expand.sql", "/m/x",
                                           "ALTER TABLE orders ADD COLUMN gift text;\n");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->version, "20261126093000");
  EXPECT_EQ(f->name, "add_gift_message");
  EXPECT_EQ(f->phase, Phase::kExpand);
  EXPECT_EQ(f->path, "/m/x");
  EXPECT_EQ(f->sha256, Sha256Hex("ALTER TABLE orders ADD COLUMN gift text;\n"));
  EXPECT_FALSE(f->options.no_transaction);
  EXPECT_FALSE(f->options.lock_timeout.has_value());
}

TEST(ParseMigrationTest, KnowsTheThreePhases) {
  for (auto [suffix, phase] :
       {std::pair{"expand", Phase::kExpand}, std::pair{"backfill", Phase::kBackfill},
        std::pair{"contract", Phase::kContract}}) {
    Result<MigrationFile> f =
        ParseMigration(std::string("20260101000000_x.") + suffix + ".sql", "", "SELECT 1;");
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ(f->phase, phase);
  }
}

TEST(ParseMigrationTest, RefusesNamesThatDoNotFollowThePattern) {
  struct Case {
    const char* name;
    const char* why;
  } cases[] = {
      {"add_column.expand.sql", "UTC timestamp of 14 digits"},
      {"2026112609_add.expand.sql", "UTC timestamp of 14 digits"},
      {"20261126093000_add.sql", "the phase is missing"},
      {"20261126093000_add.migrate.sql", "unknown phase 'migrate'"},
      {"20261126093000.expand.sql", "name after the timestamp is missing"},
      {"20261126093000_.expand.sql", "name after the timestamp is missing"},
  };
  for (const Case& c : cases) {
    Result<MigrationFile> f = ParseMigration(c.name, "", "SELECT 1;");
    ASSERT_FALSE(f) << c.name;
    EXPECT_THAT(f.error().message, HasSubstr(c.name));
    EXPECT_THAT(f.error().message, HasSubstr(c.why)) << c.name;
    EXPECT_THAT(f.error().message, HasSubstr("20261126093000_add_gift_message.expand.sql"));
  }
}

TEST(ParseMigrationTest, ReadsHeaderOptionsBeforeTheFirstStatement) {
  Result<MigrationFile> f = ParseMigration("20260101000000_idx.expand.sql", "",
                                           "-- Adds the index the new search needs.\n"
                                           "-- cutover: no-transaction\n"
                                           "--cutover: lock-timeout=750ms\n"
                                           "/* a block comment\n   over two lines */\n"
                                           "-- cutover: allow drop-column because nothing reads "
                                           "it since v12\n"
                                           "CREATE INDEX CONCURRENTLY i ON t (c);\n"
                                           "-- cutover: allow drop-table because after the "
                                           "first statement this is plain SQL\n");
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_TRUE(f->options.no_transaction);
  ASSERT_TRUE(f->options.lock_timeout.has_value());
  EXPECT_EQ(*f->options.lock_timeout, Millis(750));
  ASSERT_EQ(f->options.allowances.size(), 1u);
  EXPECT_EQ(f->options.allowances[0].rule, "drop-column");
  EXPECT_EQ(f->options.allowances[0].reason, "nothing reads it since v12");
  EXPECT_EQ(f->options.allowances[0].line, 6);
}

TEST(ParseMigrationTest, ReportsBadOptionsWithFileAndLine) {
  struct Case {
    const char* header;
    const char* want;
  } cases[] = {
      {"-- cutover: no-transactions\n", "x.expand.sql:2: unknown option 'no-transactions'"},
      {"-- cutover: lock-timeout\n", "x.expand.sql:2: lock-timeout needs a value"},
      {"-- cutover: lock-timeout=soon\n", "x.expand.sql:2: lock-timeout:"},
      {"-- cutover: lock-timeout=0s\n", "must be more than 0"},
      {"-- cutover: allow drop-column\n", "the reason is required"},
      {"-- cutover: allow drop-column because\n", "the reason is required"},
  };
  for (const Case& c : cases) {
    Result<MigrationFile> f =
        ParseMigration("20260101000000_x.expand.sql", "",
                       std::string("-- first line\n") + c.header + "SELECT 1;\n");
    ASSERT_FALSE(f) << c.header;
    EXPECT_THAT(f.error().message, HasSubstr(c.want)) << c.header;
  }
}

TEST(LoadMigrationsTest, SortsByVersionAndIgnoresOtherFiles) {
  Result<test::TempDir> dir = test::TempDir::Create("cutover-migrations");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(test::WriteFile(dir->File("20260102000000_a.contract.sql"), "SELECT 2;"));
  ASSERT_TRUE(test::WriteFile(dir->File("20260101000000_z.expand.sql"), "SELECT 1;"));
  ASSERT_TRUE(test::WriteFile(dir->File("README.md"), "notes"));
  Result<std::vector<MigrationFile>> files = LoadMigrations(dir->path().string());
  ASSERT_TRUE(files) << files.error().message;
  ASSERT_EQ(files->size(), 2u);
  EXPECT_EQ((*files)[0].filename, "20260101000000_z.expand.sql");
  EXPECT_EQ((*files)[1].filename, "20260102000000_a.contract.sql");
  EXPECT_EQ((*files)[1].sql, "SELECT 2;");
}

TEST(LoadMigrationsTest, RefusesTwoFilesWithOneVersion) {
  Result<test::TempDir> dir = test::TempDir::Create("cutover-migrations");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(test::WriteFile(dir->File("20260101000000_a.expand.sql"), "SELECT 1;"));
  ASSERT_TRUE(test::WriteFile(dir->File("20260101000000_b.contract.sql"), "SELECT 2;"));
  Result<std::vector<MigrationFile>> files = LoadMigrations(dir->path().string());
  ASSERT_FALSE(files);
  EXPECT_THAT(files.error().message, HasSubstr("20260101000000_a.expand.sql"));
  EXPECT_THAT(files.error().message, HasSubstr("20260101000000_b.contract.sql"));
  EXPECT_THAT(files.error().message, HasSubstr("same timestamp"));
}

TEST(LoadMigrationsTest, NamesABadFileAndAMissingFolder) {
  Result<test::TempDir> dir = test::TempDir::Create("cutover-migrations");
  ASSERT_TRUE(dir);
  ASSERT_TRUE(test::WriteFile(dir->File("add_users.sql"), "SELECT 1;"));
  Result<std::vector<MigrationFile>> files = LoadMigrations(dir->path().string());
  ASSERT_FALSE(files);
  EXPECT_THAT(files.error().message, HasSubstr("add_users.sql"));

  Result<std::vector<MigrationFile>> missing = LoadMigrations(dir->File("nope"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("nope"));
}

TEST(Sha256Test, MatchesTheKnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace cutover
