// JSON of the control API: how services, errors and request bodies look on the
// wire (docs/api.md is the spec). Used by the API server on the control thread
// and by the CLI client; plain functions on values, safe from any thread.
// Nothing here throws: parse failures come back as kInvalidArgument errors.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/types.h"
#include "controller/controller.h"

namespace cutover {

// Objects keep their keys in the order written, so bodies read naturally
// ("name" first, "colors" last).
using Json = nlohmann::ordered_json;

// {"address":"127.0.0.1:9001","healthy":true,"in_flight":0}
Json ToJson(const TargetView& target);

// {"name","live","hosts","path_prefix","colors":{"blue":{"targets":[...]},"green":{...}}}
Json ToJson(const ServiceView& service);

// A deployment with its steps, an event, as the API sends them.
Json ToJson(const StepRecord& step);
Json ToJson(const DeploymentRecord& deployment);
Json ToJson(const DeploymentEvent& event);
Result<DeploymentRecord> DeploymentFromJson(const Json& json);
Result<DeploymentEvent> EventFromJson(const Json& json);

// Body of POST /v1/services/{name}/deploy:
// {"release":"v2","command":"...","env":{"K":"V"},"targets":["host:port"]}.
Result<DeployRequest> ParseDeployRequest(std::string_view body);

// {"services":[<service>...]}
Json ServicesToJson(const std::vector<ServiceView>& services);

// The inverse of ToJson, for clients. Fails with a message naming the field
// that is missing or has the wrong type.
Result<ServiceView> ServiceFromJson(const Json& json);
Result<std::vector<ServiceView>> ServicesFromJson(const Json& json);

// Parses a whole body as JSON. The error message says where the text is broken.
Result<Json> ParseJson(std::string_view text);

// Serialises a value the way the API sends it: compact, newline-terminated.
std::string JsonBody(const Json& json);

// {"code":"not_found","message":"..."}, code from ErrorCodeName().
std::string ErrorBody(const Error& error);
// Same with a code outside ErrorCode ("method_not_allowed", "payload_too_large").
std::string ErrorBody(std::string_view code, std::string_view message);

// The HTTP status an error is answered with: kInvalidArgument 400, kNotFound
// 404, kConflict 409, kUnavailable 503, kTimeout 504, anything else 500.
int HttpStatusFor(ErrorCode code);

// The ErrorCode an API error body names, kInternal for a name it does not know.
ErrorCode ErrorCodeFromName(std::string_view name);

// Body of POST /v1/services/{name}/switch: {"to":"green"} or
// {"to":"green","force":true}. Unknown fields are rejected so that a typo
// ("froce") is not silently ignored.
struct SwitchRequest {
  Color to = Color::kBlue;
  bool force = false;
};
Result<SwitchRequest> ParseSwitchRequest(std::string_view body);

// The body of POST .../rollback: empty, or {"force": true}. Returns force.
Result<bool> ParseRollbackRequest(std::string_view body);

// A lint finding as `cutover migrate --json` and POST .../contract show it.
Json ToJson(const LintFinding& finding);
LintFinding LintFindingFromJson(const Json& json);

// What POST .../contract answers.
Json ToJson(const ContractResult& result);
Result<ContractResult> ContractResultFromJson(const Json& json);

}  // namespace cutover
