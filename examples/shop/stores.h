// The shop's stores: where carts (with the sessions they belong to) and
// orders live. Nothing of a shopper is kept in the server's memory, so that
// any instance of either color can serve any request:
//
//   carts and sessions  Redis when REDIS_URL is set, else the shared SQLite file
//   orders              PostgreSQL when DATABASE_URL is set, else the shared SQLite file
//
// The stores never create tables: the schema comes only from the migration
// files in migrations/, which cutover runs. Check() reports a missing table
// or column, so that /healthz stays 503 until the schema is there.
//
// Each store keeps a small pool of connections, opened when first needed and
// opened again after a failure; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "result.h"

namespace shop {

struct CartLine {
  std::string item;  // a product id of the catalog
  int quantity = 0;  // > 0
};

// Lines sorted by item.
using Cart = std::vector<CartLine>;

class CartStore {
 public:
  virtual ~CartStore() = default;

  // Whether a session with this id was created (and has not expired).
  virtual Result<bool> SessionExists(const std::string& sid) = 0;
  virtual Status CreateSession(const std::string& sid) = 0;

  // One more of `item` in the session's cart.
  virtual Status Add(const std::string& sid, const std::string& item) = 0;
  // One fewer; the line goes at zero. Removing what is not there is no error.
  virtual Status Remove(const std::string& sid, const std::string& item) = 0;
  virtual Result<Cart> Get(const std::string& sid) = 0;
  virtual Status Clear(const std::string& sid) = 0;

  // The store answers and holds what this release needs.
  virtual Status Check() = 0;
  // Where the carts are, for logs: "redis://127.0.0.1:6379", "sqlite:shop.db".
  virtual std::string Describe() const = 0;
};

struct OrderLine {
  std::string item;
  int quantity = 0;
  int64_t price_cents = 0;
};

struct NewOrder {
  std::vector<OrderLine> lines;
  int64_t total_cents = 0;
  std::optional<std::string> note;          // written only when the release writes it
  std::optional<std::string> gift_message;  // written only when the release knows it
};

struct Order {
  int64_t id = 0;
  int64_t created_unix_ms = 0;
  int64_t total_cents = 0;
  std::vector<OrderLine> lines;
  std::optional<std::string> note;
  std::optional<std::string> gift_message;
};

// The columns of `orders` a release reads and writes beyond the ones every
// release has. A release never names a column it does not use: v2 must work
// once orders.note is dropped, v1 before orders.gift_message exists.
struct OrderColumns {
  bool note = false;
  bool gift_message = false;

  // ", note, gift_message": those of the optional columns the release uses,
  // to follow the fixed columns of a column list.
  std::string List() const;
  // The fields of `order` (an Order or a NewOrder) for the same columns, in
  // the same order.
  template <typename O>
  auto Fields(O& order) const {
    std::vector<decltype(&order.note)> out;
    if (note) out.push_back(&order.note);
    if (gift_message) out.push_back(&order.gift_message);
    return out;
  }
};

class OrderStore {
 public:
  virtual ~OrderStore() = default;

  // Stores the order and its lines in one transaction; returns its id.
  virtual Result<int64_t> Create(const NewOrder& order) = 0;
  // nullopt when there is no such order.
  virtual Result<std::optional<Order>> Get(int64_t id) = 0;

  virtual Status Check() = 0;
  virtual std::string Describe() const = 0;
};

// Where the stores are; see the top of this file.
struct StoreOptions {
  std::string sqlite_path;   // the shared SQLite file; must exist when it is used
  std::string redis_url;     // redis://[:PASSWORD@]HOST[:PORT][/DB]; empty: SQLite
  std::string database_url;  // postgres://... as libpq takes it; empty: SQLite
  OrderColumns columns;
};

struct Stores {
  std::unique_ptr<CartStore> carts;
  std::unique_ptr<OrderStore> orders;
};

// Builds the stores without connecting (a store that is down makes /healthz
// fail, not the start). Fails only on a malformed REDIS_URL.
Result<Stores> OpenStores(const StoreOptions& options);

// Implementations, also used on their own by the tests.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;
  int db = 0;
};
Result<RedisAddress> ParseRedisUrl(const std::string& url);

std::unique_ptr<CartStore> NewRedisCartStore(RedisAddress address);
std::unique_ptr<CartStore> NewSqliteCartStore(std::string path);
std::unique_ptr<OrderStore> NewPostgresOrderStore(std::string url, OrderColumns columns);
std::unique_ptr<OrderStore> NewSqliteOrderStore(std::string path, OrderColumns columns);

// A URL with its password replaced by "***", for logs.
std::string RedactUrl(const std::string& url);

}  // namespace shop
