#include "shop.h"

#include <httplib.h>
#include <sys/random.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "catalog.h"

namespace shop {
namespace {

using nlohmann::json;

// Handler threads. A keep-alive connection holds one while it is open, and
// the router in front keeps pooled connections to every instance.
constexpr size_t kThreads = 32;
constexpr size_t kMaxGiftMessageBytes = 280;
constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr int kSessionCookieDays = 7;
// v4 serves this many catalog and cart requests well before its defect
// shows: enough for the checks, which send a handful, to pass.
constexpr uint64_t kFaultAfter = 10;
constexpr uint64_t kFaultEvery = 5;

std::string Price(int64_t cents) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld.%02lld", static_cast<long long>(cents / 100),
                static_cast<long long>(cents % 100));
  return buf;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // A gift message is user text: invalid UTF-8 in it must not make dump() throw.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, json{{"error", message}});
}

bool IsSid(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// The `sid` cookie of the request, when it has a well-formed one.
std::optional<std::string> CookieSid(const httplib::Request& req) {
  const size_t n = req.get_header_value_count("Cookie");
  for (size_t i = 0; i < n; ++i) {
    const std::string value = req.get_header_value("Cookie", i);
    std::string_view header = value;
    while (!header.empty()) {
      size_t end = header.find(';');
      std::string_view pair = header.substr(0, end);
      header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      if (pair.starts_with("sid=") && IsSid(pair.substr(4))) return std::string(pair.substr(4));
    }
  }
  return std::nullopt;
}

// 128 random bits, hex: a session id nobody can guess.
Result<std::string> NewSid() {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(std::string("getrandom: ") + std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string sid;
  for (unsigned char b : bytes) {
    sid += kHex[b >> 4];
    sid += kHex[b & 15];
  }
  return sid;
}

// A browser posting one of the page's forms: it gets sent back to a page
// rather than shown JSON.
bool FromBrowserForm(const httplib::Request& req) {
  return req.get_header_value("Accept").starts_with("text/html");
}

// A parameter from the query, else from the form body.
std::optional<std::string> Param(const httplib::Request& req, const httplib::Params& form,
                                 const std::string& name) {
  if (req.has_param(name.c_str())) return req.get_param_value(name.c_str());
  if (auto field = form.find(name); field != form.end()) return field->second;
  return std::nullopt;
}

// A cart's lines that are still sold, each with its product, and what they
// cost. A product no longer sold is not charged.
struct PricedLine {
  const CartLine* line;
  const Product* product;
};
struct PricedCart {
  std::vector<PricedLine> lines;
  int64_t total_cents = 0;
  int count = 0;
};

PricedCart PriceCart(const Cart& cart) {
  PricedCart out;
  for (const CartLine& line : cart) {
    const Product* p = FindProduct(line.item);
    if (p == nullptr) continue;
    out.lines.push_back({&line, p});
    out.total_cents += p->price_cents * line.quantity;
    out.count += line.quantity;
  }
  return out;
}

json CartJson(const Cart& cart) {
  const PricedCart priced = PriceCart(cart);
  json items = json::array();
  for (const auto& [line, p] : priced.lines) {
    items.push_back({{"item", line->item},
                     {"name", p->name},
                     {"quantity", line->quantity},
                     {"price_cents", p->price_cents}});
  }
  return json{
      {"items", std::move(items)}, {"count", priced.count}, {"total_cents", priced.total_cents}};
}

json ProductsJson() {
  json list = json::array();
  for (const Product& p : Catalog()) {
    list.push_back({{"id", p.id},
                    {"name", p.name},
                    {"price_cents", p.price_cents},
                    {"price", Price(p.price_cents)}});
  }
  return list;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The text v1 keeps in orders.note for the confirmation e-mail.
std::string OrderSummary(const std::vector<OrderLine>& lines) {
  std::string text;
  for (const OrderLine& line : lines) {
    const Product* p = FindProduct(line.item);
    if (!text.empty()) text += ", ";
    text += std::to_string(line.quantity) + " x " + std::string(p ? p->name : line.item);
  }
  return text;
}

}  // namespace

void Log(const std::string& line) {
  using std::chrono::system_clock;
  const auto now = system_clock::now();
  const std::time_t secs = system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  // One fprintf per line, so that lines of several threads do not interleave.
  std::fprintf(stderr, "%s.%03dZ %s\n", stamp, static_cast<int>(ms.count()), line.c_str());
}

Shop::Shop(Release release, CartStore& carts, OrderStore& orders)
    : release_(release), behaviour_(BehaviourOf(release)), carts_(carts), orders_(orders) {}

void Shop::Register(httplib::Server& server) {
  // cpp-httplib takes ownership of the queue it is given.
  server.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  server.set_keep_alive_max_count(1000);
  // Without it a response written in two parts waits for the client's
  // delayed ACK: 40ms added to every request on a kept-alive connection.
  server.set_tcp_nodelay(true);
  server.set_payload_max_length(kMaxBodyBytes);
  // Which release answered: the shopper traffic of the demo counts by it.
  server.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Shop-Release", std::string(ReleaseLabel(release_)));
  });
  auto route = [this](void (Shop::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      (this->*handler)(req, res);
    };
  };
  server.Get("/", route(&Shop::Index));
  server.Get("/products", route(&Shop::Products));
  // cpp-httplib 0.11 reads the body of a POST without Content-Length until
  // the client closes the connection, so a bodyless `curl -X POST` would
  // hang. These routes read a body only when the request announces one.
  auto post = [this](void (Shop::*handler)(const httplib::Request&, httplib::Response&,
                                           const httplib::Params&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res,
                           const httplib::ContentReader& read) {
      httplib::Params form;
      if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
        std::string body;
        const bool complete = read([&](const char* data, size_t n) {
          body.append(data, n);
          return body.size() <= kMaxBodyBytes;
        });
        if (!complete) return SendError(res, 413, "the request body is too large or cut short");
        if (req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")) {
          httplib::detail::parse_query_text(body, form);
        }
      }
      (this->*handler)(req, res, form);
    };
  };
  server.Post("/cart/add", post(&Shop::CartAdd));
  server.Post("/cart/remove", post(&Shop::CartRemove));
  server.Get("/cart", route(&Shop::CartGet));
  server.Post("/checkout", post(&Shop::Checkout));
  server.Get(R"(/orders/(\d{1,18}))", route(&Shop::OrderGet));
  server.Get("/healthz", route(&Shop::Healthz));
  server.Get("/version", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(std::string(ReleaseLabel(release_)) + "\n", "text/plain");
  });
}

