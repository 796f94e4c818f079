// Small value types shared by config, router, store and API: colors,
// endpoints and durations. Plain values; safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace cutover {

using Millis = std::chrono::milliseconds;

enum class Color : uint8_t { kBlue = 0, kGreen = 1 };

std::string_view ColorName(Color c);
std::optional<Color> ParseColor(std::string_view s);
inline Color Other(Color c) { return c == Color::kBlue ? Color::kGreen : Color::kBlue; }

// host:port, host may be a name, an IPv4 address or a bracketed IPv6 address.
struct HostPort {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
  bool operator==(const HostPort&) const = default;
};

// Parses "127.0.0.1:8080", "[::1]:80", "localhost:9000". The port is required.
Result<HostPort> ParseHostPort(std::string_view s);

// Parses a duration such as "500ms", "1s", "1.5s", "2m", "1h". A bare number is
// rejected: the unit is required so that a file reads unambiguously.
Result<Millis> ParseDuration(std::string_view s);

// Formats a duration the way ParseDuration reads it ("1500ms" -> "1.5s").
std::string FormatDuration(Millis d);

// The wall clock, in milliseconds since the Unix epoch.
int64_t NowUnixMs();

// "2026-11-26 14:05:00 UTC".
std::string FormatUtcTime(int64_t unix_ms);

// "'text'": how messages quote a value the user wrote.
std::string Quoted(std::string_view s);

// Parses a byte size such as "16KiB", "1MiB", "4096".
Result<uint64_t> ParseByteSize(std::string_view s);

}  // namespace cutover
