// The proxy path as a client sees it: strict parsing of what clients send,
// timeouts, failures of targets, streaming of large bodies, pipelining,
// forwarding headers, HTTP/1.0 clients, 100-continue and routing by path.
// Every test runs the real `cutover serve` in front of real cutover-testapp
// backends on 127.0.0.1.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "harness.h"
#include "support/net.h"
#include "support/raw_http.h"
#include "support/wait.h"

namespace cutover::test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t kRssLimitKiB = 64 * 1024;

// Health checks slow enough that, within a test, only the router itself
// (passive ejection) can mark a target down after the first round.
constexpr std::string_view kSlowHealth = "{path: /healthz, interval: 10s, timeout: 1s}";
constexpr std::string_view kDefaultHealth = "{path: /healthz, interval: 1s, timeout: 500ms}";

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A config with one service "web" on host localhost whose blue color has
// `blue`; `top` holds extra top-level keys (timeouts, limits).
std::string WebConfig(const std::vector<std::string>& blue, std::string_view top = "",
                      std::string_view health = kDefaultHealth) {
  std::string targets;
  for (const std::string& t : blue) targets += (targets.empty() ? "" : ", ") + t;
  std::string out = "listen: 127.0.0.1:{port}\n";
  out += top;
  out +=
      "services:\n"
      "  web:\n"
      "    hosts: [localhost]\n"
      "    driver:\n"
      "      type: static\n"
      "      blue: [" +
      targets + "]\n";
  out += "    health: " + std::string(health) + "\n";
  out += "    drain_timeout: 1s\n";
  return out;
}

// Backends and a daemon in one temporary folder. The folder is declared
// first so that it outlives the processes using it.
struct Stack {
  TempDir dir;
  std::vector<std::unique_ptr<Backend>> backends;
  std::unique_ptr<Daemon> daemon;

  Backend& backend(size_t i = 0) { return *backends.at(i); }
  uint16_t port() const { return daemon->port(); }
  std::string Output() { return daemon ? daemon->process().Output() : std::string(); }
};

// Starts one backend per name, then a daemon whose config `make_config`
// builds from the backends' addresses.
template <typename MakeConfig>
Result<std::unique_ptr<Stack>> StartStack(const std::vector<std::string>& names,
                                          MakeConfig make_config) {
  auto dir = TempDir::Create("cutover-proxy");
  if (!dir) return std::unexpected(dir.error());
  auto stack = std::make_unique<Stack>(Stack{std::move(*dir), {}, nullptr});
  std::vector<std::string> addresses;
  for (const std::string& name : names) {
    auto b = Backend::Start(stack->dir, name);
    if (!b) return std::unexpected(b.error());
    addresses.push_back((*b)->address());
    stack->backends.push_back(std::move(*b));
  }
  auto d = Daemon::Start(stack->dir, make_config(addresses));
  if (!d) return std::unexpected(d.error());
  stack->daemon = std::move(*d);
  return stack;
}

Result<std::unique_ptr<Stack>> StartWeb(std::string_view top = "",
                                        std::string_view health = kDefaultHealth) {
  return StartStack({"blue"},
                    [&](const std::vector<std::string>& a) { return WebConfig(a, top, health); });
}

// The health the control API reports for target `address` of `color`.
std::optional<bool> TargetHealthy(const Daemon& d, const std::string& color,
                                  const std::string& address) {
  auto r = d.Api("GET", "/v1/services/web");
  if (!r || r->status != 200) return std::nullopt;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  const auto& targets = j["colors"][color]["targets"];
  if (!targets.is_array()) return std::nullopt;
  for (const auto& t : targets) {
    if (t.value("address", "") == address && t.contains("healthy") && t["healthy"].is_boolean()) {
      return t["healthy"].get<bool>();
    }
  }
  return std::nullopt;
}

bool WaitTargetHealthy(const Daemon& d, const std::string& address, bool want, Deadline deadline) {
  return WaitUntil([&] { return TargetHealthy(d, "blue", address) == want; }, deadline,
                   milliseconds(20));
}

struct AppStats {
  uint64_t requests = 0;
  uint64_t bad_requests = 0;  // requests the app could not parse
};

// The backend's own counters, read directly from it (not through cutover).
Result<AppStats> StatsOf(const Backend& b) {
  auto r = HttpGet("127.0.0.1", b.port(), "/__stats");
  if (!r) return std::unexpected(r.error());
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("requests") || !j.contains("bad_requests")) {
    return MakeError(ErrorCode::kInternal, "bad /__stats body: " + r->body);
  }
  return AppStats{j["requests"].get<uint64_t>(), j["bad_requests"].get<uint64_t>()};
}

// "Name: value" lines of a /headers echo, after its request line.
HeaderList EchoedHeaders(const std::string& body) {
  HeaderList out;
  size_t pos = body.find('\n');
  while (pos != std::string::npos && pos + 1 < body.size()) {
    size_t end = body.find('\n', pos + 1);
    std::string line = body.substr(pos + 1, end == std::string::npos ? end : end - pos - 1);
    size_t colon = line.find(": ");
    if (colon != std::string::npos) out.emplace_back(line.substr(0, colon), line.substr(colon + 2));
    pos = end;
  }
  return out;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::vector<std::string> Values(const HeaderList& headers, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (Lower(k) == Lower(name)) out.push_back(v);
  }
  return out;
}

bool IsGeneratedId(const std::string& id) {
  return id.size() == 32 &&
         std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(c) != 0; });
}

