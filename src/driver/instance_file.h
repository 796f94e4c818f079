// The instance file (STATE_DIR/instances.json): what the process driver
// supervises, rewritten atomically on every start, stop and exit, so that a
// daemon started after this one died can find and adopt the instances that
// outlived it. The format is described in src/driver/README.md. Plain
// functions on values; the ProcessSupervisor calls them on the control thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "driver/process_supervisor.h"

namespace cutover {

struct InstanceRecord {
  InstanceSpec spec;
  int pid = 0;              // 0: not running (waiting to be restarted)
  int pgid = 0;             // its process group, the pid of the shell that was started
  uint64_t start_time = 0;  // from /proc/PID/stat, to tell a recycled pid apart
  int restarts = 0;
  std::string last_exit;
};

struct InstanceFile {
  std::string boot_id;  // a pid of another boot names nothing
  std::vector<InstanceRecord> instances;
};

std::string SerializeInstanceFile(const InstanceFile& file);

// `path` names the file in error messages (kInvalidArgument).
Result<InstanceFile> ParseInstanceFile(std::string_view text, std::string_view path);

// The whole file; nullopt when it does not exist.
Result<std::optional<std::string>> ReadFileIfExists(const std::string& path);

// Writes PATH.tmp, flushes it to disk and renames it over PATH: a reader (or
// a daemon started after a crash) sees the old content or the new, never half.
// Creates the directory if needed.
Status WriteFileAtomically(const std::string& path, std::string_view content);

}  // namespace cutover
