#include "support/load_generator.h"

#include <algorithm>
#include <optional>
#include <sstream>

namespace cutover::test {
namespace {

constexpr size_t kMaxErrorTexts = 10;

void Merge(LoadSummary& into, const LoadSummary& from) {
  into.total += from.total;
  into.responses += from.responses;
  for (const auto& [k, v] : from.by_body) into.by_body[k] += v;
  for (const auto& [k, v] : from.by_status) into.by_status[k] += v;
  into.non_2xx += from.non_2xx;
  into.errors += from.errors;
  into.connect_errors += from.connect_errors;
  into.closed_idle += from.closed_idle;
  into.connections_opened += from.connections_opened;
  into.samples.insert(into.samples.end(), from.samples.begin(), from.samples.end());
}

// Sleeps up to `d`, waking early when `stop` is set.
void PauseUnlessStopped(std::chrono::milliseconds d, const std::atomic<bool>& stop) {
  auto until = Clock::now() + d;
  while (!stop.load(std::memory_order_relaxed) && Clock::now() < until) {
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(5), until - Clock::now()));
  }
}

}  // namespace

std::string LoadSummary::ToString() const {
  std::ostringstream out;
  out << "total=" << total << " responses=" << responses << " non_2xx=" << non_2xx
      << " errors=" << errors << " (connect=" << connect_errors << " closed_idle=" << closed_idle
      << ") connections=" << connections_opened << " bodies={";
  bool first = true;
  for (const auto& [k, v] : by_body) {
    out << (first ? "" : ", ") << '"' << k.substr(0, 40) << "\": " << v;
    first = false;
  }
  out << "} statuses={";
  first = true;
  for (const auto& [k, v] : by_status) {
    out << (first ? "" : ", ") << k << ": " << v;
    first = false;
  }
  out << "}";
  for (const auto& e : first_errors) out << "\n  error: " << e;
  return out.str();
}

LoadGenerator::LoadGenerator(LoadOptions options)
    : options_(std::move(options)),
      request_(BuildRequest("GET", options_.target, options_.host_header, options_.headers)) {}

std::unique_ptr<LoadGenerator> LoadGenerator::Start(LoadOptions options) {
  std::unique_ptr<LoadGenerator> gen(new LoadGenerator(std::move(options)));
  int n = std::max(1, gen->options_.connections);
  for (int i = 0; i < n; ++i) gen->workers_.push_back(std::make_unique<Worker>());
  for (auto& w : gen->workers_) {
    Worker* worker = w.get();
    LoadGenerator* self = gen.get();
    w->thread = std::thread([self, worker] { self->Run(*worker); });
  }
  return gen;
}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::RecordError(Worker& worker, std::string text, bool connect, bool closed_idle,
                                Clock::time_point sent) {
  {
    std::lock_guard lock(worker.mu);
    ++worker.stats.total;
    ++worker.stats.errors;
    if (connect) ++worker.stats.connect_errors;
    if (closed_idle) ++worker.stats.closed_idle;
    if (options_.keep_samples) {
      worker.stats.samples.push_back(LoadSample{sent, Clock::now(), 0, {}});
    }
  }
  completed_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(errors_mu_);
  if (first_errors_.size() < kMaxErrorTexts) first_errors_.push_back(std::move(text));
}

void LoadGenerator::Run(Worker& worker) {
  std::optional<RawConn> conn;
  uint64_t responses_on_conn = 0;
  while (!stop_.load(std::memory_order_relaxed)) {
    if (!conn) {
      auto c = RawConn::Connect(options_.host, options_.port, DeadlineIn(options_.connect_timeout));
      if (!c) {
        RecordError(worker, c.error().message, /*connect=*/true, false, Clock::now());
        PauseUnlessStopped(options_.reconnect_backoff, stop_);
        continue;
      }
      conn.emplace(std::move(*c));
      responses_on_conn = 0;
      std::lock_guard lock(worker.mu);
      ++worker.stats.connections_opened;
    }
    auto sent = Clock::now();
    auto deadline = sent + options_.request_timeout;
    uint64_t received_before = conn->bytes_received();
    bool reused = responses_on_conn > 0;
    if (auto st = conn->Send(request_, deadline); !st) {
      RecordError(worker, "send: " + st.error().message, false, reused, sent);
      conn.reset();
      continue;
    }
    auto res = conn->ReadResponse(deadline);
    if (!res) {
      bool nothing = conn->bytes_received() == received_before;
      std::string text = res.error().message;
      if (reused && nothing) text += " (reused connection)";
      RecordError(worker, std::move(text), false, reused && nothing, sent);
      conn.reset();
      continue;
    }
    ++responses_on_conn;
    bool ok = res->status >= 200 && res->status < 300;
    {
      std::lock_guard lock(worker.mu);
      ++worker.stats.total;
      ++worker.stats.responses;
      ++worker.stats.by_body[res->body];
      ++worker.stats.by_status[res->status];
      if (!ok) ++worker.stats.non_2xx;
      if (options_.keep_samples) {
        worker.stats.samples.push_back(LoadSample{sent, Clock::now(), res->status, res->body});
      }
    }
    completed_.fetch_add(1, std::memory_order_relaxed);
    if (!ok) {
      std::lock_guard lock(errors_mu_);
      if (first_errors_.size() < kMaxErrorTexts) {
        first_errors_.push_back("status " + std::to_string(res->status) + ": " +
                                res->body.substr(0, 200));
      }
    }
    // A server that announces a close is within its rights: reconnect.
    if (!res->KeepAlive()) conn.reset();
    if (options_.pause.count() > 0) PauseUnlessStopped(options_.pause, stop_);
  }
}

bool LoadGenerator::WaitForCompleted(uint64_t n, Deadline deadline) const {
  return WaitUntil([&] { return Completed() >= n; }, deadline, std::chrono::milliseconds(2));
}

LoadSummary LoadGenerator::Snapshot() const {
  LoadSummary out;
  for (const auto& w : workers_) {
    std::lock_guard lock(w->mu);
    Merge(out, w->stats);
  }
  std::sort(out.samples.begin(), out.samples.end(),
            [](const LoadSample& a, const LoadSample& b) { return a.sent < b.sent; });
  std::lock_guard lock(errors_mu_);
  out.first_errors = first_errors_;
  return out;
}

LoadSummary LoadGenerator::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (!stopped_) {
      stop_.store(true);
      for (auto& w : workers_) {
        if (w->thread.joinable()) w->thread.join();
      }
      stopped_ = true;
    }
  }
  return Snapshot();
}

}  // namespace cutover::test
