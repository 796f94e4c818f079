#include "config/config.h"

#include <sys/un.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>

namespace cutover {

const ServiceConfig* Config::FindService(std::string_view name) const {
  for (const ServiceConfig& service : services) {
    if (service.name == name) return &service;
  }
  return nullptr;
}

std::string Diagnostic::ToString() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kKnownDriverTypes = "process, static";
constexpr int kMaxWorkers = 256;
constexpr uint64_t kMinHeaderBytes = 1024;
constexpr uint64_t kMaxHeaderBytes = 1024 * 1024;
constexpr int64_t kMaxHeaders = 1000;
constexpr int64_t kMaxThreshold = 100;
constexpr int64_t kMaxInstances = 64;
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxServiceNameLength = 63;
// What the process driver puts in every instance's environment.
constexpr std::string_view kDriverEnv[] = {"PORT", "CUTOVER_SERVICE", "CUTOVER_COLOR",
                                           "CUTOVER_RELEASE"};
// bind() on a longer path fails with a less helpful error at startup.
constexpr size_t kMaxUnixSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;

struct Pos {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based
};

Pos PosOf(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

Pos PosOf(const YAML::Node& node) { return PosOf(node.Mark()); }

// A value found in the file: its dotted path for messages ("services.web.hosts[1]"), the
// node, and where a message about it points. An empty value points at its key, because
// yaml-cpp places an empty value at whatever token follows it.
struct Field {
  std::string path;
  YAML::Node node;
  Pos pos;
};

std::string Quote(std::string_view s) { return Quoted(s); }

std::string KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a value (" + Quote(node.Scalar()) + ")";
    default:
      return "nothing";
  }
}

std::string Join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

bool Contains(std::span<const std::string_view> set, std::string_view key) {
  return std::find(set.begin(), set.end(), key) != set.end();
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

fs::path Resolve(const fs::path& base_dir, std::string_view value) {
  fs::path p(value);
  if (p.is_relative()) p = base_dir / p;
  return p.lexically_normal();
}

// Letters, digits, '-' and '.', as dot-separated labels of 1..63 characters that neither
// start nor end with '-'; IPv4 addresses are a special case of this.
bool IsValidHostName(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool IsValidServiceName(std::string_view name) {
  if (name.empty() || name.size() > kMaxServiceNameLength) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return lower_or_digit(c) || c == '_' || c == '-'; });
}

class Checker;

// The entries of one YAML map, checked for duplicate and non-scalar keys as it is read.
class MapReader {
 public:
  MapReader(Checker& checker, const Field& map);

  // Reports every key not in `allowed`.
  void AllowOnly(const std::vector<std::string_view>& allowed);

  // The value of `key`, if present.
  std::optional<Field> Get(std::string_view key) const;

  // The value of `key`; reports it as missing (at the map) when absent.
  std::optional<Field> Require(std::string_view key, std::string_view what = {});

  struct Entry {
    std::string key;
    Pos key_pos;
    Field value;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  Checker& checker_;
  Field map_;
  std::vector<Entry> entries_;
};

class Checker {
 public:
  Checker(std::string display_file, fs::path base_dir)
      : display_file_(std::move(display_file)), base_dir_(std::move(base_dir)) {}

  void Report(Pos pos, std::string message) {
    diagnostics_.push_back(Diagnostic{display_file_, pos.line, pos.column, std::move(message)});
  }
  void Report(const Field& field, std::string_view message) {
    Report(field.pos, field.path + ": " + std::string(message));
  }

  std::vector<Diagnostic> TakeDiagnostics() {
    std::stable_sort(diagnostics_.begin(), diagnostics_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                     });
    return std::move(diagnostics_);
  }
  bool ok() const { return diagnostics_.empty(); }

  Field Child(const Field& parent, std::string_view key, Pos key_pos, const YAML::Node& node) {
    Pos pos = PosOf(node);
    if (node.IsNull() || pos.line == 0) pos = key_pos;
    std::string path =
        parent.path.empty() ? std::string(key) : parent.path + "." + std::string(key);
    return Field{std::move(path), node, pos};
  }

  // The items of a list, or of a single value standing for a list of one when
  // `single_allowed`. Reports any other kind with `expected`.
  std::optional<std::vector<Field>> Items(const Field& field, bool single_allowed,
                                          std::string_view expected) {
    if (field.node.IsScalar() && single_allowed) return std::vector<Field>{field};
    if (!field.node.IsSequence()) {
      Report(field, "expected " + std::string(expected) + ", got " + KindName(field.node));
      return std::nullopt;
    }
    std::vector<Field> items;
    size_t index = 0;
    for (const YAML::Node& item : field.node) {
      Pos pos = PosOf(item);
      if (pos.line == 0) pos = field.pos;
      items.push_back(Field{field.path + "[" + std::to_string(index++) + "]", item, pos});
    }
    return items;
  }

  std::optional<MapReader> Map(const Field& field, std::string_view expected) {
    if (!field.node.IsMap()) {
      Report(field, "expected " + std::string(expected) + ", got " + KindName(field.node));
      return std::nullopt;
    }
    return MapReader(*this, field);
  }

  std::optional<std::string> String(const Field& field, std::string_view expected) {
    if (!field.node.IsScalar()) {
      Report(field, "expected " + std::string(expected) + ", got " + KindName(field.node));
      return std::nullopt;
    }
    return field.node.Scalar();
  }

  std::optional<int64_t> Integer(const Field& field, int64_t min, int64_t max,
                                 std::string_view note = {}) {
    std::optional<std::string> text = String(field, "an integer");
    if (!text) return std::nullopt;
    int64_t value = 0;
    const char* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, value);
    bool out_of_range = ec == std::errc::result_out_of_range;
    if (!out_of_range && (ec != std::errc() || ptr != end)) {
      Report(field, Quote(*text) + " is not an integer");
      return std::nullopt;
    }
    if (out_of_range || value < min || value > max) {
      std::string message =
          Quote(*text) + " must be between " + std::to_string(min) + " and " + std::to_string(max);
      if (!note.empty()) message += " (" + std::string(note) + ")";
      Report(field, message);
      return std::nullopt;
    }
    return value;
  }

  // A duration; zero is refused unless `zero_allowed`.
  std::optional<Millis> Duration(const Field& field, bool zero_allowed) {
    std::optional<std::string> text = String(field, "a duration (e.g. 500ms, 1s, 2m)");
    if (!text) return std::nullopt;
    Result<Millis> d = ParseDuration(*text);
    if (!d) {
      Report(field, d.error().message);
      return std::nullopt;
    }
    if (!zero_allowed && d->count() <= 0) {
      Report(field, Quote(*text) + " must be greater than 0");
      return std::nullopt;
    }
    return *d;
  }

  // A host:port endpoint; port 0 is refused unless `port_zero_allowed` (a listener may ask
  // the kernel for a port, a target cannot be reached on port 0).
  std::optional<HostPort> Endpoint(const Field& field, bool port_zero_allowed) {
    std::optional<std::string> text = String(field, "host:port");
    if (!text) return std::nullopt;
    Result<HostPort> hp = ParseHostPort(*text);
    if (!hp) {
      Report(field, hp.error().message);
      return std::nullopt;
    }
    if (!port_zero_allowed && hp->port == 0) {
      Report(field, Quote(*text) + " has port 0, which cannot be connected to");
      return std::nullopt;
    }
    return *hp;
  }

  // A path value; resolved against the config file's directory when relative.
  std::optional<std::string> Path(const Field& field, std::string_view prefix) {
    std::optional<std::string> text = String(field, "a file path");
    if (!text) return std::nullopt;
    std::string_view value = *text;
    if (!prefix.empty() && value.starts_with(prefix)) value.remove_prefix(prefix.size());
    if (value.empty()) {
      Report(field, "the path is empty");
      return std::nullopt;
    }
    return Resolve(base_dir_, value).string();
  }

  const fs::path& base_dir() const { return base_dir_; }

 private:
  std::string display_file_;
  fs::path base_dir_;
  std::vector<Diagnostic> diagnostics_;
};

