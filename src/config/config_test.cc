#include "config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace cutover {
namespace {

namespace fs = std::filesystem;

// The example from docs/configuration.md, byte for byte.
constexpr char kExample[] = R"(listen: 127.0.0.1:8080            # one or a list
control: ./cutover.sock           # unix socket of the control API
store: ./state/cutover.db         # SQLite file
services:
  web:
    hosts: [localhost, web.example.com]   # "*" matches any Host
    path_prefix: /                        # optional
    driver:
      type: static
      blue: [127.0.0.1:9001]
      green: [127.0.0.1:9002, 127.0.0.1:9003]
    health: {path: /healthz, interval: 1s, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 2}
    drain_timeout: 30s
)";

// A valid services section, for tests about top-level keys.
constexpr char kServices[] = R"(services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
)";

// A directory under the test temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::path(testing::TempDir()) / "config_test.XXXXXX").string();
    const char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    path_ = fs::path(made ? made : tmpl).lexically_normal();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

  std::string Write(const std::string& name, const std::string& text) const {
    fs::path p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  fs::path path_;
};

std::vector<std::string> ToStrings(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> out;
  for (const Diagnostic& d : diagnostics) out.push_back(d.ToString());
  return out;
}

// The diagnostics of `text` as a user sees them, or an empty list when it loads.
std::vector<std::string> Errors(const std::string& text) {
  auto config = ParseConfig(text, "cutover.yaml");
  if (config) return {};
  return ToStrings(config.error());
}

// Parses `text` as /srv/cutover/cutover.yaml, failing the test on any diagnostic.
Config Parse(const std::string& text) {
  auto config = ParseConfig(text, "/srv/cutover/cutover.yaml");
  if (!config) {
    ADD_FAILURE() << "unexpected diagnostics:\n"
                  << testing::PrintToString(ToStrings(config.error()));
    return Config{};
  }
  return *config;
}

using Lines = std::vector<std::string>;

