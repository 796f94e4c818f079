#include "api/json.h"

#include <cstdint>
#include <utility>

namespace cutover {
namespace {

constexpr Color kColors[] = {Color::kBlue, Color::kGreen};

std::string Quote(std::string_view s) {
  return Json(std::string(s)).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Describes a JSON value for "got ..." in messages: strings quoted, others as
// their type, so a message never grows with the size of what was sent.
std::string Describe(const Json& value) {
  if (value.is_string()) {
    std::string s = value.get_ref<const std::string&>();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return Quote(s);
  }
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_null()) return "null";
  if (value.is_number()) return "a number";
  if (value.is_array()) return "an array";
  return "an object";
}

Result<TargetView> TargetFromJson(const Json& json, std::string_view where) {
  if (!json.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(where) + ": expected an object");
  }
  TargetView target;
  auto address = json.find("address");
  if (address == json.end() || !address->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(where) + ": 'address' must be a string");
  }
  target.address = address->get<std::string>();
  auto healthy = json.find("healthy");
  if (healthy == json.end() || !healthy->is_boolean()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(where) + ": 'healthy' must be true or false");
  }
  target.healthy = healthy->get<bool>();
  auto in_flight = json.find("in_flight");
  if (in_flight == json.end() || !in_flight->is_number_integer()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     std::string(where) + ": 'in_flight' must be an integer");
  }
  target.in_flight = in_flight->get<int64_t>();
  if (auto error = json.find("health_error"); error != json.end() && error->is_string()) {
    target.health_error = error->get<std::string>();
  }
  if (auto r = json.find("restarts"); r != json.end() && r->is_number_integer()) {
    target.restarts = r->get<int>();
  }
  if (auto e = json.find("last_exit"); e != json.end() && e->is_string()) {
    target.last_exit = e->get<std::string>();
  }
  return target;
}

}  // namespace

Json ToJson(const TargetView& target) {
  Json json = Json::object();
  json["address"] = target.address;
  json["healthy"] = target.healthy;
  json["in_flight"] = target.in_flight;
  if (!target.health_error.empty()) json["health_error"] = target.health_error;
  if (target.restarts > 0) json["restarts"] = target.restarts;
  if (!target.last_exit.empty()) json["last_exit"] = target.last_exit;
  return json;
}

Json ToJson(const ServiceView& service) {
  Json json = Json::object();
  json["name"] = service.name;
  json["live"] = std::string(ColorName(service.live));
  json["hosts"] = service.hosts;
  json["path_prefix"] = service.path_prefix;
  Json colors = Json::object();
  for (Color color : kColors) {
    Json targets = Json::array();
    for (const TargetView& target : service.targets[static_cast<int>(color)]) {
      targets.push_back(ToJson(target));
    }
    const SlotView& slot = service.slots[static_cast<int>(color)];
    Json c = Json::object();
    c["release"] = slot.release;
    c["state"] = slot.state;
    if (!slot.note.empty()) c["note"] = slot.note;
    if (!slot.logs.empty()) c["logs"] = slot.logs;
    if (slot.figures) {
      const Figures& f = *slot.figures;
      c["figures"] = {{"seconds", f.seconds},       {"requests", f.requests},
                      {"errors", f.errors},         {"requests_per_second", f.requests_per_second},
                      {"error_rate", f.error_rate}, {"p50_ms", f.p50_us / 1000.0},
                      {"p99_ms", f.p99_us / 1000.0}};
    }
    c["targets"] = std::move(targets);
    colors[std::string(ColorName(color))] = std::move(c);
  }
  json["released"] = service.released;
  json["driver"] = service.driver;
  json["colors"] = std::move(colors);
  json["deployment"] = service.deployment ? ToJson(*service.deployment) : Json(nullptr);
  return json;
}

Json ToJson(const StepRecord& step) {
  Json json = Json::object();
  json["name"] = step.name;
  json["outcome"] = step.outcome;
  json["started_unix_ms"] = step.started_unix_ms;
  json["finished_unix_ms"] = step.finished_unix_ms;
  json["message"] = step.message;
  return json;
}

Json ToJson(const DeploymentRecord& d) {
  Json json = Json::object();
  json["id"] = d.id;
  json["service"] = d.service;
  json["release"] = d.release;
  json["color"] = std::string(ColorName(d.color));
  json["actor"] = d.actor;
  json["started_unix_ms"] = d.started_unix_ms;
  json["finished_unix_ms"] = d.finished_unix_ms;
  json["outcome"] = d.outcome;
  json["message"] = d.message;
  json["kind"] = std::string(d.Kind());
  json["switch_ms"] = nullptr;
  if (d.SwitchMs() >= 0) json["switch_ms"] = d.SwitchMs();
  json["failed_step"] = nullptr;
  if (!d.FailedStep().empty()) json["failed_step"] = std::string(d.FailedStep());
  Json steps = Json::array();
  for (const StepRecord& step : d.steps) steps.push_back(ToJson(step));
  json["steps"] = std::move(steps);
  return json;
}

