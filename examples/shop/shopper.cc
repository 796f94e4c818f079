// cutover-shopper: steady shopper traffic against the shop, the way the demo
// and its test watch a deployment from the outside. See README.md.
//
//   cutover-shopper --url http://HOST:PORT [--shoppers N] [--pause-ms M]
//                   [--log FILE] [--summary FILE]
//
// Each shopper has its own session and keep-alive connection and goes round:
// look at the products, put something in the cart (and check the cart the
// answer shows), read the cart back, and every few rounds check out. It
// remembers what it put in its cart, so a cart that loses an item (a session
// kept in one server's memory, a store a release cannot read) is an error
// like a 5xx or a refused connection.
//
// --log: one line per request, written as it completes:
//   UNIX_MS METHOD PATH STATUS RELEASE RESULT
// STATUS is 0 when no answer came; RELEASE is the shop's X-Shop-Release
// header ("-" without one); RESULT is "ok" or "error:" and a reason without
// spaces.
// SIGTERM or SIGINT: the shoppers finish their request and the summary
// (JSON: requests, errors, by release, by reason) goes to --summary or stdout.
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using json = nlohmann::json;

constexpr const char* kItems[] = {"gadget", "widget", "gizmo"};
constexpr int kRoundsPerOrder = 5;

struct Flags {
  std::string host;
  int port = 0;
  int shoppers = 4;
  int pause_ms = 50;
  std::string log;
  std::string summary;
};

// Everything the shoppers saw, shared: one lock per request is nothing next
// to a request over the network.
class Tally {
 public:
  explicit Tally(std::FILE* log) : log_(log) {}

  void Record(std::string_view method, const std::string& path, int status,
              const std::string& release, const std::string& error) {
    const long long now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    std::lock_guard lock(mu_);
    ++requests_;
    ++by_release_[release];
    if (!error.empty()) {
      ++errors_;
      ++by_reason_[error];
    }
    if (log_ != nullptr) {
      std::fprintf(log_, "%lld %.*s %s %d %s %s%s\n", now_ms, static_cast<int>(method.size()),
                   method.data(), path.c_str(), status, release.c_str(),
                   error.empty() ? "ok" : "error:", error.c_str());
      std::fflush(log_);
    }
  }

  json Summary() const {
    std::lock_guard lock(mu_);
    return json{{"requests", requests_},
                {"errors", errors_},
                {"by_release", by_release_},
                {"errors_by_reason", by_reason_}};
  }

 private:
  std::FILE* log_;
  mutable std::mutex mu_;
  long long requests_ = 0;
  long long errors_ = 0;
  std::map<std::string, long long> by_release_;
  std::map<std::string, long long> by_reason_;
};

std::atomic<bool> stopping{false};

void OnSignal(int) { stopping.store(true); }

// One shopper: a session cookie, a connection, and the cart it expects.
class Shopper {
 public:
  Shopper(const Flags& flags, Tally& tally, unsigned seed)
      : flags_(flags), tally_(tally), client_(flags.host, flags.port), random_(seed) {
    client_.set_keep_alive(true);
    client_.set_connection_timeout(std::chrono::seconds(2));
    client_.set_read_timeout(std::chrono::seconds(5));
    client_.set_write_timeout(std::chrono::seconds(5));
  }

  void Run() {
    int round = 0;
    while (!stopping.load()) {
      Step("GET", "/products", [](const json& body) -> std::string {
        return body.contains("products") && body["products"].is_array() ? "" : "no_products_field";
      });
      Pause();
      const std::string item = kItems[random_() % std::size(kItems)];
      ++expected_[item];
      Step("POST", "/cart/add?item=" + item, [this](const json& body) { return CheckCart(body); });
      Pause();
      Step("GET", "/cart", [this](const json& body) { return CheckCart(body); });
      Pause();
      if (++round % kRoundsPerOrder == 0) {
        if (Step("POST", "/checkout", [](const json& body) -> std::string {
              return body.contains("order_id") ? "" : "no_order_id";
            })) {
          expected_.clear();
        }
        Pause();
      }
    }
  }

 private:
  void Pause() const { std::this_thread::sleep_for(std::chrono::milliseconds(flags_.pause_ms)); }

