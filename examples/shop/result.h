// Result and Status: the shop's one error channel. A function that can fail
// returns Result<T> (a value or a message saying what failed, with context)
// or Status. Plain value types; any thread.
//
// The shop stands on its own, like any application deployed behind cutover,
// so it keeps this small type rather than borrowing cutover's.
#pragma once

#include <expected>
#include <string>

namespace shop {

template <typename T>
using Result = std::expected<T, std::string>;
using Status = std::expected<void, std::string>;

inline std::unexpected<std::string> Fail(std::string message) {
  return std::unexpected(std::move(message));
}

}  // namespace shop
