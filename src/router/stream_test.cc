// Stream over a worker's Ring (io_uring) and over epoll, on real loopback
// connections: every test runs both ways.
#include "router/stream.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/raw_http.h"

namespace cutover {
namespace {

using test::DeadlineIn;
using test::RawConn;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
template <typename T>
using awaitable = asio::awaitable<T, WorkerExecutor>;
constexpr auto kTuple = asio::as_tuple(asio::deferred);
using WorkerAcceptor = asio::basic_socket_acceptor<tcp, WorkerExecutor>;

// A client connection to the test's listener.
RawConn Connect(uint16_t port) {
  auto c = RawConn::Connect("127.0.0.1", port);
  EXPECT_TRUE(c) << c.error().message;
  return std::move(*c);
}

class StreamTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      std::string why;
      ring_ = Ring::Create(ctx_, &why);
      ASSERT_TRUE(ring_) << why;
      ASSERT_TRUE(ring_->Enable(&why)) << why;
    }
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    acceptor_.listen(1024);
    port_ = acceptor_.local_endpoint().port();
  }
  void TearDown() override {
    acceptor_.close();
    ctx_.run_for(std::chrono::milliseconds(50));  // what the closes posted
    ring_.reset();
  }

  // The server side of a connection `client` opened.
  std::unique_ptr<Stream> Accept() {
    auto s = std::make_unique<Stream>(ctx_.get_executor(), ring_.get());
    error_code ec;
    WorkerSocket socket = acceptor_.accept(ec);
    EXPECT_FALSE(ec) << ec.message();
    s->Adopt(std::move(socket), ec);
    EXPECT_FALSE(ec) << ec.message();
    return s;
  }

  // Runs the io_context until `done` holds (at most 5 s).
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (ctx_.stopped()) ctx_.restart();  // it ran out of work before
      ctx_.run_for(std::chrono::milliseconds(5));
    }
    return done();
  }

  void RunFor(std::chrono::milliseconds d) {
    if (ctx_.stopped()) ctx_.restart();
    ctx_.run_for(d);
  }

  template <typename F>
  void Spawn(F f) {
    asio::co_spawn(ctx_.get_executor(), std::move(f), asio::detached);
  }

  asio::io_context ctx_;
  std::unique_ptr<Ring> ring_;
  WorkerAcceptor acceptor_{ctx_.get_executor()};
  uint16_t port_ = 0;
};

struct ReadResult {
  error_code ec;
  std::string data;
  bool done = false;
};

awaitable<void> ReadInto(Stream& s, ReadResult& out) {
  char buf[64];
  auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kTuple);
  out.ec = ec;
  out.data.assign(buf, n);
  out.done = true;
}

TEST_P(StreamTest, ReadsWritesInPiecesAndSeesTheEnd) {
  RawConn c = Connect(port_);
  auto s = Accept();
  ASSERT_TRUE(c.Send("hello"));
  ReadResult r;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*s, r); });
  ASSERT_TRUE(RunUntil([&] { return r.done; }));
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.data, "hello");

  // Two buffers go out as one write; asio::async_write takes the stream.
  bool written = false;
  Spawn([&]() -> awaitable<void> {
    std::array<asio::const_buffer, 2> bufs = {asio::buffer("head|", 5), asio::buffer("body", 4)};
    auto [ec, n] = co_await asio::async_write(*s, bufs, kTuple);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(n, 9u);
    written = true;
  });
  ASSERT_TRUE(RunUntil([&] { return written; }));
  error_code ec;
  s->shutdown(asio::socket_base::shutdown_send, ec);
  EXPECT_FALSE(ec) << ec.message();
  auto got = c.ReadUntilClose(DeadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, "head|body");

  c.Close();
  ReadResult end;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*s, end); });
  ASSERT_TRUE(RunUntil([&] { return end.done; }));
  EXPECT_EQ(end.ec, asio::error::eof);
  EXPECT_EQ(end.data, "");
}