// Samples the resident size of a process every 20 ms on its own thread and
// keeps the largest value seen.
class RssSampler {
 public:
  explicit RssSampler(const ChildProcess& process)
      : thread_([this, &process] {
          WaitUntil(
              [&] {
                if (auto kib = process.RssKiB()) {
                  max_kib_ = std::max(max_kib_.load(), *kib);
                  samples_.fetch_add(1);
                }
                return stop_.load();
              },
              DeadlineIn(std::chrono::minutes(10)), milliseconds(20));
        }) {}
  ~RssSampler() { Stop(); }

  // Stops sampling; returns the largest resident size seen, in KiB.
  uint64_t Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return max_kib_;
  }
  uint64_t samples() const { return samples_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> max_kib_{0};
  std::atomic<uint64_t> samples_{0};
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Strict parsing: a malformed request gets its status, the connection is
// closed, and nothing reaches a target.

struct MalformedCase {
  std::string name;
  std::string request;
  int status;
};

// 101 header fields, one more than the default limit.
std::string TooManyFields() {
  std::string out = "GET / HTTP/1.1\r\nHost: localhost\r\n";
  for (int i = 0; i < 100; ++i) out += "X-Field-" + std::to_string(i) + ": v\r\n";
  return out + "\r\n";
}

std::vector<MalformedCase> MalformedCases() {
  const std::string big(20 * 1024, 'a');
  return {
      {"ContentLengthWithTransferEncoding",
       "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       400},
      {"TwoDifferentContentLengths",
       "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
       "Content-Length: 6\r\n\r\nhello!",
       400},
      {"TransferEncodingGzip",
       "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\nhello", 400},
      {"TransferEncodingChunkedThenGzip",
       "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n",
       400},
      {"InvalidChunkSize",
       "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
       "zz\r\nhello\r\n0\r\n\r\n",
       400},
      {"ObsoleteLineFolding", "GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: one\r\n two\r\n\r\n",
       400},
      {"WhitespaceBeforeColon", "GET / HTTP/1.1\r\nHost: localhost\r\nX-Spaced : 1\r\n\r\n", 400},
      {"MissingHostOnHttp11", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
      {"OversizedHeaderSection", "GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + big + "\r\n\r\n",
       431},
      {"Http2Version", "GET / HTTP/2.0\r\nHost: localhost\r\n\r\n", 505},
      {"TransferEncodingOnHttp10",
       "POST /upload HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n0\r\n\r\n",
       400},
      {"TwoHostHeaders", "GET / HTTP/1.1\r\nHost: localhost\r\nHost: other.example\r\n\r\n", 400},
      {"TooManyHeaderFields", TooManyFields(), 431},
  };
}

class Malformed : public testing::TestWithParam<MalformedCase> {};

TEST_P(Malformed, IsRejectedClosedAndNeverReachesTheTarget) {
  const MalformedCase& c = GetParam();
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto seen_before = s.backend().RequestsSeen();
  ASSERT_TRUE(seen_before) << seen_before.error().message;

  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn) << conn.error().message;
  ASSERT_TRUE(conn->Send(c.request));
  auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(res) << res.error().message << "\n" << s.Output();
  EXPECT_EQ(res->status, c.status) << res->body;
  auto id = res->Header("X-Request-Id");
  ASSERT_TRUE(id.has_value());
  EXPECT_FALSE(id->empty());
  EXPECT_NE(res->body.find("request id " + *id), std::string::npos) << res->body;
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))))
      << "the connection stayed open after " << c.status;

  auto seen_after = s.backend().RequestsSeen();
  ASSERT_TRUE(seen_after) << seen_after.error().message;
  EXPECT_EQ(*seen_after, *seen_before) << "the malformed request reached the target";
}

INSTANTIATE_TEST_SUITE_P(Proxy, Malformed, testing::ValuesIn(MalformedCases()),
                         [](const testing::TestParamInfo<MalformedCase>& info) {
                           return info.param.name;
                         });

TEST(StrictParsing, InvalidChunkSizeAfterTheHeadNeverReachesTheTarget) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto before = StatsOf(s.backend());
  ASSERT_TRUE(before) << before.error().message;

  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // Give the head the chance to travel on before the body exists; whether
  // or not the router forwards it now, the bad chunk must not follow.
  WaitUntil(
      [&] {
        auto now = StatsOf(s.backend());
        return now && now->requests > before->requests;
      },
      DeadlineIn(seconds(2)), milliseconds(20));
  ASSERT_TRUE(conn->Send("zz\r\nhello\r\n0\r\n\r\n"));
  auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_NE(res->body.find("chunk"), std::string::npos) << res->body;
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));

  auto after = StatsOf(s.backend());
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(after->bad_requests, before->bad_requests) << "the malformed chunk reached the target";
  // The target at most saw a head whose body never completed.
  EXPECT_LE(after->requests, before->requests + 1);
}

// A head whose lines end in a bare LF is malformed for a strict parser: it
// is answered at once, not left waiting for the header timeout.
TEST(StrictParsing, BareLineFeedsAreRejectedPromptly) {
  auto stack = StartWeb();  // client_header: 10s
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto before = s.backend().RequestsSeen();
  ASSERT_TRUE(before);
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send("GET / HTTP/1.1\nHost: localhost\n\n"));
  auto res = conn->ReadResponse(DeadlineIn(seconds(3)));
  ASSERT_TRUE(res) << "no answer within 3 s: " << res.error().message;
  EXPECT_EQ(res->status, 400) << res->body;
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));
  EXPECT_EQ(s.backend().RequestsSeen().value_or(0), *before);
}

