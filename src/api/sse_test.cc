#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/client.h"
#include "api/http_routes.h"
#include "api/http_server.h"

namespace cutover {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using Unix = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);

// ---------------------------------------------------------------------------
// Fixtures

class TempDir {
 public:
  TempDir() {
    // Short, because a unix socket path must fit in 107 bytes.
    std::string tmpl = (fs::temp_directory_path() / "cutover-sse-XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Path(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Polls `condition` until it holds or `limit` passes.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto deadline = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

struct Shape {
  std::string event;
  std::string data;
};

// What the "shapes" stream sends: the data the wire format makes awkward.
const std::vector<Shape> kShapes = {
    {"step", "one line"},
    {"step", "two\nlines"},
    {"blank", "a\n\nb"},
    {"edges", "\nlead and trail\n"},
    {"spaces", " one leading space, two trailing  "},
    {"colons", "key: value: more"},
    {"empty", ""},
    {"json", R"({"service":"web","live":"blue"})"},
};

// What the stream handlers saw, read by the test thread.
struct Probe {
  std::atomic<int> endless_sent{0};
  std::atomic<bool> endless_send_failed{false};
  std::atomic<bool> hold_wait_aborted{false};
  std::atomic<bool> hold_send_after_wait{true};
  std::atomic<bool> hold_returned{false};
};

asio::awaitable<void> Sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(kAwait);
}

HttpRoutes TestRoutes(Probe& probe) {
  HttpRoutes routes;
  routes.Add(http::verb::get, "/v1/test/plain",
             [](const HttpRequest&, const PathParams&) -> asio::awaitable<HttpResponse> {
               co_return JsonResponse(200, R"({"ok":true})");
             });
  routes.AddStream(http::verb::get, "/v1/test/shapes",
                   [](const HttpRequest&, const PathParams&,
                      SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
                     for (const Shape& shape : kShapes) {
                       if (!co_await events.Send(shape.event, shape.data)) break;
                     }
                     co_return std::nullopt;
                   });
  routes.AddStream(
      http::verb::get, "/v1/test/events/{n}",
      [](const HttpRequest&, const PathParams& params,
         SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
        const int n = std::stoi(std::string(params.Get("n")));
        for (int i = 0; i < n; ++i) {
          if (!co_await events.Send("tick", std::to_string(i) + "\nof " + std::to_string(n))) {
            break;
          }
        }
        co_return std::nullopt;
      });
  routes.AddStream(http::verb::get, "/v1/services/{name}/events",
                   [](const HttpRequest&, const PathParams& params,
                      SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
                     if (params.Get("name") != "web") {
                       co_return ErrorResponse(
                           404, "not_found",
                           "no service named '" + std::string(params.Get("name")) + "'");
                     }
                     co_await events.Send("state", "web");
                     co_return std::nullopt;
                   });
  routes.AddStream(http::verb::get, "/v1/test/keepalive",
                   [](const HttpRequest&, const PathParams&,
                      SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
                     for (int i = 0; i < 20; ++i) {
                       if (!co_await events.KeepAlive()) co_return std::nullopt;
                       co_await Sleep(std::chrono::milliseconds(30));
                     }
                     co_await events.Send("done", "after keep-alives");
                     co_return std::nullopt;
                   });
  routes.AddStream(http::verb::get, "/v1/test/endless",
                   [&probe](const HttpRequest&, const PathParams&,
                            SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
                     for (int i = 0;; ++i) {
                       if (!co_await events.Send("tick", std::to_string(i))) break;
                       ++probe.endless_sent;
                       co_await Sleep(std::chrono::milliseconds(2));
                     }
                     probe.endless_send_failed = true;
                     co_return std::nullopt;
                   });
  // One event, then a wait far longer than any test.
  routes.AddStream(http::verb::get, "/v1/test/hold",
                   [&probe](const HttpRequest&, const PathParams&,
                            SseWriter& events) -> asio::awaitable<std::optional<HttpResponse>> {
                     if (co_await events.Send("hello", "then nothing")) {
                       asio::steady_timer timer(co_await asio::this_coro::executor,
                                                std::chrono::hours(1));
                       auto [ec] = co_await timer.async_wait(kAwait);
                       probe.hold_wait_aborted = ec == asio::error::operation_aborted;
                       probe.hold_send_after_wait = co_await events.Send("late", "never seen");
                     }
                     probe.hold_returned = true;
                     co_return std::nullopt;
                   });
  // Nothing at all, not even the response head.
  routes.AddStream(http::verb::get, "/v1/test/silent",
                   [](const HttpRequest&, const PathParams&,
                      SseWriter&) -> asio::awaitable<std::optional<HttpResponse>> {
                     co_await Sleep(std::chrono::hours(1));
                     co_return std::nullopt;
                   });
  return routes;
}

// A real server on a temporary unix socket, on its own thread and io_context
// as the daemon's control thread runs it.
class SseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Path("api.sock");
    HttpServerOptions options;
    options.write_timeout = Millis{5'000};
    auto server = HttpServer::ServeUnix(ctx_, path_, TestRoutes(probe_), options);
    ASSERT_TRUE(server.has_value()) << server.error().message;
    server_ = std::move(*server);
    thread_ = std::thread([this] { ctx_.run(); });
  }

  // Joining waits until the loop has no work left: every stream handler must
  // have ended once the server is gone.
  void TearDown() override {
    if (!thread_.joinable()) return;
    StopServer();
    thread_.join();
  }

  // Callable from any thread: the server is stopped on its own.
  void StopServer() {
    asio::post(ctx_, [this] { server_.reset(); });
  }

  struct Streamed {
    Result<ApiResponse> response;
    std::vector<SseEvent> events;
  };

  Streamed Stream(std::string_view path, Millis idle_timeout = Millis{10'000},
                  const std::function<bool(const SseEvent&)>& also = nullptr) {
    Streamed out{ApiResponse{}, {}};
    out.response = ApiClient(path_).Stream(
        "GET", path, {},
        [&](const SseEvent& event) {
          out.events.push_back(event);
          return also ? also(event) : true;
        },
        idle_timeout);
    return out;
  }

  TempDir dir_;
  std::string path_;
  Probe probe_;
  asio::io_context ctx_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// Server and client together

TEST_F(SseTest, EventsArriveInOrderWithExactNamesAndData) {
  Streamed got = Stream("/v1/test/shapes");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  EXPECT_EQ(got.response->body, "");
  ASSERT_EQ(got.events.size(), kShapes.size());
  for (size_t i = 0; i < kShapes.size(); ++i) {
    EXPECT_EQ(got.events[i].event, kShapes[i].event) << "event " << i;
    EXPECT_EQ(got.events[i].data, kShapes[i].data) << "event " << i;
  }
}

TEST_F(SseTest, ManyEventsArriveInOrder) {
  Streamed got = Stream("/v1/test/events/2000");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  ASSERT_EQ(got.events.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(got.events[i].event, "tick");
    ASSERT_EQ(got.events[i].data, std::to_string(i) + "\nof 2000");
  }
}

TEST_F(SseTest, ErrorBeforeStreamingComesBackAsAJsonResponse) {
  Streamed got = Stream("/v1/services/nope/events");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 404);
  EXPECT_EQ(got.response->body, R"({"code":"not_found","message":"no service named 'nope'"})"
                                "\n");
  EXPECT_TRUE(got.events.empty());
  const Error error = ErrorFromResponse(*got.response);
  EXPECT_EQ(error.code, ErrorCode::kNotFound);
  EXPECT_EQ(error.message, "no service named 'nope'");

  // The same route streams for a service that exists.
  got = Stream("/v1/services/web/events");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].event, "state");
  EXPECT_EQ(got.events[0].data, "web");
}

