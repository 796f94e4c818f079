#include "router/http_parser.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace cutover {

// Readable names in failure messages.
void PrintTo(ParseResult r, std::ostream* os) {
  switch (r) {
    case ParseResult::kComplete:
      *os << "kComplete";
      return;
    case ParseResult::kIncomplete:
      *os << "kIncomplete";
      return;
    case ParseResult::kError:
      *os << "kError";
      return;
  }
}

void PrintTo(BodyKind k, std::ostream* os) {
  switch (k) {
    case BodyKind::kNone:
      *os << "kNone";
      return;
    case BodyKind::kLength:
      *os << "kLength";
      return;
    case BodyKind::kChunked:
      *os << "kChunked";
      return;
    case BodyKind::kUntilClose:
      *os << "kUntilClose";
      return;
  }
}

namespace {

using namespace std::string_literals;

// Parses one request head held in its own buffer, so the views the parser
// fills stay valid for the lifetime of the object.
class ParsedRequest {
 public:
  explicit ParsedRequest(std::string data, ParseLimits limits = {}) : data_(std::move(data)) {
    head_.headers = &fields_;
    result_ = ParseRequestHead(data_, limits, head_, &head_len_, &error_);
  }
  ParsedRequest(const ParsedRequest&) = delete;
  ParsedRequest& operator=(const ParsedRequest&) = delete;

  ParseResult result() const { return result_; }
  bool ok() const { return result_ == ParseResult::kComplete; }
  const RequestHead& head() const { return head_; }
  const std::vector<HeaderField>& fields() const { return fields_; }
  size_t head_len() const { return head_len_; }
  const ParseError& error() const { return error_; }

 private:
  std::string data_;
  std::vector<HeaderField> fields_;
  RequestHead head_;
  size_t head_len_ = 0;
  ParseError error_;
  ParseResult result_;
};

class ParsedResponse {
 public:
  ParsedResponse(std::string data, std::string_view method = "GET", ParseLimits limits = {})
      : data_(std::move(data)) {
    head_.headers = &fields_;
    result_ = ParseResponseHead(data_, limits, method, head_, &head_len_, &error_);
  }
  ParsedResponse(const ParsedResponse&) = delete;
  ParsedResponse& operator=(const ParsedResponse&) = delete;

  ParseResult result() const { return result_; }
  bool ok() const { return result_ == ParseResult::kComplete; }
  const ResponseHead& head() const { return head_; }
  const std::vector<HeaderField>& fields() const { return fields_; }
  size_t head_len() const { return head_len_; }
  const ParseError& error() const { return error_; }

 private:
  std::string data_;
  std::vector<HeaderField> fields_;
  ResponseHead head_;
  size_t head_len_ = 0;
  ParseError error_;
  ParseResult result_;
};

// A GET for example.com with `extra` header lines (each ending in CRLF).
std::string Get(std::string_view extra = "", std::string_view version = "HTTP/1.1") {
  return "GET /index.html " + std::string(version) + "\r\nHost: example.com\r\n" +
         std::string(extra) + "\r\n";
}

void ExpectRejected(const std::string& data, int status) {
  SCOPED_TRACE(testing::Message() << "request: " << testing::PrintToString(data));
  ParsedRequest p(data);
  ASSERT_EQ(p.result(), ParseResult::kError);
  EXPECT_EQ(p.error().status, status);
  EXPECT_FALSE(p.error().reason.empty());
}

// ---------------------------------------------------------------------------
// ParseRequestHead: accepted requests

TEST(ParseRequestHeadTest, SimpleGet) {
  const std::string req = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
  ParsedRequest p(req);
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head_len(), req.size());
  EXPECT_EQ(p.head().method, "GET");
  EXPECT_EQ(p.head().target, "/index.html?q=1");
  EXPECT_EQ(p.head().path, "/index.html?q=1");
  EXPECT_EQ(p.head().host, "example.com");
  EXPECT_EQ(p.head().version_minor, 1);
  EXPECT_EQ(p.head().body, BodyKind::kNone);
  EXPECT_EQ(p.head().content_length, 0u);
  EXPECT_TRUE(p.head().KeepAlive());
  EXPECT_FALSE(p.head().websocket);
  EXPECT_FALSE(p.head().expect_continue);
  EXPECT_TRUE(p.head().request_id.empty());
  EXPECT_TRUE(p.head().forwarded_for.empty());
  ASSERT_EQ(p.fields().size(), 1u);
  EXPECT_EQ(p.fields()[0].name, "Host");
  EXPECT_EQ(p.fields()[0].value, "example.com");
}

