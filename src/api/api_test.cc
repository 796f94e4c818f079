#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "api/client.h"
#include "api/control_routes.h"
#include "api/http_routes.h"
#include "api/http_server.h"
#include "api/json.h"

namespace cutover {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using Unix = asio::local::stream_protocol;

// ---------------------------------------------------------------------------
// Fixtures

class TempDir {
 public:
  TempDir() {
    // Short, because a unix socket path must fit in 107 bytes.
    std::string tmpl = (fs::temp_directory_path() / "cutover-api-XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string Path(std::string_view name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

ServiceView WebService() {
  ServiceView web;
  web.name = "web";
  web.live = Color::kBlue;
  web.hosts = {"web.example.com", "localhost"};
  web.path_prefix = "/";
  web.targets[static_cast<int>(Color::kBlue)] = {{"127.0.0.1:9001", true, 0}};
  web.targets[static_cast<int>(Color::kGreen)] = {{"127.0.0.1:9002", true, 3},
                                                  {"127.0.0.1:9003", false, 0}};
  web.driver = "static";
  web.slots[static_cast<int>(Color::kBlue)] = {"v7", "running", "", {}};
  web.slots[static_cast<int>(Color::kGreen)] = {"v6", "running", "kept for rollback", {}};
  return web;
}

ServiceView ApiService() {
  ServiceView api;
  api.name = "api";
  api.live = Color::kGreen;
  api.hosts = {"*"};
  api.path_prefix = "/api";
  api.targets[static_cast<int>(Color::kBlue)] = {{"127.0.0.1:9011", false, 0}};
  return api;
}

// Has the Controller's shape; keeps services in memory and refuses a switch to
// a color without a healthy target unless forced, like the real one.
class FakeController {
 public:
  std::vector<ServiceView> services = {WebService(), ApiService()};
  std::string last_actor;
  bool last_force = false;

  std::vector<ServiceView> ListServices() const { return services; }

  Result<ServiceView> GetService(std::string_view name) const {
    for (const ServiceView& s : services) {
      if (s.name == name) return s;
    }
    return MakeError(ErrorCode::kNotFound, "no service named '" + std::string(name) + "'");
  }

  asio::awaitable<Result<ServiceView>> Switch(std::string name, Color to, bool force,
                                              std::string actor) {
    last_actor = actor;
    last_force = force;
    for (ServiceView& s : services) {
      if (s.name != name) continue;
      bool healthy = false;
      for (const TargetView& t : s.targets[static_cast<int>(to)]) healthy = healthy || t.healthy;
      if (!healthy && !force) {
        co_return MakeError(
            ErrorCode::kConflict,
            "service '" + name + "': " + std::string(ColorName(to)) + " has no healthy target");
      }
      s.live = to;
      co_return s;
    }
    co_return MakeError(ErrorCode::kNotFound, "no service named '" + name + "'");
  }

  std::string PrometheusMetrics() const { return "cutover_requests_total 7\n"; }
};

// Runs an io_context on its own thread, as the daemon's control thread does,
// with servers created before it starts and destroyed on it.
class ControlThread {
 public:
  ~ControlThread() { Stop(); }

  void Run() {
    thread_ = std::thread([this] { ctx.run(); });
  }

  // Destroys the servers on the control thread, then waits for the loop to
  // run out of work: with every server stopped, nothing may be left.
  void Stop() {
    if (!thread_.joinable()) return;
    asio::post(ctx, [this] { servers.clear(); });
    thread_.join();
  }

  asio::io_context ctx;
  std::vector<std::unique_ptr<HttpServer>> servers;

 private:
  std::thread thread_;
};

HttpRequest MakeRequest(http::verb verb, std::string target, std::string body = {}) {
  HttpRequest request{verb, target, 11};
  request.set(http::field::host, "test");
  if (!body.empty()) {
    request.set(http::field::content_type, "application/json");
    request.body() = std::move(body);
  }
  request.prepare_payload();
  return request;
}

// A plain synchronous HTTP exchange, for looking at headers and connection
// behaviour the ApiClient hides.
template <typename Socket>
HttpResponse Exchange(Socket& socket, HttpRequest request) {
  boost::system::error_code ec;
  http::write(socket, request, ec);
  EXPECT_FALSE(ec) << ec.message();
  boost::beast::flat_buffer buffer;
  HttpResponse response;
  http::read(socket, buffer, response, ec);
  EXPECT_FALSE(ec) << ec.message();
  return response;
}

HttpResponse UnixExchange(const std::string& path, HttpRequest request) {
  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path), ec);
  EXPECT_FALSE(ec) << ec.message();
  return Exchange(socket, std::move(request));
}

HttpResponse TcpExchange(uint16_t port, HttpRequest request) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  EXPECT_FALSE(ec) << ec.message();
  return Exchange(socket, std::move(request));
}

// Leaves a socket file that nobody listens on, as a crashed daemon does.
void MakeStaleSocket(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  ASSERT_TRUE(fs::is_socket(path));
}

bool Connectable(const std::string& path) {
  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path), ec);
  return !ec;
}