TEST_F(SseTest, AnswerThatIsNotAStreamIsReturnedWhole) {
  Streamed got = Stream("/v1/test/plain");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  EXPECT_EQ(got.response->body, R"({"ok":true})");
  EXPECT_TRUE(got.events.empty());

  got = Stream("/v1/no/such/route");
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 404);
  EXPECT_EQ(ErrorFromResponse(*got.response).code, ErrorCode::kNotFound);
}

TEST_F(SseTest, PlainRoutesStillAnswerBesideStreamRoutes) {
  ApiClient client(path_);
  auto plain = client.Call("GET", "/v1/test/plain");
  ASSERT_TRUE(plain.has_value()) << plain.error().message;
  EXPECT_EQ(plain->status, 200);
  EXPECT_EQ(plain->body, R"({"ok":true})");

  auto wrong_method = client.Call("POST", "/v1/test/shapes", R"({})");
  ASSERT_TRUE(wrong_method.has_value()) << wrong_method.error().message;
  EXPECT_EQ(wrong_method->status, 405);
  EXPECT_EQ(ErrorFromResponse(*wrong_method).message,
            "POST is not allowed on /v1/test/shapes (allowed: GET)");
}

TEST_F(SseTest, KeepAlivesAreSkippedAndHoldTheStreamOpen) {
  // Twenty keep-alives 30 ms apart take longer than the idle timeout in all.
  const auto start = Clock::now();
  Streamed got = Stream("/v1/test/keepalive", Millis{400});
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(400));
  EXPECT_EQ(got.response->status, 200);
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].event, "done");
  EXPECT_EQ(got.events[0].data, "after keep-alives");
}

