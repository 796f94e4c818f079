// Ring: a worker's io_uring, through which its client and upstream
// connections read and write. A worker queues the operations its handlers
// start and hands them to the kernel together, in the one system call that
// also collects what completed; with epoll each read, write and wait is a
// call of its own. The ring's completions wake the worker's io_context
// through an eventfd, so timers, accepts and posts from other threads keep
// running on Asio's reactor. Worker thread only.
#pragma once

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

namespace cutover {

using RingExecutor = boost::asio::io_context::executor_type;

// A completion handler kept in place, so that starting an operation costs no
// allocation. Handlers of the router's coroutines are a few pointers and the
// buffers of a write.
class StoredHandler {
 public:
  StoredHandler() = default;
  StoredHandler(const StoredHandler&) = delete;
  StoredHandler& operator=(const StoredHandler&) = delete;
  ~StoredHandler() { Destroy(); }

  template <typename Handler>
  void Store(Handler&& handler) {
    using H = std::decay_t<Handler>;
    if constexpr (sizeof(H) <= kSize && alignof(H) <= alignof(std::max_align_t)) {
      new (storage_) H(std::forward<Handler>(handler));
      invoke_ = [](void* p, boost::system::error_code ec, size_t n) {
        H h(std::move(*std::launder(static_cast<H*>(p))));
        std::launder(static_cast<H*>(p))->~H();
        std::move(h)(ec, n);
      };
      destroy_ = [](void* p) {
        H h(std::move(*std::launder(static_cast<H*>(p))));
        std::launder(static_cast<H*>(p))->~H();
      };
    } else {
      // A handler that carries a long buffer sequence (a write of many
      // pieces) lives on the heap; the router's own handlers fit in place.
      new (storage_) H*(new H(std::forward<Handler>(handler)));
      invoke_ = [](void* p, boost::system::error_code ec, size_t n) {
        std::unique_ptr<H> owned(*std::launder(static_cast<H**>(p)));
        H h(std::move(*owned));
        owned.reset();
        std::move(h)(ec, n);
      };
      destroy_ = [](void* p) { std::unique_ptr<H> owned(*std::launder(static_cast<H**>(p))); };
    }
  }
  bool empty() const { return invoke_ == nullptr; }
  // Moves the handler out before calling it: it may start the next
  // operation, which stores its own handler here.
  void Invoke(boost::system::error_code ec, size_t n) {
    auto invoke = std::exchange(invoke_, nullptr);
    destroy_ = nullptr;
    // Not a member touched after this call: the handler may end the
    // session that holds this StoredHandler.
    invoke(storage_, ec, n);
  }
  // Destroys the handler unrun. It is moved out first: destroying it may
  // free the memory that holds this StoredHandler (the coroutine frame that
  // owns the connection).
  void Destroy() {
    auto destroy = std::exchange(destroy_, nullptr);
    invoke_ = nullptr;
    if (destroy != nullptr) destroy(storage_);
  }

 private:
  static constexpr size_t kSize = 96;
  alignas(std::max_align_t) unsigned char storage_[kSize];
  void (*invoke_)(void*, boost::system::error_code, size_t) = nullptr;
  void (*destroy_)(void*) = nullptr;
};

class Ring;

// One operation of a connection: at most one read and one write (or
// connect) of a connection are in flight at a time, each in its own RingOp.
// What the kernel reads (the buffers, the address) stays here until the
// operation completes.
struct RingOp {
  static constexpr int kMaxIov = 4;

  StoredHandler handler;
  boost::asio::cancellation_slot slot;
  bool in_flight = false;
  bool cancel_requested = false;
  uint8_t opcode = 0;  // IORING_OP_RECV, _SEND, _SENDMSG or _CONNECT
  int fd = -1;
  int iov_count = 0;
  iovec iov[kMaxIov];
  msghdr msg{};
  sockaddr_in6 addr{};  // large enough for IPv4 and IPv6
  socklen_t addrlen = 0;
  // Runs before the handler, with the operation over: a connection closes
  // its descriptor here once its last operation has ended.
  void (*done)(void* owner) = nullptr;
  void* owner = nullptr;
  RingOp* prev = nullptr;  // the ring's list of operations in flight
  RingOp* next = nullptr;
};

class Ring {
 public:
  // A ring for `ctx`, or nullptr with the reason in *why when the kernel
  // refuses one (too old, io_uring disabled, a seccomp filter). Any thread;
  // the thread that runs `ctx` calls Enable before anything else.
  static std::unique_ptr<Ring> Create(boost::asio::io_context& ctx, std::string* why);
  // Makes the calling thread the ring's only submitter, which lets the
  // kernel leave completion work for it to pick up. False, with the reason,
  // if the kernel refuses.
  [[nodiscard]] bool Enable(std::string* why);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Queues `op`, filled in by its connection; it goes to the kernel with the
  // next flush, which runs after the handlers ready now.
  void Start(RingOp* op);
  // Asks the kernel to end `op` early; it completes with operation_aborted
  // unless it had already finished.
  void Cancel(RingOp* op);
  // Takes `op` off the ring unfinished, its handler destroyed unrun: for a
  // connection destroyed while the ring is torn down (at any other time the
  // kernel still holds the operation, and this aborts).
  void Forget(RingOp* op);
  // Submits and collects now. The worker's tick calls it, so that nothing
  // waits on the ring longer than a tick whatever the kernel's eventfd does.
  void Poll() { Flush(); }

 private:
  explicit Ring(boost::asio::io_context& ctx);
  io_uring_sqe* Sqe();
  static void Prep(io_uring_sqe* sqe, RingOp* op);
  void ScheduleFlush();
  // Submits what is queued, collects what completed and calls its handlers.
  void Flush();
  void Complete(RingOp* op, int res);
  void Unlink(RingOp* op);
  void WaitForWakeup();

  boost::asio::io_context& ctx_;
  io_uring ring_{};
  bool initialized_ = false;
  bool disabled_ = false;  // created for another thread, not enabled yet
  bool in_flush_ = false;
  bool submit_failed_ = false;
  bool tearing_down_ = false;
  bool flush_posted_ = false;
  boost::asio::posix::basic_stream_descriptor<RingExecutor> wakeup_;
  char wakeup_buf_[16];
  RingOp* in_flight_ = nullptr;
};

}  // namespace cutover
