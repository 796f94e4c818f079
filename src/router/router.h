// Router: the data plane. N worker threads, each with its own io_context and
// its own SO_REUSEPORT listening sockets, proxy HTTP/1.1 traffic to the live
// color of each service according to the route table they were last given.
// The control thread creates the Router, publishes tables and reads figures;
// the router never calls back into the controller.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "config/config.h"
#include "router/route_table.h"

namespace cutover {

class Worker;

struct RouterOptions {
  std::vector<HostPort> listen;
  // The preview listeners route each service to its idle color; when
  // `preview_token` is set a request must carry it in
  // X-Cutover-Preview-Token.
  std::vector<HostPort> preview_listen;
  std::string preview_token;
  int workers = 1;
  TimeoutsConfig timeouts;
  LimitsConfig limits;
  AccessLogConfig access_log;
  uint32_t max_idle_per_target = 256;  // pooled upstream connections, per worker
  Millis upstream_idle{30'000};        // a pooled connection unused this long is closed
  // Client and upstream connections read and write through an io_uring per
  // worker when the kernel allows one; otherwise, or when false, through
  // epoll.
  bool io_uring = true;
};

// Requests the router answered itself, by reason; summed over workers.
struct RouterCounters {
  uint64_t bad_requests = 0;     // 400, 431, 501, 505
  uint64_t unmatched = 0;        // 404: no service claims the Host
  uint64_t header_timeouts = 0;  // 408 / cut off while sending the head
  uint64_t connections = 0;      // client connections accepted
  int64_t open_connections = 0;
  std::vector<int64_t> open_by_worker;     // open_connections of each worker
  std::vector<uint64_t> yields_by_worker;  // see Pacer
};

class Router {
 public:
  // Binds every listen address once per worker (SO_REUSEPORT) and opens the
  // access log. Nothing runs until Start().
  [[nodiscard]] static Result<std::unique_ptr<Router>> Create(const RouterOptions& options);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  size_t worker_count() const;
  // How the workers' connections read and write: "io_uring", "epoll", or
  // "io_uring and epoll" when the kernel gave some workers no ring.
  std::string_view io() const;
  // The listen addresses with the ports actually bound (port 0 resolved).
  const std::vector<HostPort>& bound_addresses() const { return bound_; }
  const std::vector<HostPort>& bound_preview_addresses() const { return bound_preview_; }

  // Starts the worker threads, each serving `first` until told otherwise.
  void Start(std::shared_ptr<const RouteTable> first);

  // Hands `table` to every worker. `done` runs on the last worker's thread
  // once every worker routes new requests by `table`. Any thread.
  void Publish(std::shared_ptr<const RouteTable> table, std::function<void()> done);

  // Stops accepting; requests in flight may finish until `grace` has passed,
  // then the rest are closed and the threads are joined. Idempotent.
  void Shutdown(Millis grace);

  RouterCounters counters() const;

 private:
  explicit Router(const RouterOptions& options);

  RouterOptions options_;
  std::vector<HostPort> bound_;
  std::vector<HostPort> bound_preview_;
  int access_log_fd_ = -1;
  std::vector<std::unique_ptr<Worker>> workers_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace cutover