TEST_F(SseTest, StoppingEarlyEndsTheServersStream) {
  Streamed got = Stream("/v1/test/endless", Millis{10'000},
                        [](const SseEvent& event) { return event.data != "2"; });
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[2].data, "2");
  // The handler learns at its next write that the client is gone, and ends.
  EXPECT_TRUE(WaitFor([&] { return probe_.endless_send_failed.load(); }))
      << "the handler went on after " << probe_.endless_sent << " events";
}

TEST_F(SseTest, IdleTimeoutWhenTheServerSendsNothing) {
  const auto start = Clock::now();
  Streamed got = Stream("/v1/test/silent", Millis{200});
  ASSERT_FALSE(got.response.has_value());
  EXPECT_EQ(got.response.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(got.response.error().message,
            "no answer from the cutover daemon at " + path_ + " within 200ms");
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_TRUE(got.events.empty());
}

TEST_F(SseTest, IdleTimeoutAfterSomeEvents) {
  Streamed got = Stream("/v1/test/hold", Millis{200});
  ASSERT_FALSE(got.response.has_value());
  EXPECT_EQ(got.response.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(got.response.error().message,
            "no event from the cutover daemon at " + path_ + " within 200ms");
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].event, "hello");
}

TEST_F(SseTest, ServerStopEndsAnOpenStream) {
  const auto start = Clock::now();
  Streamed got = Stream("/v1/test/hold", Millis{30'000}, [&](const SseEvent&) {
    StopServer();
    return true;
  });
  ASSERT_TRUE(got.response.has_value()) << got.response.error().message;
  EXPECT_EQ(got.response->status, 200);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_EQ(got.events[0].event, "hello");
  // The handler's wait was cancelled, not left to run out, and its stream is
  // closed for good.
  EXPECT_TRUE(WaitFor([&] { return probe_.hold_returned.load(); }));
  EXPECT_TRUE(probe_.hold_wait_aborted);
  EXPECT_FALSE(probe_.hold_send_after_wait);
}

TEST_F(SseTest, ResponseHeadIsAnOpenEndedEventStream) {
  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path_), ec);
  ASSERT_FALSE(ec) << ec.message();
  const std::string request = "GET /v1/services/web/events HTTP/1.1\r\nHost: test\r\n\r\n";
  asio::write(socket, asio::buffer(request), ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string answer;
  asio::read(socket, asio::dynamic_buffer(answer), ec);
  EXPECT_EQ(ec, asio::error::eof) << "the server closes the connection to end the stream";
  EXPECT_EQ(answer,
            "HTTP/1.1 200 OK\r\n"
            "Server: cutover\r\n"
            "Content-Type: text/event-stream\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n"
            "\r\n"
            "event: state\n"
            "data: web\n"
            "\n");
}