MapReader::MapReader(Checker& checker, const Field& map) : checker_(checker), map_(map) {
  std::map<std::string, Pos, std::less<>> seen;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const YAML::Node& key = it->first;
    Pos key_pos = PosOf(key);
    if (key_pos.line == 0) key_pos = map.pos;
    if (!key.IsScalar()) {
      checker_.Report(key_pos, (map.path.empty() ? std::string("top level") : map.path) +
                                   ": expected a key name, got " + KindName(key));
      continue;
    }
    std::string name = key.Scalar();
    auto [prev, inserted] = seen.emplace(name, key_pos);
    if (!inserted) {
      std::string where = map.path.empty() ? "" : map.path + ": ";
      checker_.Report(key_pos, where + "duplicate key " + Quote(name) + " (first defined at line " +
                                   std::to_string(prev->second.line) + ")");
      continue;
    }
    Field value = checker_.Child(map, name, key_pos, it->second);
    entries_.push_back(Entry{std::move(name), key_pos, std::move(value)});
  }
}

void MapReader::AllowOnly(const std::vector<std::string_view>& allowed) {
  for (const Entry& entry : entries_) {
    if (std::find(allowed.begin(), allowed.end(), entry.key) != allowed.end()) continue;
    std::string message =
        map_.path.empty() ? "unknown top-level key " : map_.path + ": unknown key ";
    message += Quote(entry.key) + " (expected one of: " + Join(allowed) + ")";
    checker_.Report(entry.key_pos, std::move(message));
  }
}

std::optional<Field> MapReader::Get(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return entry.value;
  }
  return std::nullopt;
}

std::optional<Field> MapReader::Require(std::string_view key, std::string_view what) {
  std::optional<Field> field = Get(key);
  if (!field) {
    std::string message = map_.path.empty() ? "" : map_.path + ": ";
    message += "missing required key " + Quote(key);
    if (!what.empty()) message += " (" + std::string(what) + ")";
    checker_.Report(map_.pos, std::move(message));
  }
  return field;
}

// Who claimed a host + path prefix first, to name both services in a conflict.
using RouteClaims = std::map<std::pair<std::string, std::string>, std::string>;

void ReadListen(Checker& checker, const Field& field, Config& config) {
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/true, "host:port or a list of host:port");
  if (!items) return;
  if (items->empty()) {
    checker.Report(field, "must list at least one host:port");
    return;
  }
  for (const Field& item : *items) {
    std::optional<HostPort> hp = checker.Endpoint(item, /*port_zero_allowed=*/true);
    if (!hp) continue;
    // Port 0 asks the kernel for any free port, so two of them do not collide.
    if (hp->port != 0 &&
        std::find(config.listen.begin(), config.listen.end(), *hp) != config.listen.end()) {
      checker.Report(item, Quote(item.node.Scalar()) + " is listed twice");
      continue;
    }
    config.listen.push_back(*hp);
  }
}

void ReadStore(Checker& checker, const Field& field, Config& config) {
  std::optional<std::string> text = checker.String(field, "a SQLite file path");
  if (!text) return;
  if (text->find("://") != std::string::npos) {
    checker.Report(field, Quote(*text) +
                              " is not supported: only SQLite file paths are supported "
                              "(a path, optionally prefixed with 'sqlite:')");
    return;
  }
  if (std::optional<std::string> path = checker.Path(field, "sqlite:")) config.store = *path;
}

void ReadControl(Checker& checker, const Field& field, Config& config) {
  std::optional<std::string> path = checker.Path(field, "unix:");
  if (!path) return;
  if (path->size() > kMaxUnixSocketPath) {
    checker.Report(field, "socket path " + Quote(*path) + " is " + std::to_string(path->size()) +
                              " bytes long; a unix socket path is limited to " +
                              std::to_string(kMaxUnixSocketPath));
    return;
  }
  config.control = *path;
}

void ReadAccessLog(Checker& checker, const Field& field, Config& config) {
  std::optional<std::string> text = checker.String(field, "'off', 'stdout' or a file path");
  if (!text) return;
  if (*text == "off") {
    config.access_log = {AccessLogConfig::Kind::kOff, ""};
  } else if (*text == "stdout") {
    config.access_log = {AccessLogConfig::Kind::kStdout, ""};
  } else if (std::optional<std::string> path = checker.Path(field, "")) {
    config.access_log = {AccessLogConfig::Kind::kFile, *path};
  }
}

// A bearer token: long enough to resist guessing, and sendable in a header as is.
std::optional<std::string> ReadToken(Checker& checker, const Field& field) {
  std::optional<std::string> token = checker.String(field, "a string");
  if (!token) return std::nullopt;
  // The token is a secret: messages describe it but never repeat it.
  if (token->size() < kMinTokenLength) {
    checker.Report(field, "must be at least " + std::to_string(kMinTokenLength) +
                              " characters long (it has " + std::to_string(token->size()) + ")");
    return std::nullopt;
  }
  for (char c : *token) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      checker.Report(field, "must not contain spaces or control characters");
      return std::nullopt;
    }
  }
  return token;
}

void ReadMetricsToken(Checker& checker, const Field& field, Config& config) {
  if (std::optional<std::string> token = ReadToken(checker, field)) config.metrics_token = *token;
}

void ReadTimeouts(Checker& checker, const Field& field, Config& config) {
  std::optional<MapReader> map = checker.Map(field, "a map of timeouts");
  if (!map) return;
  map->AllowOnly({"client_header", "client_idle", "upstream_connect", "upstream_response"});
  std::pair<std::string_view, Millis*> keys[] = {
      {"client_header", &config.timeouts.client_header},
      {"client_idle", &config.timeouts.client_idle},
      {"upstream_connect", &config.timeouts.upstream_connect},
      {"upstream_response", &config.timeouts.upstream_response},
  };
  for (auto [key, out] : keys) {
    if (std::optional<Field> f = map->Get(key)) {
      if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) *out = *d;
    }
  }
}

void ReadLimits(Checker& checker, const Field& field, Config& config) {
  std::optional<MapReader> map = checker.Map(field, "a map of limits");
  if (!map) return;
  map->AllowOnly({"max_header_bytes", "max_headers"});
  if (std::optional<Field> f = map->Get("max_header_bytes")) {
    if (std::optional<std::string> text = checker.String(*f, "a size (e.g. 16KiB)")) {
      Result<uint64_t> size = ParseByteSize(*text);
      if (!size) {
        checker.Report(*f, size.error().message);
      } else if (*size < kMinHeaderBytes || *size > kMaxHeaderBytes) {
        checker.Report(*f, Quote(*text) + " must be between 1KiB and 1MiB");
      } else {
        config.limits.max_header_bytes = static_cast<uint32_t>(*size);
      }
    }
  }
  if (std::optional<Field> f = map->Get("max_headers")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, kMaxHeaders)) {
      config.limits.max_headers = static_cast<uint32_t>(*n);
    }
  }
}

