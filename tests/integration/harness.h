// Integration-test harness: starts real cutover daemons and real backends
// (cutover-testapp) on 127.0.0.1 in a temporary folder, and talks to them the
// way a user does (HTTP, the control API, the CLI). One owner thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/client.h"
#include "common/error.h"
#include "support/child_process.h"
#include "support/metrics.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"

namespace cutover::test {

// A cutover-testapp process answering with its name.
class Backend {
 public:
  // Starts `cutover-testapp --name NAME --port 0` plus `extra_args` and waits
  // until it listens.
  static Result<std::unique_ptr<Backend>> Start(const TempDir& dir, const std::string& name,
                                                std::vector<std::string> extra_args = {});
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ChildProcess& process() { return process_; }
  // Requests the app received (health checks excluded), from its /__stats.
  Result<uint64_t> RequestsSeen() const;

 private:
  Backend(ChildProcess p, uint16_t port) : process_(std::move(p)), port_(port) {}
  ChildProcess process_;
  uint16_t port_;
};

// Output of one CLI run.
struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr together
};

// A `cutover serve` process with its config, control socket and store in `dir`.
class Daemon {
 public:
  // Writes `config_yaml` to DIR/cutover.yaml (the text may use "{port}", which
  // is replaced by a free port for the listener) and starts the daemon with
  // `--workers workers`; waits until the control API answers. With
  // CUTOVER_TEST_IO set, a config that names no "io" gets "io: VALUE".
  static Result<std::unique_ptr<Daemon>> Start(const TempDir& dir, const std::string& config_yaml,
                                               int workers = 2);
  ~Daemon();

  uint16_t port() const { return port_; }
  // The preview listener's port ("{preview_port}" in the config text).
  uint16_t preview_port() const { return preview_port_; }
  const std::string& control() const { return control_; }
  const std::string& config_path() const { return config_path_; }
  ChildProcess& process() { return *process_; }

  // One call to the control API.
  Result<ApiResponse> Api(std::string_view method, std::string_view path,
                          std::string_view body = {}) const;
  // GET `path` from the control API as JSON; null unless it answered 200.
  nlohmann::json GetJson(std::string_view path) const;
  // Runs `cutover ARGS...` with CUTOVER_CONTROL set to this daemon; one that
  // runs over 60 s is killed.
  CliResult Cli(const std::vector<std::string>& args) const;
  // Switches `service` to `color` through the API; fails unless 200.
  Status Switch(const std::string& service, const std::string& color, bool force = false) const;
  // Waits until the status of every target of `color` has healthy == want.
  bool WaitHealth(const std::string& service, const std::string& color, bool want,
                  int timeout_ms = 10'000) const;

  // kill -9, then start again on the same config, port and store.
  Status KillAndRestart();
  // SIGTERM and wait for the exit code.
  std::optional<int> Stop(int timeout_ms = 15'000);

 private:
  Daemon() = default;
  Status Launch();

  const TempDir* dir_ = nullptr;
  std::string config_path_;
  std::string control_;
  std::string log_path_;
  uint16_t port_ = 0;
  uint16_t preview_port_ = 0;
  int workers_ = 2;
  std::unique_ptr<ChildProcess> process_;
};

// A config serving the service "web" on Host: localhost from `blue` and
// `green`, with fast health checks; `top_extra` is added at the top level
// (e.g. "access_log: ./a.log\n"). The listen port is "{port}" (see Daemon).
std::string TwoColorConfig(const Backend& blue, const Backend& green,
                           std::string_view top_extra = "", std::string_view drain_timeout = "1s");

// Blue and green backends and one daemon in one temporary folder. Declared so
// that the daemon stops first and the folder goes last.
struct TwoColorStack {
  std::optional<TempDir> dir;
  std::unique_ptr<Backend> blue;
  std::unique_ptr<Backend> green;
  std::unique_ptr<Daemon> daemon;
};

// Starts a blue and a green backend in a new folder named after `prefix`,
// then a daemon on `config(blue, green)`, and waits until both colors are
// healthy.
Status StartTwoColors(std::string_view prefix,
                      const std::function<std::string(const Backend&, const Backend&)>& config,
                      TwoColorStack& out);

// One GET through a listener on 127.0.0.1 (Host: localhost): the body, or
// "status N: body", or "error: ..." when nothing came back within 5 s.
std::string GetText(uint16_t port, std::string_view target = "/", const HeaderList& headers = {});

// True when nothing accepts a connection on 127.0.0.1:port.
bool PortRefuses(uint16_t port);

// Whether `pid` is gone (a zombie nobody reaped counts as gone: it runs no
// code).
bool ProcessGone(pid_t pid);

// `text` as JSON; a discarded value (is_discarded()) when it is not.
nlohmann::json ParseJson(std::string_view text);

// True when `text` holds `what`.
bool Contains(std::string_view text, std::string_view what);

// Step `name` of a deployment's JSON, or nullptr; its outcome ("(no step
// NAME)" when missing) and message ("" when missing).
const nlohmann::json* Step(const nlohmann::json& deployment, std::string_view name);
std::string StepOutcome(const nlohmann::json& deployment, std::string_view name);
std::string StepMessage(const nlohmann::json& deployment, std::string_view name);

// `cutover ARGS...` without a daemon (validate, migrate), in `dir`, with
// neither CUTOVER_CONTROL nor CUTOVER_CONFIG set; stdout and stderr
// together; one that runs over 60 s is killed.
CliResult RunCutoverIn(const TempDir& dir, const std::vector<std::string>& args);

// Every instance the process driver started under the log folder `logs`,
// from the header line of each log file: (port, pid), one entry per start.
std::vector<std::pair<uint16_t, pid_t>> StartedInstances(const std::string& logs);

// The path of the cutover binary under test.
std::string CutoverBinary();
// The path of the test backend.
std::string TestappBinary();

}  // namespace cutover::test