Json ParsedBody(const std::string& body) {
  auto json = ParseJson(body);
  EXPECT_TRUE(json.has_value()) << body;
  return json ? *json : Json();
}

// ---------------------------------------------------------------------------
// JSON

TEST(ApiJsonTest, ServiceViewHasTheDocumentedShape) {
  EXPECT_EQ(JsonBody(ToJson(WebService())),
            R"({"name":"web","live":"blue","hosts":["web.example.com","localhost"],)"
            R"("path_prefix":"/","released":true,"driver":"static",)"
            R"("colors":{"blue":{"release":"v7","state":"running",)"
            R"("targets":[{"address":"127.0.0.1:9001","healthy":true,"in_flight":0}]},)"
            R"("green":{"release":"v6","state":"running","note":"kept for rollback",)"
            R"("targets":[{"address":"127.0.0.1:9002","healthy":true,"in_flight":3},)"
            R"({"address":"127.0.0.1:9003","healthy":false,"in_flight":0}]}},)"
            R"("deployment":null})"
            "\n");
}

// A deployment record with steps named and ended as given; times 1000 ms apart
// but for the switch, which takes 7 ms.
DeploymentRecord WithSteps(std::vector<std::pair<std::string, std::string>> steps) {
  DeploymentRecord d;
  d.id = 4;
  int64_t t = 1'000;
  for (auto& [name, outcome] : steps) {
    const int64_t took = name == "switch" ? 7 : 1'000;
    d.steps.push_back({name, outcome, t, outcome == "pending" ? 0 : t + took, ""});
    t += took;
  }
  return d;
}

TEST(ApiJsonTest, DeploymentSaysItsKindSwitchTimeAndFailedStep) {
  Json ok = ToJson(WithSteps({{"prepare", "ok"}, {"start", "ok"}, {"switch", "ok"}}));
  EXPECT_EQ(ok["kind"], "deploy");
  EXPECT_EQ(ok["switch_ms"], 7);
  EXPECT_TRUE(ok["failed_step"].is_null());

  Json rollback = ToJson(WithSteps({{"schema", "ok"}, {"start", "ok"}, {"switch", "ok"}}));
  EXPECT_EQ(rollback["kind"], "rollback");
  EXPECT_EQ(rollback["switch_ms"], 7);

  Json halted = ToJson(WithSteps({{"prepare", "ok"}, {"check", "failed"}, {"switch", "skipped"}}));
  EXPECT_TRUE(halted["switch_ms"].is_null());
  EXPECT_EQ(halted["failed_step"], "check");

  Json observed = ToJson(WithSteps({{"prepare", "ok"}, {"switch", "ok"}, {"observe", "failed"}}));
  EXPECT_EQ(observed["switch_ms"], 7);
  EXPECT_EQ(observed["failed_step"], "observe");

  EXPECT_EQ(ToJson(WithSteps({{"prepare", "ok"}, {"approve", "aborted"}}))["failed_step"],
            "approve");
  EXPECT_EQ(ToJson(WithSteps({{"prepare", "ok"}, {"healthy", "interrupted"}}))["failed_step"],
            "healthy");
  // What the CLI reads back says the same.
  auto back = DeploymentFromJson(observed);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->Kind(), "deploy");
  EXPECT_EQ(back->SwitchMs(), 7);
  EXPECT_EQ(back->FailedStep(), "observe");
}

