// The daemon's control surface, as a user sees it: the control socket (its
// mode, one daemon per path, recovery from a crash), the control API's JSON
// and errors, the cutover CLI's output and exit codes, /metrics on the socket
// and on the token-protected TCP listener, the access log, and a graceful stop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "api/client.h"
#include "harness.h"
#include "support/child_process.h"
#include "support/load_generator.h"
#include "support/net.h"
#include "support/raw_http.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cutover::test {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::string_view kMetricsToken = "0123456789abcdef0123456789abcdef";

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// One run of the cutover CLI, stdout and stderr apart.
struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `cutover ARGS...` in `dir` (so a default ./cutover.sock is looked for
// there) without CUTOVER_CONTROL, unless `control_env` is given.
CliRun RunCutover(const TempDir& dir, const std::vector<std::string>& args,
                  std::optional<std::string> control_env = std::nullopt) {
  static int counter = 0;
  const std::string err_file = dir.File("cli-" + std::to_string(++counter) + ".err");
  std::string cmd = "cd '" + dir.path().string() + "' && env -u CUTOVER_CONTROL ";
  if (control_env) cmd += "CUTOVER_CONTROL='" + *control_env + "' ";
  // A CLI that hangs must fail the test, not stall it.
  cmd += "timeout -k 5 60 '" + CutoverBinary() + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>'" + err_file + "'";
  CliRun run;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return run;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) run.out.append(buf.data(), n);
  const int status = ::pclose(f);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.err = ReadFile(err_file).value_or("");
  return run;
}

// A response read from the control socket as raw bytes, for what ApiClient
// does not show (headers).
struct UnixResponse {
  int status = 0;
  std::string head;
  std::string body;

  std::optional<std::string> Header(std::string_view name) const {
    for (const std::string& line : Lines(head)) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos || colon != name.size()) continue;
      if (strncasecmp(line.data(), name.data(), name.size()) != 0) continue;
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
      return value;
    }
    return std::nullopt;
  }
};

// Sends `request` (which should ask for Connection: close) over the unix
// socket at `path` and reads until the daemon closes.
Result<UnixResponse> UnixRequest(const std::string& path, std::string_view request) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, std::string("socket: ") + strerror(errno));
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return MakeError(ErrorCode::kIo, "path too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("connect: ") + strerror(errno));
  }
  for (size_t off = 0; off < request.size();) {
    ssize_t n = ::send(fd.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return MakeError(ErrorCode::kIo, std::string("send: ") + strerror(errno));
    off += static_cast<size_t>(n);
  }
  std::string data;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) return MakeError(ErrorCode::kIo, std::string("recv: ") + strerror(errno));
    data.append(buf, static_cast<size_t>(n));
  }
  UnixResponse r;
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string::npos || data.size() < 12) {
    return MakeError(ErrorCode::kIo, "incomplete response: " + data);
  }
  r.head = data.substr(0, end);
  r.body = data.substr(end + 4);
  r.status = std::atoi(data.substr(9, 3).c_str());
  return r;
}

// The value of the first sample named `name` whose labels include `labels`.
std::optional<double> Metric(const std::vector<MetricSample>& samples, std::string_view name,
                             const std::map<std::string, std::string>& labels) {
  std::vector<MetricSample> found = MatchingMetrics(samples, name, labels);
  if (found.empty()) return std::nullopt;
  return found.front().value;
}

// Blue and green backends and one daemon serving "web" on Host: localhost.
class Control : public ::testing::Test {
 protected:
  void StartAll(std::string_view extra_config = "") {
    TwoColorStack s;
    Status started = StartTwoColors(
        "cutover-control",
        [&](const Backend& b, const Backend& g) { return TwoColorConfig(b, g, extra_config); }, s);
    ASSERT_TRUE(started) << started.error().message;
    dir_ = std::move(s.dir);
    blue_ = std::move(s.blue);
    green_ = std::move(s.green);
    daemon_ = std::move(s.daemon);
  }

  // `cutover ARGS...` pointed at this daemon through CUTOVER_CONTROL.
  CliRun Cli(const std::vector<std::string>& args) {
    return RunCutover(*dir_, args, daemon_->control());
  }

  Result<ApiResponse> Api(std::string_view method, std::string_view path,
                          std::string_view body = {}) {
    return daemon_->Api(method, path, body);
  }

  std::vector<MetricSample> Metrics() {
    auto r = Api("GET", "/metrics");
    if (!r || r->status != 200) return {};
    return ParseMetrics(r->body);
  }

  std::map<std::string, std::string> BlueLabels() const {
    return {{"service", "web"}, {"color", "blue"}, {"target", blue_->address()}};
  }

