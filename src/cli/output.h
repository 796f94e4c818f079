// What every `cutover` subcommand shares in how it ends and prints: the exit
// codes, the one "cutover: <reason>" line of a failure, aligned tables.
// Single-threaded, like the CLI.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cutover {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // refused, or the operation failed
inline constexpr int kExitUsage = 2;        // bad flags, config file or folder
inline constexpr int kExitUnreachable = 3;  // no answer from the daemon or the database

// Prints "cutover: <reason>" on stderr; returns `exit_code`.
int Fail(int exit_code, std::string_view reason);

// Prints rows as aligned columns, two spaces apart.
void PrintTable(const std::vector<std::vector<std::string>>& rows);

}  // namespace cutover
