#include "router/router.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "router/worker.h"

namespace cutover {
namespace {

// The workers share each main listen port through SO_REUSEPORT, which would
// also let the daemon share a port with any other program of the same user
// that listens there with it (another daemon on the same address, a server
// built on a library that sets it by default): the kernel would hand each
// of them a share of the connections, silently. So each address is first
// bound alone, without it, and closed again, one at a time (two of the
// daemon's own addresses may overlap: 0.0.0.0:80 and [::]:80).
Status CheckNobodyListens(const std::vector<HostPort>& addresses) {
  boost::asio::io_context io;
  for (const HostPort& hp : addresses) {
    if (hp.port == 0) continue;
    Result<boost::asio::ip::tcp::endpoint> ep = ListenEndpoint(io, hp);
    if (!ep) continue;  // the workers' bind reports it
    WorkerAcceptor probe(io);
    const boost::system::error_code ec = BindTo(probe, *ep, /*reuse_port=*/false);
    if (ec == boost::asio::error::address_in_use) {
      return MakeError(ErrorCode::kIo, "listen " + hp.ToString() + ": " + ec.message() +
                                           " (another program listens there)");
    }
  }
  return {};
}

}  // namespace

Router::Router(const RouterOptions& options) : options_(options) {}

Result<std::unique_ptr<Router>> Router::Create(const RouterOptions& options) {
  if (options.workers < 1) {
    return MakeError(ErrorCode::kInvalidArgument, "the router needs at least one worker");
  }
  std::unique_ptr<Router> r(new Router(options));
  switch (options.access_log.kind) {
    case AccessLogConfig::Kind::kOff:
      break;
    case AccessLogConfig::Kind::kStdout:
      r->access_log_fd_ = STDOUT_FILENO;
      break;
    case AccessLogConfig::Kind::kFile:
      r->access_log_fd_ =
          ::open(options.access_log.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (r->access_log_fd_ < 0) {
        return MakeError(ErrorCode::kIo,
                         "access log " + options.access_log.path + ": " + std::strerror(errno));
      }
      break;
  }
  if (Status free = CheckNobodyListens(options.listen); !free) return std::unexpected(free.error());
  // The first worker binds; the others share its ports, so that port 0
  // means one kernel-chosen port for all of them.
  std::vector<HostPort> addresses = options.listen;
  std::vector<HostPort> preview = options.preview_listen;
  for (int i = 0; i < options.workers; ++i) {
    auto w = std::make_unique<Worker>(static_cast<size_t>(i), options, r->access_log_fd_);
    if (Status s = w->Listen(addresses, /*preview=*/false); !s) return std::unexpected(s.error());
    // The preview is light traffic: one worker accepts it, on a socket
    // without SO_REUSEPORT, so that a second daemon configured with the same
    // preview address fails to start instead of silently taking a share of
    // its connections.
    if (i == 0) {
      if (Status s = w->Listen(preview, /*preview=*/true); !s) return std::unexpected(s.error());
    }
    if (i == 0) {
      std::vector<HostPort> bound = w->BoundAddresses();
      for (size_t a = 0; a < addresses.size(); ++a) addresses[a].port = bound[a].port;
      for (size_t a = 0; a < preview.size(); ++a) {
        preview[a].port = bound[addresses.size() + a].port;
      }
      r->bound_ = addresses;
      r->bound_preview_ = preview;
    }
    r->workers_.push_back(std::move(w));
  }
  if (options.io_uring) {
    for (auto& w : r->workers_) {
      if (Status s = w->OpenRing(); !s) {
        LogWarn("router: no io_uring ({}); connections use epoll", s.error().message);
        for (auto& other : r->workers_) other->CloseRing();
        break;
      }
    }
  }
  return r;
}

std::string_view Router::io() const {
  size_t rings = 0;
  for (const auto& w : workers_) rings += w->has_ring() ? 1 : 0;
  return rings == workers_.size() ? "io_uring" : rings == 0 ? "epoll" : "io_uring and epoll";
}

Router::~Router() {
  Shutdown(Millis(0));
  if (access_log_fd_ > STDERR_FILENO) ::close(access_log_fd_);
}

size_t Router::worker_count() const { return workers_.size(); }

void Router::Start(std::shared_ptr<const RouteTable> first) {
  started_ = true;
  std::vector<Worker*> peers;
  for (auto& w : workers_) peers.push_back(w.get());
  for (auto& w : workers_) w->SetPeers(peers);
  for (auto& w : workers_) w->Start(first);
}

void Router::Publish(std::shared_ptr<const RouteTable> table, std::function<void()> done) {
  if (!started_ || stopped_) {
    if (done) done();
    return;
  }
  auto remaining = std::make_shared<std::atomic<size_t>>(workers_.size());
  auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->Post([worker, table, remaining, shared_done] {
      worker->SetTable(table);
      if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1 && *shared_done) {
        (*shared_done)();
      }
    });
  }
}

void Router::Shutdown(Millis grace) {
  if (stopped_) return;
  stopped_ = true;
  // Drain the workers in parallel so the grace period is not multiplied.
  std::vector<std::thread> stoppers;
  for (auto& w : workers_) {
    Worker* worker = w.get();
    stoppers.emplace_back([worker, grace] { worker->Shutdown(grace); });
  }
  for (auto& t : stoppers) t.join();
}

RouterCounters Router::counters() const {
  RouterCounters c;
  for (const auto& w : workers_) {
    const WorkerCounters& wc = w->counters();
    c.bad_requests += wc.bad_requests.load(std::memory_order_relaxed);
    c.unmatched += wc.unmatched.load(std::memory_order_relaxed);
    c.header_timeouts += wc.header_timeouts.load(std::memory_order_relaxed);
    c.connections += wc.connections.load(std::memory_order_relaxed);
    const int64_t open = wc.open_connections.load(std::memory_order_relaxed);
    c.open_connections += open;
    c.open_by_worker.push_back(open);
    c.yields_by_worker.push_back(wc.yields.load(std::memory_order_relaxed));
  }
  return c;
}

}  // namespace cutover
