// The SQLite stores: carts with their sessions, and orders, in the one SQLite
// file every instance of both colors opens. SQLite serialises writers on the
// file; each connection waits for the others (and for a migration holding
// the file) up to its busy timeout.
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pool.h"
#include "stores.h"

namespace shop {
namespace {

constexpr int kBusyTimeoutMs = 5000;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

struct StmtCloser {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtCloser>;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<Db> OpenDb(const std::string& path) {
  // sqlite3_open would create an empty file; the file, like its tables, is
  // made by the migrations, so a missing one is reported as such.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return Fail("the SQLite file " + path +
                " does not exist; the shop never creates its schema: the migrations in "
                "migrations/sqlite create it (cutover runs them in a deployment's expand step)");
  }
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return Fail("cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  sqlite3_exec(db.get(), "PRAGMA foreign_keys = ON", nullptr, nullptr, nullptr);
  // Readers then never wait for a writer. The mode is kept in the file;
  // should the switch fail (the file busy), the next connection tries again,
  // and the default journal works meanwhile.
  sqlite3_exec(db.get(), "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
  return db;
}

std::string Errmsg(sqlite3* db) { return sqlite3_errmsg(db); }

Result<Stmt> Prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &raw, nullptr) !=
      SQLITE_OK) {
    return Fail(Errmsg(db));
  }
  return Stmt(raw);
}

void BindOne(sqlite3_stmt* stmt, int index, const std::string& value) {
  sqlite3_bind_text(stmt, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}
void BindOne(sqlite3_stmt* stmt, int index, int64_t value) {
  sqlite3_bind_int64(stmt, index, value);
}
void BindOne(sqlite3_stmt* stmt, int index, int value) { sqlite3_bind_int(stmt, index, value); }
void BindOne(sqlite3_stmt* stmt, int index, const std::optional<std::string>& value) {
  if (value) {
    BindOne(stmt, index, *value);
  } else {
    sqlite3_bind_null(stmt, index);
  }
}

template <typename... Args>
Result<Stmt> PrepareBound(sqlite3* db, const std::string& sql, const Args&... args) {
  Result<Stmt> stmt = Prepare(db, sql);
  if (!stmt) return stmt;
  int index = 0;
  (BindOne(stmt->get(), ++index, args), ...);
  return stmt;
}

// Runs a statement that returns no rows.
template <typename... Args>
Status Run(sqlite3* db, const std::string& sql, const Args&... args) {
  Result<Stmt> stmt = PrepareBound(db, sql, args...);
  if (!stmt) return std::unexpected(stmt.error());
  int rc = sqlite3_step(stmt->get());
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Fail(Errmsg(db));
  return {};
}

std::optional<std::string> ColumnText(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
  const unsigned char* text = sqlite3_column_text(stmt, column);
  return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt, column));
}

// Runs each query (which returns no rows): SQLite reports a missing table or
// column in words ("no such column: note"). Preparing alone is not enough: a
// connection checks that its copy of the schema is current only when a
// statement runs.
Status CheckSchema(Pool<Db>& pool, const std::vector<std::string>& queries) {
  Result<Pool<Db>::Lease> lease = pool.Acquire();
  if (!lease) return std::unexpected(lease.error());
  sqlite3* db = lease->get().get();
  for (const std::string& query : queries) {
    Result<Stmt> stmt = Prepare(db, query);
    std::string error;
    if (!stmt) {
      error = stmt.error();
    } else if (sqlite3_step(stmt->get()) != SQLITE_DONE) {
      error = Errmsg(db);
    }
    if (!error.empty()) {
      return Fail("schema does not fit this release (" + error +
                  "); the shop never creates or alters tables: they come from the migration files "
                  "in migrations/sqlite, which cutover runs (expand before a release starts, "
                  "contract once the release before it is gone)");
    }
  }
  return {};
}