TEST(LoadConfigTest, ExampleLoadsExactlyAsWritten) {
  TempDir dir;
  std::string file = dir.Write("cutover.yaml", kExample);
  auto loaded = LoadConfig(file);
  ASSERT_TRUE(loaded.has_value()) << testing::PrintToString(ToStrings(loaded.error()));
  const Config& c = *loaded;

  EXPECT_EQ(c.file, (dir.path() / "cutover.yaml").string());
  EXPECT_EQ(c.listen, (std::vector<HostPort>{{"127.0.0.1", 8080}}));
  EXPECT_EQ(c.control, (dir.path() / "cutover.sock").string());
  EXPECT_EQ(c.store, (dir.path() / "state" / "cutover.db").string());
  EXPECT_FALSE(c.metrics_listen.has_value());
  EXPECT_EQ(c.metrics_token, "");
  EXPECT_EQ(c.access_log.kind, AccessLogConfig::Kind::kOff);
  EXPECT_EQ(c.access_log.path, "");
  EXPECT_EQ(c.workers, 0);
  EXPECT_TRUE(c.io_uring);
  EXPECT_EQ(c.timeouts.client_header, Millis(10'000));
  EXPECT_EQ(c.timeouts.client_idle, Millis(60'000));
  EXPECT_EQ(c.timeouts.upstream_connect, Millis(3'000));
  EXPECT_EQ(c.timeouts.upstream_response, Millis(60'000));
  EXPECT_EQ(c.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(c.limits.max_headers, 100u);

  ASSERT_EQ(c.services.size(), 1u);
  const ServiceConfig& web = c.services[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.hosts, (std::vector<std::string>{"localhost", "web.example.com"}));
  EXPECT_EQ(web.path_prefix, "/");
  EXPECT_EQ(web.driver.type, DriverType::kStatic);
  EXPECT_EQ(web.driver.blue, (std::vector<HostPort>{{"127.0.0.1", 9001}}));
  EXPECT_EQ(web.driver.green, (std::vector<HostPort>{{"127.0.0.1", 9002}, {"127.0.0.1", 9003}}));
  EXPECT_EQ(web.health.path, "/healthz");
  EXPECT_EQ(web.health.interval, Millis(1000));
  EXPECT_EQ(web.health.timeout, Millis(500));
  EXPECT_EQ(web.health.healthy_threshold, 1);
  EXPECT_EQ(web.health.unhealthy_threshold, 2);
  EXPECT_EQ(web.drain_timeout, Millis(30'000));

  EXPECT_EQ(c.FindService("web"), &c.services[0]);
  EXPECT_EQ(c.FindService("shop"), nullptr);
}

// The deployment example from docs/configuration.md, byte for byte.
constexpr char kDeploymentExample[] = R"(listen: 0.0.0.0:8080
preview:
  listen: 127.0.0.1:8081
  token: 3c1f0e8a9d2b4c7e9f10
control: unix:cutover.sock
store: sqlite:state/cutover.db
logs: /var/log/cutover/instances
ports: 20000-20999
services:
  shop:
    hosts: [shop.example.com, localhost]
    driver:
      type: process
      command: ./shop --port {port}
      instances: 2
      workdir: /srv/shop/current
      env:
        SHOP_DATABASE_URL: postgres://shop@db.internal/shop
        SHOP_SESSIONS: redis://cache.internal:6379/0
      stop_timeout: 20s
    health: {path: /healthz, interval: 1s, timeout: 500ms, deadline: 2m}
    checks:
      - http: {path: /, expect_status: 200}
      - http:
          request: GET /api/status
          expect_json: {field: db.status, equals: ok}
        name: database reachable
      - command: ./smoke.sh
        timeout: 2m
        retries: 0
      - session:
          on_live: [POST /cart/items?sku=gadget]
          on_idle: [GET /cart, expect_body: gadget]
    promotion: {auto_after: 5m}
    rollback_window: 30m
)";

TEST(LoadConfigTest, DeploymentExampleLoadsExactlyAsWritten) {
  TempDir dir;
  auto loaded = LoadConfig(dir.Write("cutover.yaml", kDeploymentExample));
  ASSERT_TRUE(loaded.has_value()) << testing::PrintToString(ToStrings(loaded.error()));
  const Config& c = *loaded;

  EXPECT_EQ(c.listen, (std::vector<HostPort>{{"0.0.0.0", 8080}}));
  EXPECT_TRUE(c.preview.enabled);
  EXPECT_EQ(c.preview.listen, (HostPort{"127.0.0.1", 8081}));
  EXPECT_EQ(c.preview.token, "3c1f0e8a9d2b4c7e9f10");
  EXPECT_EQ(c.control, (dir.path() / "cutover.sock").string());
  EXPECT_EQ(c.store, (dir.path() / "state" / "cutover.db").string());
  EXPECT_EQ(c.logs, "/var/log/cutover/instances");
  EXPECT_EQ(c.ports.first, 20000);
  EXPECT_EQ(c.ports.last, 20999);

  ASSERT_EQ(c.services.size(), 1u);
  const ServiceConfig& shop = c.services[0];
  EXPECT_EQ(shop.name, "shop");
  EXPECT_EQ(shop.hosts, (std::vector<std::string>{"shop.example.com", "localhost"}));
  EXPECT_EQ(shop.driver.type, DriverType::kProcess);
  EXPECT_EQ(shop.driver.command, "./shop --port {port}");
  EXPECT_EQ(shop.driver.instances, 2);
  EXPECT_EQ(shop.driver.workdir, "/srv/shop/current");
  EXPECT_EQ(shop.driver.env, (EnvList{{"SHOP_DATABASE_URL", "postgres://shop@db.internal/shop"},
                                      {"SHOP_SESSIONS", "redis://cache.internal:6379/0"}}));
  EXPECT_EQ(shop.driver.stop_timeout, Millis(20'000));
  EXPECT_EQ(shop.health.path, "/healthz");
  EXPECT_EQ(shop.health.deadline, Millis(120'000));

  ASSERT_EQ(shop.checks.size(), 4u);
  EXPECT_EQ(shop.checks[0].name, "http GET /");
  EXPECT_EQ(shop.checks[0].http.expect_status, 200);
  EXPECT_EQ(shop.checks[1].kind, CheckConfig::Kind::kHttp);
  EXPECT_EQ(shop.checks[1].name, "database reachable");
  EXPECT_EQ(shop.checks[1].http.path, "/api/status");
  EXPECT_EQ(shop.checks[1].http.expect_json_field, "db.status");
  EXPECT_EQ(shop.checks[1].http.expect_json_value, "ok");
  EXPECT_EQ(shop.checks[2].kind, CheckConfig::Kind::kCommand);
  EXPECT_EQ(shop.checks[2].command, "./smoke.sh");
  EXPECT_EQ(shop.checks[2].timeout, Millis(120'000));
  EXPECT_EQ(shop.checks[2].retries, 0);
  EXPECT_EQ(shop.checks[3].kind, CheckConfig::Kind::kSession);
  ASSERT_EQ(shop.checks[3].on_live.size(), 1u);
  EXPECT_EQ(shop.checks[3].on_live[0].path, "/cart/items?sku=gadget");
  ASSERT_EQ(shop.checks[3].on_idle.size(), 1u);
  EXPECT_EQ(shop.checks[3].on_idle[0].expect_body, "gadget");

  EXPECT_EQ(shop.promotion.mode, PromotionConfig::Mode::kAutoAfter);
  EXPECT_EQ(shop.promotion.auto_after, Millis(300'000));
  EXPECT_EQ(shop.rollback_window, Millis(30 * 60'000));
}

TEST(LoadConfigTest, MissingFileSaysCannotRead) {
  TempDir dir;
  std::string file = (dir.path() / "missing.yaml").string();
  auto loaded = LoadConfig(file);
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(ToStrings(loaded.error()), Lines{file + ": cannot read: No such file or directory"});
}

TEST(LoadConfigTest, DirectorySaysCannotRead) {
  TempDir dir;
  auto loaded = LoadConfig(dir.path().string());
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(ToStrings(loaded.error()),
            Lines{dir.path().string() + ": cannot read: Is a directory"});
}

TEST(LoadConfigTest, DiagnosticsNameTheFileAsGiven) {
  TempDir dir;
  std::string file = dir.Write(
      "bad.yaml", "listen: 127.0.0.1:8080\n" + std::string(kServices) + "workers: lots\n");
  // A path with "." and ".." in it stays as written in messages, so editors can open it.
  std::string as_given = (dir.path() / "." / ".." / dir.path().filename() / "bad.yaml").string();
  auto loaded = LoadConfig(as_given);
  ASSERT_FALSE(loaded.has_value());
  EXPECT_EQ(ToStrings(loaded.error()),
            Lines{as_given + ":6:10: workers: 'lots' is not an integer"});
}

TEST(ParseConfigTest, RelativeFileNameIsMadeAbsolute) {
  auto config = ParseConfig("listen: 127.0.0.1:8080\n" + std::string(kServices), "conf/c.yaml");
  ASSERT_TRUE(config.has_value());
  fs::path dir = (fs::current_path() / "conf").lexically_normal();
  EXPECT_EQ(config->file, (dir / "c.yaml").string());
  EXPECT_EQ(config->control, (dir / "cutover.sock").string());
  EXPECT_EQ(config->store, (dir / "state" / "cutover.db").string());
}

TEST(DiagnosticTest, ToStringWithAndWithoutPosition) {
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 7, "bad"}).ToString(), "a.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{"a.yaml", 0, 0, "bad"}).ToString(), "a.yaml: bad");
}

// --- whole-file problems ---

TEST(ParseConfigTest, EmptyFileIsAnError) {
  EXPECT_EQ(Errors(""),
            Lines{"cutover.yaml: the file is empty (it needs at least 'listen' and 'services')"});
  EXPECT_EQ(Errors("# nothing here\n\n"),
            Lines{"cutover.yaml: the file is empty (it needs at least 'listen' and 'services')"});
}

TEST(ParseConfigTest, SyntaxErrorIsReportedAtItsPosition) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\nservices:\n  web:\n    hosts: [a, b\n"),
            Lines{"cutover.yaml:5:1: end of sequence flow not found"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\n  services: x\n"),
            Lines{"cutover.yaml:2:11: illegal map value"});
}

TEST(ParseConfigTest, UnquotedStarGetsAHint) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\nservices:\n  web:\n    hosts: [*]\n"),
            Lines{"cutover.yaml:4:14: alias not found after * (to match any host, quote it: "
                  "\"*\")"});
}

TEST(ParseConfigTest, TopLevelMustBeAMap) {
  EXPECT_EQ(Errors("just a string\n"),
            Lines{"cutover.yaml:1:1: expected a map of settings at the top level, got a value "
                  "('just a string')"});
  EXPECT_EQ(Errors("- listen\n"),
            Lines{"cutover.yaml:1:1: expected a map of settings at the top level, got a list"});
}

TEST(ParseConfigTest, SecondDocumentIsAnError) {
  EXPECT_EQ(
      Errors("listen: 127.0.0.1:8080\n" + std::string(kServices) + "---\nworkers: 2\n"),
      Lines{"cutover.yaml:7:1: only one YAML document is allowed; this one would be ignored"});
}

TEST(ParseConfigTest, RequiredTopLevelKeys) {
  EXPECT_EQ(Errors(kServices),
            Lines{"cutover.yaml:1:1: missing required key 'listen' (host:port or "
                  "a list of host:port)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\n"),
            Lines{"cutover.yaml:1:1: missing required key 'services' (a map of service name to "
                  "settings)"});
}

TEST(ParseConfigTest, UnknownTopLevelKey) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\nlisten_port: 80\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:1: unknown top-level key 'listen_port' (expected one of: listen, "
                  "preview, control, store, logs, ports, metrics_listen, metrics_token, "
                  "access_log, workers, io, timeouts, limits, services)"});
}

TEST(ParseConfigTest, DuplicateKey) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:8080\nworkers: 2\nworkers: 3\n" + std::string(kServices)),
            Lines{"cutover.yaml:3:1: duplicate key 'workers' (first defined at line 2)"});
}

TEST(ParseConfigTest, EveryProblemIsReportedInFileOrder) {
  EXPECT_EQ(Errors(R"(workers: 1000
store: etcd://10.0.0.1:2379
timeouts: {client_idle: 0s, upstream_connect: soon}
services:
  web:
    hosts: [localhost:8080]
    driver: {type: static, blue: [127.0.0.1]}
    health: {interval: 1s, timeout: 2s}
    colour: blue
)"),
            (Lines{
                "cutover.yaml:1:1: missing required key 'listen' (host:port or a list of "
                "host:port)",
                "cutover.yaml:1:10: workers: '1000' must be between 0 and 256 (0: one per core)",
                "cutover.yaml:2:8: store: 'etcd://10.0.0.1:2379' is not supported: only SQLite "
                "file paths are supported (a path, optionally prefixed with 'sqlite:')",
                "cutover.yaml:3:25: timeouts.client_idle: '0s' must be greater than 0",
                "cutover.yaml:3:47: timeouts.upstream_connect: 'soon' is not a duration (e.g. "
                "500ms, 1s, 2m, 1h)",
                "cutover.yaml:6:13: services.web.hosts[0]: 'localhost:8080': a host may not "
                "include a port (the Host header is matched without its port); write 'localhost'",
                "cutover.yaml:7:35: services.web.driver.blue[0]: '127.0.0.1' is not host:port "
                "(the port is required)",
                "cutover.yaml:8:37: services.web.health.timeout: '2s' must be less than interval "
                "(1s)",
                "cutover.yaml:9:5: services.web: unknown key 'colour' (expected one of: hosts, "
                "path_prefix, driver, health, drain_timeout, checks, promotion, rollback_window, "
                "migrations, observe)",
            }));
}

// --- listen ---

TEST(ListenTest, SingleValue) {
  Config c = Parse("listen: 0.0.0.0:80\n" + std::string(kServices));
  EXPECT_EQ(c.listen, (std::vector<HostPort>{{"0.0.0.0", 80}}));
}

TEST(ListenTest, List) {
  Config c = Parse("listen: [127.0.0.1:8080, '[::1]:8080']\n" + std::string(kServices));
  EXPECT_EQ(c.listen, (std::vector<HostPort>{{"127.0.0.1", 8080}, {"::1", 8080}}));
}

TEST(ListenTest, BlockList) {
  Config c = Parse("listen:\n  - 127.0.0.1:8080\n  - 127.0.0.1:8443\n" + std::string(kServices));
  EXPECT_EQ(c.listen, (std::vector<HostPort>{{"127.0.0.1", 8080}, {"127.0.0.1", 8443}}));
}

TEST(ListenTest, PortZeroMayRepeat) {
  Config c = Parse("listen: [127.0.0.1:0, 127.0.0.1:0]\n" + std::string(kServices));
  EXPECT_EQ(c.listen.size(), 2u);
}

TEST(ListenTest, Errors) {
  EXPECT_EQ(Errors("listen: [127.0.0.1:8080, 127.0.0.1:8080]\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:26: listen[1]: '127.0.0.1:8080' is listed twice"});
  EXPECT_EQ(Errors("listen: []\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:9: listen: must list at least one host:port"});
  EXPECT_EQ(Errors("listen: localhost\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:9: listen: 'localhost' is not host:port (the port is required)"});
  EXPECT_EQ(Errors("listen: [127.0.0.1:8080, 127.0.0.1:99999]\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:26: listen[1]: '127.0.0.1:99999' has an invalid port (0-65535)"});
  EXPECT_EQ(
      Errors("listen: {host: 127.0.0.1}\n" + std::string(kServices)),
      Lines{"cutover.yaml:1:9: listen: expected host:port or a list of host:port, got a map"});
  EXPECT_EQ(Errors("listen:\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:1: listen: expected host:port or a list of host:port, got "
                  "nothing"});
}

// --- control, store, access_log: prefixes and path resolution ---

TEST(PathsTest, ControlAcceptsUnixPrefixAndResolvesAgainstTheFile) {
  EXPECT_EQ(
      Parse("listen: 127.0.0.1:0\ncontrol: unix:run/c.sock\n" + std::string(kServices)).control,
      "/srv/cutover/run/c.sock");
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\ncontrol: unix:/run/cutover.sock\n" + std::string(kServices))
                .control,
            "/run/cutover.sock");
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\ncontrol: ../x/./c.sock\n" + std::string(kServices)).control,
            "/srv/x/c.sock");
}

TEST(PathsTest, StoreAcceptsSqlitePrefixAndResolvesAgainstTheFile) {
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nstore: sqlite:db/s.db\n" + std::string(kServices)).store,
            "/srv/cutover/db/s.db");
  EXPECT_EQ(
      Parse("listen: 127.0.0.1:0\nstore: /var/lib/cutover/s.db\n" + std::string(kServices)).store,
      "/var/lib/cutover/s.db");
}

TEST(PathsTest, Errors) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nstore: etcd://127.0.0.1:2379\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:8: store: 'etcd://127.0.0.1:2379' is not supported: only SQLite "
                  "file paths are supported (a path, optionally prefixed with 'sqlite:')"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nstore: 'sqlite:'\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:8: store: the path is empty"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\ncontrol: 'unix:'\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: control: the path is empty"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\ncontrol: [a, b]\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: control: expected a file path, got a list"});
  std::string long_path = "/" + std::string(120, 's') + ".sock";
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\ncontrol: " + long_path + "\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: control: socket path '" + long_path +
                  "' is 126 bytes long; a unix socket path is limited to 107"});
}

TEST(AccessLogTest, OffStdoutOrFile) {
  std::string tail = "\n" + std::string(kServices);
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\naccess_log: off" + tail).access_log.kind,
            AccessLogConfig::Kind::kOff);
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\naccess_log: stdout" + tail).access_log.kind,
            AccessLogConfig::Kind::kStdout);
  AccessLogConfig file =
      Parse("listen: 127.0.0.1:0\naccess_log: logs/access.log" + tail).access_log;
  EXPECT_EQ(file.kind, AccessLogConfig::Kind::kFile);
  EXPECT_EQ(file.path, "/srv/cutover/logs/access.log");
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\naccess_log: {file: x}" + tail),
            Lines{"cutover.yaml:2:13: access_log: expected 'off', 'stdout' or a file path, got a "
                  "map"});
}

// --- metrics ---

TEST(MetricsTest, ListenWithToken) {
  Config c = Parse(
      "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:9100\n"
      "metrics_token: 0123456789abcdef\n" +
      std::string(kServices));
  ASSERT_TRUE(c.metrics_listen.has_value());
  EXPECT_EQ(*c.metrics_listen, (HostPort{"127.0.0.1", 9100}));
  EXPECT_EQ(c.metrics_token, "0123456789abcdef");
}

TEST(MetricsTest, TokenIsRequiredWithListen) {
  EXPECT_EQ(
      Errors("listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:9100\n" + std::string(kServices)),
      Lines{"cutover.yaml:2:17: metrics_listen: requires metrics_token (anything served over "
            "TCP needs a bearer token of at least 16 characters)"});
}

TEST(MetricsTest, ShortTokenIsRefusedWithoutEchoingIt) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:9100\nmetrics_token: s3cret\n" +
                   std::string(kServices)),
            Lines{"cutover.yaml:3:16: metrics_token: must be at least 16 characters long (it has "
                  "6)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:9100\n"
                   "metrics_token: '0123456789 abcdef'\n" +
                   std::string(kServices)),
            Lines{"cutover.yaml:3:16: metrics_token: must not contain spaces or control "
                  "characters"});
}

TEST(MetricsTest, ListenMustBeHostPort) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nmetrics_listen: 9100\nmetrics_token: 0123456789abcdef\n" +
                   std::string(kServices)),
            Lines{"cutover.yaml:2:17: metrics_listen: '9100' is not host:port (the port is "
                  "required)"});
}

// --- workers, timeouts, limits ---

TEST(WorkersTest, RangeAndType) {
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nworkers: 256\n" + std::string(kServices)).workers, 256);
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nworkers: 257\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: workers: '257' must be between 0 and 256 (0: one per core)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nworkers: -1\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: workers: '-1' must be between 0 and 256 (0: one per core)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nworkers: 2.5\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: workers: '2.5' is not an integer"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nworkers: 99999999999999999999\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: workers: '99999999999999999999' must be between 0 and 256 "
                  "(0: one per core)"});
}