TEST_F(SseTest, MissingSocketIsUnavailable) {
  const std::string missing = dir_.Path("missing.sock");
  auto response = ApiClient(missing).Stream(
      "GET", "/v1/test/shapes", {}, [](const SseEvent&) { return true; }, Millis{1'000});
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_TRUE(
      response.error().message.starts_with("cannot reach the cutover daemon at " + missing + ": "))
      << response.error().message;
}

// ---------------------------------------------------------------------------
// Routes without a streaming connection

TEST(HttpRoutesStreamTest, DispatchWithoutAStreamGivesTheHandlersOwnAnswer) {
  Probe probe;
  const HttpRoutes routes = TestRoutes(probe);
  auto dispatch = [&](std::string target) {
    asio::io_context io;
    HttpRequest request{http::verb::get, target, 11};
    auto future = asio::co_spawn(io, routes.Dispatch(request), asio::use_future);
    io.run();
    return future.get();
  };
  HttpResponse missing = dispatch("/v1/services/nope/events");
  EXPECT_EQ(missing.result_int(), 404u);
  EXPECT_EQ(missing.body(), R"({"code":"not_found","message":"no service named 'nope'"})"
                            "\n");

  HttpResponse streamed = dispatch("/v1/services/web/events");
  EXPECT_EQ(streamed.result_int(), 500u);
  EXPECT_EQ(streamed.body(),
            R"({"code":"internal","message":"/v1/services/web/events streams server-sent events, )"
            R"(which this listener cannot carry"})"
            "\n");

  EXPECT_TRUE(routes.IsStream(HttpRequest{http::verb::get, "/v1/test/shapes?x=1", 11}));
  EXPECT_FALSE(routes.IsStream(HttpRequest{http::verb::post, "/v1/test/shapes", 11}));
  EXPECT_FALSE(routes.IsStream(HttpRequest{http::verb::get, "/v1/test/plain", 11}));
}

// ---------------------------------------------------------------------------
// Parsing

std::vector<SseEvent> ParseAll(std::string_view text, size_t piece = 0) {
  SseParser parser;
  std::vector<SseEvent> events;
  auto collect = [&](const SseEvent& event) {
    events.push_back(event);
    return true;
  };
  if (piece == 0) piece = text.size();
  for (size_t i = 0; i < text.size(); i += piece) {
    auto more = parser.Feed(text.substr(i, piece), collect);
    EXPECT_TRUE(more.has_value() && *more);
  }
  return events;
}

void ExpectEvents(const std::vector<SseEvent>& got, const std::vector<Shape>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].event, want[i].event) << "event " << i;
    EXPECT_EQ(got[i].data, want[i].data) << "event " << i;
  }
}

TEST(SseParserTest, AcceptsEveryLineEnding) {
  const std::vector<Shape> want = {{"a", "1\n2"}, {"b", "3"}, {"c", "4\n5"}};
  const std::string text =
      "event: a\ndata: 1\ndata: 2\n\n"
      "event: b\r\ndata: 3\r\n\r\n"
      "event: c\rdata: 4\rdata: 5\r\r";
  ExpectEvents(ParseAll(text), want);
  // Split anywhere, even between the "\r" and "\n" of one line ending.
  ExpectEvents(ParseAll(text, 1), want);
  ExpectEvents(ParseAll(text, 7), want);
}

TEST(SseParserTest, FollowsTheFieldRules) {
  ExpectEvents(
      ParseAll(": a comment\n"
               ":\n"
               "data:no space\n"
               "data:  two spaces\n"
               "data\n"
               "id: 7\n"
               "retry: 1000\n"
               "unknown: field\n"
               "\n"
               "event: only a name\n"
               "\n"
               "event: named\n"
               "data: x\n"
               "\n"
               "data: unnamed again\n"
               "\n"),
      {{"message", "no space\n two spaces\n"}, {"named", "x"}, {"message", "unnamed again"}});
}

TEST(SseParserTest, UnfinishedEventIsNotDispatched) {
  ExpectEvents(ParseAll("data: done\n\ndata: not done\n"), {{"message", "done"}});
}

TEST(SseParserTest, SkipsAByteOrderMarkAtTheStart) {
  ExpectEvents(ParseAll("\xEF\xBB\xBF"
                        "data: x\n\n"),
               {{"message", "x"}});
}

TEST(SseParserTest, StopsWhenTheCallerSaysSo) {
  SseParser parser;
  int calls = 0;
  auto more = parser.Feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](const SseEvent&) {
    ++calls;
    return calls < 2;
  });
  ASSERT_TRUE(more.has_value());
  EXPECT_FALSE(*more);
  EXPECT_EQ(calls, 2);
}

TEST(SseParserTest, RefusesAnEndlessEvent) {
  SseParser parser;
  const std::string line(1024 * 1024, 'x');
  Result<bool> more = true;
  for (int i = 0; i < 20 && more.has_value(); ++i) {
    more = parser.Feed("data: " + line + "\n", [](const SseEvent&) { return true; });
  }
  ASSERT_FALSE(more.has_value());
  EXPECT_EQ(more.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace cutover
