// Stream: a client or upstream TCP connection of a worker. With a Ring its
// reads, writes and connect go through the worker's io_uring on a plain
// descriptor; without one (the kernel refused a ring, or the router was
// told not to use it) it is an Asio socket on the worker's epoll reactor.
// Either way it offers the calls of an Asio socket that the router uses, so
// asio::async_write and the sessions' coroutines take it as they are.
// Worker thread only.
#pragma once

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstring>
#include <utility>

#include "router/ring.h"

namespace cutover {

// A worker's sockets name its io_context's executor type: the type-erased
// default (any_io_executor) costs copies and a comparison in every
// asynchronous operation.
using WorkerExecutor = RingExecutor;
using WorkerSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, WorkerExecutor>;

class Stream {
 public:
  using executor_type = WorkerExecutor;
  using error_code = boost::system::error_code;
  using tcp = boost::asio::ip::tcp;

  // A closed stream; `ring` may be null.
  Stream(const executor_type& ex, Ring* ring) : socket_(ex), ring_(ring) {}
  // A moved-from stream is closed and keeps its executor and ring. Neither
  // side may have an operation in flight.
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  executor_type get_executor() noexcept { return socket_.get_executor(); }

  // Takes over an accepted socket, or the descriptor of one of `protocol`
  // (closed if it cannot be taken).
  void Adopt(WorkerSocket socket, error_code& ec);
  void Adopt(const tcp& protocol, int fd, error_code& ec);

  bool is_open() const { return ring_ != nullptr ? fd_ >= 0 : socket_.is_open(); }
  int native_handle() { return ring_ != nullptr ? fd_ : socket_.native_handle(); }
  tcp::endpoint remote_endpoint(error_code& ec) const;
  void set_option(const tcp::no_delay& option, error_code& ec);
  void shutdown(boost::asio::socket_base::shutdown_type what, error_code& ec);
  // Ends the operations in flight early: they complete with
  // operation_aborted.
  void cancel(error_code& ec);
  // Closes the connection. Operations in flight are cancelled, and the
  // descriptor is closed once they have completed.
  void close(error_code& ec);

  template <typename MutableBufferSequence, typename Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          if (ring_ == nullptr) {
            socket_.async_read_some(b, std::move(handler));
            return;
          }
          // The first piece with room, as Asio's socket reads into.
          boost::asio::mutable_buffer first;
          for (auto it = boost::asio::buffer_sequence_begin(b);
               it != boost::asio::buffer_sequence_end(b) && first.size() == 0; ++it) {
            first = *it;
          }
          if (!Ready(read_, handler, first.size())) return;
          read_.opcode = IORING_OP_RECV;
          read_.iov[0] = {first.data(), first.size()};
          read_.iov_count = 1;
          Launch(read_, std::move(handler));
        },
        token, buffers);
  }

  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (ring_ == nullptr) {
            socket_.async_write_some(b, std::move(handler));
            return;
          }
          int count = 0;
          size_t total = 0;
          for (auto it = boost::asio::buffer_sequence_begin(b);
               it != boost::asio::buffer_sequence_end(b) && count < RingOp::kMaxIov; ++it) {
            boost::asio::const_buffer piece = *it;
            if (piece.size() == 0) continue;
            write_.iov[count++] = {const_cast<void*>(piece.data()), piece.size()};
            total += piece.size();
          }
          if (!Ready(write_, handler, total)) return;
          write_.opcode = count == 1 ? IORING_OP_SEND : IORING_OP_SENDMSG;
          write_.iov_count = count;
          Launch(write_, std::move(handler));
        },
        token, buffers);
  }

  template <typename Token>
  auto async_connect(const tcp::endpoint& peer, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler, const tcp::endpoint& to) {
          if (ring_ == nullptr) {
            socket_.async_connect(to, std::move(handler));
            return;
          }
          error_code ec;
          close(ec);
          if (write_.in_flight || zombie_fd_ >= 0) ec = boost::asio::error::already_started;
          if (!ec) ec = OpenFor(to);
          if (ec) {
            boost::asio::post(get_executor(), boost::asio::append(std::move(handler), ec));
            return;
          }
          write_.opcode = IORING_OP_CONNECT;
          std::memcpy(&write_.addr, to.data(), to.size());
          write_.addrlen = static_cast<socklen_t>(to.size());
          auto slot = boost::asio::get_associated_cancellation_slot(handler);
          write_.handler.Store(
              [h = std::move(handler)](error_code e, size_t) mutable { std::move(h)(e); });
          Launch(write_, slot);
        },
        token, peer);
  }

 private:
  // Answers at once, as Asio does, an operation that cannot start: the
  // stream is closed, the slot is busy, or there is nothing to transfer.
  template <typename Handler>
  bool Ready(RingOp& op, Handler& handler, size_t bytes) {
    error_code ec;
    if (fd_ < 0) {
      ec = boost::asio::error::bad_descriptor;
    } else if (op.in_flight) {
      ec = boost::asio::error::already_started;
    } else if (bytes > 0) {
      return true;
    }
    boost::asio::post(get_executor(), boost::asio::append(std::move(handler), ec, size_t{0}));
    return false;
  }
  template <typename Handler>
  void Launch(RingOp& op, Handler&& handler) {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    op.handler.Store(std::forward<Handler>(handler));
    Launch(op, slot);
  }
  void Launch(RingOp& op, boost::asio::cancellation_slot slot);
  error_code OpenFor(const tcp::endpoint& to);
  void TakeDescriptor(int fd, error_code& ec);
  static void OnDone(void* self);

  WorkerSocket socket_;  // without a ring
  Ring* ring_;
  int fd_ = -1;         // with a ring
  int zombie_fd_ = -1;  // closed, its operations not yet over
  RingOp read_;
  RingOp write_;
};

}  // namespace cutover