TEST(IoTest, IoUringOrEpoll) {
  EXPECT_TRUE(Parse("listen: 127.0.0.1:0\nio: io_uring\n" + std::string(kServices)).io_uring);
  EXPECT_FALSE(Parse("listen: 127.0.0.1:0\nio: epoll\n" + std::string(kServices)).io_uring);
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nio: uring\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:5: io: 'uring' is not one of io_uring, epoll"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nio: [epoll]\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:5: io: expected io_uring or epoll, got a list"});
}

TEST(TimeoutsTest, AllKeys) {
  Config c = Parse(
      "listen: 127.0.0.1:0\ntimeouts: {client_header: 5s, client_idle: 2m, upstream_connect: "
      "250ms, upstream_response: 1h}\n" +
      std::string(kServices));
  EXPECT_EQ(c.timeouts.client_header, Millis(5'000));
  EXPECT_EQ(c.timeouts.client_idle, Millis(120'000));
  EXPECT_EQ(c.timeouts.upstream_connect, Millis(250));
  EXPECT_EQ(c.timeouts.upstream_response, Millis(3'600'000));
}

TEST(TimeoutsTest, Errors) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\ntimeouts:\n  client_header: 0ms\n  client_idel: 5s\n"
                   "  upstream_response: 10\n" +
                   std::string(kServices)),
            (Lines{"cutover.yaml:3:18: timeouts.client_header: '0ms' must be greater than 0",
                   "cutover.yaml:4:3: timeouts: unknown key 'client_idel' (expected one of: "
                   "client_header, client_idle, upstream_connect, upstream_response)",
                   "cutover.yaml:5:22: timeouts.upstream_response: '10' is not a duration (e.g. "
                   "500ms, 1s, 2m, 1h)"}));
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\ntimeouts: 5s\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:11: timeouts: expected a map of timeouts, got a value ('5s')"});
}

TEST(LimitsTest, ValuesAndRanges) {
  Config c = Parse("listen: 127.0.0.1:0\nlimits: {max_header_bytes: 64KiB, max_headers: 1000}\n" +
                   std::string(kServices));
  EXPECT_EQ(c.limits.max_header_bytes, 64u * 1024);
  EXPECT_EQ(c.limits.max_headers, 1000u);
  EXPECT_EQ(
      Parse("listen: 127.0.0.1:0\nlimits: {max_header_bytes: 1024}\n" + std::string(kServices))
          .limits.max_header_bytes,
      1024u);

  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nlimits:\n  max_header_bytes: 512\n  max_headers: 0\n" +
                   std::string(kServices)),
            (Lines{"cutover.yaml:3:21: limits.max_header_bytes: '512' must be between 1KiB and "
                   "1MiB",
                   "cutover.yaml:4:16: limits.max_headers: '0' must be between 1 and 1000"}));
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nlimits:\n  max_header_bytes: 2MiB\n  max_headers: 1001\n" +
                   std::string(kServices)),
            (Lines{"cutover.yaml:3:21: limits.max_header_bytes: '2MiB' must be between 1KiB and "
                   "1MiB",
                   "cutover.yaml:4:16: limits.max_headers: '1001' must be between 1 and 1000"}));
  EXPECT_EQ(
      Errors("listen: 127.0.0.1:0\nlimits: {max_header_bytes: 16kb}\n" + std::string(kServices)),
      Lines{"cutover.yaml:2:28: limits.max_header_bytes: '16kb' is not a size (e.g. 4096, "
            "16KiB, 1MiB)"});
}

// --- services ---

TEST(ServicesTest, SectionShape) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices: {}\n"),
            Lines{"cutover.yaml:2:11: services: must define at least one service"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices: [web]\n"),
            Lines{"cutover.yaml:2:11: services: expected a map of service name to settings, got a "
                  "list"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  web:\n"),
            Lines{"cutover.yaml:3:3: services.web: expected a map of service settings, got "
                  "nothing"});
}

TEST(ServicesTest, NamesAreChecked) {
  std::string body = ":\n    hosts: ['*']\n    driver: {type: static, blue: [127.0.0.1:9001]}\n";
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  Web" + body),
            Lines{"cutover.yaml:3:3: services: invalid service name 'Web' (lower-case letters, "
                  "digits, '_' and '-', starting with a letter or digit, at most 63 characters)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  _web" + body),
            Lines{"cutover.yaml:3:3: services: invalid service name '_web' (lower-case letters, "
                  "digits, '_' and '-', starting with a letter or digit, at most 63 characters)"});
  std::string longest(63, 'a');
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nservices:\n  " + longest + body).services[0].name, longest);
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  " + longest + "b" + body).size(), 1u);
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nservices:\n  0web_v2-x" + body).services[0].name,
            "0web_v2-x");
}

TEST(ServicesTest, DuplicateServiceName) {
  EXPECT_EQ(Errors(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [a.example.com]
    driver: {type: static, blue: [127.0.0.1:9001]}
  web:
    hosts: [b.example.com]
    driver: {type: static, blue: [127.0.0.1:9002]}
)"),
            Lines{"cutover.yaml:6:3: services: duplicate key 'web' (first defined at line 3)"});
}

TEST(ServicesTest, UnknownServiceKey) {
  EXPECT_EQ(Errors(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
    rollback: 15m
)"),
            Lines{"cutover.yaml:6:5: services.web: unknown key 'rollback' (expected one of: "
                  "hosts, path_prefix, driver, health, drain_timeout, checks, promotion, "
                  "rollback_window, migrations, observe)"});
}

TEST(ServicesTest, DefaultsOfAService) {
  Config c = Parse("listen: 127.0.0.1:0\n" + std::string(kServices));
  const ServiceConfig* web = c.FindService("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->path_prefix, "/");
  EXPECT_EQ(web->health.path, "/healthz");
  EXPECT_EQ(web->health.interval, Millis(1000));
  EXPECT_EQ(web->health.timeout, Millis(500));
  EXPECT_EQ(web->health.healthy_threshold, 1);
  EXPECT_EQ(web->health.unhealthy_threshold, 2);
  EXPECT_EQ(web->drain_timeout, Millis(30'000));
  EXPECT_TRUE(web->driver.green.empty());
}

TEST(ServicesTest, ServicesKeepFileOrder) {
  Config c = Parse(R"(listen: 127.0.0.1:0
services:
  zeta:
    hosts: [z.example.com]
    driver: {type: static, green: [127.0.0.1:9001]}
  alpha:
    hosts: [a.example.com]
    driver: {type: static, blue: [127.0.0.1:9002]}
)");
  ASSERT_EQ(c.services.size(), 2u);
  EXPECT_EQ(c.services[0].name, "zeta");
  EXPECT_EQ(c.services[1].name, "alpha");
  EXPECT_TRUE(c.services[0].driver.blue.empty());
}

// --- hosts ---

TEST(HostsTest, SingleStringListAndLowerCase) {
  std::string tail = "\n    driver: {type: static, blue: [127.0.0.1:9001]}\n";
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: WWW.Example.COM" + tail)
                .services[0]
                .hosts,
            std::vector<std::string>{"www.example.com"});
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: ['*', 10.0.0.7]" + tail)
                .services[0]
                .hosts,
            (std::vector<std::string>{"*", "10.0.0.7"}));
}

TEST(HostsTest, Errors) {
  auto errors = [](const std::string& hosts) {
    return Errors("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: " + hosts +
                  "\n    driver: {type: static, blue: [127.0.0.1:9001]}\n");
  };
  EXPECT_EQ(errors("[localhost, 'localhost:8080']"),
            Lines{"cutover.yaml:4:24: services.web.hosts[1]: 'localhost:8080': a host may not "
                  "include a port (the Host header is matched without its port); write "
                  "'localhost'"});
  EXPECT_EQ(errors("[web_1.internal]"),
            Lines{"cutover.yaml:4:13: services.web.hosts[0]: 'web_1.internal' is not a valid host "
                  "name (letters, digits, '-' and '.', or \"*\" alone for any host)"});
  EXPECT_EQ(errors("['*.example.com']"),
            Lines{"cutover.yaml:4:13: services.web.hosts[0]: '*.example.com' is not a valid host "
                  "name (letters, digits, '-' and '.', or \"*\" alone for any host)"});
  EXPECT_EQ(errors("[a.example.com, A.example.com]"),
            Lines{"cutover.yaml:4:28: services.web.hosts[1]: 'A.example.com' is listed twice"});
  EXPECT_EQ(errors("[]"),
            Lines{"cutover.yaml:4:12: services.web.hosts: must list at least one host "
                  "name (\"*\" matches any host)"});
  EXPECT_EQ(errors("{name: localhost}"),
            Lines{"cutover.yaml:4:12: services.web.hosts: expected a host name or a list of host "
                  "names, got a map"});
  EXPECT_EQ(errors("[[a, b]]"),
            Lines{"cutover.yaml:4:13: services.web.hosts[0]: expected a host name, got a list"});
}

TEST(HostsTest, HostsAreRequired) {
  EXPECT_EQ(Errors(R"(listen: 127.0.0.1:0
services:
  web:
    driver: {type: static, blue: [127.0.0.1:9001]}
)"),
            Lines{"cutover.yaml:4:5: services.web: missing required key 'hosts' (\"*\" matches any "
                  "host)"});
}

// --- path_prefix and route conflicts ---

TEST(PathPrefixTest, MustStartWithSlash) {
  std::string head = "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n";
  std::string driver = "    driver: {type: static, blue: [127.0.0.1:9001]}\n";
  EXPECT_EQ(Parse(head + "    path_prefix: /api/\n" + driver).services[0].path_prefix, "/api/");
  EXPECT_EQ(Errors(head + "    path_prefix: api\n" + driver),
            Lines{"cutover.yaml:5:18: services.web.path_prefix: 'api' must start with '/'"});
  EXPECT_EQ(Errors(head + "    path_prefix: /api?x=1\n" + driver),
            Lines{"cutover.yaml:5:18: services.web.path_prefix: '/api?x=1' must be a plain path "
                  "(no '?', '#' or spaces)"});
}

TEST(RouteConflictTest, SameHostAndPrefixNamesBothServices) {
  EXPECT_EQ(Errors(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost, shop.example.com]
    driver: {type: static, blue: [127.0.0.1:9001]}
  shop:
    hosts: [SHOP.example.com]
    driver: {type: static, blue: [127.0.0.1:9002]}
)"),
            Lines{"cutover.yaml:7:13: services.shop.hosts[0]: service 'shop' claims host "
                  "'shop.example.com' with path_prefix '/', which service 'web' already claims"});
}

TEST(RouteConflictTest, CatchAllConflictsToo) {
  EXPECT_EQ(Errors(R"(listen: 127.0.0.1:0
services:
  a:
    hosts: '*'
    path_prefix: /api
    driver: {type: static, blue: [127.0.0.1:9001]}
  b:
    hosts: ['*']
    path_prefix: /api
    driver: {type: static, blue: [127.0.0.1:9002]}
)"),
            Lines{"cutover.yaml:8:13: services.b.hosts[0]: service 'b' claims host '*' with "
                  "path_prefix '/api', which service 'a' already claims"});
}

