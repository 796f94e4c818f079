// The cutover command. `cutover serve` runs the daemon (serve.h); every other
// subcommand is a client of the daemon's control API over its unix socket
// (docs/cli.md). Single-threaded; every failure ends in exactly one line
// "cutover: <reason>" on stderr and one of the exit codes below.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "api/client.h"
#include "api/json.h"
#include "cli/migrate.h"
#include "cli/output.h"
#include "cli/serve.h"
#include "config/config.h"

namespace cutover {
namespace {

constexpr std::string_view kDefaultControl = "./cutover.sock";

// Options every client subcommand takes: where the daemon is.
struct ClientOptions {
  std::string control;
  std::string config;
};

void AddClientOptions(CLI::App& command, ClientOptions& options) {
  command.add_option("--control", options.control,
                     "Control socket of the daemon (default: $CUTOVER_CONTROL, else the "
                     "config's 'control', else ./cutover.sock)");
  command.add_option("--config", options.config, "Config file whose 'control' names the socket");
}

std::string WithoutUnixScheme(std::string_view address) {
  if (address.starts_with("unix:")) address.remove_prefix(5);
  return std::string(address);
}

// The daemon's socket: --control, else $CUTOVER_CONTROL, else the control of
// --config, else ./cutover.sock. Fails (kInvalidArgument) on a bad config.
Result<std::string> ControlSocket(const ClientOptions& options) {
  if (!options.control.empty()) return WithoutUnixScheme(options.control);
  if (const char* env = std::getenv("CUTOVER_CONTROL"); env != nullptr && *env != '\0') {
    return WithoutUnixScheme(env);
  }
  if (!options.config.empty()) {
    auto config = LoadConfig(options.config);
    if (!config) {
      const std::vector<Diagnostic>& problems = config.error();
      std::string message = problems.empty() ? options.config + ": invalid configuration"
                                             : problems.front().ToString();
      if (problems.size() > 1) {
        message += fmt::format(" (and {} more; see cutover validate --config {})",
                               problems.size() - 1, options.config);
      }
      return MakeError(ErrorCode::kInvalidArgument, std::move(message));
    }
    if (!config->control.empty()) return config->control;
  }
  return std::string(kDefaultControl);
}

// One request to the daemon. On success the 2xx body; on failure the exit
// code, its line already printed.
std::expected<std::string, int> CallDaemon(const ClientOptions& options, std::string_view method,
                                           std::string_view path, std::string_view body = {},
                                           Millis timeout = ApiClient::kDefaultTimeout) {
  auto socket = ControlSocket(options);
  if (!socket) return std::unexpected(Fail(kExitUsage, socket.error().message));
  ApiClient client(*socket, timeout);
  client.set_actor("cli");
  auto response = client.Call(method, path, body);
  if (!response) {
    const bool usage = response.error().code == ErrorCode::kInvalidArgument;
    return std::unexpected(Fail(usage ? kExitUsage : kExitUnreachable, response.error().message));
  }
  if (!IsSuccess(*response)) {
    return std::unexpected(Fail(kExitFailed, ErrorFromResponse(*response).message));
  }
  return std::move(response->body);
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

void PrintServices(const std::vector<ServiceView>& services) {
  if (services.empty()) {
    fmt::print("no services configured\n");
    return;
  }
  std::vector<std::vector<std::string>> overview = {{"SERVICE", "LIVE", "HOSTS", "PATH PREFIX"}};
  std::vector<std::vector<std::string>> targets = {
      {"SERVICE", "COLOR", "ROLE", "TARGET", "HEALTH", "IN-FLIGHT"}};
  for (const ServiceView& service : services) {
    overview.push_back({service.name, std::string(ColorName(service.live)),
                        Join(service.hosts, ","), service.path_prefix});
    for (Color color : {Color::kBlue, Color::kGreen}) {
      std::vector<std::string> row = {service.name, std::string(ColorName(color)),
                                      color == service.live ? "live" : "idle"};
      const std::vector<TargetView>& list = service.targets[static_cast<int>(color)];
      if (list.empty()) {
        row.insert(row.end(), {"(no targets)", "-", "-"});
        targets.push_back(std::move(row));
      }
      for (const TargetView& target : list) {
        std::vector<std::string> target_row = row;
        target_row.insert(target_row.end(), {target.address,
                                             target.healthy ? std::string("healthy")
                                             : target.health_error.empty()
                                                 ? std::string("unhealthy")
                                                 : "unhealthy (" + target.health_error + ")",
                                             std::to_string(target.in_flight)});
        if (target.restarts > 0) {
          target_row[4] +=
              fmt::format(" [restarted {}x, last {}]", target.restarts, target.last_exit);
        }
        targets.push_back(std::move(target_row));
      }
    }
  }
  PrintTable(overview);
  fmt::print("\n");
  PrintTable(targets);
  std::vector<std::vector<std::string>> slots = {
      {"SERVICE", "COLOR", "ROLE", "RELEASE", "STATE", "REQ/S", "ERRORS", "P50", "P99", "NOTE"}};
  bool any_release = false;
  for (const ServiceView& service : services) {
    for (Color color : {Color::kBlue, Color::kGreen}) {
      const SlotView& slot = service.slots[static_cast<int>(color)];
      any_release = any_release || !slot.release.empty();
      std::string role =
          color == service.live ? (service.released ? "live" : "live (no release)") : "idle";
      // What the color served over the last minute, as the router saw it.
      std::vector<std::string> figures = {"-", "-", "-", "-"};
      if (slot.figures && slot.figures->requests > 0) {
        const Figures& f = *slot.figures;
        figures = {fmt::format("{:.1f}", f.requests_per_second), FormatRate(f.error_rate),
                   FormatLatency(f.p50_us), FormatLatency(f.p99_us)};
      }
      slots.push_back({service.name, std::string(ColorName(color)), role,
                       slot.release.empty() ? "-" : slot.release,
                       slot.state.empty() ? "-" : slot.state, figures[0], figures[1], figures[2],
                       figures[3], slot.note});
    }
  }
  if (any_release) {
    fmt::print("\n");
    PrintTable(slots);
  }
  for (const ServiceView& service : services) {
    if (!service.deployment) continue;
    const DeploymentRecord& d = *service.deployment;
    fmt::print("\n{}: deployment {} of {} to {} by {}\n", service.name, d.id, d.release,
               ColorName(d.color), d.actor);
    for (const StepRecord& step : d.steps) {
      fmt::print("  {:<8} {:<9} {}\n", step.name, step.outcome,
                 step.message.substr(0, step.message.find('\n')));
    }
  }
}

int RunStatus(const ClientOptions& options, const std::string& service, bool json) {
  const std::string path =
      service.empty() ? "/v1/services" : "/v1/services/" + EncodePathSegment(service);
  auto body = CallDaemon(options, "GET", path);
  if (!body) return body.error();
  if (json) {
    fmt::print("{}", *body);
    if (!body->ends_with('\n')) fmt::print("\n");
    return kExitOk;
  }
  auto parsed = ParseJson(*body);
  if (!parsed)
    return Fail(kExitFailed, "unexpected answer from the daemon: " + parsed.error().message);
  if (service.empty()) {
    auto services = ServicesFromJson(*parsed);
    if (!services) {
      return Fail(kExitFailed, "unexpected answer from the daemon: " + services.error().message);
    }
    PrintServices(*services);
  } else {
    auto one = ServiceFromJson(*parsed);
    if (!one) return Fail(kExitFailed, "unexpected answer from the daemon: " + one.error().message);
    PrintServices({*one});
  }
  return kExitOk;
}

int RunSwitch(const ClientOptions& options, const std::string& service, const std::string& to,
              bool force) {
  std::optional<Color> color = ParseColor(to);
  if (!color) return Fail(kExitUsage, "--to must be blue or green, got '" + to + "'");
  Json request = Json::object();
  request["to"] = std::string(ColorName(*color));
  if (force) request["force"] = true;
  auto body = CallDaemon(options, "POST", "/v1/services/" + EncodePathSegment(service) + "/switch",
                         request.dump());
  if (!body) return body.error();
  // The switch is done; the answer only confirms which color is live now.
  Color live = *color;
  if (auto parsed = ParseJson(*body)) {
    if (auto view = ServiceFromJson(*parsed)) live = view->live;
  }
  fmt::print("{}: live is now {}\n", service, ColorName(live));
  return kExitOk;
}

std::string FormatElapsed(int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
  return fmt::format("{}m{:02}s", ms / 60'000, (ms / 1000) % 60);
}

// Prints one event of a deployment as a progress line (or its JSON).
void PrintEvent(const SseEvent& raw, bool json) {
  if (json) {
    fmt::print("{}\n", raw.data);
    std::fflush(stdout);
    return;
  }
  auto parsed = ParseJson(raw.data);
  if (!parsed) return;
  auto e = EventFromJson(*parsed);
  if (!e) return;
  std::string message = e->message;
  // Multi-line messages (log tails, command output) are indented under the step.
  for (size_t at = message.find('\n'); at != std::string::npos; at = message.find('\n', at + 1)) {
    message.replace(at, 1, "\n             ");
  }
  if (e->kind == "finished") {
    fmt::print("{} {} {}: {}\n", e->outcome == "succeeded" ? "==" : "!!", e->release, e->outcome,
               message);
  } else if (e->kind == "step" && e->outcome == "running" && message.empty()) {
    return;  // the step's end follows
  } else if (e->kind == "step") {
    std::string mark = e->outcome == "ok"        ? "ok"
                       : e->outcome == "running" ? ".."
                       : e->outcome == "waiting" ? "??"
                       : e->outcome == "skipped" ? "--"
                                                 : "!!";
    fmt::print("[{:>2}] {:<8} {:>7}  {}\n", mark, e->step,
               e->outcome == "running" ? "" : FormatElapsed(e->elapsed_ms), message);
  } else {
    fmt::print("[..] {}\n", message);
  }
  std::fflush(stdout);
}

// Follows a deployment's events until it finishes. Exit 0 when it
// succeeded, 1 when it failed, was aborted or interrupted.
int FollowDeployment(const ClientOptions& options, const std::string& service, int64_t id,
                     bool json) {
  auto socket = ControlSocket(options);
  if (!socket) return Fail(kExitUsage, socket.error().message);
  ApiClient client(*socket);
  client.set_actor("cli");
  std::string outcome;
  auto response = client.Stream(
      "GET", fmt::format("/v1/services/{}/deployments/{}/events", EncodePathSegment(service), id),
      {},
      [&](const SseEvent& event) {
        PrintEvent(event, json);
        if (event.event == "finished") {
          if (auto parsed = ParseJson(event.data)) {
            if (auto e = EventFromJson(*parsed)) outcome = e->outcome;
          }
          return false;
        }
        return true;
      },
      Millis(60'000));
  if (!response) return Fail(kExitUnreachable, response.error().message);
  if (!IsSuccess(*response)) return Fail(kExitFailed, ErrorFromResponse(*response).message);
  if (outcome.empty()) return Fail(kExitUnreachable, "the daemon ended the event stream early");
  return outcome == "succeeded" ? kExitOk : kExitFailed;
}

struct DeployOptions {
  std::string service;
  std::string release;
  std::string command;
  std::vector<std::string> env;
  std::string targets;
  bool json = false;
  bool detach = false;
};

int RunDeploy(const ClientOptions& options, const DeployOptions& d) {
  Json request = Json::object();
  request["release"] = d.release;
  if (!d.command.empty()) request["command"] = d.command;
  if (!d.env.empty()) {
    Json env = Json::object();
    for (const std::string& kv : d.env) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Fail(kExitUsage, "--env takes NAME=VALUE, got '" + kv + "'");
      }
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    request["env"] = std::move(env);
  }
  if (!d.targets.empty()) {
    Json targets = Json::array();
    size_t start = 0;
    while (start <= d.targets.size()) {
      size_t comma = d.targets.find(',', start);
      if (comma == std::string::npos) comma = d.targets.size();
      std::string item = d.targets.substr(start, comma - start);
      if (!item.empty()) targets.push_back(item);
      start = comma + 1;
    }
    request["targets"] = std::move(targets);
  }
  auto body = CallDaemon(
      options, "POST", "/v1/services/" + EncodePathSegment(d.service) + "/deploy", request.dump());
  if (!body) return body.error();
  auto parsed = ParseJson(*body);
  if (!parsed) return Fail(kExitFailed, "unexpected answer from the daemon");
  auto record = DeploymentFromJson(*parsed);
  if (!record) return Fail(kExitFailed, "unexpected answer from the daemon");
  if (!d.json) {
    fmt::print("deployment {} of {} {} to {}\n", record->id, d.service, record->release,
               ColorName(record->color));
  }
  if (d.detach) {
    if (d.json) fmt::print("{}", *body);
    return kExitOk;
  }
  return FollowDeployment(options, d.service, record->id, d.json);
}

// promote / abort: one request, one line.
int RunAction(const ClientOptions& options, const std::string& service, std::string_view action) {
  auto body = CallDaemon(options, "POST",
                         "/v1/services/" + EncodePathSegment(service) + "/" + std::string(action));
  if (!body) return body.error();
  int64_t id = 0;
  if (auto parsed = ParseJson(*body)) {
    if (auto record = DeploymentFromJson(*parsed)) id = record->id;
  }
  fmt::print("{}: deployment {} {}\n", service, id,
             action == "promote" ? "promoted" : "is being aborted");
  return kExitOk;
}

int RunRollback(const ClientOptions& options, const std::string& service, bool json, bool force) {
  auto body =
      CallDaemon(options, "POST", "/v1/services/" + EncodePathSegment(service) + "/rollback",
                 force ? R"({"force":true})" : "");
  if (!body) return body.error();
  auto parsed = ParseJson(*body);
  if (!parsed) return Fail(kExitFailed, "unexpected answer from the daemon");
  auto record = DeploymentFromJson(*parsed);
  if (!record) return Fail(kExitFailed, "unexpected answer from the daemon");
  if (!json) fmt::print("{} ({})\n", record->message, ColorName(record->color));
  return FollowDeployment(options, service, record->id, json);
}

// Contract migrations can take long (a big table): the daemon answers
// when they are done.
constexpr Millis kContractTimeout{6 * 3600 * 1000};

int RunContract(const ClientOptions& options, const std::string& service, bool json) {
  auto body =
      CallDaemon(options, "POST", "/v1/services/" + EncodePathSegment(service) + "/contract", {},
                 kContractTimeout);
  if (!body) return body.error();
  auto parsed = ParseJson(*body);
  if (!parsed) return Fail(kExitFailed, "unexpected answer from the daemon");
  auto result = ContractResultFromJson(*parsed);
  if (!result) return Fail(kExitFailed, "unexpected answer from the daemon");
  if (json) {
    fmt::print("{}\n", parsed->dump());
    return result->report.ok ? kExitOk : kExitFailed;
  }
  if (!result->retired.empty()) fmt::print("{}: {}\n", service, result->retired);
  for (const LintFinding& f : result->report.lint) {
    fmt::print("{}: {}\n", f.severity == Severity::kError && !f.allowed ? "error" : "warning",
               f.ToString());
  }
  if (!result->report.ok) return Fail(kExitFailed, result->report.error);
  int applied = 0;
  for (const FileRun& f : result->report.files) {
    if (f.outcome != "applied") continue;
    ++applied;
    fmt::print("{}: applied {} ({})\n", service, f.filename, FormatDuration(Millis(f.elapsed_ms)));
  }
  if (applied == 0) fmt::print("{}: no contract migrations to run\n", service);
  return kExitOk;
}

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int RunHistory(const ClientOptions& options, const std::string& service, bool json) {
  auto body =
      CallDaemon(options, "GET", "/v1/services/" + EncodePathSegment(service) + "/deployments");
  if (!body) return body.error();
  if (json) {
    fmt::print("{}", *body);
    return kExitOk;
  }
  auto parsed = ParseJson(*body);
  if (!parsed || !parsed->contains("deployments")) {
    return Fail(kExitFailed, "unexpected answer from the daemon");
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "RELEASE", "COLOR", "KIND", "OUTCOME",
                                                 "STARTED (UTC)", "DURATION", "SWITCH",
                                                 "FAILED STEP", "BY", "MESSAGE"}};
  for (const Json& item : (*parsed)["deployments"]) {
    auto d = DeploymentFromJson(item);
    if (!d) continue;
    std::string message = d->message.substr(0, d->message.find('\n'));
    const std::string_view failed = d->FailedStep();
    rows.push_back(
        {std::to_string(d->id), d->release, std::string(ColorName(d->color)),
         std::string(d->Kind()), d->outcome, FormatTime(d->started_unix_ms),
         d->finished_unix_ms == 0 ? "-" : FormatElapsed(d->finished_unix_ms - d->started_unix_ms),
         d->SwitchMs() < 0 ? "-" : FormatElapsed(d->SwitchMs()),
         failed.empty() ? "-" : std::string(failed), d->actor, message});
  }
  if (rows.size() == 1) {
    fmt::print("{}: no deployments yet\n", service);
    return kExitOk;
  }
  PrintTable(rows);
  return kExitOk;
}

// Prints the instances' log files of a color (the live one by default);
// with `follow`, keeps printing what is appended until interrupted.
int RunLogs(const ClientOptions& options, const std::string& service, const std::string& color_name,
            bool follow) {
  auto body = CallDaemon(options, "GET", "/v1/services/" + EncodePathSegment(service));
  if (!body) return body.error();
  auto parsed = ParseJson(*body);
  if (!parsed) return Fail(kExitFailed, "unexpected answer from the daemon");
  auto view = ServiceFromJson(*parsed);
  if (!view) return Fail(kExitFailed, "unexpected answer from the daemon");
  Color color = view->live;
  if (!color_name.empty()) {
    std::optional<Color> c = ParseColor(color_name);
    if (!c) return Fail(kExitUsage, "--color must be blue or green, got '" + color_name + "'");
    color = *c;
  }
  const SlotView& slot = view->slots[static_cast<int>(color)];
  if (slot.logs.empty()) {
    return Fail(kExitFailed, fmt::format("{}: nothing runs on {} with logs cutover keeps "
                                         "(only the process driver's instances have them)",
                                         service, ColorName(color)));
  }
  std::vector<std::FILE*> files;
  for (const std::string& path : slot.logs) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return Fail(kExitFailed, "cannot read " + path);
    files.push_back(f);
  }
  char buf[8192];
  for (;;) {
    bool any = false;
    for (size_t i = 0; i < files.size(); ++i) {
      size_t n = 0;
      while ((n = std::fread(buf, 1, sizeof(buf), files[i])) > 0) {
        std::fwrite(buf, 1, n, stdout);
        any = true;
      }
      std::clearerr(files[i]);
    }
    std::fflush(stdout);
    if (!follow) break;
    if (!any) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (std::FILE* f : files) std::fclose(f);
  return kExitOk;
}

int RunValidate(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config) {
    // Compiler style, one problem per line, so editors can jump to each.
    for (const Diagnostic& d : config.error()) fmt::print(stderr, "{}\n", d.ToString());
    if (config.error().empty()) return Fail(kExitUsage, path + ": invalid configuration");
    return kExitUsage;
  }
  const size_t n = config->services.size();
  fmt::print("{}: ok ({} service{})\n", path, n, n == 1 ? "" : "s");
  return kExitOk;
}

int Main(int argc, char** argv) {
  CLI::App app("cutover: blue-green deployments for HTTP services", "cutover");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cutover ") + CUTOVER_VERSION);

  ServeOptions serve_options;
  CLI::App& serve = *app.add_subcommand("serve", "Run the daemon (proxy and control API)");
  serve.add_option("--config", serve_options.config_path, "Config file")->required();
  serve.add_option("--workers", serve_options.workers,
                   "Router worker threads (default: the config's, else one per core)");
  serve.add_flag("--keep-instances", serve_options.keep_instances,
                 "Leave the process driver's instances running when the daemon stops (a "
                 "restarted daemon adopts them)");

  std::string validate_path;
  CLI::App& validate = *app.add_subcommand("validate", "Check a config file and exit");
  validate.add_option("--config", validate_path, "Config file")->required();

  ClientOptions status_options;
  std::string status_service;
  bool status_json = false;
  CLI::App& status =
      *app.add_subcommand("status", "Show services: live color, targets, health, in-flight");
  status.add_option("service", status_service, "Only this service");
  status.add_flag("--json", status_json, "Print the API's JSON as is");
  AddClientOptions(status, status_options);

  ClientOptions switch_options;
  std::string switch_service;
  std::string switch_to;
  bool switch_force = false;
  CLI::App& flip = *app.add_subcommand("switch", "Make a color the live one of a service");
  flip.add_option("service", switch_service, "Service name")->required();
  flip.add_option("--to", switch_to, "blue or green")->required();
  flip.add_flag("--force", switch_force,
                "Switch even when that color has no healthy target, or runs a release older "
                "than a contract migration that ran");
  AddClientOptions(flip, switch_options);

  ClientOptions deploy_options;
  DeployOptions deploy;
  CLI::App& deploy_cmd =
      *app.add_subcommand("deploy", "Deploy a release to the idle color, prove it, switch");
  deploy_cmd.add_option("service", deploy.service, "Service name")->required();
  deploy_cmd.add_option("--release", deploy.release, "Release label, e.g. v42")->required();
  deploy_cmd.add_option("--command", deploy.command,
                        "Process driver: the command to run instead of the configured one");
  deploy_cmd.add_option("--env", deploy.env,
                        "Process driver: NAME=VALUE added to the "
                        "environment (repeatable)");
  deploy_cmd.add_option("--targets", deploy.targets,
                        "Static driver: the release's targets, host:port,...");
  deploy_cmd.add_flag("--json", deploy.json, "Print one JSON object per event");
  deploy_cmd.add_flag("--detach", deploy.detach, "Start the deployment and return at once");
  AddClientOptions(deploy_cmd, deploy_options);

  ClientOptions promote_options, abort_options, rollback_options, history_options, logs_options;
  std::string promote_service, abort_service, rollback_service, history_service, logs_service;
  bool rollback_json = false, rollback_force = false, history_json = false, logs_follow = false;
  std::string logs_color;
  CLI::App& promote =
      *app.add_subcommand("promote", "Let a deployment waiting for approval switch");
  promote.add_option("service", promote_service, "Service name")->required();
  AddClientOptions(promote, promote_options);
  CLI::App& abort_cmd =
      *app.add_subcommand("abort", "End a deployment before its switch (live untouched)");
  abort_cmd.add_option("service", abort_service, "Service name")->required();
  AddClientOptions(abort_cmd, abort_options);
  CLI::App& rollback = *app.add_subcommand("rollback",
                                           "Switch back to the previous release (restarting it "
                                           "first if it was stopped)");
  rollback.add_option("service", rollback_service, "Service name")->required();
  rollback.add_flag("--json", rollback_json, "Print one JSON object per event");
  rollback.add_flag("--force", rollback_force,
                    "Go back even when a contract migration ran since that release");
  AddClientOptions(rollback, rollback_options);
  CLI::App& history = *app.add_subcommand("history", "List a service's deployments");
  history.add_option("service", history_service, "Service name")->required();
  history.add_flag("--json", history_json, "Print the API's JSON as is");
  AddClientOptions(history, history_options);
  CLI::App& logs = *app.add_subcommand("logs", "Print the logs of a service's instances");
  logs.add_option("service", logs_service, "Service name")->required();
  logs.add_option("--color", logs_color, "blue or green (default: the live color)");
  logs.add_flag("--follow,-f", logs_follow, "Keep printing what is appended");
  AddClientOptions(logs, logs_options);

  MigrateOptions migrate_options;
  CLI::App& migrate = *app.add_subcommand(
      "migrate", "Schema migrations: status, plan, lint, expand, backfill, contract");
  migrate
      .add_option("action", migrate_options.action,
                  "status | plan | lint | expand | backfill | contract")
      ->required()
      ->check(CLI::IsMember({"status", "plan", "lint", "expand", "backfill", "contract"}));
  migrate.add_option("--service", migrate_options.service,
                     "Service whose config gives the database and folder");
  migrate.add_option("--config", migrate_options.config,
                     "Config file (default: $CUTOVER_CONFIG, else ./cutover.yaml)");
  migrate.add_option("--database", migrate_options.database,
                     "postgres://... or sqlite:PATH (without --service)");
  migrate.add_option("--dir", migrate_options.dir, "Folder of migration files (without --service)");
  migrate.add_option("--release", migrate_options.release,
                     "Release label recorded with the files it runs (default: manual)");
  migrate.add_option("--lock-wait", migrate_options.lock_wait,
                     "How long to wait for another runner (default 2m)");
  migrate.add_option("--lock-timeout", migrate_options.lock_timeout,
                     "PostgreSQL lock_timeout for files that set none (default 2s)");
  migrate.add_flag("--json", migrate_options.json, "Print JSON");

  ClientOptions contract_options;
  std::string contract_service;
  bool contract_json = false;
  CLI::App& contract = *app.add_subcommand(
      "contract", "End the rollback window now and run the live release's contract migrations");
  contract.add_option("service", contract_service, "Service name")->required();
  contract.add_flag("--json", contract_json, "Print the API's JSON as is");
  AddClientOptions(contract, contract_options);

  CLI::App& version = *app.add_subcommand("version", "Print the version");

  // CLI11 would blame a misspelt command on the missing subcommand instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::vector<std::string> names;
    bool known = false;
    for (const CLI::App* command :
         std::as_const(app).get_subcommands(std::function<bool(const CLI::App*)>())) {
      names.push_back(command->get_name());
      known = known || command->check_name(argv[1]);
    }
    if (!known) {
      return Fail(kExitUsage,
                  fmt::format("unknown command '{}' (commands: {})", argv[1], Join(names, ", ")));
    }
  }

  // CLI11 reports through exceptions; this is the one place they are caught.
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(kExitUsage, e.what());
  }

  if (serve) {
    if (serve_options.workers < 0) return Fail(kExitUsage, "--workers must be 0 or more");
    return RunServe(serve_options);
  }
  if (validate) return RunValidate(validate_path);
  if (status) return RunStatus(status_options, status_service, status_json);
  if (flip) return RunSwitch(switch_options, switch_service, switch_to, switch_force);
  if (deploy_cmd) return RunDeploy(deploy_options, deploy);
  if (promote) return RunAction(promote_options, promote_service, "promote");
  if (abort_cmd) return RunAction(abort_options, abort_service, "abort");
  if (rollback) {
    return RunRollback(rollback_options, rollback_service, rollback_json, rollback_force);
  }
  if (contract) return RunContract(contract_options, contract_service, contract_json);
  if (history) return RunHistory(history_options, history_service, history_json);
  if (logs) return RunLogs(logs_options, logs_service, logs_color, logs_follow);
  if (migrate) return RunMigrate(migrate_options);
  if (version) {
    fmt::print("cutover {}\n", CUTOVER_VERSION);
    return kExitOk;
  }
  return Fail(kExitUsage, "no command given (see cutover --help)");
}

}  // namespace
}  // namespace cutover

int main(int argc, char** argv) { return cutover::Main(argc, argv); }
