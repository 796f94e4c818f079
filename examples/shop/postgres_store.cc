// The PostgreSQL order store. Statements name their columns and are sent
// unprepared (PQexecParams): a plan cached on a warm connection would break
// when an expand migration adds a column to `orders` under a running release
// ("cached plan must not change result type").
#include <libpq-fe.h>

#include <charconv>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pool.h"
#include "stores.h"

namespace shop {
namespace {

struct ConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnFinish>;

struct ResultClear {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultClear>;

// The first line of a libpq message, without "ERROR:  ".
std::string FirstLine(const char* message) {
  std::string text = message ? message : "";
  if (text.starts_with("ERROR:  ")) text.erase(0, 8);
  if (size_t nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

int64_t ToInt64(const PGresult* r, int row, int column) {
  const char* text = PQgetvalue(r, row, column);
  int64_t value = 0;
  std::from_chars(text, text + PQgetlength(r, row, column), value);
  return value;
}

std::optional<std::string> Text(const PGresult* r, int row, int column) {
  if (PQgetisnull(r, row, column)) return std::nullopt;
  return std::string(PQgetvalue(r, row, column), PQgetlength(r, row, column));
}

class PostgresOrderStore final : public OrderStore {
 public:
  PostgresOrderStore(std::string url, OrderColumns columns)
      : url_(std::move(url)), columns_(columns), pool_([this] { return Connect(); }) {}

  Result<int64_t> Create(const NewOrder& order) override {
    Result<Pool<Conn>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    PGconn* c = lease->get().get();
    Result<int64_t> id = CreateIn(c, order);
    if (!id) {
      PgResult rollback(PQexec(c, "ROLLBACK"));
      if (PQresultStatus(rollback.get()) != PGRES_COMMAND_OK) lease->Discard();
    }
    return id;
  }

  Result<std::optional<Order>> Get(int64_t id) override {
    Result<Pool<Conn>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    const std::string id_text = std::to_string(id);
    const std::string sql =
        "SELECT id, (extract(epoch FROM created_at) * 1000)::bigint, total_cents" +
        columns_.List() + " FROM orders WHERE id = $1";
    Result<PgResult> head = Exec(*lease, sql, {id_text});
    if (!head) return std::unexpected(head.error());
    if (PQntuples(head->get()) == 0) return std::optional<Order>();
    const PGresult* h = head->get();
    Order order;
    order.id = ToInt64(h, 0, 0);
    order.created_unix_ms = ToInt64(h, 0, 1);
    order.total_cents = ToInt64(h, 0, 2);
    int column = 2;
    for (std::optional<std::string>* field : columns_.Fields(order)) *field = Text(h, 0, ++column);

    Result<PgResult> lines = Exec(*lease,
                                  "SELECT item, quantity, price_cents FROM order_items "
                                  "WHERE order_id = $1 ORDER BY item",
                                  {id_text});
    if (!lines) return std::unexpected(lines.error());
    for (int row = 0; row < PQntuples(lines->get()); ++row) {
      order.lines.push_back({Text(lines->get(), row, 0).value_or(""),
                             static_cast<int>(ToInt64(lines->get(), row, 1)),
                             ToInt64(lines->get(), row, 2)});
    }
    return std::optional<Order>(std::move(order));
  }

  Status Check() override {
    Result<Pool<Conn>::Lease> lease = pool_.Acquire();
    if (!lease) return std::unexpected(lease.error());
    const std::string orders =
        "SELECT id, created_at, total_cents" + columns_.List() + " FROM orders WHERE false";
    for (const std::string& query :
         {orders,
          std::string(
              "SELECT order_id, item, quantity, price_cents FROM order_items WHERE false")}) {
      if (Result<PgResult> r = Exec(*lease, query, {}); !r) {
        if (PQstatus(lease->get().get()) != CONNECTION_OK) return std::unexpected(r.error());
        return Fail("schema does not fit this release (" + r.error() +
                    "); the shop never creates or alters tables: they come from the migration "
                    "files in migrations/postgres, which cutover runs (expand before a release "
                    "starts, contract once the release before it is gone)");
      }
    }
    return {};
  }

  std::string Describe() const override { return RedactUrl(url_); }

 private:
  Result<Conn> Connect() {
    // The URL first, expanded; the keywords after it add to it.
    const char* keywords[] = {"dbname", "connect_timeout", "application_name", nullptr};
    const char* values[] = {url_.c_str(), "3", "cutover-shop", nullptr};
    Conn c(PQconnectdbParams(keywords, values, 1));
    if (!c) return Fail("cannot allocate a PostgreSQL connection");
    if (PQstatus(c.get()) != CONNECTION_OK) {
      return Fail("cannot connect to " + Describe() + ": " + FirstLine(PQerrorMessage(c.get())));
    }
    return c;
  }

  // One statement with text parameters. A broken connection is discarded.
  Result<PgResult> Exec(Pool<Conn>::Lease& lease, const std::string& sql,
                        const std::vector<std::string>& params) {
    PGconn* c = lease.get().get();
    std::vector<const char*> values;
    for (const std::string& p : params) values.push_back(p.c_str());
    PgResult r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                            nullptr, nullptr, 0));
    const ExecStatusType status = PQresultStatus(r.get());
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    std::string error = FirstLine(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(c));
    if (PQstatus(c) != CONNECTION_OK) lease.Discard();
    return Fail(error);
  }

  Result<int64_t> CreateIn(PGconn* c, const NewOrder& order) {
    auto exec = [c](const std::string& sql,
                    const std::vector<std::optional<std::string>>& params) -> Result<PgResult> {
      std::vector<const char*> values;
      for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
      PgResult r(PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0));
      const ExecStatusType status = PQresultStatus(r.get());
      if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
      return Fail(FirstLine(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(c)));
    };
    if (Result<PgResult> begun = exec("BEGIN", {}); !begun) {
      return std::unexpected(begun.error());
    }
    // Only the columns this release knows: v2 must not name `note`, which
    // its contract drops, and v1 cannot name `gift_message`.
    std::string sql = "INSERT INTO orders (total_cents" + columns_.List() + ") VALUES ($1";
    std::vector<std::optional<std::string>> params = {std::to_string(order.total_cents)};
    for (const std::optional<std::string>* field : columns_.Fields(order)) params.push_back(*field);
    for (size_t i = 2; i <= params.size(); ++i) sql += ", $" + std::to_string(i);
    sql += ") RETURNING id";
    Result<PgResult> inserted = exec(sql, params);
    if (!inserted) return std::unexpected(inserted.error());
    const int64_t id = ToInt64(inserted->get(), 0, 0);
    for (const OrderLine& line : order.lines) {
      Result<PgResult> r = exec(
          "INSERT INTO order_items (order_id, item, quantity, price_cents) "
          "VALUES ($1, $2, $3, $4)",
          {std::to_string(id), line.item, std::to_string(line.quantity),
           std::to_string(line.price_cents)});
      if (!r) return std::unexpected(r.error());
    }
    if (Result<PgResult> committed = exec("COMMIT", {}); !committed) {
      return std::unexpected(committed.error());
    }
    return id;
  }

  const std::string url_;
  const OrderColumns columns_;
  Pool<Conn> pool_;
};

}  // namespace

std::unique_ptr<OrderStore> NewPostgresOrderStore(std::string url, OrderColumns columns) {
  return std::make_unique<PostgresOrderStore>(std::move(url), columns);
}

}  // namespace shop
