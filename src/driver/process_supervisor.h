// ProcessSupervisor: the process driver. Runs each instance of a release as
// `/bin/sh -c COMMAND` in a session of its own, with its output appended to a
// log file; restarts an instance that exits on its own, with backoff; stops a
// color by signalling whole process groups (SIGTERM, then SIGKILL); and keeps
// STATE_DIR/instances.json up to date so that a daemon started after this one
// died adopts the instances that outlived it.
//
// Owned by the daemon's main() and used by the controller. Control thread
// only: every method must be called on the control io_context, which also
// runs the exit watches and restart timers. Destroying the supervisor stops
// watching but leaves the instances running (they outlive the daemon by
// design); it must outlive any Stop or StopAll in progress.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "config/config.h"

namespace cutover {

// One instance of a release on a color: what to run and where.
struct InstanceSpec {
  std::string service;
  Color color = Color::kBlue;
  std::string release;
  int index = 0;                // 0..instances-1
  std::string command;          // run by /bin/sh -c; "{port}" already replaced
  uint16_t port = 0;            // also in $PORT
  std::string workdir;          // absolute
  EnvList env;                  // added to the daemon's environment; wins over it
  std::string log_path;         // absolute; stdout and stderr are appended here
  Millis stop_timeout{10'000};  // SIGTERM to SIGKILL
};

struct InstanceStatus {
  InstanceSpec spec;
  int pid = 0;  // 0 when not running
  bool running = false;
  int restarts = 0;       // times it was started again after it exited
  std::string last_exit;  // "exited with status 3", "killed by signal 9"; empty if never
  bool adopted = false;   // taken over from a previous daemon, not started by this one
};

// Something that happened to an instance without being asked for: it exited
// and will be restarted, could not be restarted, or had to be killed.
struct InstanceEvent {
  std::string service;
  Color color = Color::kBlue;
  std::string release;
  int index = 0;
  std::string message;  // "instance 1 exited with status 3; restarting in 400ms"
};

class ProcessSupervisor {
 public:
  // Borrows `control`. The instance file is STATE_DIR/instances.json;
  // instances listen on ports of `ports`.
  ProcessSupervisor(boost::asio::io_context& control, std::string state_dir, PortRange ports);
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  // Replaces the receiver of events (also written to the daemon's log and to
  // the instance's log file). Called on the control thread.
  void OnEvent(std::function<void(const InstanceEvent&)> callback);

  // A port of the range that no instance known here uses and that can be
  // bound on 127.0.0.1 right now. Successive calls go round the range rather
  // than reuse a port just freed. kUnavailable when none is left.
  [[nodiscard]] Result<uint16_t> AllocatePort();

  // Starts one instance now. Its environment is the daemon's plus PWD (the
  // workdir), PORT, CUTOVER_SERVICE, CUTOVER_COLOR ("blue"/"green") and
  // CUTOVER_RELEASE, then spec.env. stdin is /dev/null; stdout and stderr are appended to
  // spec.log_path (its directory is created), after a line
  // "--- cutover: starting instance N of SERVICE release R on port P (pid X) at TIME ---".
  // Fails, with what and where, when the workdir is missing or the log cannot
  // be written (nothing is left running then), and with kConflict when that
  // instance (service, color, index) is already supervised.
  [[nodiscard]] Status Start(const InstanceSpec& spec);

  // Stops every instance of (service, color): SIGTERM to each process group,
  // SIGKILL to what is left of it after its stop_timeout. Completes once all
  // of them are gone; none is restarted meanwhile. They are then forgotten.
  boost::asio::awaitable<void> Stop(std::string service, Color color);

  // Stops every instance (daemon shutdown), all colors at once.
  boost::asio::awaitable<void> StopAll();

  // The instances of (service, color), by index.
  std::vector<InstanceStatus> Instances(std::string_view service, Color color) const;

  // Reads the instance file a previous daemon left. An instance whose process
  // is still the one recorded (same pid, same start time, same boot) is
  // adopted: watched, and restarted like any other when it exits. Returns
  // every recorded instance, adopted (running) or not; those not adopted are
  // forgotten. No file: nothing found. A file that cannot be read or parsed:
  // an error naming it.
  [[nodiscard]] Result<std::vector<InstanceStatus>> Adopt();

  // The last `lines` lines of a log file, joined by '\n' (no final newline);
  // reads only the end of a big file. Empty when the file cannot be read.
  static std::string TailLog(const std::string& path, int lines);

 private:
  struct Instance;
  using InstancePtr = std::shared_ptr<Instance>;
  using Key = std::pair<std::string, Color>;

  [[nodiscard]] Status Spawn(Instance& instance);
  void Watch(const InstancePtr& instance);
  void CheckExit(const InstancePtr& instance);
  void OnExit(const InstancePtr& instance, std::string how);
  void ScheduleRestart(const InstancePtr& instance, const std::string& what, std::string_view verb);
  void Restart(const InstancePtr& instance);
  boost::asio::awaitable<void> StopInstances(std::vector<InstancePtr> victims);
  void Forget(const InstancePtr& instance);
  void Emit(const Instance& instance, const std::string& message);
  void SaveState();
  std::string StatePath() const;

  boost::asio::io_context& control_;
  std::string state_dir_;
  PortRange ports_;
  std::string boot_id_;
  uint32_t next_port_offset_ = 0;
  std::function<void(const InstanceEvent&)> on_event_;
  std::map<Key, std::vector<InstancePtr>> instances_;
};

}  // namespace cutover
