// A blocking HTTP/1.1 client over a raw TCP socket, for tests that must see
// exactly what goes over the wire: hand-written (also malformed) requests,
// pipelining, keep-alive reuse, and whether the peer closed the connection.
// Every read and write takes a deadline. A RawConn belongs to one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "support/net.h"
#include "support/wait.h"

namespace cutover::test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RawResponse {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  HeaderList headers;   // in order, names as received
  HeaderList trailers;  // chunked trailers, if any
  std::string body;     // decoded (de-chunked); empty when discarded
  uint64_t body_bytes = 0;
  bool chunked = false;
  bool until_close = false;  // body delimited by the peer closing

  // First value of a header, case-insensitive name.
  std::optional<std::string> Header(std::string_view name) const;
  // Every value of a header, in order.
  std::vector<std::string> Headers(std::string_view name) const;
  bool Has(std::string_view name) const { return Header(name).has_value(); }
  // Whether the server keeps the connection open after this response.
  bool KeepAlive() const;
};

struct ReadOptions {
  bool head_request = false;  // the response to HEAD has no body
  bool discard_body = false;  // count body bytes without keeping them
};

class RawConn {
 public:
  static Result<RawConn> Connect(std::string_view host, uint16_t port,
                                 Deadline deadline = DeadlineIn(std::chrono::seconds(10)));

  RawConn(RawConn&&) noexcept = default;
  RawConn& operator=(RawConn&&) noexcept = default;

  // Writes all of `bytes`.
  Status Send(std::string_view bytes, Deadline deadline = DeadlineIn(std::chrono::seconds(10)));
  // Reads one response: status line, headers, and a body delimited by
  // Content-Length, chunked encoding, or the peer closing. 1xx, 204 and 304
  // responses have no body. Bytes after the response stay buffered for the
  // next call. Fails on timeout, reset, or a connection closed mid-response.
  Result<RawResponse> ReadResponse(Deadline deadline, ReadOptions options = {});
  // Everything until the peer closes (buffered bytes included). A reset
  // counts as a close.
  Result<std::string> ReadUntilClose(Deadline deadline);
  // True if the peer closes (or resets) the connection before `deadline`.
  // Bytes that arrive meanwhile are buffered, not treated as a close.
  bool ClosedByPeer(Deadline deadline);
  // Half-closes the sending side (the peer reads end of stream).
  void ShutdownWrite();
  void Close() { fd_.Reset(); }

  // Bytes received from the socket so far.
  uint64_t bytes_received() const { return bytes_received_; }
  int fd() const { return fd_.get(); }

 private:
  explicit RawConn(UniqueFd fd) : fd_(std::move(fd)) {}
  enum class Fill { kData, kClosed };
  // Reads more bytes into the buffer.
  Result<Fill> FillBuffer(Deadline deadline);
  std::string_view Buffered() const { return std::string_view(buffer_).substr(consumed_); }
  void Consume(size_t n);
  // Ensures at least `n` buffered bytes; false when the peer closed first.
  Result<bool> Need(size_t n, Deadline deadline);
  // Returns a CRLF-terminated line (without CRLF); nullopt if the peer closed.
  Result<std::optional<std::string>> ReadLine(Deadline deadline, size_t limit);

  UniqueFd fd_;
  std::string buffer_;
  size_t consumed_ = 0;
  uint64_t bytes_received_ = 0;
};

// Builds "METHOD target HTTP/1.1" with Host, `headers` and, when `body` is
// not empty, Content-Length (unless `headers` already set a length or
// Transfer-Encoding).
std::string BuildRequest(std::string_view method, std::string_view target,
                         std::string_view host_header, const HeaderList& headers = {},
                         std::string_view body = {});

// One request on a fresh connection with "Connection: close".
Result<RawResponse> HttpRequest(std::string_view host, uint16_t port, std::string_view method,
                                std::string_view target, std::string_view host_header,
                                const HeaderList& headers = {}, std::string_view body = {},
                                Deadline deadline = DeadlineIn(std::chrono::seconds(10)));

Result<RawResponse> HttpGet(std::string_view host, uint16_t port, std::string_view target,
                            std::string_view host_header = "localhost",
                            const HeaderList& extra_headers = {},
                            Deadline deadline = DeadlineIn(std::chrono::seconds(10)));

}  // namespace cutover::test
