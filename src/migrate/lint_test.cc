#include "migrate/lint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "migrate/migration.h"

namespace cutover {
namespace {

using ::testing::HasSubstr;

MigrationFile File(std::string sql, Phase phase = Phase::kExpand,
                   std::vector<LintAllowance> allowances = {}) {
  MigrationFile f;
  f.version = "20261126093000";
  f.name = "change";
  f.phase = phase;
  f.filename = "20261126093000_change.expand.sql";
  if (phase == Phase::kBackfill) f.filename = "20261126093000_change.backfill.sql";
  if (phase == Phase::kContract) f.filename = "20261126093000_change.contract.sql";
  f.path = "/migrations/" + f.filename;
  f.sql = std::move(sql);
  f.options.allowances = std::move(allowances);
  return f;
}

std::vector<LintFinding> LintPg(std::string sql, Phase phase = Phase::kExpand) {
  return Lint(File(std::move(sql), phase), Dialect::kPostgres);
}

std::vector<std::string> Rules(const std::vector<LintFinding>& findings) {
  std::vector<std::string> out;
  for (const LintFinding& f : findings) out.push_back(f.rule);
  return out;
}

using Strings = std::vector<std::string>;

TEST(LintRulesTest, NamesEveryRule) {
  std::vector<std::string> names(LintRules().begin(), LintRules().end());
  EXPECT_EQ(names, (Strings{"drop-table", "drop-column", "rename-table", "rename-column",
                            "change-column-type", "not-null-without-default", "set-not-null",
                            "index-without-concurrently", "foreign-key-without-not-valid",
                            "check-without-not-valid"}));
}

TEST(LintTest, CleanExpandFileHasNoFindings) {
  std::vector<LintFinding> got = LintPg(
      "CREATE TABLE gifts (id bigint PRIMARY KEY, message text NOT NULL);\n"
      "ALTER TABLE orders ADD COLUMN gift_id bigint;\n"
      "ALTER TABLE orders ADD COLUMN wrapped boolean NOT NULL DEFAULT false;\n"
      "CREATE INDEX CONCURRENTLY orders_gift_idx ON orders (gift_id);\n"
      "ALTER TABLE orders ADD CONSTRAINT orders_gift_fk FOREIGN KEY (gift_id) REFERENCES gifts "
      "(id) NOT VALID;\n"
      "ALTER TABLE orders VALIDATE CONSTRAINT orders_gift_fk;\n"
      "UPDATE orders SET wrapped = true WHERE note LIKE '%gift%';\n");
  EXPECT_TRUE(got.empty()) << got[0].ToString();
  EXPECT_FALSE(HasLintErrors(got));
}

TEST(LintTest, DropTable) {
  std::vector<LintFinding> got =
      LintPg("SELECT 1;\nDROP TABLE IF EXISTS app.orders, notes CASCADE;");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "drop-table");
  EXPECT_EQ(got[0].line, 2);
  EXPECT_EQ(got[0].severity, Severity::kError);
  EXPECT_THAT(got[0].message, HasSubstr("dropping table 'app.orders' breaks the live release"));
  EXPECT_THAT(got[0].message, HasSubstr("drop it in a contract file once that release is gone"));
  EXPECT_THAT(got[1].message, HasSubstr("dropping table 'notes'"));
  EXPECT_TRUE(HasLintErrors(got));
}

TEST(LintTest, DropColumn) {
  std::vector<LintFinding> got = LintPg("ALTER TABLE orders DROP COLUMN note;");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "drop-column");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_EQ(got[0].file, "20261126093000_change.expand.sql");
  EXPECT_EQ(got[0].message,
            "dropping column 'orders.note' breaks the live release, which still reads or writes "
            "it; stop using it in a release, then drop it in a contract file once that release "
            "is gone");
  EXPECT_EQ(got[0].ToString(),
            "20261126093000_change.expand.sql:1: drop-column: " + got[0].message);
}

TEST(LintTest, DropColumnWithoutTheColumnKeyword) {
  std::vector<LintFinding> got =
      LintPg("alter table if exists only orders drop if exists note cascade");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "drop-column");
  EXPECT_THAT(got[0].message, HasSubstr("'orders.note'"));
}