TEST(ParseRequestHeadTest, HeadLengthExcludesTheBody) {
  const std::string head = "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
  ParsedRequest p(head + "hello" + "GET / HTTP/1.1\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head_len(), head.size());
  EXPECT_EQ(p.head().body, BodyKind::kLength);
  EXPECT_EQ(p.head().content_length, 5u);
}

TEST(ParseRequestHeadTest, HeadersInOrderWithTrimmedValues) {
  ParsedRequest p(
      "GET / HTTP/1.1\r\n"
      "Host:   example.com  \r\n"
      "Accept:\t*/*\t\r\n"
      "X-Empty:\r\n"
      "X-Spaces:    \r\n"
      "x-lower: inner  spaces kept\r\n"
      "Accept: text/html\r\n"
      "\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  const std::vector<HeaderField> want = {
      {"Host", "example.com"},           {"Accept", "*/*"},       {"X-Empty", ""}, {"X-Spaces", ""},
      {"x-lower", "inner  spaces kept"}, {"Accept", "text/html"},
  };
  ASSERT_EQ(p.fields().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(p.fields()[i].name, want[i].name) << i;
    EXPECT_EQ(p.fields()[i].value, want[i].value) << i;
  }
  EXPECT_EQ(p.head().host, "example.com");
}

TEST(ParseRequestHeadTest, HeaderStorageIsClearedBeforeParsing) {
  std::vector<HeaderField> fields = {{"Stale", "value"}};
  RequestHead head;
  head.headers = &fields;
  size_t len = 0;
  ParseError error;
  const std::string req = Get();
  ASSERT_EQ(ParseRequestHead(req, {}, head, &len, &error), ParseResult::kComplete);
  ASSERT_EQ(fields.size(), 1u);
  EXPECT_EQ(fields[0].name, "Host");
}

TEST(ParseRequestHeadTest, ValuesAreViewsIntoTheCallerBuffer) {
  const std::string req = Get("X-A: b\r\n");
  std::vector<HeaderField> fields;
  RequestHead head;
  head.headers = &fields;
  size_t len = 0;
  ParseError error;
  ASSERT_EQ(ParseRequestHead(req, {}, head, &len, &error), ParseResult::kComplete);
  const char* begin = req.data();
  const char* end = req.data() + req.size();
  for (std::string_view v : {head.method, head.path, head.host, fields[1].name, fields[1].value}) {
    EXPECT_GE(v.data(), begin);
    EXPECT_LE(v.data() + v.size(), end);
  }
}

TEST(ParseRequestHeadTest, KeepAliveHttp11DefaultsToKeepAlive) {
  ParsedRequest p(Get());
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().KeepAlive());
  EXPECT_FALSE(p.head().connection.close);
}

