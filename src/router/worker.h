// Worker: one router thread. It owns an io_context, its listening sockets,
// the route table it currently serves, its upstream connection pools, I/O
// buffers, access log and the sessions it runs. Everything here is touched
// only on the worker's own thread, except the few methods marked "any thread".
#pragma once

#include <time.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "router/access_log.h"
#include "router/http_parser.h"
#include "router/pacer.h"
#include "router/ring.h"
#include "router/route_table.h"
#include "router/router.h"
#include "router/stream.h"

namespace cutover {

using SteadyTime = std::chrono::steady_clock::time_point;

// The steady clock as of the kernel's last tick (a few milliseconds old):
// cheaper to read than steady_clock::now(), and close enough for timeouts
// that a worker checks every 100 ms. Deadlines and idle times are all kept
// on it; latencies are measured with steady_clock.
inline SteadyTime CoarseNow() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

// Per-request scratch memory, lent by the worker to a session only while it
// has a request in progress, so that idle keep-alive connections cost no
// buffer space.
struct IoBuffers {
  explicit IoBuffers(size_t capacity);
  size_t capacity;
  std::unique_ptr<char[]> client;    // request bytes
  std::unique_ptr<char[]> upstream;  // response bytes
  std::string head_out;              // rewritten head being sent
  // Copies of request facts needed after the request head's bytes are reused.
  std::string method;
  std::string path;
  std::string request_id;
  std::vector<HeaderField> request_headers;
  std::vector<HeaderField> response_headers;
  // Per-request state kept here rather than in the session's coroutine
  // frames: Asio recycles frames of up to about 1 KiB per thread, and a
  // larger one would cost a malloc and a free on every request.
  ChunkedDecoder request_chunks;
  ResponseHead response;
  ParseError response_error;
  std::string detail;  // text of the router's own error answers
};

using WorkerAcceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, WorkerExecutor>;

// A keep-alive connection to a target.
struct UpstreamConn {
  Stream socket;
  Target* target = nullptr;
  SteadyTime idle_since{};
  bool reused = false;
};

// What a worker's tick needs from a session: its deadline and how to react.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Called on the worker thread once the deadline has passed.
  virtual void OnDeadline() = 0;
  // Called when the worker takes a new route table.
  virtual void OnTable(const RouteTable& table) = 0;
  // Called when the worker starts draining (shutdown).
  virtual void OnDrain() = 0;

  SteadyTime deadline = SteadyTime::max();
  SessionBase* prev = nullptr;
  SessionBase* next = nullptr;
};

struct WorkerCounters {
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> unmatched{0};
  std::atomic<uint64_t> header_timeouts{0};
  std::atomic<uint64_t> connections{0};
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> yields{0};  // see Pacer
};

// The local address to bind for listening on `hp` (a numeric port).
Result<boost::asio::ip::tcp::endpoint> ListenEndpoint(boost::asio::io_context& ctx,
                                                      const HostPort& hp);
// Opens `acceptor` for `ep` and binds it, with SO_REUSEADDR, and with
// SO_REUSEPORT when `reuse_port`; it does not listen yet.
boost::system::error_code BindTo(WorkerAcceptor& acceptor, const boost::asio::ip::tcp::endpoint& ep,
                                 bool reuse_port);

class Worker {
 public:
  Worker(size_t index, const RouterOptions& options, int access_log_fd);
  ~Worker();

  // Opens one SO_REUSEPORT listening socket per address (the preview's
  // without it). Before Start().
  [[nodiscard]] Status Listen(const std::vector<HostPort>& addresses, bool preview);
  // The addresses listened on, with the ports the kernel chose for port 0.
  std::vector<HostPort> BoundAddresses() const;

  // The router's workers, this one included. A client connection accepted
  // here is handed to the one holding the fewest connections: the kernel
  // spreads connections over SO_REUSEPORT sockets by a hash, and with a
  // few dozen keep-alive clients one worker often gets a third more than
  // another, which then sets the latency of all. Before Start().
  void SetPeers(std::vector<Worker*> peers) { peers_ = std::move(peers); }

  // Gives the worker an io_uring for its connections (see Ring). Before
  // Start(); an error says why the kernel refused, and the worker stays on
  // epoll.
  [[nodiscard]] Status OpenRing();
  // Leaves the worker on epoll. Before Start().
  void CloseRing() { ring_.reset(); }
  // Starts the thread and returns once it runs (its ring enabled, or given
  // up). Any thread, once.
  void Start(std::shared_ptr<const RouteTable> table);
  // Runs `fn` on the worker thread. Any thread.
  void Post(std::function<void()> fn);
  // Stops accepting and drains; closes what remains after `grace`; joins.
  // Any thread except the worker's own.
  void Shutdown(Millis grace);