TEST(LintTest, DroppingConstraintsDefaultsAndNotNullIsSafe) {
  EXPECT_TRUE(LintPg("ALTER TABLE orders DROP CONSTRAINT orders_note_check;\n"
                     "ALTER TABLE orders ALTER COLUMN note DROP DEFAULT;\n"
                     "ALTER TABLE orders ALTER note DROP NOT NULL;\n"
                     "ALTER TABLE orders ALTER COLUMN id DROP IDENTITY IF EXISTS;\n"
                     "ALTER TABLE orders ALTER COLUMN total DROP EXPRESSION;\n"
                     "DROP INDEX orders_note_idx;\n"
                     "DROP VIEW order_notes;\n")
                  .empty());
}

TEST(LintTest, RenameTable) {
  std::vector<LintFinding> got = LintPg("ALTER TABLE users RENAME TO accounts;");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "rename-table");
  EXPECT_THAT(got[0].message, HasSubstr("renaming table 'users' to 'accounts' breaks the live "
                                        "release, which still uses the old name"));
  EXPECT_THAT(got[0].message, HasSubstr("drop the old one in contract"));
}

TEST(LintTest, RenameColumn) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE users RENAME COLUMN name TO full_name;\n"
      "ALTER TABLE users RENAME email TO mail;\n"
      "ALTER TABLE users RENAME CONSTRAINT users_pkey TO users_pk;\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "rename-column");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_THAT(got[0].message,
              HasSubstr("renaming column 'users.name' to 'full_name' breaks the live release, "
                        "which still uses the old name; add the new column in expand, write both "
                        "from the new release, backfill, and drop the old one in contract"));
  EXPECT_EQ(got[1].rule, "rename-column");
  EXPECT_EQ(got[1].line, 2);
  EXPECT_THAT(got[1].message, HasSubstr("'users.email' to 'mail'"));
}

TEST(LintTest, ChangeColumnType) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE orders ALTER COLUMN total TYPE numeric(12, 2) USING total::numeric;\n"
      "ALTER TABLE orders ALTER note SET DATA TYPE text COLLATE \"C\";\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "change-column-type");
  EXPECT_THAT(got[0].message, HasSubstr("changing the type of column 'orders.total' to "
                                        "numeric(12, 2) breaks the live release"));
  EXPECT_THAT(got[0].message, HasSubstr("rewrite the whole table"));
  EXPECT_THAT(got[0].message, HasSubstr("add a new column of the new type in expand, backfill"));
  EXPECT_EQ(got[1].rule, "change-column-type");
  EXPECT_EQ(got[1].line, 2);
  EXPECT_THAT(got[1].message, HasSubstr("'orders.note' to text breaks"));
}

TEST(LintTest, NotNullWithoutDefault) {
  std::vector<LintFinding> got =
      LintPg("ALTER TABLE orders ADD COLUMN gift_message text NOT NULL;");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "not-null-without-default");
  EXPECT_THAT(got[0].message,
              HasSubstr("adding column 'orders.gift_message' as NOT NULL without a DEFAULT"));
  EXPECT_THAT(got[0].message, HasSubstr("INSERTs, which omit the column, fail"));
  EXPECT_THAT(got[0].message, HasSubstr("add it nullable or with a DEFAULT"));
  EXPECT_EQ(Rules(LintPg("ALTER TABLE orders ADD note text CHECK (length(note) > 0) NOT NULL")),
            (Strings{"not-null-without-default"}));
  EXPECT_EQ(Rules(LintPg("ALTER TABLE orders ADD COLUMN IF NOT EXISTS code int PRIMARY KEY")),
            (Strings{"not-null-without-default"}));
}

TEST(LintTest, NotNullWithADefaultOrAGeneratorIsSafe) {
  EXPECT_TRUE(LintPg("ALTER TABLE orders ADD COLUMN a int NOT NULL DEFAULT 0;\n"
                     "ALTER TABLE orders ADD COLUMN b int DEFAULT 0 NOT NULL;\n"
                     "ALTER TABLE orders ADD COLUMN c int;\n"
                     "ALTER TABLE orders ADD COLUMN d int CHECK (d IS NOT NULL);\n"
                     "ALTER TABLE orders ADD COLUMN e bigint GENERATED ALWAYS AS IDENTITY NOT "
                     "NULL;\n"
                     "ALTER TABLE orders ADD COLUMN f int NOT NULL GENERATED ALWAYS AS (a + b) "
                     "STORED;\n"
                     "ALTER TABLE orders ADD COLUMN g bigserial NOT NULL;\n"
                     "ALTER TABLE orders ADD COLUMN h text NULL;\n")
                  .empty());
}

