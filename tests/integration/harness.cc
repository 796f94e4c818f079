#include "harness.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/net.h"
#include "support/raw_http.h"
#include "support/wait.h"

namespace cutover::test {

std::string CutoverBinary() { return CUTOVER_BIN; }
std::string TestappBinary() { return CUTOVER_TESTAPP; }

Result<std::unique_ptr<Backend>> Backend::Start(const TempDir& dir, const std::string& name,
                                                std::vector<std::string> extra_args) {
  static int counter = 0;
  std::string tag = fmt::format("{}-{}", name, ++counter);
  std::string port_file = dir.File(tag + ".port");
  ChildOptions o;
  o.argv = {TestappBinary(), "--name", name, "--port", "0", "--port-file", port_file, "--quiet"};
  for (auto& a : extra_args) o.argv.push_back(std::move(a));
  o.output_file = dir.File(tag + ".log");
  auto p = ChildProcess::Spawn(o);
  if (!p) return std::unexpected(p.error());
  auto port = WaitForPortFile(port_file, DeadlineIn(std::chrono::seconds(10)));
  if (!port) return MakeError(ErrorCode::kTimeout, "backend " + name + " did not start");
  return std::unique_ptr<Backend>(new Backend(std::move(*p), *port));
}

Result<uint64_t> Backend::RequestsSeen() const {
  auto r = HttpGet("127.0.0.1", port_, "/__stats", "localhost");
  if (!r) return std::unexpected(r.error());
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("requests")) {
    return MakeError(ErrorCode::kInternal, "bad /__stats body: " + r->body);
  }
  return j["requests"].get<uint64_t>();
}

Result<std::unique_ptr<Daemon>> Daemon::Start(const TempDir& dir, const std::string& config_yaml,
                                              int workers) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->dir_ = &dir;
  d->workers_ = workers;
  // Two different ports: two separate picks may return the same one.
  auto ports = FreePorts(2);
  if (!ports) return std::unexpected(ports.error());
  d->port_ = (*ports)[0];
  d->preview_port_ = (*ports)[1];
  std::string text = config_yaml;
  // Each daemon gets a preview port of its own, unless the test set one.
  if (text.find("\npreview:") == std::string::npos && !text.starts_with("preview:")) {
    text = "preview: {listen: 127.0.0.1:{preview_port}}\n" + text;
  }
  // CUTOVER_TEST_IO=epoll runs a suite again on the router's other I/O.
  if (const char* io = std::getenv("CUTOVER_TEST_IO"); io != nullptr && *io != '\0' &&
                                                       text.find("\nio:") == std::string::npos &&
                                                       !text.starts_with("io:")) {
    text = "io: " + std::string(io) + "\n" + text;
  }
  for (size_t p = text.find("{port}"); p != std::string::npos; p = text.find("{port}")) {
    text.replace(p, 6, std::to_string(d->port_));
  }
  for (size_t p = text.find("{preview_port}"); p != std::string::npos;
       p = text.find("{preview_port}")) {
    text.replace(p, 14, std::to_string(d->preview_port_));
  }
  d->config_path_ = dir.File("cutover.yaml");
  d->control_ = dir.File("cutover.sock");
  d->log_path_ = dir.File("cutover.log");
  if (Status s = WriteFile(d->config_path_, text); !s) return std::unexpected(s.error());
  if (Status s = d->Launch(); !s) return std::unexpected(s.error());
  return d;
}

