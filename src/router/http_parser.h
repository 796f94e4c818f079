// Zero-copy HTTP/1.1 message-head parsing and chunked-body framing for the
// router's per-request path. The parser never allocates: it fills views into
// the caller's buffer, which must outlive the parsed head. Strict by design: a
// request that could be read two ways (request smuggling) is rejected.
// Stateless functions and small state machines; any thread, no sharing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace cutover {

struct HeaderField {
  std::string_view name;
  std::string_view value;  // without leading/trailing whitespace
};

enum class BodyKind : uint8_t {
  kNone,        // no body
  kLength,      // Content-Length bytes
  kChunked,     // chunked transfer coding
  kUntilClose,  // (responses only) everything until the peer closes
};

struct ParseLimits {
  uint32_t max_head_bytes = 16 * 1024;
  uint32_t max_headers = 100;
};

enum class ParseResult : uint8_t { kComplete, kIncomplete, kError };

// Why a head was rejected: the status to answer and a short reason.
struct ParseError {
  int status = 400;  // 400, 431, 501 or 505 for requests; 502 for responses
  std::string_view reason;
};

// Connection-level facts derived from the headers.
struct ConnectionInfo {
  bool close = false;       // "Connection: close"
  bool keep_alive = false;  // "Connection: keep-alive"
  bool upgrade = false;     // "Connection: upgrade"
  bool has_tokens = false;  // other tokens: headers named in Connection are hop-by-hop
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // as sent (origin-form, or absolute-form)
  std::string_view path;    // origin-form path+query (absolute-form rewritten)
  std::string_view host;    // from absolute-form or the Host header; may carry ":port"
  int version_minor = 1;    // HTTP/1.0 or HTTP/1.1
  std::vector<HeaderField>* headers = nullptr;  // borrowed storage, filled in order
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  ConnectionInfo connection;
  bool websocket = false;          // Upgrade: websocket with Connection: upgrade
  bool expect_continue = false;    // Expect: 100-continue
  std::string_view request_id;     // X-Request-Id when sane, else empty
  std::string_view forwarded_for;  // the last X-Forwarded-For line, may be empty

  bool KeepAlive() const {
    return version_minor >= 1 ? !connection.close : connection.keep_alive && !connection.close;
  }
};

struct ResponseHead {
  int status = 0;
  int version_minor = 1;
  std::string_view reason;
  std::vector<HeaderField>* headers = nullptr;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  ConnectionInfo connection;
};

// Parses the request head at the start of `data`. On kComplete sets
// `*head_len` to the bytes of the head (through the blank line). On kError
// fills `*error`. kIncomplete means more bytes are needed; it becomes kError
// (431) once `data` holds max_head_bytes without a complete head.
// `head.headers` must point to caller storage; it is cleared first.
ParseResult ParseRequestHead(std::string_view data, const ParseLimits& limits, RequestHead& head,
                             size_t* head_len, ParseError* error);

// Parses a response head. `request_method` decides HEAD semantics;
// kError means the upstream sent something unusable (answer 502).
ParseResult ParseResponseHead(std::string_view data, const ParseLimits& limits,
                              std::string_view request_method, ResponseHead& head, size_t* head_len,
                              ParseError* error);

// True for the headers a proxy must not forward (RFC 9110 §7.6.1), except
// Transfer-Encoding, which the router keeps because it relays chunked bodies
// as they are.
bool IsHopByHopHeader(std::string_view name);

// True when `name` appears as a token of any Connection header in `headers`.
bool NamedInConnection(const std::vector<HeaderField>& headers, std::string_view name);

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// True when `data` holds a line feed not preceded by a carriage return: such
// a head is rejected at once rather than waited for.
bool HasBareLineFeed(std::string_view data);

// Incremental parser of a chunked body. Feed it the bytes as they arrive; it
// reports how many belong to the body (the rest is the next message) and
// where the chunk data lies, so a body can be relayed verbatim or decoded.
class ChunkedDecoder {
 public:
  enum class State : uint8_t {
    kSize,
    kExtension,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailerName,
    kTrailerLine,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError
  };

  // Consumes from `in`. Returns the bytes consumed (< in.size() only when the
  // body ended or an error occurred). When `on_data` is given it is called
  // with each run of chunk data in order.
  template <typename OnData>
  size_t Feed(std::string_view in, OnData&& on_data);
  size_t Feed(std::string_view in) {
    return Feed(in, [](std::string_view) {});
  }

  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kError; }
  std::string_view error() const { return error_; }
  void Reset() { *this = ChunkedDecoder(); }

 private:
  size_t StepControl(std::string_view in, size_t i);

  State state_ = State::kSize;
  uint64_t remaining_ = 0;  // data bytes left in the current chunk
  uint32_t size_digits_ = 0;
  uint32_t line_bytes_ = 0;  // bytes of the current size/extension/trailer line
  uint32_t trailer_bytes_ = 0;
  std::string_view error_;
};

template <typename OnData>
size_t ChunkedDecoder::Feed(std::string_view in, OnData&& on_data) {
  size_t i = 0;
  while (i < in.size() && state_ != State::kDone && state_ != State::kError) {
    if (state_ == State::kData) {
      size_t n = in.size() - i;
      if (n > remaining_) n = static_cast<size_t>(remaining_);
      on_data(in.substr(i, n));
      i += n;
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDataCr;
      continue;
    }
    i = StepControl(in, i);
  }
  return i;
}

}  // namespace cutover
