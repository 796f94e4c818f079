// LoadGenerator: keeps N keep-alive connections busy with GET requests and
// records what every response said, so tests can assert that a switch, a
// reload or a handover lost nothing and that traffic moved to the new color.
// Start/Stop/Snapshot may be called from any thread; workers run on their own
// threads until Stop() or destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/raw_http.h"
#include "support/wait.h"

namespace cutover::test {

struct LoadOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string host_header = "localhost";
  std::string target = "/";
  HeaderList headers;    // added to every request
  int connections = 64;  // one thread per connection
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
  // Pause between two requests of one connection (0: back to back).
  std::chrono::milliseconds pause{0};
  // Pause after a failed connect before the next attempt.
  std::chrono::milliseconds reconnect_backoff{10};
  // Keep one LoadSample per request (for "nothing after T went to blue").
  bool keep_samples = false;
};

struct LoadSample {
  Clock::time_point sent;
  Clock::time_point done;
  int status = 0;    // 0 when the request failed without a response
  std::string body;  // the response body (the color name for the test backend)
};

struct LoadSummary {
  uint64_t total = 0;  // requests with an outcome: responses + errors
  uint64_t responses = 0;
  std::map<std::string, uint64_t> by_body;  // over every complete response
  std::map<int, uint64_t> by_status;
  uint64_t non_2xx = 0;
  // Requests without a complete response: connect failures, resets,
  // timeouts, connections closed mid-response or before any response.
  uint64_t errors = 0;
  uint64_t connect_errors = 0;  // of errors
  // Of errors: a reused keep-alive connection closed before any byte of the
  // response came back (the race every HTTP/1.1 client can meet when a
  // server closes an idle connection; browsers retry these).
  uint64_t closed_idle = 0;
  uint64_t connections_opened = 0;
  std::vector<std::string> first_errors;  // up to 10, in order of occurrence
  std::vector<LoadSample> samples;        // sorted by send time; keep_samples only

  std::string ToString() const;
};

class LoadGenerator {
 public:
  // Starts options.connections workers at once.
  static std::unique_ptr<LoadGenerator> Start(LoadOptions options);
  ~LoadGenerator();  // Stop()s
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Requests with an outcome so far.
  uint64_t Completed() const { return completed_.load(std::memory_order_relaxed); }
  // Waits until at least `n` requests in total have an outcome.
  bool WaitForCompleted(uint64_t n, Deadline deadline) const;
  // Current counts; the generator keeps running.
  LoadSummary Snapshot() const;
  // Lets every request in flight finish, joins the workers, returns the
  // final counts. Later calls return the same counts.
  LoadSummary Stop();

 private:
  struct Worker {
    mutable std::mutex mu;
    LoadSummary stats;  // first_errors unused here; see errors_
    std::thread thread;
  };

  explicit LoadGenerator(LoadOptions options);
  void Run(Worker& worker);
  void RecordError(Worker& worker, std::string text, bool connect, bool closed_idle,
                   Clock::time_point sent);

  const LoadOptions options_;
  const std::string request_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> completed_{0};
  mutable std::mutex errors_mu_;
  std::vector<std::string> first_errors_;
  std::mutex stop_mu_;
  bool stopped_ = false;
};

}  // namespace cutover::test