TEST(ParseRequestHeadTest, KeepAliveHttp11ConnectionClose) {
  ParsedRequest p(Get("Connection: close\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p.head().KeepAlive());
  EXPECT_TRUE(p.head().connection.close);
}

TEST(ParseRequestHeadTest, KeepAliveHttp11CloseWinsOverKeepAlive) {
  ParsedRequest p(Get("Connection: keep-alive, Close\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p.head().KeepAlive());
}

TEST(ParseRequestHeadTest, KeepAliveHttp10DefaultsToClose) {
  ParsedRequest p(Get("", "HTTP/1.0"));
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().version_minor, 0);
  EXPECT_FALSE(p.head().KeepAlive());
}

TEST(ParseRequestHeadTest, KeepAliveHttp10WithKeepAlive) {
  ParsedRequest p(Get("Connection: Keep-Alive\r\n", "HTTP/1.0"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().connection.keep_alive);
  EXPECT_TRUE(p.head().KeepAlive());
}

TEST(ParseRequestHeadTest, KeepAliveHttp10WithKeepAliveAndClose) {
  ParsedRequest p(Get("Connection: keep-alive\r\nConnection: close\r\n", "HTTP/1.0"));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p.head().KeepAlive());
}

TEST(ParseRequestHeadTest, ConnectionOtherTokensAreNoted) {
  ParsedRequest p(Get("Connection: X-Hop, keep-alive\r\nX-Hop: 1\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().connection.has_tokens);
  EXPECT_TRUE(NamedInConnection(p.fields(), "x-hop"));
  EXPECT_FALSE(NamedInConnection(p.fields(), "Host"));
}

TEST(ParseRequestHeadTest, AbsoluteFormTakesHostFromTarget) {
  ParsedRequest p(
      "GET http://Shop.Example.com:8080/cart?id=7 HTTP/1.1\r\nHost: other.example\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().target, "http://Shop.Example.com:8080/cart?id=7");
  EXPECT_EQ(p.head().host, "Shop.Example.com:8080");
  EXPECT_EQ(p.head().path, "/cart?id=7");
}

TEST(ParseRequestHeadTest, AbsoluteFormWithoutPathBecomesSlash) {
  ParsedRequest p("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().host, "h");
  EXPECT_EQ(p.head().path, "/");
}

TEST(ParseRequestHeadTest, AbsoluteFormHttpsAndUpperCaseScheme) {
  ParsedRequest https("GET https://secure.example/a HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(https.ok()) << https.error().reason;
  EXPECT_EQ(https.head().host, "secure.example");
  EXPECT_EQ(https.head().path, "/a");

  ParsedRequest upper("GET HTTP://UP.example/b HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(upper.ok()) << upper.error().reason;
  EXPECT_EQ(upper.head().host, "UP.example");
  EXPECT_EQ(upper.head().path, "/b");
}

TEST(ParseRequestHeadTest, AbsoluteFormOnHttp10WithoutHostHeader) {
  ParsedRequest p("GET http://h.example/x HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().host, "h.example");
  EXPECT_EQ(p.head().path, "/x");
}

TEST(ParseRequestHeadTest, AbsoluteFormIpv6Authority) {
  ParsedRequest p("GET http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().host, "[::1]:8080");
  EXPECT_EQ(p.head().path, "/x");
}

TEST(ParseRequestHeadTest, AbsoluteFormRejections) {
  ExpectRejected("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  ExpectRejected("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  ExpectRejected("GET http://user@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  // An empty path followed by a query cannot be rewritten without copying.
  ExpectRejected("GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  ExpectRejected("GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  ExpectRejected("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, AbsoluteFormAuthorityWithInvalidHostCharsIsRejected) {
  // The authority replaces the Host header for routing and X-Forwarded-Host,
  // so it must meet the same character rules as a Host header.
  ExpectRejected("GET http://ex<ample.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
  ExpectRejected("GET http://a\"b/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
  ExpectRejected("GET http://a{b}/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, OptionsAsterisk) {
  ParsedRequest p("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().method, "OPTIONS");
  EXPECT_EQ(p.head().target, "*");
  EXPECT_EQ(p.head().path, "*");
  EXPECT_EQ(p.head().host, "example.com");
}

TEST(ParseRequestHeadTest, AsteriskOnlyForOptions) {
  ExpectRejected("GET * HTTP/1.1\r\nHost: example.com\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, EveryPrefixIsIncompleteAndTheWholeIsComplete) {
  const std::string head =
      "POST /api/orders?x=1 HTTP/1.1\r\n"
      "Host: shop.example.com:8080\r\n"
      "Content-Length: 11\r\n"
      "X-Request-Id: req-123\r\n"
      "X-Forwarded-For: 10.0.0.1\r\n"
      "Connection: keep-alive\r\n"
      "\r\n";
  for (size_t n = 0; n < head.size(); ++n) {
    ParsedRequest p(head.substr(0, n));
    EXPECT_EQ(p.result(), ParseResult::kIncomplete) << "prefix length " << n;
  }
  ParsedRequest whole(head);
  ASSERT_TRUE(whole.ok()) << whole.error().reason;
  EXPECT_EQ(whole.head_len(), head.size());
  EXPECT_EQ(whole.head().method, "POST");
  EXPECT_EQ(whole.head().path, "/api/orders?x=1");
  EXPECT_EQ(whole.head().host, "shop.example.com:8080");
  EXPECT_EQ(whole.head().body, BodyKind::kLength);
  EXPECT_EQ(whole.head().content_length, 11u);
  EXPECT_EQ(whole.head().request_id, "req-123");
  EXPECT_EQ(whole.head().forwarded_for, "10.0.0.1");
  EXPECT_EQ(whole.fields().size(), 5u);

  ParsedRequest with_body(head + "hello world");
  ASSERT_TRUE(with_body.ok());
  EXPECT_EQ(with_body.head_len(), head.size());
}

TEST(ParseRequestHeadTest, EveryPrefixWithLeadingEmptyLines) {
  const std::string req = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  for (size_t n = 0; n < req.size(); ++n) {
    ParsedRequest p(req.substr(0, n));
    EXPECT_EQ(p.result(), ParseResult::kIncomplete) << "prefix length " << n;
  }
  ParsedRequest whole(req);
  ASSERT_TRUE(whole.ok()) << whole.error().reason;
  EXPECT_EQ(whole.head_len(), req.size());
}

TEST(ParseRequestHeadTest, LeadingEmptyLinesTolerated) {
  const std::string req = "\r\n\r\n" + Get();
  ParsedRequest p(req);
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head_len(), req.size());
  EXPECT_EQ(p.head().method, "GET");
  EXPECT_EQ(p.head().path, "/index.html");
}

TEST(ParseRequestHeadTest, ManyLeadingEmptyLinesRejected) {
  std::string req;
  for (int i = 0; i < 20; ++i) req += "\r\n";
  ExpectRejected(req + Get(), 400);
}

TEST(ParseRequestHeadTest, RequestIdKeptWhenSane) {
  const std::string id = "Ab-09_.:+=/z";
  ParsedRequest p(Get("X-Request-Id: " + id + "\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().request_id, id);

  const std::string longest(128, 'a');
  ParsedRequest p128(Get("x-request-id: " + longest + "\r\n"));
  ASSERT_TRUE(p128.ok());
  EXPECT_EQ(p128.head().request_id, longest);
}

TEST(ParseRequestHeadTest, RequestIdDroppedWhenNotSane) {
  for (const std::string& bad : {std::string(129, 'a'), "has space"s, "semi;colon"s, "quote\"d"s,
                                 "<script>"s, "percent%20"s, "comma,list"s, "caf\xc3\xa9"s, ""s}) {
    SCOPED_TRACE(bad);
    ParsedRequest p(Get("X-Request-Id: " + bad + "\r\n"));
    ASSERT_TRUE(p.ok()) << p.error().reason;
    EXPECT_TRUE(p.head().request_id.empty());
    // The header itself is still a valid field.
    EXPECT_EQ(p.fields().size(), 2u);
  }
}

TEST(ParseRequestHeadTest, ForwardedForCaptured) {
  ParsedRequest p(Get("X-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().forwarded_for, "203.0.113.7, 10.0.0.1");
}

TEST(ParseRequestHeadTest, ExpectContinue) {
  ParsedRequest p(
      "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().expect_continue);

  ParsedRequest other(Get("Expect: something-else\r\n"));
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other.head().expect_continue);
}

TEST(ParseRequestHeadTest, WebSocketDetected) {
  ParsedRequest p(Get("Connection: Upgrade\r\nUpgrade: websocket\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().websocket);
  EXPECT_TRUE(p.head().connection.upgrade);
}

TEST(ParseRequestHeadTest, WebSocketTokensCaseInsensitiveAndInLists) {
  ParsedRequest p(Get("connection: keep-alive, UPGRADE\r\nupgrade: h2c, WebSocket\r\n"));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().websocket);
}

TEST(ParseRequestHeadTest, WebSocketNeedsAllThree) {
  ParsedRequest no_connection(Get("Upgrade: websocket\r\n"));
  ASSERT_TRUE(no_connection.ok());
  EXPECT_FALSE(no_connection.head().websocket);

  ParsedRequest no_upgrade(Get("Connection: upgrade\r\n"));
  ASSERT_TRUE(no_upgrade.ok());
  EXPECT_FALSE(no_upgrade.head().websocket);

  ParsedRequest other_protocol(Get("Connection: upgrade\r\nUpgrade: h2c\r\n"));
  ASSERT_TRUE(other_protocol.ok());
  EXPECT_FALSE(other_protocol.head().websocket);

  ParsedRequest post(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(post.ok());
  EXPECT_FALSE(post.head().websocket);
}

TEST(ParseRequestHeadTest, WebSocketNotOnHttp10) {
  // Upgrade is an HTTP/1.1 mechanism; a server must ignore it in an HTTP/1.0
  // request (RFC 9110 §7.8).
  ParsedRequest p(Get("Connection: upgrade\r\nUpgrade: websocket\r\n", "HTTP/1.0"));
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_FALSE(p.head().websocket);
}

TEST(ParseRequestHeadTest, ChunkedBody) {
  ParsedRequest p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().body, BodyKind::kChunked);
  EXPECT_EQ(p.head().content_length, 0u);
}

TEST(ParseRequestHeadTest, ZeroContentLengthMeansNoBody) {
  ParsedRequest p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kNone);
}

TEST(ParseRequestHeadTest, ReusedHeadIsReset) {
  std::vector<HeaderField> fields;
  RequestHead head;
  head.headers = &fields;
  size_t len = 0;
  ParseError error;
  const std::string first =
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nX-Request-Id: one\r\n"
      "X-Forwarded-For: 1.2.3.4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(ParseRequestHead(first, {}, head, &len, &error), ParseResult::kComplete);
  const std::string second = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
  ASSERT_EQ(ParseRequestHead(second, {}, head, &len, &error), ParseResult::kComplete);
  EXPECT_EQ(head.path, "/b");
  EXPECT_EQ(head.host, "b");
  EXPECT_EQ(head.body, BodyKind::kNone);
  EXPECT_EQ(head.content_length, 0u);
  EXPECT_TRUE(head.request_id.empty());
  EXPECT_TRUE(head.forwarded_for.empty());
  EXPECT_FALSE(head.expect_continue);
  EXPECT_TRUE(head.KeepAlive());
  EXPECT_EQ(fields.size(), 1u);
}

// ---------------------------------------------------------------------------
// ParseRequestHead: framing rejections (request smuggling)

TEST(ParseRequestHeadTest, ContentLengthWithTransferEncodingRejected) {
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, TwoDifferentContentLengthsRejected) {
  ExpectRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                 400);
}

TEST(ParseRequestHeadTest, SameContentLengthTwiceAccepted) {
  ParsedRequest p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().body, BodyKind::kLength);
  EXPECT_EQ(p.head().content_length, 5u);

  ParsedRequest list("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n");
  ASSERT_TRUE(list.ok()) << list.error().reason;
  EXPECT_EQ(list.head().content_length, 5u);
}

TEST(ParseRequestHeadTest, ContentLengthListWithDifferentValuesRejected) {
  ExpectRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, InvalidContentLengthRejected) {
  for (const char* value : {"abc", "5a", "-1", "+5", "0x10", "1.5", "5 6", "",
                            "99999999999999999999", "18446744073709551616"}) {
    SCOPED_TRACE(value);
    ExpectRejected(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::string(value) + "\r\n\r\n", 400);
  }
}

TEST(ParseRequestHeadTest, EmptyContentLengthAfterAValidOneRejected) {
  // An empty Content-Length is invalid on its own; a valid one before it must
  // not make it acceptable.
  ExpectRejected("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, LargeButValidContentLengthAccepted) {
  ParsedRequest p("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1099511627776\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().content_length, 1099511627776u);
}

TEST(ParseRequestHeadTest, TransferEncodingNotEndingWithChunkedRejected) {
  for (const char* te : {"gzip", "chunked, gzip", "identity", ""}) {
    SCOPED_TRACE(te);
    ExpectRejected(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + std::string(te) + "\r\n\r\n", 400);
  }
}

TEST(ParseRequestHeadTest, ChunkedTwiceRejected) {
  ExpectRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
  ExpectRejected(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      400);
}

TEST(ParseRequestHeadTest, ChunkedTwiceWithACodingBetweenRejected) {
  // chunked may be applied only once (RFC 9112 §6.1), wherever it appears.
  ExpectRejected("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip, chunked\r\n\r\n",
                 400);
}

TEST(ParseRequestHeadTest, CodingThenChunkedAccepted) {
  ParsedRequest p("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().body, BodyKind::kChunked);

  ParsedRequest split(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
      "transfer-encoding: CHUNKED\r\n\r\n");
  ASSERT_TRUE(split.ok()) << split.error().reason;
  EXPECT_EQ(split.head().body, BodyKind::kChunked);
}

TEST(ParseRequestHeadTest, TransferEncodingInHttp10Rejected) {
  ExpectRejected("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

// ---------------------------------------------------------------------------
// ParseRequestHead: malformed heads

TEST(ParseRequestHeadTest, ObsoleteLineFoldingRejected) {
  ExpectRejected(Get("X-A: one\r\n two\r\n"), 400);
  ExpectRejected(Get("X-A: one\r\n\ttwo\r\n"), 400);
}

TEST(ParseRequestHeadTest, WhitespaceBeforeColonRejected) {
  ExpectRejected("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
  ExpectRejected(Get("Content-Length\t: 5\r\n"), 400);
}

TEST(ParseRequestHeadTest, BadHeaderNamesRejected) {
  ExpectRejected(Get(": value\r\n"), 400);
  ExpectRejected(Get("no-colon\r\n"), 400);
  ExpectRejected(Get("X(A): b\r\n"), 400);
  ExpectRejected(Get("X\x01: b\r\n"), 400);
}

TEST(ParseRequestHeadTest, MissingHostOnHttp11Rejected) {
  ExpectRejected("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, MissingHostOnHttp10Allowed) {
  ParsedRequest p("GET /x HTTP/1.0\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_TRUE(p.head().host.empty());
  EXPECT_EQ(p.head().path, "/x");
}

TEST(ParseRequestHeadTest, TwoHostHeadersRejected) {
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, InvalidHostRejected) {
  for (const char* host : {"a b", "a/b", "a@b", "a\"b", "a<b>", "a\\b", "a{b", "caf\xc3\xa9"}) {
    SCOPED_TRACE(host);
    ExpectRejected("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", 400);
  }
}

TEST(ParseRequestHeadTest, HostWithPortAndIpv6Accepted) {
  for (const char* host : {"example.com:8080", "[::1]:8080", "10.0.0.1", "xn--bcher-kva.example"}) {
    SCOPED_TRACE(host);
    ParsedRequest p("GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n");
    ASSERT_TRUE(p.ok()) << p.error().reason;
    EXPECT_EQ(p.head().host, host);
  }
}

TEST(ParseRequestHeadTest, BareLfInHeadRejected) {
  ExpectRejected("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\nX-A\n: b\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, BareCrInHeadRejected) {
  ExpectRejected("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400);
  ExpectRejected("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", 400);
}

TEST(ParseRequestHeadTest, ControlCharactersInHeaderValueRejected) {
  for (char c : {'\x00', '\x01', '\x08', '\x0b', '\x1f', '\x7f'}) {
    SCOPED_TRACE(static_cast<int>(c));
    ExpectRejected(Get("X-A: a" + std::string(1, c) + "b\r\n"), 400);
  }
}

TEST(ParseRequestHeadTest, TabAndObsTextInHeaderValueAccepted) {
  ParsedRequest p(Get("X-A: a\tb\r\nX-B: caf\xc3\xa9\r\n"));
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.fields()[1].value, "a\tb");
  EXPECT_EQ(p.fields()[2].value, "caf\xc3\xa9");
}

TEST(ParseRequestHeadTest, InvalidMethodRejected) {
  for (const char* method : {"GE(T", "G\"ET", "GET,", "G\x01T", "G\xc3\xa9T"}) {
    SCOPED_TRACE(method);
    ExpectRejected(std::string(method) + " / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  }
}

TEST(ParseRequestHeadTest, ExtensionMethodAccepted) {
  ParsedRequest p("PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().method, "PURGE");
}

TEST(ParseRequestHeadTest, MalformedRequestLineRejected) {
  for (const char* line :
       {"GET  / HTTP/1.1", "GET /  HTTP/1.1", " GET / HTTP/1.1", "GET / HTTP/1.1 ", "GET /",
        "GET / ", "GET", "GET\t/\tHTTP/1.1", "/ HTTP/1.1", "GET / http/1.1", "GET / HTTP/1",
        "GET / HTTP/1.1.1", "GET / HTTP/11.1", "GET / HTTP/a.b", "GET /a b HTTP/1.1",
        "GET /\x7f HTTP/1.1"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(line)));
    ExpectRejected(std::string(line) + "\r\nHost: a\r\n\r\n", 400);
  }
}

TEST(ParseRequestHeadTest, UnsupportedVersionsAre505) {
  for (const char* version : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0", "HTTP/1.9"}) {
    SCOPED_TRACE(version);
    ExpectRejected(Get("", version), 505);
  }
}

TEST(ParseRequestHeadTest, ConnectIs501) {
  ExpectRejected("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501);
}

TEST(ParseRequestHeadTest, ConnectIs501WhateverTheTargetForm) {
  // The router does not tunnel; a CONNECT must never reach a target.
  ExpectRejected("CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n", 501);
  ExpectRejected("CONNECT http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 501);
}

TEST(ParseRequestHeadTest, OversizedHeadWithoutEndIs431) {
  ParseLimits limits;
  limits.max_head_bytes = 256;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
  req += std::string(limits.max_head_bytes, 'x');
  ParsedRequest p(req, limits);
  ASSERT_EQ(p.result(), ParseResult::kError);
  EXPECT_EQ(p.error().status, 431);

  // One byte short of the limit: still waiting for more.
  ParsedRequest short_of_limit(req.substr(0, limits.max_head_bytes - 1), limits);
  EXPECT_EQ(short_of_limit.result(), ParseResult::kIncomplete);
  ParsedRequest at_limit(req.substr(0, limits.max_head_bytes), limits);
  ASSERT_EQ(at_limit.result(), ParseResult::kError);
  EXPECT_EQ(at_limit.error().status, 431);
}

TEST(ParseRequestHeadTest, CompleteHeadLargerThanLimitIs431) {
  ParseLimits limits;
  limits.max_head_bytes = 128;
  const std::string req = Get("X-Big: " + std::string(200, 'x') + "\r\n");
  ParsedRequest p(req, limits);
  ASSERT_EQ(p.result(), ParseResult::kError);
  EXPECT_EQ(p.error().status, 431);
}

TEST(ParseRequestHeadTest, HeadExactlyAtLimitAccepted) {
  const std::string base = Get("X-Pad: \r\n");
  ParseLimits limits;
  limits.max_head_bytes = static_cast<uint32_t>(base.size() + 10);
  const std::string req = Get("X-Pad: " + std::string(10, 'p') + "\r\n");
  ASSERT_EQ(req.size(), limits.max_head_bytes);
  ParsedRequest p(req, limits);
  EXPECT_TRUE(p.ok()) << p.error().reason;
}

TEST(ParseRequestHeadTest, DefaultLimitIs16KiB) {
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (req.size() < 16 * 1024) req += "X-Fill: " + std::string(100, 'f') + "\r\n";
  ParsedRequest p(req);
  ASSERT_EQ(p.result(), ParseResult::kError);
  EXPECT_EQ(p.error().status, 431);
}

TEST(ParseRequestHeadTest, TooManyHeaderFieldsIs431) {
  ParseLimits limits;
  limits.max_headers = 4;
  std::string fields = "Host: a\r\n";
  for (int i = 1; i < 4; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  ParsedRequest at_limit("GET / HTTP/1.1\r\n" + fields + "\r\n", limits);
  ASSERT_TRUE(at_limit.ok()) << at_limit.error().reason;
  EXPECT_EQ(at_limit.fields().size(), 4u);

  ParsedRequest over("GET / HTTP/1.1\r\n" + fields + "X-5: v\r\n\r\n", limits);
  ASSERT_EQ(over.result(), ParseResult::kError);
  EXPECT_EQ(over.error().status, 431);
}

TEST(ParseRequestHeadTest, DefaultHeaderCountLimit) {
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
  ParsedRequest p(req + "\r\n");
  ASSERT_EQ(p.result(), ParseResult::kError);
  EXPECT_EQ(p.error().status, 431);
}

// ---------------------------------------------------------------------------
// Header helpers

TEST(HttpHeaderHelpersTest, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("Host", "Hos"));
  EXPECT_FALSE(EqualsIgnoreCase("Host", "Hosu"));
}

TEST(HttpHeaderHelpersTest, HopByHopHeaders) {
  for (const char* name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                           "Upgrade", "Proxy-Authenticate", "Proxy-Authorization"}) {
    EXPECT_TRUE(IsHopByHopHeader(name)) << name;
  }
  for (const char* name : {"Transfer-Encoding", "Host", "Content-Length", "Accept", "Tea"}) {
    EXPECT_FALSE(IsHopByHopHeader(name)) << name;
  }
}

// ---------------------------------------------------------------------------
// ParseResponseHead

TEST(ParseResponseHeadTest, StatusAndReason) {
  const std::string resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n";
  ParsedResponse p(resp + "abc");
  ASSERT_TRUE(p.ok()) << p.error().reason;
  EXPECT_EQ(p.head().status, 404);
  EXPECT_EQ(p.head().reason, "Not Found");
  EXPECT_EQ(p.head().version_minor, 1);
  EXPECT_EQ(p.head_len(), resp.size());
  EXPECT_EQ(p.head().body, BodyKind::kLength);
  EXPECT_EQ(p.head().content_length, 3u);
  ASSERT_EQ(p.fields().size(), 1u);
  EXPECT_EQ(p.fields()[0].name, "Content-Length");
}

TEST(ParseResponseHeadTest, EmptyReasonAndHttp10) {
  ParsedResponse no_reason("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(no_reason.ok()) << no_reason.error().reason;
  EXPECT_EQ(no_reason.head().status, 200);
  EXPECT_TRUE(no_reason.head().reason.empty());

  ParsedResponse empty_reason("HTTP/1.0 200 \r\n\r\n");
  ASSERT_TRUE(empty_reason.ok()) << empty_reason.error().reason;
  EXPECT_EQ(empty_reason.head().version_minor, 0);
  EXPECT_TRUE(empty_reason.head().reason.empty());
}

TEST(ParseResponseHeadTest, EveryPrefixIsIncomplete) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n";
  for (size_t n = 0; n < resp.size(); ++n) {
    ParsedResponse p(resp.substr(0, n));
    EXPECT_EQ(p.result(), ParseResult::kIncomplete) << "prefix length " << n;
  }
  ParsedResponse whole(resp);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole.head_len(), resp.size());
}

TEST(ParseResponseHeadTest, HeadRequestHasNoBody) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "HEAD");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kNone);

  ParsedResponse chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD");
  ASSERT_TRUE(chunked.ok());
  EXPECT_EQ(chunked.head().body, BodyKind::kNone);
}

TEST(ParseResponseHeadTest, InformationalNoContentAndNotModifiedHaveNoBody) {
  for (const char* line :
       {"HTTP/1.1 100 Continue", "HTTP/1.1 101 Switching Protocols", "HTTP/1.1 103 Early Hints",
        "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified"}) {
    SCOPED_TRACE(line);
    ParsedResponse p(std::string(line) + "\r\nContent-Length: 10\r\n\r\n");
    ASSERT_TRUE(p.ok()) << p.error().reason;
    EXPECT_EQ(p.head().body, BodyKind::kNone);
  }
}

TEST(ParseResponseHeadTest, ChunkedBody) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kChunked);

  ParsedResponse gzip_chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  ASSERT_TRUE(gzip_chunked.ok());
  EXPECT_EQ(gzip_chunked.head().body, BodyKind::kChunked);
}

TEST(ParseResponseHeadTest, TransferEncodingWinsOverContentLength) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kChunked);
}

TEST(ParseResponseHeadTest, TransferEncodingNotEndingWithChunkedReadsUntilClose) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kUntilClose);
}

TEST(ParseResponseHeadTest, LengthBody) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Length: 42\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kLength);
  EXPECT_EQ(p.head().content_length, 42u);

  ParsedResponse zero("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero.head().body, BodyKind::kNone);
}

TEST(ParseResponseHeadTest, NoFramingReadsUntilClose) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.head().body, BodyKind::kUntilClose);
}

TEST(ParseResponseHeadTest, ConnectionClose) {
  ParsedResponse p("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p.head().connection.close);
}

TEST(ParseResponseHeadTest, ConflictingContentLengthIs502) {
  for (const char* headers :
       {"Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5, 6\r\n",
        "Content-Length: abc\r\n", "Content-Length: -1\r\n"}) {
    SCOPED_TRACE(headers);
    ParsedResponse p("HTTP/1.1 200 OK\r\n" + std::string(headers) + "\r\n");
    ASSERT_EQ(p.result(), ParseResult::kError);
    EXPECT_EQ(p.error().status, 502);
    EXPECT_FALSE(p.error().reason.empty());
  }
}

TEST(ParseResponseHeadTest, GarbageIs502) {
  for (const char* line :
       {"garbage", "HTTP/1.1", "HTTP/1.1 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 20 OK",
        "HTTP/1.1 abc OK", "HTTP/1.1 200OK", "HTTP/1.1  200 OK", "HTTP/2.0 200 OK",
        "HTTP/1.1 099 Low", "ICY 200 OK", "http/1.1 200 OK"}) {
    SCOPED_TRACE(line);
    ParsedResponse p(std::string(line) + "\r\nContent-Length: 0\r\n\r\n");
    ASSERT_EQ(p.result(), ParseResult::kError);
    EXPECT_EQ(p.error().status, 502);
  }
}

TEST(ParseResponseHeadTest, MalformedHeaderFieldsAre502) {
  for (const char* headers :
       {"Bad Name: x\r\n", "X-A: a\x01\r\n", " folded\r\n", "X-A: a\nX-B: b\r\n"}) {
    SCOPED_TRACE(testing::PrintToString(std::string(headers)));
    ParsedResponse p("HTTP/1.1 200 OK\r\n" + std::string(headers) + "\r\n");
    ASSERT_EQ(p.result(), ParseResult::kError);
    EXPECT_EQ(p.error().status, 502);
  }
}

TEST(ParseResponseHeadTest, OversizedAndTooManyFieldsAre502) {
  ParseLimits limits;
  limits.max_head_bytes = 64;
  ParsedResponse big("HTTP/1.1 200 OK\r\nX-Big: " + std::string(100, 'x'), "GET", limits);
  ASSERT_EQ(big.result(), ParseResult::kError);
  EXPECT_EQ(big.error().status, 502);

  ParseLimits few;
  few.max_headers = 1;
  ParsedResponse many("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", "GET", few);
  ASSERT_EQ(many.result(), ParseResult::kError);
  EXPECT_EQ(many.error().status, 502);
}

// ---------------------------------------------------------------------------
// ChunkedDecoder

struct FeedResult {
  size_t consumed = 0;
  std::string data;
  bool done = false;
  bool failed = false;
};

// Feeds `input` in the pieces given by `cuts` (increasing split positions),
// stopping at the first piece not consumed whole.
FeedResult FeedInPieces(std::string_view input, const std::vector<size_t>& cuts) {
  ChunkedDecoder decoder;
  FeedResult r;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  for (size_t end : ends) {
    std::string_view piece = input.substr(start, end - start);
    size_t n = decoder.Feed(piece, [&](std::string_view d) { r.data.append(d); });
    r.consumed += n;
    start = end;
    if (n < piece.size()) break;
  }
  r.done = decoder.done();
  r.failed = decoder.failed();
  return r;
}

const std::string kChunkedBody =
    "5\r\nhello\r\n"
    "1;name=value;flag\r\n \r\n"
    "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "0\r\n"
    "Checksum: abc\r\n"
    "X-Trailer: 2\r\n"
    "\r\n";
const std::string kChunkedData = "hello abcdefghijklmnopqrstuvwxyz";
const std::string kNextMessage = "GET / HTTP/1.1\r\n";

TEST(ChunkedDecoderTest, WholeBodyAtOnce) {
  ChunkedDecoder decoder;
  std::string data;
  const std::string input = kChunkedBody + kNextMessage;
  size_t n = decoder.Feed(input, [&](std::string_view d) { data.append(d); });
  EXPECT_EQ(n, kChunkedBody.size());
  EXPECT_TRUE(decoder.done());
  EXPECT_FALSE(decoder.failed());
  EXPECT_EQ(data, kChunkedData);
  // A finished decoder takes nothing more.
  EXPECT_EQ(decoder.Feed(kNextMessage), 0u);
}

TEST(ChunkedDecoderTest, ByteByByte) {
  ChunkedDecoder decoder;
  std::string data;
  const std::string input = kChunkedBody + kNextMessage;
  size_t consumed = 0;
  for (size_t i = 0; i < input.size() && !decoder.done(); ++i) {
    size_t n = decoder.Feed(std::string_view(input).substr(i, 1),
                            [&](std::string_view d) { data.append(d); });
    ASSERT_EQ(n, 1u) << "byte " << i;
    consumed += n;
  }
  EXPECT_TRUE(decoder.done());
  EXPECT_FALSE(decoder.failed());
  EXPECT_EQ(consumed, kChunkedBody.size());
  EXPECT_EQ(data, kChunkedData);
  EXPECT_EQ(decoder.Feed(std::string_view(input).substr(consumed)), 0u);
}

TEST(ChunkedDecoderTest, SplitAtEveryPosition) {
  const std::string input = kChunkedBody + kNextMessage;
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    FeedResult r = FeedInPieces(input, {cut});
    EXPECT_TRUE(r.done) << "cut " << cut;
    EXPECT_FALSE(r.failed) << "cut " << cut;
    EXPECT_EQ(r.consumed, kChunkedBody.size()) << "cut " << cut;
    EXPECT_EQ(r.data, kChunkedData) << "cut " << cut;
  }
}

TEST(ChunkedDecoderTest, SplitAtEveryPairOfPositions) {
  const std::string& input = kChunkedBody;
  for (size_t a = 0; a <= input.size(); ++a) {
    for (size_t b = a; b <= input.size(); ++b) {
      FeedResult r = FeedInPieces(input, {a, b});
      ASSERT_TRUE(r.done) << a << "," << b;
      ASSERT_EQ(r.consumed, input.size()) << a << "," << b;
      ASSERT_EQ(r.data, kChunkedData) << a << "," << b;
    }
  }
}

TEST(ChunkedDecoderTest, IncompleteBodyIsNotDone) {
  for (size_t n = 0; n < kChunkedBody.size(); ++n) {
    ChunkedDecoder decoder;
    EXPECT_EQ(decoder.Feed(std::string_view(kChunkedBody).substr(0, n)), n);
    EXPECT_FALSE(decoder.done()) << n;
    EXPECT_FALSE(decoder.failed()) << n;
  }
}

TEST(ChunkedDecoderTest, EmptyBody) {
  ChunkedDecoder decoder;
  EXPECT_EQ(decoder.Feed("0\r\n\r\nnext"), 5u);
  EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoderTest, ExtensionsOnLastChunkAndUpperCaseHex) {
  ChunkedDecoder decoder;
  std::string data;
  const std::string body = "A;x=\"quoted; value\"\r\n0123456789\r\n0;last\r\n\r\n";
  EXPECT_EQ(decoder.Feed(body, [&](std::string_view d) { data.append(d); }), body.size());
  EXPECT_TRUE(decoder.done());
  EXPECT_EQ(data, "0123456789");
}

TEST(ChunkedDecoderTest, FifteenHexDigitsAccepted) {
  ChunkedDecoder decoder;
  const std::string body = "000000000000003\r\nabc\r\n0\r\n\r\n";
  EXPECT_EQ(decoder.Feed(body), body.size());
  EXPECT_TRUE(decoder.done());
}

TEST(ChunkedDecoderTest, ResetStartsANewBody) {
  ChunkedDecoder decoder;
  decoder.Feed("zz");
  ASSERT_TRUE(decoder.failed());
  decoder.Reset();
  EXPECT_FALSE(decoder.failed());
  EXPECT_TRUE(decoder.error().empty());
  EXPECT_EQ(decoder.Feed(kChunkedBody), kChunkedBody.size());
  EXPECT_TRUE(decoder.done());
}

void ExpectChunkedFails(const std::string& body) {
  SCOPED_TRACE(testing::Message() << "body: " << testing::PrintToString(body));
  // The same verdict whether the bytes come at once or one by one.
  ChunkedDecoder whole;
  size_t n = whole.Feed(body);
  EXPECT_TRUE(whole.failed());
  EXPECT_FALSE(whole.done());
  EXPECT_FALSE(whole.error().empty());
  EXPECT_LT(n, body.size());

  ChunkedDecoder bytes;
  for (size_t i = 0; i < body.size() && !bytes.failed(); ++i) {
    bytes.Feed(std::string_view(body).substr(i, 1));
  }
  EXPECT_TRUE(bytes.failed());
  EXPECT_EQ(bytes.error(), whole.error());
}

TEST(ChunkedDecoderTest, InvalidSizeCharacters) {
  ExpectChunkedFails("g\r\nabc\r\n0\r\n\r\n");
  ExpectChunkedFails("-5\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("0x5\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails(" 5\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("5 \r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails(";ext\r\nhello\r\n0\r\n\r\n");
}

TEST(ChunkedDecoderTest, MissingCrlfAfterData) {
  ExpectChunkedFails("5\r\nhelloX\r\n0\r\n\r\n");
  ExpectChunkedFails("5\r\nhello\rX\n0\r\n\r\n");
  ExpectChunkedFails("5\r\nhello0\r\n\r\n");
}

TEST(ChunkedDecoderTest, SizeWithMoreThanFifteenHexDigits) {
  ExpectChunkedFails("0000000000000001\r\na\r\n0\r\n\r\n");
  ExpectChunkedFails("ffffffffffffffffff\r\n");
}

TEST(ChunkedDecoderTest, BareLf) {
  ExpectChunkedFails("5\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("5\r\nhello\n0\r\n\r\n");
  ExpectChunkedFails("5;ext\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("0\n\r\n");
  ExpectChunkedFails("0\r\n\n");
  ExpectChunkedFails("0\r\nX-T: 1\n\r\n");
  ExpectChunkedFails("0\r\nX-T: 1\r\n\n");
}

TEST(ChunkedDecoderTest, BareCr) {
  ExpectChunkedFails("5\rhello\r\n0\r\n\r\n");
  ExpectChunkedFails("0\r\n\rX");
  ExpectChunkedFails("0\r\nX-T: 1\rX\r\n\r\n");
}

TEST(ChunkedDecoderTest, InvalidTrailersAndExtensions) {
  ExpectChunkedFails("0\r\n Folded: x\r\n\r\n");
  ExpectChunkedFails("0\r\nX-T: a\x01\r\n\r\n");
  ExpectChunkedFails("5;a\x01\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n");
  ExpectChunkedFails("0\r\nX-T: " + std::string(17 * 1024, 't') + "\r\n\r\n");
}

TEST(ChunkedDecoderTest, TrailerFieldsFollowHeaderSyntax) {
  // Trailers obey the same field syntax as the head, which rejects these.
  ExpectChunkedFails("0\r\nNoColon\r\n\r\n");
  ExpectChunkedFails("0\r\nX-T : 1\r\n\r\n");
  ExpectChunkedFails("0\r\nX T: 1\r\n\r\n");
}

}  // namespace
}  // namespace cutover
