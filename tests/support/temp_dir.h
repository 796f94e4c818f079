// TempDir: a fresh directory under $TMPDIR (or /tmp) that is removed with
// everything in it when the object is destroyed. Owned by one test; not
// shared between threads while it is being moved or destroyed.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"

namespace cutover::test {

class TempDir {
 public:
  // Creates "<tmp>/<prefix>-XXXXXX" with mkdtemp.
  static Result<TempDir> Create(std::string_view prefix = "cutover-test");

  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::filesystem::path& path() const { return path_; }
  // path() / name, as a string, for argv and config files.
  std::string File(std::string_view name) const;

 private:
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  void Remove();

  std::filesystem::path path_;  // empty once moved from
};

// Writes `contents` to `path`, replacing the file.
Status WriteFile(const std::filesystem::path& path, std::string_view contents);
// Reads a whole file.
Result<std::string> ReadFile(const std::filesystem::path& path);

}  // namespace cutover::test
