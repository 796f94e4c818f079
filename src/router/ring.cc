#include "router/ring.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace cutover {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr unsigned kSubmissionEntries = 1024;
constexpr unsigned kCompletionEntries = 8192;
}  // namespace

Ring::Ring(asio::io_context& ctx) : ctx_(ctx), wakeup_(ctx.get_executor()) {}

std::unique_ptr<Ring> Ring::Create(asio::io_context& ctx, std::string* why) {
  std::unique_ptr<Ring> r(new Ring(ctx));
  // Deferred completion work first (Linux 6.1): the kernel finishes a ready
  // operation when the worker next asks for completions, instead of
  // interrupting it. Then cooperative (5.19), then the plain ring.
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  const unsigned tries[] = {
      base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
      base | IORING_SETUP_COOP_TASKRUN,
      IORING_SETUP_CQSIZE,
  };
  int rc = -EINVAL;
  for (unsigned flags : tries) {
    io_uring_params p{};
    p.flags = flags;
    p.cq_entries = kCompletionEntries;
    rc = io_uring_queue_init_params(kSubmissionEntries, &r->ring_, &p);
    if (rc == 0) {
      r->disabled_ = (flags & IORING_SETUP_R_DISABLED) != 0;
      if ((p.features & IORING_FEAT_FAST_POLL) == 0 || (p.features & IORING_FEAT_NODROP) == 0) {
        io_uring_queue_exit(&r->ring_);
        *why = "the kernel's io_uring lacks fast poll or no-drop completions (Linux 5.7 or later)";
        return nullptr;
      }
      break;
    }
    if (rc != -EINVAL) break;  // not a matter of flags
  }
  if (rc != 0) {
    *why = std::string("io_uring_setup: ") + std::strerror(-rc);
    return nullptr;
  }
  r->initialized_ = true;
  const int wakeup_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeup_fd < 0) {
    *why = std::string("eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  rc = io_uring_register_eventfd(&r->ring_, wakeup_fd);
  if (rc != 0) {
    *why = std::string("io_uring_register_eventfd: ") + std::strerror(-rc);
    ::close(wakeup_fd);
    return nullptr;
  }
  error_code ec;
  r->wakeup_.assign(wakeup_fd, ec);
  if (ec) {
    *why = "eventfd: " + ec.message();
    ::close(wakeup_fd);
    return nullptr;
  }
  r->WaitForWakeup();
  return r;
}

Ring::~Ring() {
  error_code ignored;
  wakeup_.close(ignored);
  if (!initialized_) return;
  // Normally nothing is in flight here: a worker stops once its last
  // session has ended. Otherwise every operation is cancelled and waited
  // for (a bounded while), so that the kernel writes into no buffer after
  // the sessions owning them are gone; their handlers are destroyed unrun,
  // as an io_context destroys the handlers it still holds.
  tearing_down_ = true;
  if (in_flight_ != nullptr) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) {
      io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data(sqe, nullptr);
    }
    io_uring_submit(&ring_);
    for (int waits = 0; in_flight_ != nullptr && waits < 50; ++waits) {
      __kernel_timespec timeout{0, 20'000'000};
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe_timeout(&ring_, &cqe, &timeout) != 0) continue;
      auto* op = static_cast<RingOp*>(io_uring_cqe_get_data(cqe));
      io_uring_cqe_seen(&ring_, cqe);
      if (op != nullptr) Forget(op);
    }
  }
  io_uring_queue_exit(&ring_);
  // Each handler is taken off the list before it is destroyed: destroying
  // one may end the session that owns another.
  while (in_flight_ != nullptr) Forget(in_flight_);
}

void Ring::Unlink(RingOp* op) {
  if (op->prev != nullptr) op->prev->next = op->next;
  if (op->next != nullptr) op->next->prev = op->prev;
  if (in_flight_ == op) in_flight_ = op->next;
  op->prev = op->next = nullptr;
  op->in_flight = false;
  if (op->slot.is_connected()) {
    op->slot.clear();
    op->slot = asio::cancellation_slot();
  }
}

void Ring::Forget(RingOp* op) {
  if (!op->in_flight) return;
  if (!tearing_down_) {
    // The kernel still holds the operation's buffers and will answer it.
    std::fputs("cutover: a connection was destroyed with an operation in flight\n", stderr);
    std::abort();
  }
  Unlink(op);
  op->handler.Destroy();
}

