// ClientSession: one client connection, as one straight-line coroutine.
// Reads a request head, routes it by the worker's current table, relays the
// request to a target and the response back, and repeats while the
// connection is kept alive. Runs only on its worker's thread.
#include <fmt/format.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "router/http_parser.h"
#include "router/worker.h"

namespace cutover {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <typename T>
using awaitable = asio::awaitable<T, WorkerExecutor>;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::deferred);

enum class Phase : uint8_t {
  kIdle,          // waiting for the next request (no buffers held)
  kHead,          // reading a request head
  kRequestBody,   // relaying the request body
  kConnect,       // connecting to a target
  kResponseHead,  // waiting for the response head
  kResponseBody,  // relaying the response body
  kTunnel,        // relaying an upgraded connection
};

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

// Writes a head into memory sized once for the longest head the caller can
// write, so that a piece costs a comparison and a copy rather than a call
// that checks and grows the capacity (a head is rebuilt for every request
// and every response).
class HeadWriter {
 public:
  HeadWriter(char* begin, size_t bound) : begin_(begin), p_(begin), end_(begin + bound) {}
  // The bound is a sum over the same pieces, so passing it is a bug; the
  // memory after it is not the head's.
  HeadWriter& operator<<(std::string_view s) {
    if (s.size() > static_cast<size_t>(end_ - p_)) [[unlikely]]
      std::abort();
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
    return *this;
  }
  HeadWriter& operator<<(char c) {
    if (p_ == end_) [[unlikely]]
      std::abort();
    *p_++ = c;
    return *this;
  }
  // A header field as "name: value\r\n": FieldBytes(f) bytes.
  void Field(const HeaderField& f) { *this << f.name << ": " << f.value << "\r\n"; }
  static size_t FieldBytes(const HeaderField& f) { return f.name.size() + f.value.size() + 4; }
  size_t size() const { return static_cast<size_t>(p_ - begin_); }

 private:
  char* begin_;
  char* p_;
  char* end_;
};

// Replaces `out` with what `write` puts in a HeadWriter of `bound` bytes.
template <typename Write>
void WriteHead(std::string& out, size_t bound, Write&& write) {
  out.resize_and_overwrite(bound, [&](char* p, size_t n) {
    HeadWriter w(p, n);
    write(w);
    return w.size();
  });
}

constexpr std::string_view kPreviewTokenHeader = "x-cutover-preview-token";

// Compares without returning early, so that timing does not tell how much of
// a guessed token was right.
bool SameSecret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

// Request headers the router replaces or drops when forwarding.
enum class RequestHeaderRole : uint8_t { kForward, kDrop, kConnectionOrUpgrade };

RequestHeaderRole ClassifyRequestHeader(std::string_view name, bool expect_handled) {
  switch (name.size()) {
    case 6:
      return expect_handled && EqualsIgnoreCase(name, "expect") ? RequestHeaderRole::kDrop
                                                                : RequestHeaderRole::kForward;
    case 7:
      if (EqualsIgnoreCase(name, "upgrade")) return RequestHeaderRole::kConnectionOrUpgrade;
      break;
    case 10:
      if (EqualsIgnoreCase(name, "connection")) return RequestHeaderRole::kConnectionOrUpgrade;
      break;
    case 12:
      if (EqualsIgnoreCase(name, "x-request-id")) return RequestHeaderRole::kDrop;
      break;
    case 15:
      if (EqualsIgnoreCase(name, "x-forwarded-for")) return RequestHeaderRole::kDrop;
      break;
    case 16:
      if (EqualsIgnoreCase(name, "x-forwarded-host")) return RequestHeaderRole::kDrop;
      break;
    case 17:
      if (EqualsIgnoreCase(name, "x-forwarded-proto")) return RequestHeaderRole::kDrop;
      break;
    case kPreviewTokenHeader.size():
      // The preview's secret never reaches an application.
      if (EqualsIgnoreCase(name, kPreviewTokenHeader)) return RequestHeaderRole::kDrop;
      break;
    default:
      break;
  }
  return IsHopByHopHeader(name) ? RequestHeaderRole::kDrop : RequestHeaderRole::kForward;
}

bool IsIdempotentWithoutSideEffects(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS";
}

