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

HttpResponse DeploymentResponse(int status, const Result<DeploymentRecord>& d) {
  if (!d) return ErrorResponse(d.error());
  return JsonResponse(status, JsonBody(ToJson(*d)));
}

// A stream's subscription to the controller's events: they queue here and
// wake the stream's coroutine. Lives in that coroutine's frame and
// unsubscribes when the stream ends, however it ends.
class Subscription {
 public:
  // `deployment`: only that deployment's events; 0 for all.
  Subscription(Controller& controller, asio::any_io_executor executor, int64_t deployment)
      : wake(executor), controller_(controller) {
    id_ = controller.Subscribe([this, deployment](const DeploymentEvent& e) {
      if (deployment != 0 && e.deployment_id != deployment) return;
      queue.push_back(e);
      wake.cancel();
    });
  }
  ~Subscription() { controller_.Unsubscribe(id_); }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  std::deque<DeploymentEvent> queue;
  asio::steady_timer wake;

 private:
  Controller& controller_;
  uint64_t id_ = 0;
};

// What identifies an event replayed from the journal.
std::string EventKey(const DeploymentEvent& e) {
  return e.kind + "|" + e.step + "|" + e.outcome + "|" + e.message;
}

Result<int64_t> ParseId(std::string_view text) {
  int64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size() || id <= 0) {
    return MakeError(ErrorCode::kNotFound, "no deployment " + Quoted(text));
  }
  return id;
}

// Streams the subscription's events until one for which `last` is true (or
// the client leaves), skipping those already replayed (`replayed` keys).
asio::awaitable<void> StreamEvents(SseWriter& out, Subscription& sub,
                                   std::function<bool(const DeploymentEvent&)> last,
                                   const std::set<std::string>& replayed) {
  for (;;) {
    while (!sub.queue.empty()) {
      DeploymentEvent e = std::move(sub.queue.front());
      sub.queue.pop_front();
      if (replayed.contains(EventKey(e))) continue;
      if (!co_await out.Send(e.kind, ToJson(e).dump())) co_return;
      if (last && last(e)) co_return;
    }
    sub.wake.expires_after(kKeepAliveEvery);
    co_await sub.wake.async_wait(asio::as_tuple(asio::use_awaitable));
    if (sub.queue.empty() && !co_await out.KeepAlive()) co_return;
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
      auto force = ParseRollbackRequest(request.body());
      if (!force) co_return ErrorResponse(force.error());
      co_return DeploymentResponse(202, controller.Rollback(name, *actor, *force));
    };
  };
  routes.Add(verb::post, "/v1/services/{name}/promote", action("promote"));
  routes.Add(verb::post, "/v1/services/{name}/abort", action("abort"));
  routes.Add(verb::post, "/v1/services/{name}/rollback", action("rollback"));
  routes.Add(verb::post, "/v1/services/{name}/contract",
             [&controller](const HttpRequest& request,
                           const PathParams& params) -> asio::awaitable<HttpResponse> {
               auto actor = RequestActor(request);
               if (!actor) co_return ErrorResponse(actor.error());
               Result<ContractResult> result =
                   co_await controller.Contract(std::string(params.Get("name")), *actor);
               if (!result) co_return ErrorResponse(result.error());
               co_return JsonResponse(200, JsonBody(ToJson(*result)));
             });
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
        const int64_t want = *id;
        Subscription sub(controller, co_await asio::this_coro::executor, want);
        // Subscribed first, then the journal: nothing falls between.
        Result<DeploymentRecord> d = controller.GetDeployment(name, want);
        if (!d) co_return ErrorResponse(d.error());
        std::set<std::string> replayed;
        for (const StepRecord& step : d->steps) {
          // Steps that never began (skipped after a failure) have nothing to show.
          if (step.outcome == "pending" || step.started_unix_ms == 0) continue;
          int64_t end = step.finished_unix_ms != 0 ? step.finished_unix_ms : NowUnixMs();
          DeploymentEvent e{d->id,
                            d->service,
                            d->release,
                            "step",
                            step.name,
                            step.outcome,
                            end - step.started_unix_ms,
                            step.message,
                            end};
          replayed.insert(EventKey(e));
          if (!co_await out.Send("step", ToJson(e).dump())) co_return std::nullopt;
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
          co_return std::nullopt;
        }
        co_await StreamEvents(
            out, sub, [](const DeploymentEvent& e) { return e.kind == "finished"; }, replayed);
        co_return std::nullopt;
      });
  routes.AddStream(verb::get, "/v1/events",
                   [&controller](const HttpRequest&, const PathParams&,
                                 SseWriter& out) -> asio::awaitable<std::optional<HttpResponse>> {
                     Subscription sub(controller, co_await asio::this_coro::executor, 0);
                     // Starts the stream at once, so that a client knows it is subscribed.
                     if (!co_await out.KeepAlive()) co_return std::nullopt;
                     co_await StreamEvents(out, sub, nullptr, {});
                     co_return std::nullopt;
                   });
}

}  // namespace cutover