Json ToJson(const DeploymentEvent& e) {
  Json json = Json::object();
  json["deployment"] = e.deployment_id;
  json["service"] = e.service;
  json["release"] = e.release;
  json["kind"] = e.kind;
  if (!e.step.empty()) json["step"] = e.step;
  json["outcome"] = e.outcome;
  json["elapsed_ms"] = e.elapsed_ms;
  json["message"] = e.message;
  json["time_unix_ms"] = e.time_unix_ms;
  return json;
}

namespace {

std::string StringField(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t IntField(const Json& json, const char* key) {
  auto it = json.find(key);
  return it != json.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

Result<DeploymentRecord> DeploymentFromJson(const Json& json) {
  if (!json.is_object() || !json.contains("id") || !json.contains("steps")) {
    return MakeError(ErrorCode::kInvalidArgument, "deployment: expected an object with id, steps");
  }
  DeploymentRecord d;
  d.id = IntField(json, "id");
  d.service = StringField(json, "service");
  d.release = StringField(json, "release");
  d.color = ParseColor(StringField(json, "color")).value_or(Color::kBlue);
  d.actor = StringField(json, "actor");
  d.started_unix_ms = IntField(json, "started_unix_ms");
  d.finished_unix_ms = IntField(json, "finished_unix_ms");
  d.outcome = StringField(json, "outcome");
  d.message = StringField(json, "message");
  const Json& steps = json["steps"];
  if (steps.is_array()) {
    for (const Json& s : steps) {
      if (!s.is_object()) continue;
      d.steps.push_back({StringField(s, "name"), StringField(s, "outcome"),
                         IntField(s, "started_unix_ms"), IntField(s, "finished_unix_ms"),
                         StringField(s, "message")});
    }
  }
  return d;
}

Result<DeploymentEvent> EventFromJson(const Json& json) {
  if (!json.is_object()) return MakeError(ErrorCode::kInvalidArgument, "event: expected an object");
  DeploymentEvent e;
  e.deployment_id = IntField(json, "deployment");
  e.service = StringField(json, "service");
  e.release = StringField(json, "release");
  e.kind = StringField(json, "kind");
  e.step = StringField(json, "step");
  e.outcome = StringField(json, "outcome");
  e.elapsed_ms = IntField(json, "elapsed_ms");
  e.message = StringField(json, "message");
  e.time_unix_ms = IntField(json, "time_unix_ms");
  return e;
}

Result<DeployRequest> ParseDeployRequest(std::string_view body) {
  Result<Json> json = ParseJson(body);
  if (!json) return std::unexpected(json.error());
  if (!json->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  DeployRequest req;
  for (auto it = json->begin(); it != json->end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "release" || key == "command") {
      if (!v.is_string()) {
        return MakeError(ErrorCode::kInvalidArgument, "'" + key + "' must be a string");
      }
      (key == "release" ? req.release : req.command) = v.get<std::string>();
    } else if (key == "env") {
      if (!v.is_object()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "'env' must be an object of variable name to string value");
      }
      for (auto e = v.begin(); e != v.end(); ++e) {
        if (!e.value().is_string()) {
          return MakeError(ErrorCode::kInvalidArgument, "'env." + e.key() + "' must be a string");
        }
        req.env.emplace_back(e.key(), e.value().get<std::string>());
      }
    } else if (key == "targets") {
      if (!v.is_array()) {
        return MakeError(ErrorCode::kInvalidArgument, "'targets' must be an array of host:port");
      }
      for (const Json& t : v) {
        if (!t.is_string()) {
          return MakeError(ErrorCode::kInvalidArgument, "'targets' must hold host:port strings");
        }
        Result<HostPort> hp = ParseHostPort(t.get<std::string>());
        if (!hp) return MakeError(ErrorCode::kInvalidArgument, "targets: " + hp.error().message);
        if (hp->port == 0) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "targets: " + t.get<std::string>() + " has port 0");
        }
        req.targets.push_back(*hp);
      }
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "unknown field '" + key + "' (expected release, command, env, targets)");
    }
  }
  if (req.release.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "'release' is required (e.g. \"v42\")");
  }
  return req;
}

Json ServicesToJson(const std::vector<ServiceView>& services) {
  Json list = Json::array();
  for (const ServiceView& service : services) list.push_back(ToJson(service));
  Json json = Json::object();
  json["services"] = std::move(list);
  return json;
}

