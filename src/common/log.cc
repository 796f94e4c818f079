#include "common/log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <string>

namespace cutover {

void LogLine(LogLevel level, std::string_view message) {
  auto now = std::chrono::system_clock::now();
  int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
  std::string_view name = level == LogLevel::kInfo   ? "info"
                          : level == LogLevel::kWarn ? "warn"
                                                     : "error";
  std::string line = fmt::format("{}.{:03d}Z {}: {}\n", stamp, ms % 1000, name, message);
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace cutover