TEST(RouteConflictTest, DifferentPrefixesShareAHost) {
  Config c = Parse(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
  api:
    hosts: [localhost]
    path_prefix: /api/
    driver: {type: static, blue: [127.0.0.1:9002]}
)");
  EXPECT_EQ(c.services.size(), 2u);
}

// --- driver ---

std::string WithDriver(const std::string& driver) {
  return "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n    driver:\n" + driver;
}

TEST(DriverTest, Required) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"),
            Lines{"cutover.yaml:4:5: services.web: missing required key 'driver' (with its type: "
                  "process, static)"});
  EXPECT_EQ(Errors(WithDriver("      blue: [127.0.0.1:9001]\n")),
            Lines{"cutover.yaml:6:7: services.web.driver: missing required key 'type' (known "
                  "types: process, static)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
                   "    driver: static\n"),
            Lines{"cutover.yaml:5:13: services.web.driver: expected a map with the driver's type "
                  "and settings, got a value ('static')"});
}

TEST(DriverTest, UnknownTypeListsKnownTypes) {
  EXPECT_EQ(Errors(WithDriver("      type: container\n      image: web:v2\n")),
            Lines{"cutover.yaml:6:13: services.web.driver.type: unknown driver type 'container' "
                  "(known types: process, static)"});
}

TEST(DriverTest, UnknownKey) {
  EXPECT_EQ(Errors(WithDriver("      type: static\n      blu: [127.0.0.1:9001]\n"
                              "      green: [127.0.0.1:9002]\n")),
            Lines{"cutover.yaml:7:7: services.web.driver: unknown key 'blu' (expected one of: "
                  "type, blue, green)"});
}

TEST(DriverTest, EachTargetIsCheckedWhereItIs) {
  EXPECT_EQ(Errors(WithDriver("      type: static\n"
                              "      blue:\n"
                              "        - 127.0.0.1:9001\n"
                              "        - 127.0.0.1\n"
                              "      green: [127.0.0.1:9002, 'host:x', 127.0.0.1:0]\n")),
            (Lines{"cutover.yaml:9:11: services.web.driver.blue[1]: '127.0.0.1' is not host:port "
                   "(the port is required)",
                   "cutover.yaml:10:31: services.web.driver.green[1]: 'host:x' has an invalid port "
                   "(0-65535)",
                   "cutover.yaml:10:41: services.web.driver.green[2]: '127.0.0.1:0' has port 0, "
                   "which cannot be connected to"}));
}

TEST(DriverTest, StaticWithoutTargetsIsAccepted) {
  // A deploy can bring the targets (cutover deploy --targets).
  const DriverConfig none = Parse(WithDriver("      type: static\n")).services[0].driver;
  EXPECT_EQ(none.type, DriverType::kStatic);
  EXPECT_TRUE(none.blue.empty());
  EXPECT_TRUE(none.green.empty());
  const DriverConfig empty =
      Parse(WithDriver("      type: static\n      blue: []\n      green: []\n")).services[0].driver;
  EXPECT_TRUE(empty.blue.empty());
  EXPECT_TRUE(empty.green.empty());
  Config c = Parse(WithDriver("      type: static\n      green: 127.0.0.1:9002\n"));
  EXPECT_TRUE(c.services[0].driver.blue.empty());
  EXPECT_EQ(c.services[0].driver.green, (std::vector<HostPort>{{"127.0.0.1", 9002}}));
}

TEST(DriverTest, DuplicateTargets) {
  EXPECT_EQ(Errors(WithDriver("      type: static\n"
                              "      blue: [127.0.0.1:9001, 127.0.0.1:9001]\n"
                              "      green: [127.0.0.1:9001]\n")),
            (Lines{"cutover.yaml:7:30: services.web.driver.blue[1]: '127.0.0.1:9001' is listed "
                   "twice",
                   "cutover.yaml:8:15: services.web.driver.green[0]: '127.0.0.1:9001' is also a "
                   "blue target; blue and green must be different endpoints"}));
}

TEST(DriverTest, TargetsMustBeAList) {
  EXPECT_EQ(
      Errors(WithDriver("      type: static\n      blue: {a: 127.0.0.1:9001}\n")),
      Lines{"cutover.yaml:7:13: services.web.driver.blue: expected a list of host:port, got a "
            "map"});
}

// --- health ---

std::string WithHealth(const std::string& health) {
  return "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
         "    driver: {type: static, blue: [127.0.0.1:9001]}\n    health: " +
         health + "\n";
}

TEST(HealthTest, Values) {
  HealthConfig h = Parse(WithHealth("{path: /up, interval: 5s, timeout: 2s, healthy_threshold: 3, "
                                    "unhealthy_threshold: 100}"))
                       .services[0]
                       .health;
  EXPECT_EQ(h.path, "/up");
  EXPECT_EQ(h.interval, Millis(5000));
  EXPECT_EQ(h.timeout, Millis(2000));
  EXPECT_EQ(h.healthy_threshold, 3);
  EXPECT_EQ(h.unhealthy_threshold, 100);
}

TEST(HealthTest, PathMustStartWithSlash) {
  EXPECT_EQ(Errors(WithHealth("{path: healthz}")),
            Lines{"cutover.yaml:6:20: services.web.health.path: 'healthz' must start with '/'"});
}

// The path goes into the probe's request line as it is.
TEST(HealthTest, PathMustNotContainSpaces) {
  EXPECT_EQ(Errors(WithHealth("{path: \"/up now\"}")),
            Lines{"cutover.yaml:6:20: services.web.health.path: '/up now' must not contain "
                  "spaces or control characters"});
}

TEST(HealthTest, IntervalMustBePositive) {
  EXPECT_EQ(Errors(WithHealth("{interval: 0s}")),
            Lines{"cutover.yaml:6:24: services.web.health.interval: '0s' must be greater than 0"});
}

TEST(HealthTest, TimeoutMustBePositiveAndBelowInterval) {
  EXPECT_EQ(Errors(WithHealth("{interval: 1s, timeout: 0ms}")),
            Lines{"cutover.yaml:6:37: services.web.health.timeout: '0ms' must be greater than 0"});
  EXPECT_EQ(Errors(WithHealth("{interval: 1s, timeout: 1s}")),
            Lines{"cutover.yaml:6:37: services.web.health.timeout: '1s' must be less than interval "
                  "(1s)"});
  // With the default timeout (500ms) the interval is the value to blame.
  EXPECT_EQ(Errors(WithHealth("{interval: 200ms}")),
            Lines{"cutover.yaml:6:24: services.web.health.interval: '200ms' must be greater than "
                  "timeout (500ms)"});
}

TEST(HealthTest, Thresholds) {
  EXPECT_EQ(
      Errors(WithHealth("{healthy_threshold: 0, unhealthy_threshold: 101}")),
      (Lines{"cutover.yaml:6:33: services.web.health.healthy_threshold: '0' must be between 1 "
             "and 100",
             "cutover.yaml:6:57: services.web.health.unhealthy_threshold: '101' must be "
             "between 1 and 100"}));
  EXPECT_EQ(Errors(WithHealth("{healthy_threshold: two}")),
            Lines{"cutover.yaml:6:33: services.web.health.healthy_threshold: 'two' is not an "
                  "integer"});
}

TEST(HealthTest, ShapeAndUnknownKeys) {
  EXPECT_EQ(Errors(WithHealth("[/healthz]")),
            Lines{"cutover.yaml:6:13: services.web.health: expected a map of health check "
                  "settings, got a list"});
  EXPECT_EQ(Errors(WithHealth("{path: /healthz, expect_status: 200}")),
            Lines{"cutover.yaml:6:30: services.web.health: unknown key 'expect_status' (expected "
                  "one of: path, interval, timeout, healthy_threshold, unhealthy_threshold, "
                  "deadline)"});
}

// --- drain_timeout ---

TEST(DrainTimeoutTest, ZeroAllowedGarbageRefused) {
  std::string head =
      "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
      "    driver: {type: static, blue: [127.0.0.1:9001]}\n    drain_timeout: ";
  EXPECT_EQ(Parse(head + "0s\n").services[0].drain_timeout, Millis(0));
  EXPECT_EQ(Parse(head + "2m\n").services[0].drain_timeout, Millis(120'000));
  EXPECT_EQ(Errors(head + "-1s\n"),
            Lines{"cutover.yaml:6:20: services.web.drain_timeout: '-1s' is not a duration (e.g. "
                  "500ms, 1s, 2m, 1h)"});
  EXPECT_EQ(Errors(head + "30\n"),
            Lines{"cutover.yaml:6:20: services.web.drain_timeout: '30' is not a duration (e.g. "
                  "500ms, 1s, 2m, 1h)"});
}

// --- process driver ---

TEST(ProcessDriverTest, EveryKey) {
  const DriverConfig d = Parse(WithDriver("      type: process\n"
                                          "      command: ./shop --port {port}\n"
                                          "      instances: 3\n"
                                          "      workdir: releases/current\n"
                                          "      env:\n"
                                          "        ZED: last\n"
                                          "        APP_MODE: production\n"
                                          "        DB_URL: 'postgres://db/shop?x=1'\n"
                                          "        EMPTY: ''\n"
                                          "      stop_timeout: 30s\n"))
                             .services[0]
                             .driver;
  EXPECT_EQ(d.type, DriverType::kProcess);
  EXPECT_EQ(d.command, "./shop --port {port}");
  EXPECT_EQ(d.instances, 3);
  EXPECT_EQ(d.workdir, "/srv/cutover/releases/current");
  // File order, not sorted.
  EXPECT_EQ(d.env, (EnvList{{"ZED", "last"},
                            {"APP_MODE", "production"},
                            {"DB_URL", "postgres://db/shop?x=1"},
                            {"EMPTY", ""}}));
  EXPECT_EQ(d.stop_timeout, Millis(30'000));
  EXPECT_TRUE(d.blue.empty());
  EXPECT_TRUE(d.green.empty());
}

TEST(ProcessDriverTest, Defaults) {
  const DriverConfig d =
      Parse(WithDriver("      type: process\n      command: ./shop\n")).services[0].driver;
  EXPECT_EQ(d.type, DriverType::kProcess);
  EXPECT_EQ(d.command, "./shop");
  EXPECT_EQ(d.instances, 1);
  EXPECT_EQ(d.workdir, "/srv/cutover");
  EXPECT_TRUE(d.env.empty());
  EXPECT_EQ(d.stop_timeout, Millis(10'000));
}

TEST(ProcessDriverTest, WorkdirResolvesAgainstTheConfigDirectory) {
  auto workdir = [](const std::string& value) {
    return Parse(WithDriver("      type: process\n      command: ./shop\n      workdir: " + value +
                            "\n"))
        .services[0]
        .driver.workdir;
  };
  EXPECT_EQ(workdir("/opt/shop/"), "/opt/shop/");
  EXPECT_EQ(workdir("/opt/shop"), "/opt/shop");
  EXPECT_EQ(workdir("../shop/./bin"), "/srv/shop/bin");
  EXPECT_EQ(workdir("."), "/srv/cutover/");
}

TEST(ProcessDriverTest, CommandIsRequiredAndNotEmpty) {
  EXPECT_EQ(Errors(WithDriver("      type: process\n      instances: 2\n")),
            Lines{"cutover.yaml:6:7: services.web.driver: missing required key 'command' (e.g. "
                  "\"./app --port {port}\")"});
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: '  '\n")),
            Lines{"cutover.yaml:7:16: services.web.driver.command: the command is empty"});
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: [./shop, --port]\n")),
            Lines{"cutover.yaml:7:16: services.web.driver.command: expected a shell command, got "
                  "a list"});
}

TEST(ProcessDriverTest, InstancesRange) {
  auto head = WithDriver("      type: process\n      command: ./shop\n      instances: ");
  EXPECT_EQ(Parse(head + "64\n").services[0].driver.instances, 64);
  EXPECT_EQ(
      Errors(head + "0\n"),
      Lines{"cutover.yaml:8:18: services.web.driver.instances: '0' must be between 1 and 64"});
  EXPECT_EQ(Errors(head + "65\n"),
            Lines{"cutover.yaml:8:18: services.web.driver.instances: '65' must be between 1 and "
                  "64"});
  EXPECT_EQ(Errors(head + "two\n"),
            Lines{"cutover.yaml:8:18: services.web.driver.instances: 'two' is not an integer"});
}

TEST(ProcessDriverTest, EnvNamesAreChecked) {
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: ./shop\n      env:\n"
                              "        GOOD_1: x\n"
                              "        1ST: x\n"
                              "        MY-VAR: x\n"
                              "        PORT: 8080\n"
                              "        CUTOVER_COLOR: blue\n"
                              "        CUTOVER_SERVICE: web\n"
                              "        LIST: [a, b]\n")),
            (Lines{"cutover.yaml:10:9: services.web.driver.env: '1ST' is not a valid environment "
                   "variable name (letters, digits and '_', not starting with a digit)",
                   "cutover.yaml:11:9: services.web.driver.env: 'MY-VAR' is not a valid "
                   "environment variable name (letters, digits and '_', not starting with a digit)",
                   "cutover.yaml:12:9: services.web.driver.env: 'PORT' is set by cutover for each "
                   "instance and cannot be given here",
                   "cutover.yaml:13:9: services.web.driver.env: 'CUTOVER_COLOR' is set by cutover "
                   "for each instance and cannot be given here",
                   "cutover.yaml:14:9: services.web.driver.env: 'CUTOVER_SERVICE' is set by "
                   "cutover for each instance and cannot be given here",
                   "cutover.yaml:15:15: services.web.driver.env.LIST: expected a string, got a "
                   "list"}));
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: ./shop\n"
                              "      env: [A=1]\n")),
            Lines{"cutover.yaml:8:12: services.web.driver.env: expected a map of environment "
                  "variable to value, got a list"});
}