TEST(LintTest, NotNullInCreateTableIsSafe) {
  EXPECT_TRUE(LintPg("CREATE TABLE gifts (id int NOT NULL, message text NOT NULL)").empty());
}

TEST(LintTest, SetNotNull) {
  std::vector<LintFinding> got = LintPg("ALTER TABLE orders ALTER COLUMN note SET NOT NULL;");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "set-not-null");
  EXPECT_EQ(got[0].severity, Severity::kError);
  EXPECT_THAT(got[0].message, HasSubstr("setting column 'orders.note' NOT NULL makes the live "
                                        "release's writes that leave it NULL fail"));
  EXPECT_THAT(got[0].message, HasSubstr("ACCESS EXCLUSIVE"));
  EXPECT_THAT(got[0].message, HasSubstr("once no running release writes NULL there, in contract "
                                        "files: add CHECK (note IS NOT NULL) NOT VALID, VALIDATE "
                                        "it in a later file, then SET NOT NULL"));
}

TEST(LintTest, IndexWithoutConcurrently) {
  std::vector<LintFinding> got = LintPg(
      "CREATE INDEX orders_note_idx ON orders (note);\n"
      "CREATE UNIQUE INDEX IF NOT EXISTS orders_code_key ON ONLY app.orders USING btree (code);\n"
      "CREATE INDEX ON orders (created_at);\n");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].rule, "index-without-concurrently");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_THAT(got[0].message, HasSubstr("creating index 'orders_note_idx' on 'orders' without "
                                        "CONCURRENTLY locks writes to 'orders' for the whole "
                                        "build"));
  EXPECT_THAT(got[0].message, HasSubstr("use CREATE INDEX CONCURRENTLY in a file with "
                                        "`-- cutover: no-transaction`"));
  EXPECT_EQ(got[1].line, 2);
  EXPECT_THAT(got[1].message,
              HasSubstr("creating unique index 'orders_code_key' on 'app.orders' without"));
  EXPECT_THAT(got[1].message, HasSubstr("use CREATE UNIQUE INDEX CONCURRENTLY"));
  EXPECT_EQ(got[2].line, 3);
  EXPECT_THAT(got[2].message, HasSubstr("creating index on 'orders' without CONCURRENTLY"));
}

TEST(LintTest, IndexConcurrentlyIsSafe) {
  EXPECT_TRUE(LintPg("-- cutover: no-transaction\n"
                     "CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note);\n"
                     "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS k ON orders (code);\n"
                     "CREATE INDEX CONCURRENTLY ON orders (x);\n")
                  .empty());
}

TEST(LintTest, IndexOnATableCreatedEarlierInTheFileIsSafe) {
  EXPECT_TRUE(LintPg("CREATE TABLE gifts (id int, order_id int);\n"
                     "CREATE INDEX gifts_order_idx ON gifts (order_id);\n"
                     "CREATE TABLE IF NOT EXISTS app.wraps (id int);\n"
                     "CREATE UNIQUE INDEX wraps_id ON app.wraps (id);\n"
                     "CREATE UNLOGGED TABLE \"Cards\" (id int);\n"
                     "CREATE INDEX cards_id ON \"Cards\" (id);\n")
                  .empty());
  // Only an earlier CREATE TABLE counts, and PostgreSQL tells "Cards" from cards.
  EXPECT_EQ(Rules(LintPg("CREATE INDEX gifts_order_idx ON gifts (order_id);\n"
                         "CREATE TABLE gifts (id int, order_id int);\n")),
            (Strings{"index-without-concurrently"}));
  EXPECT_EQ(Rules(LintPg("CREATE TABLE \"Cards\" (id int);\nCREATE INDEX ON cards (id);\n")),
            (Strings{"index-without-concurrently"}));
  EXPECT_EQ(Rules(LintPg("CREATE TABLE a.gifts (id int);\nCREATE INDEX ON b.gifts (id);\n")),
            (Strings{"index-without-concurrently"}));
}