  std::optional<TempDir> dir_;
  std::unique_ptr<Backend> blue_;
  std::unique_ptr<Backend> green_;
  std::unique_ptr<Daemon> daemon_;
};

// ---- the control socket ----

TEST_F(Control, SocketIsPrivateToTheUser) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  struct stat st {};
  ASSERT_EQ(::lstat(daemon_->control().c_str(), &st), 0) << strerror(errno);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << (st.st_mode & 07777);
}

TEST_F(Control, SecondDaemonOnTheSameSocketRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve", "--config", daemon_->config_path()};
  o.output_file = dir_->File("second.log");
  o.unset_env = {"CUTOVER_CONTROL"};
  auto second = ChildProcess::Spawn(o);
  ASSERT_TRUE(second) << second.error().message;
  auto exit = second->Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << "the second daemon kept running: " << second->Output();
  EXPECT_TRUE(exit->Exited(1)) << exit->ToString() << "\n" << second->Output();
  EXPECT_NE(second->Output().find("another cutover daemon is listening on " + daemon_->control()),
            std::string::npos)
      << second->Output();

  // The first daemon and its socket are untouched.
  struct stat st {};
  ASSERT_EQ(::lstat(daemon_->control().c_str(), &st), 0) << "the socket file was removed";
  auto r = Api("GET", "/v1/services/web");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  auto get = HttpGet("127.0.0.1", daemon_->port(), "/");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->body, "blue");
}

// A second `cutover serve` on the same file must not disturb the one that
// runs: while it starts up and finds the control socket taken, no client
// connection of the running daemon may be lost.
TEST_F(Control, SecondDaemonThatRefusesToStartTakesNoTraffic) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  LoadOptions options;
  options.port = daemon_->port();
  options.connections = 8;
  // A new client connection per request: every one goes through accept.
  options.headers = {{"Connection", "close"}};
  auto load = LoadGenerator::Start(options);
  ASSERT_TRUE(load->WaitForCompleted(100, DeadlineIn(seconds(10))));

  for (int attempt = 0; attempt < 3; ++attempt) {
    ChildOptions o;
    o.argv = {CutoverBinary(), "serve", "--config", daemon_->config_path()};
    o.output_file = dir_->File("second.log");
    o.unset_env = {"CUTOVER_CONTROL"};
    auto second = ChildProcess::Spawn(o);
    ASSERT_TRUE(second) << second.error().message;
    auto exit = second->Wait(DeadlineIn(seconds(15)));
    ASSERT_TRUE(exit) << "the second daemon kept running: " << second->Output();
    EXPECT_TRUE(exit->Exited(1)) << exit->ToString() << "\n" << second->Output();
  }
  const uint64_t before = load->Completed();
  ASSERT_TRUE(load->WaitForCompleted(before + 100, DeadlineIn(seconds(10))));
  LoadSummary summary = load->Stop();
  EXPECT_EQ(summary.errors, 0u) << summary.ToString();
  EXPECT_EQ(summary.non_2xx, 0u) << summary.ToString();
}

// Starts a daemon in a folder of its own on `listen` and `preview`, and
// expects it to exit 1 naming `taken` as already in use.
void ExpectRefusedToStart(const std::string& listen, const std::string& preview,
                          const std::string& taken) {
  auto dir = TempDir::Create("cutover-control");
  ASSERT_TRUE(dir);
  const std::string config = dir->File("cutover.yaml");
  ASSERT_TRUE(WriteFile(config, "listen: " + listen + "\npreview: {listen: " + preview +
                                    "}\n"
                                    "services:\n"
                                    "  api:\n"
                                    "    hosts: [api.local]\n"
                                    "    driver: {type: static, blue: [127.0.0.1:9]}\n"));
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve", "--config", config};
  o.output_file = dir->File("serve.log");
  o.unset_env = {"CUTOVER_CONTROL"};
  auto second = ChildProcess::Spawn(o);
  ASSERT_TRUE(second) << second.error().message;
  auto exit = second->Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << "the daemon kept running: " << second->Output();
  EXPECT_TRUE(exit->Exited(1)) << exit->ToString() << "\n" << second->Output();
  EXPECT_NE(second->Output().find("listen " + taken + ": Address already in use"),
            std::string::npos)
      << second->Output();
}

// Two daemons for different services on one machine, both left with the
// same preview address: the second must not quietly share the first's
// preview connections (and route its checks to the wrong daemon).
TEST_F(Control, SecondDaemonOnATakenPreviewAddressRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  const std::string preview = "127.0.0.1:" + std::to_string(daemon_->preview_port());
  ExpectRefusedToStart("127.0.0.1:0", preview, preview);
}

