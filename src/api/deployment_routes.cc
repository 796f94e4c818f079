#include "api/deployment_routes.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "api/control_routes.h"
#include "api/json.h"

namespace cutover {

namespace asio = boost::asio;
using boost::beast::http::verb;

namespace {

constexpr Millis kKeepAliveEvery{15'000};
constexpr int kHistoryLimit = 50;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResponse DeploymentResponse(int status, const Result<DeploymentRecord>& d) {
  if (!d) return ErrorResponse(d.error());
  return JsonResponse(status, JsonBody(ToJson(*d)));
}

// Events queued for one stream by the controller's listener, and a timer the
// listener cancels to wake the stream's coroutine.
struct Subscription {
  explicit Subscription(asio::any_io_executor ex) : wake(ex) {}
  std::deque<DeploymentEvent> queue;
  asio::steady_timer wake;
};

Result<int64_t> ParseId(std::string_view text) {
  int64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size() || id <= 0) {
    return MakeError(ErrorCode::kNotFound, "no deployment " + Quoted(text));
  }
  return id;
}

// Streams events accepted by `keep` until one for which `last` is true (or
// the client leaves). `sent` holds events already replayed, to skip.
asio::awaitable<void> StreamEvents(Controller& controller, SseWriter& out,
                                   std::shared_ptr<Subscription> sub, uint64_t id,
                                   std::function<bool(const DeploymentEvent&)> last, bool dedupe,
                                   std::set<std::string> sent) {
  struct Unsubscribe {
    Controller& c;
    uint64_t id;
    ~Unsubscribe() { c.Unsubscribe(id); }
  } unsubscribe{controller, id};
  for (;;) {
    while (!sub->queue.empty()) {
      DeploymentEvent e = std::move(sub->queue.front());
      sub->queue.pop_front();
      std::string data = ToJson(e).dump();
      if (dedupe) {
        // Skips what the replay of the journal already sent.
        std::string key = e.kind + "|" + e.step + "|" + e.outcome + "|" + e.message;
        if (sent.contains(key)) continue;
        sent.insert(key);
      }
      if (!co_await out.Send(e.kind, data)) co_return;
      if (last && last(e)) co_return;
    }
    sub->wake.expires_after(kKeepAliveEvery);
    co_await sub->wake.async_wait(asio::as_tuple(asio::use_awaitable));
    if (sub->queue.empty() && !co_await out.KeepAlive()) co_return;
  }
}

}  // namespace

void AddDeploymentRoutes(HttpRoutes& routes, Controller& controller) {
  routes.Add(verb::post, "/v1/services/{name}/deploy",
             [&controller](const HttpRequest& request,
                           const PathParams& params) -> asio::awaitable<HttpResponse> {
               auto body = ParseDeployRequest(request.body());
               if (!body) co_return ErrorResponse(body.error());
               auto actor = RequestActor(request);
               if (!actor) co_return ErrorResponse(actor.error());
               body->service = std::string(params.Get("name"));
               body->actor = *actor;
               co_return DeploymentResponse(202, controller.Deploy(std::move(*body)));
             });
  auto action = [&controller](std::string_view what) {
    return [&controller, what](const HttpRequest& request,
                               const PathParams& params) -> asio::awaitable<HttpResponse> {
      auto actor = RequestActor(request);
      if (!actor) co_return ErrorResponse(actor.error());
      std::string name(params.Get("name"));
      if (what == "promote") co_return DeploymentResponse(200, controller.Promote(name, *actor));
      if (what == "abort") co_return DeploymentResponse(200, controller.Abort(name, *actor));
      co_return DeploymentResponse(202, controller.Rollback(name, *actor));
    };
  };
  routes.Add(verb::post, "/v1/services/{name}/promote", action("promote"));
  routes.Add(verb::post, "/v1/services/{name}/abort", action("abort"));
  routes.Add(verb::post, "/v1/services/{name}/rollback", action("rollback"));
  routes.Add(
      verb::get, "/v1/services/{name}/deployments",
      [&controller](const HttpRequest&, const PathParams& params) -> asio::awaitable<HttpResponse> {
        auto list = controller.Deployments(params.Get("name"), kHistoryLimit);
        if (!list) co_return ErrorResponse(list.error());
        Json items = Json::array();
        for (const DeploymentRecord& d : *list) items.push_back(ToJson(d));
        co_return JsonResponse(200, JsonBody(Json{{"deployments", std::move(items)}}));
      });
  routes.Add(
      verb::get, "/v1/services/{name}/deployments/{id}",
      [&controller](const HttpRequest&, const PathParams& params) -> asio::awaitable<HttpResponse> {
        Result<int64_t> id = ParseId(params.Get("id"));
        if (!id) co_return ErrorResponse(id.error());
        co_return DeploymentResponse(200, controller.GetDeployment(params.Get("name"), *id));
      });
  routes.AddStream(
      verb::get, "/v1/services/{name}/deployments/{id}/events",
      [&controller](const HttpRequest&, const PathParams& params,
                    SseWriter& out) -> asio::awaitable<std::optional<HttpResponse>> {
        Result<int64_t> id = ParseId(params.Get("id"));
        if (!id) co_return ErrorResponse(id.error());
        std::string name(params.Get("name"));
        auto sub = std::make_shared<Subscription>(co_await asio::this_coro::executor);
        const int64_t want = *id;
        uint64_t listener = controller.Subscribe([sub, want](const DeploymentEvent& e) {
          if (e.deployment_id != want) return;
          sub->queue.push_back(e);
          sub->wake.cancel();
        });
        // Subscribed first, then the journal: nothing falls between.
        Result<DeploymentRecord> d = controller.GetDeployment(name, want);
        if (!d) {
          controller.Unsubscribe(listener);
          co_return ErrorResponse(d.error());
        }
        std::set<std::string> sent;
        for (const StepRecord& step : d->steps) {
          if (step.outcome == "pending") continue;
          int64_t end = step.finished_unix_ms != 0 ? step.finished_unix_ms : NowMs();
          DeploymentEvent e{d->id,
                            d->service,
                            d->release,
                            "step",
                            step.name,
                            step.outcome,
                            end - step.started_unix_ms,
                            step.message,
                            end};
          sent.insert(e.kind + "|" + e.step + "|" + e.outcome + "|" + e.message);
          if (!co_await out.Send("step", ToJson(e).dump())) {
            controller.Unsubscribe(listener);
            co_return std::nullopt;
          }
        }
        if (d->outcome != "running") {
          DeploymentEvent e{d->id,
                            d->service,
                            d->release,
                            "finished",
                            "",
                            d->outcome,
                            d->finished_unix_ms - d->started_unix_ms,
                            d->message,
                            d->finished_unix_ms};
          co_await out.Send("finished", ToJson(e).dump());
          controller.Unsubscribe(listener);
          co_return std::nullopt;
        }
        co_await StreamEvents(
            controller, out, sub, listener,
            [](const DeploymentEvent& e) { return e.kind == "finished"; }, true, std::move(sent));
        co_return std::nullopt;
      });
  routes.AddStream(verb::get, "/v1/events",
                   [&controller](const HttpRequest&, const PathParams&,
                                 SseWriter& out) -> asio::awaitable<std::optional<HttpResponse>> {
                     auto sub = std::make_shared<Subscription>(co_await asio::this_coro::executor);
                     uint64_t listener = controller.Subscribe([sub](const DeploymentEvent& e) {
                       sub->queue.push_back(e);
                       sub->wake.cancel();
                     });
                     // Starts the stream at once, so that a client knows it is subscribed.
                     if (!co_await out.KeepAlive()) {
                       controller.Unsubscribe(listener);
                       co_return std::nullopt;
                     }
                     co_await StreamEvents(controller, out, sub, listener, nullptr, false, {});
                     co_return std::nullopt;
                   });
}

}  // namespace cutover