// True when the peer of an idle pooled connection has closed it or sent
// something unsolicited; either way it must not carry a request.
bool PeerClosed(Stream& s) {
  char byte;
  ssize_t n = ::recv(s.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

// Holds the worker's current route table for the lifetime of one request.
class TablePin {
 public:
  explicit TablePin(Worker& worker) : worker_(worker), table_(worker.PinTable()) {}
  ~TablePin() { worker_.UnpinTable(table_); }
  TablePin(const TablePin&) = delete;
  TablePin& operator=(const TablePin&) = delete;
  const RouteTable* operator->() const { return table_; }

 private:
  Worker& worker_;
  const RouteTable* table_;
};

class ClientSession final : public SessionBase {
 public:
  ClientSession(Worker& worker, Stream client, bool preview)
      : worker_(worker),
        opts_(worker.options()),
        client_(std::move(client)),
        upstream_{Stream(worker.context().get_executor(), worker.ring())},
        preview_(preview) {
    error_code ec;
    client_.set_option(tcp::no_delay(true), ec);
    auto remote = client_.remote_endpoint(ec);
    if (!ec) client_ip_ = remote.address().to_string();
    worker_.Register(this);
  }

  ~ClientSession() override {
    if (buffers_) worker_.ReleaseBuffers(std::move(buffers_));
    worker_.Unregister(this);
  }

  awaitable<void> Run();

  void OnDeadline() override {
    timed_out_ = true;
    deadline = SteadyTime::max();
    error_code ec;
    client_.cancel(ec);
    upstream_.socket.cancel(ec);
    if (phase_ == Phase::kTunnel || phase_ == Phase::kIdle) {
      client_.close(ec);
      upstream_.socket.close(ec);
    }
  }

  void OnTable(const RouteTable& table) override {
    if (phase_ != Phase::kTunnel || tunnel_target_ == nullptr) return;
    if (table.Routes(tunnel_target_)) {
      deadline = SteadyTime::max();  // its color is live (again): keep it
    } else if (deadline == SteadyTime::max()) {
      deadline = CoarseNow() + tunnel_drain_;
    }
  }

  void OnDrain() override {
    if (phase_ == Phase::kIdle) {
      error_code ec;
      client_.cancel(ec);
      client_.close(ec);
    }
  }

 private:
  enum class HeadResult { kOk, kClosed, kError };

  void SetDeadline(Millis d) { deadline = CoarseNow() + d; }

  void AcquireBuffers() {
    if (!buffers_) {
      buffers_ = worker_.AcquireBuffers();
      cbuf_ = buffers_->client.get();
      ubuf_ = buffers_->upstream.get();
    }
  }
  void ReleaseBuffersIfIdle() {
    if (buffers_ && cbeg_ == cend_) {
      cbeg_ = cend_ = 0;
      worker_.ReleaseBuffers(std::move(buffers_));
      cbuf_ = ubuf_ = nullptr;
    }
  }

  // Parses the request head once its end is in the buffer; bytes before
  // *scanned were already searched for it.
  ParseResult ParseHeadIfComplete(size_t* scanned, size_t* head_len, ParseError* error);
  // Reads until the head is complete (or fails), starting from `scanned`.
  awaitable<HeadResult> ReadRequestHead(size_t scanned, size_t* head_len, ParseError* error);
  enum class SendResult { kSent, kConnectFailed, kWriteFailed, kTimedOut };
  enum class HeadOutcome { kOk, kBad, kTimedOut, kClosedSilently };

  uint64_t ElapsedUs() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count();
  }
  awaitable<void> Proxy(const ServiceRoute& route, size_t head_len);
  // Sends the request head and `first_body` over a pooled or new connection
  // to *target, moving once to another target of the color when a connect
  // fails (updating *target). `fresh` skips the pool.
  awaitable<SendResult> OpenAndSend(const ServiceRoute& route, Target** target, bool fresh,
                                    std::string_view first_body);
  awaitable<HeadOutcome> ReadResponseHead(ResponseHead& resp, size_t* uend, size_t* head_len,
                                          ParseError* perr);
  awaitable<void> RelayResponse(const ServiceRoute& route, Target* target, ResponseHead& resp,
                                size_t uend, size_t resp_head_len, bool upstream_write_failed,
                                uint64_t bytes_in, uint64_t bytes_out);
  awaitable<bool> SendOwn(int status, std::string_view detail, bool close);
  awaitable<bool> ConnectTo(Target* target);
  void BuildUpstreamHead(const Target& target);
  void BuildResponseHead(const ResponseHead& resp, bool close, bool dechunk);
  // Ends the target's count of a request in flight with its answer.
  void CountResponse(StatsShard& stats, int status, uint64_t bytes_in, uint64_t bytes_out);
  void Log(const ServiceRoute* route, Color color, const Target* target, int status,
           uint64_t bytes_in, uint64_t bytes_out);
  awaitable<void> Tunnel();
  awaitable<void> Pump(Stream& from, Stream& to, char* buf, size_t cap);

  Worker& worker_;
  const RouterOptions& opts_;
  Stream client_;
  UpstreamConn upstream_;
  std::string client_ip_;
  std::unique_ptr<IoBuffers> buffers_;
  char* cbuf_ = nullptr;
  char* ubuf_ = nullptr;
  size_t cbeg_ = 0, cend_ = 0;  // unread request bytes in cbuf_
  char first_bytes_[512];       // where an idle connection's next request starts
  Phase phase_ = Phase::kIdle;
  bool timed_out_ = false;
  bool close_after_ = false;
  bool first_request_ = true;
  RequestHead req_;
  SteadyTime started_{};
  char generated_id_[33] = {};
  bool idempotent_ = false;
  Target* tunnel_target_ = nullptr;
  Millis tunnel_drain_{0};
  const bool preview_;          // accepted on a preview listener: routes to the idle color
  Color color_ = Color::kBlue;  // the color the current request is routed to
};

ParseResult ClientSession::ParseHeadIfComplete(size_t* scanned, size_t* head_len,
                                               ParseError* error) {
  std::string_view data(cbuf_ + cbeg_, cend_ - cbeg_);
  if (data.empty()) return ParseResult::kIncomplete;
  // Only parse once the blank line that ends the head has arrived; a head
  // trickling in byte by byte is scanned once, not once per byte.
  const ParseLimits& limits = worker_.limits();
  size_t from = *scanned > cbeg_ + 3 ? *scanned - 3 : cbeg_;
  std::string_view fresh(cbuf_ + from, cend_ - from);
  *scanned = cend_;
  bool complete = fresh.find("\r\n\r\n") != std::string_view::npos;
  if (!complete && data.size() < limits.max_head_bytes && !HasBareLineFeed(fresh)) {
    return ParseResult::kIncomplete;
  }
  req_.headers = &buffers_->request_headers;
  return ParseRequestHead(data, limits, req_, head_len, error);
}

awaitable<ClientSession::HeadResult> ClientSession::ReadRequestHead(size_t scanned,
                                                                    size_t* head_len,
                                                                    ParseError* error) {
  for (;;) {
    if (cend_ == buffers_->capacity) {
      // Make room: move the partial head to the front of the buffer.
      std::memmove(cbuf_, cbuf_ + cbeg_, cend_ - cbeg_);
      scanned -= cbeg_;
      cend_ -= cbeg_;
      cbeg_ = 0;
    }
    auto [ec, n] = co_await client_.async_read_some(
        asio::buffer(cbuf_ + cend_, buffers_->capacity - cend_), kTuple);
    if (ec || n == 0) {
      if (timed_out_ && cend_ > cbeg_) {
        worker_.counters().header_timeouts.fetch_add(1, std::memory_order_relaxed);
        *error = {408, "the request head was not received in time"};
        co_return HeadResult::kError;
      }
      co_return HeadResult::kClosed;
    }
    cend_ += n;
    ParseResult r = ParseHeadIfComplete(&scanned, head_len, error);
    if (r == ParseResult::kComplete) co_return HeadResult::kOk;
    if (r == ParseResult::kError) co_return HeadResult::kError;
  }
}

awaitable<void> ClientSession::Run() {
  for (;;) {
    if (cbeg_ == cend_) {
      // Idle: wait for the next request without holding any buffer.
      ReleaseBuffersIfIdle();
      phase_ = Phase::kIdle;
      if (worker_.draining()) break;
      SetDeadline(first_request_ ? opts_.timeouts.client_header : opts_.timeouts.client_idle);
      // A small read of the session's own starts the next request; the big
      // buffers are borrowed only once bytes are here. (A readiness wait
      // would cost as much: Asio arms it with an epoll_ctl call.)
      auto [ec, n] = co_await client_.async_read_some(asio::buffer(first_bytes_), kTuple);
      if (ec || n == 0 || timed_out_) break;
      AcquireBuffers();
      std::memcpy(cbuf_, first_bytes_, n);
      cbeg_ = 0;
      cend_ = n;
    }
    AcquireBuffers();
    worker_.Pace();
    first_request_ = false;
    phase_ = Phase::kHead;
    SetDeadline(opts_.timeouts.client_header);
    size_t head_len = 0;
    ParseError perr;
    // Most heads arrive whole with their first bytes: parsed without a
    // coroutine of their own.
    size_t scanned = cbeg_;
    HeadResult hr = HeadResult::kOk;
    ParseResult pr = ParseHeadIfComplete(&scanned, &head_len, &perr);
    if (pr == ParseResult::kError) {
      hr = HeadResult::kError;
    } else if (pr == ParseResult::kIncomplete) {
      hr = co_await ReadRequestHead(scanned, &head_len, &perr);
    }
    if (hr == HeadResult::kClosed) break;
    if (hr == HeadResult::kError) {
      if (perr.status != 408)
        worker_.counters().bad_requests.fetch_add(1, std::memory_order_relaxed);
      buffers_->request_id.assign(worker_.NewRequestId(generated_id_));
      buffers_->method.clear();
      buffers_->path.clear();
      timed_out_ = false;
      co_await SendOwn(perr.status, perr.reason, /*close=*/true);
      break;
    }
    started_ = Clock::now();
    close_after_ = !req_.KeepAlive() || worker_.draining();
    // Keep what the rest of the exchange needs: the head's bytes get reused.
    buffers_->method.assign(req_.method);
    buffers_->path.assign(req_.path);
    buffers_->request_id.assign(req_.request_id.empty() ? worker_.NewRequestId(generated_id_)
                                                        : req_.request_id);

    if (preview_ && !opts_.preview_token.empty()) {
      std::string_view token;
      bool present = false;
      for (const HeaderField& f : *req_.headers) {
        if (EqualsIgnoreCase(f.name, kPreviewTokenHeader)) {
          token = f.value;
          present = true;
        }
      }
      if (!SameSecret(token, opts_.preview_token)) {
        bool has_body = req_.body != BodyKind::kNone;
        cbeg_ += head_len;
        Log(nullptr, Color::kBlue, nullptr, present ? 403 : 401, 0, 0);
        std::string_view why = present ? "the X-Cutover-Preview-Token header is wrong"
                                       : "the preview needs the X-Cutover-Preview-Token header";
        if (!co_await SendOwn(present ? 403 : 401, why, close_after_ || has_body) || close_after_ ||
            has_body) {
          break;
        }
        continue;
      }
    }

    // Pin the table for the whole request: a switch affects the next one.
    TablePin table(worker_);
    const ServiceRoute* route = table->Match(req_.host, req_.path);
    if (route == nullptr) {
      worker_.counters().unmatched.fetch_add(1, std::memory_order_relaxed);
      char host_buf[256];
      std::string detail =
          fmt::format("no service for host '{}'", NormalizeHost(req_.host, host_buf));
      bool has_body = req_.body != BodyKind::kNone;
      cbeg_ += head_len;
      Log(nullptr, Color::kBlue, nullptr, 404, 0, 0);
      if (!co_await SendOwn(404, detail, close_after_ || has_body) || close_after_ || has_body) {
        break;
      }
      continue;
    }
    co_await Proxy(*route, head_len);
    if (close_after_ || timed_out_) break;
  }
  error_code ec;
  client_.shutdown(tcp::socket::shutdown_send, ec);
  client_.close(ec);
}

awaitable<bool> ClientSession::SendOwn(int status, std::string_view detail, bool close) {
  std::string_view id = buffers_->request_id;
  std::string& out = buffers_->head_out;
  out.clear();
  std::string body =
      fmt::format("{} {}: {} (request id {})\n", status, ReasonPhrase(status), detail, id);
  fmt::format_to(std::back_inserter(out),
                 "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: {}\r\nX-Request-Id: {}\r\n{}\r\n",
                 status, ReasonPhrase(status), body.size(), id,
                 close ? "Connection: close\r\n" : "");
  out += body;
  SetDeadline(opts_.timeouts.client_idle);
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(out), kTuple);
  co_return !ec;
}

