// The Redis cart store: a session is a key shop:session:SID, its cart the
// hash shop:cart:SID (item -> quantity). Both expire a week after the last
// change, so abandoned carts go away by themselves.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "pool.h"
#include "stores.h"

namespace shop {
namespace {

constexpr int kTtlSeconds = 7 * 24 * 3600;
constexpr timeval kTimeout = {2, 0};

// Adds (ARGV[2] = 1) or removes (-1) one of item ARGV[1] in cart KEYS[1],
// dropping the field at zero, and keeps the cart and session KEYS[2] for
// ARGV[3] seconds more: one step on the server, so that no change is ever
// left without its expiry, and both keys live a week after the last change.
constexpr const char* kChangeScript =
    "local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) "
    "if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end "
    "redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "redis.call('EXPIRE', KEYS[2], ARGV[3]) "
    "return n";

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

std::string SessionKey(const std::string& sid) { return "shop:session:" + sid; }
std::string CartKey(const std::string& sid) { return "shop:cart:" + sid; }

class RedisCartStore final : public CartStore {
 public:
  explicit RedisCartStore(RedisAddress address)
      : address_(std::move(address)), pool_([this] { return Connect(); }) {}

  Result<bool> SessionExists(const std::string& sid) override {
    Result<Reply> reply = Command({"EXISTS", SessionKey(sid)});
    if (!reply) return std::unexpected(reply.error());
    return (*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer == 1;
  }

  Status CreateSession(const std::string& sid) override {
    const std::string now = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count());
    return Done(Command({"SET", SessionKey(sid), now, "EX", std::to_string(kTtlSeconds)}));
  }

  Status Add(const std::string& sid, const std::string& item) override {
    return Change(sid, item, "1");
  }

  Status Remove(const std::string& sid, const std::string& item) override {
    return Change(sid, item, "-1");
  }

  Result<Cart> Get(const std::string& sid) override {
    Result<Reply> reply = Command({"HGETALL", CartKey(sid)});
    if (!reply) return std::unexpected(reply.error());
    const redisReply* r = reply->get();
    if (r->type != REDIS_REPLY_ARRAY) return Fail("HGETALL: unexpected reply type");
    Cart cart;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
      const redisReply* field = r->element[i];
      const redisReply* value = r->element[i + 1];
      int quantity = 0;
      std::from_chars(value->str, value->str + value->len, quantity);
      if (quantity > 0) cart.push_back({std::string(field->str, field->len), quantity});
    }
    std::sort(cart.begin(), cart.end(),
              [](const CartLine& a, const CartLine& b) { return a.item < b.item; });
    return cart;
  }

  Status Clear(const std::string& sid) override { return Done(Command({"DEL", CartKey(sid)})); }

  Status Check() override {
    Result<Reply> reply = Command({"PING"});
    if (!reply) return std::unexpected(reply.error());
    return {};
  }

  std::string Describe() const override {
    return "redis://" + address_.host + ":" + std::to_string(address_.port) +
           (address_.db != 0 ? "/" + std::to_string(address_.db) : "");
  }

 private:
  Status Change(const std::string& sid, const std::string& item, const char* delta) {
    return Done(Command({"EVAL", kChangeScript, "2", CartKey(sid), SessionKey(sid), item, delta,
                         std::to_string(kTtlSeconds)}));
  }

  Result<Context> Connect() {
    Context c(redisConnectWithTimeout(address_.host.c_str(), address_.port, kTimeout));
    if (!c) return Fail("cannot allocate a Redis context");
    if (c->err) return Fail("cannot connect to " + Describe() + ": " + c->errstr);
    redisSetTimeout(c.get(), kTimeout);
    if (!address_.password.empty()) {
      Reply auth(static_cast<redisReply*>(
          redisCommand(c.get(), "AUTH %b", address_.password.data(), address_.password.size())));
      if (!auth || auth->type == REDIS_REPLY_ERROR) return Fail("AUTH refused by " + Describe());
    }
    if (address_.db != 0) {
      Reply select(static_cast<redisReply*>(redisCommand(c.get(), "SELECT %d", address_.db)));
      if (!select || select->type == REDIS_REPLY_ERROR) {
        return Fail("SELECT " + std::to_string(address_.db) + " refused by " + Describe());
      }
    }
    return c;
  }

  // One command with binary-safe arguments. A reply that is an error is
  // returned as one; a lost connection is discarded.
  Result<Reply> Command(std::initializer_list<std::string> args) {
    Result<Pool<Context>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisContext* c = lease->get().get();
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!reply) {
      lease->Discard();
      return Fail(std::string(*args.begin()) + " on " + Describe() + ": " + c->errstr);
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      return Fail(std::string(*args.begin()) + " on " + Describe() + ": " +
                  std::string(reply->str, reply->len));
    }
    return reply;
  }

  static Status Done(Result<Reply> reply) {
    if (!reply) return std::unexpected(reply.error());
    return {};
  }

  const RedisAddress address_;
  Pool<Context> pool_;
};

}  // namespace

Result<RedisAddress> ParseRedisUrl(const std::string& url) {
  constexpr std::string_view kScheme = "redis://";
  std::string_view rest = url;
  if (!rest.starts_with(kScheme)) {
    return Fail("REDIS_URL '" + RedactUrl(url) + "' does not start with redis://");
  }
  rest.remove_prefix(kScheme.size());
  RedisAddress address;
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view user_info = rest.substr(0, at);
    // redis://:PASSWORD@host or redis://USER:PASSWORD@host; the user is not
    // used by Redis before 6 and is ignored here.
    size_t colon = user_info.find(':');
    address.password =
        std::string(colon == std::string_view::npos ? user_info : user_info.substr(colon + 1));
    rest.remove_prefix(at + 1);
  }
  std::string_view host_port = rest.substr(0, rest.find('/'));
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), address.db);
      if (ec != std::errc() || p != db.data() + db.size() || address.db < 0) {
        return Fail("REDIS_URL '" + RedactUrl(url) + "': '" + std::string(db) +
                    "' is not a database number");
      }
    }
  }
  if (size_t colon = host_port.rfind(':'); colon != std::string_view::npos) {
    std::string_view port = host_port.substr(colon + 1);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
    if (ec != std::errc() || p != port.data() + port.size() || address.port <= 0 ||
        address.port > 65535) {
      return Fail("REDIS_URL '" + RedactUrl(url) + "': '" + std::string(port) + "' is not a port");
    }
    host_port = host_port.substr(0, colon);
  }
  if (!host_port.empty()) address.host = std::string(host_port);
  return address;
}

std::unique_ptr<CartStore> NewRedisCartStore(RedisAddress address) {
  return std::make_unique<RedisCartStore>(std::move(address));
}

}  // namespace shop
