// Shop: the HTTP routes of cutover-shop, on a cpp-httplib server.
//
//   GET  /                 HTML: the products and the session's cart
//   GET  /products         JSON {"products": [{"id","name","price_cents","price"}]}
//   POST /cart/add?item=X  one more X; creates the session (cookie `sid`) if needed
//   POST /cart/remove?item=X
//   GET  /cart             JSON {"items": [...], "count", "total_cents"}
//   POST /checkout         turns the cart into an order and empties the cart:
//                          201 {"order_id", "total_cents"}; from v2 on it
//                          takes ?gift_message=TEXT (or a form field)
//   GET  /orders/ID        JSON of the order
//   GET  /healthz          200 "ok" when both stores answer and hold the
//                          schema this release needs, else 503 and the reason
//   GET  /version          the release label
//
// A POST from the page's own forms (Accept: text/html) is answered with a
// redirect to / (to the order after a checkout) instead of JSON.
//
// The Shop keeps no shopper state: every request reads and writes the stores,
// so any instance of either color can take any request. Its only memory is
// the v4 request counter (the injected fault) and the last health verdict
// (to log changes once).
//
// Handlers run on the server's worker threads; a Shop must outlive the
// server it is registered on. The stores are borrowed.
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "release.h"
#include "result.h"
#include "stores.h"

namespace shop {

// Writes one timestamped line to stderr (the instance's log under cutover).
void Log(const std::string& line);

class Shop {
 public:
  // Form fields of a request body (application/x-www-form-urlencoded).
  using Params = httplib::Params;

  Shop(Release release, CartStore& carts, OrderStore& orders);
  Shop(const Shop&) = delete;
  Shop& operator=(const Shop&) = delete;

  // Adds the routes to `server` and sets its threads and connection options.
  void Register(httplib::Server& server);

  // Both stores answer and hold this release's tables and columns. Logs the
  // verdict when it differs from the previous one.
  Status Health();

 private:
  void Index(const httplib::Request& req, httplib::Response& res);
  void Products(const httplib::Request& req, httplib::Response& res);
  void CartAdd(const httplib::Request& req, httplib::Response& res, const Params& form);
  void CartRemove(const httplib::Request& req, httplib::Response& res, const Params& form);
  void CartGet(const httplib::Request& req, httplib::Response& res);
  void Checkout(const httplib::Request& req, httplib::Response& res, const Params& form);
  void OrderGet(const httplib::Request& req, httplib::Response& res);
  void Healthz(const httplib::Request& req, httplib::Response& res);

  // v4's defect: true for every 5th catalog or cart request once this
  // process has served 10 of them. Always false for other releases.
  bool InjectFault(const httplib::Request& req, httplib::Response& res);
  // Answers 503 with the store's error, and logs it.
  void StoreFailed(httplib::Response& res, const std::string& what, const std::string& error);

  const Release release_;
  const Behaviour behaviour_;
  CartStore& carts_;
  OrderStore& orders_;
  std::atomic<uint64_t> fault_counter_{0};
  std::mutex health_mu_;
  std::string last_health_;  // guarded by health_mu_; "" until the first check
};

}  // namespace shop