// Runs `body` in a write transaction; a failure rolls back and discards the
// connection (its state is unknown).
template <typename T>
Result<T> InTransaction(Pool<Db>& pool, const std::function<Result<T>(sqlite3*)>& body) {
  Result<Pool<Db>::Lease> lease = pool.Acquire();
  if (!lease) return std::unexpected(lease.error());
  sqlite3* db = lease->get().get();
  // IMMEDIATE takes the write lock at once: a transaction that reads, then
  // writes, cannot fail halfway on a lock it could not upgrade.
  if (Status begun = Run(db, "BEGIN IMMEDIATE"); !begun) {
    lease->Discard();
    return std::unexpected(begun.error());
  }
  Result<T> result = body(db);
  if (result) {
    if (Status committed = Run(db, "COMMIT"); !committed) result = Fail(committed.error());
  }
  if (!result) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    lease->Discard();
  }
  return result;
}

class SqliteCartStore final : public CartStore {
 public:
  explicit SqliteCartStore(std::string path)
      : path_(std::move(path)), pool_([this] { return OpenDb(path_); }) {}

  Result<bool> SessionExists(const std::string& sid) override {
    Result<Pool<Db>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    sqlite3* db = lease->get().get();
    Result<Stmt> stmt = PrepareBound(db, "SELECT 1 FROM sessions WHERE sid = ?", sid);
    if (!stmt) return Failed(*lease, stmt.error());
    int rc = sqlite3_step(stmt->get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Failed(*lease, Errmsg(db));
  }

  Status CreateSession(const std::string& sid) override {
    return Write([&](sqlite3* db) {
      return Run(db, "INSERT INTO sessions (sid, created_unix_ms) VALUES (?, ?)", sid, NowUnixMs());
    });
  }

  Status Add(const std::string& sid, const std::string& item) override {
    return Write([&](sqlite3* db) {
      return Run(db,
                 "INSERT INTO carts (sid, item, quantity) VALUES (?, ?, 1) "
                 "ON CONFLICT (sid, item) DO UPDATE SET quantity = quantity + 1",
                 sid, item);
    });
  }

  Status Remove(const std::string& sid, const std::string& item) override {
    std::function<Result<bool>(sqlite3*)> body = [&](sqlite3* db) -> Result<bool> {
      // quantity > 0 is a constraint: the last one goes as a delete.
      if (Status s =
              Run(db, "DELETE FROM carts WHERE sid = ? AND item = ? AND quantity <= 1", sid, item);
          !s) {
        return std::unexpected(s.error());
      }
      if (Status s = Run(db,
                         "UPDATE carts SET quantity = quantity - 1 "
                         "WHERE sid = ? AND item = ? AND quantity > 1",
                         sid, item);
          !s) {
        return std::unexpected(s.error());
      }
      return true;
    };
    Result<bool> done = InTransaction(pool_, body);
    if (!done) return std::unexpected(done.error());
    return {};
  }

  Result<Cart> Get(const std::string& sid) override {
    Result<Pool<Db>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    sqlite3* db = lease->get().get();
    Result<Stmt> stmt =
        PrepareBound(db, "SELECT item, quantity FROM carts WHERE sid = ? ORDER BY item", sid);
    if (!stmt) return Failed(*lease, stmt.error());
    Cart cart;
    int rc;
    while ((rc = sqlite3_step(stmt->get())) == SQLITE_ROW) {
      cart.push_back({ColumnText(stmt->get(), 0).value_or(""), sqlite3_column_int(stmt->get(), 1)});
    }
    if (rc != SQLITE_DONE) return Failed(*lease, Errmsg(db));
    return cart;
  }

  Status Clear(const std::string& sid) override {
    return Write([&](sqlite3* db) { return Run(db, "DELETE FROM carts WHERE sid = ?", sid); });
  }

  Status Check() override {
    return CheckSchema(pool_, {"SELECT sid, created_unix_ms FROM sessions WHERE 0",
                               "SELECT sid, item, quantity FROM carts WHERE 0"});
  }

  std::string Describe() const override { return "sqlite:" + path_; }

 private:
  // One statement in autocommit mode; on failure the connection is dropped.
  Status Write(const std::function<Status(sqlite3*)>& body) {
    Result<Pool<Db>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    Status done = body(lease->get().get());
    if (!done) lease->Discard();
    return done;
  }

  static std::unexpected<std::string> Failed(Pool<Db>::Lease& lease, std::string error) {
    lease.Discard();
    return Fail(std::move(error));
  }

  const std::string path_;
  Pool<Db> pool_;
};

class SqliteOrderStore final : public OrderStore {
 public:
  SqliteOrderStore(std::string path, OrderColumns columns)
      : path_(std::move(path)), columns_(columns), pool_([this] { return OpenDb(path_); }) {}