void ClientSession::BuildUpstreamHead(const Target& target) {
  bool expect_handled = req_.expect_continue;
  const std::vector<HeaderField>& fields = *req_.headers;
  // An absolute-form target names the host; a Host header is then ignored
  // (RFC 9112 §3.2.2) and rebuilt from it.
  const bool host_from_target = req_.target.front() != '/' && req_.target != "*";
  const std::string_view default_host =
      req_.host.empty() ? std::string_view(target.address_text) : req_.host;
  // Every field at most once as itself and once more as an earlier hop.
  size_t bound = req_.method.size() + req_.path.size() + default_host.size() + req_.host.size() +
                 client_ip_.size() + buffers_->request_id.size() + 160;
  for (const HeaderField& f : fields) bound += HeadWriter::FieldBytes(f) + f.value.size() + 2;
  WriteHead(buffers_->head_out, bound, [&](HeadWriter& out) {
    out << req_.method << ' ' << req_.path << " HTTP/1.1\r\n";
    bool has_host = false;
    for (const HeaderField& f : fields) {
      RequestHeaderRole role = ClassifyRequestHeader(f.name, expect_handled);
      if (role == RequestHeaderRole::kDrop) continue;
      if (role == RequestHeaderRole::kConnectionOrUpgrade) {
        // Only an upgrade to WebSocket crosses the proxy; the Upgrade header
        // goes along and Connection is rewritten below.
        if (req_.websocket && f.name.size() == 7) out.Field(f);
        continue;
      }
      if (req_.connection.has_tokens && NamedInConnection(fields, f.name)) continue;
      if (f.name.size() == 4 && EqualsIgnoreCase(f.name, "host")) {
        if (host_from_target) continue;
        has_host = true;
      }
      out.Field(f);
    }
    if (!has_host) out << "Host: " << default_host << "\r\n";
    if (req_.websocket) out << "Connection: upgrade\r\n";
    // Every earlier hop, in order, then this client.
    out << "X-Forwarded-For: ";
    for (const HeaderField& f : fields) {
      if (f.name.size() == 15 && EqualsIgnoreCase(f.name, "x-forwarded-for") && !f.value.empty()) {
        out << f.value << ", ";
      }
    }
    out << client_ip_ << "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " << req_.host
        << "\r\nX-Request-Id: " << buffers_->request_id << "\r\n\r\n";
  });
}

