// Lint: the static rules that keep an expand file compatible with the
// release that is still running (and warn about the forms of a contract
// file that take long, blocking locks). Runs before any file is applied.
// Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "migrate/migration.h"

namespace cutover {

enum class Severity { kError, kWarning };

struct LintFinding {
  std::string file;  // the file's name (not its path)
  int line = 0;      // 1-based line of the offending statement
  std::string rule;  // e.g. "drop-column"
  Severity severity = Severity::kError;
  // Why it breaks the release that is still running, then the safe way:
  // "dropping column 'note' breaks the release that still reads it; drop
  // it in a contract file once that release is gone"
  std::string message;
  bool allowed = false;      // an `allow` header overrides it
  std::string allow_reason;  // the header's reason when allowed

  // "FILE:LINE: rule: message" (with " (allowed: reason)" when allowed).
  std::string ToString() const;
};

// The rule names, as `-- cutover: allow <rule>` accepts them.
const std::vector<std::string_view>& LintRules();

// Lints one file for `dialect`: expand and backfill files get errors,
// contract files warnings for the blocking forms. Findings are in line
// order. An allowance for a rule no finding of the file has is itself
// reported (rule "unused-allow", a warning) so stale overrides get noticed;
// an allowance naming an unknown rule is an error (rule "unknown-rule").
std::vector<LintFinding> Lint(const MigrationFile& file, Dialect dialect);

// True when any finding is an error that no allowance overrides.
bool HasLintErrors(const std::vector<LintFinding>& findings);

// The index a PostgreSQL statement builds with CREATE [UNIQUE] INDEX
// CONCURRENTLY [IF NOT EXISTS] name ON table. Such a build that fails
// leaves the index behind, INVALID.
struct ConcurrentIndex {
  std::string name;   // as the catalog stores it (unquoted names folded to lower case)
  std::string table;  // as written, quotes and schema kept: what to_regclass() takes
  bool if_not_exists = false;
};

// The index `statement` builds concurrently; nullopt for any other statement
// and for an index PostgreSQL names itself. The index lives in its table's
// schema (CREATE INDEX takes no schema on the index's name).
std::optional<ConcurrentIndex> ConcurrentIndexOf(std::string_view statement);

}  // namespace cutover