Status Daemon::Launch() {
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve",     "--config",
            config_path_,    "--workers", std::to_string(workers_)};
  o.output_file = log_path_;
  o.unset_env = {"CUTOVER_CONTROL"};
  auto p = ChildProcess::Spawn(o);
  if (!p) return std::unexpected(p.error());
  process_ = std::make_unique<ChildProcess>(std::move(*p));
  ApiClient client(control_, Millis(2000));
  bool up = WaitUntil(
      [&] {
        if (!process_->Running()) return true;
        auto r = client.Call("GET", "/v1/services");
        return r.has_value() && r->status == 200;
      },
      DeadlineIn(std::chrono::seconds(15)), std::chrono::milliseconds(20));
  if (!up || !process_->Running()) {
    return MakeError(ErrorCode::kUnavailable,
                     "cutover did not start; its output:\n" + process_->Output());
  }
  if (!WaitForPort("127.0.0.1", port_, DeadlineIn(std::chrono::seconds(5)))) {
    return MakeError(ErrorCode::kUnavailable, "cutover does not listen on its port");
  }
  return {};
}

Daemon::~Daemon() = default;

Result<ApiResponse> Daemon::Api(std::string_view method, std::string_view path,
                                std::string_view body) const {
  ApiClient client(control_, Millis(30'000));
  return client.Call(method, path, body);
}

namespace {

// Wraps `s` in single quotes for /bin/sh, quotes inside included.
std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

nlohmann::json Daemon::GetJson(std::string_view path) const {
  auto r = Api("GET", path);
  if (!r || r->status != 200) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

CliResult Daemon::Cli(const std::vector<std::string>& args) const {
  // Bounded, so that a CLI that hangs fails the test instead of stalling it.
  std::string cmd =
      "CUTOVER_CONTROL=" + ShellQuote(control_) + " timeout -k 5 60 " + ShellQuote(CutoverBinary());
  for (const std::string& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>&1";
  CliResult r;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  int status = ::pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Status Daemon::Switch(const std::string& service, const std::string& color, bool force) const {
  std::string body = fmt::format(R"({{"to":"{}"{}}})", color, force ? R"(,"force":true)" : "");
  auto r = Api("POST", "/v1/services/" + service + "/switch", body);
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) {
    return MakeError(ErrorCode::kConflict, fmt::format("switch: {} {}", r->status, r->body));
  }
  return {};
}

bool Daemon::WaitHealth(const std::string& service, const std::string& color, bool want,
                        int timeout_ms) const {
  return WaitUntil(
      [&] {
        auto r = Api("GET", "/v1/services/" + service);
        if (!r || r->status != 200) return false;
        auto j = nlohmann::json::parse(r->body, nullptr, false);
        if (j.is_discarded()) return false;
        const auto& targets = j["colors"][color]["targets"];
        if (!targets.is_array() || targets.empty()) return false;
        for (const auto& t : targets) {
          if (t["healthy"].get<bool>() != want) return false;
        }
        return true;
      },
      DeadlineIn(std::chrono::milliseconds(timeout_ms)), std::chrono::milliseconds(50));
}

Status Daemon::KillAndRestart() {
  process_->Kill();
  return Launch();
}

std::optional<int> Daemon::Stop(int timeout_ms) {
  if (!process_->Running()) return std::nullopt;
  (void)process_->Signal(SIGTERM);
  auto st = process_->Wait(DeadlineIn(std::chrono::milliseconds(timeout_ms)));
  if (!st || !st->code) return std::nullopt;
  return *st->code;
}

std::string TwoColorConfig(const Backend& blue, const Backend& green, std::string_view top_extra,
                           std::string_view drain_timeout) {
  return fmt::format(
      "listen: 127.0.0.1:{{port}}\n{}"
      "services:\n"
      "  web:\n"
      "    hosts: [localhost]\n"
      "    driver:\n"
      "      type: static\n"
      "      blue: [{}]\n"
      "      green: [{}]\n"
      "    health: {{path: /healthz, interval: 200ms, timeout: 150ms}}\n"
      "    drain_timeout: {}\n",
      top_extra, blue.address(), green.address(), drain_timeout);
}

Status StartTwoColors(std::string_view prefix,
                      const std::function<std::string(const Backend&, const Backend&)>& config,
                      TwoColorStack& out) {
  auto dir = TempDir::Create(prefix);
  if (!dir) return std::unexpected(dir.error());
  out.dir.emplace(std::move(*dir));
  auto blue = Backend::Start(*out.dir, "blue");
  if (!blue) return std::unexpected(blue.error());
  out.blue = std::move(*blue);
  auto green = Backend::Start(*out.dir, "green");
  if (!green) return std::unexpected(green.error());
  out.green = std::move(*green);
  auto d = Daemon::Start(*out.dir, config(*out.blue, *out.green));
  if (!d) return std::unexpected(d.error());
  out.daemon = std::move(*d);
  for (const char* color : {"blue", "green"}) {
    if (!out.daemon->WaitHealth("web", color, true)) {
      return MakeError(ErrorCode::kTimeout, std::string(color) + " never became healthy:\n" +
                                                out.daemon->process().Output());
    }
  }
  return {};
}

std::vector<std::pair<uint16_t, pid_t>> StartedInstances(const std::string& logs) {
  std::vector<std::pair<uint16_t, pid_t>> out;
  std::error_code ec;
  if (!std::filesystem::exists(logs, ec)) return out;
  const std::regex header(
      R"(--- cutover: starting instance \d+ of \S+ release \S+ on port (\d+) \(pid (\d+)\))");
  for (const auto& entry : std::filesystem::recursive_directory_iterator(logs, ec)) {
    if (!entry.is_regular_file()) continue;
    auto text = ReadFile(entry.path());
    if (!text) continue;
    for (std::sregex_iterator it(text->begin(), text->end(), header), end; it != end; ++it) {
      out.emplace_back(static_cast<uint16_t>(std::stoi((*it)[1])),
                       static_cast<pid_t>(std::stol((*it)[2])));
    }
  }
  return out;
}

std::string GetText(uint16_t port, std::string_view target, const HeaderList& headers) {
  auto r =
      HttpGet("127.0.0.1", port, target, "localhost", headers, DeadlineIn(std::chrono::seconds(5)));
  if (!r) return "error: " + r.error().message;
  if (r->status != 200) return "status " + std::to_string(r->status) + ": " + r->body;
  return r->body;
}

bool PortRefuses(uint16_t port) {
  return !ConnectTcp("127.0.0.1", port, DeadlineIn(std::chrono::milliseconds(500))).has_value();
}

bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
}

nlohmann::json ParseJson(std::string_view text) {
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

bool Contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

const nlohmann::json* Step(const nlohmann::json& deployment, std::string_view name) {
  if (!deployment.is_object() || !deployment.contains("steps")) return nullptr;
  for (const nlohmann::json& step : deployment["steps"]) {
    if (step.value("name", "") == name) return &step;
  }
  return nullptr;
}

std::string StepOutcome(const nlohmann::json& deployment, std::string_view name) {
  const nlohmann::json* step = Step(deployment, name);
  return step == nullptr ? "(no step " + std::string(name) + ")" : step->value("outcome", "");
}

std::string StepMessage(const nlohmann::json& deployment, std::string_view name) {
  const nlohmann::json* step = Step(deployment, name);
  return step == nullptr ? std::string() : step->value("message", "");
}

CliResult RunCutoverIn(const TempDir& dir, const std::vector<std::string>& args) {
  static std::atomic<int> counter{0};
  const std::string out = dir.File("cli-" + std::to_string(++counter) + ".out");
  ChildOptions o;
  o.argv = {CutoverBinary()};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.unset_env = {"CUTOVER_CONTROL", "CUTOVER_CONFIG"};
  o.working_dir = dir.path();
  o.output_file = out;
  CliResult r;
  auto child = ChildProcess::Spawn(o);
  if (!child) {
    r.out = child.error().message;
    return r;
  }
  std::optional<ExitStatus> status = child->Wait(DeadlineIn(std::chrono::seconds(60)));
  if (!status) child->Kill();
  r.out = child->Output();
  if (status && status->code) r.exit_code = *status->code;
  return r;
}

}  // namespace cutover::test
