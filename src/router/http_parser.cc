#include "router/http_parser.h"

#include <array>
#include <cstring>

namespace cutover {
namespace {

constexpr std::array<bool, 256> MakeTokenTable() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTokenChar = MakeTokenTable();

constexpr std::array<bool, 256> MakeHostTable() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("-._~!$&'()*+,;=:[]%")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kHostChar = MakeHostTable();

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

inline bool IsOws(char c) { return c == ' ' || c == '\t'; }

// A field-value character: VCHAR, obs-text, SP or HTAB.
constexpr bool IsValueChar(unsigned char c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }

constexpr std::array<bool, 256> MakeValueTable() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = IsValueChar(static_cast<unsigned char>(c));
  return t;
}
constexpr std::array<bool, 256> kValueChar = MakeValueTable();

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsOws(s.back())) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each comma-separated, trimmed, non-empty token.
template <typename Fn>
void ForEachToken(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view tok = Trim(list.substr(0, comma));
    if (!tok.empty()) fn(tok);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// Finds "\r\n\r\n" within the first `limit` bytes; returns the index after it.
size_t FindHeadEnd(std::string_view data, size_t limit) {
  size_t n = data.size() < limit ? data.size() : limit;
  const char* p = data.data();
  size_t i = 0;
  while (i + 3 < n) {
    const void* cr = std::memchr(p + i, '\r', n - i - 3);
    if (cr == nullptr) return std::string_view::npos;
    i = static_cast<const char*>(cr) - p;
    if (p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') return i + 4;
    ++i;
  }
  return std::string_view::npos;
}

bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// Header facts shared by requests and responses.
struct CommonHeaders {
  bool has_length = false;
  uint64_t length = 0;
  bool length_conflict = false;
  bool has_te = false;
  bool te_chunked_final = false;  // the last coding is chunked, and only once
  bool te_chunked_twice = false;
  bool te_seen_chunked = false;
  ConnectionInfo connection;
  bool upgrade_websocket = false;
};

void NoteContentLength(std::string_view value, CommonHeaders& h) {
  bool bad = false;
  bool any = false;
  ForEachToken(value, [&](std::string_view tok) {
    any = true;
    uint64_t v = 0;
    if (!ParseDecimal(tok, &v)) {
      bad = true;
      return;
    }
    if (h.has_length && v != h.length) bad = true;
    h.has_length = true;
    h.length = v;
  });
  if (!any) bad = true;
  if (bad) h.length_conflict = true;
}

void NoteTransferEncoding(std::string_view value, CommonHeaders& h) {
  h.has_te = true;
  ForEachToken(value, [&](std::string_view tok) {
    if (EqualsIgnoreCase(tok, "chunked")) {
      if (h.te_seen_chunked) h.te_chunked_twice = true;
      h.te_seen_chunked = true;
      h.te_chunked_final = true;
    } else {
      // A coding after chunked: the body's end is no longer known.
      h.te_chunked_final = false;
    }
  });
}

void NoteConnection(std::string_view value, CommonHeaders& h) {
  ForEachToken(value, [&](std::string_view tok) {
    if (EqualsIgnoreCase(tok, "close")) {
      h.connection.close = true;
    } else if (EqualsIgnoreCase(tok, "keep-alive")) {
      h.connection.keep_alive = true;
    } else if (EqualsIgnoreCase(tok, "upgrade")) {
      h.connection.upgrade = true;
    } else {
      h.connection.has_tokens = true;
    }
  });
}

// SplitHead's pass for a head with nothing unusual in it, each byte read
// once: the start line, then fields of a token name, a colon, optional
// whitespace, value characters and CRLF, at most `max_headers` of them.
// Returns false at anything else, leaving a part of the fields in `out`.
bool SplitPlainHead(std::string_view head, size_t max_headers, std::string_view* first_line,
                    std::vector<HeaderField>& out) {
  // head ends with "\r\n\r\n", so every scan below stops at a CR inside it:
  // CR is neither a token, a value character nor whitespace.
  const char* p = head.data();
  const char* const end = p + head.size() - 2;  // at the final empty line
  const auto* eol = static_cast<const char*>(std::memchr(p, '\r', head.size()));
  if (eol[1] != '\n' || std::memchr(p, '\n', static_cast<size_t>(eol - p)) != nullptr) return false;
  *first_line = std::string_view(p, static_cast<size_t>(eol - p));
  p = eol + 2;
  while (p < end) {
    const char* name = p;
    while (kTokenChar[static_cast<unsigned char>(*p)]) ++p;
    if (p == name || *p != ':') return false;
    const std::string_view field_name(name, static_cast<size_t>(p - name));
    ++p;
    while (IsOws(*p)) ++p;
    const char* value = p;
    while (kValueChar[static_cast<unsigned char>(*p)]) ++p;
    if (p[0] != '\r' || p[1] != '\n') return false;
    const char* value_end = p;
    while (value_end > value && IsOws(value_end[-1])) --value_end;
    if (out.size() >= max_headers) return false;
    out.push_back({field_name, std::string_view(value, static_cast<size_t>(value_end - value))});
    p += 2;
  }
  return true;
}

// Splits the head into lines and validates every header field. Returns false
// with `error` set on a malformed field. `first_line` receives the start line.
bool SplitHead(std::string_view head, const ParseLimits& limits, std::string_view* first_line,
               std::vector<HeaderField>& out, ParseError* error, int bad_status) {
  if (SplitPlainHead(head, limits.max_headers, first_line, out)) return true;
  // Something is off: the line-by-line pass below names it.
  out.clear();
  // head ends with "\r\n\r\n"; drop the final empty line.
  head.remove_suffix(2);
  size_t eol = head.find("\r\n");
  *first_line = head.substr(0, eol);
  if (first_line->find_first_of("\r\n") != std::string_view::npos) {
    *error = {bad_status, "bare CR or LF in the start line"};
    return false;
  }
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (IsOws(line.front())) {
      *error = {bad_status, "obsolete line folding"};
      return false;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *error = {bad_status, "header line without a field name and colon"};
      return false;
    }
    std::string_view name = line.substr(0, colon);
    for (size_t i = 0; i < name.size(); ++i) {
      if (!kTokenChar[static_cast<unsigned char>(name[i])]) {
        *error = {bad_status, IsOws(name[i]) ? "whitespace before the colon of a header"
                                             : "invalid character in a header name"};
        return false;
      }
    }
    std::string_view value = Trim(line.substr(colon + 1));
    for (char c : value) {
      if (!IsValueChar(static_cast<unsigned char>(c))) {
        *error = {bad_status, "invalid character in a header value"};
        return false;
      }
    }
    if (out.size() >= limits.max_headers) {
      *error = {bad_status == 400 ? 431 : bad_status, "too many header fields"};
      return false;
    }
    out.push_back({name, value});
  }
  return true;
}

// Classifies well-known headers by a cheap length+first-letter switch.
template <typename Extra>
void ScanCommon(const std::vector<HeaderField>& headers, CommonHeaders& h, Extra&& extra) {
  for (const HeaderField& f : headers) {
    std::string_view n = f.name;
    switch (n.size()) {
      case 7:
        if (EqualsIgnoreCase(n, "upgrade")) {
          ForEachToken(f.value, [&](std::string_view tok) {
            if (EqualsIgnoreCase(tok, "websocket")) h.upgrade_websocket = true;
          });
          continue;
        }
        break;
      case 10:
        if (EqualsIgnoreCase(n, "connection")) {
          NoteConnection(f.value, h);
          continue;
        }
        break;
      case 14:
        if (EqualsIgnoreCase(n, "content-length")) {
          NoteContentLength(f.value, h);
          continue;
        }
        break;
      case 17:
        if (EqualsIgnoreCase(n, "transfer-encoding")) {
          NoteTransferEncoding(f.value, h);
          continue;
        }
        break;
      default:
        break;
    }
    extra(f);
  }
}

bool ParseVersion(std::string_view v, int* minor, bool* unsupported) {
  *unsupported = false;
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return false;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return false;
  if (v[5] != '1' || (v[7] != '0' && v[7] != '1')) {
    *unsupported = true;
    return false;
  }
  *minor = v[7] - '0';
  return true;
}

bool SaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '=' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool HasBareLineFeed(std::string_view data) {
  for (size_t i = data.find('\n'); i != std::string_view::npos; i = data.find('\n', i + 1)) {
    if (i == 0 || data[i - 1] != '\r') return true;
  }
  return false;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsHopByHopHeader(std::string_view name) {
  switch (name.size()) {
    case 2:
      return EqualsIgnoreCase(name, "te");
    case 7:
      return EqualsIgnoreCase(name, "trailer") || EqualsIgnoreCase(name, "upgrade");
    case 10:
      return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive");
    case 16:
      return EqualsIgnoreCase(name, "proxy-connection");
    case 18:
      return EqualsIgnoreCase(name, "proxy-authenticate");
    case 19:
      return EqualsIgnoreCase(name, "proxy-authorization");
    default:
      return false;
  }
}

bool NamedInConnection(const std::vector<HeaderField>& headers, std::string_view name) {
  bool found = false;
  for (const HeaderField& f : headers) {
    if (!EqualsIgnoreCase(f.name, "connection")) continue;
    ForEachToken(f.value, [&](std::string_view tok) {
      if (EqualsIgnoreCase(tok, name)) found = true;
    });
  }
  return found;
}

ParseResult ParseRequestHead(std::string_view data, const ParseLimits& limits, RequestHead& head,
                             size_t* head_len, ParseError* error) {
  // Tolerate empty lines before the request line (RFC 9112 §2.2).
  size_t skip = 0;
  while (skip + 1 < data.size() && data[skip] == '\r' && data[skip + 1] == '\n') skip += 2;
  if (skip > 8) {
    *error = {400, "too many empty lines before the request"};
    return ParseResult::kError;
  }
  std::string_view rest = data.substr(skip);
  size_t end = FindHeadEnd(rest, limits.max_head_bytes);
  if (end == std::string_view::npos) {
    if (HasBareLineFeed(rest)) {
      *error = {400, "bare LF line ending (lines must end with CRLF)"};
      return ParseResult::kError;
    }
    if (rest.size() >= limits.max_head_bytes) {
      *error = {431, "request header section too large"};
      return ParseResult::kError;
    }
    return ParseResult::kIncomplete;
  }
  std::vector<HeaderField>& fields = *head.headers;
  fields.clear();
  std::string_view line;
  if (!SplitHead(rest.substr(0, end), limits, &line, fields, error, 400)) {
    return ParseResult::kError;
  }

  // request-line = method SP request-target SP HTTP-version
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    *error = {400, "malformed request line"};
    return ParseResult::kError;
  }
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (head.method.empty() || head.target.empty()) {
    *error = {400, "malformed request line"};
    return ParseResult::kError;
  }
  for (char c : head.method) {
    if (!kTokenChar[static_cast<unsigned char>(c)]) {
      *error = {400, "invalid method"};
      return ParseResult::kError;
    }
  }
  for (char c : head.target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      *error = {400, "invalid character in the request target"};
      return ParseResult::kError;
    }
  }
  bool unsupported = false;
  if (!ParseVersion(line.substr(sp2 + 1), &head.version_minor, &unsupported)) {
    *error = unsupported ? ParseError{505, "HTTP version not supported"}
                         : ParseError{400, "malformed HTTP version"};
    return ParseResult::kError;
  }

  CommonHeaders h;
  int host_count = 0;
  std::string_view host_header;
  head.expect_continue = false;
  head.request_id = {};
  head.forwarded_for = {};
  ScanCommon(fields, h, [&](const HeaderField& f) {
    std::string_view n = f.name;
    if (n.size() == 4 && EqualsIgnoreCase(n, "host")) {
      ++host_count;
      host_header = f.value;
    } else if (n.size() == 6 && EqualsIgnoreCase(n, "expect")) {
      if (EqualsIgnoreCase(f.value, "100-continue")) head.expect_continue = true;
    } else if (n.size() == 12 && EqualsIgnoreCase(n, "x-request-id")) {
      if (SaneRequestId(f.value)) head.request_id = f.value;
    } else if (n.size() == 15 && EqualsIgnoreCase(n, "x-forwarded-for")) {
      head.forwarded_for = f.value;
    }
  });

  if (h.length_conflict) {
    *error = {400, "invalid or conflicting Content-Length"};
    return ParseResult::kError;
  }
  if (h.has_te) {
    if (h.has_length) {
      *error = {400, "both Content-Length and Transfer-Encoding"};
      return ParseResult::kError;
    }
    if (head.version_minor == 0) {
      *error = {400, "Transfer-Encoding in an HTTP/1.0 request"};
      return ParseResult::kError;
    }
    if (!h.te_chunked_final || h.te_chunked_twice) {
      *error = {400, "Transfer-Encoding must end with chunked"};
      return ParseResult::kError;
    }
  }
  if (host_count > 1) {
    *error = {400, "repeated Host header"};
    return ParseResult::kError;
  }
  if (host_count == 0 && head.version_minor >= 1) {
    *error = {400, "missing Host header"};
    return ParseResult::kError;
  }
  for (char c : host_header) {
    if (!kHostChar[static_cast<unsigned char>(c)]) {
      *error = {400, "invalid Host header"};
      return ParseResult::kError;
    }
  }

  // Request target forms (RFC 9112 §3.2).
  head.host = host_header;
  std::string_view t = head.target;
  if (head.method == "CONNECT") {
    *error = {501, "CONNECT is not supported"};
    return ParseResult::kError;
  }
  if (t.front() == '/') {
    head.path = t;
  } else if (t.size() > 7 && (EqualsIgnoreCase(t.substr(0, 7), "http://") ||
                              (t.size() > 8 && EqualsIgnoreCase(t.substr(0, 8), "https://")))) {
    std::string_view after = t.substr(t[4] == ':' ? 7 : 8);
    size_t slash = after.find_first_of("/?");
    std::string_view authority = after.substr(0, slash);
    bool bad_authority = authority.empty() || authority.find('@') != std::string_view::npos;
    for (char c : authority) {
      if (!kHostChar[static_cast<unsigned char>(c)]) bad_authority = true;
    }
    if (bad_authority) {
      *error = {400, "invalid authority in the request target"};
      return ParseResult::kError;
    }
    head.host = authority;
    head.path = slash == std::string_view::npos ? std::string_view("/") : after.substr(slash);
    if (head.path.front() == '?') {
      // "http://h?q": the origin form would need a path made up here.
      *error = {400, "request target without a path"};
      return ParseResult::kError;
    }
  } else if (t == "*" && head.method == "OPTIONS") {
    head.path = t;
  } else {
    *error = {400, "invalid request target"};
    return ParseResult::kError;
  }

  head.connection = h.connection;
  // HTTP/1.0 has no Upgrade (RFC 9110 §7.8).
  head.websocket = h.connection.upgrade && h.upgrade_websocket && head.method == "GET" &&
                   head.version_minor >= 1;
  if (h.has_te) {
    head.body = BodyKind::kChunked;
    head.content_length = 0;
  } else if (h.has_length && h.length > 0) {
    head.body = BodyKind::kLength;
    head.content_length = h.length;
  } else {
    head.body = BodyKind::kNone;
    head.content_length = 0;
  }
  *head_len = skip + end;
  return ParseResult::kComplete;
}