bool Shop::InjectFault(const httplib::Request& req, httplib::Response& res) {
  if (!behaviour_.fails_under_load) return false;
  const uint64_t n = ++fault_counter_;
  if (n <= kFaultAfter || n % kFaultEvery != 0) return false;
  Log("v4 defect: failing request " + std::to_string(n) + " (" + req.method + " " + req.path + ")");
  SendError(res, 500, "internal error");
  return true;
}

void Shop::StoreFailed(httplib::Response& res, const std::string& what, const std::string& error) {
  Log(what + ": " + error);
  SendError(res, 503, what + ": " + error);
}

void Shop::Index(const httplib::Request& req, httplib::Response& res) {
  if (InjectFault(req, res)) return;
  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cutover shop</title></head>\n"
      "<body>\n<h1>cutover shop</h1>\n<ul>\n";
  for (const Product& p : Catalog()) {
    html += "<li>" + HtmlEscape(p.name) + " &mdash; $" + Price(p.price_cents) +
            " <form method=\"post\" action=\"/cart/add?item=" + std::string(p.id) +
            "\" style=\"display:inline\"><button>add to cart</button></form></li>\n";
  }
  html += "</ul>\n<h2>Your cart</h2>\n";
  Cart cart;
  if (std::optional<std::string> sid = CookieSid(req)) {
    Result<Cart> got = carts_.Get(*sid);
    if (!got) return StoreFailed(res, "carts", got.error());
    cart = std::move(*got);
  }
  const PricedCart priced = PriceCart(cart);
  std::string lines;
  for (const auto& [line, p] : priced.lines) {
    lines += "<li>" + std::to_string(line->quantity) + " x " + HtmlEscape(p->name) + "</li>\n";
  }
  if (lines.empty()) {
    html += "<p>empty</p>\n";
  } else {
    html += "<ul>\n" + lines + "</ul>\n<p>total $" + Price(priced.total_cents) +
            "</p>\n<form method=\"post\" action=\"/checkout\">";
    if (behaviour_.gift_message) {
      html += "<input name=\"gift_message\" placeholder=\"gift message\" maxlength=\"280\"> ";
    }
    html += "<button>check out</button></form>\n";
  }
  html += "<p><small>release " + std::string(ReleaseLabel(release_)) + "</small></p>\n";
  html += "</body></html>\n";
  res.set_content(html, "text/html; charset=utf-8");
}