// A read in flight when its connection is closed ends with
// operation_aborted, and the descriptor is closed only once it has: a
// connection accepted meanwhile, which would otherwise get the same number,
// reads its own bytes. The read is queued, not yet handed to the kernel,
// when the stream is closed.
TEST_P(StreamTest, CloseEndsTheReadInFlightWhileANewConnectionIsServed) {
  RawConn c1 = Connect(port_);
  auto s1 = Accept();
  ReadResult first;
  char buf1[64];
  s1->async_read_some(asio::buffer(buf1), [&](error_code ec, size_t n) {
    first = {ec, std::string(buf1, n), true};
  });
  // The second client's socket first, so that the server's side of it
  // takes the lowest descriptor free after the close: the first's.
  RawConn c2 = Connect(port_);
  ASSERT_TRUE(c2.Send("second"));
  error_code ec;
  s1->close(ec);
  EXPECT_FALSE(s1->is_open());
  auto s2 = Accept();
  ReadResult second;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*s2, second); });
  ASSERT_TRUE(RunUntil([&] { return first.done && second.done; }));
  EXPECT_EQ(first.ec, asio::error::operation_aborted);
  EXPECT_EQ(first.data, "");
  EXPECT_EQ(second.data, "second");
  EXPECT_TRUE(c1.ClosedByPeer(DeadlineIn(std::chrono::seconds(5))));
}

// A write larger than the sockets hold goes out in pieces while the peer
// reads; more pieces than one system call takes are sent in order.
TEST_P(StreamTest, LargeAndManyPieceWritesArriveWhole) {
  RawConn c = Connect(port_);
  auto s = Accept();
  std::string big(4 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  const std::array<std::string, 6> parts = {"one|", "two|", "three|", "four|", "five|", "six"};
  std::array<asio::const_buffer, 6> pieces;
  for (size_t i = 0; i < parts.size(); ++i) pieces[i] = asio::buffer(parts[i]);
  std::string got;
  std::thread reader([&] {
    auto all = c.ReadUntilClose(DeadlineIn(std::chrono::seconds(10)));
    if (all) got = std::move(*all);
  });
  bool written = false;
  Spawn([&]() -> awaitable<void> {
    auto [e1, n1] = co_await asio::async_write(*s, asio::buffer(big), kTuple);
    EXPECT_FALSE(e1) << e1.message();
    EXPECT_EQ(n1, big.size());
    auto [e2, n2] = co_await asio::async_write(*s, pieces, kTuple);
    EXPECT_FALSE(e2) << e2.message();
    EXPECT_EQ(n2, 27u);
    error_code ec;
    s->shutdown(asio::socket_base::shutdown_send, ec);  // the end of what the reader reads
    written = true;
  });
  const bool finished = RunUntil([&] { return written; });
  reader.join();
  ASSERT_TRUE(finished);
  ASSERT_EQ(got.size(), big.size() + 27);
  EXPECT_TRUE(got.compare(0, big.size(), big) == 0);
  EXPECT_EQ(got.substr(big.size()), "one|two|three|four|five|six");
}

TEST_P(StreamTest, CancelEndsAReadAndTheConnectionGoesOn) {
  RawConn c = Connect(port_);
  auto s = Accept();
  ReadResult cancelled;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*s, cancelled); });
  RunFor(std::chrono::milliseconds(20));
  ASSERT_FALSE(cancelled.done);
  error_code ec;
  s->cancel(ec);
  ASSERT_TRUE(RunUntil([&] { return cancelled.done; }));
  EXPECT_EQ(cancelled.ec, asio::error::operation_aborted);

  ASSERT_TRUE(c.Send("after"));
  ReadResult next;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*s, next); });
  ASSERT_TRUE(RunUntil([&] { return next.done; }));
  EXPECT_EQ(next.data, "after");
}