ParseResult ParseResponseHead(std::string_view data, const ParseLimits& limits,
                              std::string_view request_method, ResponseHead& head, size_t* head_len,
                              ParseError* error) {
  size_t end = FindHeadEnd(data, limits.max_head_bytes);
  if (end == std::string_view::npos) {
    if (data.size() >= limits.max_head_bytes) {
      *error = {502, "response header section too large"};
      return ParseResult::kError;
    }
    return ParseResult::kIncomplete;
  }
  std::vector<HeaderField>& fields = *head.headers;
  fields.clear();
  std::string_view line;
  if (!SplitHead(data.substr(0, end), limits, &line, fields, error, 502)) {
    error->status = 502;
    return ParseResult::kError;
  }
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  bool unsupported = false;
  if (line.size() < 12 || line[8] != ' ' ||
      !ParseVersion(line.substr(0, 8), &head.version_minor, &unsupported) ||
      (line.size() > 12 && line[12] != ' ')) {
    *error = {502, "malformed status line from the target"};
    return ParseResult::kError;
  }
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') {
      *error = {502, "malformed status code from the target"};
      return ParseResult::kError;
    }
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100) {
    *error = {502, "malformed status code from the target"};
    return ParseResult::kError;
  }
  head.status = status;
  head.reason = line.size() > 13 ? line.substr(13) : std::string_view();

  CommonHeaders h;
  ScanCommon(fields, h, [](const HeaderField&) {});
  if (h.length_conflict && !h.has_te) {
    *error = {502, "invalid or conflicting Content-Length from the target"};
    return ParseResult::kError;
  }
  head.connection = h.connection;
  head.content_length = 0;
  if (request_method == "HEAD" || status < 200 || status == 204 || status == 304) {
    head.body = BodyKind::kNone;
  } else if (h.has_te) {
    head.body =
        (h.te_chunked_final && !h.te_chunked_twice) ? BodyKind::kChunked : BodyKind::kUntilClose;
  } else if (h.has_length) {
    head.body = h.length > 0 ? BodyKind::kLength : BodyKind::kNone;
    head.content_length = h.length;
  } else {
    head.body = BodyKind::kUntilClose;
  }
  *head_len = end;
  return ParseResult::kComplete;
}