TEST(ApiJsonTest, ColorWithoutTargetsIsAnEmptyList) {
  Json json = ToJson(ApiService());
  EXPECT_EQ(json["live"], "green");
  EXPECT_EQ(json["colors"]["green"]["targets"], Json::array());
}

TEST(ApiJsonTest, ServiceListRoundTrips) {
  auto services = ServicesFromJson(ServicesToJson({WebService(), ApiService()}));
  ASSERT_TRUE(services.has_value()) << services.error().message;
  ASSERT_EQ(services->size(), 2u);
  const ServiceView& web = (*services)[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.live, Color::kBlue);
  EXPECT_EQ(web.hosts, WebService().hosts);
  ASSERT_EQ(web.targets[1].size(), 2u);
  EXPECT_EQ(web.targets[1][0].address, "127.0.0.1:9002");
  EXPECT_EQ(web.targets[1][0].in_flight, 3);
  EXPECT_FALSE(web.targets[1][1].healthy);
  EXPECT_EQ((*services)[1].live, Color::kGreen);
  EXPECT_EQ((*services)[1].path_prefix, "/api");
  EXPECT_EQ(web.driver, "static");
  EXPECT_EQ(web.slots[0].release, "v7");
  EXPECT_EQ(web.slots[1].note, "kept for rollback");
}

TEST(ApiJsonTest, ServiceFromJsonNamesTheBadField) {
  Json json = ToJson(WebService());
  json["live"] = "purple";
  auto service = ServiceFromJson(json);
  ASSERT_FALSE(service.has_value());
  EXPECT_EQ(service.error().message, R"(service 'web': 'live' must be "blue" or "green")");
}

TEST(ApiJsonTest, ErrorBodyCarriesCodeNameAndMessage) {
  EXPECT_EQ(ErrorBody(Error{ErrorCode::kNotFound, "no service named 'shop'"}),
            R"({"code":"not_found","message":"no service named 'shop'"})"
            "\n");
  EXPECT_EQ(ErrorBody(Error{ErrorCode::kIo, "disk full"}),
            R"({"code":"io_error","message":"disk full"})"
            "\n");
}

TEST(ApiJsonTest, ErrorCodesMapToHttpStatuses) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kConflict), 409);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kTimeout), 504);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kIo), 500);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInternal), 500);
}

TEST(ApiJsonTest, ErrorCodeNamesRoundTrip) {
  for (ErrorCode code :
       {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kConflict,
        ErrorCode::kUnavailable, ErrorCode::kTimeout, ErrorCode::kIo, ErrorCode::kInternal}) {
    EXPECT_EQ(ErrorCodeFromName(ErrorCodeName(code)), code);
  }
  EXPECT_EQ(ErrorCodeFromName("method_not_allowed"), ErrorCode::kInternal);
}

TEST(ApiJsonTest, SwitchRequestAcceptsToAndForce) {
  auto plain = ParseSwitchRequest(R"({"to":"green"})");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->to, Color::kGreen);
  EXPECT_FALSE(plain->force);
  auto forced = ParseSwitchRequest(R"({"to":"blue","force":true})");
  ASSERT_TRUE(forced.has_value());
  EXPECT_EQ(forced->to, Color::kBlue);
  EXPECT_TRUE(forced->force);
}

TEST(ApiJsonTest, SwitchRequestErrorsSayWhatIsWrong) {
  auto message = [](std::string_view body) {
    auto request = ParseSwitchRequest(body);
    EXPECT_FALSE(request.has_value()) << body;
    EXPECT_EQ(request ? ErrorCode::kInternal : request.error().code, ErrorCode::kInvalidArgument);
    return request ? std::string() : request.error().message;
  };
  EXPECT_EQ(message(R"({"to":"purple"})"), R"(body: 'to' must be "blue" or "green", got "purple")");
  EXPECT_EQ(message(R"({"to":1})"), R"(body: 'to' must be "blue" or "green", got a number)");
  EXPECT_EQ(message(R"({})"), R"(body: 'to' is required ("blue" or "green"))");
  EXPECT_EQ(message(R"({"to":"green","froce":true})"),
            R"(body: unknown field "froce" (expected "to", "force"))");
  EXPECT_EQ(message(R"({"to":"green","force":"yes"})"),
            R"(body: 'force' must be true or false, got "yes")");
  EXPECT_EQ(message(""), R"(body: expected a JSON object such as {"to":"green"})");
  EXPECT_EQ(message(R"(["green"])"),
            R"(body: expected a JSON object such as {"to":"green"}, got an array)");
  EXPECT_TRUE(message("to=green").starts_with("body: not valid JSON: parse error at line 1"))
      << message("to=green");
}