TEST(Routing, UnknownHostIs404NamingItAndTheConnectionStaysUsable) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);

  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "nowhere.example")));
  auto miss = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(miss) << miss.error().message;
  EXPECT_EQ(miss->status, 404);
  EXPECT_NE(miss->body.find("nowhere.example"), std::string::npos) << miss->body;
  EXPECT_TRUE(miss->KeepAlive());

  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto hit = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(hit) << hit.error().message;
  EXPECT_EQ(hit->status, 200);
  EXPECT_EQ(hit->body, "blue");
}

TEST(Routing, PathPrefixesOnOneHostGoToTheirOwnServices) {
  auto stack = StartStack({"site", "api"}, [](const std::vector<std::string>& a) {
    return "listen: 127.0.0.1:{port}\n"
           "services:\n"
           "  site:\n"
           "    hosts: [localhost]\n"
           "    path_prefix: /\n"
           "    driver: {type: static, blue: [" +
           a[0] +
           "]}\n"
           "  api:\n"
           "    hosts: [localhost]\n"
           "    path_prefix: /api\n"
           "    driver: {type: static, blue: [" +
           a[1] + "]}\n";
  });
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  struct Want {
    std::string path;
    std::string served_by;
  };
  for (const Want& w : std::vector<Want>{{"/", "site"},
                                         {"/api", "api"},
                                         {"/api/users?id=1", "api"},
                                         {"/api?x=1", "api"},
                                         {"/apix", "site"},
                                         {"/other", "site"}}) {
    auto res = HttpGet("127.0.0.1", s.port(), w.path);
    ASSERT_TRUE(res) << w.path << ": " << res.error().message;
    EXPECT_EQ(res->Header("X-Served-By").value_or(""), w.served_by) << w.path;
  }
}

TEST(Routing, AbsoluteFormTargetIsRoutedByItsAuthority) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto res = HttpGet("127.0.0.1", s.port(), "http://localhost/headers", "other.example");
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(res->body.starts_with("GET /headers HTTP/1.1\n")) << res->body;
  EXPECT_EQ(Values(EchoedHeaders(res->body), "Host"), std::vector<std::string>{"localhost"})
      << res->body;
}

// ---------------------------------------------------------------------------
// Client timeouts.

TEST(ClientTimeouts, SlowHeaderClientIsCutOffWhileOthersAreServed) {
  auto stack = StartWeb("timeouts: {client_header: 1s}\n");
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  const std::string head =
      "GET / HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + std::string(200, 'p') + "\r\n\r\n";

  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  const auto start = Clock::now();
  bool closed = false;
  bool other_served = false;
  size_t sent = 0;
  // One byte every 200 ms: the wait for the close paces the sending.
  while (sent < head.size() && SecondsSince(start) < 15) {
    if (!conn->Send(head.substr(sent, 1))) {
      closed = true;
      break;
    }
    ++sent;
    if (sent == 3) {
      auto other = HttpGet("127.0.0.1", s.port(), "/");
      other_served = other && other->status == 200 && other->body == "blue";
    }
    if (conn->ClosedByPeer(DeadlineIn(milliseconds(200)))) {
      closed = true;
      break;
    }
  }
  const double elapsed = SecondsSince(start);
  EXPECT_TRUE(closed) << "still open after " << elapsed << " s";
  EXPECT_LT(sent, head.size());
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 4.0);
  EXPECT_TRUE(other_served) << "a normal client was not served meanwhile";
  auto rest = conn->ReadUntilClose(DeadlineIn(seconds(2)));
  ASSERT_TRUE(rest) << rest.error().message;
  if (!rest->empty()) {
    EXPECT_TRUE(rest->starts_with("HTTP/1.1 408 ")) << *rest;
  }
}

TEST(ClientTimeouts, IdleKeepAliveConnectionIsClosed) {
  auto stack = StartWeb("timeouts: {client_idle: 1s}\n");
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;

  auto idle = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(idle);
  ASSERT_TRUE(idle->Send(BuildRequest("GET", "/", "localhost")));
  auto first = idle->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(first->KeepAlive());
  const auto start = Clock::now();
  EXPECT_TRUE(idle->ClosedByPeer(DeadlineIn(seconds(5))));
  const double elapsed = SecondsSince(start);
  EXPECT_GE(elapsed, 0.8);
  EXPECT_LT(elapsed, 3.0);

  // A connection that keeps asking is not idle, however long it lives.
  auto busy = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(busy);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(busy->Send(BuildRequest("GET", "/", "localhost")));
    auto res = busy->ReadResponse(DeadlineIn(seconds(5)));
    ASSERT_TRUE(res) << "request " << i << ": " << res.error().message;
    EXPECT_EQ(res->status, 200);
    EXPECT_FALSE(busy->ClosedByPeer(DeadlineIn(milliseconds(500))));
  }
}

// ---------------------------------------------------------------------------
// Failing targets.

TEST(Upstream, TargetDyingMidResponseIsEjectedAndTheOtherServes) {
  auto stack = StartStack({"blue1", "blue2"}, [](const std::vector<std::string>& a) {
    return WebConfig(a, "", kSlowHealth);
  });
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;

  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/die", "localhost")));
  const auto start = Clock::now();
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  const double elapsed = SecondsSince(start);
  if (res) {
    EXPECT_EQ(res->status, 502) << "a cut-short response was completed: " << res->body;
  } else {
    EXPECT_NE(res.error().code, ErrorCode::kTimeout) << res.error().message;
  }
  EXPECT_LT(elapsed, 5.0);
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));

  int dead = -1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (int i = 0; i < 2; ++i) {
          if (!s.backend(i).process().Running()) dead = i;
        }
        return dead >= 0;
      },
      DeadlineIn(seconds(5))));
  Backend& gone = s.backend(dead);
  Backend& alive = s.backend(1 - dead);
  const std::string alive_name = dead == 0 ? "blue2" : "blue1";
  // Health checks run every 10 s: only the router can have marked it down.
  EXPECT_TRUE(WaitTargetHealthy(*s.daemon, gone.address(), false, DeadlineIn(seconds(3))))
      << "the dead target is still reported healthy";
  EXPECT_EQ(TargetHealthy(*s.daemon, "blue", alive.address()), true);

  for (int i = 0; i < 6; ++i) {
    auto next = HttpGet("127.0.0.1", s.port(), "/");
    ASSERT_TRUE(next) << "request " << i << ": " << next.error().message;
    EXPECT_EQ(next->status, 200) << next->body;
    EXPECT_EQ(next->body, alive_name);
  }
}