  // ---- worker thread only ----
  boost::asio::io_context& context() { return ctx_; }
  // The worker's io_uring, or nullptr when its connections use epoll.
  Ring* ring() { return ring_.get(); }
  bool has_ring() const { return ring_ != nullptr; }
  size_t index() const { return index_; }
  const RouterOptions& options() const { return options_; }
  const ParseLimits& limits() const { return limits_; }
  const RouteTable& table() const { return *table_; }
  void SetTable(std::shared_ptr<const RouteTable> table);

  // Pins the current table for one request and returns it; the table stays
  // alive until the matching UnpinTable, even if a newer one arrives. Plain
  // counters of this worker: no atomic operation on the per-request path
  // (copying the shared_ptr would bounce its count between cores).
  const RouteTable* PinTable();
  void UnpinTable(const RouteTable* table);
  bool draining() const { return draining_; }

  // One unit of a session's work: a request begun, a piece of a body
  // relayed. Lets the thread yield its core when it has been busy for a
  // while (see Pacer).
  void Pace() {
    if (pacer_.Step()) counters_.yields.fetch_add(1, std::memory_order_relaxed);
  }

  // Round robin over the healthy targets of `route`'s pool for `color`,
  // skipping `exclude`; nullptr when none is healthy.
  Target* PickTarget(const ServiceRoute& route, Color color, const Target* exclude);

  // A pooled connection to `target`, if one is idle.
  bool TakeIdle(Target* target, UpstreamConn& out);
  // Keeps `conn` for reuse (or closes it when the target left the table or
  // the pool is full).
  void ReturnIdle(UpstreamConn conn);

  std::unique_ptr<IoBuffers> AcquireBuffers();
  void ReleaseBuffers(std::unique_ptr<IoBuffers> buffers);

  void Register(SessionBase* s);
  void Unregister(SessionBase* s);

  // Writes a fresh request id (32 hex digits) into `out` and returns its view.
  std::string_view NewRequestId(char (&out)[33]);

  AccessLog& access_log() { return access_log_; }
  WorkerCounters& counters() { return counters_; }
  const WorkerCounters& counters() const { return counters_; }

 private:
  void Tick();
  void StartAccept(WorkerAcceptor& acceptor, bool preview);
  // Starts a session for an accepted connection here or on the least
  // loaded peer.
  void Take(WorkerSocket socket, bool preview);
  // Connections this worker holds or was handed and has not started yet.
  // Any thread.
  int64_t Load() const;
  // The peer with the fewest connections, or this worker on a tie.
  Worker& LeastLoaded();
  // Moves an accepted client connection to `to`'s thread and starts its
  // session there.
  void HandOff(Worker& to, WorkerSocket socket);
  void MaybeFinishDrain();

  const size_t index_;
  const RouterOptions options_;
  ParseLimits limits_;
  boost::asio::io_context ctx_;  // first: destroyed after everything using it
  std::vector<std::unique_ptr<WorkerAcceptor>> acceptors_;
  std::vector<bool> preview_acceptor_;  // parallel to acceptors_
  boost::asio::steady_timer tick_;
  std::unique_ptr<Ring> ring_;  // enabled and destroyed on the worker's thread
  Pacer pacer_;
  std::thread thread_;

  struct PinnedTable {
    std::shared_ptr<const RouteTable> table;
    uint32_t pins = 0;
  };
  std::shared_ptr<const RouteTable> table_;
  std::vector<PinnedTable> pinned_;              // back() is table_
  std::vector<uint32_t> round_robin_;            // by service index * 2 + color
  std::vector<std::vector<UpstreamConn>> idle_;  // by target id
  std::vector<std::unique_ptr<IoBuffers>> free_buffers_;
  std::vector<Worker*> peers_;
  std::atomic<int64_t> incoming_{0};  // handed to this worker, not started yet
  SessionBase* sessions_ = nullptr;
  size_t session_count_ = 0;
  bool draining_ = false;
  SteadyTime drain_deadline_{};

  uint64_t id_state_;  // request ids: SplitMix64 steps from a random start
  AccessLog access_log_;
  WorkerCounters counters_;
};

// Runs one client connection to completion on `worker`'s thread.
void StartClientSession(Worker& worker, Stream client, bool preview);

}  // namespace cutover
