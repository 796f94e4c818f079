// Config: the daemon's configuration, loaded from one YAML file and validated
// as a whole. Loading never throws: every problem is reported as a Diagnostic
// "FILE:LINE:COLUMN: message" and a Config is returned only when there are
// none. A Config is a plain value; the control thread owns the live one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/types.h"

namespace cutover {

struct HealthConfig {
  std::string path = "/healthz";
  Millis interval{1000};
  Millis timeout{500};
  int healthy_threshold = 1;    // consecutive passes that make a target healthy
  int unhealthy_threshold = 2;  // consecutive failures that make it unhealthy
  Millis deadline{60'000};      // a deployment's candidate must be healthy by then
};

enum class DriverType { kStatic, kProcess };

using EnvList = std::vector<std::pair<std::string, std::string>>;

struct DriverConfig {
  DriverType type = DriverType::kStatic;
  // static: the targets of each color; a deploy may give others.
  std::vector<HostPort> blue;
  std::vector<HostPort> green;
  // process: `command` runs through /bin/sh once per instance, "{port}"
  // replaced by the instance's port (also in $PORT).
  std::string command;
  int instances = 1;
  std::string workdir;  // absolute; the config file's directory by default
  EnvList env;
  Millis stop_timeout{10'000};  // SIGTERM to SIGKILL
};

// One request of a check. `path` may carry a query.
struct CheckRequest {
  std::string method = "GET";
  std::string path = "/";
  EnvList headers;
  std::string body;
  int expect_status = 0;          // 0: any 2xx or 3xx
  std::string expect_body;        // substring; empty: not checked
  std::string expect_json_field;  // dotted path into a JSON body, e.g. "db.status"
  std::string expect_json_value;  // its expected value, compared as text
};

struct CheckConfig {
  enum class Kind { kHttp, kCommand, kSession, kAnalysis };
  Kind kind = Kind::kHttp;
  std::string name;  // shown in progress and history, e.g. "http GET /"
  Millis timeout{10'000};
  int retries = 2;  // attempts after the first failure
  Millis retry_interval{1'000};
  CheckRequest http;                  // kHttp
  std::string command;                // kCommand: run through /bin/sh in the workdir
  std::vector<CheckRequest> on_live;  // kSession: against the live color first,
  std::vector<CheckRequest> on_idle;  // then the idle color, one cookie jar
  // kAnalysis: `requests` (or, with `replay`, GETs of that many recent live
  // request paths) sent in turn to the preview at `rate` per second for
  // `duration` (each bounded by `timeout`), judged with the service's
  // observe thresholds.
  std::vector<CheckRequest> requests;
  int replay = 0;
  Millis duration{10'000};
  int rate = 20;
};

struct PromotionConfig {
  enum class Mode { kAuto, kManual, kAutoAfter };
  Mode mode = Mode::kAuto;
  Millis auto_after{0};  // kAutoAfter
};

// How the new release is judged after the switch (and, with an analysis
// check, before it) from the router's own figures.
struct ObserveConfig {
  Millis window{0};                               // how long after the switch; 0: no observe step
  Millis interval{30'000};                        // the sliding interval figures are taken over
  std::optional<double> max_error_rate;           // fraction, e.g. 0.05 for "5%"
  std::optional<double> max_error_rate_increase;  // fraction points over the old release's
  std::optional<Millis> max_p99;
  std::optional<double> max_p99_ratio;  // new p99 / old p99
  uint64_t min_requests = 20;           // fewer: inconclusive
  enum class OnInconclusive { kPromote, kRollback, kWait };
  OnInconclusive on_inconclusive = OnInconclusive::kPromote;
};

// Where a service's schema changes live and run (docs/migrations.md).
struct MigrationsConfig {
  // "postgres://..." / "postgresql://..." as written, or "sqlite:PATH" with
  // PATH made absolute.
  std::string database;
  std::string dir;             // absolute: the migration files
  Millis lock_timeout{2'000};  // PostgreSQL lock_timeout for each file's DDL
  Millis lock_wait{120'000};   // how long to wait for another runner
};

struct ServiceConfig {
  std::string name;
  std::vector<std::string> hosts;  // lower-case; "*" matches any Host
  std::string path_prefix = "/";
  DriverConfig driver;
  HealthConfig health;
  Millis drain_timeout{30'000};
  std::vector<CheckConfig> checks;  // in file order
  PromotionConfig promotion;
  Millis rollback_window{15 * 60'000};
  std::optional<MigrationsConfig> migrations;
  ObserveConfig observe;
};

struct PreviewConfig {
  bool enabled = true;
  HostPort listen{"127.0.0.1", 8081};
  std::string token;  // when set, required in X-Cutover-Preview-Token
};

struct PortRange {
  uint16_t first = 20000;
  uint16_t last = 29999;
};

struct TimeoutsConfig {
  Millis client_header{10'000};      // first byte to end of the request head
  Millis client_idle{60'000};        // keep-alive wait for the next request
  Millis upstream_connect{3'000};    // TCP connect to a target
  Millis upstream_response{60'000};  // request sent to response head received
};

struct LimitsConfig {
  uint32_t max_header_bytes = 16 * 1024;  // request head; over it: 431
  uint32_t max_headers = 100;             // header fields; over it: 431
};

struct AccessLogConfig {
  enum class Kind { kOff, kStdout, kFile };
  Kind kind = Kind::kOff;
  std::string path;  // for kFile, absolute
};

struct Config {
  std::string file;              // absolute path of the loaded file
  std::vector<HostPort> listen;  // at least one
  std::string control;           // absolute path of the control unix socket
  std::string store;             // absolute path of the SQLite file
  std::string logs;              // absolute directory of the instances' log files
  PreviewConfig preview;
  PortRange ports;  // where the process driver's instances listen
  std::optional<HostPort> metrics_listen;
  std::string metrics_token;  // required with metrics_listen
  AccessLogConfig access_log;
  TimeoutsConfig timeouts;
  LimitsConfig limits;
  int workers = 0;  // 0: one per core
  // The router's connections read and write through io_uring where the
  // kernel allows it ("io: io_uring", the default), else through epoll.
  bool io_uring = true;
  std::vector<ServiceConfig> services;  // in file order; names unique

  const ServiceConfig* FindService(std::string_view name) const;
};

// One problem found in a config file.
struct Diagnostic {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem has no position
  int column = 0;  // 1-based
  std::string message;

  // "FILE:LINE:COLUMN: message" (or "FILE: message" without a position).
  std::string ToString() const;
};

// Loads and validates the file. Relative paths inside it (control, store,
// access_log) are resolved against the file's directory. On failure returns
// every problem found, in file order.
std::expected<Config, std::vector<Diagnostic>> LoadConfig(const std::string& path);

// Same, from text already in memory; `file` names it in diagnostics and its
// directory resolves relative paths.
std::expected<Config, std::vector<Diagnostic>> ParseConfig(const std::string& text,
                                                           const std::string& file);

}  // namespace cutover