TEST(Upstream, ConnectFailureIsRetriedOnAnotherTargetOfTheColor) {
  auto stack = StartStack({"blue", "blue"}, [](const std::vector<std::string>& a) {
    return WebConfig(a, "", kSlowHealth);
  });
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  ASSERT_TRUE(s.daemon->WaitHealth("web", "blue", true));
  // The first target stops listening while the router still believes it
  // healthy (the next health check is seconds away).
  const std::string dead = s.backend(0).address();
  s.backend(0).process().Kill();

  for (int i = 0; i < 10; ++i) {
    auto res = HttpGet("127.0.0.1", s.port(), "/");
    ASSERT_TRUE(res) << "request " << i << ": " << res.error().message;
    EXPECT_EQ(res->status, 200) << "request " << i << ": " << res->body;
    EXPECT_EQ(res->body, "blue");
  }
  EXPECT_TRUE(WaitTargetHealthy(*s.daemon, dead, false, DeadlineIn(seconds(3))))
      << "the target that refused connections is still reported healthy";
  EXPECT_EQ(TargetHealthy(*s.daemon, "blue", s.backend(1).address()), true);
}

// Pooled connections to a target that restarted are dead; requests that
// would have used them still succeed.
TEST(Upstream, RestartedTargetDoesNotFailRequestsOnPooledConnections) {
  auto dir = TempDir::Create("cutover-proxy");
  ASSERT_TRUE(dir);
  auto port = FreePort();
  ASSERT_TRUE(port);
  auto start_app = [&](const std::string& name) -> std::optional<ChildProcess> {
    std::string port_file = dir->File(name + ".port");
    ChildOptions o;
    o.argv = {TestappBinary(),       "--name",      name,      "--port",
              std::to_string(*port), "--port-file", port_file, "--quiet"};
    o.output_file = dir->File(name + ".log");
    auto p = ChildProcess::Spawn(o);
    if (!p || !WaitForPortFile(port_file, DeadlineIn(seconds(10)))) return std::nullopt;
    return std::move(*p);
  };
  auto first = start_app("before");
  ASSERT_TRUE(first);
  auto d = Daemon::Start(*dir, WebConfig({"127.0.0.1:" + std::to_string(*port)}, "", kSlowHealth));
  ASSERT_TRUE(d) << d.error().message;
  // Fill the pools of both workers.
  for (int i = 0; i < 8; ++i) {
    auto res = HttpGet("127.0.0.1", (*d)->port(), "/");
    ASSERT_TRUE(res && res->status == 200);
  }
  ASSERT_TRUE(first->Signal(SIGTERM));
  ASSERT_TRUE(first->Wait(DeadlineIn(seconds(10))));
  auto second = start_app("after");
  ASSERT_TRUE(second);

  for (int i = 0; i < 8; ++i) {
    auto get = HttpGet("127.0.0.1", (*d)->port(), "/");
    ASSERT_TRUE(get) << get.error().message;
    EXPECT_EQ(get->status, 200) << get->body;
    EXPECT_EQ(get->body, "after");
    auto post = HttpRequest("127.0.0.1", (*d)->port(), "POST", "/upload", "localhost", {}, "abc");
    ASSERT_TRUE(post) << post.error().message;
    EXPECT_EQ(post->status, 200) << post->body;
    EXPECT_EQ(post->body, "after 3");
  }
}

TEST(Upstream, NoHealthyTargetIs503NamingTheService) {
  auto port = FreePort();
  ASSERT_TRUE(port);
  auto dir = TempDir::Create("cutover-proxy");
  ASSERT_TRUE(dir);
  auto d = Daemon::Start(*dir, WebConfig({"127.0.0.1:" + std::to_string(*port)}));
  ASSERT_TRUE(d) << d.error().message;
  ASSERT_TRUE((*d)->WaitHealth("web", "blue", false));

  auto res = HttpGet("127.0.0.1", (*d)->port(), "/");
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 503);
  EXPECT_NE(res->body.find("'web'"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("healthy"), std::string::npos) << res->body;
  auto id = res->Header("X-Request-Id");
  ASSERT_TRUE(id);
  EXPECT_NE(res->body.find("request id " + *id), std::string::npos) << res->body;
}

TEST(Upstream, OnlyTargetGoneIs502Or503ThenQuickly503) {
  auto stack = StartWeb("", kSlowHealth);
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  ASSERT_TRUE(s.daemon->WaitHealth("web", "blue", true));
  s.backend().process().Kill();

  auto first = HttpGet("127.0.0.1", s.port(), "/");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->status == 502 || first->status == 503) << first->status;
  EXPECT_TRUE(first->body.find("cannot connect") != std::string::npos ||
              first->body.find("no healthy target") != std::string::npos)
      << first->body;

  auto second = HttpGet("127.0.0.1", s.port(), "/");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->status, 503) << second->body;
  EXPECT_NE(second->body.find("'web'"), std::string::npos) << second->body;
}