TEST(LintTest, ChangesToATableCreatedEarlierInTheFileAreSafe) {
  EXPECT_TRUE(LintPg("CREATE TABLE gifts (id int, note text);\n"
                     "ALTER TABLE gifts ADD COLUMN code text NOT NULL, DROP COLUMN note;\n"
                     "ALTER TABLE gifts ADD CONSTRAINT gifts_order_fk FOREIGN KEY (id) "
                     "REFERENCES orders (id);\n"
                     "ALTER TABLE gifts RENAME TO presents;\n"
                     "CREATE INDEX ON presents (code);\n")
                  .empty());
}

TEST(LintTest, ForeignKeyWithoutNotValid) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE orders\n  ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id)\n"
      "  REFERENCES customers (id) ON DELETE CASCADE;\n"
      "ALTER TABLE orders ADD FOREIGN KEY (gift_id) REFERENCES app.gifts;\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "foreign-key-without-not-valid");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_THAT(got[0].message,
              HasSubstr("adding foreign key 'orders_customer_fk' to 'orders' validates every "
                        "existing row under a lock that blocks writes to 'orders' and "
                        "'customers'"));
  EXPECT_THAT(got[0].message,
              HasSubstr("add it NOT VALID, then VALIDATE CONSTRAINT in a later file"));
  EXPECT_EQ(got[1].line, 4);
  EXPECT_THAT(got[1].message, HasSubstr("adding a foreign key to 'orders'"));
  EXPECT_THAT(got[1].message, HasSubstr("'orders' and 'app.gifts'"));
}

TEST(LintTest, ForeignKeyNotValidIsSafe) {
  EXPECT_TRUE(LintPg("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (customer_id) REFERENCES "
                     "customers (id) NOT VALID;\n"
                     "ALTER TABLE orders VALIDATE CONSTRAINT fk;\n")
                  .empty());
}

TEST(LintTest, CheckWithoutNotValid) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total > 0);\n"
      "ALTER TABLE orders ADD CHECK (note IS NOT NULL);\n"
      "ALTER TABLE orders ADD CONSTRAINT ok CHECK (total > 0) NOT VALID;\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "check-without-not-valid");
  EXPECT_THAT(got[0].message,
              HasSubstr("adding check constraint 'total_positive' to 'orders' validates every "
                        "existing row under an ACCESS EXCLUSIVE lock"));
  EXPECT_THAT(got[0].message,
              HasSubstr("add it NOT VALID, then VALIDATE CONSTRAINT in a later file"));
  EXPECT_EQ(got[1].line, 2);
  EXPECT_THAT(got[1].message, HasSubstr("adding a check constraint to 'orders'"));
}

TEST(LintTest, UniqueConstraintBuildsAnIndexWithoutConcurrently) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);\n"
      "ALTER TABLE orders ADD PRIMARY KEY (id);\n"
      "ALTER TABLE orders ADD CONSTRAINT k UNIQUE USING INDEX orders_code_idx;\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "index-without-concurrently");
  EXPECT_THAT(got[0].message, HasSubstr("adding unique constraint 'orders_code_key' to 'orders' "
                                        "builds its index under an ACCESS EXCLUSIVE lock"));
  EXPECT_THAT(got[0].message, HasSubstr("CREATE UNIQUE INDEX CONCURRENTLY"));
  EXPECT_THAT(got[0].message, HasSubstr("USING INDEX"));
  EXPECT_THAT(got[1].message, HasSubstr("adding a primary key to 'orders'"));
}

TEST(LintTest, SqliteHasNoIndexOrConstraintRules) {
  MigrationFile f = File(
      "CREATE INDEX orders_note_idx ON orders (note);\n"
      "CREATE UNIQUE INDEX k ON orders (code);\n"
      "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id);\n"
      "ALTER TABLE orders ADD CHECK (total > 0);\n"
      "ALTER TABLE orders DROP COLUMN note;\n"
      "ALTER TABLE orders ADD COLUMN code text NOT NULL;\n");
  EXPECT_EQ(Rules(Lint(f, Dialect::kSqlite)), (Strings{"drop-column", "not-null-without-default"}));
  EXPECT_EQ(Rules(Lint(f, Dialect::kPostgres)),
            (Strings{"index-without-concurrently", "index-without-concurrently",
                     "foreign-key-without-not-valid", "check-without-not-valid", "drop-column",
                     "not-null-without-default"}));
}