bool Ring::Enable(std::string* why) {
  if (!disabled_) return true;
  // io_uring_enable_rings, which Debian's liburing 2.3 declares but does not
  // export.
  const int rc = io_uring_register(static_cast<unsigned>(ring_.ring_fd),
                                   IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
  if (rc != 0) {
    *why = std::string("enabling the ring: ") + std::strerror(-rc);
    return false;
  }
  disabled_ = false;
  return true;
}

io_uring_sqe* Ring::Sqe() {
  ScheduleFlush();
  if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
  io_uring_submit(&ring_);  // the queue is full: hand it over now
  return io_uring_get_sqe(&ring_);
}

void Ring::Prep(io_uring_sqe* sqe, RingOp* op) {
  switch (op->opcode) {
    case IORING_OP_RECV:
      io_uring_prep_recv(sqe, op->fd, op->iov[0].iov_base, op->iov[0].iov_len, 0);
      break;
    case IORING_OP_SEND:
      io_uring_prep_send(sqe, op->fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL);
      break;
    case IORING_OP_SENDMSG:
      op->msg = msghdr{};
      op->msg.msg_iov = op->iov;
      op->msg.msg_iovlen = static_cast<size_t>(op->iov_count);
      io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL);
      break;
    case IORING_OP_CONNECT:
      io_uring_prep_connect(sqe, op->fd, reinterpret_cast<const sockaddr*>(&op->addr), op->addrlen);
      break;
    default:
      std::abort();  // only the operations above are ever started
  }
  io_uring_sqe_set_data(sqe, op);
}

void Ring::Start(RingOp* op) {
  op->in_flight = true;
  op->cancel_requested = false;
  op->prev = nullptr;
  op->next = in_flight_;
  if (in_flight_ != nullptr) in_flight_->prev = op;
  in_flight_ = op;
  if (io_uring_sqe* sqe = Sqe()) {
    Prep(sqe, op);
  } else {
    // The kernel takes no more submissions now (out of memory): the
    // operation fails, after the handlers ready now, as any other does.
    asio::post(ctx_, [this, op] { Complete(op, -ENOBUFS); });
  }
}

void Ring::Cancel(RingOp* op) {
  if (!op->in_flight || op->cancel_requested) return;
  op->cancel_requested = true;
  if (io_uring_sqe* sqe = Sqe()) {
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data(sqe, nullptr);
  }
}

void Ring::ScheduleFlush() {
  if (flush_posted_ || in_flush_) return;
  flush_posted_ = true;
  asio::post(ctx_, [this] {
    flush_posted_ = false;
    Flush();
  });
}

void Ring::WaitForWakeup() {
  // Each wake-up costs the read of the counter and, when the read is
  // started again, a read that finds nothing (Asio tries a descriptor's
  // read at once).
  wakeup_.async_read_some(asio::buffer(wakeup_buf_), [this](error_code ec, size_t) {
    if (ec) return;  // closed: the ring is going away
    Flush();
    WaitForWakeup();
  });
}

void Ring::Flush() {
  // Since Linux 6.13 a call finishes at most a few dozen of the operations
  // that became ready (IO_LOCAL_TW_DEFAULT_MAX per pass) and keeps the rest
  // for the next call, without waking the eventfd again for them. So the
  // ring is asked again until a call brings nothing: otherwise a response
  // could wait for some other connection's activity. Past kMaxPasses the
  // rest waits for a flush posted behind the handlers ready now, so that
  // timers and accepts are not starved. Handlers that start operations
  // meanwhile post no flush of their own: this one takes them.
  constexpr int kMaxPasses = 64;
  in_flush_ = true;
  bool more = true;
  for (int pass = 0; pass < kMaxPasses && more; ++pass) {
    const int rc = io_uring_submit_and_get_events(&ring_);
    if (rc < 0 && rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) {
      // The kernel refuses the call itself: try again at the next tick
      // rather than spin.
      if (!submit_failed_)
        std::fprintf(stderr, "cutover: io_uring_enter: %s\n", std::strerror(-rc));
      submit_failed_ = true;
      break;
    }
    submit_failed_ = false;
    // One completion at a time, marked seen before its handler runs: the
    // handler may start operations, cancel others or end a session.
    int reaped = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      auto* op = static_cast<RingOp*>(io_uring_cqe_get_data(cqe));
      const int res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      ++reaped;
      if (op != nullptr) Complete(op, res);  // null: the answer to a cancel
    }
    // Done when a call brought nothing and the handlers queued nothing since.
    more = reaped > 0 || io_uring_sq_ready(&ring_) > 0;
  }
  in_flush_ = false;
  if (more && !submit_failed_) ScheduleFlush();
}

void Ring::Complete(RingOp* op, int res) {
  if (res == -EAGAIN || res == -EINTR) {
    if (op->cancel_requested) {
      res = -ECANCELED;  // interrupted by its cancel: it ends
    } else if (op->opcode != IORING_OP_CONNECT) {
      if (io_uring_sqe* sqe = Sqe()) {
        Prep(sqe, op);  // still in flight
        return;
      }
    }
  }
  Unlink(op);
  error_code ec;
  size_t n = 0;
  if (res < 0) {
    ec = res == -ECANCELED ? error_code(asio::error::operation_aborted)
                           : error_code(-res, boost::system::system_category());
  } else if (res == 0 && op->opcode == IORING_OP_RECV) {
    ec = asio::error::eof;
  } else {
    n = static_cast<size_t>(res);
  }
  if (op->done != nullptr) op->done(op->owner);
  op->handler.Invoke(ec, n);
}

}  // namespace cutover