void ReadTargets(Checker& checker, const Field& field, std::vector<HostPort>& out,
                 const std::vector<HostPort>& other_color, std::string_view other_name) {
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/true, "a list of host:port");
  if (!items) return;
  for (const Field& item : *items) {
    std::optional<HostPort> hp = checker.Endpoint(item, /*port_zero_allowed=*/false);
    if (!hp) continue;
    if (std::find(out.begin(), out.end(), *hp) != out.end()) {
      checker.Report(item, Quote(item.node.Scalar()) + " is listed twice");
      continue;
    }
    if (std::find(other_color.begin(), other_color.end(), *hp) != other_color.end()) {
      checker.Report(item, Quote(item.node.Scalar()) + " is also a " + std::string(other_name) +
                               " target; blue and green must be different endpoints");
      continue;
    }
    out.push_back(*hp);
  }
}

// NAME=value pairs, in file order; names as the shell accepts them.
void ReadEnv(Checker& checker, const Field& field, EnvList& env) {
  std::optional<MapReader> map = checker.Map(field, "a map of environment variable to value");
  if (!map) return;
  for (const MapReader::Entry& e : map->entries()) {
    bool valid = !e.key.empty() && !std::isdigit(static_cast<unsigned char>(e.key[0]));
    for (char c : e.key) {
      valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    }
    if (!valid) {
      checker.Report(e.key_pos, field.path + ": " + Quote(e.key) +
                                    " is not a valid environment variable name (letters, digits "
                                    "and '_', not starting with a digit)");
      continue;
    }
    // The driver sets these per instance; a fixed value would send the router to a port the
    // instance does not listen on, or mislabel it.
    if (Contains(kDriverEnv, e.key)) {
      checker.Report(e.key_pos, field.path + ": " + Quote(e.key) +
                                    " is set by cutover for each instance and cannot be given "
                                    "here");
      continue;
    }
    if (std::optional<std::string> value = checker.String(e.value, "a string")) {
      env.emplace_back(e.key, *value);
    }
  }
}

void ReadProcessDriver(Checker& checker, MapReader& map, DriverConfig& driver) {
  driver.type = DriverType::kProcess;
  map.AllowOnly({"type", "command", "instances", "workdir", "env", "stop_timeout"});
  if (std::optional<Field> f = map.Require("command", "e.g. \"./app --port {port}\"")) {
    if (std::optional<std::string> command = checker.String(*f, "a shell command")) {
      if (command->find_first_not_of(" \t") == std::string::npos) {
        checker.Report(*f, "the command is empty");
      } else {
        driver.command = *command;
      }
    }
  }
  if (std::optional<Field> f = map.Get("instances")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, kMaxInstances)) {
      driver.instances = static_cast<int>(*n);
    }
  }
  driver.workdir = checker.base_dir().string();
  if (std::optional<Field> f = map.Get("workdir")) {
    if (std::optional<std::string> dir = checker.Path(*f, "")) driver.workdir = *dir;
  }
  if (std::optional<Field> f = map.Get("env")) ReadEnv(checker, *f, driver.env);
  if (std::optional<Field> f = map.Get("stop_timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      driver.stop_timeout = *d;
    }
  }
}

void ReadDriver(Checker& checker, const Field& field, DriverConfig& driver) {
  std::optional<MapReader> map = checker.Map(field, "a map with the driver's type and settings");
  if (!map) return;
  std::optional<Field> type_field =
      map->Require("type", "known types: " + std::string(kKnownDriverTypes));
  if (!type_field) return;
  std::optional<std::string> type = checker.String(*type_field, "a driver type");
  if (!type) return;
  if (*type == "process") {
    ReadProcessDriver(checker, *map, driver);
    return;
  }
  if (*type != "static") {
    // The other keys belong to a type we do not know, so they are not checked.
    checker.Report(*type_field, "unknown driver type " + Quote(*type) +
                                    " (known types: " + std::string(kKnownDriverTypes) + ")");
    return;
  }
  driver.type = DriverType::kStatic;
  map->AllowOnly({"type", "blue", "green"});
  // A color may have no targets here: a deploy can bring them (--targets).
  if (std::optional<Field> f = map->Get("blue")) {
    ReadTargets(checker, *f, driver.blue, driver.green, "green");
  }
  if (std::optional<Field> f = map->Get("green")) {
    ReadTargets(checker, *f, driver.green, driver.blue, "blue");
  }
}

// Nothing that would end or break the request line it is sent on.
bool HasNoSpaceOrControl(std::string_view text) {
  return std::none_of(text.begin(), text.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

// A path sent in a request line (health checks, checks): absolute, no spaces.
std::optional<std::string> ReadUrlPath(Checker& checker, const Field& field) {
  std::optional<std::string> path = checker.String(field, "a URL path");
  if (!path) return std::nullopt;
  if (!path->starts_with('/')) {
    checker.Report(field, Quote(*path) + " must start with '/'");
    return std::nullopt;
  }
  if (!HasNoSpaceOrControl(*path)) {
    checker.Report(field, Quote(*path) + " must not contain spaces or control characters");
    return std::nullopt;
  }
  return path;
}

void ReadHealth(Checker& checker, const Field& field, HealthConfig& health) {
  std::optional<MapReader> map = checker.Map(field, "a map of health check settings");
  if (!map) return;
  map->AllowOnly(
      {"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold", "deadline"});
  if (std::optional<Field> f = map->Get("deadline")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      health.deadline = *d;
    }
  }
  if (std::optional<Field> f = map->Get("path")) {
    if (std::optional<std::string> path = ReadUrlPath(checker, *f)) health.path = *path;
  }
  std::optional<Field> interval_field = map->Get("interval");
  std::optional<Field> timeout_field = map->Get("timeout");
  bool interval_ok = true;
  bool timeout_ok = true;
  if (interval_field) {
    std::optional<Millis> d = checker.Duration(*interval_field, /*zero_allowed=*/false);
    interval_ok = d.has_value();
    if (d) health.interval = *d;
  }
  if (timeout_field) {
    std::optional<Millis> d = checker.Duration(*timeout_field, /*zero_allowed=*/false);
    timeout_ok = d.has_value();
    if (d) health.timeout = *d;
  }
  if (interval_ok && timeout_ok && health.timeout >= health.interval) {
    // Point at whichever of the two the user wrote, the timeout first.
    if (timeout_field) {
      checker.Report(*timeout_field, Quote(timeout_field->node.Scalar()) +
                                         " must be less than interval (" +
                                         FormatDuration(health.interval) + ")");
    } else {
      checker.Report(*interval_field, Quote(interval_field->node.Scalar()) +
                                          " must be greater than timeout (" +
                                          FormatDuration(health.timeout) + ")");
    }
  }
  if (std::optional<Field> f = map->Get("healthy_threshold")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, kMaxThreshold)) {
      health.healthy_threshold = static_cast<int>(*n);
    }
  }
  if (std::optional<Field> f = map->Get("unhealthy_threshold")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, kMaxThreshold)) {
      health.unhealthy_threshold = static_cast<int>(*n);
    }
  }
}