// ---------------------------------------------------------------------------
// Client

TEST(ApiClientTest, MissingSocketIsUnavailableAndNamesThePath) {
  TempDir dir;
  const std::string path = dir.Path("nobody.sock");
  auto response = ApiClient(path).Call("GET", "/v1/services");
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(response.error().message,
            "cannot reach the cutover daemon at " + path + ": No such file or directory");
}

TEST(ApiClientTest, StaleSocketIsUnavailable) {
  TempDir dir;
  const std::string path = dir.Path("stale.sock");
  MakeStaleSocket(path);
  auto response = ApiClient(path).Call("GET", "/v1/services");
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(response.error().message,
            "cannot reach the cutover daemon at " + path + ": Connection refused");
}

TEST(ApiClientTest, OverlongSocketPathIsRejected) {
  const std::string path = "/tmp/" + std::string(200, 'x') + ".sock";
  auto response = ApiClient(path).Call("GET", "/v1/services");
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(response.error().message.find("too long"), std::string::npos);
}

TEST(ApiClientTest, ErrorFromResponseUsesTheServersMessage) {
  Error error = ErrorFromResponse(
      {409, R"({"code":"conflict","message":"service 'web': green has no healthy target"})"});
  EXPECT_EQ(error.code, ErrorCode::kConflict);
  EXPECT_EQ(error.message, "service 'web': green has no healthy target");

  Error foreign = ErrorFromResponse({502, "Bad gateway\n<html>"});
  EXPECT_EQ(foreign.code, ErrorCode::kInternal);
  EXPECT_EQ(foreign.message, "the daemon answered HTTP 502: Bad gateway");
}

TEST(ApiClientTest, TimesOutWhenTheDaemonDoesNotAnswer) {
  TempDir dir;
  const std::string path = dir.Path("silent.sock");
  // Listens, never accepts: the connect succeeds, the answer never comes.
  asio::io_context io;
  Unix::acceptor acceptor(io, Unix::endpoint(path));
  auto response = ApiClient(path, Millis{100}).Call("GET", "/v1/services");
  ASSERT_FALSE(response.has_value());
  EXPECT_EQ(response.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(response.error().message,
            "no answer from the cutover daemon at " + path + " within 100ms");
}

// ---------------------------------------------------------------------------
// Socket file handling

TEST(ApiSocketTest, SocketFileIsOwnerOnlyWhateverTheUmask) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  asio::io_context io;
  const mode_t old = ::umask(0);
  auto acceptor = ListenUnixSocket(io, path);
  ::umask(old);
  ASSERT_TRUE(acceptor.has_value()) << acceptor.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(::umask(old), old) << "umask must be restored";
}

