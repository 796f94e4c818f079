// `cutover serve`: runs the daemon in the calling thread until SIGINT or
// SIGTERM. The one place that names every concrete part and wires them.
#pragma once

#include <string>

namespace cutover {

struct ServeOptions {
  std::string config_path;
  int workers = 0;  // 0: from the config, else one per core
  // Leave the process driver's instances running when the daemon stops, for
  // a restart that adopts them (an upgrade of cutover itself).
  bool keep_instances = false;
};

// Returns the process exit code: 0 after a clean stop, 1 when the daemon
// could not start (store, sockets), 2 for a bad configuration.
int RunServe(const ServeOptions& options);

}  // namespace cutover