// Returns the entries that were accepted, for the route conflict check.
std::vector<Field> ReadHosts(Checker& checker, const Field& field, ServiceConfig& service) {
  std::vector<Field> accepted;
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/true, "a host name or a list of host names");
  if (!items) return accepted;
  if (items->empty()) {
    checker.Report(field, "must list at least one host name (\"*\" matches any host)");
    return accepted;
  }
  for (const Field& item : *items) {
    std::optional<std::string> text = checker.String(item, "a host name");
    if (!text) continue;
    std::string host = ToLower(*text);
    if (host != "*") {
      size_t colon = host.rfind(':');
      if (colon != std::string::npos && IsValidHostName(host.substr(0, colon))) {
        checker.Report(item, Quote(*text) +
                                 ": a host may not include a port (the Host header is matched "
                                 "without its port); write " +
                                 Quote(host.substr(0, colon)));
        continue;
      }
      if (!IsValidHostName(host)) {
        checker.Report(item, Quote(*text) +
                                 " is not a valid host name (letters, digits, '-' and '.', or "
                                 "\"*\" alone for any host)");
        continue;
      }
    }
    if (std::find(service.hosts.begin(), service.hosts.end(), host) != service.hosts.end()) {
      checker.Report(item, Quote(*text) + " is listed twice");
      continue;
    }
    service.hosts.push_back(std::move(host));
    accepted.push_back(item);
  }
  return accepted;
}

// An HTTP method as a check writes it: upper-case letters.
bool IsMethod(std::string_view method) {
  return !method.empty() && std::all_of(method.begin(), method.end(), [](char c) {
    return std::isupper(static_cast<unsigned char>(c));
  });
}

// A header field name: an RFC 9110 token.
bool IsHeaderName(std::string_view name) {
  constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           kTokenPunctuation.find(c) != std::string_view::npos;
  });
}

// "db.status", "items.0.sku": no empty segment, which could never match.
bool IsDottedPath(std::string_view path) {
  if (path.empty() || path.front() == '.' || path.back() == '.') return false;
  return path.find("..") == std::string_view::npos;
}

constexpr std::string_view kRequestLineHint = "(expected \"METHOD /path\", e.g. \"GET /cart\")";

// "METHOD /path", or "/path" alone for a GET.
void ReadRequestLine(Checker& checker, const Field& field, const std::string& text,
                     CheckRequest& req) {
  std::string_view line = text;
  std::string_view method = "GET";
  if (size_t space = line.find(' '); space != std::string_view::npos) {
    method = line.substr(0, space);
    line.remove_prefix(space + 1);
    while (line.starts_with(' ')) line.remove_prefix(1);
  }
  if (!IsMethod(method)) {
    checker.Report(field, Quote(text) + ": the method must be upper-case letters " +
                              std::string(kRequestLineHint));
    return;
  }
  if (!line.starts_with('/') || !HasNoSpaceOrControl(line)) {
    checker.Report(field, Quote(text) + ": the path must start with '/' and contain no spaces " +
                              std::string(kRequestLineHint));
    return;
  }
  req.method = std::string(method);
  req.path = std::string(line);
}

void ReadHeaders(Checker& checker, const Field& field, EnvList& headers) {
  std::optional<MapReader> map = checker.Map(field, "a map of header name to value");
  if (!map) return;
  for (const MapReader::Entry& e : map->entries()) {
    if (!IsHeaderName(e.key)) {
      checker.Report(e.key_pos, field.path + ": " + Quote(e.key) +
                                    " is not a valid header name (letters, digits and "
                                    "!#$%&'*+-.^_`|~)");
      continue;
    }
    std::optional<std::string> value = checker.String(e.value, "a header value");
    if (!value) continue;
    // A line break would end the header early and smuggle in whatever follows it.
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      checker.Report(e.value, "must not contain line breaks or NUL");
      continue;
    }
    headers.emplace_back(e.key, *value);
  }
}

// The request and expectation keys shared by http checks and session steps.
void ReadRequestKeys(Checker& checker, const MapReader& map, CheckRequest& req) {
  std::optional<Field> request = map.Get("request");
  if (request) {
    if (std::optional<std::string> text = checker.String(*request, "\"METHOD /path\"")) {
      ReadRequestLine(checker, *request, *text, req);
    }
  }
  if (std::optional<Field> f = map.Get("method")) {
    if (request) {
      checker.Report(*f, "cannot be given with request, which already names the method");
    } else if (std::optional<std::string> m = checker.String(*f, "an HTTP method")) {
      if (!IsMethod(*m)) {
        checker.Report(*f, Quote(*m) + " is not an HTTP method (upper-case letters, e.g. POST)");
      } else {
        req.method = *m;
      }
    }
  }
  if (std::optional<Field> f = map.Get("path")) {
    if (request) {
      checker.Report(*f, "cannot be given with request, which already names the path");
    } else if (std::optional<std::string> path = ReadUrlPath(checker, *f)) {
      req.path = *path;
    }
  }
  if (std::optional<Field> f = map.Get("headers")) ReadHeaders(checker, *f, req.headers);
  if (std::optional<Field> f = map.Get("body")) {
    if (std::optional<std::string> body = checker.String(*f, "a request body")) req.body = *body;
  }
  if (std::optional<Field> f = map.Get("expect_status")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 100, 599)) {
      req.expect_status = static_cast<int>(*n);
    }
  }
  if (std::optional<Field> f = map.Get("expect_body")) {
    if (std::optional<std::string> b = checker.String(*f, "a text the body must contain")) {
      req.expect_body = *b;
    }
  }
  if (std::optional<Field> f = map.Get("expect_json")) {
    if (std::optional<MapReader> json = checker.Map(*f, "a map {field: a.b, equals: value}")) {
      json->AllowOnly({"field", "equals"});
      std::optional<Field> field = json->Require("field", "a dotted path, e.g. db.status");
      std::optional<Field> equals = json->Require("equals", "the expected value");
      if (field && equals) {
        std::optional<std::string> name = checker.String(*field, "a dotted path");
        if (name && !IsDottedPath(*name)) {
          checker.Report(*field, Quote(*name) +
                                     " is not a dotted path (names or list indexes joined by "
                                     "'.', e.g. db.status or items.0.sku)");
          name.reset();
        }
        // YAML's null is JSON's null; any other value is compared as the text it dumps to.
        std::optional<std::string> value =
            equals->node.IsNull() ? "null" : checker.String(*equals, "a value");
        if (name && value) {
          req.expect_json_field = *name;
          req.expect_json_value = *value;
        }
      }
    }
  }
}

constexpr std::string_view kRequestKeys[] = {
    "request", "method", "path", "headers", "body", "expect_status", "expect_body", "expect_json"};
constexpr std::string_view kExpectKeys[] = {"expect_status", "expect_body", "expect_json"};
constexpr std::string_view kAttemptKeys[] = {"timeout", "retries", "retry_interval"};
constexpr std::string_view kCheckKinds[] = {"http", "command", "session", "analysis"};
constexpr int64_t kMaxRetries = 100;

// timeout, retries and retry_interval, from the check's own map or from the map of its kind
// (`outer` is then the check's map: a setting may be given in one place only).
void ReadAttemptKeys(Checker& checker, const MapReader& map, CheckConfig& check,
                     const MapReader* outer = nullptr) {
  auto get = [&](std::string_view key) -> std::optional<Field> {
    std::optional<Field> f = map.Get(key);
    if (!f || !outer) return f;
    if (std::optional<Field> first = outer->Get(key)) {
      checker.Report(*f, "also given as " + first->path + "; give it once");
      return std::nullopt;
    }
    return f;
  };
  if (std::optional<Field> f = get("timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) check.timeout = *d;
  }
  if (std::optional<Field> f = get("retries")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 0, kMaxRetries)) {
      check.retries = static_cast<int>(*n);
    }
  }
  if (std::optional<Field> f = get("retry_interval")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      check.retry_interval = *d;
    }
  }
}

