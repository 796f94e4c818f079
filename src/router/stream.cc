#include "router/stream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace cutover {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
error_code LastError() { return error_code(errno, boost::system::system_category()); }

// What a stream's operation asks of its ring when the coroutine awaiting it
// is cancelled (one side of a tunnel ended).
struct CancelOnSignal {
  Ring* ring;
  RingOp* op;
  void operator()(asio::cancellation_type type) {
    if ((type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                 asio::cancellation_type::total)) != asio::cancellation_type::none) {
      ring->Cancel(op);
    }
  }
};

// A stream's operations must be over before its memory moves or goes.
void RequireIdle(const RingOp& a, const RingOp& b, int zombie_fd, const char* what) {
  if (a.in_flight || b.in_flight || zombie_fd >= 0) {
    std::fprintf(stderr, "cutover: a connection was %s with an operation in flight\n", what);
    std::abort();
  }
}
}  // namespace

Stream::Stream(Stream&& other) noexcept
    : socket_(std::move(other.socket_)), ring_(other.ring_), fd_(std::exchange(other.fd_, -1)) {
  RequireIdle(other.read_, other.write_, other.zombie_fd_, "moved");
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this == &other) return *this;
  RequireIdle(read_, write_, zombie_fd_, "replaced");
  RequireIdle(other.read_, other.write_, other.zombie_fd_, "moved");
  if (fd_ >= 0) ::close(fd_);
  socket_ = std::move(other.socket_);
  ring_ = other.ring_;
  fd_ = std::exchange(other.fd_, -1);
  return *this;
}

Stream::~Stream() {
  // Only while the worker's ring is torn down can an operation still be in
  // flight here; the ring has let go of it. (A pooled connection may outlive
  // the ring, with nothing in flight.)
  if (read_.in_flight) ring_->Forget(&read_);
  if (write_.in_flight) ring_->Forget(&write_);
  if (fd_ >= 0) ::close(fd_);
  if (zombie_fd_ >= 0) ::close(zombie_fd_);
}

void Stream::Adopt(WorkerSocket socket, error_code& ec) {
  if (ring_ == nullptr) {
    socket_ = std::move(socket);
    ec.clear();
    return;
  }
  // Off the epoll reactor, which would otherwise be told of every byte the
  // ring reads.
  const int fd = socket.release(ec);
  if (!ec) TakeDescriptor(fd, ec);
}

void Stream::Adopt(const tcp& protocol, int fd, error_code& ec) {
  if (ring_ == nullptr) {
    socket_.assign(protocol, fd, ec);
    if (ec) ::close(fd);
    return;
  }
  TakeDescriptor(fd, ec);
}

void Stream::TakeDescriptor(int fd, error_code& ec) {
  error_code ignored;
  close(ignored);
  // Blocking, so that the ring waits for readiness itself.
  int off = 0;
  if (::ioctl(fd, FIONBIO, &off) != 0) {
    ec = LastError();
    ::close(fd);
    return;
  }
  ec.clear();
  fd_ = fd;
}

error_code Stream::OpenFor(const tcp::endpoint& to) {
  const int fd = ::socket(to.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return LastError();
  fd_ = fd;
  return {};
}

Stream::tcp::endpoint Stream::remote_endpoint(error_code& ec) const {
  if (ring_ == nullptr) return socket_.remote_endpoint(ec);
  tcp::endpoint ep;
  socklen_t len = static_cast<socklen_t>(ep.capacity());
  if (fd_ < 0) {
    ec = asio::error::bad_descriptor;
  } else if (::getpeername(fd_, ep.data(), &len) != 0) {
    ec = LastError();
  } else {
    ep.resize(len);
    ec.clear();
  }
  return ep;
}

void Stream::set_option(const tcp::no_delay& option, error_code& ec) {
  if (ring_ == nullptr) {
    socket_.set_option(option, ec);
    return;
  }
  int on = option.value() ? 1 : 0;
  if (fd_ < 0) {
    ec = asio::error::bad_descriptor;
  } else if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) {
    ec = LastError();
  } else {
    ec.clear();
  }
}

void Stream::shutdown(asio::socket_base::shutdown_type what, error_code& ec) {
  if (ring_ == nullptr) {
    socket_.shutdown(what, ec);
    return;
  }
  if (fd_ < 0) {
    ec = asio::error::bad_descriptor;
  } else if (::shutdown(fd_, static_cast<int>(what)) != 0) {
    ec = LastError();
  } else {
    ec.clear();
  }
}

void Stream::cancel(error_code& ec) {
  if (ring_ == nullptr) {
    socket_.cancel(ec);
    return;
  }
  ec.clear();
  ring_->Cancel(&read_);
  ring_->Cancel(&write_);
}

void Stream::close(error_code& ec) {
  if (ring_ == nullptr) {
    socket_.close(ec);
    return;
  }
  ec.clear();
  if (fd_ < 0) return;
  if (!read_.in_flight && !write_.in_flight) {
    ::close(std::exchange(fd_, -1));
    return;
  }
  // The kernel still holds operations on the descriptor: they are cancelled,
  // and it is closed when the last of them has completed (OnDone), so that
  // no new connection can take its number while they run.
  zombie_fd_ = std::exchange(fd_, -1);
  ring_->Cancel(&read_);
  ring_->Cancel(&write_);
}

void Stream::Launch(RingOp& op, asio::cancellation_slot slot) {
  op.fd = fd_;
  op.done = &Stream::OnDone;
  op.owner = this;
  ring_->Start(&op);
  if (slot.is_connected()) {
    op.slot = slot;
    slot.template emplace<CancelOnSignal>(CancelOnSignal{ring_, &op});
  }
}

void Stream::OnDone(void* self) {
  auto* s = static_cast<Stream*>(self);
  if (s->zombie_fd_ >= 0 && !s->read_.in_flight && !s->write_.in_flight) {
    ::close(std::exchange(s->zombie_fd_, -1));
  }
}

}  // namespace cutover