Result<ServiceView> ServiceFromJson(const Json& json) {
  if (!json.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "service: expected an object");
  }
  ServiceView service;
  auto name = json.find("name");
  if (name == json.end() || !name->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, "service: 'name' must be a string");
  }
  service.name = name->get<std::string>();
  const std::string where = "service '" + service.name + "'";

  auto live = json.find("live");
  std::optional<Color> live_color;
  if (live != json.end() && live->is_string()) {
    live_color = ParseColor(live->get_ref<const std::string&>());
  }
  if (!live_color) {
    return MakeError(ErrorCode::kInvalidArgument, where + ": 'live' must be \"blue\" or \"green\"");
  }
  service.live = *live_color;

  auto hosts = json.find("hosts");
  if (hosts == json.end() || !hosts->is_array()) {
    return MakeError(ErrorCode::kInvalidArgument, where + ": 'hosts' must be an array");
  }
  for (const Json& host : *hosts) {
    if (!host.is_string()) {
      return MakeError(ErrorCode::kInvalidArgument, where + ": 'hosts' must hold strings");
    }
    service.hosts.push_back(host.get<std::string>());
  }

  auto prefix = json.find("path_prefix");
  if (prefix == json.end() || !prefix->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, where + ": 'path_prefix' must be a string");
  }
  service.path_prefix = prefix->get<std::string>();

  auto colors = json.find("colors");
  if (colors == json.end() || !colors->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, where + ": 'colors' must be an object");
  }
  if (auto released = json.find("released"); released != json.end() && released->is_boolean()) {
    service.released = released->get<bool>();
  }
  service.driver = StringField(json, "driver");
  if (auto d = json.find("deployment"); d != json.end() && d->is_object()) {
    Result<DeploymentRecord> record = DeploymentFromJson(*d);
    if (record) service.deployment = std::move(*record);
  }
  for (Color color : kColors) {
    const std::string color_name(ColorName(color));
    auto slot = colors->find(color_name);
    if (slot == colors->end()) continue;  // a color without targets may be left out
    if (slot->is_object()) {
      SlotView& view = service.slots[static_cast<int>(color)];
      view.release = StringField(*slot, "release");
      view.state = StringField(*slot, "state");
      view.note = StringField(*slot, "note");
      if (auto f = slot->find("figures"); f != slot->end() && f->is_object()) {
        Figures figures;
        figures.seconds = f->value("seconds", 0.0);
        figures.requests = f->value("requests", uint64_t{0});
        figures.errors = f->value("errors", uint64_t{0});
        figures.requests_per_second = f->value("requests_per_second", 0.0);
        figures.error_rate = f->value("error_rate", 0.0);
        figures.p50_us = static_cast<uint64_t>(f->value("p50_ms", 0.0) * 1000);
        figures.p99_us = static_cast<uint64_t>(f->value("p99_ms", 0.0) * 1000);
        view.figures = figures;
      }
      if (auto logs = slot->find("logs"); logs != slot->end() && logs->is_array()) {
        for (const Json& l : *logs) {
          if (l.is_string()) view.logs.push_back(l.get<std::string>());
        }
      }
    }
    auto targets = slot->is_object() ? slot->find("targets") : slot->end();
    if (!slot->is_object() || targets == slot->end() || !targets->is_array()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       where + ": 'colors." + color_name + ".targets' must be an array");
    }
    for (const Json& target_json : *targets) {
      auto target = TargetFromJson(target_json, where + ": " + color_name + " target");
      if (!target) return std::unexpected(std::move(target.error()));
      service.targets[static_cast<int>(color)].push_back(std::move(*target));
    }
  }
  return service;
}

Result<std::vector<ServiceView>> ServicesFromJson(const Json& json) {
  auto list = json.is_object() ? json.find("services") : json.end();
  if (!json.is_object() || list == json.end() || !list->is_array()) {
    return MakeError(ErrorCode::kInvalidArgument, "'services' must be an array");
  }
  std::vector<ServiceView> services;
  for (const Json& item : *list) {
    auto service = ServiceFromJson(item);
    if (!service) return std::unexpected(std::move(service.error()));
    services.push_back(std::move(*service));
  }
  return services;
}

Result<Json> ParseJson(std::string_view text) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    // what() reads "[json.exception.parse_error.101] parse error at line 1, ...";
    // the bracketed id means nothing to a user.
    std::string_view what = e.what();
    if (auto end = what.find("] "); what.starts_with('[') && end != std::string_view::npos) {
      what.remove_prefix(end + 2);
    }
    return MakeError(ErrorCode::kInvalidArgument, "not valid JSON: " + std::string(what));
  }
}

std::string JsonBody(const Json& json) {
  // Replace, not throw, on invalid UTF-8: a service name or message may echo
  // bytes a client sent.
  std::string body = json.dump(-1, ' ', false, Json::error_handler_t::replace);
  body += '\n';
  return body;
}

