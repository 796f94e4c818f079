// Error: the one error channel of cutover. A function that can fail returns
// Result<T> (std::expected<T, Error>) or Status. Errors carry a small closed
// set of codes and a message with context ("config.yaml:12:5: ...").
// Plain value types; safe to use from any thread.
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace cutover {

enum class ErrorCode {
  kInvalidArgument,  // bad input from a user: config, request body, flag
  kNotFound,         // the named thing does not exist
  kConflict,         // refused in the current state (e.g. no healthy target)
  kUnavailable,      // a peer or resource cannot be reached now
  kTimeout,          // a deadline passed
  kIo,               // a file or socket operation failed
  kInternal,         // an unexpected failure inside cutover or a library
};

// Stable lower-case name of a code, used in API error bodies ("not_found").
std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  // Returns a copy whose message is "context: message".
  Error Wrap(std::string_view context) const;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

}  // namespace cutover