TEST(Upstream, SlowTargetIs504AfterTheResponseTimeout) {
  auto stack = StartWeb("timeouts: {upstream_response: 1s}\n");
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  const auto start = Clock::now();
  auto res =
      HttpGet("127.0.0.1", s.port(), "/slow?ms=3000", "localhost", {}, DeadlineIn(seconds(10)));
  const double elapsed = SecondsSince(start);
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 504) << res->body;
  EXPECT_NE(res->body.find(s.backend().address()), std::string::npos) << res->body;
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 2.5);
}

TEST(Upstream, ClientConnectionStaysUsableAfterA504) {
  auto stack = StartWeb("timeouts: {upstream_response: 1s}\n");
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/slow?ms=3000", "localhost")));
  auto timed_out = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(timed_out) << timed_out.error().message;
  EXPECT_EQ(timed_out->status, 504);
  if (!timed_out->KeepAlive()) {
    EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));
    return;
  }
  // The late answer of the slow request must not be taken for this one.
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/status?code=201", "localhost")));
  auto next = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->status, 201);
  EXPECT_EQ(next->body, "blue");
}

// ---------------------------------------------------------------------------
// Streaming: large bodies pass without the daemon holding them.

TEST(Streaming, GigabyteUploadWithContentLengthInBoundedMemory) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                         std::to_string(kGiB) + "\r\n\r\n"));
  const std::string piece(1 << 20, 'u');
  RssSampler rss(s.daemon->process());
  for (uint64_t sent = 0; sent < kGiB; sent += piece.size()) {
    auto st = conn->Send(piece, DeadlineIn(seconds(30)));
    ASSERT_TRUE(st) << "after " << sent << " bytes: " << st.error().message << "\n" << s.Output();
  }
  auto res = conn->ReadResponse(DeadlineIn(seconds(60)));
  const uint64_t max_kib = rss.Stop();
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue " + std::to_string(kGiB));
  EXPECT_GE(rss.samples(), 2u);
  EXPECT_LT(max_kib, kRssLimitKiB) << "daemon RSS peaked at " << max_kib << " KiB";
}

TEST(Streaming, GigabyteDownloadInBoundedMemory) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send(BuildRequest("GET", "/download?bytes=" + std::to_string(kGiB), "localhost")));
  RssSampler rss(s.daemon->process());
  auto res = conn->ReadResponse(DeadlineIn(seconds(120)), ReadOptions{.discard_body = true});
  const uint64_t max_kib = rss.Stop();
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body_bytes, kGiB);
  EXPECT_EQ(res->Header("Content-Length").value_or(""), std::to_string(kGiB));
  EXPECT_GE(rss.samples(), 2u);
  EXPECT_LT(max_kib, kRssLimitKiB) << "daemon RSS peaked at " << max_kib << " KiB";
}

TEST(Streaming, ChunkedUploadPassesIntact) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send("POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"));
  constexpr uint64_t kTotal = 10 * 1024 * 1024;
  // 64 KiB chunks and one odd-sized one, so chunk boundaries fall anywhere
  // in the router's reads.
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'c') + "\r\n";
  const std::string odd = "1f3\r\n" + std::string(0x1f3, 'd') + "\r\n";
  uint64_t sent = 0;
  for (int i = 1; sent + 0x10000 + 0x1f3 <= kTotal; ++i) {
    ASSERT_TRUE(conn->Send(chunk));
    sent += 0x10000;
    if (i % 16 == 0) {
      ASSERT_TRUE(conn->Send(odd));
      sent += 0x1f3;
    }
  }
  const uint64_t left = kTotal - sent;
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%llx\r\n", static_cast<unsigned long long>(left));
  ASSERT_TRUE(conn->Send(std::string(size_line) + std::string(left, 'e') + "\r\n0\r\n\r\n"));
  auto res = conn->ReadResponse(DeadlineIn(seconds(30)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue " + std::to_string(kTotal));

  // The connection is still in step: the next request is answered.
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto next = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->body, "blue");
}

TEST(Streaming, ChunkedDownloadPassesIntact) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  constexpr uint64_t kTotal = 10 * 1024 * 1024;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest(
      "GET", "/download?bytes=" + std::to_string(kTotal) + "&chunked=1", "localhost")));
  auto res = conn->ReadResponse(DeadlineIn(seconds(30)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->chunked);
  EXPECT_EQ(res->body.size(), kTotal);
  EXPECT_EQ(std::count(res->body.begin(), res->body.end(), 'x'), static_cast<int64_t>(kTotal));

  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto next = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->body, "blue");
}

// ---------------------------------------------------------------------------
// Message handling.

TEST(Messages, PipelinedRequestsAreAnsweredInOrder) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/status?code=201", "localhost") +
                         BuildRequest("GET", "/", "localhost") +
                         BuildRequest("GET", "/status?code=202", "localhost")));
  for (int want : {201, 200, 202}) {
    auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
    ASSERT_TRUE(res) << "waiting for " << want << ": " << res.error().message;
    EXPECT_EQ(res->status, want);
    EXPECT_EQ(res->body, "blue");
  }
}

// The next request arrives while the previous one is still at the target,
// in a write of its own: it must be answered as soon as its turn comes, not
// when the connection's idle timeout fires.
TEST(Messages, RequestSentWhileThePreviousIsInFlightIsAnsweredPromptly) {
  auto stack = StartWeb("timeouts: {client_idle: 30s}\n");
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/slow?ms=400", "localhost")));
  // Wait until the first request is at the target, then send the second.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = s.daemon->Api("GET", "/v1/services/web");
        return r && r->body.find("\"in_flight\":1") != std::string::npos;
      },
      DeadlineIn(seconds(5)), milliseconds(5)));
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/status?code=202", "localhost")));
  auto first = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->status, 200);
  auto second = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(second) << "the second request was not answered: " << second.error().message;
  EXPECT_EQ(second->status, 202);
}

