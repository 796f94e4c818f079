#include "router/worker.h"

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <random>
#include <string>
#include <utility>

#include "common/log.h"

namespace cutover {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTickInterval = std::chrono::milliseconds(100);
constexpr int kAcceptBurst = 256;  // connections accepted per readiness of a listener
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// Names the calling thread cutover-wN, as `top -H` and /proc show it.
void NameWorkerThread(size_t index) {
  const std::string name = "cutover-w" + std::to_string(index);
  ::pthread_setname_np(::pthread_self(), name.c_str());
}

uint64_t RandomSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

// Sixteen lowercase hex digits of v, most significant first.
void WriteHex(uint64_t v, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, v >>= 4) out[i] = kHex[v & 0xf];
}
}  // namespace

Result<tcp::endpoint> ListenEndpoint(asio::io_context& ctx, const HostPort& hp) {
  boost::system::error_code ec;
  tcp::resolver resolver(ctx);
  auto results = resolver.resolve(hp.host, std::to_string(hp.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "listen " + hp.ToString() + ": cannot resolve: " + ec.message());
  }
  return results.begin()->endpoint();
}

boost::system::error_code BindTo(WorkerAcceptor& acceptor, const tcp::endpoint& ep,
                                 bool reuse_port) {
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) acceptor.set_option(ReusePort(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  return ec;
}

IoBuffers::IoBuffers(size_t cap)
    : capacity(cap),
      client(std::make_unique_for_overwrite<char[]>(cap)),
      upstream(std::make_unique_for_overwrite<char[]>(cap)) {
  head_out.reserve(2048);
  method.reserve(16);
  path.reserve(256);
  request_id.reserve(40);
}

Worker::Worker(size_t index, const RouterOptions& options, int access_log_fd)
    : index_(index),
      options_(options),
      // Sockets and timers of a worker are touched only on its thread, so the
      // reactor needs no locks; posts from other threads still take one.
      ctx_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      tick_(ctx_),
      id_state_(RandomSeed()),
      access_log_(access_log_fd) {
  limits_.max_head_bytes = options.limits.max_header_bytes;
  limits_.max_headers = options.limits.max_headers;
}

Worker::~Worker() {
  if (thread_.joinable()) Shutdown(Millis(0));
}

Status Worker::Listen(const std::vector<HostPort>& addresses, bool preview) {
  for (const HostPort& hp : addresses) {
    Result<tcp::endpoint> ep = ListenEndpoint(ctx_, hp);
    if (!ep) return std::unexpected(ep.error());
    auto acceptor = std::make_unique<WorkerAcceptor>(ctx_);
    boost::system::error_code ec = BindTo(*acceptor, *ep, /*reuse_port=*/!preview);
    if (!ec) acceptor->listen(4096, ec);
    if (!ec) acceptor->non_blocking(true, ec);
    if (ec) {
      return MakeError(ErrorCode::kIo, "listen " + hp.ToString() + ": " + ec.message());
    }
    acceptors_.push_back(std::move(acceptor));
    preview_acceptor_.push_back(preview);
  }
  return {};
}

std::vector<HostPort> Worker::BoundAddresses() const {
  std::vector<HostPort> out;
  for (const auto& a : acceptors_) {
    boost::system::error_code ec;
    tcp::endpoint ep = a->local_endpoint(ec);
    out.push_back(HostPort{ep.address().to_string(), ep.port()});
  }
  return out;
}

Status Worker::OpenRing() {
  std::string why;
  ring_ = Ring::Create(ctx_, &why);
  if (!ring_) return MakeError(ErrorCode::kUnavailable, why);
  return {};
}

void Worker::Start(std::shared_ptr<const RouteTable> table) {
  SetTable(std::move(table));
  for (size_t i = 0; i < acceptors_.size(); ++i) StartAccept(*acceptors_[i], preview_acceptor_[i]);
  Tick();
  // The thread enables its ring before Start returns, so that what the
  // router reports afterwards (Router::io) stays true.
  std::promise<void> enabled;
  std::future<void> ready = enabled.get_future();
  thread_ = std::thread([this, &enabled] {
    NameWorkerThread(index_);
    if (ring_) {
      std::string why;
      if (!ring_->Enable(&why)) {
        LogWarn("router: worker {} uses epoll: {}", index_, why);
        ring_.reset();
      }
    }
    enabled.set_value();
    ctx_.run();
    ring_.reset();  // on the thread that used it
  });
  ready.wait();
}

void Worker::Post(std::function<void()> fn) { asio::post(ctx_, std::move(fn)); }

void Worker::Shutdown(Millis grace) {
  if (!thread_.joinable()) return;
  Post([this, grace] {
    if (draining_) return;
    draining_ = true;
    drain_deadline_ = CoarseNow() + grace;
    for (auto& a : acceptors_) {
      boost::system::error_code ignored;
      a->close(ignored);
    }
    for (SessionBase* s = sessions_; s != nullptr;) {
      SessionBase* next = s->next;  // OnDrain may end the session
      s->OnDrain();
      s = next;
    }
    idle_.clear();
    MaybeFinishDrain();
  });
  thread_.join();
}

void Worker::MaybeFinishDrain() {
  if (draining_ && session_count_ == 0) {
    tick_.cancel();
    ctx_.stop();
  }
}

void Worker::StartAccept(WorkerAcceptor& acceptor, bool preview) {
  acceptor.async_accept(
      [this, &acceptor, preview](boost::system::error_code ec, WorkerSocket socket) {
        if (ec == asio::error::operation_aborted || draining_) return;
        if (ec) {
          // Out of descriptors or a transient error: try again on the next tick
          // rather than spinning.
          auto timer = std::make_shared<asio::steady_timer>(ctx_, kTickInterval);
          timer->async_wait([this, &acceptor, timer, preview](boost::system::error_code) {
            if (!draining_) StartAccept(acceptor, preview);
          });
          return;
        }
        Take(std::move(socket), preview);
        // The rest of the backlog at once (the acceptor is non-blocking): a
        // burst of new connections would otherwise be taken one per turn
        // of the event loop, behind everything else ready then.
        for (int i = 1; i < kAcceptBurst && !draining_; ++i) {
          boost::system::error_code more_ec;
          WorkerSocket more = acceptor.accept(more_ec);
          if (more_ec) break;
          Take(std::move(more), preview);
        }
        StartAccept(acceptor, preview);
      });
}

void Worker::Take(WorkerSocket socket, bool preview) {
  counters_.connections.fetch_add(1, std::memory_order_relaxed);
  Worker& to = preview ? *this : LeastLoaded();
  if (&to == this) {
    Stream client(ctx_.get_executor(), ring());
    boost::system::error_code ec;
    client.Adopt(std::move(socket), ec);
    if (!ec) StartClientSession(*this, std::move(client), preview);
  } else {
    HandOff(to, std::move(socket));
  }
}

int64_t Worker::Load() const {
  return counters_.open_connections.load(std::memory_order_relaxed) +
         incoming_.load(std::memory_order_relaxed);
}

Worker& Worker::LeastLoaded() {
  Worker* best = this;
  int64_t least = Load();
  for (Worker* w : peers_) {
    const int64_t load = w->Load();
    if (load < least) {
      least = load;
      best = w;
    }
  }
  return *best;
}

namespace {
// A descriptor on its way to another worker's thread, closed if it never
// gets there (that worker stopped first).
struct PassedFd {
  explicit PassedFd(int fd) : fd(fd) {}
  PassedFd(const PassedFd&) = delete;
  PassedFd& operator=(const PassedFd&) = delete;
  ~PassedFd() {
    if (fd >= 0) ::close(fd);
  }
  int Take() { return std::exchange(fd, -1); }
  int fd;
};
}  // namespace

void Worker::HandOff(Worker& to, WorkerSocket socket) {
  boost::system::error_code ec;
  const tcp::endpoint local = socket.local_endpoint(ec);
  if (ec) return;  // reset by the client already; dropping the socket closes it
  // The socket leaves this worker's reactor here and joins `to`'s (or its
  // ring) on its own thread: reactors run without locks (see the
  // constructor).
  auto fd = std::make_shared<PassedFd>(socket.release(ec));
  if (ec) return;
  to.incoming_.fetch_add(1, std::memory_order_relaxed);
  to.Post([&to, fd, protocol = local.protocol()] {
    to.incoming_.fetch_sub(1, std::memory_order_relaxed);
    if (to.draining_) return;  // as a connection accepted while draining
    Stream client(to.ctx_.get_executor(), to.ring());
    boost::system::error_code ec;
    client.Adopt(protocol, fd->Take(), ec);
    if (!ec) StartClientSession(to, std::move(client), /*preview=*/false);
  });
}

void Worker::Tick() {
  tick_.expires_after(kTickInterval);
  tick_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    SteadyTime now = CoarseNow();
    if (draining_ && now >= drain_deadline_) {
      for (SessionBase* s = sessions_; s != nullptr;) {
        SessionBase* next = s->next;
        s->deadline = SteadyTime::min();
        s->OnDeadline();
        s = next;
      }
    } else {
      for (SessionBase* s = sessions_; s != nullptr;) {
        SessionBase* next = s->next;
        if (s->deadline <= now) s->OnDeadline();
        s = next;
      }
    }
    // Close pooled connections unused for too long.
    for (auto& pool : idle_) {
      while (!pool.empty() && now - pool.front().idle_since > options_.upstream_idle) {
        pool.erase(pool.begin());
      }
    }
    access_log_.Flush();
    if (ring_) ring_->Poll();
    Tick();
  });
}

