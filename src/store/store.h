// Store: cutover's durable state. The control thread owns the one Store of a
// daemon; implementations are not thread-safe. A state change returns only
// once it is durable (the daemon may be killed right after).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"

namespace cutover {

// One line of the audit trail: who did what to which service, and how it ended.
struct AuditEvent {
  int64_t id = 0;            // assigned by the store
  int64_t time_unix_ms = 0;  // wall clock
  std::string service;
  std::string action;   // "switch", ...
  std::string actor;    // "cli", "api", "daemon", ...
  std::string detail;   // human text, e.g. "blue -> green (forced)"
  std::string outcome;  // "ok" or an error message
};

class Store {
 public:
  virtual ~Store() = default;

  // The stored live color of `service`, or nullopt when none was ever stored.
  [[nodiscard]] virtual Result<std::optional<Color>> LiveColor(std::string_view service) = 0;

  // Makes `color` the stored live color of `service`, durably.
  [[nodiscard]] virtual Status SetLiveColor(std::string_view service, Color color) = 0;

  // Same, and appends `audit` in the same transaction: one durable write
  // for both, so that a switch costs one sync, not two.
  [[nodiscard]] virtual Status SetLiveColor(std::string_view service, Color color,
                                            const AuditEvent& audit) = 0;

  // Appends one audit event (its id and, when 0, its time are assigned).
  [[nodiscard]] virtual Status AppendAudit(const AuditEvent& event) = 0;

  // The newest `limit` audit events of `service` (all services when empty),
  // newest first.
  [[nodiscard]] virtual Result<std::vector<AuditEvent>> RecentAudit(std::string_view service,
                                                                    int limit) = 0;
};

// Opens (creating when missing, with its parent folder) the SQLite store at
// `path`: WAL journal, synchronous writes. Fails when the file is not a cutover
// store or has a newer schema than this binary knows.
[[nodiscard]] Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace cutover