TEST(ApiSocketTest, MissingParentFolderIsCreatedOwnerOnly) {
  TempDir dir;
  const std::string path = dir.Path("run/cutover.sock");
  asio::io_context io;
  auto acceptor = ListenUnixSocket(io, path);
  ASSERT_TRUE(acceptor.has_value()) << acceptor.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(dir.Path("run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST(ApiSocketTest, StaleSocketIsReplaced) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  MakeStaleSocket(path);
  ASSERT_FALSE(Connectable(path));
  asio::io_context io;
  auto acceptor = ListenUnixSocket(io, path);
  ASSERT_TRUE(acceptor.has_value()) << acceptor.error().message;
  EXPECT_TRUE(Connectable(path));
}

TEST(ApiSocketTest, LiveSocketIsRefusedAndLeftAlone) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  asio::io_context io;
  auto first = ListenUnixSocket(io, path);
  ASSERT_TRUE(first.has_value()) << first.error().message;
  auto second = ListenUnixSocket(io, path);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_EQ(second.error().message, "another cutover daemon is listening on " + path);
  EXPECT_TRUE(Connectable(path)) << "the first listener must keep its socket";
}

TEST(ApiSocketTest, NonSocketIsNotTouched) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  std::ofstream(path) << "precious";
  asio::io_context io;
  auto acceptor = ListenUnixSocket(io, path);
  ASSERT_FALSE(acceptor.has_value());
  EXPECT_EQ(acceptor.error().message, path + " exists and is not a socket; not replacing it");
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST(ApiSocketTest, OverlongPathIsRejected) {
  asio::io_context io;
  auto acceptor = ListenUnixSocket(io, "/tmp/" + std::string(200, 'x'));
  ASSERT_FALSE(acceptor.has_value());
  EXPECT_EQ(acceptor.error().code, ErrorCode::kInvalidArgument);
}

TEST(ApiSocketTest, StopRemovesTheSocketFile) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  asio::io_context io;
  auto server = HttpServer::ServeUnix(io, path, HttpRoutes(), {});
  ASSERT_TRUE(server.has_value()) << server.error().message;
  EXPECT_TRUE(fs::is_socket(path));
  (*server)->Stop();
  EXPECT_FALSE(fs::exists(path));
}

TEST(ApiSocketTest, StopLeavesASuccessorsSocketAlone) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  asio::io_context io;
  auto server = HttpServer::ServeUnix(io, path, HttpRoutes(), {});
  ASSERT_TRUE(server.has_value()) << server.error().message;
  // A successor took over the path (e.g. after removing ours).
  ASSERT_TRUE(fs::remove(path));
  MakeStaleSocket(path);
  (*server)->Stop();
  EXPECT_TRUE(fs::is_socket(path));
}

// ---------------------------------------------------------------------------
// Control routes over the unix socket

class ControlApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.Path("cutover.sock");
    auto server = HttpServer::ServeUnix(control_.ctx, path_, ControlRoutes(controller_), {});
    ASSERT_TRUE(server.has_value()) << server.error().message;
    control_.servers.push_back(std::move(*server));
    control_.Run();
  }

  ApiResponse Call(std::string_view method, std::string_view target, std::string_view body = {}) {
    auto response = ApiClient(path_).Call(method, target, body);
    EXPECT_TRUE(response.has_value()) << response.error().message;
    return response ? *response : ApiResponse{};
  }

  TempDir dir_;
  std::string path_;
  FakeController controller_;
  ControlThread control_;  // last: stops before the controller goes away
};

TEST_F(ControlApiTest, ListsServices) {
  ApiResponse response = Call("GET", "/v1/services");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(ParsedBody(response.body), ServicesToJson({WebService(), ApiService()}));
}

TEST_F(ControlApiTest, GetsOneService) {
  ApiResponse response = Call("GET", "/v1/services/web");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, JsonBody(ToJson(WebService())));
}

TEST_F(ControlApiTest, UnknownServiceIsNotFound) {
  ApiResponse response = Call("GET", "/v1/services/shop");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, ErrorBody(Error{ErrorCode::kNotFound, "no service named 'shop'"}));
}

TEST_F(ControlApiTest, ServiceNameIsPercentDecoded) {
  controller_.services[0].name = "web app";
  ApiResponse response = Call("GET", "/v1/services/web%20app?verbose=1");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(ParsedBody(response.body)["name"], "web app");
}

TEST_F(ControlApiTest, SwitchReturnsTheNewStateAndRecordsTheActor) {
  ApiResponse response = Call("POST", "/v1/services/web/switch", R"({"to":"green"})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(ParsedBody(response.body)["live"], "green");
  EXPECT_EQ(controller_.last_actor, "api");
  EXPECT_FALSE(controller_.last_force);

  ApiClient client(path_);
  client.set_actor("cli");
  auto back = client.Call("POST", "/v1/services/web/switch", R"({"to":"blue"})");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->status, 200);
  EXPECT_EQ(ParsedBody(back->body)["live"], "blue");
  EXPECT_EQ(controller_.last_actor, "cli");
}