void Worker::SetTable(std::shared_ptr<const RouteTable> table) {
  table_ = std::move(table);
  // Older tables live on only while requests still pin them.
  std::erase_if(pinned_, [](const PinnedTable& p) { return p.pins == 0; });
  pinned_.push_back({table_, 0});
  round_robin_.resize(table_->services().size() * 2, 0);
  for (auto& pool : idle_) {
    if (!pool.empty() && !table_->Routes(pool.front().target)) pool.clear();
  }
  for (SessionBase* s = sessions_; s != nullptr; s = s->next) s->OnTable(*table_);
}

const RouteTable* Worker::PinTable() {
  ++pinned_.back().pins;
  return pinned_.back().table.get();
}

void Worker::UnpinTable(const RouteTable* table) {
  for (size_t i = pinned_.size(); i-- > 0;) {
    if (pinned_[i].table.get() != table) continue;
    if (--pinned_[i].pins == 0 && i + 1 != pinned_.size()) {
      pinned_.erase(pinned_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    return;
  }
}

Target* Worker::PickTarget(const ServiceRoute& route, Color color, const Target* exclude) {
  const std::vector<TargetPtr>& pool = route.pools[static_cast<int>(color)];
  size_t n = pool.size();
  if (n == 0) return nullptr;
  uint32_t& cursor = round_robin_[route.index * 2 + static_cast<int>(color)];
  for (size_t i = 0; i < n; ++i) {
    Target* t = pool[(cursor + i) % n].get();
    if (t != exclude && t->healthy.load(std::memory_order_relaxed)) {
      cursor = static_cast<uint32_t>((cursor + i + 1) % n);
      return t;
    }
  }
  return nullptr;
}

bool Worker::TakeIdle(Target* target, UpstreamConn& out) {
  if (target->id >= idle_.size()) return false;
  std::vector<UpstreamConn>& pool = idle_[target->id];
  SteadyTime now = CoarseNow();
  while (!pool.empty()) {
    UpstreamConn c = std::move(pool.back());
    pool.pop_back();
    if (now - c.idle_since > options_.upstream_idle) continue;  // closed on destruction
    out = std::move(c);
    out.reused = true;
    return true;
  }
  return false;
}

void Worker::ReturnIdle(UpstreamConn conn) {
  Target* t = conn.target;
  if (draining_ || t == nullptr || !table_->Routes(t)) return;  // closed on destruction
  if (t->id >= idle_.size()) idle_.resize(t->id + 1);
  std::vector<UpstreamConn>& pool = idle_[t->id];
  if (pool.size() >= options_.max_idle_per_target) return;
  conn.idle_since = CoarseNow();
  pool.push_back(std::move(conn));
}

std::unique_ptr<IoBuffers> Worker::AcquireBuffers() {
  if (free_buffers_.empty()) {
    return std::make_unique<IoBuffers>(options_.limits.max_header_bytes + 16 * 1024);
  }
  std::unique_ptr<IoBuffers> b = std::move(free_buffers_.back());
  free_buffers_.pop_back();
  return b;
}

void Worker::ReleaseBuffers(std::unique_ptr<IoBuffers> buffers) {
  // Keep a bounded reserve: enough for the busy connections of a burst, not
  // the memory of every connection that was ever busy.
  if (free_buffers_.size() < 256) free_buffers_.push_back(std::move(buffers));
}

void Worker::Register(SessionBase* s) {
  s->next = sessions_;
  s->prev = nullptr;
  if (sessions_ != nullptr) sessions_->prev = s;
  sessions_ = s;
  ++session_count_;
  counters_.open_connections.fetch_add(1, std::memory_order_relaxed);
}

void Worker::Unregister(SessionBase* s) {
  if (s->prev != nullptr) s->prev->next = s->next;
  if (s->next != nullptr) s->next->prev = s->prev;
  if (sessions_ == s) sessions_ = s->next;
  --session_count_;
  counters_.open_connections.fetch_sub(1, std::memory_order_relaxed);
  MaybeFinishDrain();
}

std::string_view Worker::NewRequestId(char (&out)[33]) {
  // Each step of SplitMix64 is a bijection of its state, and the state
  // advances by an odd constant: a worker repeats no id for 2^63 requests.
  WriteHex(SplitMix64(id_state_), out);
  WriteHex(SplitMix64(id_state_), out + 16);
  out[32] = '\0';
  return std::string_view(out, 32);
}

}  // namespace cutover