  // Sends one request and judges the answer: a transport failure or a 4xx
  // or 5xx is an error; so is a 2xx whose body `judge` finds wrong. Returns true on
  // a good answer.
  template <typename Judge>
  bool Step(const char* method, const std::string& path, Judge judge) {
    if (stopping.load()) return false;  // asked to stop: no new request
    httplib::Headers headers;
    if (!sid_.empty()) headers.emplace("Cookie", "sid=" + sid_);
    httplib::Result res =
        std::string_view(method) == "GET"
            ? client_.Get(path, headers)
            : client_.Post(path, headers, "", "application/x-www-form-urlencoded");
    if (!res) {
      // The cart may or may not hold what this request added.
      unsure_ = true;
      tally_.Record(method, path, 0, "-", "no_answer_" + httplib::to_string(res.error()));
      return false;
    }
    const std::string release =
        res->has_header("X-Shop-Release") ? res->get_header_value("X-Shop-Release") : "-";
    RememberSid(*res);
    std::string error;
    if (res->status >= 400) {
      error = "status_" + std::to_string(res->status);
    } else {
      json body = json::parse(res->body, nullptr, false);
      error = body.is_discarded() ? "not_json" : judge(body);
    }
    if (!error.empty()) unsure_ = true;
    tally_.Record(method, path, res->status, release, error);
    return error.empty();
  }

  // A cart answer must hold exactly what this shopper put there. After an
  // answer that never came (or failed), the cart shown next is taken as the
  // truth instead.
  std::string CheckCart(const json& body) {
    if (!body.contains("items") || !body["items"].is_array()) return "no_items_field";
    std::map<std::string, int> seen;
    for (const json& line : body["items"]) {
      seen[line.value("item", "")] += line.value("quantity", 0);
    }
    if (unsure_) {
      expected_ = std::move(seen);
      unsure_ = false;
      return "";
    }
    return seen == expected_ ? "" : "cart_mismatch";
  }

  void RememberSid(const httplib::Response& res) {
    const std::string cookie = res.get_header_value("Set-Cookie");
    if (!cookie.starts_with("sid=")) return;
    const size_t end = cookie.find(';');
    sid_ = cookie.substr(4, end == std::string::npos ? std::string::npos : end - 4);
  }

  const Flags& flags_;
  Tally& tally_;
  httplib::Client client_;
  std::minstd_rand random_;
  std::string sid_;
  std::map<std::string, int> expected_;
  bool unsure_ = false;
};

int Usage(const std::string& problem) {
  std::fprintf(stderr,
               "cutover-shopper: %s\n"
               "usage: cutover-shopper --url http://HOST:PORT [--shoppers N] [--pause-ms M] "
               "[--log FILE] [--summary FILE]\n",
               problem.c_str());
  return 2;
}

std::optional<int> ParseInt(const char* text, int low, int high) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < low || value > high) return std::nullopt;
  return static_cast<int>(value);
}

// http://HOST:PORT with nothing after it but an optional '/'.
bool ParseUrl(std::string_view url, Flags& flags) {
  if (!url.starts_with("http://")) return false;
  url.remove_prefix(7);
  if (url.ends_with('/')) url.remove_suffix(1);
  const size_t colon = url.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  flags.host = std::string(url.substr(0, colon));
  std::optional<int> port = ParseInt(std::string(url.substr(colon + 1)).c_str(), 1, 65535);
  if (!port) return false;
  flags.port = *port;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) return Usage("missing value after " + std::string(arg));
    const char* value = argv[++i];
    if (arg == "--url") {
      if (!ParseUrl(value, flags))
        return Usage("--url: expected http://HOST:PORT, got " + std::string(value));
    } else if (arg == "--shoppers") {
      std::optional<int> n = ParseInt(value, 1, 64);
      if (!n) return Usage("--shoppers: expected 1 to 64, got " + std::string(value));
      flags.shoppers = *n;
    } else if (arg == "--pause-ms") {
      std::optional<int> n = ParseInt(value, 0, 60000);
      if (!n) return Usage("--pause-ms: expected 0 to 60000, got " + std::string(value));
      flags.pause_ms = *n;
    } else if (arg == "--log") {
      flags.log = value;
    } else if (arg == "--summary") {
      flags.summary = value;
    } else {
      return Usage("unknown option " + std::string(arg));
    }
  }
  if (flags.host.empty()) return Usage("--url is required");

  // Both files are opened before any request: a path that cannot be written
  // is found now, not after the run.
  std::FILE* log = nullptr;
  if (!flags.log.empty()) {
    log = std::fopen(flags.log.c_str(), "w");
    if (log == nullptr) return Usage("--log: cannot open " + flags.log);
  }
  std::FILE* out = stdout;
  if (!flags.summary.empty()) {
    out = std::fopen(flags.summary.c_str(), "w");
    if (out == nullptr) return Usage("--summary: cannot open " + flags.summary);
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  Tally tally(log);
  std::vector<std::thread> threads;
  std::random_device seeds;
  for (int i = 0; i < flags.shoppers; ++i) {
    threads.emplace_back([&flags, &tally, seed = seeds()] { Shopper(flags, tally, seed).Run(); });
  }
  for (std::thread& t : threads) t.join();
  if (log != nullptr) std::fclose(log);

  std::fputs((tally.Summary().dump() + "\n").c_str(), out);
  if (out != stdout) std::fclose(out);
  return 0;
}