std::vector<std::string_view> Keys(std::span<const std::string_view> a,
                                   std::span<const std::string_view> b = {}) {
  std::vector<std::string_view> out(a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

std::vector<std::string_view> Keys(std::initializer_list<std::string_view> a,
                                   std::span<const std::string_view> b = {}) {
  return Keys(std::span<const std::string_view>(a.begin(), a.size()), b);
}

// A session's list: "METHOD /path" strings, each optionally followed by a map of
// expectations for it, or maps that start a request with `request` or `path`.
void ReadSessionSteps(Checker& checker, const Field& field, std::vector<CheckRequest>& out) {
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/true, "a list of requests (\"METHOD /path\")");
  if (!items) return;
  if (items->empty()) {
    checker.Report(field, "must list at least one request");
    return;
  }
  for (const Field& item : *items) {
    if (item.node.IsScalar()) {
      // Kept even when malformed, so that the expectations after it are not blamed on the
      // request before it; the file is refused anyway.
      out.emplace_back();
      ReadRequestLine(checker, item, item.node.Scalar(), out.back());
      continue;
    }
    std::optional<MapReader> map = checker.Map(item, "\"METHOD /path\" or a map");
    if (!map) continue;
    map->AllowOnly(Keys(kRequestKeys));
    if (map->Get("request") || map->Get("path")) {
      out.emplace_back();
      ReadRequestKeys(checker, *map, out.back());
      continue;
    }
    // Without request or path, the map only adds expectations to the request before it: a
    // method, headers or a body here would silently rewrite that request.
    bool request_keys = false;
    for (const MapReader::Entry& e : map->entries()) {
      if (!Contains(kRequestKeys, e.key) || Contains(kExpectKeys, e.key)) continue;
      request_keys = true;
      checker.Report(e.key_pos, item.path + ": " + Quote(e.key) +
                                    " needs request or path in the same map (a map without "
                                    "them only adds expectations to the request before it)");
    }
    if (request_keys) continue;
    if (out.empty()) {
      checker.Report(item,
                     "expectations must follow the request they apply to, e.g. "
                     "[GET /cart, expect_body: gadget]");
      continue;
    }
    ReadRequestKeys(checker, *map, out.back());
  }
}

// "'a' and 'b'", "'a', 'b' and 'c'".
std::string QuotedList(const std::vector<std::string_view>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += Quote(items[i]);
  }
  return out;
}

void ReadCommandCheck(Checker& checker, const MapReader& outer, const Field& body,
                      CheckConfig& check) {
  check.kind = CheckConfig::Kind::kCommand;
  std::optional<std::string> command;
  Field command_field = body;
  if (body.node.IsScalar()) {
    command = body.node.Scalar();
  } else if (std::optional<MapReader> m = checker.Map(body, "a shell command or {run: COMMAND}")) {
    m->AllowOnly(Keys({"run"}, kAttemptKeys));
    ReadAttemptKeys(checker, *m, check, &outer);
    if (std::optional<Field> f = m->Require("run", "the shell command")) {
      command_field = *f;
      command = checker.String(*f, "a shell command");
    }
  }
  if (command && command->find_first_not_of(" \t") == std::string::npos) {
    checker.Report(command_field, "the command is empty");
  } else if (command) {
    check.command = *command;
  }
  check.name = "command " + check.command;
}

void ReadHttpCheck(Checker& checker, const MapReader& outer, const Field& body,
                   CheckConfig& check) {
  check.kind = CheckConfig::Kind::kHttp;
  if (body.node.IsScalar()) {
    ReadRequestLine(checker, body, body.node.Scalar(), check.http);
  } else if (std::optional<MapReader> m = checker.Map(body, "\"METHOD /path\" or a map")) {
    m->AllowOnly(Keys(kRequestKeys, kAttemptKeys));
    ReadAttemptKeys(checker, *m, check, &outer);
    ReadRequestKeys(checker, *m, check.http);
  }
  check.name = "http " + check.http.method + " " + check.http.path;
}

void ReadSessionCheck(Checker& checker, const MapReader& outer, const Field& body,
                      CheckConfig& check) {
  check.kind = CheckConfig::Kind::kSession;
  if (std::optional<MapReader> m = checker.Map(body, "a map with on_live and on_idle")) {
    m->AllowOnly(Keys({"on_live", "on_idle"}, kAttemptKeys));
    ReadAttemptKeys(checker, *m, check, &outer);
    if (std::optional<Field> f = m->Require("on_live", "requests that create state")) {
      ReadSessionSteps(checker, *f, check.on_live);
    }
    if (std::optional<Field> f = m->Require("on_idle", "requests that must see that state")) {
      ReadSessionSteps(checker, *f, check.on_idle);
    }
  }
  check.name = "session";
}

void ReadAnalysisCheck(Checker& checker, const Field& body, CheckConfig& check) {
  check.kind = CheckConfig::Kind::kAnalysis;
  check.name = "analysis";
  check.retries = 0;
  std::optional<MapReader> m = checker.Map(body, "a map with requests, duration and rate");
  if (!m) return;
  m->AllowOnly({"requests", "replay", "duration", "rate", "timeout"});
  std::optional<Field> requests = m->Get("requests");
  std::optional<Field> replay = m->Get("replay");
  if (requests && replay) {
    checker.Report(*replay, "give requests or replay, not both");
  } else if (requests) {
    ReadSessionSteps(checker, *requests, check.requests);
  } else if (replay) {
    if (std::optional<int64_t> n = checker.Integer(*replay, 1, 1000)) {
      check.replay = static_cast<int>(*n);
    }
  } else {
    checker.Report(body,
                   "an analysis needs requests (e.g. [GET /, GET /products]) or replay (how many "
                   "recent live GET paths to send)");
  }
  if (std::optional<Field> f = m->Get("duration")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      check.duration = *d;
    }
  }
  if (std::optional<Field> f = m->Get("rate")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, 10'000)) {
      check.rate = static_cast<int>(*n);
    }
  }
  if (std::optional<Field> f = m->Get("timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) check.timeout = *d;
  }
}

void ReadCheck(Checker& checker, const Field& item, CheckConfig& check) {
  std::optional<MapReader> map =
      checker.Map(item, "a check: {http: ...}, {command: ...}, {session: ...} or {analysis: ...}");
  if (!map) return;
  std::vector<std::string_view> allowed = Keys(kCheckKinds, Keys({"name"}, kAttemptKeys));
  std::vector<std::string_view> kinds;
  bool all_known = true;
  for (const MapReader::Entry& e : map->entries()) {
    if (Contains(kCheckKinds, e.key)) kinds.push_back(e.key);
    all_known = all_known && Contains(allowed, e.key);
  }
  if (kinds.empty()) {
    // A misspelt kind is reported as the unknown key it is, and once.
    map->AllowOnly(allowed);
    if (all_known) {
      checker.Report(item, "a check needs one of the keys http, command, session or analysis");
    }
    return;
  }
  if (kinds.size() > 1) {
    checker.Report(item,
                   "a check has exactly one of the keys http, command, session or analysis (this "
                   "one has " +
                       QuotedList(kinds) + ")");
    return;
  }
  // An analysis has one timeout per request, inside it, and no retries.
  if (kinds[0] == "analysis") {
    map->AllowOnly({"analysis", "name"});
  } else {
    map->AllowOnly(Keys({kinds[0], "name"}, kAttemptKeys));
    ReadAttemptKeys(checker, *map, check);
  }
  Field body = *map->Get(kinds[0]);
  if (kinds[0] == "command") {
    ReadCommandCheck(checker, *map, body, check);
  } else if (kinds[0] == "http") {
    ReadHttpCheck(checker, *map, body, check);
  } else if (kinds[0] == "analysis") {
    ReadAnalysisCheck(checker, body, check);
  } else {
    ReadSessionCheck(checker, *map, body, check);
  }
  if (std::optional<Field> f = map->Get("name")) {
    if (std::optional<std::string> name = checker.String(*f, "a name")) {
      if (name->find_first_not_of(" \t") == std::string::npos) {
        checker.Report(*f, "the name is empty");
      } else {
        check.name = *name;
      }
    }
  }
}

