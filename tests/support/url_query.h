// Query-string and cookie parsing for cutover-testapp. Pure functions; safe
// from any thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace cutover::test {

// "a%20b+c" -> "a b c". Invalid escapes are kept as written.
std::string PercentDecode(std::string_view s);

// The path part of a request target ("/slow?ms=5" -> "/slow").
std::string_view TargetPath(std::string_view target);

// Decoded key/value pairs of the target's query; a later key wins.
std::map<std::string, std::string> ParseQuery(std::string_view target);

// The value of cookie `name` in a Cookie header ("a=1; sid=xyz").
std::optional<std::string> CookieValue(std::string_view cookie_header, std::string_view name);

}  // namespace cutover::test