size_t ChunkedDecoder::StepControl(std::string_view in, size_t i) {
  auto fail = [&](std::string_view why) {
    state_ = State::kError;
    error_ = why;
    return i;
  };
  const char c = in[i];
  switch (state_) {
    case State::kSize: {
      int digit = -1;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      }
      if (digit >= 0) {
        if (++size_digits_ > 15) return fail("chunk size too large");
        remaining_ = remaining_ * 16 + static_cast<uint64_t>(digit);
      } else if (size_digits_ > 0 && c == ';') {
        state_ = State::kExtension;
        line_bytes_ = 0;
      } else if (size_digits_ > 0 && c == '\r') {
        state_ = State::kSizeLf;
      } else {
        return fail("invalid chunk size");
      }
      return i + 1;
    }
    case State::kExtension:
      if (c == '\r') {
        state_ = State::kSizeLf;
      } else if (!IsValueChar(static_cast<unsigned char>(c)) || ++line_bytes_ > 4096) {
        return fail("invalid chunk extension");
      }
      return i + 1;
    case State::kSizeLf:
      if (c != '\n') return fail("invalid chunk size line ending");
      size_digits_ = 0;
      line_bytes_ = 0;
      state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
      return i + 1;
    case State::kDataCr:
      if (c != '\r') return fail("chunk data longer than its size");
      state_ = State::kDataLf;
      return i + 1;
    case State::kDataLf:
      if (c != '\n') return fail("chunk data not followed by CRLF");
      state_ = State::kSize;
      return i + 1;
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kFinalLf;
        return i + 1;
      }
      state_ = State::kTrailerName;
      [[fallthrough]];
    case State::kTrailerName:
      if (++trailer_bytes_ > 16 * 1024) return fail("trailer section too large");
      if (c == ':' && line_bytes_ > 0) {
        state_ = State::kTrailerLine;
        line_bytes_ = 0;
      } else if (!kTokenChar[static_cast<unsigned char>(c)]) {
        return fail("invalid trailer field");
      } else {
        ++line_bytes_;
      }
      return i + 1;
    case State::kTrailerLine:
      if (++trailer_bytes_ > 16 * 1024) return fail("trailer section too large");
      if (c == '\r') {
        state_ = State::kTrailerLf;
      } else if (!IsValueChar(static_cast<unsigned char>(c))) {
        return fail("invalid trailer field");
      }
      return i + 1;
    case State::kTrailerLf:
      if (c != '\n') return fail("invalid trailer line ending");
      state_ = State::kTrailerStart;
      line_bytes_ = 0;
      return i + 1;
    case State::kFinalLf:
      if (c != '\n') return fail("invalid end of chunked body");
      state_ = State::kDone;
      return i + 1;
    case State::kData:
    case State::kDone:
    case State::kError:
      break;
  }
  return i;
}

}  // namespace cutover
