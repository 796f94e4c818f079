// Splitting a migration file into statements. The lexing follows what
// psql and SQLite do before they send a statement: a ';' ends a statement
// only outside strings, quoted identifiers, comments, parentheses and the
// compound bodies of triggers and BEGIN ATOMIC functions.
#include <algorithm>
#include <string_view>
#include <vector>

#include "migrate/migration.h"
#include "migrate/sql_lex.h"

namespace cutover {

namespace {

using namespace sql;

bool KeywordIs(std::string_view word, std::string_view upper) {
  return word.size() == upper.size() &&
         std::equal(word.begin(), word.end(), upper.begin(), [](char a, char b) {
           if (a >= 'a' && a <= 'z') a -= 'a' - 'A';
           return a == b;
         });
}

// Counts lines forward only: statements are found in order, so the whole
// file is counted once.
class LineCounter {
 public:
  explicit LineCounter(std::string_view text) : text_(text) {}

  int LineOf(size_t offset) {
    line_ +=
        static_cast<int>(std::count(text_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                    text_.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
    pos_ = offset;
    return line_;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
};

// What the words seen so far say about the statement being read: whether
// BEGIN opens a body in which ';' does not end the statement.
class StatementState {
 public:
  bool started() const { return started_; }
  size_t start() const { return start_; }
  // True while a ';' belongs to the statement rather than ending it.
  bool Nested() const { return depth_ > 0 || parens_ > 0; }

  void Start(size_t offset) {
    if (started_) return;
    started_ = true;
    start_ = offset;
  }

  void OnWord(std::string_view w) {
    bool after_begin = after_begin_;
    after_begin_ = false;
    if (++words_ == 1) {
      create_ = KeywordIs(w, "CREATE");
      trigger_prefix_ = create_;
      return;
    }
    if (!create_) return;
    if (trigger_prefix_) {
      if (KeywordIs(w, "TRIGGER")) {
        trigger_ = true;
        trigger_prefix_ = false;
        return;
      }
      trigger_prefix_ = KeywordIs(w, "TEMP") || KeywordIs(w, "TEMPORARY") || KeywordIs(w, "OR") ||
                        KeywordIs(w, "REPLACE") || KeywordIs(w, "CONSTRAINT");
    }
    if (KeywordIs(w, "BEGIN")) {
      // A trigger's body is BEGIN ... END; a function's only BEGIN ATOMIC.
      if (trigger_) {
        ++depth_;
      } else {
        after_begin_ = true;
      }
    } else if (after_begin && KeywordIs(w, "ATOMIC")) {
      ++depth_;
    } else if (depth_ > 0 && KeywordIs(w, "CASE")) {
      ++depth_;
    } else if (depth_ > 0 && KeywordIs(w, "END")) {
      --depth_;
    }
  }

  void OnOther(char c) {
    after_begin_ = false;
    if (c == '(') {
      ++parens_;
    } else if (c == ')' && parens_ > 0) {
      --parens_;
    }
  }

 private:
  bool started_ = false;
  size_t start_ = 0;
  int words_ = 0;
  bool create_ = false;
  bool trigger_prefix_ = false;  // only CREATE [TEMP|OR REPLACE|...] so far
  bool trigger_ = false;
  bool after_begin_ = false;
  int depth_ = 0;   // open BEGIN / CASE blocks of a compound body
  int parens_ = 0;  // psql does not split inside parentheses either
};

}  // namespace

int LineAt(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(),
                                         text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

std::vector<Statement> SplitStatements(std::string_view sql) {
  std::vector<Statement> out;
  LineCounter lines(sql);
  StatementState st;
  const size_t n = sql.size();

  auto finish = [&](size_t end) {
    if (st.started()) {
      size_t start = st.start();
      while (end > start && IsSpace(sql[end - 1])) --end;
      out.push_back(Statement{sql.substr(start, end - start), lines.LineOf(start), start});
    }
    st = StatementState();
  };
  // An unterminated literal or comment runs to the end of the file: the
  // database is then the one to say what is wrong with it.
  auto to = [n](size_t end) { return end == kNpos ? n : end; };

  size_t i = 0;
  if (sql.starts_with("\xEF\xBB\xBF")) i = 3;  // a UTF-8 byte order mark is not SQL
  while (i < n) {
    char c = sql[i];
    char next = i + 1 < n ? sql[i + 1] : '\0';
    if (IsSpace(c)) {
      ++i;
    } else if (c == '-' && next == '-') {
      i = to(sql.find('\n', i));
    } else if (c == '/' && next == '*') {
      size_t end = SkipBlockComment(sql, i);
      if (end == kNpos) st.Start(i);
      i = to(end);
    } else if (c == ';' && !st.Nested()) {
      finish(i);
      ++i;
    } else {
      st.Start(i);
      if (c == '\'') {
        i = to(SkipQuoted(sql, i, '\'', false));
        st.OnOther(c);
      } else if (c == '"' || c == '`') {
        i = to(SkipQuoted(sql, i, c, false));
        st.OnOther(c);
      } else if (std::string_view tag = c == '$' ? DollarDelimiter(sql, i) : std::string_view();
                 !tag.empty()) {
        size_t close = sql.find(tag, i + tag.size());
        i = close == kNpos ? n : close + tag.size();
        st.OnOther(c);
      } else if (IsWordStart(c)) {
        size_t begin = i;
        while (i < n && IsWordChar(sql[i])) ++i;
        std::string_view word = sql.substr(begin, i - begin);
        if (KeywordIs(word, "E") && i < n && sql[i] == '\'') {
          i = to(SkipQuoted(sql, i, '\'', true));
          st.OnOther('\'');
        } else {
          st.OnWord(word);
        }
      } else if (IsDigit(c) || c == '$') {
        // A number or a parameter such as `$1`.
        ++i;
        while (i < n && IsWordChar(sql[i])) ++i;
        st.OnOther(c);
      } else {
        ++i;
        st.OnOther(c);
      }
    }
  }
  finish(n);
  return out;
}

}  // namespace cutover
