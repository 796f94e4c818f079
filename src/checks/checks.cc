#include "checks/checks.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "checks/command_runner.h"
#include "checks/http_exchange.h"

namespace cutover {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// How much of a response body a failure message shows.
constexpr size_t kBodyExcerpt = 200;

asio::awaitable<bool> Cancelled() {
  auto state = co_await asio::this_coro::cancellation_state;
  co_return state.cancelled() != asio::cancellation_type::none;
}

// `text` double-quoted and printable, cut after `limit` bytes.
std::string QuoteText(std::string_view text, size_t limit) {
  std::string out = "\"";
  const size_t n = std::min(text.size(), limit);
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += fmt::format("\\x{:02x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  if (text.size() > n) out += "...";
  return out;
}

std::string Excerpt(std::string_view body) { return QuoteText(body, kBodyExcerpt); }

std::string Describe(const CheckRequest& request) { return request.method + " " + request.path; }

// What a dotted path found in a JSON body.
struct JsonLookup {
  enum class State { kFound, kMissing, kNotJson };
  State state = State::kNotJson;
  std::string value;  // kFound: strings bare, anything else as dumped
};

JsonLookup LookUpJson(const std::string& body, const std::string& dotted) {
  using json = nlohmann::json;
  JsonLookup out;
  // parse() and dump() are called in their non-throwing forms; the catch keeps
  // any other library exception from leaving here.
  try {
    const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return out;
    out.state = JsonLookup::State::kMissing;
    const json* node = &doc;
    std::string_view rest = dotted;
    while (true) {
      const size_t dot = rest.find('.');
      const std::string_view key = rest.substr(0, dot);
      if (node->is_object()) {
        auto it = node->find(key);
        if (it == node->end()) return out;
        node = &*it;
      } else if (node->is_array()) {
        size_t index = 0;
        auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
        if (key.empty() || ec != std::errc() || ptr != key.data() + key.size() ||
            index >= node->size()) {
          return out;
        }
        node = &(*node)[index];
      } else {
        return out;
      }
      if (dot == std::string_view::npos) break;
      rest.remove_prefix(dot + 1);
    }
    out.state = JsonLookup::State::kFound;
    out.value = node->is_string() ? node->get_ref<const std::string&>()
                                  : node->dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const json::exception&) {
    out.state = JsonLookup::State::kNotJson;
  }
  return out;
}

// Empty when `reply` meets every expectation of `request`, else what differs,
// e.g. "GET /: expected status 200, got 503 (body: \"...\")".
std::string Mismatch(const CheckRequest& request, const HttpReply& reply) {
  const std::string what = Describe(request);
  const bool status_ok = request.expect_status != 0 ? reply.status == request.expect_status
                                                    : reply.status >= 200 && reply.status < 400;
  if (!status_ok) {
    return fmt::format(
        "{}: expected status {}, got {} (body: {})", what,
        request.expect_status != 0 ? std::to_string(request.expect_status) : "2xx or 3xx",
        reply.status, Excerpt(reply.body));
  }
  const char* searched = reply.truncated ? " (in its first 1 MiB)" : "";
  if (!request.expect_body.empty() && reply.body.find(request.expect_body) == std::string::npos) {
    return fmt::format("{}: expected body to contain {}{}, got {}", what,
                       QuoteText(request.expect_body, std::string::npos), searched,
                       Excerpt(reply.body));
  }
  if (!request.expect_json_field.empty()) {
    const JsonLookup found = LookUpJson(reply.body, request.expect_json_field);
    const std::string expected =
        fmt::format("expected JSON field {} to be {}", request.expect_json_field,
                    QuoteText(request.expect_json_value, std::string::npos));
    switch (found.state) {
      case JsonLookup::State::kNotJson:
        return fmt::format("{}: {}, but the body is not JSON{}: {}", what, expected,
                           reply.truncated ? " (cut at 1 MiB)" : "", Excerpt(reply.body));
      case JsonLookup::State::kMissing:
        return fmt::format("{}: {}, but the body has no such field: {}", what, expected,
                           Excerpt(reply.body));
      case JsonLookup::State::kFound:
        if (found.value != request.expect_json_value) {
          return fmt::format("{}: {}, got {}", what, expected,
                             QuoteText(found.value, kBodyExcerpt));
        }
        break;
    }
  }
  return {};
}

// Cookies a session check has been given: name -> value.
class CookieJar {
 public:
  // Keeps the name and value of each Set-Cookie value; attributes are ignored.
  void Take(const std::vector<std::string>& set_cookies) {
    for (const std::string& header : set_cookies) {
      std::string_view pair = std::string_view(header).substr(0, header.find(';'));
      const size_t eq = pair.find('=');
      if (eq == std::string_view::npos) continue;
      const std::string_view name = Trim(pair.substr(0, eq));
      if (name.empty()) continue;
      cookies_[std::string(name)] = std::string(Trim(pair.substr(eq + 1)));
    }
  }
  // The Cookie header value, "a=1; b=2"; empty when there are none.
  std::string Header() const {
    std::string out;
    for (const auto& [name, value] : cookies_) {
      if (!out.empty()) out += "; ";
      out += name;
      out += '=';
      out += value;
    }
    return out;
  }

 private:
  static std::string_view Trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  std::map<std::string, std::string> cookies_;
};

enum class Route { kPreview, kLive };

// How one request of a check failed.
struct RequestFailure {
  bool answered = false;  // a response came back, but not the expected one
  std::string message;    // "GET /cart: expected ..." or "GET /cart: cannot connect ..."
};

// Sends `request` through `route` and checks the response against it.
asio::awaitable<std::expected<void, RequestFailure>> Perform(const CheckRequest& request,
                                                             const CheckContext& ctx, Route route,
                                                             CookieJar& jar) {
  HttpOutgoing out =
      OutgoingFor(request, ctx.host, route == Route::kPreview ? ctx.preview_token : std::string());
  // A request sends one Cookie header: the jar joins one the check wrote itself.
  if (std::string cookies = jar.Header(); !cookies.empty()) {
    auto own = std::find_if(out.headers.begin(), out.headers.end(),
                            [](const auto& h) { return boost::beast::iequals(h.first, "cookie"); });
    if (own != out.headers.end()) {
      own->second += "; " + cookies;
    } else {
      out.headers.emplace_back("Cookie", std::move(cookies));
    }
  }
  Result<HttpReply> reply =
      co_await SendHttpRequest(route == Route::kPreview ? ctx.preview : ctx.live, out);
  if (!reply) {
    co_return std::unexpected(
        RequestFailure{false, Describe(request) + ": " + reply.error().message});
  }
  jar.Take(reply->set_cookies);
  std::string mismatch = Mismatch(request, *reply);
  if (!mismatch.empty()) co_return std::unexpected(RequestFailure{true, std::move(mismatch)});
  co_return std::expected<void, RequestFailure>{};
}

// One attempt of a check.
struct Attempt {
  bool passed = false;
  std::string message;
  std::string output;
};

// `in_flight` names the request under way, for a timeout message.
asio::awaitable<Attempt> HttpAttempt(const CheckRequest& request, const CheckContext& ctx,
                                     std::string& in_flight) {
  CookieJar jar;
  in_flight = Describe(request);
  auto done = co_await Perform(request, ctx, Route::kPreview, jar);
  if (!done) co_return Attempt{false, std::move(done.error().message), {}};
  co_return Attempt{true, {}, {}};
}

constexpr std::string_view kLiveFailed = "the live release itself failed the request: ";
constexpr std::string_view kIdleFailed = "the new release failed the request: ";

asio::awaitable<Attempt> SessionAttempt(const CheckConfig& check, const CheckContext& ctx,
                                        std::string& in_flight) {
  CookieJar jar;
  for (const CheckRequest& request : check.on_live) {
    in_flight = std::string(kLiveFailed) + Describe(request);
    auto done = co_await Perform(request, ctx, Route::kLive, jar);
    if (!done) co_return Attempt{false, std::string(kLiveFailed) + done.error().message, {}};
  }
  for (const CheckRequest& request : check.on_idle) {
    in_flight = std::string(kIdleFailed) + Describe(request);
    auto done = co_await Perform(request, ctx, Route::kPreview, jar);
    if (!done && done.error().answered) {
      co_return Attempt{false,
                        "state created on the live release is not visible on the new one: " +
                            done.error().message +
                            "; the app probably keeps sessions in its own memory — keep them in "
                            "a store both releases share (a database, Redis, files)",
                        {}};
    }
    if (!done) co_return Attempt{false, std::string(kIdleFailed) + done.error().message, {}};
  }
  co_return Attempt{true, {}, {}};
}

asio::awaitable<Attempt> RunAttempt(const CheckConfig& check, const CheckContext& ctx) {
  if (check.kind == CheckConfig::Kind::kCommand) {
    CommandRun run = co_await RunCommandOnce(check.command, ctx, check.timeout);
    co_return Attempt{run.passed, std::move(run.message), std::move(run.output)};
  }
  asio::steady_timer deadline(co_await asio::this_coro::executor, check.timeout);
  std::string in_flight;
  auto work = check.kind == CheckConfig::Kind::kHttp ? HttpAttempt(check.http, ctx, in_flight)
                                                     : SessionAttempt(check, ctx, in_flight);
  auto raced = co_await (std::move(work) || deadline.async_wait(kTuple));
  if (raced.index() == 0) co_return std::get<0>(std::move(raced));
  if (co_await Cancelled()) co_return Attempt{false, "cancelled", {}};
  co_return Attempt{
      false, in_flight + ": no complete answer within " + FormatDuration(check.timeout), {}};
}

asio::awaitable<CheckResult> RunAttempts(const CheckConfig& check, const CheckContext& ctx) {
  CheckResult result;
  result.name = CheckName(check);
  const int max_attempts = 1 + std::max(0, check.retries);
  asio::steady_timer pause(co_await asio::this_coro::executor);
  for (int attempt = 1;; ++attempt) {
    result.attempts = attempt;
    Attempt outcome = co_await RunAttempt(check, ctx);
    result.output = std::move(outcome.output);
    if (outcome.passed) {
      result.passed = true;
      result.message.clear();
      co_return result;
    }
    result.message = std::move(outcome.message);
    if (attempt >= max_attempts || co_await Cancelled()) co_return result;
    pause.expires_after(check.retry_interval);
    co_await pause.async_wait(kTuple);
    if (co_await Cancelled()) {
      result.message = "cancelled (the last attempt failed: " + result.message + ")";
      co_return result;
    }
  }
}

}  // namespace

std::string CheckName(const CheckConfig& check) {
  if (!check.name.empty()) return check.name;
  switch (check.kind) {
    case CheckConfig::Kind::kHttp:
      return "http " + Describe(check.http);
    case CheckConfig::Kind::kCommand:
      return "command " + check.command;
    case CheckConfig::Kind::kSession:
      return "session";
    case CheckConfig::Kind::kAnalysis:
      return "analysis";
  }
  return "check";
}

asio::awaitable<CheckResult> RunCheck(const CheckConfig& check, const CheckContext& ctx) {
  // A cancelled check must end as a result (and kill its command), not as an
  // exception thrown at its next await; the caller's setting is restored.
  const bool throw_if_cancelled = co_await asio::this_coro::throw_if_cancelled();
  co_await asio::this_coro::throw_if_cancelled(false);
  CheckResult result = co_await RunAttempts(check, ctx);
  co_await asio::this_coro::throw_if_cancelled(throw_if_cancelled);
  co_return result;
}

}  // namespace cutover