// The same for the main listener, whose workers share their port through
// SO_REUSEPORT: the second daemon must not take a share of the first's
// clients.
TEST_F(Control, SecondDaemonOnATakenListenAddressRefusesToStart) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  const std::string listen = "127.0.0.1:" + std::to_string(daemon_->port());
  ExpectRefusedToStart(listen, "127.0.0.1:0", listen);
  // The first daemon still has all of them.
  EXPECT_EQ(GetText(daemon_->port()), "blue");
}

// Nor with any other program that listens with SO_REUSEPORT (as servers
// built on some HTTP libraries do by default).
TEST(ListenAddress, TakenByAnotherProgramWithReusePortRefusesTheStart) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int yes = 1;
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes), 0);
  ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &yes, sizeof yes), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ExpectRefusedToStart(taken, "127.0.0.1:0", taken);
  ::close(fd);
}

TEST_F(Control, StaleSocketLeftByAKilledDaemonIsReplaced) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  daemon_->process().Kill();
  struct stat st {};
  ASSERT_EQ(::lstat(daemon_->control().c_str(), &st), 0) << "kill -9 left no socket file";
  ASSERT_TRUE(S_ISSOCK(st.st_mode));
  CliRun down = Cli({"status"});
  EXPECT_EQ(down.exit_code, 3) << down.out << down.err;

  Status restarted = daemon_->KillAndRestart();
  ASSERT_TRUE(restarted) << restarted.error().message;
  auto r = Api("GET", "/v1/services");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  ASSERT_EQ(::lstat(daemon_->control().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << std::oct << (st.st_mode & 07777);
  auto get = HttpGet("127.0.0.1", daemon_->port(), "/");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->body, "blue");
}

TEST_F(Control, FileThatIsNotASocketIsLeftAlone) {
  auto dir = TempDir::Create("cutover-control");
  ASSERT_TRUE(dir);
  auto blue = Backend::Start(*dir, "blue");
  ASSERT_TRUE(blue) << blue.error().message;
  const std::string path = dir->File("taken.sock");
  ASSERT_TRUE(WriteFile(path, "not a socket\n"));
  const std::string config = dir->File("cutover.yaml");
  ASSERT_TRUE(WriteFile(config,
                        "listen: 127.0.0.1:0\n"
                        "preview: off\n"
                        "control: ./taken.sock\n"
                        "services:\n"
                        "  web:\n"
                        "    hosts: [localhost]\n"
                        "    driver: {type: static, blue: [" +
                            (*blue)->address() + "]}\n"));
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve", "--config", config};
  o.output_file = dir->File("serve.log");
  auto serve = ChildProcess::Spawn(o);
  ASSERT_TRUE(serve) << serve.error().message;
  auto exit = serve->Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << serve->Output();
  EXPECT_TRUE(exit->Exited(1)) << exit->ToString() << "\n" << serve->Output();
  EXPECT_NE(serve->Output().find(path + " exists and is not a socket; not replacing it"),
            std::string::npos)
      << serve->Output();
  EXPECT_EQ(ReadFile(path).value_or(""), "not a socket\n");
}

// ---- the control API ----

void ExpectServiceShape(const json& s, const Backend& blue, const Backend& green,
                        std::string_view live) {
  ASSERT_TRUE(s.is_object()) << s.dump();
  EXPECT_EQ(s["name"], "web");
  EXPECT_EQ(s["live"], live);
  EXPECT_EQ(s["hosts"], json::array({"localhost"}));
  EXPECT_EQ(s["path_prefix"], "/");
  for (const auto& [color, backend] : {std::pair{"blue", &blue}, std::pair{"green", &green}}) {
    const json& targets = s["colors"][color]["targets"];
    ASSERT_TRUE(targets.is_array()) << s.dump();
    ASSERT_EQ(targets.size(), 1u) << s.dump();
    EXPECT_EQ(targets[0]["address"], backend->address());
    EXPECT_EQ(targets[0]["healthy"], true);
    EXPECT_TRUE(targets[0]["in_flight"].is_number_integer()) << s.dump();
    EXPECT_EQ(targets[0]["in_flight"], 0);
  }
}

