// `cutover serve`: runs the daemon in the calling thread until SIGINT or
// SIGTERM. The one place that names every concrete part and wires them.
#pragma once

#include <string>

namespace cutover {

struct ServeOptions {
  std::string config_path;
  int workers = 0;  // 0: from the config, else one per core
};

// Returns the process exit code: 0 after a clean stop, 1 when the daemon
// could not start (store, sockets), 2 for a bad configuration.
int RunServe(const ServeOptions& options);

}  // namespace cutover