void Shop::Products(const httplib::Request& req, httplib::Response& res) {
  if (InjectFault(req, res)) return;
  // v3's defect: a refactor renamed the list's field, and every client that
  // reads "products" finds nothing.
  SendJson(res, 200, json{{behaviour_.broken_catalog ? "catalog" : "products", ProductsJson()}});
}

void Shop::CartAdd(const httplib::Request& req, httplib::Response& res,
                   const httplib::Params& form) {
  const std::string item = Param(req, form, "item").value_or("");
  if (item.empty()) return SendError(res, 400, "missing ?item=");
  if (FindProduct(item) == nullptr) return SendError(res, 404, "unknown item '" + item + "'");

  // A cookie naming no session (expired, or made up) gets a new session: a
  // client cannot pick its own id.
  std::optional<std::string> sid = CookieSid(req);
  bool known = false;
  if (sid) {
    Result<bool> exists = carts_.SessionExists(*sid);
    if (!exists) return StoreFailed(res, "sessions", exists.error());
    known = *exists;
  }
  if (!known) {
    Result<std::string> fresh = NewSid();
    if (!fresh) return StoreFailed(res, "sessions", fresh.error());
    if (Status created = carts_.CreateSession(*fresh); !created) {
      return StoreFailed(res, "sessions", created.error());
    }
    sid = std::move(*fresh);
    res.set_header("Set-Cookie", "sid=" + *sid + "; Path=/; HttpOnly; SameSite=Lax; Max-Age=" +
                                     std::to_string(kSessionCookieDays * 86400));
  }
  if (Status added = carts_.Add(*sid, item); !added) {
    return StoreFailed(res, "carts", added.error());
  }
  Result<Cart> cart = carts_.Get(*sid);
  if (!cart) return StoreFailed(res, "carts", cart.error());
  if (FromBrowserForm(req)) return res.set_redirect("/", 303);
  SendJson(res, 200, CartJson(*cart));
}

void Shop::CartRemove(const httplib::Request& req, httplib::Response& res,
                      const httplib::Params& form) {
  const std::string item = Param(req, form, "item").value_or("");
  if (item.empty()) return SendError(res, 400, "missing ?item=");
  std::optional<std::string> sid = CookieSid(req);
  if (!sid) return SendJson(res, 200, CartJson({}));
  if (Status removed = carts_.Remove(*sid, item); !removed) {
    return StoreFailed(res, "carts", removed.error());
  }
  Result<Cart> cart = carts_.Get(*sid);
  if (!cart) return StoreFailed(res, "carts", cart.error());
  if (FromBrowserForm(req)) return res.set_redirect("/", 303);
  SendJson(res, 200, CartJson(*cart));
}

void Shop::CartGet(const httplib::Request& req, httplib::Response& res) {
  if (InjectFault(req, res)) return;
  std::optional<std::string> sid = CookieSid(req);
  if (!sid) return SendJson(res, 200, CartJson({}));
  Result<Cart> cart = carts_.Get(*sid);
  if (!cart) return StoreFailed(res, "carts", cart.error());
  SendJson(res, 200, CartJson(*cart));
}

