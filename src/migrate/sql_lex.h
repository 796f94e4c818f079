// The lexical pieces of SQL that splitting and lint both need: character
// classes, and skipping comments, quoted literals and dollar quotes the way
// PostgreSQL (and, where it differs, SQLite) reads them. Private to
// src/migrate. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace cutover::sql {

inline constexpr size_t kNpos = std::string_view::npos;

inline bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Bytes of multi-byte UTF-8 characters count as letters, as in PostgreSQL.
inline bool IsWordStart(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u >= 0x80;
}

// PostgreSQL allows '$' inside (not at the start of) an identifier, which is
// why `a$b$` is a name and not the opening of a dollar quote.
inline bool IsWordChar(char c) { return IsWordStart(c) || IsDigit(c) || c == '$'; }

// Past the end of the (nested) block comment that opens at `i`, or kNpos.
inline size_t SkipBlockComment(std::string_view s, size_t i) {
  int depth = 0;
  while (i + 1 < s.size()) {
    if (s[i] == '/' && s[i + 1] == '*') {
      ++depth;
      i += 2;
    } else if (s[i] == '*' && s[i + 1] == '/') {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return kNpos;
}

// Past the closing `quote` of the literal that opens at `i`, or kNpos. A
// doubled quote stands for itself; with `backslash`, so does `\<any>`.
inline size_t SkipQuoted(std::string_view s, size_t i, char quote, bool backslash) {
  ++i;
  while (i < s.size()) {
    if (backslash && s[i] == '\\') {
      i += 2;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        i += 2;
      } else {
        return i + 1;
      }
    } else {
      ++i;
    }
  }
  return kNpos;
}

// The opening delimiter (`$$` or `$tag$`) at `i`, or empty when the '$' at
// `i` starts something else, such as the parameter `$1`.
inline std::string_view DollarDelimiter(std::string_view s, size_t i) {
  size_t j = i + 1;
  if (j < s.size() && s[j] == '$') return s.substr(i, 2);
  if (j >= s.size() || !IsWordStart(s[j])) return {};
  while (j < s.size() && (IsWordStart(s[j]) || IsDigit(s[j]))) ++j;
  if (j < s.size() && s[j] == '$') return s.substr(i, j + 1 - i);
  return {};
}

}  // namespace cutover::sql