TEST_F(Control, ApiDescribesServices) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  auto all = Api("GET", "/v1/services");
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->status, 200);
  json j = ParseJson(all->body);
  ASSERT_TRUE(j.is_object()) << all->body;
  ASSERT_TRUE(j["services"].is_array()) << all->body;
  ASSERT_EQ(j["services"].size(), 1u) << all->body;
  ExpectServiceShape(j["services"][0], *blue_, *green_, "blue");

  auto one = Api("GET", "/v1/services/web");
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->status, 200);
  ExpectServiceShape(ParseJson(one->body), *blue_, *green_, "blue");
  EXPECT_TRUE(one->body.ends_with("\n"));

  // A name is one percent-decoded path segment; a query string is ignored.
  auto escaped = Api("GET", "/v1/services/w%65b?x=1");
  ASSERT_TRUE(escaped) << escaped.error().message;
  EXPECT_EQ(escaped->status, 200) << escaped->body;
  EXPECT_EQ(ParseJson(escaped->body)["name"], "web");

  auto switched = Api("POST", "/v1/services/web/switch", R"({"to":"green"})");
  ASSERT_TRUE(switched) << switched.error().message;
  EXPECT_EQ(switched->status, 200) << switched->body;
  ExpectServiceShape(ParseJson(switched->body), *blue_, *green_, "green");
}

TEST_F(Control, ApiErrorsAreJsonWithAStableCode) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  struct Case {
    std::string method, path, body;
    int status;
    std::string code, message;
  };
  const std::vector<Case> cases = {
      {"GET", "/v1/services/nosuch", "", 404, "not_found", "no service named 'nosuch'"},
      {"POST", "/v1/services/nosuch/switch", R"({"to":"green"})", 404, "not_found",
       "no service named 'nosuch'"},
      {"POST", "/v1/services/web/switch", R"({"to":"purple"})", 400, "invalid_argument",
       R"(body: 'to' must be "blue" or "green", got "purple")"},
      {"POST", "/v1/services/web/switch", "", 400, "invalid_argument",
       R"(body: expected a JSON object such as {"to":"green"})"},
      {"POST", "/v1/services/web/switch", R"(["green"])", 400, "invalid_argument",
       R"(body: expected a JSON object such as {"to":"green"}, got an array)"},
      {"POST", "/v1/services/web/switch", "{}", 400, "invalid_argument",
       R"(body: 'to' is required ("blue" or "green"))"},
      {"POST", "/v1/services/web/switch", R"({"to":"green","force":"yes"})", 400,
       "invalid_argument", R"(body: 'force' must be true or false, got "yes")"},
      {"POST", "/v1/services/web/switch", R"({"to":"green","froce":true})", 400, "invalid_argument",
       R"(body: unknown field "froce" (expected "to", "force"))"},
      {"DELETE", "/v1/services/web", "", 405, "method_not_allowed",
       "DELETE is not allowed on /v1/services/web (allowed: GET)"},
      {"GET", "/v1/services/web/switch", "", 405, "method_not_allowed",
       "GET is not allowed on /v1/services/web/switch (allowed: POST)"},
      {"GET", "/v2/things", "", 404, "not_found", "no such endpoint: /v2/things"},
      {"GET", "/v1/services/", "", 404, "not_found", "no such endpoint: /v1/services/"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path + " " + c.body);
    auto r = Api(c.method, c.path, c.body);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, c.status) << r->body;
    json j = ParseJson(r->body);
    ASSERT_TRUE(j.is_object()) << r->body;
    EXPECT_EQ(j["code"], c.code) << r->body;
    EXPECT_EQ(j["message"], c.message) << r->body;
  }

  // Not valid JSON: the parser's own words follow the documented prefix.
  auto bad = Api("POST", "/v1/services/web/switch", "to=green");
  ASSERT_TRUE(bad) << bad.error().message;
  EXPECT_EQ(bad->status, 400);
  json j = ParseJson(bad->body);
  EXPECT_EQ(j["code"], "invalid_argument") << bad->body;
  EXPECT_TRUE(j["message"].get<std::string>().starts_with("body: not valid JSON: ")) << bad->body;

  // A 405 lists the allowed methods in Allow.
  auto raw = UnixRequest(daemon_->control(),
                         "DELETE /v1/services/web HTTP/1.1\r\nHost: cutover\r\n"
                         "Connection: close\r\n\r\n");
  ASSERT_TRUE(raw) << raw.error().message;
  EXPECT_EQ(raw->status, 405);
  EXPECT_EQ(raw->Header("Allow").value_or(""), "GET");
  EXPECT_EQ(raw->Header("Content-Type").value_or(""), "application/json");

  // Nothing of the above changed the live color.
  EXPECT_EQ(ParseJson(Api("GET", "/v1/services/web")->body)["live"], "blue");
}

// ---- the CLI ----