TEST(Messages, PipelinedBodiesAndBodilessAnswersKeepTheConnectionInStep) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send(BuildRequest("POST", "/upload", "localhost", {}, "hello") +
                 BuildRequest("HEAD", "/", "localhost") +
                 BuildRequest("GET", "/status?code=204", "localhost") +
                 BuildRequest("GET", "/status?code=304", "localhost") +
                 "POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n2\r\n!!\r\n0\r\nX-Trailer: t\r\n\r\n" +
                 BuildRequest("GET", "/status?code=202", "localhost")));
  struct Want {
    int status;
    std::string body;
    bool head;
  };
  for (const Want& w : std::vector<Want>{{200, "blue 5", false},
                                         {200, "", true},
                                         {204, "", false},
                                         {304, "", false},
                                         {200, "blue 7", false},
                                         {202, "blue", false}}) {
    auto res = conn->ReadResponse(DeadlineIn(seconds(5)), ReadOptions{.head_request = w.head});
    ASSERT_TRUE(res) << "waiting for " << w.status << ": " << res.error().message;
    EXPECT_EQ(res->status, w.status);
    EXPECT_EQ(res->body, w.body);
  }
}

TEST(Messages, ManyPipelinedRequestsAreAnsweredInOrder) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  // About 50 KiB of requests: more than the router reads at once.
  constexpr int kCount = 1000;
  std::string burst;
  for (int i = 0; i < kCount; ++i) {
    burst += BuildRequest("GET", "/headers?i=" + std::to_string(i), "localhost");
  }
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(burst));
  for (int i = 0; i < kCount; ++i) {
    auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
    ASSERT_TRUE(res) << "response " << i << ": " << res.error().message;
    ASSERT_EQ(res->status, 200) << "response " << i;
    ASSERT_TRUE(res->body.starts_with("GET /headers?i=" + std::to_string(i) + " HTTP/1.1\n"))
        << "response " << i << ": " << res->body.substr(0, 40);
  }
}

TEST(Messages, MalformedRequestInAPipelineEndsItAfterTheEarlierAnswers) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto before = s.backend().RequestsSeen();
  ASSERT_TRUE(before);
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/status?code=201", "localhost") +
                         "GET / HTTP/1.1\r\nHost: localhost\r\nX-Bad : 1\r\n\r\n" +
                         BuildRequest("GET", "/status?code=202", "localhost")));
  auto first = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->status, 201);
  auto bad = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(bad) << bad.error().message;
  EXPECT_EQ(bad->status, 400);
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));
  EXPECT_EQ(s.backend().RequestsSeen().value_or(0), *before + 1);
}

TEST(Messages, ClientThatHalfClosesAfterItsRequestGetsTheResponse) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/slow?ms=200", "localhost")));
  conn->ShutdownWrite();
  auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue");
}

TEST(Messages, ForwardingHeadersAreAddedForTheTarget) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  const std::string host = "localhost:" + std::to_string(s.port());
  auto res = HttpGet("127.0.0.1", s.port(), "/headers", host,
                     {{"X-Forwarded-For", "203.0.113.7"},
                      {"X-Forwarded-Proto", "https"},
                      {"X-Forwarded-Host", "spoofed.example"}});
  ASSERT_TRUE(res) << res.error().message;
  ASSERT_EQ(res->status, 200);
  HeaderList seen = EchoedHeaders(res->body);
  EXPECT_EQ(Values(seen, "X-Forwarded-For"), std::vector<std::string>{"203.0.113.7, 127.0.0.1"})
      << res->body;
  EXPECT_EQ(Values(seen, "X-Forwarded-Proto"), std::vector<std::string>{"http"}) << res->body;
  EXPECT_EQ(Values(seen, "X-Forwarded-Host"), std::vector<std::string>{host}) << res->body;
  EXPECT_EQ(Values(seen, "Host"), std::vector<std::string>{host}) << res->body;

  // Without an incoming X-Forwarded-For the client is the only entry.
  auto plain = HttpGet("127.0.0.1", s.port(), "/headers");
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(Values(EchoedHeaders(plain->body), "X-Forwarded-For"),
            std::vector<std::string>{"127.0.0.1"})
      << plain->body;
}

// A head that grows the most when rewritten: fields without a space after
// their colon (each gains one), empty values, and earlier hops joined into
// one X-Forwarded-For, up to the limit of 100 fields.
TEST(Messages, CrowdedHeadIsRewrittenWhole) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  std::string head = "GET /headers HTTP/1.1\r\nHost:localhost\r\n";
  std::vector<std::string> hops;
  for (int i = 0; i < 49; ++i) {
    hops.push_back("198.51.100." + std::to_string(i));
    head += "X-Forwarded-For:" + hops.back() + "\r\n";
    head += "X-E" + std::to_string(i) + ":\r\n";
  }
  head += "\r\n";
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(head));
  auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(res) << res.error().message;
  ASSERT_EQ(res->status, 200) << res->body;
  HeaderList seen = EchoedHeaders(res->body);
  std::string joined;
  for (const std::string& hop : hops) joined += hop + ", ";
  EXPECT_EQ(Values(seen, "X-Forwarded-For"), std::vector<std::string>{joined + "127.0.0.1"});
  EXPECT_EQ(Values(seen, "X-E0"), std::vector<std::string>{""}) << res->body;
  EXPECT_EQ(Values(seen, "X-E48"), std::vector<std::string>{""}) << res->body;
  EXPECT_EQ(Values(seen, "Host"), std::vector<std::string>{"localhost"}) << res->body;
  EXPECT_TRUE(IsGeneratedId(res->Header("X-Request-Id").value_or(""))) << res->body;
}