TEST_P(StreamTest, ConnectReportsRefusalAndThenConnects) {
  // A port nothing listens on: bound, never listening.
  tcp::socket closed(ctx_);
  closed.open(tcp::v4());
  closed.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const tcp::endpoint nobody = closed.local_endpoint();

  Stream s(ctx_.get_executor(), ring_.get());
  std::optional<error_code> refused, connected;
  Spawn([&]() -> awaitable<void> {
    auto [e1] = co_await s.async_connect(nobody, kTuple);
    refused = e1;
    error_code ignored;
    s.close(ignored);  // as the router does before connecting again
    auto [e2] = co_await s.async_connect(acceptor_.local_endpoint(), kTuple);
    connected = e2;
    if (!e2) co_await asio::async_write(s, asio::buffer("ping", 4), kTuple);
  });
  ASSERT_TRUE(RunUntil([&] { return connected.has_value(); }));
  EXPECT_EQ(*refused, asio::error::connection_refused);
  ASSERT_FALSE(*connected) << connected->message();
  auto server = Accept();
  ReadResult r;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*server, r); });
  ASSERT_TRUE(RunUntil([&] { return r.done; }));
  EXPECT_EQ(r.data, "ping");
  error_code ec;
  auto peer = s.remote_endpoint(ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(peer.port(), port_);
}

// More reads become ready at once than the kernel finishes in one call
// (since Linux 6.13 a few dozen per call, the rest kept without another
// wake-up): every one of them completes, with no timer to rescue them.
TEST_P(StreamTest, ManyReadsReadyAtOnceAllComplete) {
  constexpr int kConns = 300;
  std::vector<RawConn> clients;
  std::vector<std::unique_ptr<Stream>> streams;
  std::vector<ReadResult> results(kConns);
  for (int i = 0; i < kConns; ++i) {
    clients.push_back(Connect(port_));
    streams.push_back(Accept());
    Spawn([&, i]() -> awaitable<void> { co_await ReadInto(*streams[i], results[i]); });
  }
  RunFor(std::chrono::milliseconds(20));
  for (int i = 0; i < kConns; ++i) ASSERT_TRUE(clients[i].Send("r" + std::to_string(i)));
  int done = 0;
  ASSERT_TRUE(RunUntil([&] {
    done = 0;
    for (const ReadResult& r : results) done += r.done ? 1 : 0;
    return done == kConns;
  })) << done
      << " of " << kConns;
  for (int i = 0; i < kConns; ++i) EXPECT_EQ(results[i].data, "r" + std::to_string(i));
}

// One side of a tunnel ends: the read on the other side is cancelled through
// the awaiting coroutine, and the pair finishes.
TEST_P(StreamTest, EitherOfTwoReadsCancelsTheOther) {
  using namespace asio::experimental::awaitable_operators;
  RawConn ca = Connect(port_);
  auto a = Accept();
  RawConn cb = Connect(port_);
  auto b = Accept();
  ReadResult ra, rb;
  bool finished = false;
  Spawn([&]() -> awaitable<void> {
    co_await (ReadInto(*a, ra) || ReadInto(*b, rb));
    finished = true;
  });
  RunFor(std::chrono::milliseconds(20));
  ASSERT_TRUE(cb.Send("b"));
  ASSERT_TRUE(RunUntil([&] { return finished; }));
  EXPECT_EQ(rb.data, "b");
  EXPECT_TRUE(ra.done);
  EXPECT_EQ(ra.ec, asio::error::operation_aborted);
  // The cancelled read is over: the stream reads again.
  ASSERT_TRUE(ca.Send("a"));
  ReadResult again;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(*a, again); });
  ASSERT_TRUE(RunUntil([&] { return again.done; }));
  EXPECT_EQ(again.data, "a");
}

TEST_P(StreamTest, OperationsOnAClosedStreamFailAtOnce) {
  Stream s(ctx_.get_executor(), ring_.get());
  ReadResult r;
  Spawn([&]() -> awaitable<void> { co_await ReadInto(s, r); });
  ASSERT_TRUE(RunUntil([&] { return r.done; }));
  EXPECT_EQ(r.ec, asio::error::bad_descriptor);
}

INSTANTIATE_TEST_SUITE_P(IoUringAndEpoll, StreamTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "IoUring" : "Epoll"; });

}  // namespace
}  // namespace cutover