TEST_F(Control, CliStatusShowsTheLiveColor) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  CliRun table = Cli({"status"});
  ASSERT_EQ(table.exit_code, 0) << table.out << table.err;
  EXPECT_EQ(table.err, "");
  const std::vector<std::string> lines = Lines(table.out);
  ASSERT_GE(lines.size(), 6u) << table.out;
  EXPECT_TRUE(std::regex_match(lines[0], std::regex(R"(SERVICE +LIVE +HOSTS +PATH PREFIX)")))
      << table.out;
  EXPECT_TRUE(std::regex_match(lines[1], std::regex(R"(web +blue +localhost +/)"))) << table.out;
  const std::string blue_row = "web +blue +live +" + blue_->address() + " +healthy +0";
  const std::string green_row = "web +green +idle +" + green_->address() + " +healthy +0";
  bool saw_blue = false, saw_green = false;
  for (const std::string& line : lines) {
    saw_blue = saw_blue || std::regex_match(line, std::regex(blue_row));
    saw_green = saw_green || std::regex_match(line, std::regex(green_row));
  }
  EXPECT_TRUE(saw_blue) << table.out;
  EXPECT_TRUE(saw_green) << table.out;

  CliRun all = Cli({"status", "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.out << all.err;
  json j = ParseJson(all.out);
  ASSERT_TRUE(j.is_object()) << all.out;
  ASSERT_EQ(j["services"].size(), 1u) << all.out;
  ExpectServiceShape(j["services"][0], *blue_, *green_, "blue");

  CliRun one = Cli({"status", "web", "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  ExpectServiceShape(ParseJson(one.out), *blue_, *green_, "blue");

  CliRun unknown = Cli({"status", "nosuch"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "cutover: no service named 'nosuch'\n");
  EXPECT_EQ(unknown.out, "");
}

TEST_F(Control, CliSwitchAndItsExitCodes) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  CliRun ok = Cli({"switch", "web", "--to", "green"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "web: live is now green\n");
  EXPECT_EQ(ok.err, "");
  EXPECT_EQ(ParseJson(Api("GET", "/v1/services/web")->body)["live"], "green");
  auto get = HttpGet("127.0.0.1", daemon_->port(), "/");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->body, "green");

  CliRun unknown = Cli({"switch", "nosuch", "--to", "green"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(unknown.err, "cutover: no service named 'nosuch'\n");
  EXPECT_EQ(unknown.out, "");

  CliRun purple = Cli({"switch", "web", "--to", "purple"});
  EXPECT_EQ(purple.exit_code, 2);
  EXPECT_EQ(purple.err, "cutover: --to must be blue or green, got 'purple'\n");
  EXPECT_EQ(purple.out, "");

  CliRun missing = Cli({"switch", "web"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(Lines(missing.err).size(), 1u) << missing.err;
  EXPECT_TRUE(missing.err.starts_with("cutover: ")) << missing.err;

  // The refused and malformed switches changed nothing.
  EXPECT_EQ(ParseJson(Api("GET", "/v1/services/web")->body)["live"], "green");
}

TEST_F(Control, CliWithoutADaemonExitsThree) {
  auto dir = TempDir::Create("cutover-control");
  ASSERT_TRUE(dir);
  const std::string nowhere = dir->File("nonexistent.sock");
  CliRun status = RunCutover(*dir, {"status", "--control", nowhere});
  EXPECT_EQ(status.exit_code, 3);
  EXPECT_EQ(status.err, "cutover: cannot reach the cutover daemon at " + nowhere +
                            ": No such file or directory\n");
  EXPECT_EQ(status.out, "");

  CliRun flip = RunCutover(*dir, {"switch", "web", "--to", "green"}, "unix:" + nowhere);
  EXPECT_EQ(flip.exit_code, 3);
  EXPECT_EQ(Lines(flip.err).size(), 1u) << flip.err;
  EXPECT_TRUE(flip.err.starts_with("cutover: cannot reach the cutover daemon at " + nowhere))
      << flip.err;

  // No flag, no environment: ./cutover.sock in the working directory.
  CliRun fallback = RunCutover(*dir, {"status"});
  EXPECT_EQ(fallback.exit_code, 3);
  EXPECT_TRUE(
      fallback.err.starts_with("cutover: cannot reach the cutover daemon at ./cutover.sock"))
      << fallback.err;
}

// A file with two problems at known places.
constexpr std::string_view kBadConfig =
    "listen: 127.0.0.1:0\n"
    "services:\n"
    "  web:\n"
    "    hosts: [localhost]\n"
    "    driver: {type: static, blue: [127.0.0.1:9]}\n"
    "    health: {interval: 1s, timeout: 2s}\n"
    "    colour: blue\n";

// Checks `err` holds exactly the diagnostics of kBadConfig written to `file`.
void ExpectBadConfigDiagnostics(const std::string& err, const std::string& file) {
  std::vector<std::string> lines = Lines(err);
  ASSERT_EQ(lines.size(), 2u) << err;
  const std::regex format("^" +
                          std::regex_replace(file, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                          R"(:(\d+):(\d+): (.+)$)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[0], m, format)) << err;
  EXPECT_EQ(m[1], "6") << lines[0];
  EXPECT_EQ(m[2], "37") << lines[0];
  EXPECT_EQ(m[3], "services.web.health.timeout: '2s' must be less than interval (1s)");
  ASSERT_TRUE(std::regex_match(lines[1], m, format)) << err;
  EXPECT_EQ(m[1], "7") << lines[1];
  EXPECT_EQ(m[2], "5") << lines[1];
  EXPECT_TRUE(m[3].str().starts_with("services.web: unknown key 'colour'")) << lines[1];
}

TEST_F(Control, CliValidateReportsEveryProblemWithItsPlace) {
  auto dir = TempDir::Create("cutover-control");
  ASSERT_TRUE(dir);
  const std::string good = dir->File("good.yaml");
  ASSERT_TRUE(WriteFile(good,
                        "listen: 127.0.0.1:0\n"
                        "preview: off\n"
                        "services:\n"
                        "  web:\n"
                        "    hosts: [localhost]\n"
                        "    driver: {type: static, blue: [127.0.0.1:9]}\n"));
  CliRun ok = RunCutover(*dir, {"validate", "--config", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, good + ": ok (1 service)\n");
  EXPECT_EQ(ok.err, "");

  const std::string bad = dir->File("bad.yaml");
  ASSERT_TRUE(WriteFile(bad, kBadConfig));
  CliRun refused = RunCutover(*dir, {"validate", "--config", bad});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(refused.out, "");
  ExpectBadConfigDiagnostics(refused.err, bad);

  // The file name is shown as given.
  CliRun relative = RunCutover(*dir, {"validate", "--config", "bad.yaml"});
  EXPECT_EQ(relative.exit_code, 2);
  ExpectBadConfigDiagnostics(relative.err, "bad.yaml");
}

TEST_F(Control, ServeRefusesABadConfig) {
  auto dir = TempDir::Create("cutover-control");
  ASSERT_TRUE(dir);
  const std::string bad = dir->File("bad.yaml");
  ASSERT_TRUE(WriteFile(bad, kBadConfig));
  ChildOptions o;
  o.argv = {CutoverBinary(), "serve", "--config", bad};
  o.output_file = dir->File("serve.log");
  o.unset_env = {"CUTOVER_CONTROL"};
  auto serve = ChildProcess::Spawn(o);
  ASSERT_TRUE(serve) << serve.error().message;
  auto exit = serve->Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << "serve did not exit: " << serve->Output();
  EXPECT_TRUE(exit->Exited(2)) << exit->ToString() << "\n" << serve->Output();
  ExpectBadConfigDiagnostics(serve->Output(), bad);
  // Nothing was started: no socket, no store.
  EXPECT_FALSE(std::filesystem::exists(dir->File("cutover.sock")));
  EXPECT_FALSE(std::filesystem::exists(dir->File("state")));
}

// ---- metrics ----

TEST_F(Control, MetricsCountRequestsOnTheControlSocket) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  constexpr int kRequests = 25;
  for (int i = 0; i < kRequests; ++i) {
    auto r = HttpGet("127.0.0.1", daemon_->port(), "/");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200);
  }
  std::map<std::string, std::string> ok = BlueLabels();
  ok["class"] = "2xx";
  // Counted once the response is relayed; the client may see it first.
  std::vector<MetricSample> m;
  ASSERT_TRUE(WaitUntil(
      [&] {
        m = Metrics();
        return Metric(m, "cutover_requests_total", ok).value_or(0) >= kRequests;
      },
      DeadlineIn(seconds(5))))
      << Api("GET", "/metrics")->body;

  EXPECT_EQ(Metric(m, "cutover_live", {{"service", "web"}, {"color", "blue"}}), 1);
  EXPECT_EQ(Metric(m, "cutover_live", {{"service", "web"}, {"color", "green"}}), 0);
  EXPECT_EQ(Metric(m, "cutover_target_healthy", BlueLabels()), 1);
  std::map<std::string, std::string> green_ok = {
      {"service", "web"}, {"color", "green"}, {"target", green_->address()}, {"class", "2xx"}};
  EXPECT_EQ(Metric(m, "cutover_requests_total", green_ok), 0);
  std::map<std::string, std::string> inf = BlueLabels();
  inf["le"] = "+Inf";
  EXPECT_GE(Metric(m, "cutover_request_duration_seconds_bucket", inf).value_or(0), kRequests);
  EXPECT_GE(Metric(m, "cutover_request_duration_seconds_count", BlueLabels()).value_or(0),
            kRequests);
  EXPECT_GT(Metric(m, "cutover_request_duration_seconds_sum", BlueLabels()).value_or(0), 0);
  EXPECT_GT(Metric(m, "cutover_bytes_out_total", BlueLabels()).value_or(0), 0);

  auto raw = UnixRequest(daemon_->control(),
                         "GET /metrics HTTP/1.1\r\nHost: cutover\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(raw) << raw.error().message;
  EXPECT_EQ(raw->status, 200);
  EXPECT_EQ(raw->Header("Content-Type").value_or(""), "text/plain; version=0.0.4");
  EXPECT_NE(raw->body.find("# TYPE cutover_request_duration_seconds histogram\n"),
            std::string::npos);
  EXPECT_NE(raw->body.find("# TYPE cutover_requests_total counter\n"), std::string::npos);

  ASSERT_TRUE(daemon_->Switch("web", "green"));
  m = Metrics();
  EXPECT_EQ(Metric(m, "cutover_live", {{"service", "web"}, {"color", "blue"}}), 0);
  EXPECT_EQ(Metric(m, "cutover_live", {{"service", "web"}, {"color", "green"}}), 1);
}

TEST_F(Control, MetricsListenerRequiresTheBearerToken) {
  auto port = FreePort();
  ASSERT_TRUE(port) << port.error().message;
  ASSERT_NO_FATAL_FAILURE(StartAll("metrics_listen: 127.0.0.1:" + std::to_string(*port) +
                                   "\nmetrics_token: " + std::string(kMetricsToken) + "\n"));
  ASSERT_TRUE(WaitForPort("127.0.0.1", *port, DeadlineIn(seconds(5))));

  auto anonymous = HttpGet("127.0.0.1", *port, "/metrics");
  ASSERT_TRUE(anonymous) << anonymous.error().message;
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(anonymous->Header("WWW-Authenticate").value_or(""), "Bearer");
  json j = ParseJson(anonymous->body);
  EXPECT_EQ(j["code"], "unauthorized") << anonymous->body;
  EXPECT_EQ(j["message"], "a valid bearer token is required") << anonymous->body;

  std::string wrong(kMetricsToken);
  wrong.back() = 'x';
  auto forged =
      HttpGet("127.0.0.1", *port, "/metrics", "localhost", {{"Authorization", "Bearer " + wrong}});
  ASSERT_TRUE(forged) << forged.error().message;
  EXPECT_EQ(forged->status, 401);

  // Without a token even an unknown path is a 401: nothing is revealed.
  auto probe = HttpGet("127.0.0.1", *port, "/v1/services");
  ASSERT_TRUE(probe) << probe.error().message;
  EXPECT_EQ(probe->status, 401);

  const HeaderList auth = {{"Authorization", "Bearer " + std::string(kMetricsToken)}};
  auto scraped = HttpGet("127.0.0.1", *port, "/metrics", "localhost", auth);
  ASSERT_TRUE(scraped) << scraped.error().message;
  EXPECT_EQ(scraped->status, 200) << scraped->body;
  EXPECT_EQ(scraped->Header("Content-Type").value_or(""), "text/plain; version=0.0.4");
  std::vector<MetricSample> m = ParseMetrics(scraped->body);
  EXPECT_EQ(Metric(m, "cutover_live", {{"service", "web"}, {"color", "blue"}}), 1) << scraped->body;

  auto other = HttpGet("127.0.0.1", *port, "/v1/services", "localhost", auth);
  ASSERT_TRUE(other) << other.error().message;
  EXPECT_EQ(other->status, 404);
  auto post = HttpRequest("127.0.0.1", *port, "POST", "/metrics", "localhost", auth, "x");
  ASSERT_TRUE(post) << post.error().message;
  EXPECT_EQ(post->status, 405);
}

// ---- access log ----

TEST_F(Control, AccessLogHasOneJsonLinePerRequest) {
  ASSERT_NO_FATAL_FAILURE(StartAll("access_log: ./access.log\n"));
  constexpr int kGets = 12;
  std::set<std::string> ids;
  for (int i = 0; i < kGets; ++i) {
    auto r = HttpGet("127.0.0.1", daemon_->port(), "/");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->status, 200);
    auto id = r->Header("X-Request-Id");
    ASSERT_TRUE(id && !id->empty());
    ids.insert(*id);
  }
  const std::string upload(1000, 'u');
  auto post = HttpRequest("127.0.0.1", daemon_->port(), "POST", "/upload", "localhost", {}, upload);
  ASSERT_TRUE(post) << post.error().message;
  ASSERT_EQ(post->status, 200) << post->body;
  const std::string post_id = post->Header("X-Request-Id").value_or("");
  ASSERT_FALSE(post_id.empty());
  ASSERT_EQ(ids.size(), static_cast<size_t>(kGets)) << "request ids repeat";
  // A client's own well-formed id is kept; a malformed one is replaced, so
  // it cannot break the log's JSON.
  auto kept =
      HttpGet("127.0.0.1", daemon_->port(), "/", "localhost", {{"X-Request-Id", "client-id-42"}});
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->Header("X-Request-Id").value_or(""), "client-id-42");
  ids.insert("client-id-42");
  auto replaced =
      HttpGet("127.0.0.1", daemon_->port(), "/", "localhost", {{"X-Request-Id", R"(bad"id\)"}});
  ASSERT_TRUE(replaced) << replaced.error().message;
  const std::string new_id = replaced->Header("X-Request-Id").value_or("");
  EXPECT_FALSE(new_id.empty());
  EXPECT_NE(new_id, R"(bad"id\)");
  ids.insert(new_id);

  const std::string log_path = dir_->File("access.log");
  std::vector<std::string> lines;
  // Lines are written in batches about every 100 ms.
  ASSERT_TRUE(WaitUntil(
      [&] {
        lines = Lines(ReadFile(log_path).value_or(""));
        return lines.size() >= ids.size() + 1;
      },
      DeadlineIn(seconds(5))))
      << lines.size() << " lines in " << log_path;
  ASSERT_EQ(lines.size(), ids.size() + 1) << ReadFile(log_path).value_or("");

  std::set<std::string> logged;
  for (const std::string& line : lines) {
    SCOPED_TRACE(line);
    json j = ParseJson(line);
    ASSERT_TRUE(j.is_object());
    for (const char* key : {"service", "color", "target", "method", "path", "status", "duration_ms",
                            "bytes_in", "bytes_out", "request_id"}) {
      EXPECT_TRUE(j.contains(key)) << key;
    }
    EXPECT_EQ(j["service"], "web");
    EXPECT_EQ(j["color"], "blue");
    EXPECT_EQ(j["target"], blue_->address());
    EXPECT_EQ(j["status"], 200);
    EXPECT_TRUE(j["duration_ms"].is_number());
    EXPECT_GE(j["duration_ms"].get<double>(), 0.0);
    EXPECT_GT(j["bytes_out"].get<int64_t>(), 0);
    const std::string id = j["request_id"].get<std::string>();
    if (id == post_id) {
      EXPECT_EQ(j["method"], "POST");
      EXPECT_EQ(j["path"], "/upload");
      EXPECT_EQ(j["bytes_in"], 1000);
    } else {
      EXPECT_EQ(j["method"], "GET");
      EXPECT_EQ(j["path"], "/");
      EXPECT_EQ(j["bytes_in"], 0);
      logged.insert(id);
    }
  }
  EXPECT_EQ(logged, ids);
}

// ---- stopping ----

TEST_F(Control, SigtermLetsARequestInFlightFinish) {
  ASSERT_NO_FATAL_FAILURE(StartAll());
  auto conn = RawConn::Connect("127.0.0.1", daemon_->port());
  ASSERT_TRUE(conn) << conn.error().message;
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/slow?ms=1000", "localhost")));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = Api("GET", "/v1/services/web");
        if (!r || r->status != 200) return false;
        json j = ParseJson(r->body);
        return j.is_object() && j["colors"]["blue"]["targets"][0]["in_flight"] == 1;
      },
      DeadlineIn(seconds(5))))
      << "the slow request never reached blue";

  ASSERT_TRUE(daemon_->process().Signal(SIGTERM));
  auto res = conn->ReadResponse(DeadlineIn(seconds(10)));
  ASSERT_TRUE(res) << res.error().message << "\n" << daemon_->process().Output();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "blue");
  auto exit = daemon_->process().Wait(DeadlineIn(seconds(15)));
  ASSERT_TRUE(exit) << "the daemon did not stop: " << daemon_->process().Output();
  EXPECT_TRUE(exit->Exited(0)) << exit->ToString() << "\n" << daemon_->process().Output();
  EXPECT_FALSE(std::filesystem::exists(daemon_->control())) << "the socket file was left behind";
}

}  // namespace
}  // namespace cutover::test