TEST_F(ControlApiTest, RefusedSwitchIsConflictUnlessForced) {
  ApiResponse refused = Call("POST", "/v1/services/api/switch", R"({"to":"blue"})");
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(refused.body,
            ErrorBody(Error{ErrorCode::kConflict, "service 'api': blue has no healthy target"}));

  ApiResponse forced = Call("POST", "/v1/services/api/switch", R"({"to":"blue","force":true})");
  EXPECT_EQ(forced.status, 200);
  EXPECT_EQ(ParsedBody(forced.body)["live"], "blue");
  EXPECT_TRUE(controller_.last_force);
}

TEST_F(ControlApiTest, BadSwitchBodyIsBadRequest) {
  ApiResponse response = Call("POST", "/v1/services/web/switch", R"({"to":"purple"})");
  EXPECT_EQ(response.status, 400);
  Error error = ErrorFromResponse(response);
  EXPECT_EQ(error.code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(error.message, R"(body: 'to' must be "blue" or "green", got "purple")");

  ApiResponse not_json = Call("POST", "/v1/services/web/switch", "to=green");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_EQ(ParsedBody(not_json.body)["code"], "invalid_argument");

  ApiResponse empty = Call("POST", "/v1/services/web/switch");
  EXPECT_EQ(empty.status, 400);
  EXPECT_EQ(controller_.last_actor, "") << "a bad request must not reach the controller";
}

TEST_F(ControlApiTest, BadActorHeaderIsBadRequest) {
  HttpRequest request =
      MakeRequest(http::verb::post, "/v1/services/web/switch", R"({"to":"green"})");
  request.set("X-Cutover-Actor", std::string(200, 'a'));
  HttpResponse response = UnixExchange(path_, request);
  EXPECT_EQ(response.result_int(), 400u);
  EXPECT_EQ(ParsedBody(response.body())["code"], "invalid_argument");
}

TEST_F(ControlApiTest, UnknownPathIsNotFound) {
  ApiResponse response = Call("GET", "/v1/nothing");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(ParsedBody(response.body)["code"], "not_found");
  EXPECT_EQ(Call("GET", "/v1/services/web/switch/now").status, 404);
  EXPECT_EQ(Call("GET", "/v1/services/").status, 404);
}

TEST_F(ControlApiTest, WrongMethodIsNotAllowedWithAllowHeader) {
  HttpResponse response = UnixExchange(path_, MakeRequest(http::verb::delete_, "/v1/services/web"));
  EXPECT_EQ(response.result_int(), 405u);
  EXPECT_EQ(response[http::field::allow], "GET");
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_EQ(ParsedBody(response.body())["code"], "method_not_allowed");

  HttpResponse get_switch =
      UnixExchange(path_, MakeRequest(http::verb::get, "/v1/services/web/switch"));
  EXPECT_EQ(get_switch.result_int(), 405u);
  EXPECT_EQ(get_switch[http::field::allow], "POST");
}

TEST_F(ControlApiTest, MetricsAreTextExposition) {
  HttpResponse response = UnixExchange(path_, MakeRequest(http::verb::get, "/metrics"));
  EXPECT_EQ(response.result_int(), 200u);
  EXPECT_EQ(response[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_EQ(response.body(), "cutover_requests_total 7\n");
}

TEST_F(ControlApiTest, OversizeBodyIsRejectedWith413) {
  const std::string body = R"({"to":"green","pad":")" + std::string(2 * 1024 * 1024, 'x') + "\"}";
  ApiResponse response = Call("POST", "/v1/services/web/switch", body);
  EXPECT_EQ(response.status, 413);
  EXPECT_EQ(ParsedBody(response.body)["code"], "payload_too_large");
  EXPECT_EQ(controller_.last_actor, "");
}

TEST_F(ControlApiTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path_), ec);
  ASSERT_FALSE(ec) << ec.message();
  HttpResponse first = Exchange(socket, MakeRequest(http::verb::get, "/v1/services/web"));
  EXPECT_EQ(first.result_int(), 200u);
  EXPECT_TRUE(first.keep_alive());
  HttpResponse second = Exchange(
      socket, MakeRequest(http::verb::post, "/v1/services/web/switch", R"({"to":"green"})"));
  EXPECT_EQ(second.result_int(), 200u);
  HttpResponse third = Exchange(socket, MakeRequest(http::verb::get, "/v1/services/web"));
  EXPECT_EQ(ParsedBody(third.body())["live"], "green");
}