// Returns the analysis checks' items, which need the service's observe
// thresholds.
std::vector<Field> ReadChecks(Checker& checker, const Field& field,
                              std::vector<CheckConfig>& checks) {
  std::vector<Field> analyses;
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/false, "a list of checks");
  if (!items) return analyses;
  for (const Field& item : *items) {
    CheckConfig check;
    ReadCheck(checker, item, check);
    if (check.kind == CheckConfig::Kind::kAnalysis) analyses.push_back(item);
    checks.push_back(std::move(check));
  }
  return analyses;
}

void ReadPromotion(Checker& checker, const Field& field, PromotionConfig& promotion) {
  if (field.node.IsScalar()) {
    std::string text = field.node.Scalar();
    if (text == "auto") {
      promotion.mode = PromotionConfig::Mode::kAuto;
    } else if (text == "manual") {
      promotion.mode = PromotionConfig::Mode::kManual;
    } else {
      checker.Report(field, Quote(text) +
                                " is not a promotion (expected auto, manual or "
                                "{auto_after: DURATION})");
    }
    return;
  }
  std::optional<MapReader> map = checker.Map(field, "auto, manual or {auto_after: DURATION}");
  if (!map) return;
  map->AllowOnly({"auto_after"});
  if (std::optional<Field> f = map->Require("auto_after", "e.g. 5m")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      promotion.mode = PromotionConfig::Mode::kAutoAfter;
      promotion.auto_after = *d;
    }
  }
}

// "5%", "0.5%": a share written as a percentage, returned as a fraction.
std::optional<double> ReadPercent(Checker& checker, const Field& field) {
  std::optional<std::string> text = checker.String(field, "a percentage such as 5%");
  if (!text) return std::nullopt;
  std::string_view number = *text;
  if (!number.ends_with('%')) {
    checker.Report(field, Quote(*text) + " is not a percentage (write it with %, e.g. 5%)");
    return std::nullopt;
  }
  number.remove_suffix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || value < 0 || value > 100) {
    checker.Report(field, Quote(*text) + " is not a percentage between 0% and 100%");
    return std::nullopt;
  }
  return value / 100;
}

// "2", "1.5", "3x": how many times the old release's figure.
std::optional<double> ReadRatio(Checker& checker, const Field& field) {
  std::optional<std::string> text = checker.String(field, "a ratio such as 2");
  if (!text) return std::nullopt;
  std::string_view number = *text;
  if (number.ends_with('x')) number.remove_suffix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || value < 1) {
    checker.Report(field, Quote(*text) + " is not a ratio of at least 1 (e.g. 2 or 1.5)");
    return std::nullopt;
  }
  return value;
}

void ReadObserve(Checker& checker, const Field& field, ObserveConfig& observe) {
  std::optional<MapReader> map = checker.Map(field, "a map with window and thresholds");
  if (!map) return;
  map->AllowOnly({"window", "interval", "max_error_rate", "max_error_rate_increase", "max_p99",
                  "max_p99_ratio", "min_requests", "on_inconclusive"});
  if (std::optional<Field> f = map->Get("window")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      observe.window = *d;
    }
  }
  if (std::optional<Field> f = map->Get("interval")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      if (*d < Millis(1000)) {
        checker.Report(*f, Quote(FormatDuration(*d)) + " is shorter than the 1s sampling step");
      } else {
        observe.interval = *d;
      }
    }
  }
  if (std::optional<Field> f = map->Get("max_error_rate")) {
    observe.max_error_rate = ReadPercent(checker, *f);
  }
  if (std::optional<Field> f = map->Get("max_error_rate_increase")) {
    observe.max_error_rate_increase = ReadPercent(checker, *f);
  }
  if (std::optional<Field> f = map->Get("max_p99")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      observe.max_p99 = *d;
    }
  }
  if (std::optional<Field> f = map->Get("max_p99_ratio")) {
    observe.max_p99_ratio = ReadRatio(checker, *f);
  }
  if (std::optional<Field> f = map->Get("min_requests")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 1, 1'000'000'000)) {
      observe.min_requests = static_cast<uint64_t>(*n);
    }
  }
  if (std::optional<Field> f = map->Get("on_inconclusive")) {
    if (std::optional<std::string> text = checker.String(*f, "promote, rollback or wait")) {
      if (*text == "promote") {
        observe.on_inconclusive = ObserveConfig::OnInconclusive::kPromote;
      } else if (*text == "rollback") {
        observe.on_inconclusive = ObserveConfig::OnInconclusive::kRollback;
      } else if (*text == "wait") {
        observe.on_inconclusive = ObserveConfig::OnInconclusive::kWait;
      } else {
        checker.Report(*f, Quote(*text) + " is not one of promote, rollback, wait");
      }
    }
  }
  if (!map->Get("max_error_rate") && !map->Get("max_error_rate_increase") && !map->Get("max_p99") &&
      !map->Get("max_p99_ratio")) {
    checker.Report(field,
                   "observe needs at least one threshold: max_error_rate, "
                   "max_error_rate_increase, max_p99 or max_p99_ratio");
  }
}

void ReadMigrations(Checker& checker, const Field& field, MigrationsConfig& migrations) {
  std::optional<MapReader> map = checker.Map(field, "a map with database and dir");
  if (!map) return;
  map->AllowOnly({"database", "dir", "lock_timeout", "lock_wait"});
  if (std::optional<Field> f =
          map->Require("database", "postgres://USER@HOST:PORT/DB or sqlite:PATH")) {
    if (std::optional<std::string> url = checker.String(*f, "a database URL")) {
      if (url->starts_with("postgres://") || url->starts_with("postgresql://")) {
        migrations.database = *url;
      } else if (url->starts_with("sqlite:")) {
        if (std::optional<std::string> path = checker.Path(*f, "sqlite:")) {
          migrations.database = "sqlite:" + *path;
        }
      } else {
        checker.Report(*f, Quote(*url) +
                               " is not a database URL (expected postgres://..., "
                               "postgresql://... or sqlite:PATH)");
      }
    }
  }
  if (std::optional<Field> f = map->Require("dir", "the folder of the migration files")) {
    if (std::optional<std::string> dir = checker.Path(*f, "")) {
      std::error_code ec;
      if (!fs::is_directory(*dir, ec)) {
        checker.Report(*f, "folder " + Quote(*dir) + " does not exist");
      } else {
        migrations.dir = *dir;
      }
    }
  }
  if (std::optional<Field> f = map->Get("lock_timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/false)) {
      migrations.lock_timeout = *d;
    }
  }
  if (std::optional<Field> f = map->Get("lock_wait")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      migrations.lock_wait = *d;
    }
  }
}

// Returns the `listen` value when one was given, for the check against the main listeners.
std::optional<Field> ReadPreview(Checker& checker, const Field& field, PreviewConfig& preview) {
  if (field.node.IsScalar() && field.node.Scalar() == "off") {
    preview.enabled = false;
    return std::nullopt;
  }
  std::optional<MapReader> map = checker.Map(field, "off or a map {listen, token}");
  if (!map) return std::nullopt;
  map->AllowOnly({"listen", "token"});
  std::optional<Field> listen = map->Get("listen");
  if (listen) {
    if (std::optional<HostPort> hp = checker.Endpoint(*listen, /*port_zero_allowed=*/true)) {
      preview.listen = *hp;
    }
  }
  if (std::optional<Field> f = map->Get("token")) {
    if (std::optional<std::string> token = ReadToken(checker, *f)) preview.token = *token;
  }
  return listen;
}

