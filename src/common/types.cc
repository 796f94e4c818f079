#include "common/types.h"

#include <charconv>
#include <cmath>
#include <ctime>

namespace cutover {

// Built by appending, which also avoids GCC 12's false -Wrestrict on
// `"literal" + std::string&&` at -O3.
std::string Quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  out += s;
  out += '\'';
  return out;
}

std::string_view ColorName(Color c) { return c == Color::kBlue ? "blue" : "green"; }

std::optional<Color> ParseColor(std::string_view s) {
  if (s == "blue") return Color::kBlue;
  if (s == "green") return Color::kGreen;
  return std::nullopt;
}

std::string HostPort::ToString() const {
  std::string out;
  if (host.find(':') != std::string::npos) {
    out = "[" + host + "]";
  } else {
    out = host;
  }
  out += ":";
  out += std::to_string(port);
  return out;
}

Result<HostPort> ParseHostPort(std::string_view s) {
  HostPort hp;
  std::string_view port_part;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return MakeError(ErrorCode::kInvalidArgument,
                       Quoted(s) + " is not host:port ([v6]:port for IPv6)");
    }
    hp.host = std::string(s.substr(1, close - 1));
    port_part = s.substr(close + 2);
  } else {
    size_t colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) {
      return MakeError(ErrorCode::kInvalidArgument,
                       Quoted(s) + " is not host:port (the port is required)");
    }
    hp.host = std::string(s.substr(0, colon));
    port_part = s.substr(colon + 1);
  }
  if (hp.host.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, Quoted(s) + " has no host");
  }
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), port);
  if (ec != std::errc() || ptr != port_part.data() + port_part.size() || port > 65535 ||
      port_part.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, Quoted(s) + " has an invalid port (0-65535)");
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

Result<Millis> ParseDuration(std::string_view s) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     Quoted(s) + " is not a duration (e.g. 500ms, 1s, 2m, 1h)");
  };
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0 || i == s.size()) return bad();
  double value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, value);
  if (ec != std::errc() || ptr != s.data() + i || value < 0) return bad();
  std::string_view unit = s.substr(i);
  double ms = 0;
  if (unit == "ms") {
    ms = value;
  } else if (unit == "s") {
    ms = value * 1000;
  } else if (unit == "m") {
    ms = value * 60'000;
  } else if (unit == "h") {
    ms = value * 3'600'000;
  } else {
    return bad();
  }
  if (ms > 1e12) return bad();
  return Millis(static_cast<int64_t>(std::llround(ms)));
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms % 3'600'000 == 0 && ms != 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms != 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

Result<uint64_t> ParseByteSize(std::string_view s) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument,
                     Quoted(s) + " is not a size (e.g. 4096, 16KiB, 1MiB)");
  };
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0) return bad();
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + i, value);
  if (ec != std::errc()) return bad();
  std::string_view unit = s.substr(i);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "KiB") {
    mult = 1024;
  } else if (unit == "MiB") {
    mult = 1024 * 1024;
  } else if (unit == "GiB") {
    mult = 1024ull * 1024 * 1024;
  } else {
    return bad();
  }
  return value * mult;
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatUtcTime(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return out;
}

}  // namespace cutover