TEST(LintTest, SqliteQuotedNames) {
  MigrationFile f = File(
      "ALTER TABLE [order items] DROP COLUMN [gift note];\n"
      "ALTER TABLE `orders` RENAME COLUMN \"Note\" TO remark;\n"
      "CREATE TABLE \"Gifts\" (id int);\n"
      "ALTER TABLE gifts DROP COLUMN id;\n");
  std::vector<LintFinding> got = Lint(f, Dialect::kSqlite);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].rule, "drop-column");
  EXPECT_THAT(got[0].message, HasSubstr("dropping column 'order items.gift note'"));
  EXPECT_EQ(got[1].rule, "rename-column");
  EXPECT_THAT(got[1].message, HasSubstr("renaming column 'orders.Note' to 'remark'"));
}

TEST(LintTest, SqliteTriggerBodyIsNotLinted) {
  MigrationFile f = File(
      "CREATE TRIGGER orders_gone AFTER DELETE ON orders BEGIN\n"
      "  DELETE FROM gifts WHERE order_id = old.id;\n"
      "  UPDATE counts SET n = n - 1;\n"
      "END;\n"
      "ALTER TABLE orders RENAME COLUMN note TO remark;\n");
  std::vector<LintFinding> got = Lint(f, Dialect::kSqlite);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "rename-column");
  EXPECT_EQ(got[0].line, 5);
}

TEST(LintTest, ContractReportsOnlyBlockingFormsAsWarnings) {
  std::vector<LintFinding> got = LintPg(
      "DROP TABLE old_orders;\n"
      "ALTER TABLE orders DROP COLUMN note;\n"
      "ALTER TABLE orders RENAME TO purchases;\n"
      "ALTER TABLE orders RENAME COLUMN a TO b;\n"
      "ALTER TABLE orders ADD COLUMN x int NOT NULL;\n"
      "CREATE INDEX orders_x_idx ON orders (x);\n"
      "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;\n"
      "ALTER TABLE orders ALTER COLUMN total TYPE bigint;\n"
      "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES customers (id);\n"
      "ALTER TABLE orders ADD CONSTRAINT ck CHECK (total > 0);\n",
      Phase::kContract);
  EXPECT_EQ(Rules(got), (Strings{"index-without-concurrently", "set-not-null", "change-column-type",
                                 "foreign-key-without-not-valid", "check-without-not-valid"}));
  for (const LintFinding& f : got) {
    EXPECT_EQ(f.severity, Severity::kWarning) << f.ToString();
    EXPECT_THAT(f.message, HasSubstr("consider")) << f.ToString();
  }
  EXPECT_EQ(got[0].line, 6);
  EXPECT_THAT(got[0].message, HasSubstr("blocks writes to 'orders' while it builds; consider "
                                        "CREATE INDEX CONCURRENTLY"));
  EXPECT_THAT(got[1].message, HasSubstr("scans the whole table under an ACCESS EXCLUSIVE lock"));
  EXPECT_THAT(got[2].message, HasSubstr("can rewrite the whole table"));
  EXPECT_THAT(got[3].message, HasSubstr("blocks writes to 'orders' and 'customers'"));
  EXPECT_THAT(got[4].message, HasSubstr("blocking reads and writes of 'orders'"));
  EXPECT_FALSE(HasLintErrors(got));
}

TEST(LintTest, BackfillFilesGetErrorsLikeExpand) {
  std::vector<LintFinding> got = LintPg("ALTER TABLE orders DROP COLUMN note;", Phase::kBackfill);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].severity, Severity::kError);
  EXPECT_EQ(got[0].file, "20261126093000_change.backfill.sql");
  EXPECT_TRUE(HasLintErrors(got));
}

TEST(LintTest, ChecksEveryActionOfAnAlterTable) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE orders\n"
      "  ADD COLUMN price numeric(10, 2) NOT NULL DEFAULT 0,\n"
      "  DROP COLUMN note,\n"
      "  ALTER COLUMN code SET NOT NULL,\n"
      "  ADD COLUMN gift text,\n"
      "  ADD CONSTRAINT ck CHECK (price IN (1, 2)) NOT VALID,\n"
      "  RENAME COLUMN a TO b;\n");
  EXPECT_EQ(Rules(got), (Strings{"drop-column", "set-not-null", "rename-column"}));
  for (const LintFinding& f : got) EXPECT_EQ(f.line, 1);
  EXPECT_EQ(Rules(LintPg("ALTER TABLE t ADD COLUMN a int, DROP COLUMN b")),
            (Strings{"drop-column"}));
}