TEST(Messages, RequestIdIsKeptReplacedOrGeneratedAndReturned) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  auto exchange = [&](const HeaderList& headers) -> std::optional<RawResponse> {
    if (!conn->Send(BuildRequest("GET", "/headers", "localhost", headers))) return std::nullopt;
    auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
    if (!res) return std::nullopt;
    return *res;
  };

  auto kept = exchange({{"X-Request-Id", "order-42_abc"}});
  ASSERT_TRUE(kept);
  EXPECT_EQ(Values(EchoedHeaders(kept->body), "X-Request-Id"),
            std::vector<std::string>{"order-42_abc"})
      << kept->body;
  EXPECT_EQ(kept->Headers("X-Request-Id"), std::vector<std::string>{"order-42_abc"});

  auto replaced = exchange({{"X-Request-Id", "<script>alert(1)</script>"}});
  ASSERT_TRUE(replaced);
  auto seen = Values(EchoedHeaders(replaced->body), "X-Request-Id");
  ASSERT_EQ(seen.size(), 1u) << replaced->body;
  EXPECT_TRUE(IsGeneratedId(seen[0])) << seen[0];
  EXPECT_EQ(replaced->Headers("X-Request-Id"), seen);

  auto generated = exchange({});
  ASSERT_TRUE(generated);
  auto fresh = Values(EchoedHeaders(generated->body), "X-Request-Id");
  ASSERT_EQ(fresh.size(), 1u) << generated->body;
  EXPECT_TRUE(IsGeneratedId(fresh[0])) << fresh[0];
  EXPECT_NE(fresh[0], seen[0]);
  EXPECT_EQ(generated->Headers("X-Request-Id"), fresh);
}

TEST(Messages, HopByHopHeadersAreNotForwarded) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/headers", "localhost",
                                      {{"Connection", "keep-alive, X-Secret, upgrade"},
                                       {"Keep-Alive", "timeout=5"},
                                       {"Proxy-Connection", "keep-alive"},
                                       {"TE", "trailers"},
                                       {"Upgrade", "h2c"},
                                       {"X-Secret", "1"},
                                       {"X-Kept", "yes"}})));
  auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(res) << res.error().message;
  ASSERT_EQ(res->status, 200);
  HeaderList seen = EchoedHeaders(res->body);
  EXPECT_EQ(Values(seen, "X-Kept"), std::vector<std::string>{"yes"}) << res->body;
  for (const char* name : {"Keep-Alive", "Proxy-Connection", "TE", "Upgrade", "X-Secret"}) {
    EXPECT_TRUE(Values(seen, name).empty()) << name << " reached the target:\n" << res->body;
  }
  for (const std::string& v : Values(seen, "Connection")) {
    EXPECT_EQ(Lower(v).find("x-secret"), std::string::npos) << res->body;
    EXPECT_EQ(Lower(v).find("upgrade"), std::string::npos) << res->body;
  }
  // The client asked for keep-alive on an HTTP/1.1 connection: it stays open.
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto next = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(next->body, "blue");
}

TEST(Messages, Http10KeepsAliveOnlyWhenAsked) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;

  auto plain = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(plain);
  ASSERT_TRUE(plain->Send("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"));
  auto once = plain->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(once) << once.error().message;
  EXPECT_EQ(once->status, 200);
  EXPECT_EQ(once->body, "blue");
  EXPECT_FALSE(once->KeepAlive());
  EXPECT_TRUE(plain->ClosedByPeer(DeadlineIn(seconds(3))));

  auto kept = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(kept);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(kept->Send("GET / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"));
    auto res = kept->ReadResponse(DeadlineIn(seconds(5)));
    ASSERT_TRUE(res) << "request " << i << ": " << res.error().message;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "blue");
    EXPECT_EQ(Lower(res->Header("Connection").value_or("")), "keep-alive");
  }
}

TEST(Messages, Http10ClientGetsAChunkedResponseDecodedAndClosed) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  constexpr size_t kBytes = 300000;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send("GET /download?bytes=" + std::to_string(kBytes) +
                 "&chunked=1 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"));
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res) << res.error().message;
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(res->chunked);
  EXPECT_FALSE(res->Has("Transfer-Encoding"));
  EXPECT_EQ(res->body, std::string(kBytes, 'x')) << "got " << res->body.size() << " bytes";
  EXPECT_FALSE(res->KeepAlive());
  EXPECT_TRUE(conn->ClosedByPeer(DeadlineIn(seconds(3))));
}

TEST(Messages, ExpectContinueGets100ThenTheFinalResponse) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  auto conn = RawConn::Connect("127.0.0.1", s.port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(
      conn->Send("POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n"
                 "Expect: 100-continue\r\n\r\n"));
  auto interim = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(interim) << interim.error().message;
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(conn->Send("hello world"));
  auto final_res = conn->ReadResponse(DeadlineIn(seconds(5)));
  ASSERT_TRUE(final_res) << final_res.error().message;
  EXPECT_EQ(final_res->status, 200);
  EXPECT_EQ(final_res->body, "blue 11");
}