// The listeners use SO_REUSEPORT, so a preview bound to a main listen address would not
// fail: the kernel would quietly hand part of the production traffic to the idle color.
void CheckPreviewAddress(Checker& checker, const std::optional<Field>& listen_field,
                         const std::optional<Field>& preview_listen_field, const Config& config) {
  const PreviewConfig& preview = config.preview;
  if (!preview.enabled || preview.listen.port == 0) return;
  if (std::find(config.listen.begin(), config.listen.end(), preview.listen) ==
      config.listen.end()) {
    return;
  }
  if (preview_listen_field) {
    // A value that did not parse was reported already, and left the default in place.
    const YAML::Node& node = preview_listen_field->node;
    if (!node.IsScalar()) return;
    Result<HostPort> given = ParseHostPort(node.Scalar());
    if (!given || *given != preview.listen) return;
    checker.Report(*preview_listen_field,
                   Quote(preview_listen_field->node.Scalar()) +
                       " is also a listen address; the preview needs an address of its own");
  } else if (listen_field) {
    checker.Report(*listen_field, Quote(preview.listen.ToString()) +
                                      " is the preview's default address; set preview.listen "
                                      "to another address, or preview: off");
  }
}

void ReadPorts(Checker& checker, const Field& field, PortRange& ports) {
  std::optional<std::string> text = checker.String(field, "a port range, e.g. 20000-29999");
  if (!text) return;
  size_t dash = text->find('-');
  unsigned first = 0, last = 0;
  auto num = [](std::string_view s, unsigned& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out >= 1 && out <= 65535;
  };
  if (dash == std::string::npos || !num(std::string_view(*text).substr(0, dash), first) ||
      !num(std::string_view(*text).substr(dash + 1), last)) {
    checker.Report(field, Quote(*text) +
                              " is not a port range (FIRST-LAST, ports 1-65535, e.g. "
                              "20000-29999)");
    return;
  }
  if (first > last) {
    checker.Report(field, Quote(*text) +
                              ": the first port must not be greater than the last "
                              "(FIRST-LAST, e.g. 20000-29999)");
    return;
  }
  ports.first = static_cast<uint16_t>(first);
  ports.last = static_cast<uint16_t>(last);
}

void ReadService(Checker& checker, const MapReader::Entry& entry, RouteClaims& claims,
                 Config& config) {
  ServiceConfig service;
  service.name = entry.key;
  if (!IsValidServiceName(service.name)) {
    checker.Report(entry.key_pos,
                   "services: invalid service name " + Quote(service.name) +
                       " (lower-case letters, digits, '_' and '-', starting with a letter or "
                       "digit, at most 63 characters)");
  }
  std::optional<MapReader> map = checker.Map(entry.value, "a map of service settings");
  if (!map) return;
  map->AllowOnly({"hosts", "path_prefix", "driver", "health", "drain_timeout", "checks",
                  "promotion", "rollback_window", "migrations", "observe"});

  std::vector<Field> host_items;
  if (std::optional<Field> f = map->Require("hosts", "\"*\" matches any host")) {
    host_items = ReadHosts(checker, *f, service);
  }
  bool prefix_ok = true;
  if (std::optional<Field> f = map->Get("path_prefix")) {
    std::optional<std::string> prefix = checker.String(*f, "a URL path prefix");
    prefix_ok = prefix.has_value();
    if (prefix && !prefix->starts_with('/')) {
      checker.Report(*f, Quote(*prefix) + " must start with '/'");
      prefix_ok = false;
    } else if (prefix && prefix->find_first_of("?# \t") != std::string::npos) {
      checker.Report(*f, Quote(*prefix) + " must be a plain path (no '?', '#' or spaces)");
      prefix_ok = false;
    } else if (prefix) {
      service.path_prefix = *prefix;
    }
  }
  if (std::optional<Field> f =
          map->Require("driver", "with its type: " + std::string(kKnownDriverTypes))) {
    ReadDriver(checker, *f, service.driver);
  }
  if (std::optional<Field> f = map->Get("health")) ReadHealth(checker, *f, service.health);
  if (std::optional<Field> f = map->Get("drain_timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      service.drain_timeout = *d;
    }
  }
  std::vector<Field> analyses;
  if (std::optional<Field> f = map->Get("checks")) {
    analyses = ReadChecks(checker, *f, service.checks);
  }
  if (std::optional<Field> f = map->Get("promotion")) {
    ReadPromotion(checker, *f, service.promotion);
  }
  if (std::optional<Field> f = map->Get("rollback_window")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      service.rollback_window = *d;
    }
  }
  if (std::optional<Field> f = map->Get("migrations")) {
    ReadMigrations(checker, *f, service.migrations.emplace());
  }
  std::optional<Field> observe = map->Get("observe");
  if (observe) ReadObserve(checker, *observe, service.observe);
  if (!observe) {
    for (const Field& item : analyses) {
      checker.Report(item,
                     "an analysis check is judged with the service's observe thresholds; add "
                     "observe: {max_error_rate: 5%} (a window is not needed)");
    }
  }

  if (prefix_ok) {
    for (const Field& item : host_items) {
      std::string host = ToLower(item.node.Scalar());
      auto [it, inserted] = claims.emplace(std::pair(host, service.path_prefix), service.name);
      if (!inserted) {
        checker.Report(item, "service " + Quote(service.name) + " claims host " + Quote(host) +
                                 " with path_prefix " + Quote(service.path_prefix) +
                                 ", which service " + Quote(it->second) + " already claims");
      }
    }
  }
  config.services.push_back(std::move(service));
}

void ReadServices(Checker& checker, const Field& field, Config& config) {
  std::optional<MapReader> map = checker.Map(field, "a map of service name to settings");
  if (!map) return;
  if (map->entries().empty()) {
    checker.Report(field, "must define at least one service");
    return;
  }
  RouteClaims claims;
  for (const MapReader::Entry& entry : map->entries()) ReadService(checker, entry, claims, config);
}

