// AccessLog: one JSON line per proxied request. Each worker owns one: lines
// are appended to a memory buffer on the request path and written out in
// batches (on the worker's tick or when the buffer is full), never one write
// per request. Worker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace cutover {

struct AccessRecord {
  std::string_view service;  // empty when no service matched
  std::string_view color;
  std::string_view target;
  std::string_view method;
  std::string_view path;
  std::string_view request_id;
  int status = 0;
  double duration_ms = 0;
  uint64_t bytes_in = 0;   // request body bytes
  uint64_t bytes_out = 0;  // response bytes sent to the client
};

class AccessLog {
 public:
  // `fd` < 0 disables the log. The fd is borrowed.
  explicit AccessLog(int fd) : fd_(fd) {}
  ~AccessLog() { Flush(); }

  bool enabled() const { return fd_ >= 0; }
  void Append(const AccessRecord& r);
  void Flush();

 private:
  int fd_;
  std::string buffer_;
  int64_t cached_second_ = -1;
  char time_prefix_[32] = {};  // "2026-11-26T08:25:49."
};

// Appends `s` to `out` as the inside of a JSON string.
void AppendJsonEscaped(std::string& out, std::string_view s);

}  // namespace cutover
