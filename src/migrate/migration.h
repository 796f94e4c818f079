// Migration files: the SQL a service ships for schema changes, one file per
// step, named `<UTC timestamp>_<name>.<phase>.sql` and ordered by timestamp.
// Loading reads the folder, the per-file options from the header comments
// and the SHA-256 of each file. Plain values and pure functions; safe from
// any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"

namespace cutover {

// The SQL dialect of the database a migration runs against.
enum class Dialect { kPostgres, kSqlite };

std::string_view DialectName(Dialect d);  // "postgres", "sqlite"

// When a file runs. expand: before the new release starts, compatible with
// the release that is live. backfill: after the switch, data only.
// contract: once the previous release is gone.
enum class Phase { kExpand, kBackfill, kContract };

std::string_view PhaseName(Phase p);  // "expand", "backfill", "contract"
std::optional<Phase> ParsePhase(std::string_view s);

// `-- cutover: allow <rule> because <reason>`: one lint rule the file may
// break, and why that is safe.
struct LintAllowance {
  std::string rule;
  std::string reason;
  int line = 0;  // of the header comment
};

// Options set by `-- cutover: ...` comments before the first statement.
struct MigrationOptions {
  bool no_transaction = false;         // `no-transaction`
  std::optional<Millis> lock_timeout;  // `lock-timeout=2s`
  std::vector<LintAllowance> allowances;
};

struct MigrationFile {
  std::string version;  // the timestamp, e.g. "20261126093000"
  std::string name;     // e.g. "add_gift_message"
  Phase phase = Phase::kExpand;
  std::string filename;  // e.g. "20261126093000_add_gift_message.expand.sql"
  std::string path;      // the file's full path
  std::string sql;       // the whole text
  std::string sha256;    // lower-case hex of the file's bytes
  MigrationOptions options;
};

// Reads every `*.sql` file of `dir`, sorted by version. Fails (naming the
// file, and the line for a header option) on a name that does not follow
// the pattern, two files with one version, or an unknown `-- cutover:`
// option. Files that do not end in `.sql` are ignored.
Result<std::vector<MigrationFile>> LoadMigrations(const std::string& dir);

// Parses one file's text (for tests and for LoadMigrations).
Result<MigrationFile> ParseMigration(std::string filename, std::string path, std::string sql);

// Lower-case hex SHA-256 of `bytes`.
std::string Sha256Hex(std::string_view bytes);

// One SQL statement of a file, without its terminating ';'.
struct Statement {
  std::string_view text;  // a view into the file's text, comments kept
  int line = 1;           // 1-based line of the statement's first token
  size_t offset = 0;      // byte offset of `text` in the file
};

// Splits `sql` at top-level semicolons. Knows single-quoted strings (with
// '' escapes), E'' strings (with backslash escapes), double-quoted
// identifiers, dollar quotes ($$ and $tag$), -- and nested /* */
// comments, and the BEGIN ... END bodies of CREATE TRIGGER (SQLite) and
// BEGIN ATOMIC (PostgreSQL). Statements holding only comments or
// whitespace are dropped.
std::vector<Statement> SplitStatements(std::string_view sql);

// The 1-based line of byte `offset` in `text`.
int LineAt(std::string_view text, size_t offset);

}  // namespace cutover
