#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "migrate/migration.h"

namespace cutover {
namespace {

std::vector<std::string> Texts(std::string_view sql) {
  std::vector<std::string> out;
  for (const Statement& s : SplitStatements(sql)) out.emplace_back(s.text);
  return out;
}

using Strings = std::vector<std::string>;

TEST(SplitStatementsTest, SplitsAtSemicolonsWithLinesAndOffsets) {
  std::string_view sql = "CREATE TABLE a (id int);\n\n  INSERT INTO a VALUES (1);\nSELECT 1;\n";
  std::vector<Statement> got = SplitStatements(sql);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].text, "CREATE TABLE a (id int)");
  EXPECT_EQ(got[0].line, 1);
  EXPECT_EQ(got[0].offset, 0u);
  EXPECT_EQ(got[1].text, "INSERT INTO a VALUES (1)");
  EXPECT_EQ(got[1].line, 3);
  EXPECT_EQ(got[1].offset, sql.find("INSERT"));
  EXPECT_EQ(got[2].text, "SELECT 1");
  EXPECT_EQ(got[2].line, 4);
  EXPECT_EQ(got[2].offset, sql.find("SELECT"));
}

TEST(SplitStatementsTest, TextIsAViewIntoTheFileAtItsOffset) {
  std::string sql = "SELECT 1;\n  SELECT 2;";
  for (const Statement& s : SplitStatements(sql)) {
    EXPECT_EQ(s.text.data(), sql.data() + s.offset);
  }
}

TEST(SplitStatementsTest, KeepsTheLastStatementWithoutSemicolon) {
  EXPECT_EQ(Texts("SELECT 1;\nSELECT 2\n\n"), (Strings{"SELECT 1", "SELECT 2"}));
}

TEST(SplitStatementsTest, TrimsWhitespaceBeforeTheSemicolon) {
  EXPECT_EQ(Texts("SELECT 1   \n\t ;"), (Strings{"SELECT 1"}));
}

TEST(SplitStatementsTest, StartsAtTheFirstTokenAfterLeadingComments) {
  std::string_view sql =
      "-- cutover: no-transaction\n/* a block\n   comment */\n  CREATE INDEX CONCURRENTLY i ON t "
      "(x);";
  std::vector<Statement> got = SplitStatements(sql);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, "CREATE INDEX CONCURRENTLY i ON t (x)");
  EXPECT_EQ(got[0].line, 4);
  EXPECT_EQ(got[0].offset, sql.find("CREATE"));
}

TEST(SplitStatementsTest, KeepsCommentsInsideAStatement) {
  EXPECT_EQ(Texts("SELECT 1, -- one; two\n 2 /* three; */;SELECT 3"),
            (Strings{"SELECT 1, -- one; two\n 2 /* three; */", "SELECT 3"}));
}

TEST(SplitStatementsTest, SingleQuotedStringsWithDoubledQuotes) {
  EXPECT_EQ(Texts("INSERT INTO t VALUES ('a;''b;');SELECT 2"),
            (Strings{"INSERT INTO t VALUES ('a;''b;')", "SELECT 2"}));
  EXPECT_EQ(Texts("SELECT '';SELECT ''''"), (Strings{"SELECT ''", "SELECT ''''"}));
}

TEST(SplitStatementsTest, BackslashIsNotAnEscapeInAStandardString) {
  EXPECT_EQ(Texts("SELECT 'a\\';SELECT 2"), (Strings{"SELECT 'a\\'", "SELECT 2"}));
}

TEST(SplitStatementsTest, EStringsHaveBackslashEscapes) {
  EXPECT_EQ(Texts("SELECT E'it\\'s; fine';SELECT 2"),
            (Strings{"SELECT E'it\\'s; fine'", "SELECT 2"}));
  EXPECT_EQ(Texts("select e'\\\\';select 2"), (Strings{"select e'\\\\'", "select 2"}));
  EXPECT_EQ(Texts("SELECT E'a''b;\\\\';SELECT 2"), (Strings{"SELECT E'a''b;\\\\'", "SELECT 2"}));
}

TEST(SplitStatementsTest, OnlyALoneEPrefixMakesAnEString) {
  // `date'...'` is a typed literal: the backslash does not escape the quote.
  EXPECT_EQ(Texts("SELECT date'2026-01-01\\';SELECT 2"),
            (Strings{"SELECT date'2026-01-01\\'", "SELECT 2"}));
}

TEST(SplitStatementsTest, QuotedIdentifiersWithDoubledQuotes) {
  EXPECT_EQ(Texts("CREATE TABLE \"a;\"\"b\" (x int);SELECT 1"),
            (Strings{"CREATE TABLE \"a;\"\"b\" (x int)", "SELECT 1"}));
  EXPECT_EQ(Texts("SELECT \"it's;\" FROM t;SELECT 1"),
            (Strings{"SELECT \"it's;\" FROM t", "SELECT 1"}));
}

