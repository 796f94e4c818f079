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
                  "control, store, metrics_listen, metrics_token, access_log, workers, timeouts, "
                  "limits, services)"});
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
                "path_prefix, driver, health, drain_timeout)",
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
    rollback_window: 15m
)"),
            Lines{"cutover.yaml:6:5: services.web: unknown key 'rollback_window' (expected one of: "
                  "hosts, path_prefix, driver, health, drain_timeout)"});
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
                  "static)"});
  EXPECT_EQ(Errors(WithDriver("      blue: [127.0.0.1:9001]\n")),
            Lines{"cutover.yaml:6:7: services.web.driver: missing required key 'type' (known "
                  "types: static)"});
  EXPECT_EQ(Errors("listen: 127.0.0.1:0\nservices:\n  web:\n    hosts: [localhost]\n"
                   "    driver: static\n"),
            Lines{"cutover.yaml:5:13: services.web.driver: expected a map with the driver's type "
                  "and settings, got a value ('static')"});
}

TEST(DriverTest, UnknownTypeListsKnownTypes) {
  EXPECT_EQ(Errors(WithDriver("      type: process\n      command: ./web\n")),
            Lines{"cutover.yaml:6:13: services.web.driver.type: unknown driver type 'process' "
                  "(known types: static)"});
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

TEST(DriverTest, AtLeastOneTarget) {
  EXPECT_EQ(Errors(WithDriver("      type: static\n")),
            Lines{"cutover.yaml:6:7: services.web.driver: the static driver needs at least one "
                  "target in blue or green"});
  EXPECT_EQ(Errors(WithDriver("      type: static\n      blue: []\n      green: []\n")),
            Lines{"cutover.yaml:6:7: services.web.driver: the static driver needs at least one "
                  "target in blue or green"});
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
                  "one of: path, interval, timeout, healthy_threshold, unhealthy_threshold)"});
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

}  // namespace
}  // namespace cutover