std::string ErrorBody(const Error& error) {
  return ErrorBody(ErrorCodeName(error.code), error.message);
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  Json json = Json::object();
  json["code"] = std::string(code);
  json["message"] = std::string(message);
  return JsonBody(json);
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kTimeout:
      return 504;
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

ErrorCode ErrorCodeFromName(std::string_view name) {
  for (ErrorCode code : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kConflict,
                         ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kIo}) {
    if (ErrorCodeName(code) == name) return code;
  }
  return ErrorCode::kInternal;
}

Result<bool> ParseRollbackRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return false;
  auto json = ParseJson(body);
  if (!json) return std::unexpected(json.error().Wrap("body"));
  if (!json->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "body: expected nothing or {\"force\": true}, got " + Describe(*json));
  }
  bool force = false;
  for (const auto& [key, value] : json->items()) {
    if (key != "force") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "body: unknown field " + Quote(key) + " (expected \"force\")");
    }
    if (!value.is_boolean()) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "body: 'force' must be true or false, got " + Describe(value));
    }
    force = value.get<bool>();
  }
  return force;
}

Json ToJson(const LintFinding& f) {
  return {{"file", f.file},
          {"line", f.line},
          {"rule", f.rule},
          {"severity", f.severity == Severity::kError ? "error" : "warning"},
          {"message", f.message},
          {"allowed", f.allowed},
          {"allow_reason", f.allow_reason}};
}

LintFinding LintFindingFromJson(const Json& json) {
  LintFinding f;
  if (!json.is_object()) return f;
  f.file = json.value("file", "");
  f.line = json.value("line", 0);
  f.rule = json.value("rule", "");
  f.severity = json.value("severity", "error") == "warning" ? Severity::kWarning : Severity::kError;
  f.message = json.value("message", "");
  f.allowed = json.value("allowed", false);
  f.allow_reason = json.value("allow_reason", "");
  return f;
}

Json ToJson(const ContractResult& result) {
  Json files = Json::array();
  for (const FileRun& f : result.report.files) {
    files.push_back({{"filename", f.filename},
                     {"outcome", f.outcome},
                     {"elapsed_ms", f.elapsed_ms},
                     {"attempts", f.attempts},
                     {"message", f.message}});
  }
  Json lint = Json::array();
  for (const LintFinding& f : result.report.lint) lint.push_back(ToJson(f));
  return {{"retired", result.retired},
          {"ok", result.report.ok},
          {"error", result.report.error},
          {"files", files},
          {"lint", lint}};
}

Result<ContractResult> ContractResultFromJson(const Json& json) {
  if (!json.is_object()) return MakeError(ErrorCode::kInvalidArgument, "expected an object");
  ContractResult r;
  r.report.phase = Phase::kContract;
  r.retired = json.value("retired", "");
  r.report.ok = json.value("ok", false);
  r.report.error = json.value("error", "");
  if (auto it = json.find("files"); it != json.end() && it->is_array()) {
    for (const Json& f : *it) {
      if (!f.is_object()) continue;
      FileRun run;
      run.filename = f.value("filename", "");
      run.outcome = f.value("outcome", "");
      run.elapsed_ms = f.value("elapsed_ms", int64_t{0});
      run.attempts = f.value("attempts", 1);
      run.message = f.value("message", "");
      r.report.files.push_back(std::move(run));
    }
  }
  if (auto it = json.find("lint"); it != json.end() && it->is_array()) {
    for (const Json& l : *it) r.report.lint.push_back(LintFindingFromJson(l));
  }
  return r;
}

Result<SwitchRequest> ParseSwitchRequest(std::string_view body) {
  constexpr std::string_view kExample = R"({"to":"green"})";
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "body: expected a JSON object such as " + std::string(kExample));
  }
  auto json = ParseJson(body);
  if (!json) return std::unexpected(json.error().Wrap("body"));
  if (!json->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "body: expected a JSON object such as " +
                                                      std::string(kExample) + ", got " +
                                                      Describe(*json));
  }
  SwitchRequest request;
  bool have_to = false;
  for (const auto& [key, value] : json->items()) {
    if (key == "to") {
      std::optional<Color> color;
      if (value.is_string()) color = ParseColor(value.get_ref<const std::string&>());
      if (!color) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "body: 'to' must be \"blue\" or \"green\", got " + Describe(value));
      }
      request.to = *color;
      have_to = true;
    } else if (key == "force") {
      if (!value.is_boolean()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "body: 'force' must be true or false, got " + Describe(value));
      }
      request.force = value.get<bool>();
    } else {
      return MakeError(ErrorCode::kInvalidArgument,
                       "body: unknown field " + Quote(key) + " (expected \"to\", \"force\")");
    }
  }
  if (!have_to) {
    return MakeError(ErrorCode::kInvalidArgument, "body: 'to' is required (\"blue\" or \"green\")");
  }
  return request;
}

}  // namespace cutover
