// The Redis cart store against a real redis-server the test starts on a port
// of its own: what a cart holds after adds and removes, and how long the
// cart and the session are kept.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "stores.h"
#include "support/child_process.h"
#include "support/net.h"
#include "support/temp_dir.h"

namespace shop {
namespace {

constexpr long long kWeekSeconds = 7 * 24 * 3600;

class RedisStore : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v redis-server >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "redis-server is not installed (scripts/setup installs it)";
    }
    auto dir = cutover::test::TempDir::Create("shop-redis");
    ASSERT_TRUE(dir) << dir.error().message;
    dir_.emplace(std::move(*dir));
    auto port = cutover::test::FreePort();
    ASSERT_TRUE(port) << port.error().message;
    port_ = *port;
    auto redis = cutover::test::ChildProcess::Spawn(
        {.argv = {"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save",
                  "", "--appendonly", "no", "--dir", dir_->path().string()},
         .output_file = dir_->File("redis.log")});
    ASSERT_TRUE(redis) << redis.error().message;
    redis_.emplace(std::move(*redis));
    for (int i = 0; i < 400 && !raw_; ++i) {
      redisContext* c = redisConnect("127.0.0.1", port_);
      if (c != nullptr && c->err == 0) {
        raw_.reset(c);
      } else {
        redisFree(c);
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    }
    ASSERT_TRUE(raw_) << "redis-server did not answer on port " << port_;
    store_ = NewRedisCartStore(RedisAddress{.port = port_});
  }

  // One command on the test's own connection; its integer reply.
  long long Integer(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(raw_.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    EXPECT_NE(reply, nullptr) << args[0] << ": " << raw_->errstr;
    if (reply == nullptr) return -100;
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER) << args[0];
    const long long n = reply->integer;
    freeReplyObject(reply);
    return n;
  }

  // What the store says the cart holds, as "item:quantity ...".
  std::string CartOf(const std::string& sid) {
    Result<Cart> cart = store_->Get(sid);
    EXPECT_TRUE(cart) << cart.error();
    if (!cart) return "?";
    std::string out;
    for (const CartLine& line : *cart) {
      out += (out.empty() ? "" : " ") + line.item + ":" + std::to_string(line.quantity);
    }
    return out;
  }

  struct ContextFree {
    void operator()(redisContext* c) const { redisFree(c); }
  };

  std::optional<cutover::test::TempDir> dir_;
  int port_ = 0;
  std::optional<cutover::test::ChildProcess> redis_;
  std::unique_ptr<redisContext, ContextFree> raw_;
  std::unique_ptr<CartStore> store_;
};

TEST_F(RedisStore, AddsAndRemovesKeepTheCartAndSessionAWeekAfterTheLastChange) {
  const std::string sid = "s1";
  const std::string cart = "shop:cart:" + sid;
  const std::string session = "shop:session:" + sid;
  ASSERT_TRUE(store_->CreateSession(sid));
  ASSERT_TRUE(store_->Add(sid, "gadget"));
  ASSERT_TRUE(store_->Add(sid, "gadget"));
  ASSERT_TRUE(store_->Add(sid, "book"));
  EXPECT_EQ(CartOf(sid), "book:1 gadget:2");
  EXPECT_GT(Integer({"TTL", cart}), kWeekSeconds - 60);
  EXPECT_GT(Integer({"TTL", session}), kWeekSeconds - 60);

  // Days later (the keys near their end), a remove renews both.
  ASSERT_EQ(Integer({"EXPIRE", cart, "60"}), 1);
  ASSERT_EQ(Integer({"EXPIRE", session, "60"}), 1);
  ASSERT_TRUE(store_->Remove(sid, "gadget"));
  EXPECT_EQ(CartOf(sid), "book:1 gadget:1");
  EXPECT_GT(Integer({"TTL", cart}), kWeekSeconds - 60);
  EXPECT_GT(Integer({"TTL", session}), kWeekSeconds - 60);

  // Removing what is not there changes nothing; the last one of an item
  // takes its line away.
  ASSERT_TRUE(store_->Remove(sid, "lamp"));
  ASSERT_TRUE(store_->Remove(sid, "gadget"));
  EXPECT_EQ(CartOf(sid), "book:1");
  EXPECT_EQ(Integer({"HEXISTS", cart, "lamp"}), 0);
  ASSERT_TRUE(store_->Remove(sid, "book"));
  EXPECT_EQ(CartOf(sid), "");
  EXPECT_EQ(Integer({"EXISTS", cart}), 0);
  Result<bool> exists = store_->SessionExists(sid);
  ASSERT_TRUE(exists) << exists.error();
  EXPECT_TRUE(*exists);
}

TEST_F(RedisStore, AnUnreachableServerIsAnErrorThatSaysWhere) {
  redis_.reset();  // stops redis-server
  raw_.reset();
  Status s = store_->Add("s2", "gadget");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("127.0.0.1:" + std::to_string(port_)), std::string::npos) << s.error();
}

}  // namespace
}  // namespace shop
