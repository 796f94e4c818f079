// CheckIoUring: whether this kernel lets the process run the daemon's event
// loops, which are built on io_uring (Boost.Asio's io_uring backend). Safe
// from any thread; creates and closes one small ring.
#pragma once

#include "common/error.h"

namespace cutover {

// OK when io_uring can be set up and supports every operation the event
// loops use. Otherwise kUnavailable with the reason (refused by a seccomp
// profile or the kernel.io_uring_disabled setting, or a kernel too old) and
// what to do about it.
Status CheckIoUring();

}  // namespace cutover