void ClientSession::BuildResponseHead(const ResponseHead& resp, bool close, bool dechunk) {
  const std::vector<HeaderField>& fields = *resp.headers;
  size_t bound = resp.reason.size() + buffers_->request_id.size() + 80;
  for (const HeaderField& f : fields) bound += HeadWriter::FieldBytes(f);
  WriteHead(buffers_->head_out, bound, [&](HeadWriter& out) {
    // The parser took exactly three digits.
    out << "HTTP/1.1 " << static_cast<char>('0' + resp.status / 100)
        << static_cast<char>('0' + resp.status / 10 % 10)
        << static_cast<char>('0' + resp.status % 10) << ' ' << resp.reason << "\r\n";
    bool upgrade = resp.status == 101;
    for (const HeaderField& f : fields) {
      if (IsHopByHopHeader(f.name)) {
        if (upgrade && f.name.size() == 7) out.Field(f);  // Upgrade
        continue;
      }
      if (dechunk && f.name.size() == 17 && EqualsIgnoreCase(f.name, "transfer-encoding")) {
        continue;
      }
      if (f.name.size() == 12 && EqualsIgnoreCase(f.name, "x-request-id")) continue;
      if (resp.connection.has_tokens && NamedInConnection(fields, f.name)) continue;
      out.Field(f);
    }
    out << "X-Request-Id: " << buffers_->request_id << "\r\n";
    if (upgrade) {
      out << "Connection: upgrade\r\n";
    } else if (close) {
      out << "Connection: close\r\n";
    } else if (req_.version_minor == 0) {
      out << "Connection: keep-alive\r\n";
    }
    out << "\r\n";
  });
}

