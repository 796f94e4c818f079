// Daemon log lines on stderr: "2026-11-26T08:25:49.123Z info: message".
// Thread-safe (one write(2) per line).
#pragma once

#include <fmt/format.h>

#include <string_view>

namespace cutover {

enum class LogLevel { kInfo, kWarn, kError };

void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void LogInfo(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void LogWarn(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void LogError(fmt::format_string<Args...> f, Args&&... args) {
  LogLine(LogLevel::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace cutover
