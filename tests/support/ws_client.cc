#include "support/ws_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

namespace cutover::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

struct WsClient::Impl {
  asio::io_context ioc{1};
  websocket::stream<tcp::socket> ws{ioc};
  beast::flat_buffer buffer;
  websocket::response_type handshake;
  bool broken = false;

  // Runs the loop until `done` or `deadline`; on timeout closes the socket
  // (completing the pending operation with an error) and reports it.
  Status Run(const bool& done, Deadline deadline, std::string_view what) {
    ioc.restart();
    while (!done && ioc.run_one_until(deadline) > 0) {
    }
    if (done) return {};
    beast::error_code ignored;
    ws.next_layer().close(ignored);
    ioc.restart();
    ioc.run();
    broken = true;
    return MakeError(ErrorCode::kTimeout, std::string(what) + ": timed out");
  }

  Status Usable() const {
    if (broken) return MakeError(ErrorCode::kIo, "websocket connection is closed");
    return {};
  }
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WsClient::WsClient(WsClient&&) noexcept = default;
WsClient& WsClient::operator=(WsClient&&) noexcept = default;
WsClient::~WsClient() = default;

Result<WsClient> WsClient::Connect(std::string_view host, uint16_t port, std::string_view target,
                                   std::string_view host_header, const HeaderList& headers,
                                   Deadline deadline) {
  auto impl = std::make_unique<Impl>();
  tcp::resolver resolver(impl->ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec)
    return MakeError(ErrorCode::kUnavailable, "resolve " + std::string(host) + ": " + ec.message());

  bool done = false;
  asio::async_connect(impl->ws.next_layer(), endpoints,
                      [&](beast::error_code e, const tcp::endpoint&) {
                        ec = e;
                        done = true;
                      });
  if (auto st = impl->Run(done, deadline, "connect"); !st) return std::unexpected(st.error());
  if (ec) return MakeError(ErrorCode::kUnavailable, "connect: " + ec.message());
  impl->ws.next_layer().set_option(tcp::no_delay(true), ec);

  impl->ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
    for (const auto& [k, v] : headers) req.set(k, v);
  }));
  done = false;
  impl->ws.async_handshake(impl->handshake, host_header, target, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (auto st = impl->Run(done, deadline, "websocket handshake"); !st) {
    return std::unexpected(st.error());
  }
  if (ec) {
    std::string msg = "websocket handshake: " + ec.message();
    if (impl->handshake.result_int() != 0) {
      msg += " (status " + std::to_string(impl->handshake.result_int()) + ")";
    }
    return MakeError(ErrorCode::kUnavailable, msg);
  }
  return WsClient(std::move(impl));
}

Status WsClient::Send(std::string_view text, Deadline deadline) {
  if (auto st = impl_->Usable(); !st) return st;
  impl_->ws.text(true);
  bool done = false;
  beast::error_code ec;
  impl_->ws.async_write(asio::buffer(text.data(), text.size()),
                        [&](beast::error_code e, std::size_t) {
                          ec = e;
                          done = true;
                        });
  if (auto st = impl_->Run(done, deadline, "websocket write"); !st) return st;
  if (ec) {
    impl_->broken = true;
    return MakeError(ErrorCode::kIo, "websocket write: " + ec.message());
  }
  return {};
}

Result<std::string> WsClient::Read(Deadline deadline) {
  if (auto st = impl_->Usable(); !st) return std::unexpected(st.error());
  bool done = false;
  beast::error_code ec;
  impl_->ws.async_read(impl_->buffer, [&](beast::error_code e, std::size_t) {
    ec = e;
    done = true;
  });
  if (auto st = impl_->Run(done, deadline, "websocket read"); !st) {
    return std::unexpected(st.error());
  }
  if (ec) {
    impl_->broken = true;
    ErrorCode code = ec == websocket::error::closed ? ErrorCode::kUnavailable : ErrorCode::kIo;
    return MakeError(code, "websocket read: " + ec.message());
  }
  std::string out = beast::buffers_to_string(impl_->buffer.data());
  impl_->buffer.consume(impl_->buffer.size());
  return out;
}

Status WsClient::Close(Deadline deadline) {
  if (auto st = impl_->Usable(); !st) return st;
  bool done = false;
  beast::error_code ec;
  impl_->ws.async_close(websocket::close_code::normal, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (auto st = impl_->Run(done, deadline, "websocket close"); !st) return st;
  impl_->broken = true;
  if (ec) return MakeError(ErrorCode::kIo, "websocket close: " + ec.message());
  return {};
}

std::optional<std::string> WsClient::HandshakeHeader(std::string_view name) const {
  auto it = impl_->handshake.find(name);
  if (it == impl_->handshake.end()) return std::nullopt;
  return std::string(it->value());
}

}  // namespace cutover::test