void Shop::Checkout(const httplib::Request& req, httplib::Response& res,
                    const httplib::Params& form) {
  std::optional<std::string> sid = CookieSid(req);
  if (!sid) return SendError(res, 409, "the cart is empty");
  Result<Cart> cart = carts_.Get(*sid);
  if (!cart) return StoreFailed(res, "carts", cart.error());

  const PricedCart priced = PriceCart(*cart);
  NewOrder order;
  for (const auto& [line, p] : priced.lines) {
    order.lines.push_back({line->item, line->quantity, p->price_cents});
  }
  order.total_cents = priced.total_cents;
  if (order.lines.empty()) return SendError(res, 409, "the cart is empty");

  std::optional<std::string> gift = Param(req, form, "gift_message");
  if (behaviour_.gift_message && gift) {
    std::string message = std::move(*gift);
    if (message.size() > kMaxGiftMessageBytes) {
      return SendError(
          res, 400,
          "gift_message is longer than " + std::to_string(kMaxGiftMessageBytes) + " bytes");
    }
    if (!message.empty()) order.gift_message = std::move(message);
  }
  if (behaviour_.writes_note) order.note = OrderSummary(order.lines);

  Result<int64_t> id = orders_.Create(order);
  if (!id) return StoreFailed(res, "orders", id.error());
  // The order is taken; a cart left behind is a nuisance, not a failure of
  // the checkout.
  if (Status cleared = carts_.Clear(*sid); !cleared) {
    Log("order " + std::to_string(*id) +
        " taken, but its cart was not emptied: " + cleared.error());
  }
  if (FromBrowserForm(req)) return res.set_redirect("/orders/" + std::to_string(*id), 303);
  res.set_header("Location", "/orders/" + std::to_string(*id));
  SendJson(res, 201, json{{"order_id", *id}, {"total_cents", order.total_cents}});
}

void Shop::OrderGet(const httplib::Request& req, httplib::Response& res) {
  const std::string digits = req.matches[1].str();
  int64_t id = 0;
  // The route admits 1 to 18 digits, which always fit.
  std::from_chars(digits.data(), digits.data() + digits.size(), id);
  Result<std::optional<Order>> found = orders_.Get(id);
  if (!found) return StoreFailed(res, "orders", found.error());
  if (!*found) return SendError(res, 404, "no order " + std::to_string(id));
  const Order& order = **found;
  json items = json::array();
  for (const OrderLine& line : order.lines) {
    items.push_back(
        {{"item", line.item}, {"quantity", line.quantity}, {"price_cents", line.price_cents}});
  }
  json body = {{"id", order.id},
               {"created_unix_ms", order.created_unix_ms},
               {"total_cents", order.total_cents},
               {"items", std::move(items)}};
  if (behaviour_.writes_note) body["note"] = order.note ? json(*order.note) : json(nullptr);
  if (behaviour_.gift_message) {
    body["gift_message"] = order.gift_message ? json(*order.gift_message) : json(nullptr);
  }
  SendJson(res, 200, body);
}

Status Shop::Health() {
  Status status = carts_.Check();
  if (!status) {
    status = Fail("carts in " + carts_.Describe() + ": " + status.error());
  } else if (Status orders = orders_.Check(); !orders) {
    status = Fail("orders in " + orders_.Describe() + ": " + orders.error());
  }
  std::string verdict = status ? "ok" : status.error();
  std::lock_guard lock(health_mu_);
  if (verdict != last_health_) {
    if (status) {
      Log("healthy: carts in " + carts_.Describe() + ", orders in " + orders_.Describe());
    } else {
      Log("unhealthy: " + verdict);
    }
    last_health_ = std::move(verdict);
  }
  return status;
}

void Shop::Healthz(const httplib::Request&, httplib::Response& res) {
  Status health = Health();
  if (health) {
    res.set_content("ok\n", "text/plain");
  } else {
    res.status = 503;
    res.set_content("unavailable: " + health.error() + "\n", "text/plain");
  }
}

}  // namespace shop
