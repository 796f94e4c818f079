// Pool<Conn>: the few open connections of one store, shared by the HTTP
// server's threads. A thread leases one, uses it alone, and gives it back;
// a connection found broken is discarded and a new one opened next time.
// It holds no shopper state, only open connections.
//
// Conn is a move-only owner (a unique_ptr with the library's close call).
// Thread-safe; a Lease belongs to the thread that took it and must not
// outlive its Pool.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

#include "result.h"

namespace shop {

template <typename Conn>
class Pool {
 public:
  using Opener = std::function<Result<Conn>()>;

  class Lease {
   public:
    Lease(Pool* pool, Conn conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          conn_(std::move(other.conn_)),
          discard_(other.discard_) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr && !discard_) pool_->Return(std::move(conn_));
    }

    Conn& get() { return conn_; }

    // Closes the connection instead of pooling it: after an error its state
    // (an open transaction, a half-read reply) is unknown.
    void Discard() { discard_ = true; }

   private:
    Pool* pool_;
    Conn conn_;
    bool discard_ = false;
  };

  explicit Pool(Opener open, size_t max_idle = 4) : open_(std::move(open)), max_idle_(max_idle) {}

  // An idle connection, or a new one.
  Result<Lease> Acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        Conn conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
    }
    Result<Conn> conn = open_();
    if (!conn) return std::unexpected(conn.error());
    return Lease(this, std::move(*conn));
  }

 private:
  void Return(Conn conn) {
    std::lock_guard lock(mu_);
    // Past max_idle the connection is closed when `conn` goes out of scope.
    if (idle_.size() < max_idle_) idle_.push_back(std::move(conn));
  }

  const Opener open_;
  const size_t max_idle_;
  std::mutex mu_;
  std::vector<Conn> idle_;  // guarded by mu_
};

}  // namespace shop
