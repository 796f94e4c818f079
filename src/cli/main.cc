// The cutover command. `cutover serve` runs the daemon (serve.h); every other
// subcommand is a client of the daemon's control API over its unix socket
// (docs/cli.md). Single-threaded; every failure ends in exactly one line
// "cutover: <reason>" on stderr and one of the exit codes below.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/client.h"
#include "api/json.h"
#include "cli/serve.h"
#include "config/config.h"

namespace cutover {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;       // the daemon refused, or the operation failed
constexpr int kExitUsage = 2;        // bad flags or a bad config file
constexpr int kExitUnreachable = 3;  // no answer from the daemon

constexpr std::string_view kDefaultControl = "./cutover.sock";

int Fail(int exit_code, std::string_view reason) {
  fmt::print(stderr, "cutover: {}\n", reason);
  return exit_code;
}

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
                                           std::string_view path, std::string_view body = {}) {
  auto socket = ControlSocket(options);
  if (!socket) return std::unexpected(Fail(kExitUsage, socket.error().message));
  ApiClient client(*socket);
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

// Prints rows as aligned columns, two spaces apart.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    fmt::print("{}\n", line);
  }
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
        targets.push_back(std::move(target_row));
      }
    }
  }
  PrintTable(overview);
  fmt::print("\n");
  PrintTable(targets);
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
  flip.add_flag("--force", switch_force, "Switch even when that color has no healthy target");
  AddClientOptions(flip, switch_options);

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
  if (version) {
    fmt::print("cutover {}\n", CUTOVER_VERSION);
    return kExitOk;
  }
  return Fail(kExitUsage, "no command given (see cutover --help)");
}

}  // namespace
}  // namespace cutover

int main(int argc, char** argv) { return cutover::Main(argc, argv); }
