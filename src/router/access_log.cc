#include "router/access_log.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace cutover {

namespace {
constexpr size_t kFlushBytes = 64 * 1024;
}

void AppendJsonEscaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
}

void AccessLog::Append(const AccessRecord& r) {
  if (fd_ < 0) return;
  auto now = std::chrono::system_clock::now();
  int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  int64_t sec = ms / 1000;
  if (sec != cached_second_) {
    cached_second_ = sec;
    time_t t = static_cast<time_t>(sec);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(time_prefix_, sizeof(time_prefix_), "%Y-%m-%dT%H:%M:%S.", &tm);
  }
  buffer_ += "{\"time\":\"";
  buffer_ += time_prefix_;
  fmt::format_to(std::back_inserter(buffer_), "{:03d}Z\",\"service\":\"", ms % 1000);
  AppendJsonEscaped(buffer_, r.service);
  buffer_ += "\",\"color\":\"";
  buffer_ += r.color;
  buffer_ += "\",\"target\":\"";
  buffer_ += r.target;
  buffer_ += "\",\"method\":\"";
  AppendJsonEscaped(buffer_, r.method);
  buffer_ += "\",\"path\":\"";
  AppendJsonEscaped(buffer_, r.path);
  fmt::format_to(std::back_inserter(buffer_),
                 "\",\"status\":{},\"duration_ms\":{:.3f},\"bytes_in\":{},\"bytes_out\":{},"
                 "\"request_id\":\"",
                 r.status, r.duration_ms, r.bytes_in, r.bytes_out);
  buffer_ += r.request_id;
  buffer_ += "\"}\n";
  if (buffer_.size() >= kFlushBytes) Flush();
}

void AccessLog::Flush() {
  size_t off = 0;
  while (fd_ >= 0 && off < buffer_.size()) {
    ssize_t n = ::write(fd_, buffer_.data() + off, buffer_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // a full disk or closed pipe must not stop the proxy; lines are dropped
    }
    off += static_cast<size_t>(n);
  }
  buffer_.clear();
}

}  // namespace cutover
