// `cutover migrate status|plan|lint|expand|backfill|contract`: the migration
// runner from the command line, against a service's database (from the
// config) or any database and folder. Talks to the database directly, not
// to the daemon. Single-threaded.
#pragma once

#include <string>

namespace cutover {

struct MigrateOptions {
  std::string action;  // status, plan, lint, expand, backfill, contract
  std::string service;
  std::string config;  // with --service; default $CUTOVER_CONFIG, else ./cutover.yaml
  std::string database;
  std::string dir;
  std::string release;  // recorded with the files it runs
  std::string lock_wait;
  std::string lock_timeout;
  bool json = false;
};

// Returns the exit code: 0 done, 1 lint errors or a failed file, 2 bad
// flags, config or folder, 3 the database cannot be reached.
int RunMigrate(const MigrateOptions& options);

}  // namespace cutover
