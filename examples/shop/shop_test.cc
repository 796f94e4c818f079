// cutover-shop over HTTP, with its SQLite stores on a temporary file whose
// schema comes from the migration files themselves, applied the way cutover
// applies them: what a shopper and cutover's checks would see, per release.
#include "shop.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "release.h"
#include "stores.h"

namespace shop {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "cutover-shop-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs the SQLite migration files whose names contain one of `names`, in
// version order, each in a transaction: what `cutover migrate` does to the file.
void Migrate(const fs::path& db_path, const std::vector<std::string>& names) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(SHOP_MIGRATIONS_DIR) / "sqlite")) {
    const std::string name = entry.path().filename().string();
    for (const std::string& wanted : names) {
      if (name.find(wanted) != std::string::npos) files.push_back(entry.path());
    }
  }
  ASSERT_EQ(files.size(), names.size());
  std::sort(files.begin(), files.end());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  for (const fs::path& file : files) {
    std::ifstream in(file);
    std::stringstream sql;
    sql << "BEGIN;\n" << in.rdbuf() << "\nCOMMIT;";
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.str().c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << file << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  sqlite3_close(db);
}

const std::vector<std::string> kV1Schema = {"create_tables.expand"};
const std::vector<std::string> kV2Schema = {"create_tables.expand", "add_gift_message.expand"};

// One running instance of the shop on a free port.
class Instance {
 public:
  Instance(Release release, const fs::path& db) {
    StoreOptions options;
    options.sqlite_path = db.string();
    options.columns.note = BehaviourOf(release).writes_note;
    options.columns.gift_message = BehaviourOf(release).gift_message;
    stores_ = std::move(*OpenStores(options));
    shop_ = std::make_unique<Shop>(release, *stores_.carts, *stores_.orders);
    shop_->Register(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // The socket already listens; stop() is only safe once the loop runs.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  }
  ~Instance() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }

  httplib::Client Client() const {
    httplib::Client client("127.0.0.1", port_);
    client.set_keep_alive(true);
    return client;
  }

 private:
  Stores stores_;
  std::unique_ptr<Shop> shop_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// The `sid=...` of a response's Set-Cookie, as a Cookie header value.
std::string SessionCookie(const httplib::Result& res) {
  std::string set_cookie = res->get_header_value("Set-Cookie");
  return set_cookie.substr(0, set_cookie.find(';'));
}

json Json(const httplib::Result& res) { return json::parse(res->body); }

class ShopTest : public ::testing::Test {
 protected:
  fs::path Db() const { return dir_.path() / "shop.db"; }
  TempDir dir_;
};

TEST_F(ShopTest, HealthFailsUntilTheMigrationsHaveMadeTheSchema) {
  Instance v1(Release::kV1, Db());
  httplib::Client client = v1.Client();

  auto missing = client.Get("/healthz");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 503);
  EXPECT_NE(missing->body.find("does not exist"), std::string::npos) << missing->body;
  EXPECT_FALSE(fs::exists(Db())) << "the shop must not create its database";

  std::ofstream(Db()).close();  // an empty database: no tables yet
  auto empty = client.Get("/healthz");
  EXPECT_EQ(empty->status, 503);
  EXPECT_NE(empty->body.find("no such table"), std::string::npos) << empty->body;
  EXPECT_NE(empty->body.find("migrations"), std::string::npos) << empty->body;

  Migrate(Db(), kV1Schema);
  auto ready = client.Get("/healthz");
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->body, "ok\n");
}

