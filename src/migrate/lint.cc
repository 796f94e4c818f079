// Lint of migration files. Each statement is tokenized (comments and
// literals are never mistaken for SQL) and matched against the few forms
// that break the live release or hold long blocking locks.
#include "migrate/lint.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/types.h"
#include "migrate/sql_lex.h"

namespace cutover {

namespace {

using namespace sql;

constexpr std::string_view kDropTable = "drop-table";
constexpr std::string_view kDropColumn = "drop-column";
constexpr std::string_view kRenameTable = "rename-table";
constexpr std::string_view kRenameColumn = "rename-column";
constexpr std::string_view kChangeColumnType = "change-column-type";
constexpr std::string_view kNotNullWithoutDefault = "not-null-without-default";
constexpr std::string_view kSetNotNull = "set-not-null";
constexpr std::string_view kIndexWithoutConcurrently = "index-without-concurrently";
constexpr std::string_view kForeignKeyWithoutNotValid = "foreign-key-without-not-valid";
constexpr std::string_view kCheckWithoutNotValid = "check-without-not-valid";
constexpr std::string_view kUnknownRule = "unknown-rule";
constexpr std::string_view kUnusedAllow = "unused-allow";

constexpr std::string_view kNoTransactionFile = "in a file with `-- cutover: no-transaction`";

// ---------------------------------------------------------------------------
// Tokens

enum class TokenKind {
  kWord,         // a keyword or an unquoted name
  kQuotedIdent,  // "name" (or `name` in SQLite)
  kString,       // any literal string: '', E'', $$ $$
  kOther,        // a number, a parameter or one punctuation character
};

struct Token {
  TokenKind kind = TokenKind::kOther;
  std::string value;      // kWord: upper-cased; kQuotedIdent: the name, quotes undone
  std::string_view text;  // as written, a view into the statement
};

char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

std::vector<Token> Tokenize(std::string_view s, Dialect dialect) {
  std::vector<Token> out;
  const size_t n = s.size();
  auto to = [n](size_t end) { return std::min(end, n); };
  auto add = [&](TokenKind kind, size_t begin, size_t end, std::string value) {
    out.push_back(Token{kind, std::move(value), s.substr(begin, end - begin)});
  };
  size_t i = 0;
  while (i < n) {
    char c = s[i];
    char next = i + 1 < n ? s[i + 1] : '\0';
    size_t begin = i;
    if (IsSpace(c)) {
      ++i;
    } else if (c == '-' && next == '-') {
      i = to(s.find('\n', i));
    } else if (c == '/' && next == '*') {
      i = to(SkipBlockComment(s, i));
    } else if (c == '\'') {
      i = to(SkipQuoted(s, i, c, false));
      add(TokenKind::kString, begin, i, {});
    } else if (c == '"' || c == '`') {
      i = to(SkipQuoted(s, i, c, false));
      std::string name;
      size_t inner_end = i > begin + 1 && s[i - 1] == c ? i - 1 : i;
      for (size_t k = begin + 1; k < inner_end; ++k) {
        name += s[k];
        if (s[k] == c) ++k;  // a doubled quote stands for one
      }
      add(TokenKind::kQuotedIdent, begin, i, std::move(name));
    } else if (c == '[' && dialect == Dialect::kSqlite) {
      // SQLite also quotes names the way SQL Server does; PostgreSQL uses
      // brackets for array subscripts.
      size_t close = std::min(s.find(']', i + 1), n);
      i = std::min(close + 1, n);
      add(TokenKind::kQuotedIdent, begin, i, std::string(s.substr(begin + 1, close - begin - 1)));
    } else if (std::string_view tag = c == '$' ? DollarDelimiter(s, i) : std::string_view();
               !tag.empty()) {
      size_t close = s.find(tag, i + tag.size());
      i = close == kNpos ? n : close + tag.size();
      add(TokenKind::kString, begin, i, {});
    } else if (IsWordStart(c)) {
      while (i < n && IsWordChar(s[i])) ++i;
      if (i - begin == 1 && Upper(c) == 'E' && i < n && s[i] == '\'') {
        i = to(SkipQuoted(s, i, '\'', true));
        add(TokenKind::kString, begin, i, {});
      } else {
        std::string upper(s.substr(begin, i - begin));
        std::transform(upper.begin(), upper.end(), upper.begin(), Upper);
        add(TokenKind::kWord, begin, i, std::move(upper));
      }
    } else if (IsDigit(c) || c == '$') {
      ++i;
      while (i < n && IsWordChar(s[i])) ++i;
      add(TokenKind::kOther, begin, i, std::string(s.substr(begin, i - begin)));
    } else {
      ++i;
      add(TokenKind::kOther, begin, i, std::string(1, c));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Names

struct Ident {
  std::string key;       // for comparing: case folded the way the database does
  std::string display;   // for messages: as written, quotes undone
  std::string_view sql;  // as written, quotes kept
};

struct Name {
  std::vector<Ident> parts;  // schema.table, or just table

  std::string Display() const {
    std::string out;
    for (const Ident& part : parts) {
      if (!out.empty()) out += '.';
      out += part.display;
    }
    return out;
  }

  // A name without a schema may mean the same table as one with it (through
  // the search path); two names that both carry a schema must agree on it.
  bool SameTable(const Name& other) const {
    if (parts.size() == 1 || other.parts.size() == 1) {
      return parts.back().key == other.parts.back().key;
    }
    if (parts.size() != other.parts.size()) return false;
    return std::equal(parts.begin(), parts.end(), other.parts.begin(),
                      [](const Ident& a, const Ident& b) { return a.key == b.key; });
  }
};

std::string Column(const Name& table, const Ident& column) {
  return table.Display() + "." + column.display;
}

// A forward-only view of the tokens [begin, end) of one statement or one
// ALTER TABLE action.
class Cursor {
 public:
  Cursor(const std::vector<Token>& tokens, size_t begin, size_t end, Dialect dialect)
      : tokens_(&tokens), pos_(begin), end_(end), dialect_(dialect) {}

  size_t pos() const { return pos_; }
  size_t end() const { return end_; }
  bool AtEnd() const { return pos_ >= end_; }

  bool IsWord(std::string_view upper, size_t ahead = 0) const {
    const Token* t = Peek(ahead);
    return t != nullptr && t->kind == TokenKind::kWord && t->value == upper;
  }

  bool IsChar(char c, size_t ahead = 0) const {
    const Token* t = Peek(ahead);
    return t != nullptr && t->kind == TokenKind::kOther && t->text.size() == 1 && t->text[0] == c;
  }

  bool Accept(std::string_view upper) {
    if (!IsWord(upper)) return false;
    ++pos_;
    return true;
  }

  // Takes the whole keyword sequence, or nothing.
  bool AcceptAll(std::initializer_list<std::string_view> words) {
    size_t k = 0;
    for (std::string_view w : words) {
      if (!IsWord(w, k++)) return false;
    }
    pos_ += words.size();
    return true;
  }

  bool AcceptAny(std::initializer_list<std::string_view> words) {
    return std::any_of(words.begin(), words.end(), [&](std::string_view w) { return Accept(w); });
  }

  bool AcceptChar(char c) {
    if (!IsChar(c)) return false;
    ++pos_;
    return true;
  }

  std::optional<Ident> TakeIdent() {
    const Token* t = Peek();
    if (t == nullptr) return std::nullopt;
    Ident id;
    if (t->kind == TokenKind::kWord) {
      id.key = ToLower(t->text);
      id.display = std::string(t->text);
    } else if (t->kind == TokenKind::kQuotedIdent) {
      // PostgreSQL keeps a quoted name's case; SQLite compares names without it.
      id.key = dialect_ == Dialect::kPostgres ? t->value : ToLower(t->value);
      id.display = t->value;
    } else {
      return std::nullopt;
    }
    id.sql = t->text;
    ++pos_;
    return id;
  }

  std::optional<Name> TakeName() {
    Name name;
    do {
      std::optional<Ident> part = TakeIdent();
      if (!part) return std::nullopt;
      name.parts.push_back(std::move(*part));
    } while (AcceptChar('.'));
    return name;
  }

  // Moves past the next `upper` keyword; false (and at the end) if none.
  bool SkipPast(std::string_view upper) {
    while (!AtEnd()) {
      if (Accept(upper)) return true;
      ++pos_;
    }
    return false;
  }

  // True when `first second` appears among the remaining tokens.
  bool HasPair(std::string_view first, std::string_view second) const {
    for (size_t k = 0; pos_ + k + 1 < end_; ++k) {
      if (IsWord(first, k) && IsWord(second, k + 1)) return true;
    }
    return false;
  }

 private:
  const Token* Peek(size_t ahead = 0) const {
    return pos_ + ahead < end_ ? &(*tokens_)[pos_ + ahead] : nullptr;
  }

  const std::vector<Token>* tokens_;
  size_t pos_;
  size_t end_;
  Dialect dialect_;
};

// ---------------------------------------------------------------------------
// Rules

// The rules a contract file is still warned about: the old release is gone,
// but these hold locks that stall the new one.
bool BlocksInContract(std::string_view rule) {
  return rule == kIndexWithoutConcurrently || rule == kForeignKeyWithoutNotValid ||
         rule == kCheckWithoutNotValid || rule == kSetNotNull || rule == kChangeColumnType;
}

bool IsKnownRule(std::string_view rule) {
  const auto& rules = LintRules();
  return std::find(rules.begin(), rules.end(), rule) != rules.end();
}

std::string KnownRules() {
  std::string out;
  for (std::string_view rule : LintRules()) {
    if (!out.empty()) out += ", ";
    out += rule;
  }
  return out;
}

// "foreign key 'fk'" or "a foreign key" when the constraint has no name.
std::string Described(std::string_view what, const std::optional<Ident>& name) {
  if (!name) return fmt::format("a {}", what);
  return fmt::format("{} {}", what, Quoted(name->display));
}

// What follows CREATE [UNIQUE] INDEX, up to the table.
struct IndexHead {
  bool concurrently = false;
  bool if_not_exists = false;
  std::optional<Name> index;  // none when PostgreSQL names it
  std::optional<Name> table;  // always set
};

// Reads the index head at `c` (just past INDEX); nullopt when it is not one.
std::optional<IndexHead> ReadIndexHead(Cursor& c) {
  IndexHead head;
  head.concurrently = c.Accept("CONCURRENTLY");
  head.if_not_exists = c.AcceptAll({"IF", "NOT", "EXISTS"});
  if (!c.IsWord("ON")) head.index = c.TakeName();
  if (!c.Accept("ON")) return std::nullopt;
  c.Accept("ONLY");
  head.table = c.TakeName();
  if (!head.table) return std::nullopt;
  return head;
}

class Linter {
 public:
  Linter(const MigrationFile& file, Dialect dialect)
      : file_(file), dialect_(dialect), contract_(file.phase == Phase::kContract) {}

  std::vector<LintFinding> Run() {
    for (const Statement& statement : SplitStatements(file_.sql)) Check(statement);
    ApplyAllowances();
    std::stable_sort(findings_.begin(), findings_.end(),
                     [](const LintFinding& a, const LintFinding& b) { return a.line < b.line; });
    return std::move(findings_);
  }

 private:
  void Check(const Statement& statement) {
    line_ = statement.line;
    tokens_ = Tokenize(statement.text, dialect_);
    Cursor c = All();
    if (c.Accept("CREATE")) {
      CheckCreate(c);
    } else if (c.AcceptAll({"ALTER", "TABLE"})) {
      CheckAlterTable(c);
    } else if (c.AcceptAll({"DROP", "TABLE"})) {
      CheckDropTable(c);
    }
  }

  Cursor All() const { return Cursor(tokens_, 0, tokens_.size(), dialect_); }

  bool Postgres() const { return dialect_ == Dialect::kPostgres; }

  // Whether `table` was created by an earlier statement of this file: no
  // release reads it yet, so nothing done to it can break one.
  bool CreatedHere(const Name& table) const {
    return std::any_of(created_.begin(), created_.end(),
                       [&](const Name& n) { return n.SameTable(table); });
  }

  // `contract_message` is empty for the rules a contract file may break.
  void Report(std::string_view rule, std::string expand_message, std::string contract_message) {
    LintFinding f;
    f.file = file_.filename;
    f.line = line_;
    f.rule = std::string(rule);
    if (contract_) {
      if (!BlocksInContract(rule)) return;
      f.severity = Severity::kWarning;
      f.message = std::move(contract_message);
    } else {
      f.severity = Severity::kError;
      f.message = std::move(expand_message);
    }
    findings_.push_back(std::move(f));
  }

  void CheckCreate(Cursor& c) {
    bool unique = false;
    while (true) {
      if (c.Accept("UNIQUE")) {
        unique = true;
      } else if (!c.AcceptAny(
                     {"GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED", "VIRTUAL", "FOREIGN"})) {
        break;
      }
    }
    if (c.Accept("TABLE")) {
      c.AcceptAll({"IF", "NOT", "EXISTS"});
      if (std::optional<Name> table = c.TakeName()) created_.push_back(std::move(*table));
    } else if (c.Accept("INDEX")) {
      CheckCreateIndex(c, unique);
    }
  }

  void CheckCreateIndex(Cursor& c, bool unique) {
    const std::optional<IndexHead> head = ReadIndexHead(c);
    if (!head) return;
    const bool concurrently = head->concurrently;
    const std::optional<Name>& index = head->index;
    const std::optional<Name>& table = head->table;
    if (!Postgres() || concurrently || CreatedHere(*table)) return;
    std::string what = fmt::format(
        "creating {}index {}on {} without CONCURRENTLY", unique ? "unique " : "",
        index ? Quoted(index->Display()) + " " : std::string(), Quoted(table->Display()));
    std::string safe =
        fmt::format("CREATE {}INDEX CONCURRENTLY {}", unique ? "UNIQUE " : "", kNoTransactionFile);
    Report(kIndexWithoutConcurrently,
           fmt::format("{} locks writes to {} for the whole build, so the live release's writes "
                       "wait; use {}",
                       what, Quoted(table->Display()), safe),
           fmt::format("{} blocks writes to {} while it builds; consider {}", what,
                       Quoted(table->Display()), safe));
  }

  void CheckDropTable(Cursor& c) {
    c.AcceptAll({"IF", "EXISTS"});
    do {
      std::optional<Name> table = c.TakeName();
      if (!table) return;
      if (CreatedHere(*table)) continue;
      Report(kDropTable,
             fmt::format("dropping table {} breaks the live release, which still reads or writes "
                         "it; stop using it in a release, then drop it in a contract file once "
                         "that release is gone",
                         Quoted(table->Display())),
             {});
    } while (c.AcceptChar(','));
  }

  void CheckAlterTable(Cursor& c) {
    c.AcceptAll({"IF", "EXISTS"});
    c.Accept("ONLY");
    std::optional<Name> table = c.TakeName();
    if (!table) return;
    c.AcceptChar('*');  // PostgreSQL: the table and its descendants
    // The actions are separated by the commas outside parentheses.
    size_t begin = c.pos();
    int depth = 0;
    for (size_t i = begin; i <= tokens_.size(); ++i) {
      if (i == tokens_.size() || (depth == 0 && IsChar(i, ','))) {
        if (i > begin) CheckAction(Cursor(tokens_, begin, i, dialect_), *table);
        begin = i + 1;
      } else if (IsChar(i, '(')) {
        ++depth;
      } else if (IsChar(i, ')') && depth > 0) {
        --depth;
      }
    }
  }

  bool IsChar(size_t i, char c) const {
    const Token& t = tokens_[i];
    return t.kind == TokenKind::kOther && t.text.size() == 1 && t.text[0] == c;
  }

  void CheckAction(Cursor a, const Name& table) {
    bool created = CreatedHere(table);
    if (a.Accept("ADD")) {
      std::optional<Ident> constraint;
      if (a.Accept("CONSTRAINT")) {
        constraint = a.TakeIdent();
        if (!constraint) return;
      }
      if (a.IsWord("FOREIGN") || a.IsWord("CHECK") || a.IsWord("UNIQUE") || a.IsWord("PRIMARY")) {
        if (!created && Postgres()) CheckAddConstraint(a, table, constraint);
      } else if (!constraint && !a.IsWord("EXCLUDE")) {
        if (!created) CheckAddColumn(a, table);
      }
    } else if (a.Accept("DROP")) {
      if (a.IsWord("CONSTRAINT") || a.IsWord("DEFAULT") || a.IsWord("NOT") ||
          a.IsWord("IDENTITY") || a.IsWord("EXPRESSION")) {
        return;
      }
      a.Accept("COLUMN");
      a.AcceptAll({"IF", "EXISTS"});
      std::optional<Ident> column = a.TakeIdent();
      if (!column || created) return;
      Report(kDropColumn,
             fmt::format("dropping column {} breaks the live release, which still reads or "
                         "writes it; stop using it in a release, then drop it in a contract file "
                         "once that release is gone",
                         Quoted(Column(table, *column))),
             {});
    } else if (a.Accept("RENAME")) {
      CheckRename(a, table, created);
    } else if (a.Accept("ALTER")) {
      if (a.IsWord("CONSTRAINT")) return;
      a.Accept("COLUMN");
      std::optional<Ident> column = a.TakeIdent();
      if (!column || created) return;
      if (a.Accept("TYPE") || a.AcceptAll({"SET", "DATA", "TYPE"})) {
        CheckChangeType(a, table, *column);
      } else if (a.AcceptAll({"SET", "NOT", "NULL"})) {
        std::string name = Quoted(Column(table, *column));
        std::string check = fmt::format("CHECK ({} IS NOT NULL)", column->sql);
        Report(kSetNotNull,
               fmt::format("setting column {} NOT NULL makes the live release's writes that "
                           "leave it NULL fail, and it scans the whole table under an ACCESS "
                           "EXCLUSIVE lock; once no running release writes NULL there, in "
                           "contract files: add {} NOT VALID, VALIDATE it in a later file, then "
                           "SET NOT NULL",
                           name, check),
               fmt::format("setting column {} NOT NULL scans the whole table under an ACCESS "
                           "EXCLUSIVE lock, blocking reads and writes until it ends; consider "
                           "validating a {} constraint first, which lets SET NOT NULL skip the "
                           "scan",
                           name, check));
      }
    }
  }

  void CheckRename(Cursor& a, const Name& table, bool created) {
    if (a.Accept("TO")) {
      std::optional<Name> to = a.TakeName();
      if (!to) return;
      if (created) {
        created_.push_back(std::move(*to));
        return;
      }
      Report(kRenameTable,
             fmt::format("renaming table {} to {} breaks the live release, which still uses the "
                         "old name; create the new table in expand, write both from the new "
                         "release, backfill, and drop the old one in contract",
                         Quoted(table.Display()), Quoted(to->Display())),
             {});
      return;
    }
    if (a.IsWord("CONSTRAINT")) return;
    a.Accept("COLUMN");
    std::optional<Ident> from = a.TakeIdent();
    if (!from || !a.Accept("TO")) return;
    std::optional<Ident> to = a.TakeIdent();
    if (!to || created) return;
    Report(kRenameColumn,
           fmt::format("renaming column {} to {} breaks the live release, which still uses the "
                       "old name; add the new column in expand, write both from the new "
                       "release, backfill, and drop the old one in contract",
                       Quoted(Column(table, *from)), Quoted(to->display)),
           {});
  }

  void CheckChangeType(Cursor& a, const Name& table, const Ident& column) {
    // The type as written, up to USING or COLLATE.
    size_t first = a.pos();
    size_t last = first;
    int depth = 0;
    for (; last < a.end(); ++last) {
      if (IsChar(last, '(')) ++depth;
      if (IsChar(last, ')')) --depth;
      const Token& t = tokens_[last];
      if (depth == 0 && t.kind == TokenKind::kWord &&
          (t.value == "USING" || t.value == "COLLATE")) {
        break;
      }
    }
    std::string type;
    if (last > first) {
      const char* b = tokens_[first].text.data();
      const char* e = tokens_[last - 1].text.data() + tokens_[last - 1].text.size();
      for (const char* p = b; p < e; ++p) {
        if (!IsSpace(*p)) {
          type += *p;
        } else if (!type.empty() && type.back() != ' ') {
          type += ' ';
        }
      }
    }
    std::string name = Quoted(Column(table, column));
    std::string to = type.empty() ? std::string() : " to " + type;
    Report(kChangeColumnType,
           fmt::format("changing the type of column {}{} breaks the live release, which still "
                       "reads and writes the old type, and can rewrite the whole table under an "
                       "ACCESS EXCLUSIVE lock; add a new column of the new type in expand, "
                       "backfill it, switch the new release to it, and drop the old one in "
                       "contract",
                       name, to),
           fmt::format("changing the type of column {}{} can rewrite the whole table under an "
                       "ACCESS EXCLUSIVE lock, blocking reads and writes until it ends; consider "
                       "a new column, backfilled in batches, instead",
                       name, to));
  }

  void CheckAddConstraint(Cursor& a, const Name& table, const std::optional<Ident>& constraint) {
    std::string on = Quoted(table.Display());
    if (a.Accept("FOREIGN")) {
      if (a.HasPair("NOT", "VALID")) return;
      std::string locked = on;
      std::optional<Name> referenced;
      if (a.SkipPast("REFERENCES")) referenced = a.TakeName();
      if (referenced) {
        locked += " and " + Quoted(referenced->Display());
      }
      std::string what = fmt::format(
          "adding {} to {} validates every existing row under a lock "
          "that blocks writes to {} until the scan ends",
          Described("foreign key", constraint), on, locked);
      Report(kForeignKeyWithoutNotValid,
             fmt::format("{}, stalling the live release; add it NOT VALID, then VALIDATE "
                         "CONSTRAINT in a later file",
                         what),
             fmt::format("{}; consider adding it NOT VALID and running VALIDATE CONSTRAINT in a "
                         "later file",
                         what));
    } else if (a.Accept("CHECK")) {
      if (a.HasPair("NOT", "VALID")) return;
      std::string what =
          fmt::format("adding {} to {} validates every existing row under an ACCESS EXCLUSIVE lock",
                      Described("check constraint", constraint), on);
      Report(kCheckWithoutNotValid,
             fmt::format("{}, which blocks the live release's reads and writes of {} until the "
                         "scan ends; add it NOT VALID, then VALIDATE CONSTRAINT in a later file",
                         what, on),
             fmt::format("{}, blocking reads and writes of {} until the scan ends; consider "
                         "adding it NOT VALID and running VALIDATE CONSTRAINT in a later file",
                         what, on));
    } else {
      // UNIQUE or PRIMARY KEY build an index while holding ACCESS EXCLUSIVE,
      // unless they adopt one built CONCURRENTLY.
      bool primary = a.IsWord("PRIMARY");
      if (a.HasPair("USING", "INDEX")) return;
      std::string what =
          fmt::format("adding {} to {} builds its index under an ACCESS EXCLUSIVE lock",
                      Described(primary ? "primary key" : "unique constraint", constraint), on);
      std::string safe = fmt::format("CREATE UNIQUE INDEX CONCURRENTLY {}", kNoTransactionFile);
      Report(kIndexWithoutConcurrently,
             fmt::format("{}, which blocks the live release's reads and writes of {} for the "
                         "whole build; build the index with {}, then add the constraint with "
                         "USING INDEX",
                         what, on, safe),
             fmt::format("{}, blocking reads and writes of {} while it builds; consider {}, then "
                         "adding the constraint with USING INDEX",
                         what, on, safe));
    }
  }

  void CheckAddColumn(Cursor& a, const Name& table) {
    a.Accept("COLUMN");
    a.AcceptAll({"IF", "NOT", "EXISTS"});
    std::optional<Ident> column = a.TakeIdent();
    if (!column) return;
    bool not_null = false;
    // A serial, generated or identity column fills itself in, like a default.
    bool has_default = a.IsWord("SERIAL") || a.IsWord("BIGSERIAL") || a.IsWord("SMALLSERIAL") ||
                       a.IsWord("SERIAL2") || a.IsWord("SERIAL4") || a.IsWord("SERIAL8");
    int depth = 0;
    for (size_t i = a.pos(); i < a.end(); ++i) {
      if (IsChar(i, '(')) ++depth;
      if (IsChar(i, ')') && depth > 0) --depth;
      const Token& t = tokens_[i];
      if (depth > 0 || t.kind != TokenKind::kWord) continue;
      bool before_null = i + 1 < a.end() && tokens_[i + 1].kind == TokenKind::kWord &&
                         tokens_[i + 1].value == "NULL";
      bool before_key = i + 1 < a.end() && tokens_[i + 1].kind == TokenKind::kWord &&
                        tokens_[i + 1].value == "KEY";
      bool after_is =
          i > a.pos() && tokens_[i - 1].kind == TokenKind::kWord && tokens_[i - 1].value == "IS";
      if (t.value == "DEFAULT" || t.value == "GENERATED" || t.value == "AS") {
        has_default = true;
      } else if ((t.value == "NOT" && before_null && !after_is) ||
                 (t.value == "PRIMARY" && before_key)) {
        not_null = true;
      }
    }
    if (!not_null || has_default) return;
    Report(kNotNullWithoutDefault,
           fmt::format("adding column {} as NOT NULL without a DEFAULT makes the live release's "
                       "INSERTs, which omit the column, fail; add it nullable or with a DEFAULT",
                       Quoted(Column(table, *column))),
           {});
  }

  void ApplyAllowances() {
    std::vector<LintFinding> extra;
    for (const LintAllowance& allow : file_.options.allowances) {
      LintFinding f;
      f.file = file_.filename;
      f.line = allow.line;
      if (!IsKnownRule(allow.rule)) {
        f.rule = std::string(kUnknownRule);
        f.severity = Severity::kError;
        f.message = fmt::format("allow names an unknown rule {}; the rules are: {}",
                                Quoted(allow.rule), KnownRules());
        extra.push_back(std::move(f));
        continue;
      }
      bool used = false;
      for (LintFinding& finding : findings_) {
        if (finding.rule != allow.rule) continue;
        used = true;
        if (!finding.allowed) {
          finding.allowed = true;
          finding.allow_reason = allow.reason;
        }
      }
      if (used) continue;
      f.rule = std::string(kUnusedAllow);
      f.severity = Severity::kWarning;
      f.message = fmt::format(
          "the allowance for {} matches nothing in this {} file; remove it so it cannot hide a "
          "later change",
          Quoted(allow.rule), PhaseName(file_.phase));
      extra.push_back(std::move(f));
    }
    findings_.insert(findings_.end(), extra.begin(), extra.end());
  }

  const MigrationFile& file_;
  Dialect dialect_;
  bool contract_;
  int line_ = 0;               // of the statement being checked
  std::vector<Token> tokens_;  // of the statement being checked
  std::vector<Name> created_;  // tables created by the statements so far
  std::vector<LintFinding> findings_;
};

}  // namespace

std::string LintFinding::ToString() const {
  std::string out = fmt::format("{}:{}: {}: {}", file, line, rule, message);
  if (allowed) out += fmt::format(" (allowed: {})", allow_reason);
  return out;
}

const std::vector<std::string_view>& LintRules() {
  static const std::vector<std::string_view> kRules = {
      kDropTable,
      kDropColumn,
      kRenameTable,
      kRenameColumn,
      kChangeColumnType,
      kNotNullWithoutDefault,
      kSetNotNull,
      kIndexWithoutConcurrently,
      kForeignKeyWithoutNotValid,
      kCheckWithoutNotValid,
  };
  return kRules;
}

std::vector<LintFinding> Lint(const MigrationFile& file, Dialect dialect) {
  return Linter(file, dialect).Run();
}

std::optional<ConcurrentIndex> ConcurrentIndexOf(std::string_view statement) {
  const std::vector<Token> tokens = Tokenize(statement, Dialect::kPostgres);
  Cursor c(tokens, 0, tokens.size(), Dialect::kPostgres);
  if (!c.Accept("CREATE")) return std::nullopt;
  c.Accept("UNIQUE");
  if (!c.Accept("INDEX")) return std::nullopt;
  std::optional<IndexHead> head = ReadIndexHead(c);
  // An index PostgreSQL names itself has no name to look for.
  if (!head || !head->concurrently || !head->index || head->index->parts.size() != 1) {
    return std::nullopt;
  }
  ConcurrentIndex out;
  out.if_not_exists = head->if_not_exists;
  out.name = head->index->parts.front().key;
  for (const Ident& part : head->table->parts) {
    if (!out.table.empty()) out.table += '.';
    out.table += part.sql;
  }
  return out;
}

bool HasLintErrors(const std::vector<LintFinding>& findings) {
  return std::any_of(findings.begin(), findings.end(), [](const LintFinding& f) {
    return f.severity == Severity::kError && !f.allowed;
  });
}

}  // namespace cutover