TEST_F(ControlApiTest, MalformedRequestIsBadRequest) {
  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path_), ec);
  ASSERT_FALSE(ec) << ec.message();
  asio::write(socket, asio::buffer(std::string_view("GET /v1/services HTTP/9.9\r\n\r\n")), ec);
  boost::beast::flat_buffer buffer;
  HttpResponse response;
  http::read(socket, buffer, response, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(response.result_int(), 400u);
  EXPECT_FALSE(response.keep_alive());
}

// ---------------------------------------------------------------------------
// Server behaviour with routes of its own

asio::awaitable<HttpResponse> Text(std::string text) {
  HttpResponse response;
  response.result(200);
  response.body() = std::move(text);
  co_return response;
}

// Lets one request wait on the control thread until another one opens it.
struct Gate {
  explicit Gate(asio::io_context& ctx) : timer(ctx, asio::steady_timer::time_point::max()) {}
  asio::steady_timer timer;
  bool waiting = false;
};

asio::awaitable<HttpResponse> WaitAtGate(std::shared_ptr<Gate> gate) {
  gate->waiting = true;
  co_await gate->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return co_await Text("waited");
}

asio::awaitable<HttpResponse> OpenGate(std::shared_ptr<Gate> gate) {
  if (!gate->waiting) co_return ErrorResponse(409, "conflict", "nobody waits yet");
  gate->timer.cancel();
  co_return co_await Text("opened");
}

TEST(HttpServerTest, SlowRequestDoesNotHoldUpOthers) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  ControlThread control;
  {
    // Owned by the routes, so it goes away on the control thread with them.
    auto gate = std::make_shared<Gate>(control.ctx);
    HttpRoutes routes;
    routes.Add(http::verb::get, "/wait",
               [gate](const HttpRequest&, const PathParams&) { return WaitAtGate(gate); });
    routes.Add(http::verb::post, "/open",
               [gate](const HttpRequest&, const PathParams&) { return OpenGate(gate); });
    auto server = HttpServer::ServeUnix(control.ctx, path, std::move(routes), {});
    ASSERT_TRUE(server.has_value());
    control.servers.push_back(std::move(*server));
  }
  control.Run();

  auto waiting =
      std::async(std::launch::async, [&] { return ApiClient(path).Call("GET", "/wait"); });
  // /wait can only finish once /open was served while /wait was pending.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  Result<ApiResponse> opened;
  do {
    opened = ApiClient(path).Call("POST", "/open");
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
  } while (opened->status == 409 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(opened->body, "opened");
  auto waited = waiting.get();
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(waited->body, "waited");
}

TEST(HttpServerTest, ClientThatStallsInTheHeaderIsDisconnected) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  ControlThread control;
  HttpServerOptions options;
  options.header_timeout = Millis{100};
  auto server = HttpServer::ServeUnix(control.ctx, path, HttpRoutes(), options);
  ASSERT_TRUE(server.has_value());
  control.servers.push_back(std::move(*server));
  control.Run();

  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path), ec);
  ASSERT_FALSE(ec);
  asio::write(socket, asio::buffer(std::string_view("GET /v1/services HTTP/1.1\r\nHost: x\r\n")),
              ec);
  ASSERT_FALSE(ec);
  char byte;
  socket.read_some(asio::buffer(&byte, 1), ec);  // returns once the server hangs up
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
}

