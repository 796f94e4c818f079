#include "common/io_uring_support.h"

#include <liburing.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace cutover {

namespace {

// The operations Asio's io_uring backend submits, with their names for the
// message.
constexpr std::array<std::pair<int, const char*>, 13> kOperations{{
    {IORING_OP_NOP, "NOP"},
    {IORING_OP_READV, "READV"},
    {IORING_OP_WRITEV, "WRITEV"},
    {IORING_OP_READ_FIXED, "READ_FIXED"},
    {IORING_OP_WRITE_FIXED, "WRITE_FIXED"},
    {IORING_OP_POLL_ADD, "POLL_ADD"},
    {IORING_OP_SENDMSG, "SENDMSG"},
    {IORING_OP_RECVMSG, "RECVMSG"},
    {IORING_OP_TIMEOUT, "TIMEOUT"},
    {IORING_OP_TIMEOUT_REMOVE, "TIMEOUT_REMOVE"},
    {IORING_OP_ACCEPT, "ACCEPT"},
    {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
    {IORING_OP_CONNECT, "CONNECT"},
}};

// The entries of each event loop's ring (Asio's io_uring_service asks for
// 16384, a private constant of it).
constexpr unsigned kLoopRingEntries = 16384;

constexpr const char* kKernelHint = "cutover serve needs Linux 5.10 or later";

}  // namespace

Status CheckIoUring() {
  // As large as the ring of each event loop: where the kernel counts ring
  // memory against the locked-memory limit (before Linux 5.12), a smaller
  // one could pass where theirs will not.
  io_uring ring{};
  if (const int r = ::io_uring_queue_init(kLoopRingEntries, &ring, 0); r < 0) {
    std::string message = std::string("cutover serve runs its event loops on io_uring, and ") +
                          "io_uring_setup failed: " + std::strerror(-r) + ". ";
    if (r == -EPERM) {
      message +=
          "Allow it: set the sysctl kernel.io_uring_disabled to 0, or in a container allow the "
          "io_uring_setup, io_uring_enter and io_uring_register system calls in its seccomp "
          "profile.";
    } else if (r == -ENOSYS) {
      message += std::string(kKernelHint) + ", built with io_uring.";
    } else {
      message += "Check the limits on locked memory (ulimit -l) and open files.";
    }
    return MakeError(ErrorCode::kUnavailable, std::move(message));
  }
  io_uring_probe* probe = ::io_uring_get_probe_ring(&ring);
  std::string missing;
  for (const auto& [op, name] : kOperations) {
    if (probe != nullptr && ::io_uring_opcode_supported(probe, op)) continue;
    if (!missing.empty()) missing += ", ";
    missing += name;
  }
  if (probe != nullptr) ::io_uring_free_probe(probe);
  ::io_uring_queue_exit(&ring);
  if (!missing.empty()) {
    return MakeError(ErrorCode::kUnavailable,
                     std::string("this kernel's io_uring lacks operations cutover's event loops "
                                 "use (") +
                         missing + "); " + kKernelHint);
  }
  return {};
}

}  // namespace cutover