  Result<int64_t> Create(const NewOrder& order) override {
    std::function<Result<int64_t>(sqlite3*)> body = [&](sqlite3* db) -> Result<int64_t> {
      // Only the columns this release knows: v2 must not name `note`, which
      // its contract drops, and v1 cannot name `gift_message`.
      const auto optional = columns_.Fields(order);
      std::string sql =
          "INSERT INTO orders (created_unix_ms, total_cents" + columns_.List() + ") VALUES (?, ?";
      for (size_t i = 0; i < optional.size(); ++i) sql += ", ?";
      sql += ")";
      Result<Stmt> stmt = PrepareBound(db, sql, NowUnixMs(), order.total_cents);
      if (!stmt) return std::unexpected(stmt.error());
      int index = 2;
      for (const std::optional<std::string>* field : optional) {
        BindOne(stmt->get(), ++index, *field);
      }
      if (sqlite3_step(stmt->get()) != SQLITE_DONE) return Fail(Errmsg(db));
      const int64_t id = sqlite3_last_insert_rowid(db);
      for (const OrderLine& line : order.lines) {
        if (Status s = Run(db,
                           "INSERT INTO order_items (order_id, item, quantity, price_cents) "
                           "VALUES (?, ?, ?, ?)",
                           id, line.item, line.quantity, line.price_cents);
            !s) {
          return std::unexpected(s.error());
        }
      }
      return id;
    };
    return InTransaction(pool_, body);
  }

  Result<std::optional<Order>> Get(int64_t id) override {
    Result<Pool<Db>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    sqlite3* db = lease->get().get();
    auto failed = [&](std::string error) {
      lease->Discard();
      return Fail(std::move(error));
    };
    const std::string sql =
        "SELECT id, created_unix_ms, total_cents" + columns_.List() + " FROM orders WHERE id = ?";
    Result<Stmt> head = PrepareBound(db, sql, id);
    if (!head) return failed(head.error());
    int rc = sqlite3_step(head->get());
    if (rc == SQLITE_DONE) return std::optional<Order>();
    if (rc != SQLITE_ROW) return failed(Errmsg(db));
    Order order;
    order.id = sqlite3_column_int64(head->get(), 0);
    order.created_unix_ms = sqlite3_column_int64(head->get(), 1);
    order.total_cents = sqlite3_column_int64(head->get(), 2);
    int column = 2;
    for (std::optional<std::string>* field : columns_.Fields(order)) {
      *field = ColumnText(head->get(), ++column);
    }

    Result<Stmt> lines = PrepareBound(
        db, "SELECT item, quantity, price_cents FROM order_items WHERE order_id = ? ORDER BY item",
        id);
    if (!lines) return failed(lines.error());
    while ((rc = sqlite3_step(lines->get())) == SQLITE_ROW) {
      order.lines.push_back({ColumnText(lines->get(), 0).value_or(""),
                             sqlite3_column_int(lines->get(), 1),
                             sqlite3_column_int64(lines->get(), 2)});
    }
    if (rc != SQLITE_DONE) return failed(Errmsg(db));
    return std::optional<Order>(std::move(order));
  }

  Status Check() override {
    const std::string orders =
        "SELECT id, created_unix_ms, total_cents" + columns_.List() + " FROM orders WHERE 0";
    return CheckSchema(pool_, {orders,
                               "SELECT order_id, item, quantity, price_cents FROM order_items "
                               "WHERE 0"});
  }

  std::string Describe() const override { return "sqlite:" + path_; }

 private:
  const std::string path_;
  const OrderColumns columns_;
  Pool<Db> pool_;
};

}  // namespace

std::unique_ptr<CartStore> NewSqliteCartStore(std::string path) {
  return std::make_unique<SqliteCartStore>(std::move(path));
}

std::unique_ptr<OrderStore> NewSqliteOrderStore(std::string path, OrderColumns columns) {
  return std::make_unique<SqliteOrderStore>(std::move(path), columns);
}

}  // namespace shop