TEST(HttpServerTest, StopClosesIdleConnections) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  ControlThread control;
  HttpRoutes routes;
  routes.Add(http::verb::get, "/hello",
             [](const HttpRequest&, const PathParams&) { return Text("hello"); });
  auto server = HttpServer::ServeUnix(control.ctx, path, std::move(routes), {});
  ASSERT_TRUE(server.has_value());
  control.servers.push_back(std::move(*server));
  control.Run();

  asio::io_context io;
  Unix::socket socket(io);
  boost::system::error_code ec;
  socket.connect(Unix::endpoint(path), ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(Exchange(socket, MakeRequest(http::verb::get, "/hello")).body(), "hello");
  // The connection is idle in keep-alive; stopping must not wait for it.
  control.Stop();
  char byte;
  socket.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_FALSE(fs::exists(path));
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitAreClosed) {
  TempDir dir;
  const std::string path = dir.Path("cutover.sock");
  ControlThread control;
  HttpServerOptions options;
  options.max_connections = 1;
  HttpRoutes routes;
  routes.Add(http::verb::get, "/hello",
             [](const HttpRequest&, const PathParams&) { return Text("hello"); });
  auto server = HttpServer::ServeUnix(control.ctx, path, std::move(routes), options);
  ASSERT_TRUE(server.has_value());
  control.servers.push_back(std::move(*server));
  control.Run();

  asio::io_context io;
  Unix::socket first(io);
  boost::system::error_code ec;
  first.connect(Unix::endpoint(path), ec);
  ASSERT_FALSE(ec);
  // Served: the connection is registered before the next one is accepted.
  EXPECT_EQ(Exchange(first, MakeRequest(http::verb::get, "/hello")).body(), "hello");

  Unix::socket second(io);
  second.connect(Unix::endpoint(path), ec);
  ASSERT_FALSE(ec);
  char byte;
  second.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();

  // Once the first one is gone, new clients are served again.
  first.close();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  Result<ApiResponse> again;
  do {
    again = ApiClient(path).Call("GET", "/hello");
  } while (!again && std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->body, "hello");
}

// ---------------------------------------------------------------------------
// Metrics listener

class MetricsListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions options;
    options.authorize = RequireBearerToken("s3cret-token");
    auto server = HttpServer::ServeTcp(control_.ctx, HostPort{"127.0.0.1", 0},
                                       MetricsRoutes(controller_), std::move(options));
    ASSERT_TRUE(server.has_value()) << server.error().message;
    port_ = (*server)->port();
    ASSERT_NE(port_, 0);
    control_.servers.push_back(std::move(*server));
    control_.Run();
  }

  HttpRequest Get(std::string target, std::string_view authorization = {}) {
    HttpRequest request = MakeRequest(http::verb::get, std::move(target));
    if (!authorization.empty()) request.set(http::field::authorization, authorization);
    return request;
  }

  FakeController controller_;
  ControlThread control_;
  uint16_t port_ = 0;
};

TEST_F(MetricsListenerTest, ServesMetricsWithTheToken) {
  HttpResponse response = TcpExchange(port_, Get("/metrics", "Bearer s3cret-token"));
  EXPECT_EQ(response.result_int(), 200u);
  EXPECT_EQ(response[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_EQ(response.body(), "cutover_requests_total 7\n");
}

TEST_F(MetricsListenerTest, MissingOrWrongTokenIsUnauthorized) {
  for (std::string_view authorization :
       {std::string_view(), std::string_view("Bearer wrong"), std::string_view("Bearer s3cret"),
        std::string_view("Bearer s3cret-token2"), std::string_view("Basic czNjcmV0LXRva2Vu")}) {
    HttpResponse response = TcpExchange(port_, Get("/metrics", authorization));
    EXPECT_EQ(response.result_int(), 401u) << authorization;
    EXPECT_EQ(response[http::field::www_authenticate], "Bearer");
    EXPECT_EQ(ParsedBody(response.body())["code"], "unauthorized");
  }
}

TEST_F(MetricsListenerTest, ServesNothingButMetrics) {
  EXPECT_EQ(TcpExchange(port_, Get("/v1/services", "Bearer s3cret-token")).result_int(), 404u);
  EXPECT_EQ(TcpExchange(port_, Get("/v1/services")).result_int(), 401u);
  HttpRequest post = MakeRequest(http::verb::post, "/metrics", "{}");
  post.set(http::field::authorization, "Bearer s3cret-token");
  EXPECT_EQ(TcpExchange(port_, post).result_int(), 405u);
}

// ---------------------------------------------------------------------------
// Routing

TEST(HttpRoutesTest, SplitPathDecodesAndDropsTheQuery) {
  auto segments = SplitPath("/v1/services/web%2Dapp?x=1");
  ASSERT_TRUE(segments.has_value());
  EXPECT_EQ(*segments, (std::vector<std::string>{"v1", "services", "web-app"}));
  EXPECT_FALSE(SplitPath("/v1/%zz").has_value());
  EXPECT_FALSE(SplitPath("http://host/v1").has_value());
}

}  // namespace
}  // namespace cutover
