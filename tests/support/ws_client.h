// WsClient: a small blocking WebSocket client (text messages) for tests that
// check Upgrade tunnelling through the router. Each call takes a deadline; a
// call that times out closes the connection. One owner thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "support/raw_http.h"
#include "support/wait.h"

namespace cutover::test {

class WsClient {
 public:
  // Connects to host:port and performs the opening handshake for `target`
  // with the given Host header and extra request headers. A server that does
  // not switch protocols yields an error naming the status it answered.
  static Result<WsClient> Connect(std::string_view host, uint16_t port, std::string_view target,
                                  std::string_view host_header = "localhost",
                                  const HeaderList& headers = {},
                                  Deadline deadline = DeadlineIn(std::chrono::seconds(10)));

  WsClient(WsClient&&) noexcept;
  WsClient& operator=(WsClient&&) noexcept;
  ~WsClient();

  // Sends one text message.
  Status Send(std::string_view text, Deadline deadline = DeadlineIn(std::chrono::seconds(10)));
  // Reads one whole message. Fails when the peer closes or resets.
  Result<std::string> Read(Deadline deadline = DeadlineIn(std::chrono::seconds(10)));
  // Sends a close frame and waits for the peer's.
  Status Close(Deadline deadline = DeadlineIn(std::chrono::seconds(10)));

  // The 101 response's headers, e.g. X-Served-By.
  std::optional<std::string> HandshakeHeader(std::string_view name) const;

 private:
  struct Impl;
  explicit WsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cutover::test