TEST(SplitStatementsTest, BacktickIdentifiers) {
  EXPECT_EQ(Texts("CREATE TABLE `a;b` (x int);SELECT 1"),
            (Strings{"CREATE TABLE `a;b` (x int)", "SELECT 1"}));
}

TEST(SplitStatementsTest, DollarQuotes) {
  std::string_view sql =
      "DO $$ BEGIN PERFORM 1; RAISE NOTICE 'x'; END $$;\n"
      "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $$ still; $$ $fn$ LANGUAGE sql;\n"
      "SELECT $a$'$a$;\n";
  EXPECT_EQ(
      Texts(sql),
      (Strings{"DO $$ BEGIN PERFORM 1; RAISE NOTICE 'x'; END $$",
               "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; $$ still; $$ $fn$ LANGUAGE sql",
               "SELECT $a$'$a$"}));
}

TEST(SplitStatementsTest, DollarTagsAreCaseSensitive) {
  EXPECT_EQ(Texts("SELECT $X$ a; $x$ b; $X$;SELECT 2"),
            (Strings{"SELECT $X$ a; $x$ b; $X$", "SELECT 2"}));
}

TEST(SplitStatementsTest, ParametersAreNotDollarQuotes) {
  EXPECT_EQ(Texts("PREPARE p AS SELECT $1;SELECT $2; SELECT 3"),
            (Strings{"PREPARE p AS SELECT $1", "SELECT $2", "SELECT 3"}));
  EXPECT_EQ(Texts("SELECT $1$;SELECT 2"), (Strings{"SELECT $1$", "SELECT 2"}));
}

TEST(SplitStatementsTest, DollarInsideAnIdentifierIsNotAQuote) {
  EXPECT_EQ(Texts("SELECT foo$bar$ FROM t;SELECT 2;SELECT $bar$"),
            (Strings{"SELECT foo$bar$ FROM t", "SELECT 2", "SELECT $bar$"}));
}

TEST(SplitStatementsTest, BlockCommentsNest) {
  EXPECT_EQ(Texts("/* a /* b; */ still a comment; */ SELECT 1; SELECT /* x /* y */ ; */ 2;"),
            (Strings{"SELECT 1", "SELECT /* x /* y */ ; */ 2"}));
}

TEST(SplitStatementsTest, QuotesInsideCommentsAreIgnored) {
  EXPECT_EQ(Texts("-- it's\nSELECT 1; /* \"unbalanced */ SELECT 2;"),
            (Strings{"SELECT 1", "SELECT 2"}));
}

TEST(SplitStatementsTest, SqliteTriggerBodyIsOneStatement) {
  std::string_view sql =
      "CREATE TABLE log (x int);\n"
      "CREATE TRIGGER orders_log AFTER INSERT ON orders\n"
      "BEGIN\n"
      "  INSERT INTO log VALUES (new.id);\n"
      "  UPDATE counts SET n = CASE WHEN n IS NULL THEN 1 ELSE n + 1 END;\n"
      "  DELETE FROM log WHERE x < 0;\n"
      "END;\n"
      "SELECT 1;\n";
  std::vector<Statement> got = SplitStatements(sql);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1].line, 2);
  EXPECT_TRUE(got[1].text.starts_with("CREATE TRIGGER orders_log"));
  EXPECT_TRUE(got[1].text.ends_with("DELETE FROM log WHERE x < 0;\nEND"));
  EXPECT_EQ(got[2].text, "SELECT 1");
  EXPECT_EQ(got[2].line, 8);
}

TEST(SplitStatementsTest, TemporaryTriggerWithWhenClause) {
  std::string_view sql =
      "create temp trigger t before update on x when case when new.a then 1 end begin "
      "select raise(abort, 'no;'); select 2; end;select 3";
  EXPECT_EQ(Texts(sql), (Strings{"create temp trigger t before update on x when case when new.a "
                                 "then 1 end begin select raise(abort, 'no;'); select 2; end",
                                 "select 3"}));
  EXPECT_EQ(Texts("CREATE TEMPORARY TRIGGER IF NOT EXISTS t AFTER DELETE ON x BEGIN DELETE FROM "
                  "y; END;SELECT 1"),
            (Strings{"CREATE TEMPORARY TRIGGER IF NOT EXISTS t AFTER DELETE ON x BEGIN DELETE "
                     "FROM y; END",
                     "SELECT 1"}));
}

TEST(SplitStatementsTest, PostgresTriggerWithoutBodySplitsNormally) {
  EXPECT_EQ(Texts("CREATE OR REPLACE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION "
                  "f();SELECT 1"),
            (Strings{"CREATE OR REPLACE TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION "
                     "f()",
                     "SELECT 1"}));
}

