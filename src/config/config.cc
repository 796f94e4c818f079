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

constexpr std::string_view kKnownDriverTypes = "static";
constexpr int kMaxWorkers = 256;
constexpr uint64_t kMinHeaderBytes = 1024;
constexpr uint64_t kMaxHeaderBytes = 1024 * 1024;
constexpr int64_t kMaxHeaders = 1000;
constexpr int64_t kMaxThreshold = 100;
constexpr size_t kMinMetricsTokenLength = 16;
constexpr size_t kMaxServiceNameLength = 63;
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

void ReadMetricsToken(Checker& checker, const Field& field, Config& config) {
  std::optional<std::string> token = checker.String(field, "a string");
  if (!token) return;
  // The token is a secret: messages describe it but never repeat it.
  if (token->size() < kMinMetricsTokenLength) {
    checker.Report(field, "must be at least " + std::to_string(kMinMetricsTokenLength) +
                              " characters long (it has " + std::to_string(token->size()) + ")");
    return;
  }
  for (char c : *token) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      checker.Report(field, "must not contain spaces or control characters");
      return;
    }
  }
  config.metrics_token = *token;
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

// Returns false when the value is not a list at all, so that the driver does not also
// complain that it has no targets.
bool ReadTargets(Checker& checker, const Field& field, std::vector<HostPort>& out,
                 const std::vector<HostPort>& other_color, std::string_view other_name,
                 size_t& entries) {
  std::optional<std::vector<Field>> items =
      checker.Items(field, /*single_allowed=*/true, "a list of host:port");
  if (!items) return false;
  entries += items->size();
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
  return true;
}

void ReadDriver(Checker& checker, const Field& field, DriverConfig& driver) {
  std::optional<MapReader> map = checker.Map(field, "a map with the driver's type and settings");
  if (!map) return;
  std::optional<Field> type_field =
      map->Require("type", "known types: " + std::string(kKnownDriverTypes));
  if (!type_field) return;
  std::optional<std::string> type = checker.String(*type_field, "a driver type");
  if (!type) return;
  if (*type != "static") {
    // The other keys belong to a type we do not know, so they are not checked.
    checker.Report(*type_field, "unknown driver type " + Quote(*type) +
                                    " (known types: " + std::string(kKnownDriverTypes) + ")");
    return;
  }
  driver.type = DriverType::kStatic;
  map->AllowOnly({"type", "blue", "green"});
  size_t entries = 0;
  bool lists_ok = true;
  if (std::optional<Field> f = map->Get("blue")) {
    lists_ok &= ReadTargets(checker, *f, driver.blue, driver.green, "green", entries);
  }
  if (std::optional<Field> f = map->Get("green")) {
    lists_ok &= ReadTargets(checker, *f, driver.green, driver.blue, "blue", entries);
  }
  if (lists_ok && entries == 0) {
    checker.Report(field, "the static driver needs at least one target in blue or green");
  }
}

void ReadHealth(Checker& checker, const Field& field, HealthConfig& health) {
  std::optional<MapReader> map = checker.Map(field, "a map of health check settings");
  if (!map) return;
  map->AllowOnly({"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold"});
  if (std::optional<Field> f = map->Get("path")) {
    if (std::optional<std::string> path = checker.String(*f, "a URL path")) {
      if (!path->starts_with('/')) {
        checker.Report(*f, Quote(*path) + " must start with '/'");
      } else {
        health.path = *path;
      }
    }
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
  map->AllowOnly({"hosts", "path_prefix", "driver", "health", "drain_timeout"});

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
  if (std::optional<Field> f = map->Require("driver", "with its type: static")) {
    ReadDriver(checker, *f, service.driver);
  }
  if (std::optional<Field> f = map->Get("health")) ReadHealth(checker, *f, service.health);
  if (std::optional<Field> f = map->Get("drain_timeout")) {
    if (std::optional<Millis> d = checker.Duration(*f, /*zero_allowed=*/true)) {
      service.drain_timeout = *d;
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
  map.AllowOnly({"listen", "control", "store", "metrics_listen", "metrics_token", "access_log",
                 "workers", "timeouts", "limits", "services"});

  if (std::optional<Field> f = map.Require("listen", "host:port or a list of host:port")) {
    ReadListen(checker, *f, config);
  }
  if (std::optional<Field> f = map.Get("control")) ReadControl(checker, *f, config);
  if (std::optional<Field> f = map.Get("store")) ReadStore(checker, *f, config);
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
                       std::to_string(kMinMetricsTokenLength) + " characters)");
  }
  if (std::optional<Field> f = map.Get("access_log")) ReadAccessLog(checker, *f, config);
  if (std::optional<Field> f = map.Get("workers")) {
    if (std::optional<int64_t> n = checker.Integer(*f, 0, kMaxWorkers, "0: one per core")) {
      config.workers = static_cast<int>(*n);
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

}  // namespace

std::expected<Config, std::vector<Diagnostic>> ParseConfig(const std::string& text,
                                                           const std::string& file) {
  fs::path abs_file = AbsoluteFile(file);
  Checker checker(file, abs_file.parent_path());
  Config config;
  config.file = abs_file.string();
  config.control = Resolve(checker.base_dir(), "cutover.sock").string();
  config.store = Resolve(checker.base_dir(), "state/cutover.db").string();

  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    Pos pos = PosOf(e.mark);
    std::string message = e.msg;
    // A bare * starts a YAML alias, a common slip when writing the catch-all host.
    if (message.find("alias not found after *") != std::string::npos) {
      message += " (to match any host, quote it: \"*\")";
    }
    return std::unexpected(std::vector<Diagnostic>{{file, pos.line, pos.column, message}});
  } catch (const std::exception& e) {
    return std::unexpected(std::vector<Diagnostic>{{file, 0, 0, e.what()}});
  }
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