awaitable<bool> ClientSession::ConnectTo(Target* target) {
  if (upstream_.socket.is_open()) {
    error_code ignored;
    upstream_.socket.close(ignored);
  }
  upstream_.target = target;
  upstream_.reused = false;
  phase_ = Phase::kConnect;
  SetDeadline(opts_.timeouts.upstream_connect);
  auto [ec] = co_await upstream_.socket.async_connect(target->endpoint, kTuple);
  if (ec) {
    // Passive ejection: the active health check brings it back.
    target->healthy.store(false, std::memory_order_relaxed);
    error_code ignored;
    upstream_.socket.close(ignored);
    timed_out_ = false;
    co_return false;
  }
  error_code ignored;
  upstream_.socket.set_option(tcp::no_delay(true), ignored);
  co_return true;
}

void ClientSession::CountResponse(StatsShard& stats, int status, uint64_t bytes_in,
                                  uint64_t bytes_out) {
  StatsShard::Add(stats.in_flight, -1);
  StatsShard::Add(stats.bytes_in, bytes_in);
  StatsShard::Add(stats.bytes_out, bytes_out);
  stats.RecordResponse(status, ElapsedUs());
}

void ClientSession::Log(const ServiceRoute* route, Color color, const Target* target, int status,
                        uint64_t bytes_in, uint64_t bytes_out) {
  AccessLog& log = worker_.access_log();
  if (!log.enabled()) return;
  AccessRecord r;
  if (route != nullptr) {
    r.service = route->name;
    r.color = ColorName(color);
  }
  if (target != nullptr) r.target = target->address_text;
  r.method = buffers_->method;
  r.path = buffers_->path;
  r.request_id = buffers_->request_id;
  r.status = status;
  r.duration_ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  r.bytes_in = bytes_in;
  r.bytes_out = bytes_out;
  log.Append(r);
}

awaitable<ClientSession::SendResult> ClientSession::OpenAndSend(const ServiceRoute& route,
                                                                Target** target, bool fresh,
                                                                std::string_view first_body) {
  IoBuffers& b = *buffers_;
  bool moved = false;
  for (;;) {
    bool have_conn = false;
    if (!fresh) {
      while (worker_.TakeIdle(*target, upstream_)) {
        // Sending a request that must not be repeated over a connection the
        // target already closed would fail it for nothing: look first.
        if (!idempotent_ && PeerClosed(upstream_.socket)) {
          error_code ignored;
          upstream_.socket.close(ignored);
          continue;
        }
        have_conn = true;
        break;
      }
    }
    if (!have_conn && !co_await ConnectTo(*target)) {
      Target* other = moved ? nullptr : worker_.PickTarget(route, color_, *target);
      if (other == nullptr) co_return SendResult::kConnectFailed;
      moved = true;
      *target = other;
      continue;
    }
    BuildUpstreamHead(**target);
    phase_ = Phase::kRequestBody;
    SetDeadline(opts_.timeouts.upstream_response);
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(b.head_out), asio::buffer(first_body)};
    auto [ec, n] = co_await asio::async_write(upstream_.socket, bufs, kTuple);
    if (!ec) co_return SendResult::kSent;
    error_code ignored;
    upstream_.socket.close(ignored);
    if (upstream_.reused && !fresh && !timed_out_) {
      fresh = true;  // a pooled connection the target had closed
      continue;
    }
    // A fresh connection that fails while the request goes out: the target
    // went away (crashed, restarting). A request that may be repeated gets
    // one other target, as a failed connect does.
    if (idempotent_ && !moved && !timed_out_) {
      if (Target* other = worker_.PickTarget(route, color_, *target); other != nullptr) {
        moved = true;
        fresh = false;
        *target = other;
        continue;
      }
    }
    co_return timed_out_ ? SendResult::kTimedOut : SendResult::kWriteFailed;
  }
}

awaitable<ClientSession::HeadOutcome> ClientSession::ReadResponseHead(ResponseHead& resp,
                                                                      size_t* uend,
                                                                      size_t* head_len,
                                                                      ParseError* perr) {
  IoBuffers& b = *buffers_;
  phase_ = Phase::kResponseHead;
  SetDeadline(opts_.timeouts.upstream_response);
  resp.headers = &b.response_headers;
  *uend = 0;
  for (;;) {
    ParseResult r = ParseResult::kIncomplete;
    if (*uend > 0) {
      r = ParseResponseHead(std::string_view(ubuf_, *uend), worker_.limits(), b.method, resp,
                            head_len, perr);
    }
    if (r == ParseResult::kComplete) {
      if (resp.status == 101 && !req_.websocket) {
        *perr = {502, "unexpected 101 Switching Protocols"};
        co_return HeadOutcome::kBad;
      }
      if (resp.status >= 200 || resp.status == 101) co_return HeadOutcome::kOk;
      // Interim responses (100, 103) are not relayed: the router answered
      // any 100-continue itself.
      std::memmove(ubuf_, ubuf_ + *head_len, *uend - *head_len);
      *uend -= *head_len;
      continue;
    }
    if (r == ParseResult::kError) co_return HeadOutcome::kBad;
    auto [ec, n] = co_await upstream_.socket.async_read_some(
        asio::buffer(ubuf_ + *uend, b.capacity - *uend), kTuple);
    if (ec || n == 0) {
      if (timed_out_) co_return HeadOutcome::kTimedOut;
      co_return *uend == 0 ? HeadOutcome::kClosedSilently : HeadOutcome::kBad;
    }
    *uend += n;
  }
}