TEST_F(ShopTest, CartFollowsTheCookieAndCheckoutEmptiesIt) {
  Migrate(Db(), kV1Schema);
  Instance v1(Release::kV1, Db());
  httplib::Client client = v1.Client();

  auto first = client.Post("/cart/add?item=gadget");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  const std::string cookie = SessionCookie(first);
  ASSERT_EQ(cookie.size(), 4 + 32) << cookie;
  httplib::Headers with_cookie = {{"Cookie", cookie}};

  auto second = client.Post("/cart/add?item=gadget", with_cookie, "", "text/plain");
  EXPECT_FALSE(second->has_header("Set-Cookie")) << "a known session keeps its id";
  client.Post("/cart/add?item=widget", with_cookie, "", "text/plain");
  client.Post("/cart/add?item=gizmo", with_cookie, "", "text/plain");
  auto removed = client.Post("/cart/remove?item=gizmo", with_cookie, "", "text/plain");
  EXPECT_EQ(Json(removed)["count"], 3);

  auto cart = Json(client.Get("/cart", with_cookie));
  EXPECT_EQ(cart["items"][0]["item"], "gadget");
  EXPECT_EQ(cart["items"][0]["quantity"], 2);
  EXPECT_EQ(cart["items"][1]["item"], "widget");
  EXPECT_EQ(cart["total_cents"], 2 * 1999 + 499);

  auto checkout = client.Post("/checkout", with_cookie, "", "text/plain");
  ASSERT_EQ(checkout->status, 201) << checkout->body;
  const int64_t id = Json(checkout)["order_id"];
  EXPECT_EQ(checkout->get_header_value("Location"), "/orders/" + std::to_string(id));
  EXPECT_EQ(Json(client.Get("/cart", with_cookie))["count"], 0);

  auto order = Json(client.Get("/orders/" + std::to_string(id)));
  EXPECT_EQ(order["total_cents"], 2 * 1999 + 499);
  EXPECT_EQ(order["items"].size(), 2u);
  EXPECT_EQ(order["note"], "2 x Gadget, 1 x Widget");
  EXPECT_FALSE(order.contains("gift_message"));

  EXPECT_EQ(client.Post("/checkout", with_cookie, "", "text/plain")->status, 409);
  EXPECT_EQ(client.Get("/orders/999999")->status, 404);
}

TEST_F(ShopTest, AnUnknownItemOrSessionIsRefusedOrReplaced) {
  Migrate(Db(), kV1Schema);
  Instance v1(Release::kV1, Db());
  httplib::Client client = v1.Client();
  EXPECT_EQ(client.Post("/cart/add?item=spaceship")->status, 404);
  EXPECT_EQ(client.Post("/cart/add")->status, 400);

  // A made-up session id is not adopted: the shopper gets a new one.
  const std::string forged = "sid=0123456789abcdef0123456789abcdef";
  auto added = client.Post("/cart/add?item=widget", {{"Cookie", forged}}, "", "text/plain");
  EXPECT_EQ(added->status, 200);
  EXPECT_NE(SessionCookie(added), forged);
}

TEST_F(ShopTest, ACartFilledOnOneReleaseIsReadByTheNext) {
  Migrate(Db(), kV2Schema);
  Instance v1(Release::kV1, Db());
  Instance v2(Release::kV2, Db());

  auto added = v1.Client().Post("/cart/add?item=gadget");
  httplib::Headers with_cookie = {{"Cookie", SessionCookie(added)}};
  auto cart = v2.Client().Get("/cart", with_cookie);
  EXPECT_NE(cart->body.find("gadget"), std::string::npos) << cart->body;
}

TEST_F(ShopTest, V2StoresAGiftMessageAndNeedsItsColumn) {
  Migrate(Db(), kV1Schema);
  Instance v2(Release::kV2, Db());
  httplib::Client client = v2.Client();

  auto before = client.Get("/healthz");
  EXPECT_EQ(before->status, 503);
  EXPECT_NE(before->body.find("gift_message"), std::string::npos) << before->body;

  Migrate(Db(), {"add_gift_message.expand"});
  EXPECT_EQ(client.Get("/healthz")->status, 200);

  auto added = client.Post("/cart/add?item=gizmo");
  httplib::Headers with_cookie = {{"Cookie", SessionCookie(added)}};
  auto checkout =
      client.Post("/checkout?gift_message=Happy%20birthday", with_cookie, "", "text/plain");
  ASSERT_EQ(checkout->status, 201) << checkout->body;
  auto order = Json(client.Get("/orders/" + std::to_string(Json(checkout)["order_id"].get<int>())));
  EXPECT_EQ(order["gift_message"], "Happy birthday");
  EXPECT_FALSE(order.contains("note"));

  client.Post("/cart/add?item=gizmo", with_cookie, "", "text/plain");
  EXPECT_EQ(
      client.Post("/checkout?gift_message=" + std::string(281, 'x'), with_cookie, "", "text/plain")
          ->status,
      400);
}

