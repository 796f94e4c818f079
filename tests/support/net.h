// Small socket helpers for tests: free ports, waiting for a listener or a
// port file, and a blocking TCP connect with a deadline. Safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "support/wait.h"

namespace cutover::test {

// Owns a file descriptor; closes it on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// A port on 127.0.0.1 that nothing listens on right now. Prefer `--port 0`
// with a port file where the server supports it: another process may take
// this port before the caller binds it.
Result<uint16_t> FreePort();
// `n` such ports, all different (each is held while the next is chosen).
Result<std::vector<uint16_t>> FreePorts(size_t n);

// Opens a non-blocking TCP connection to host:port (a name or an address),
// trying every resolved address until `deadline`. TCP_NODELAY is set.
Result<UniqueFd> ConnectTcp(std::string_view host, uint16_t port, Deadline deadline);

// Polls until a TCP connect to host:port succeeds or `deadline` passes.
bool WaitForPort(std::string_view host, uint16_t port, Deadline deadline);

// Polls until `path` exists and is not empty; returns its contents with
// trailing whitespace removed. Writers should create it atomically (rename).
std::optional<std::string> WaitForFile(const std::string& path, Deadline deadline);

// WaitForFile, then parses the contents as a port number.
std::optional<uint16_t> WaitForPortFile(const std::string& path, Deadline deadline);

}  // namespace cutover::test