TEST(LintTest, QuotedAndSchemaQualifiedNames) {
  std::vector<LintFinding> got = LintPg(
      "ALTER TABLE IF EXISTS ONLY \"app\".\"Orders\" DROP COLUMN \"Gift \"\"Note\"\"\";\n"
      "ALTER TABLE shop.orders * RENAME COLUMN \"Total\" TO total;\n"
      "ALTER TABLE \"Odd, Name\" DROP COLUMN x;\n");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].rule, "drop-column");
  EXPECT_THAT(got[0].message, HasSubstr("dropping column 'app.Orders.Gift \"Note\"'"));
  EXPECT_EQ(got[1].rule, "rename-column");
  EXPECT_THAT(got[1].message, HasSubstr("renaming column 'shop.orders.Total' to 'total'"));
  EXPECT_THAT(got[2].message, HasSubstr("dropping column 'Odd, Name.x'"));
}

TEST(LintTest, KeywordsInStringsAndCommentsDoNotFire) {
  EXPECT_TRUE(LintPg("-- DROP TABLE orders;\n"
                     "/* ALTER TABLE orders DROP COLUMN note; /* nested */ */\n"
                     "INSERT INTO audit VALUES ('DROP TABLE orders');\n"
                     "COMMENT ON TABLE orders IS 'ALTER TABLE orders DROP COLUMN note';\n"
                     "SELECT E'\\' ; DROP TABLE orders';\n"
                     "DO $$ BEGIN EXECUTE 'CREATE INDEX i ON orders (x)'; DROP TABLE t; END $$;\n"
                     "SELECT \"DROP TABLE x\" FROM t;\n")
                  .empty());
}

TEST(LintTest, FindingsAreInLineOrder) {
  std::vector<LintFinding> got = LintPg(
      "-- a note\n"
      "ALTER TABLE a DROP COLUMN x, ALTER COLUMN y TYPE int;\n"
      "\n"
      "CREATE INDEX ON a (z);\n"
      "DROP TABLE b;\n");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].line, 2);
  EXPECT_EQ(got[1].line, 2);
  EXPECT_EQ(got[2].line, 4);
  EXPECT_EQ(got[3].line, 5);
}

TEST(LintTest, AllowanceOverridesItsRule) {
  MigrationFile f = File(
      "-- cutover: allow drop-column because nothing has read note since v40\n"
      "ALTER TABLE orders DROP COLUMN note;\n"
      "ALTER TABLE orders DROP COLUMN memo;\n",
      Phase::kExpand, {{"drop-column", "nothing has read note since v40", 1}});
  std::vector<LintFinding> got = Lint(f, Dialect::kPostgres);
  ASSERT_EQ(got.size(), 2u);
  for (const LintFinding& finding : got) {
    EXPECT_EQ(finding.rule, "drop-column");
    EXPECT_EQ(finding.severity, Severity::kError);
    EXPECT_TRUE(finding.allowed);
    EXPECT_EQ(finding.allow_reason, "nothing has read note since v40");
  }
  EXPECT_EQ(got[0].ToString(), "20261126093000_change.expand.sql:2: drop-column: " +
                                   got[0].message + " (allowed: nothing has read note since v40)");
  EXPECT_FALSE(HasLintErrors(got));
}

TEST(LintTest, AllowanceLeavesOtherRulesAlone) {
  MigrationFile f =
      File("ALTER TABLE orders DROP COLUMN note;\nCREATE INDEX ON orders (x);\n", Phase::kExpand,
           {{"index-without-concurrently", "orders has ten rows", 1}});
  std::vector<LintFinding> got = Lint(f, Dialect::kPostgres);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].allowed);
  EXPECT_TRUE(got[1].allowed);
  EXPECT_TRUE(HasLintErrors(got));
}

TEST(LintTest, UnknownRuleInAnAllowance) {
  MigrationFile f = File("-- x\n-- cutover: allow drop-colum because typo\nSELECT 1;\n",
                         Phase::kExpand, {{"drop-colum", "typo", 2}});
  std::vector<LintFinding> got = Lint(f, Dialect::kPostgres);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "unknown-rule");
  EXPECT_EQ(got[0].line, 2);
  EXPECT_EQ(got[0].severity, Severity::kError);
  EXPECT_FALSE(got[0].allowed);
  EXPECT_THAT(got[0].message, HasSubstr("'drop-colum'"));
  EXPECT_THAT(got[0].message, HasSubstr("drop-table, drop-column, rename-table"));
  EXPECT_THAT(got[0].message, HasSubstr("check-without-not-valid"));
  EXPECT_TRUE(HasLintErrors(got));
}