// The kernel spreads connections over the workers' SO_REUSEPORT sockets by a
// hash of their addresses, so 20 connections often split 13 to 7; the router
// hands each new one to the worker holding the fewest.
TEST(Workers, ClientConnectionsAreSpreadEvenly) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  Stack& s = **stack;
  std::vector<RawConn> conns;
  for (int i = 0; i < 20; ++i) {
    auto conn = RawConn::Connect("127.0.0.1", s.port());
    ASSERT_TRUE(conn) << conn.error().message;
    // Answered: the connection is open on whichever worker serves it.
    ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
    auto res = conn->ReadResponse(DeadlineIn(seconds(5)));
    ASSERT_TRUE(res) << res.error().message;
    EXPECT_EQ(res->status, 200) << res->body;
    conns.push_back(std::move(*conn));
  }
  auto metrics = s.daemon->Api("GET", "/metrics");
  ASSERT_TRUE(metrics && metrics->status == 200);
  std::vector<MetricSample> open =
      MatchingMetrics(ParseMetrics(metrics->body), "cutover_worker_open_connections", {});
  ASSERT_EQ(open.size(), 2u) << metrics->body;
  EXPECT_EQ(open[0].value, 10) << metrics->body;
  EXPECT_EQ(open[1].value, 10) << metrics->body;
  // Each worker also reports how often it yielded its core: requests sent one
  // at a time keep neither on its core for most of a millisecond.
  std::vector<MetricSample> yields =
      MatchingMetrics(ParseMetrics(metrics->body), "cutover_worker_yields_total", {});
  ASSERT_EQ(yields.size(), 2u) << metrics->body;
  EXPECT_EQ(yields[0].value + yields[1].value, 0) << metrics->body;

  // Every one of them still works from the worker it was handed to.
  for (RawConn& conn : conns) {
    ASSERT_TRUE(conn.Send(BuildRequest("GET", "/", "localhost")));
    auto res = conn.ReadResponse(DeadlineIn(seconds(5)));
    ASSERT_TRUE(res) << res.error().message;
    EXPECT_EQ(res->status, 200) << res->body;
  }
}

TEST(Workers, ThreadsAreNamedAfterTheirWorker) {
  auto stack = StartWeb();
  ASSERT_TRUE(stack) << stack.error().message;
  const std::filesystem::path tasks =
      "/proc/" + std::to_string((*stack)->daemon->process().pid()) + "/task";
  std::vector<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    auto comm = ReadFile(task.path() / "comm");
    if (comm && comm->starts_with("cutover-w")) names.push_back(comm->substr(0, comm->find('\n')));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"cutover-w0", "cutover-w1"}));
}

// The log line that says the daemon serves names how its workers' connections
// read and write, and the process does what it says: with io_uring, one ring
// per worker, and requests complete operations on them (the kernel's count
// in /proc/PID/fdinfo); with epoll, no ring. A kernel that refuses rings
// gets epoll with a warning, and the io_uring half is skipped.
TEST(Workers, ConnectionsUseTheConfiguredIo) {
  for (std::string io : {"io_uring", "epoll"}) {
    SCOPED_TRACE(io);
    auto stack = StartStack({"blue"}, [&](const std::vector<std::string>& a) {
      return "io: " + io + "\n" + WebConfig(a);
    });
    ASSERT_TRUE(stack) << stack.error().message;
    Stack& s = **stack;
    EXPECT_EQ(GetText(s.port()), "blue");
    if (io == "io_uring" && s.Output().find("no io_uring (") != std::string::npos) {
      GTEST_SKIP() << "the kernel refuses io_uring: " << s.Output();
    }
    EXPECT_NE(s.Output().find("with 2 workers (" + io + ")"), std::string::npos) << s.Output();
    // Completions the kernel posted on each of the daemon's rings.
    const std::string proc = "/proc/" + std::to_string(s.daemon->process().pid());
    auto completions = [&] {
      std::vector<uint64_t> out;
      for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd")) {
        std::error_code ec;
        if (std::filesystem::read_symlink(fd.path(), ec).string() != "anon_inode:[io_uring]") {
          continue;
        }
        auto info = ReadFile(proc + "/fdinfo/" + fd.path().filename().string());
        const size_t at = info ? info->find("CqTail:") : std::string::npos;
        out.push_back(at == std::string::npos ? 0 : std::stoull(info->substr(at + 7)));
      }
      return out;
    };
    const std::vector<uint64_t> before = completions();
    ASSERT_EQ(before.size(), io == "io_uring" ? 2u : 0u);
    for (int i = 0; i < 20; ++i) ASSERT_EQ(GetText(s.port()), "blue");
    const std::vector<uint64_t> after = completions();
    ASSERT_EQ(after.size(), before.size());
    uint64_t done = 0;
    for (size_t i = 0; i < after.size(); ++i) done += after[i] - before[i];
    // A proxied request reads and writes on both sides.
    if (io == "io_uring") {
      EXPECT_GE(done, 20u * 4);
    }
  }
}

// A daemon whose own listen addresses overlap (the same port on 127.0.0.1
// and on every address) starts: only other programs' sockets stop it.
TEST(Workers, OverlappingListenAddressesOfOneDaemonStart) {
  auto stack = StartStack({"blue"}, [](const std::vector<std::string>& a) {
    std::string config = WebConfig(a);
    const std::string one = "listen: 127.0.0.1:{port}\n";
    return config.replace(config.find(one), one.size(),
                          "listen: [127.0.0.1:{port}, 0.0.0.0:{port}]\n");
  });
  ASSERT_TRUE(stack) << stack.error().message;
  EXPECT_EQ(GetText((*stack)->port()), "blue");
}

}  // namespace
}  // namespace cutover::test