TEST(ProcessDriverTest, StopTimeout) {
  auto head = WithDriver("      type: process\n      command: ./shop\n      stop_timeout: ");
  EXPECT_EQ(Parse(head + "0s\n").services[0].driver.stop_timeout, Millis(0));
  EXPECT_EQ(Parse(head + "1.5s\n").services[0].driver.stop_timeout, Millis(1500));
  EXPECT_EQ(Errors(head + "10\n"),
            Lines{"cutover.yaml:8:21: services.web.driver.stop_timeout: '10' is not a duration "
                  "(e.g. 500ms, 1s, 2m, 1h)"});
}

TEST(ProcessDriverTest, StaticKeysAreUnknown) {
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: ./shop\n"
                              "      blue: [127.0.0.1:9001]\n")),
            Lines{"cutover.yaml:8:7: services.web.driver: unknown key 'blue' (expected one of: "
                  "type, command, instances, workdir, env, stop_timeout)"});
  // And the other way round.
  EXPECT_EQ(Errors(WithDriver("      type: static\n      command: ./shop\n")),
            Lines{"cutover.yaml:7:7: services.web.driver: unknown key 'command' (expected one of: "
                  "type, blue, green)"});
}

// --- health.deadline ---

TEST(HealthTest, Deadline) {
  EXPECT_EQ(Parse(WithHealth("{path: /healthz}")).services[0].health.deadline, Millis(60'000));
  EXPECT_EQ(Parse(WithHealth("{deadline: 5m}")).services[0].health.deadline, Millis(300'000));
  EXPECT_EQ(Errors(WithHealth("{deadline: 0s}")),
            Lines{"cutover.yaml:6:24: services.web.health.deadline: '0s' must be greater than 0"});
}

// --- checks ---

std::string WithChecks(const std::string& checks) {
  return "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
         "    driver: {type: static, blue: [127.0.0.1:9001]}\n    checks:\n" +
         checks;
}

std::vector<CheckConfig> ChecksOf(const std::string& checks) {
  Config c = Parse(WithChecks(checks));
  if (c.services.empty()) return {};
  return c.services[0].checks;
}

// The checks of the DESIGN.md sketch, as written there: the query in a flow list included.
constexpr char kSketchChecks[] = R"(      - http: {path: /, expect_status: 200}
      - command: ./smoke.sh
      - session:
          on_live: [POST /cart/items?sku=gadget]
          on_idle: [GET /cart, expect_body: gadget]
)";

TEST(ChecksTest, DesignSketchParsesAsIntended) {
  std::vector<CheckConfig> checks = ChecksOf(kSketchChecks);
  ASSERT_EQ(checks.size(), 3u);

  const CheckConfig& http = checks[0];
  EXPECT_EQ(http.kind, CheckConfig::Kind::kHttp);
  EXPECT_EQ(http.name, "http GET /");
  EXPECT_EQ(http.http.method, "GET");
  EXPECT_EQ(http.http.path, "/");
  EXPECT_EQ(http.http.expect_status, 200);
  EXPECT_EQ(http.http.expect_body, "");
  EXPECT_TRUE(http.http.headers.empty());
  EXPECT_EQ(http.timeout, Millis(10'000));
  EXPECT_EQ(http.retries, 2);
  EXPECT_EQ(http.retry_interval, Millis(1'000));

  const CheckConfig& command = checks[1];
  EXPECT_EQ(command.kind, CheckConfig::Kind::kCommand);
  EXPECT_EQ(command.name, "command ./smoke.sh");
  EXPECT_EQ(command.command, "./smoke.sh");
  EXPECT_EQ(command.timeout, Millis(10'000));
  EXPECT_EQ(command.retries, 2);

  const CheckConfig& session = checks[2];
  EXPECT_EQ(session.kind, CheckConfig::Kind::kSession);
  EXPECT_EQ(session.name, "session");
  ASSERT_EQ(session.on_live.size(), 1u);
  EXPECT_EQ(session.on_live[0].method, "POST");
  EXPECT_EQ(session.on_live[0].path, "/cart/items?sku=gadget");
  EXPECT_EQ(session.on_live[0].expect_status, 0);
  EXPECT_EQ(session.on_live[0].expect_body, "");
  // The map after "GET /cart" is its expectation, not a second request.
  ASSERT_EQ(session.on_idle.size(), 1u);
  EXPECT_EQ(session.on_idle[0].method, "GET");
  EXPECT_EQ(session.on_idle[0].path, "/cart");
  EXPECT_EQ(session.on_idle[0].expect_body, "gadget");
  EXPECT_EQ(session.on_idle[0].expect_status, 0);
  EXPECT_EQ(session.retries, 2);
}

TEST(ChecksTest, HttpCheckEveryKey) {
  std::vector<CheckConfig> checks = ChecksOf(R"(      - name: cart api
        timeout: 3s
        retries: 0
        retry_interval: 250ms
        http:
          request: PUT /api/cart?id=7
          headers: {Content-Type: application/json, X-Trace: check}
          body: '{"sku": "gadget"}'
          expect_status: 201
          expect_body: gadget
          expect_json: {field: cart.items.0.sku, equals: gadget}
)");
  ASSERT_EQ(checks.size(), 1u);
  const CheckConfig& c = checks[0];
  EXPECT_EQ(c.kind, CheckConfig::Kind::kHttp);
  EXPECT_EQ(c.name, "cart api");
  EXPECT_EQ(c.timeout, Millis(3'000));
  EXPECT_EQ(c.retries, 0);
  EXPECT_EQ(c.retry_interval, Millis(250));
  EXPECT_EQ(c.http.method, "PUT");
  EXPECT_EQ(c.http.path, "/api/cart?id=7");
  EXPECT_EQ(c.http.headers, (EnvList{{"Content-Type", "application/json"}, {"X-Trace", "check"}}));
  EXPECT_EQ(c.http.body, "{\"sku\": \"gadget\"}");
  EXPECT_EQ(c.http.expect_status, 201);
  EXPECT_EQ(c.http.expect_body, "gadget");
  EXPECT_EQ(c.http.expect_json_field, "cart.items.0.sku");
  EXPECT_EQ(c.http.expect_json_value, "gadget");
}

TEST(ChecksTest, HttpCheckShortForms) {
  std::vector<CheckConfig> checks = ChecksOf(R"(      - http: GET /healthz
      - http: /ready
      - http: {method: DELETE, path: /cache}
      - http: {}
      - http: {path: /, timeout: 2s}
)");
  ASSERT_EQ(checks.size(), 5u);
  EXPECT_EQ(checks[0].name, "http GET /healthz");
  EXPECT_EQ(checks[0].http.path, "/healthz");
  EXPECT_EQ(checks[1].name, "http GET /ready");
  EXPECT_EQ(checks[1].http.method, "GET");
  EXPECT_EQ(checks[2].name, "http DELETE /cache");
  EXPECT_EQ(checks[3].name, "http GET /");
  EXPECT_EQ(checks[3].http.expect_status, 0);
  // Attempt settings may also sit inside the http map.
  EXPECT_EQ(checks[4].timeout, Millis(2'000));
}

TEST(ChecksTest, CommandCheckForms) {
  std::vector<CheckConfig> checks = ChecksOf(R"(      - command: ./smoke.sh --fast
        retries: 5
      - command: {run: 'make smoke', timeout: 5m, retry_interval: 0s}
      - command: ./smoke.sh
        name: smoke
)");
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].kind, CheckConfig::Kind::kCommand);
  EXPECT_EQ(checks[0].command, "./smoke.sh --fast");
  EXPECT_EQ(checks[0].name, "command ./smoke.sh --fast");
  EXPECT_EQ(checks[0].retries, 5);
  EXPECT_EQ(checks[1].command, "make smoke");
  EXPECT_EQ(checks[1].name, "command make smoke");
  EXPECT_EQ(checks[1].timeout, Millis(300'000));
  EXPECT_EQ(checks[1].retry_interval, Millis(0));
  EXPECT_EQ(checks[2].name, "smoke");
}

TEST(ChecksTest, SessionStepsInEveryForm) {
  std::vector<CheckConfig> checks = ChecksOf(R"(      - session:
          on_live:
            - request: POST /login
              headers: {Content-Type: application/x-www-form-urlencoded}
              body: user=test
              expect_status: 303
            - POST /cart/items?sku=gadget
            - {expect_status: 201}
            - {expect_json: {field: count, equals: 1}}
          on_idle:
            - path: /cart
            - expect_body: gadget
            - GET /cart/count
          timeout: 20s
        name: cart survives the switch
)");
  ASSERT_EQ(checks.size(), 1u);
  const CheckConfig& s = checks[0];
  EXPECT_EQ(s.kind, CheckConfig::Kind::kSession);
  EXPECT_EQ(s.name, "cart survives the switch");
  EXPECT_EQ(s.timeout, Millis(20'000));

  ASSERT_EQ(s.on_live.size(), 2u);
  EXPECT_EQ(s.on_live[0].method, "POST");
  EXPECT_EQ(s.on_live[0].path, "/login");
  EXPECT_EQ(s.on_live[0].headers, (EnvList{{"Content-Type", "application/x-www-form-urlencoded"}}));
  EXPECT_EQ(s.on_live[0].body, "user=test");
  EXPECT_EQ(s.on_live[0].expect_status, 303);
  // Two expectation maps in a row both apply to the request before them.
  EXPECT_EQ(s.on_live[1].method, "POST");
  EXPECT_EQ(s.on_live[1].path, "/cart/items?sku=gadget");
  EXPECT_EQ(s.on_live[1].expect_status, 201);
  EXPECT_EQ(s.on_live[1].expect_json_field, "count");
  EXPECT_EQ(s.on_live[1].expect_json_value, "1");

  ASSERT_EQ(s.on_idle.size(), 2u);
  EXPECT_EQ(s.on_idle[0].method, "GET");
  EXPECT_EQ(s.on_idle[0].path, "/cart");
  EXPECT_EQ(s.on_idle[0].expect_body, "gadget");
  EXPECT_EQ(s.on_idle[1].path, "/cart/count");
  EXPECT_EQ(s.on_idle[1].expect_body, "");
}

TEST(ChecksTest, SingleRequestNeedsNoList) {
  std::vector<CheckConfig> checks =
      ChecksOf("      - session: {on_live: POST /cart/items, on_idle: GET /cart}\n");
  ASSERT_EQ(checks.size(), 1u);
  ASSERT_EQ(checks[0].on_live.size(), 1u);
  EXPECT_EQ(checks[0].on_live[0].path, "/cart/items");
  ASSERT_EQ(checks[0].on_idle.size(), 1u);
  EXPECT_EQ(checks[0].on_idle[0].path, "/cart");
}

TEST(ChecksTest, NoChecksByDefault) {
  Config c = Parse("listen: 127.0.0.1:0\n" + std::string(kServices));
  EXPECT_TRUE(c.services[0].checks.empty());
  EXPECT_TRUE(ChecksOf("      []\n").empty());
}

TEST(ChecksTest, ExactlyOneKind) {
  EXPECT_EQ(Errors(WithChecks("      - http: /\n        command: ./smoke.sh\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: a check has exactly one of the keys "
                  "http, command, session or analysis (this one has 'http' and 'command')"});
  EXPECT_EQ(Errors(WithChecks("      - {command: a, session: {}, http: /}\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: a check has exactly one of the keys "
                  "http, command, session or analysis (this one has 'command', 'session' and "
                  "'http')"});
  EXPECT_EQ(Errors(WithChecks("      - name: smoke\n        timeout: 5s\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: a check needs one of the keys http, "
                  "command, session or analysis"});
  EXPECT_EQ(Errors(WithChecks("      - {}\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: a check needs one of the keys http, "
                  "command, session or analysis"});
  // A misspelt kind is named once, as what it is.
  EXPECT_EQ(Errors(WithChecks("      - htp: /\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: unknown key 'htp' (expected one of: "
                  "http, command, session, analysis, name, timeout, retries, retry_interval)"});
}

TEST(ChecksTest, ShapeErrors) {
  EXPECT_EQ(Errors(WithChecks("      http: /\n")),
            Lines{"cutover.yaml:7:7: services.web.checks: expected a list of checks, got a map"});
  EXPECT_EQ(Errors(WithChecks("      - ./smoke.sh\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0]: expected a check: {http: ...}, "
                  "{command: ...}, {session: ...} or {analysis: ...}, got a value ('./smoke.sh')"});
  EXPECT_EQ(Errors(WithChecks("      - http: {path: /, expect: 200}\n")),
            Lines{"cutover.yaml:7:25: services.web.checks[0].http: unknown key 'expect' (expected "
                  "one of: request, method, path, headers, body, expect_status, expect_body, "
                  "expect_json, timeout, retries, retry_interval)"});
  EXPECT_EQ(Errors(WithChecks("      - http: [GET /]\n")),
            Lines{"cutover.yaml:7:15: services.web.checks[0].http: expected \"METHOD /path\" or a "
                  "map, got a list"});
  EXPECT_EQ(Errors(WithChecks("      - session: [GET /]\n")),
            Lines{"cutover.yaml:7:18: services.web.checks[0].session: expected a map with on_live "
                  "and on_idle, got a list"});
}

TEST(ChecksTest, AttemptSettings) {
  EXPECT_EQ(Errors(WithChecks("      - http: /\n        timeout: 0s\n        retries: 101\n"
                              "        retry_interval: -1s\n")),
            (Lines{"cutover.yaml:8:18: services.web.checks[0].timeout: '0s' must be greater than 0",
                   "cutover.yaml:9:18: services.web.checks[0].retries: '101' must be between 0 and "
                   "100",
                   "cutover.yaml:10:25: services.web.checks[0].retry_interval: '-1s' is not a "
                   "duration (e.g. 500ms, 1s, 2m, 1h)"}));
  EXPECT_EQ(Errors(WithChecks("      - timeout: 5s\n        http: {path: /, timeout: 2s}\n")),
            Lines{"cutover.yaml:8:34: services.web.checks[0].http.timeout: also given as "
                  "services.web.checks[0].timeout; give it once"});
  EXPECT_EQ(Errors(WithChecks("      - http: /\n        name: ''\n")),
            Lines{"cutover.yaml:8:15: services.web.checks[0].name: the name is empty"});
}

TEST(ChecksTest, CommandErrors) {
  EXPECT_EQ(Errors(WithChecks("      - command: ''\n")),
            Lines{"cutover.yaml:7:18: services.web.checks[0].command: the command is empty"});
  EXPECT_EQ(Errors(WithChecks("      - command: {run: ' '}\n")),
            Lines{"cutover.yaml:7:24: services.web.checks[0].command.run: the command is empty"});
  // One message for one mistake.
  EXPECT_EQ(Errors(WithChecks("      - command:\n")),
            Lines{"cutover.yaml:7:9: services.web.checks[0].command: expected a shell command or "
                  "{run: COMMAND}, got nothing"});
  EXPECT_EQ(Errors(WithChecks("      - command: {timeout: 1s}\n")),
            Lines{"cutover.yaml:7:18: services.web.checks[0].command: missing required key 'run' "
                  "(the shell command)"});
}

TEST(ChecksTest, BadRequestLines) {
  EXPECT_EQ(Errors(WithChecks("      - http: get /\n")),
            Lines{"cutover.yaml:7:15: services.web.checks[0].http: 'get /': the method must be "
                  "upper-case letters (expected \"METHOD /path\", e.g. \"GET /cart\")"});
  EXPECT_EQ(Errors(WithChecks("      - http: GET cart\n")),
            Lines{"cutover.yaml:7:15: services.web.checks[0].http: 'GET cart': the path must "
                  "start with '/' and contain no spaces (expected \"METHOD /path\", e.g. \"GET "
                  "/cart\")"});
  EXPECT_EQ(Errors(WithChecks("      - http: GET /a b\n")),
            Lines{"cutover.yaml:7:15: services.web.checks[0].http: 'GET /a b': the path must "
                  "start with '/' and contain no spaces (expected \"METHOD /path\", e.g. \"GET "
                  "/cart\")"});
  EXPECT_EQ(Errors(WithChecks("      - session: {on_live: ['POST'], on_idle: [' /cart']}\n")),
            (Lines{"cutover.yaml:7:29: services.web.checks[0].session.on_live[0]: 'POST': the "
                   "path must start with '/' and contain no spaces (expected \"METHOD /path\", "
                   "e.g. \"GET /cart\")",
                   "cutover.yaml:7:48: services.web.checks[0].session.on_idle[0]: ' /cart': the "
                   "method must be upper-case letters (expected \"METHOD /path\", e.g. \"GET "
                   "/cart\")"}));
  EXPECT_EQ(Errors(WithChecks("      - http: {method: post, path: cart}\n")),
            (Lines{"cutover.yaml:7:24: services.web.checks[0].http.method: 'post' is not an HTTP "
                   "method (upper-case letters, e.g. POST)",
                   "cutover.yaml:7:36: services.web.checks[0].http.path: 'cart' must start with "
                   "'/'"}));
  EXPECT_EQ(Errors(WithChecks("      - http: {request: POST /a, path: /b}\n")),
            Lines{"cutover.yaml:7:40: services.web.checks[0].http.path: cannot be given with "
                  "request, which already names the path"});
}

TEST(ChecksTest, HeaderErrors) {
  EXPECT_EQ(Errors(WithChecks("      - http:\n          path: /\n          headers:\n"
                              "            X Trace: a\n"
                              "            X-Inject: \"a\\r\\nHost: evil\"\n")),
            (Lines{"cutover.yaml:10:13: services.web.checks[0].http.headers: 'X Trace' is not a "
                   "valid header name (letters, digits and !#$%&'*+-.^_`|~)",
                   "cutover.yaml:11:23: services.web.checks[0].http.headers.X-Inject: must not "
                   "contain line breaks or NUL"}));
}

TEST(ChecksTest, ExpectJson) {
  std::vector<CheckConfig> checks = ChecksOf(
      "      - http: {path: /, expect_json: {field: db.replica, equals: null}}\n"
      "      - http: {path: /, expect_json: {field: items.0.count, equals: 3}}\n");
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].http.expect_json_field, "db.replica");
  EXPECT_EQ(checks[0].http.expect_json_value, "null");
  EXPECT_EQ(checks[1].http.expect_json_field, "items.0.count");
  EXPECT_EQ(checks[1].http.expect_json_value, "3");

  EXPECT_EQ(Errors(WithChecks("      - http: {path: /, expect_json: {field: a..b, equals: x}}\n")),
            Lines{"cutover.yaml:7:46: services.web.checks[0].http.expect_json.field: 'a..b' is not "
                  "a dotted path (names or list indexes joined by '.', e.g. db.status or "
                  "items.0.sku)"});
  EXPECT_EQ(Errors(WithChecks("      - http: {path: /, expect_json: {equals: x}}\n")),
            Lines{"cutover.yaml:7:38: services.web.checks[0].http.expect_json: missing required "
                  "key 'field' (a dotted path, e.g. db.status)"});
}

TEST(ChecksTest, ExpectStatusRange) {
  EXPECT_EQ(Errors(WithChecks("      - http: {path: /, expect_status: 99}\n")),
            Lines{"cutover.yaml:7:40: services.web.checks[0].http.expect_status: '99' must be "
                  "between 100 and 599"});
}

TEST(ChecksTest, ExpectationsBeforeAnyRequest) {
  EXPECT_EQ(
      Errors(WithChecks("      - session:\n          on_live: [expect_status: 200, POST /cart]\n"
                        "          on_idle: [GET /cart]\n")),
      Lines{"cutover.yaml:8:21: services.web.checks[0].session.on_live[0]: expectations must "
            "follow the request they apply to, e.g. [GET /cart, expect_body: gadget]"});
}

TEST(ChecksTest, ExpectationMapCannotRewriteTheRequestBeforeIt) {
  EXPECT_EQ(Errors(WithChecks("      - session:\n"
                              "          on_live: [POST /cart, {body: 'sku=gadget', expect_status: "
                              "201}]\n"
                              "          on_idle: [GET /cart]\n")),
            Lines{"cutover.yaml:8:34: services.web.checks[0].session.on_live[1]: 'body' needs "
                  "request or path in the same map (a map without them only adds expectations to "
                  "the request before it)"});
}

TEST(ChecksTest, ABadRequestDoesNotShiftItsExpectations) {
  // The expectation stays with the malformed request: one message, not a second one about
  // expectations without a request.
  EXPECT_EQ(Errors(WithChecks("      - session:\n          on_live: [post /cart, expect_status: "
                              "201]\n          on_idle: [GET /cart]\n")),
            Lines{"cutover.yaml:8:21: services.web.checks[0].session.on_live[0]: 'post /cart': "
                  "the method must be upper-case letters (expected \"METHOD /path\", e.g. \"GET "
                  "/cart\")"});
}

TEST(ChecksTest, SessionNeedsRequestsOnBothColors) {
  EXPECT_EQ(Errors(WithChecks("      - session: {on_live: [POST /cart]}\n")),
            Lines{"cutover.yaml:7:18: services.web.checks[0].session: missing required key "
                  "'on_idle' (requests that must see that state)"});
  EXPECT_EQ(Errors(WithChecks("      - session: {on_live: [], on_idle: [GET /cart]}\n")),
            Lines{"cutover.yaml:7:28: services.web.checks[0].session.on_live: must list at least "
                  "one request"});
  EXPECT_EQ(Errors(WithChecks("      - session: {on_live: {GET: /cart}, on_idle: [GET /cart]}\n")),
            Lines{"cutover.yaml:7:28: services.web.checks[0].session.on_live: expected a list of "
                  "requests (\"METHOD /path\"), got a map"});
}

// --- promotion and rollback_window ---

std::string WithServiceKey(const std::string& line) {
  return "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
         "    driver: {type: static, blue: [127.0.0.1:9001]}\n    " +
         line + "\n";
}

TEST(PromotionTest, Modes) {
  PromotionConfig none =
      Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).services[0].promotion;
  EXPECT_EQ(none.mode, PromotionConfig::Mode::kAuto);
  EXPECT_EQ(Parse(WithServiceKey("promotion: auto")).services[0].promotion.mode,
            PromotionConfig::Mode::kAuto);
  EXPECT_EQ(Parse(WithServiceKey("promotion: manual")).services[0].promotion.mode,
            PromotionConfig::Mode::kManual);
  PromotionConfig after =
      Parse(WithServiceKey("promotion: {auto_after: 5m}")).services[0].promotion;
  EXPECT_EQ(after.mode, PromotionConfig::Mode::kAutoAfter);
  EXPECT_EQ(after.auto_after, Millis(300'000));
}

TEST(PromotionTest, Errors) {
  EXPECT_EQ(Errors(WithServiceKey("promotion: sometimes")),
            Lines{"cutover.yaml:6:16: services.web.promotion: 'sometimes' is not a promotion "
                  "(expected auto, manual or {auto_after: DURATION})"});
  EXPECT_EQ(Errors(WithServiceKey("promotion: {auto_after: soon}")),
            Lines{"cutover.yaml:6:29: services.web.promotion.auto_after: 'soon' is not a duration "
                  "(e.g. 500ms, 1s, 2m, 1h)"});
  EXPECT_EQ(Errors(WithServiceKey("promotion: [manual]")),
            Lines{"cutover.yaml:6:16: services.web.promotion: expected auto, manual or "
                  "{auto_after: DURATION}, got a list"});
  EXPECT_EQ(Errors(WithServiceKey("promotion: {after: 5m}")),
            (Lines{"cutover.yaml:6:16: services.web.promotion: missing required key 'auto_after' "
                   "(e.g. 5m)",
                   "cutover.yaml:6:17: services.web.promotion: unknown key 'after' (expected one "
                   "of: auto_after)"}));
}

TEST(RollbackWindowTest, DefaultValuesAndErrors) {
  Config c = Parse("listen: 127.0.0.1:0\n" + std::string(kServices));
  EXPECT_EQ(c.services[0].rollback_window, Millis(15 * 60'000));
  EXPECT_EQ(Parse(WithServiceKey("rollback_window: 1h")).services[0].rollback_window,
            Millis(3'600'000));
  EXPECT_EQ(Parse(WithServiceKey("rollback_window: 0s")).services[0].rollback_window, Millis(0));
  EXPECT_EQ(Errors(WithServiceKey("rollback_window: 15")),
            Lines{"cutover.yaml:6:22: services.web.rollback_window: '15' is not a duration (e.g. "
                  "500ms, 1s, 2m, 1h)"});
}

// --- preview ---

TEST(PreviewTest, OnByDefaultWithoutToken) {
  PreviewConfig p = Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).preview;
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.listen, (HostPort{"127.0.0.1", 8081}));
  EXPECT_EQ(p.token, "");
}

TEST(PreviewTest, OffListenAndToken) {
  EXPECT_FALSE(
      Parse("listen: 127.0.0.1:0\npreview: off\n" + std::string(kServices)).preview.enabled);
  PreviewConfig p = Parse(
                        "listen: 127.0.0.1:0\npreview:\n  listen: 0.0.0.0:9081\n"
                        "  token: 0123456789abcdef\n" +
                        std::string(kServices))
                        .preview;
  EXPECT_TRUE(p.enabled);
  EXPECT_EQ(p.listen, (HostPort{"0.0.0.0", 9081}));
  EXPECT_EQ(p.token, "0123456789abcdef");
  PreviewConfig listen_only =
      Parse("listen: 127.0.0.1:0\npreview: {listen: '[::1]:0'}\n" + std::string(kServices)).preview;
  EXPECT_EQ(listen_only.listen, (HostPort{"::1", 0}));
  EXPECT_EQ(listen_only.token, "");
}

TEST(PreviewTest, Errors) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: {token: s3cret}\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:18: preview.token: must be at least 16 characters long (it has "
                  "6)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: {token: '0123456789 abcdef'}\n" +
                   std::string(kServices)),
            Lines{"cutover.yaml:2:18: preview.token: must not contain spaces or control "
                  "characters"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: {listen: 8081}\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:19: preview.listen: '8081' is not host:port (the port is "
                  "required)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: on\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:10: preview: expected off or a map {listen, token}, got a value "
                  "('on')"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: {port: 8081}\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:11: preview: unknown key 'port' (expected one of: listen, "
                  "token)"});
}

TEST(PreviewTest, MustNotShareAListenAddress) {
  EXPECT_EQ(Errors("listen: [127.0.0.1:8080, 127.0.0.1:9000]\npreview: {listen: 127.0.0.1:9000}\n" +
                   std::string(kServices)),
            Lines{"cutover.yaml:2:19: preview.listen: '127.0.0.1:9000' is also a listen address; "
                  "the preview needs an address of its own"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:8081\n" + std::string(kServices)),
            Lines{"cutover.yaml:1:9: listen: '127.0.0.1:8081' is the preview's default address; "
                  "set preview.listen to another address, or preview: off"});
  EXPECT_TRUE(
      Parse("listen: 127.0.0.1:8081\npreview: off\n" + std::string(kServices)).preview.listen ==
      (HostPort{"127.0.0.1", 8081}));
  // Port 0 asks the kernel for a free port: two of them never collide.
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\npreview: {listen: 127.0.0.1:0}\n" + std::string(kServices))
                .preview.listen,
            (HostPort{"127.0.0.1", 0}));
}

// --- ports ---

TEST(PortsTest, DefaultAndRange) {
  PortRange d = Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).ports;
  EXPECT_EQ(d.first, 20000);
  EXPECT_EQ(d.last, 29999);
  PortRange r = Parse("listen: 127.0.0.1:0\nports: 30000-30099\n" + std::string(kServices)).ports;
  EXPECT_EQ(r.first, 30000);
  EXPECT_EQ(r.last, 30099);
  PortRange one = Parse("listen: 127.0.0.1:0\nports: 5000-5000\n" + std::string(kServices)).ports;
  EXPECT_EQ(one.first, 5000);
  EXPECT_EQ(one.last, 5000);
}

TEST(PortsTest, Errors) {
  auto errors = [](const std::string& value) {
    return Errors("listen: 127.0.0.1:0\nports: " + value + "\n" + std::string(kServices));
  };
  EXPECT_EQ(errors("30000-20000"),
            Lines{"cutover.yaml:2:8: ports: '30000-20000': the first port must not be greater "
                  "than the last (FIRST-LAST, e.g. 20000-29999)"});
  for (const char* bad : {"20000", "0-100", "20000-70000", "a-b", "20000-", "-20000", "1-2-3"}) {
    EXPECT_EQ(errors(bad), Lines{"cutover.yaml:2:8: ports: '" + std::string(bad) +
                                 "' is not a port range (FIRST-LAST, ports 1-65535, e.g. "
                                 "20000-29999)"})
        << bad;
  }
  EXPECT_EQ(errors("[20000, 29999]"),
            Lines{"cutover.yaml:2:8: ports: expected a port range, e.g. 20000-29999, got a list"});
}

// --- logs ---

TEST(LogsTest, BesideTheStoreByDefault) {
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).logs,
            "/srv/cutover/state/logs");
  EXPECT_EQ(
      Parse("listen: 127.0.0.1:0\nstore: /var/lib/cutover/c.db\n" + std::string(kServices)).logs,
      "/var/lib/cutover/logs");
}

TEST(LogsTest, ExplicitDirectory) {
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nlogs: var/log\n" + std::string(kServices)).logs,
            "/srv/cutover/var/log");
  EXPECT_EQ(Parse("listen: 127.0.0.1:0\nlogs: /var/log/cutover\n" + std::string(kServices)).logs,
            "/var/log/cutover");
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nlogs: [a]\n" + std::string(kServices)),
            Lines{"cutover.yaml:2:7: logs: expected a file path, got a list"});
}

// --- '?' in flow collections ---

TEST(QuestionMarkTest, QueriesInsideBracketsAndBraces) {
  Config c = Parse(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
    health: {path: /healthz?full=1&x=?, interval: 2s}
    checks:
      - http: {path: /search?q=shoes, headers: {X-Ask: why?}}
      - session: {on_live: [/?x=1, GET /a?b], on_idle: ['GET /c?d']}
)");
  ASSERT_EQ(c.services.size(), 1u);
  const ServiceConfig& web = c.services[0];
  EXPECT_EQ(web.health.path, "/healthz?full=1&x=?");
  EXPECT_EQ(web.health.interval, Millis(2'000));
  ASSERT_EQ(web.checks.size(), 2u);
  EXPECT_EQ(web.checks[0].http.path, "/search?q=shoes");
  EXPECT_EQ(web.checks[0].name, "http GET /search?q=shoes");
  EXPECT_EQ(web.checks[0].http.headers, (EnvList{{"X-Ask", "why?"}}));
  ASSERT_EQ(web.checks[1].on_live.size(), 2u);
  EXPECT_EQ(web.checks[1].on_live[0].path, "/?x=1");
  EXPECT_EQ(web.checks[1].on_live[1].path, "/a?b");
  ASSERT_EQ(web.checks[1].on_idle.size(), 1u);
  EXPECT_EQ(web.checks[1].on_idle[0].path, "/c?d");
}

TEST(QuestionMarkTest, PositionsAfterAQuestionMarkStayTrue) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\npreview: {listen: a?b, token: short}\n" +
                   std::string(kServices)),
            (Lines{"cutover.yaml:2:19: preview.listen: 'a?b' is not host:port (the port is "
                   "required)",
                   "cutover.yaml:2:31: preview.token: must be at least 16 characters long (it has "
                   "5)"}));
  // A value may even start with '?' (YAML 1.2 reads "?x" as plain text).
  EXPECT_EQ(Errors(WithChecks("      - session: {on_live: [?x], on_idle: [GET /]}\n")),
            Lines{"cutover.yaml:7:29: services.web.checks[0].session.on_live[0]: '?x': the path "
                  "must start with '/' and contain no spaces (expected \"METHOD /path\", e.g. "
                  "\"GET /cart\")"});
}

TEST(QuestionMarkTest, QuotedValuesAreLeftAlone) {
  // "\x5E" is '^', which may stand in for a '?' while the file is parsed.
  Config c = Parse(R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
    checks:
      - http: {path: /a?b, expect_body: "x\x5Ey"}
)");
  ASSERT_EQ(c.services.size(), 1u);
  ASSERT_EQ(c.services[0].checks.size(), 1u);
  EXPECT_EQ(c.services[0].checks[0].http.path, "/a?b");
  EXPECT_EQ(c.services[0].checks[0].http.expect_body, "x^y");
}

TEST(QuestionMarkTest, ByteOrderMarkDoesNotShiftPositions) {
  Config c = Parse("\xEF\xBB\xBFlisten: 127.0.0.1:0\n" + std::string(kServices) +
                   "    health: {path: /up?x}\n");
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].health.path, "/up?x");
}

TEST(QuestionMarkTest, HintWhenEveryStandInIsTaken) {
  EXPECT_EQ(Errors("# ^~$;()\nlisten: 127.0.0.1:0\n" + std::string(kServices) +
                   "    health: {path: /up?x}\n"),
            Lines{"cutover.yaml:7:23: unknown token (inside [ ] or { }, quote a value that "
                  "contains '?')"});
}

}  // namespace
}  // namespace cutover

namespace cutover {
namespace {

// --- migrations ---

TEST(MigrationsTest, ReadsDatabaseAndFolderRelativeToTheFile) {
  TempDir dir;
  fs::create_directories(dir.path() / "db" / "migrations");
  std::string file = dir.Write("cutover.yaml", R"(listen: 127.0.0.1:0
services:
  web:
    hosts: [localhost]
    driver: {type: static, blue: [127.0.0.1:9001]}
    migrations:
      database: sqlite:data/app.db
      dir: db/migrations
      lock_timeout: 500ms
      lock_wait: 30s
  api:
    hosts: [api]
    driver: {type: static, blue: [127.0.0.1:9002]}
    migrations: {database: "postgres://app@127.0.0.1:5432/shop", dir: db/migrations}
)");
  auto config = LoadConfig(file);
  ASSERT_TRUE(config) << testing::PrintToString(ToStrings(config.error()));
  const ServiceConfig* web = config->FindService("web");
  ASSERT_TRUE(web->migrations.has_value());
  EXPECT_EQ(web->migrations->database, "sqlite:" + (dir.path() / "data" / "app.db").string());
  EXPECT_EQ(web->migrations->dir, (dir.path() / "db" / "migrations").string());
  EXPECT_EQ(web->migrations->lock_timeout, Millis(500));
  EXPECT_EQ(web->migrations->lock_wait, Millis(30'000));
  const ServiceConfig* api = config->FindService("api");
  ASSERT_TRUE(api->migrations.has_value());
  EXPECT_EQ(api->migrations->database, "postgres://app@127.0.0.1:5432/shop");
  EXPECT_EQ(api->migrations->lock_timeout, Millis(2'000));
  EXPECT_EQ(api->migrations->lock_wait, Millis(120'000));
  EXPECT_FALSE(
      Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).services[0].migrations.has_value());
}

TEST(MigrationsTest, Errors) {
  EXPECT_EQ(Errors(WithServiceKey("migrations: {database: mysql://db/x, dir: /nonexistent-dir}")),
            (Lines{"cutover.yaml:6:28: services.web.migrations.database: 'mysql://db/x' is not a "
                   "database URL (expected postgres://..., postgresql://... or sqlite:PATH)",
                   "cutover.yaml:6:47: services.web.migrations.dir: folder '/nonexistent-dir' "
                   "does not exist"}));
  EXPECT_EQ(Errors(WithServiceKey("migrations: {dir: /tmp}")),
            Lines{"cutover.yaml:6:17: services.web.migrations: missing required key 'database' "
                  "(postgres://USER@HOST:PORT/DB or sqlite:PATH)"});
  EXPECT_EQ(
      Errors(WithServiceKey("migrations: {database: 'sqlite:a.db', dir: /tmp, lock_timeout: 0s}")),
      Lines{"cutover.yaml:6:68: services.web.migrations.lock_timeout: '0s' must be greater "
            "than 0"});
  EXPECT_EQ(Errors(WithServiceKey("migrations: {database: 'sqlite:a.db', dir: /tmp, url: x}")),
            Lines{"cutover.yaml:6:54: services.web.migrations: unknown key 'url' (expected one "
                  "of: database, dir, lock_timeout, lock_wait)"});
}

}  // namespace
}  // namespace cutover

namespace cutover {
namespace {

// --- observe ---

TEST(ObserveTest, DefaultsAndValues) {
  ObserveConfig none = Parse("listen: 127.0.0.1:0\n" + std::string(kServices)).services[0].observe;
  EXPECT_EQ(none.window, Millis(0));
  ObserveConfig o =
      Parse(WithServiceKey("observe: {window: 60s, interval: 10s, max_error_rate: 5%, "
                           "max_error_rate_increase: '0.5%', max_p99: 300ms, max_p99_ratio: 2x, "
                           "min_requests: 50, on_inconclusive: rollback}"))
          .services[0]
          .observe;
  EXPECT_EQ(o.window, Millis(60'000));
  EXPECT_EQ(o.interval, Millis(10'000));
  ASSERT_TRUE(o.max_error_rate.has_value());
  EXPECT_DOUBLE_EQ(*o.max_error_rate, 0.05);
  ASSERT_TRUE(o.max_error_rate_increase.has_value());
  EXPECT_DOUBLE_EQ(*o.max_error_rate_increase, 0.005);
  EXPECT_EQ(o.max_p99, Millis(300));
  ASSERT_TRUE(o.max_p99_ratio.has_value());
  EXPECT_DOUBLE_EQ(*o.max_p99_ratio, 2.0);
  EXPECT_EQ(o.min_requests, 50u);
  EXPECT_EQ(o.on_inconclusive, ObserveConfig::OnInconclusive::kRollback);
  ObserveConfig defaults =
      Parse(WithServiceKey("observe: {window: 30s, max_p99: 1s}")).services[0].observe;
  EXPECT_EQ(defaults.interval, Millis(30'000));
  EXPECT_EQ(defaults.min_requests, 20u);
  EXPECT_EQ(defaults.on_inconclusive, ObserveConfig::OnInconclusive::kPromote);
  EXPECT_FALSE(defaults.max_error_rate.has_value());
}

TEST(ObserveTest, ErrorsNameFileLineAndWhat) {
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_error_rate: 5}")),
            Lines{"cutover.yaml:6:44: services.web.observe.max_error_rate: '5' is not a "
                  "percentage (write it with %, e.g. 5%)"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_error_rate: 120%}")),
            Lines{"cutover.yaml:6:44: services.web.observe.max_error_rate: '120%' is not a "
                  "percentage between 0% and 100%"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_p99_ratio: 0.5}")),
            Lines{"cutover.yaml:6:43: services.web.observe.max_p99_ratio: '0.5' is not a ratio "
                  "of at least 1 (e.g. 2 or 1.5)"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_p99: 1s, on_inconclusive: hope}")),
            Lines{"cutover.yaml:6:58: services.web.observe.on_inconclusive: 'hope' is not one of "
                  "promote, rollback, wait"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s}")),
            Lines{"cutover.yaml:6:14: services.web.observe: observe needs at least one threshold: "
                  "max_error_rate, max_error_rate_increase, max_p99 or max_p99_ratio"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_p99: 1s, interval: 500ms}")),
            Lines{"cutover.yaml:6:51: services.web.observe.interval: '500ms' is shorter than the "
                  "1s sampling step"});
  EXPECT_EQ(Errors(WithServiceKey("observe: {window: 60s, max_p99: 1s, min_requests: 0}")),
            Lines{"cutover.yaml:6:55: services.web.observe.min_requests: '0' must be between 1 "
                  "and 1000000000"});
}

}  // namespace
}  // namespace cutover

namespace cutover {
namespace {

// --- analysis checks ---

TEST(AnalysisCheckTest, ReadsRequestsDurationRateAndTimeout) {
  Config c = Parse(
      "listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
      "    driver: {type: static, blue: [127.0.0.1:9001]}\n"
      "    observe: {max_error_rate: 1%}\n"
      "    checks:\n"
      "      - analysis: {requests: [GET /, POST /cart/add?item=x], duration: 5s, rate: 40, "
      "timeout: 2s}\n");
  ASSERT_EQ(c.services.size(), 1u);
  ASSERT_EQ(c.services[0].checks.size(), 1u);
  const CheckConfig& a = c.services[0].checks[0];
  EXPECT_EQ(a.kind, CheckConfig::Kind::kAnalysis);
  ASSERT_EQ(a.requests.size(), 2u);
  EXPECT_EQ(a.requests[1].method, "POST");
  EXPECT_EQ(a.requests[1].path, "/cart/add?item=x");
  EXPECT_EQ(a.duration, Millis(5000));
  EXPECT_EQ(a.rate, 40);
  EXPECT_EQ(a.timeout, Millis(2000));
  EXPECT_EQ(c.services[0].observe.window, Millis(0));
}

TEST(AnalysisCheckTest, NeedsRequestsAndTheObserveThresholds) {
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
                   "    driver: {type: static, blue: [127.0.0.1:9001]}\n"
                   "    checks:\n"
                   "      - analysis: {duration: 5s, rate: 0}\n"),
            (Lines{"cutover.yaml:7:9: services.web.checks[0]: an analysis check is judged with the "
                   "service's observe thresholds; add observe: {max_error_rate: 5%} (a window is "
                   "not needed)",
                   "cutover.yaml:7:19: services.web.checks[0].analysis: an analysis needs "
                   "requests (e.g. [GET /, GET /products]) or replay (how many recent live GET "
                   "paths to send)",
                   "cutover.yaml:7:40: services.web.checks[0].analysis.rate: '0' must be between "
                   "1 and 10000"}));
}

}  // namespace
}  // namespace cutover