awaitable<void> ClientSession::Proxy(const ServiceRoute& route, size_t head_len) {
  IoBuffers& b = *buffers_;
  idempotent_ = IsIdempotentWithoutSideEffects(req_.method);
  const BodyKind body_kind = req_.body;
  uint64_t body_left = req_.content_length;
  const Color color = preview_ ? route.preview : route.live;
  color_ = color;
  if (!preview_ && route.released && route.recent && req_.method == "GET") {
    route.recent->Offer(worker_.index(), req_.path);
  }

  // The request body bytes that arrived with the head. A chunked body is
  // checked before anything reaches a target.
  ChunkedDecoder& chunks = b.request_chunks;
  chunks = ChunkedDecoder();
  const size_t body_start = cbeg_ + head_len;
  size_t prefix = 0;
  bool body_done = body_kind == BodyKind::kNone;
  if (body_kind == BodyKind::kLength) {
    prefix = static_cast<size_t>(std::min<uint64_t>(body_left, cend_ - body_start));
    body_left -= prefix;
    body_done = body_left == 0;
  } else if (body_kind == BodyKind::kChunked) {
    prefix = chunks.Feed(std::string_view(cbuf_ + body_start, cend_ - body_start));
    if (chunks.failed()) {
      worker_.counters().bad_requests.fetch_add(1, std::memory_order_relaxed);
      cbeg_ = cend_;
      close_after_ = true;
      Log(&route, color, nullptr, 400, 0, 0);
      co_await SendOwn(400, chunks.error(), true);
      co_return;
    }
    body_done = chunks.done();
  }
  const std::string_view first_body(cbuf_ + body_start, prefix);

  Target* target = preview_ || route.released ? worker_.PickTarget(route, color, nullptr) : nullptr;
  if (target == nullptr) {
    route.unrouted[static_cast<int>(color)]->shard(worker_.index()).RecordResponse(503, 0);
    close_after_ = close_after_ || !body_done;
    cbeg_ = body_start + prefix;
    Log(&route, color, nullptr, 503, 0, 0);
    b.detail.clear();
    if (preview_ && route.pools[static_cast<int>(color)].empty()) {
      fmt::format_to(std::back_inserter(b.detail),
                     "service '{}' has no release on its idle color ({}) to preview", route.name,
                     ColorName(color));
    } else if (!preview_ && !route.released) {
      fmt::format_to(std::back_inserter(b.detail), "service '{}' has no release live yet",
                     route.name);
    } else {
      fmt::format_to(std::back_inserter(b.detail),
                     "service '{}' has no healthy target on its {} color ({})", route.name,
                     preview_ ? "idle" : "live", ColorName(color));
    }
    co_await SendOwn(503, b.detail, close_after_);
    co_return;
  }

  if (req_.expect_continue && !body_done) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    SetDeadline(opts_.timeouts.client_idle);
    auto [ec, n] = co_await asio::async_write(client_, asio::buffer(kContinue), kTuple);
    if (ec) {
      close_after_ = true;
      co_return;
    }
  }

  uint64_t bytes_in = 0, bytes_out = 0;
  ResponseHead& resp = b.response;
  resp = ResponseHead();
  size_t uend = 0, resp_head_len = 0;
  ParseError& perr = b.response_error;
  perr = ParseError();
  int error_status = 0;
  std::string_view error_what;
  bool upstream_write_failed = false;
  bool fresh = false;
  bool moved_on_close = false;
  StatsShard* stats = nullptr;
  for (;;) {
    SendResult sr = co_await OpenAndSend(route, &target, fresh, first_body);
    stats = &target->stats.shard(worker_.index());
    if (sr != SendResult::kSent) {
      error_status = sr == SendResult::kTimedOut ? 504 : 502;
      error_what = sr == SendResult::kConnectFailed ? "cannot connect" : "cannot send the request";
      cbeg_ = body_start + prefix;
      close_after_ = close_after_ || !body_done;
      break;
    }
    bytes_in += prefix;
    StatsShard::Add(stats->in_flight, 1);
    cbeg_ = body_start + prefix;

    // Relay the rest of the request body.
    while (!body_done) {
      if (cbeg_ == cend_) {
        cbeg_ = cend_ = 0;
        size_t want = b.capacity;
        if (body_kind == BodyKind::kLength && body_left < want) {
          want = static_cast<size_t>(body_left);
        }
        SetDeadline(opts_.timeouts.client_idle);
        auto [ec, n] = co_await client_.async_read_some(asio::buffer(cbuf_, want), kTuple);
        if (ec || n == 0) break;  // the client gave up; nothing to answer
        cend_ = n;
        worker_.Pace();
      }
      std::string_view data(cbuf_ + cbeg_, cend_ - cbeg_);
      size_t take = 0;
      if (body_kind == BodyKind::kLength) {
        take = static_cast<size_t>(std::min<uint64_t>(body_left, data.size()));
        body_left -= take;
        body_done = body_left == 0;
      } else {
        take = chunks.Feed(data);
        if (chunks.failed()) break;
        body_done = chunks.done();
      }
      SetDeadline(opts_.timeouts.upstream_response);
      auto [ec, n] =
          co_await asio::async_write(upstream_.socket, asio::buffer(data.data(), take), kTuple);
      cbeg_ += take;
      bytes_in += take;
      if (ec) {
        upstream_write_failed = true;
        break;
      }
    }
    if (!body_done) {
      close_after_ = true;
      if (!upstream_write_failed) {
        // The client stopped sending or sent a malformed chunk: the target
        // holds an incomplete request, so neither connection can be reused.
        StatsShard::Add(stats->in_flight, -1);
        error_code ignored;
        upstream_.socket.close(ignored);
        if (chunks.failed()) {
          worker_.counters().bad_requests.fetch_add(1, std::memory_order_relaxed);
          Log(&route, color, target, 400, bytes_in, 0);
          co_await SendOwn(400, chunks.error(), true);
        }
        co_return;
      }
      // The target stopped reading; it may still have answered (e.g. 413).
    }

    HeadOutcome ho = co_await ReadResponseHead(resp, &uend, &resp_head_len, &perr);
    if (ho == HeadOutcome::kOk) break;
    StatsShard::Add(stats->in_flight, -1);
    error_code ignored;
    upstream_.socket.close(ignored);
    if (ho == HeadOutcome::kClosedSilently && upstream_.reused && !fresh && idempotent_ &&
        bytes_in == prefix && body_done) {
      // A pooled connection the target closed as the request went out: the
      // request never reached it, so it is sent again on a fresh connection.
      fresh = true;
      continue;
    }
    if (ho == HeadOutcome::kClosedSilently) {
      target->healthy.store(false, std::memory_order_relaxed);  // passive ejection
      // A target that died with the request in hand (a crashed instance):
      // a request that may be repeated goes once to another target.
      Target* other = moved_on_close ? nullptr : worker_.PickTarget(route, color, target);
      if (other != nullptr && idempotent_ && bytes_in == prefix && body_done) {
        moved_on_close = true;
        target = other;
        fresh = false;
        continue;
      }
    }
    error_status = ho == HeadOutcome::kTimedOut ? 504 : 502;
    error_what = ho == HeadOutcome::kTimedOut ? "did not answer in time"
                 : ho == HeadOutcome::kBad    ? perr.reason
                                              : "closed the connection without answering";
    close_after_ = close_after_ || upstream_write_failed;
    break;
  }
  if (error_status != 0) {
    timed_out_ = false;
    StatsShard::Add(stats->proxy_errors, 1);
    stats->RecordResponse(error_status, ElapsedUs());
    Log(&route, color, target, error_status, bytes_in, 0);
    b.detail.clear();
    fmt::format_to(std::back_inserter(b.detail), "{}: {}", target->address_text, error_what);
    co_await SendOwn(error_status, b.detail, close_after_);
    co_return;
  }
  bytes_out += uend;
  co_await RelayResponse(route, target, resp, uend, resp_head_len, upstream_write_failed, bytes_in,
                         bytes_out);
}