TEST(LintTest, UnusedAllowanceIsAWarning) {
  MigrationFile f = File("-- cutover: allow set-not-null because small table\nSELECT 1;\n",
                         Phase::kExpand, {{"set-not-null", "small table", 1}});
  std::vector<LintFinding> got = Lint(f, Dialect::kPostgres);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].rule, "unused-allow");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_EQ(got[0].severity, Severity::kWarning);
  EXPECT_THAT(got[0].message, HasSubstr("'set-not-null' matches nothing"));
  EXPECT_FALSE(HasLintErrors(got));
}

TEST(LintTest, AllowanceForARuleTheDialectOrPhaseDoesNotReportIsUnused) {
  MigrationFile sqlite = File("CREATE INDEX i ON orders (x);\n", Phase::kExpand,
                              {{"index-without-concurrently", "small", 1}});
  EXPECT_EQ(Rules(Lint(sqlite, Dialect::kSqlite)), (Strings{"unused-allow"}));
  MigrationFile contract = File("ALTER TABLE orders DROP COLUMN note;\n", Phase::kContract,
                                {{"drop-column", "contract drops columns", 1}});
  EXPECT_EQ(Rules(Lint(contract, Dialect::kPostgres)), (Strings{"unused-allow"}));
}

TEST(LintTest, AllowanceMarksContractWarnings) {
  MigrationFile f = File(
      "-- cutover: allow set-not-null because orders is small\n"
      "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;\n",
      Phase::kContract, {{"set-not-null", "orders is small", 1}});
  std::vector<LintFinding> got = Lint(f, Dialect::kPostgres);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].severity, Severity::kWarning);
  EXPECT_TRUE(got[0].allowed);
  EXPECT_THAT(got[0].ToString(), HasSubstr(" (allowed: orders is small)"));
}

TEST(LintTest, UnterminatedStatementDoesNotCrash) {
  EXPECT_TRUE(LintPg("ALTER TABLE \"orders").empty());
  EXPECT_TRUE(LintPg("ALTER TABLE orders DROP COLUMN").empty());
  EXPECT_TRUE(LintPg("CREATE INDEX i ON").empty());
  EXPECT_EQ(Rules(LintPg("ALTER TABLE t ALTER COLUMN c TYPE")), (Strings{"change-column-type"}));
}

// "name on table" (with " if not exists"), or "none".
std::string Described(std::string_view statement) {
  std::optional<ConcurrentIndex> index = ConcurrentIndexOf(statement);
  if (!index) return "none";
  return index->name + " on " + index->table + (index->if_not_exists ? " if not exists" : "");
}

TEST(ConcurrentIndexTest, NamesTheIndexAConcurrentBuildCreatesAndItsTable) {
  EXPECT_EQ(Described("CREATE INDEX CONCURRENTLY orders_ref ON orders (ref)"),
            "orders_ref on orders");
  // Unquoted names are folded the way PostgreSQL stores them; the table is
  // kept as written, for to_regclass().
  EXPECT_EQ(Described("-- why\ncreate unique index concurrently if not exists Orders_Ref "
                      "on only shop.\"Orders\" (ref)"),
            "orders_ref on shop.\"Orders\" if not exists");
  EXPECT_EQ(Described("CREATE INDEX CONCURRENTLY /* x */ \"Mixed Case\" ON t USING btree (a)"),
            "Mixed Case on t");
}

TEST(ConcurrentIndexTest, IgnoresEveryOtherStatement) {
  EXPECT_EQ(Described("CREATE INDEX CONCURRENTLY ON orders (ref)"), "none");
  EXPECT_EQ(Described("CREATE INDEX orders_ref ON orders (ref)"), "none");
  EXPECT_EQ(Described("DROP INDEX CONCURRENTLY orders_ref"), "none");
  EXPECT_EQ(Described("REINDEX INDEX CONCURRENTLY orders_ref"), "none");
  EXPECT_EQ(Described("CREATE INDEX CONCURRENTLY orders_ref"), "none");
  EXPECT_EQ(Described(""), "none");
}

}  // namespace
}  // namespace cutover
