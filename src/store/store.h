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

// What runs on one color of a service: the release label and how it was
// started, so that a restarted daemon can adopt, restart or stop it.
struct SlotRecord {
  std::string release;    // empty: nothing deployed on this color
  std::string state;      // "starting", "running", "stopped"
  std::string spec_json;  // the driver's description of the release (opaque to the store)
  int64_t updated_unix_ms = 0;
};

// One step of a deployment, as journaled.
struct StepRecord {
  std::string name;  // "prepare", "start", "healthy", "check", "approve", "switch", "settle", ...
  std::string outcome;  // "running", "ok", "failed", "skipped", "waiting"
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;  // 0 while running
  std::string message;
};

// One deployment of a release to a color.
struct DeploymentRecord {
  int64_t id = 0;  // assigned by the store
  std::string service;
  std::string release;
  Color color = Color::kBlue;  // the color it deploys to
  std::string actor;
  int64_t started_unix_ms = 0;
  int64_t finished_unix_ms = 0;  // 0 while running
  // "running", "succeeded", "failed", "aborted", "interrupted", "rolled_back"
  std::string outcome = "running";
  std::string message;
  std::string spec_json;  // the driver's description of the release
  std::vector<StepRecord> steps;

  // "deploy" or "rollback": a deployment's steps start with "prepare", a
  // rollback's never include it.
  std::string_view Kind() const {
    return !steps.empty() && steps.front().name == "prepare" ? "deploy" : "rollback";
  }
  // How long the switch took (its step, when it switched); -1 when it did not.
  int64_t SwitchMs() const {
    for (const StepRecord& s : steps) {
      if (s.name == "switch" && s.outcome == "ok") return s.finished_unix_ms - s.started_unix_ms;
    }
    return -1;
  }
  // The first step that failed, was aborted or was interrupted; "" when
  // none did.
  std::string_view FailedStep() const {
    for (const StepRecord& s : steps) {
      if (s.outcome == "failed" || s.outcome == "aborted" || s.outcome == "interrupted")
        return s.name;
    }
    return {};
  }
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
  // The slot of `color` of `service`; an empty SlotRecord when none is stored.
  [[nodiscard]] virtual Result<SlotRecord> Slot(std::string_view service, Color color) = 0;
  // Replaces that slot, durably (its updated time is assigned when 0).
  [[nodiscard]] virtual Status SetSlot(std::string_view service, Color color,
                                       const SlotRecord& slot) = 0;

  // Stores a new deployment with its steps; returns its id.
  [[nodiscard]] virtual Result<int64_t> CreateDeployment(const DeploymentRecord& d) = 0;
  // Replaces the stored deployment `d.id` (outcome, message, finish time and
  // the whole list of steps), durably.
  [[nodiscard]] virtual Status UpdateDeployment(const DeploymentRecord& d) = 0;
  // One deployment by id; kNotFound when there is none.
  [[nodiscard]] virtual Result<DeploymentRecord> Deployment(int64_t id) = 0;
  // The newest `limit` deployments of `service`, newest first, with their steps.
  [[nodiscard]] virtual Result<std::vector<DeploymentRecord>> Deployments(std::string_view service,
                                                                          int limit) = 0;
  // Every deployment whose outcome is still "running", oldest first (after a
  // crash: the ones that were interrupted).
  [[nodiscard]] virtual Result<std::vector<DeploymentRecord>> UnfinishedDeployments() = 0;
};

// Opens (creating when missing, with its parent folder) the SQLite store at
// `path`: WAL journal, synchronous writes. Fails when the file is not a cutover
// store or has a newer schema than this binary knows.
[[nodiscard]] Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace cutover