TEST_F(ShopTest, TheContractLeavesV2WorkingAndV1Unhealthy) {
  Migrate(Db(), kV2Schema);
  Instance v1(Release::kV1, Db());
  Instance v2(Release::kV2, Db());
  EXPECT_EQ(v1.Client().Get("/healthz")->status, 200);

  Migrate(Db(), {"drop_order_note.contract"});

  auto v1_health = v1.Client().Get("/healthz");
  EXPECT_EQ(v1_health->status, 503);
  EXPECT_NE(v1_health->body.find("no such column: note"), std::string::npos) << v1_health->body;

  httplib::Client client = v2.Client();
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  auto added = client.Post("/cart/add?item=widget");
  httplib::Headers with_cookie = {{"Cookie", SessionCookie(added)}};
  auto checkout = client.Post("/checkout", with_cookie, "", "text/plain");
  ASSERT_EQ(checkout->status, 201) << checkout->body;
  auto order = client.Get("/orders/" + std::to_string(Json(checkout)["order_id"].get<int>()));
  EXPECT_EQ(order->status, 200);
  EXPECT_EQ(Json(order)["gift_message"], nullptr);
}

TEST_F(ShopTest, APostWithoutABodyIsAnsweredAtOnce) {
  Migrate(Db(), kV1Schema);
  Instance v1(Release::kV1, Db());
  // What `curl -X POST URL` sends: no Content-Length, no body.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  timeval timeout{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(v1.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "POST /cart/add?item=gadget HTTP/1.1\r\nHost: shop\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buf[4096];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  ASSERT_GT(n, 0) << "no answer within 2s";
  const std::string answer(buf, static_cast<size_t>(n));
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
  EXPECT_NE(answer.find("Set-Cookie: sid="), std::string::npos) << answer;
}

TEST_F(ShopTest, TheGiftMessageMayComeAsAFormField) {
  Migrate(Db(), kV2Schema);
  Instance v2(Release::kV2, Db());
  httplib::Client client = v2.Client();
  auto added = client.Post("/cart/add", httplib::Params{{"item", "widget"}});
  ASSERT_EQ(added->status, 200) << added->body;
  httplib::Headers with_cookie = {{"Cookie", SessionCookie(added)}};
  auto checkout =
      client.Post("/checkout", with_cookie, httplib::Params{{"gift_message", "Für dich & mich"}});
  ASSERT_EQ(checkout->status, 201) << checkout->body;
  auto order = Json(client.Get("/orders/" + std::to_string(Json(checkout)["order_id"].get<int>())));
  EXPECT_EQ(order["gift_message"], "Für dich & mich");
}

TEST_F(ShopTest, V3AnswersTheCatalogWithoutItsProductsField) {
  Migrate(Db(), kV2Schema);
  Instance v3(Release::kV3, Db());
  httplib::Client client = v3.Client();
  auto products = client.Get("/products");
  EXPECT_EQ(products->status, 200);
  EXPECT_FALSE(Json(products).contains("products")) << products->body;
  EXPECT_EQ(client.Get("/healthz")->status, 200);
  EXPECT_EQ(client.Get("/version")->body, "v3\n");

  Instance v2(Release::kV2, Db());
  EXPECT_EQ(Json(v2.Client().Get("/products"))["products"][0]["id"], "gadget");
}

TEST_F(ShopTest, V4FailsEveryFifthRequestOnceItHasServed10) {
  Migrate(Db(), kV2Schema);
  Instance v4(Release::kV4, Db());
  httplib::Client client = v4.Client();
  int failures_early = 0;
  int failures_late = 0;
  for (int i = 1; i <= 60; ++i) {
    const char* path = i % 3 == 0 ? "/" : i % 3 == 1 ? "/products" : "/cart";
    auto res = client.Get(path);
    ASSERT_TRUE(res);
    if (res->status == 500) ++(i <= 10 ? failures_early : failures_late);
    EXPECT_EQ(client.Get("/healthz")->status, 200) << "health stays good";
  }
  EXPECT_EQ(failures_early, 0);
  EXPECT_EQ(failures_late, 10);  // requests 15, 20, ..., 60
}

}  // namespace
}  // namespace shop