awaitable<void> ClientSession::RelayResponse(const ServiceRoute& route, Target* target,
                                             ResponseHead& resp, size_t uend, size_t resp_head_len,
                                             bool upstream_write_failed, uint64_t bytes_in,
                                             uint64_t bytes_out) {
  IoBuffers& b = *buffers_;
  StatsShard* stats = &target->stats.shard(worker_.index());
  const Color color = color_;
  int status = resp.status;
  const bool websocket = resp.status == 101;
  const bool dechunk = resp.body == BodyKind::kChunked && req_.version_minor == 0;
  if (resp.body == BodyKind::kUntilClose || dechunk || upstream_write_failed ||
      worker_.draining()) {
    close_after_ = true;
  }
  BuildResponseHead(resp, close_after_, dechunk);
  phase_ = Phase::kResponseBody;

  const size_t body_avail = uend - resp_head_len;
  char* body_ptr = ubuf_ + resp_head_len;
  uint64_t resp_left = resp.content_length;
  ChunkedDecoder resp_chunks;
  bool resp_done = resp.body == BodyKind::kNone;
  bool reusable = !resp.connection.close && resp.version_minor >= 1 && !websocket &&
                  resp.body != BodyKind::kUntilClose && !upstream_write_failed;
  uint64_t sent = 0;

  // Frames the body bytes in [ptr, ptr+len): returns how many belong to this
  // response and sets *out_len to the bytes to send (decoded in place when
  // an HTTP/1.0 client cannot take chunks).
  auto frame = [&](char* ptr, size_t len, size_t* out_len) -> size_t {
    size_t take = 0;
    switch (resp.body) {
      case BodyKind::kLength:
        take = static_cast<size_t>(std::min<uint64_t>(resp_left, len));
        resp_left -= take;
        resp_done = resp_left == 0;
        *out_len = take;
        break;
      case BodyKind::kChunked:
        if (dechunk) {
          size_t w = 0;
          take = resp_chunks.Feed(std::string_view(ptr, len), [&](std::string_view d) {
            std::memmove(ptr + w, d.data(), d.size());
            w += d.size();
          });
          *out_len = w;
        } else {
          take = resp_chunks.Feed(std::string_view(ptr, len));
          *out_len = take;
        }
        resp_done = resp_chunks.done();
        break;
      case BodyKind::kUntilClose:
        take = len;
        *out_len = len;
        break;
      case BodyKind::kNone:
        *out_len = 0;
        break;
    }
    return take;
  };

  size_t out_len = 0;
  if (!websocket && frame(body_ptr, body_avail, &out_len) < body_avail) {
    reusable = false;  // the target sent bytes past the end of its response
  }
  // The answer is counted once the target has sent all of it, before its
  // last bytes go out: a client that reads the metrics right after the
  // response finds it counted.
  bool counted = false;
  if (resp_done && !websocket) {
    CountResponse(*stats, status, bytes_in, bytes_out);
    counted = true;
  }
  bool client_gone = false;
  {
    SetDeadline(opts_.timeouts.client_idle);
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(b.head_out),
                                              asio::buffer(body_ptr, out_len)};
    auto [ec, n] = co_await asio::async_write(client_, bufs, kTuple);
    sent += n;
    client_gone = static_cast<bool>(ec);
  }

  if (websocket && !client_gone) {
    StatsShard::Add(stats->in_flight, -1);
    stats->RecordResponse(101, ElapsedUs());
    Log(&route, color, target, 101, bytes_in, sent);
    close_after_ = true;
    tunnel_target_ = target;
    tunnel_drain_ = route.drain_timeout;
    // Bytes either side sent right after the upgrade go first.
    if (cend_ > cbeg_) {
      auto [ec, n] = co_await asio::async_write(upstream_.socket,
                                                asio::buffer(cbuf_ + cbeg_, cend_ - cbeg_), kTuple);
      cbeg_ = cend_;
      if (ec) co_return;
    }
    if (body_avail > 0) {
      auto [ec, n] =
          co_await asio::async_write(client_, asio::buffer(body_ptr, body_avail), kTuple);
      if (ec) co_return;
    }
    co_await Tunnel();
    co_return;
  }

  while (!resp_done && !client_gone && !resp_chunks.failed()) {
    SetDeadline(opts_.timeouts.upstream_response);
    size_t want = b.capacity;
    if (resp.body == BodyKind::kLength && resp_left < want) want = static_cast<size_t>(resp_left);
    auto [ec, n] = co_await upstream_.socket.async_read_some(asio::buffer(ubuf_, want), kTuple);
    worker_.Pace();
    if (ec) {
      if (resp.body == BodyKind::kUntilClose && ec == asio::error::eof) {
        resp_done = true;
      } else {
        // The target failed mid-response: the client's response is cut
        // short, so its connection is closed; the target is suspect.
        if (!timed_out_) target->healthy.store(false, std::memory_order_relaxed);
        StatsShard::Add(stats->proxy_errors, 1);
        close_after_ = true;
      }
      reusable = false;
      break;
    }
    bytes_out += n;
    if (frame(ubuf_, n, &out_len) < n || resp_chunks.failed()) reusable = false;
    if (resp_done) {
      CountResponse(*stats, status, bytes_in, bytes_out);
      counted = true;
    }
    SetDeadline(opts_.timeouts.client_idle);
    auto [wec, wn] = co_await asio::async_write(client_, asio::buffer(ubuf_, out_len), kTuple);
    sent += wn;
    client_gone = static_cast<bool>(wec);
  }
  if (client_gone || resp_chunks.failed()) {
    close_after_ = true;
    reusable = false;
  }
  timed_out_ = false;

  if (!counted) CountResponse(*stats, status, bytes_in, bytes_out);
  Log(&route, color, target, status, bytes_in, sent);

  if (reusable && resp_done) {
    // A moved-from socket is closed and keeps its executor: upstream_ is
    // ready for the next connection without constructing a new socket.
    worker_.ReturnIdle(std::move(upstream_));
  } else {
    error_code ignored;
    upstream_.socket.close(ignored);
  }
}