TEST(SplitStatementsTest, BeginAtomicBodyIsOneStatement) {
  std::string_view sql =
      "CREATE OR REPLACE FUNCTION grade(score int) RETURNS text LANGUAGE sql\n"
      "BEGIN ATOMIC\n"
      "  SELECT CASE WHEN score > 90 THEN 'a;' ELSE 'b' END;\n"
      "  SELECT 'done';\n"
      "END;\n"
      "CREATE PROCEDURE p() begin atomic insert into t values (1); end;\n"
      "SELECT grade(1);";
  std::vector<Statement> got = SplitStatements(sql);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].text.ends_with("SELECT 'done';\nEND"));
  EXPECT_EQ(got[1].text, "CREATE PROCEDURE p() begin atomic insert into t values (1); end");
  EXPECT_EQ(got[1].line, 6);
  EXPECT_EQ(got[2].text, "SELECT grade(1)");
}

TEST(SplitStatementsTest, TransactionBeginAndEndAreOrdinaryStatements) {
  EXPECT_EQ(Texts("BEGIN;\nCREATE TABLE t (x int);\nCOMMIT;\nBEGIN TRANSACTION; SELECT 1; END;"),
            (Strings{"BEGIN", "CREATE TABLE t (x int)", "COMMIT", "BEGIN TRANSACTION", "SELECT 1",
                     "END"}));
}

TEST(SplitStatementsTest, CaseOutsideABodyDoesNotNest) {
  EXPECT_EQ(Texts("SELECT CASE WHEN a THEN 1 END; SELECT 2"),
            (Strings{"SELECT CASE WHEN a THEN 1 END", "SELECT 2"}));
}

TEST(SplitStatementsTest, SemicolonsInsideParenthesesDoNotSplit) {
  EXPECT_EQ(Texts("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); "
                  "INSERT INTO b VALUES (2));SELECT 1"),
            (Strings{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); "
                     "INSERT INTO b VALUES (2))",
                     "SELECT 1"}));
}

TEST(SplitStatementsTest, UnterminatedStringRunsToTheEnd) {
  std::vector<Statement> got = SplitStatements("SELECT 1;\nSELECT 'oops;\nSELECT 2;\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].text, "SELECT 'oops;\nSELECT 2;");
  EXPECT_EQ(got[1].line, 2);
}

TEST(SplitStatementsTest, UnterminatedQuotesAndDollarQuotesRunToTheEnd) {
  EXPECT_EQ(Texts("SELECT \"x; SELECT 2;"), (Strings{"SELECT \"x; SELECT 2;"}));
  EXPECT_EQ(Texts("DO $body$ x; SELECT 2;"), (Strings{"DO $body$ x; SELECT 2;"}));
  EXPECT_EQ(Texts("SELECT E'\\'; SELECT 2;"), (Strings{"SELECT E'\\'; SELECT 2;"}));
  EXPECT_EQ(Texts("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2;"),
            (Strings{"CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; SELECT 2;"}));
}

TEST(SplitStatementsTest, UnterminatedCommentIsKeptForTheDatabaseToReport) {
  std::vector<Statement> got = SplitStatements("SELECT 1;\n/* oops; SELECT 2;");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].text, "/* oops; SELECT 2;");
  EXPECT_EQ(got[1].line, 2);
  EXPECT_EQ(Texts("SELECT 1 /* oops; SELECT 2;"), (Strings{"SELECT 1 /* oops; SELECT 2;"}));
}

TEST(SplitStatementsTest, DropsStatementsOfOnlyCommentsAndWhitespace) {
  EXPECT_TRUE(SplitStatements("").empty());
  EXPECT_TRUE(SplitStatements("  \n\t\n").empty());
  EXPECT_TRUE(SplitStatements("-- just a note\n/* and /* another */ */\n-- no newline").empty());
  EXPECT_TRUE(SplitStatements(";;\n ; -- x\n;").empty());
  EXPECT_EQ(Texts("SELECT 1;;\n;SELECT 2;-- trailing note\n"), (Strings{"SELECT 1", "SELECT 2"}));
}

TEST(SplitStatementsTest, CountsLinesAcrossCrlfAndMultilineLiterals) {
  std::string_view sql = "SELECT 'a\r\nb';\r\n\r\nSELECT $$\n\n$$;\r\nSELECT 3;";
  std::vector<Statement> got = SplitStatements(sql);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].line, 1);
  EXPECT_EQ(got[1].line, 4);
  EXPECT_EQ(got[2].line, 7);
}

TEST(SplitStatementsTest, IgnoresAByteOrderMark) {
  std::vector<Statement> got = SplitStatements("\xEF\xBB\xBFSELECT 1;");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].text, "SELECT 1");
  EXPECT_EQ(got[0].offset, 3u);
}

TEST(LineAtTest, CountsNewlinesBeforeTheOffset) {
  std::string_view text = "a\nbc\n\nd";
  EXPECT_EQ(LineAt(text, 0), 1);
  EXPECT_EQ(LineAt(text, 1), 1);  // the newline itself ends line 1
  EXPECT_EQ(LineAt(text, 2), 2);
  EXPECT_EQ(LineAt(text, 5), 3);
  EXPECT_EQ(LineAt(text, 6), 4);
  EXPECT_EQ(LineAt(text, 100), 4);
  EXPECT_EQ(LineAt("", 0), 1);
}

}  // namespace
}  // namespace cutover