void ReadRoot(Checker& checker, const YAML::Node& root, Config& config) {
  Field top{"", root, PosOf(root)};
  if (top.pos.line == 0) top.pos = {1, 1};
  if (!root.IsMap()) {
    checker.Report(top.pos, "expected a map of settings at the top level, got " + KindName(root));
    return;
  }
  MapReader map(checker, top);
  map.AllowOnly({"listen", "preview", "control", "store", "logs", "ports", "metrics_listen",
                 "metrics_token", "access_log", "workers", "io", "timeouts", "limits", "services"});

  std::optional<Field> listen = map.Require("listen", "host:port or a list of host:port");
  if (listen) ReadListen(checker, *listen, config);
  if (std::optional<Field> f = map.Get("control")) ReadControl(checker, *f, config);
  if (std::optional<Field> f = map.Get("store")) ReadStore(checker, *f, config);
  config.logs = (fs::path(config.store).parent_path() / "logs").string();
  if (std::optional<Field> f = map.Get("logs")) {
    if (std::optional<std::string> dir = checker.Path(*f, "")) config.logs = *dir;
  }
  std::optional<Field> preview_listen;
  if (std::optional<Field> f = map.Get("preview")) {
    preview_listen = ReadPreview(checker, *f, config.preview);
  }
  CheckPreviewAddress(checker, listen, preview_listen, config);
  if (std::optional<Field> f = map.Get("ports")) ReadPorts(checker, *f, config.ports);
  std::optional<Field> metrics_listen = map.Get("metrics_listen");
  if (metrics_listen) {
    config.metrics_listen = checker.Endpoint(*metrics_listen, /*port_zero_allowed=*/true);
  }
  std::optional<Field> metrics_token = map.Get("metrics_token");
  if (metrics_token) ReadMetricsToken(checker, *metrics_token, config);
  if (metrics_listen && !metrics_token) {
    checker.Report(*metrics_listen,
                   "requires metrics_token (anything served over TCP needs a bearer token of at "
                   "least " +
                       std::to_string(kMinTokenLength) + " characters)");
  }
  if (std::optional<Field> f = map.Get("access_log")) ReadAccessLog(checker, *f, config);
  if (std::optional<Field> f = map.Get("workers")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 0, kMaxWorkers, "0: one per core")) {
      config.workers = static_cast<int>(*n);
    }
  }
  if (std::optional<Field> f = map.Get("io")) {
    if (std::optional<std::string> text = checker.String(*f, "io_uring or epoll")) {
      if (*text == "io_uring") {
        config.io_uring = true;
      } else if (*text == "epoll") {
        config.io_uring = false;
      } else {
        checker.Report(*f, Quote(*text) + " is not one of io_uring, epoll");
      }
    }
  }
  if (std::optional<Field> f = map.Get("timeouts")) ReadTimeouts(checker, *f, config);
  if (std::optional<Field> f = map.Get("limits")) ReadLimits(checker, *f, config);
  if (std::optional<Field> f = map.Require("services", "a map of service name to settings")) {
    ReadServices(checker, *f, config);
  }
}

fs::path AbsoluteFile(const std::string& file) {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(file), ec);
  if (ec) abs = fs::path(file);
  return abs.lexically_normal();
}

// Bytes that stand in for a '?' yaml-cpp cannot read; the first one the text does not contain
// is used. Any of them is an ordinary character anywhere in a plain scalar.
constexpr std::string_view kQuestionMarkStandIns = "^~$;()";
constexpr int kMaxYamlDepth = 64;

// Puts back the '?' replaced by `stand_in`. Only plain scalars ("?" tag) hold stand-ins: a
// quoted scalar never trips the parser, and may produce the byte from an escape. Depth is
// bounded because an alias can make the tree a cycle.
void RestoreQuestionMarks(YAML::Node node, char stand_in, int depth) {
  if (depth > kMaxYamlDepth) return;
  if (node.IsScalar()) {
    if (node.Tag() != "?" || node.Scalar().find(stand_in) == std::string::npos) return;
    std::string value = node.Scalar();
    std::replace(value.begin(), value.end(), stand_in, '?');
    node = value;  // in place: the node keeps its position for messages
  } else if (node.IsSequence()) {
    for (YAML::Node child : node) RestoreQuestionMarks(child, stand_in, depth + 1);
  } else if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      RestoreQuestionMarks(it->first, stand_in, depth + 1);
      RestoreQuestionMarks(it->second, stand_in, depth + 1);
    }
  }
}

// Parses every YAML document in `text`. yaml-cpp ends a plain scalar at a '?' inside [ ] or
// { }, where YAML 1.2 keeps it in the value: `{path: /search?q=x}` and
// `[POST /cart?sku=1]` would be syntax errors. Each '?' it stops at is swapped for a byte of
// the same width that the text does not contain, and put back once the tree is built, so
// every position in a message stays true.
std::expected<std::vector<YAML::Node>, Diagnostic> LoadDocuments(const std::string& text,
                                                                 const std::string& file) {
  // yaml-cpp skips a byte order mark and counts positions without it.
  constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
  std::string source = text.starts_with(kUtf8Bom) ? text.substr(kUtf8Bom.size()) : text;
  char stand_in = 0;
  for (char c : kQuestionMarkStandIns) {
    if (source.find(c) == std::string::npos) {
      stand_in = c;
      break;
    }
  }
  bool replaced = false;
  while (true) {
    try {
      std::vector<YAML::Node> documents = YAML::LoadAll(source);
      if (replaced) {
        for (YAML::Node& document : documents) RestoreQuestionMarks(document, stand_in, 0);
      }
      return documents;
    } catch (const YAML::Exception& e) {
      bool at_question_mark = e.msg == YAML::ErrorMsg::UNKNOWN_TOKEN && !e.mark.is_null() &&
                              e.mark.pos >= 0 && static_cast<size_t>(e.mark.pos) < source.size() &&
                              source[static_cast<size_t>(e.mark.pos)] == '?';
      // Terminates: each pass removes one '?' from the source.
      if (at_question_mark && stand_in != 0) {
        source[static_cast<size_t>(e.mark.pos)] = stand_in;
        replaced = true;
        continue;
      }
      Pos pos = PosOf(e.mark);
      std::string message = e.msg;
      // A bare * starts a YAML alias, a common slip when writing the catch-all host.
      if (message.find("alias not found after *") != std::string::npos) {
        message += " (to match any host, quote it: \"*\")";
      } else if (at_question_mark) {
        message += " (inside [ ] or { }, quote a value that contains '?')";
      }
      return std::unexpected(Diagnostic{file, pos.line, pos.column, std::move(message)});
    } catch (const std::exception& e) {
      return std::unexpected(Diagnostic{file, 0, 0, e.what()});
    }
  }
}

}  // namespace

std::expected<Config, std::vector<Diagnostic>> ParseConfig(const std::string& text,
                                                           const std::string& file) {
  fs::path abs_file = AbsoluteFile(file);
  Checker checker(file, abs_file.parent_path());
  Config config;
  config.file = abs_file.string();
  config.control = Resolve(checker.base_dir(), "cutover.sock").string();
  config.store = Resolve(checker.base_dir(), "state/cutover.db").string();

  std::expected<std::vector<YAML::Node>, Diagnostic> loaded = LoadDocuments(text, file);
  if (!loaded) return std::unexpected(std::vector<Diagnostic>{std::move(loaded.error())});
  std::vector<YAML::Node>& documents = *loaded;
  if (documents.empty() || documents.front().IsNull()) {
    return std::unexpected(std::vector<Diagnostic>{
        {file, 0, 0, "the file is empty (it needs at least 'listen' and 'services')"}});
  }
  if (documents.size() > 1) {
    Pos pos = PosOf(documents[1]);
    checker.Report(pos, "only one YAML document is allowed; this one would be ignored");
  }
  try {
    ReadRoot(checker, documents.front(), config);
  } catch (const std::exception& e) {
    // Reading an already parsed tree is not expected to throw; if yaml-cpp does, say so
    // rather than crash the daemon that is reloading.
    checker.Report(Pos{}, std::string("cannot read the configuration: ") + e.what());
  }
  if (!checker.ok()) return std::unexpected(checker.TakeDiagnostics());
  return config;
}

std::expected<Config, std::vector<Diagnostic>> LoadConfig(const std::string& path) {
  auto fail = [&](int err) {
    return std::unexpected(
        std::vector<Diagnostic>{{path, 0, 0, std::string("cannot read: ") + std::strerror(err)}});
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) return fail(errno);
  std::string text;
  char buf[8192];
  while (true) {
    size_t n = std::fread(buf, 1, sizeof(buf), f.get());
    text.append(buf, n);
    if (n < sizeof(buf)) {
      if (std::ferror(f.get())) return fail(errno);
      break;
    }
  }
  return ParseConfig(text, path);
}

}  // namespace cutover