awaitable<void> ClientSession::Pump(Stream& from, Stream& to, char* buf, size_t cap) {
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buf, cap), kTuple);
    if (ec || n == 0) co_return;
    worker_.Pace();
    auto [wec, wn] = co_await asio::async_write(to, asio::buffer(buf, n), kTuple);
    if (wec) co_return;
  }
}

awaitable<void> ClientSession::Tunnel() {
  using namespace asio::experimental::awaitable_operators;
  phase_ = Phase::kTunnel;
  deadline = SteadyTime::max();
  // A switch that happened while the upgrade was answered still drains it.
  OnTable(worker_.table());
  IoBuffers& b = *buffers_;
  co_await (Pump(client_, upstream_.socket, cbuf_, b.capacity) ||
            Pump(upstream_.socket, client_, ubuf_, b.capacity));
  error_code ignored;
  upstream_.socket.close(ignored);
  tunnel_target_ = nullptr;
}

}  // namespace

void StartClientSession(Worker& worker, Stream client, bool preview) {
  // Built here, on the heap: a coroutine's closure lives as long as the
  // coroutine, and one that captured the Stream would keep its moved-from
  // shell (0.7 KiB) for as long as the connection lasts.
  auto session = std::make_unique<ClientSession>(worker, std::move(client), preview);
  asio::co_spawn(
      worker.context().get_executor(),
      [s = std::move(session)]() -> awaitable<void> { co_await s->Run(); }, asio::detached);
}

}  // namespace cutover
