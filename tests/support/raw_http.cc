#include "support/raw_http.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace cutover::test {
namespace {

constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxHead = 1024 * 1024;

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool IContainsToken(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (IEquals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<HeaderList> ParseHeaderLines(const std::vector<std::string>& lines) {
  HeaderList out;
  for (const std::string& line : lines) {
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      if (out.empty()) return MakeError(ErrorCode::kIo, "bad header line: " + line);
      out.back().second.push_back(' ');
      out.back().second.append(Trim(line));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      return MakeError(ErrorCode::kIo, "bad header line: " + line);
    }
    out.emplace_back(line.substr(0, colon),
                     std::string(Trim(std::string_view(line).substr(colon + 1))));
  }
  return out;
}

}  // namespace

std::optional<std::string> RawResponse::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> RawResponse::Headers(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers) {
    if (IEquals(k, name)) out.push_back(v);
  }
  return out;
}

bool RawResponse::KeepAlive() const {
  if (until_close) return false;
  for (const std::string& v : Headers("Connection")) {
    if (IContainsToken(v, "close")) return false;
    if (IContainsToken(v, "keep-alive")) return true;
  }
  return version != "HTTP/1.0";
}

Result<RawConn> RawConn::Connect(std::string_view host, uint16_t port, Deadline deadline) {
  auto fd = ConnectTcp(host, port, deadline);
  if (!fd) return std::unexpected(fd.error());
  return RawConn(std::move(*fd));
}

Status RawConn::Send(std::string_view bytes, Deadline deadline) {
  if (!fd_.valid()) return MakeError(ErrorCode::kIo, "send: connection is closed");
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_.get(), POLLOUT, 0};
      int r = ::poll(&p, 1, MillisUntil(deadline));
      if (r == 0) return MakeError(ErrorCode::kTimeout, "send: timed out");
      continue;
    }
    return MakeError(ErrorCode::kIo, std::string("send: ") + std::strerror(errno));
  }
  return {};
}

void RawConn::ShutdownWrite() {
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_WR);
}

void RawConn::Consume(size_t n) {
  consumed_ += n;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
}

Result<RawConn::Fill> RawConn::FillBuffer(Deadline deadline) {
  if (!fd_.valid()) return MakeError(ErrorCode::kIo, "read: connection is closed");
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  char chunk[65536];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      bytes_received_ += static_cast<uint64_t>(n);
      return Fill::kData;
    }
    if (n == 0) return Fill::kClosed;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return MakeError(ErrorCode::kUnavailable, "connection reset by peer");
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return MakeError(ErrorCode::kIo, std::string("recv: ") + std::strerror(errno));
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, MillisUntil(deadline));
    if (r == 0) return MakeError(ErrorCode::kTimeout, "timed out reading");
  }
}

Result<bool> RawConn::Need(size_t n, Deadline deadline) {
  while (Buffered().size() < n) {
    auto fill = FillBuffer(deadline);
    if (!fill) return std::unexpected(fill.error());
    if (*fill == Fill::kClosed) return false;
  }
  return true;
}

Result<std::optional<std::string>> RawConn::ReadLine(Deadline deadline, size_t limit) {
  size_t scanned = 0;
  for (;;) {
    std::string_view buffered = Buffered();
    size_t nl = buffered.find('\n', scanned);
    if (nl != std::string_view::npos) {
      std::string line(buffered.substr(0, nl));
      if (!line.empty() && line.back() == '\r') line.pop_back();
      Consume(nl + 1);
      return std::optional<std::string>(std::move(line));
    }
    if (buffered.size() > limit) return MakeError(ErrorCode::kIo, "line too long");
    scanned = buffered.size();
    auto fill = FillBuffer(deadline);
    if (!fill) return std::unexpected(fill.error());
    if (*fill == Fill::kClosed) {
      if (Buffered().empty()) return std::optional<std::string>();
      return MakeError(ErrorCode::kIo, "connection closed in the middle of a line");
    }
  }
}

Result<RawResponse> RawConn::ReadResponse(Deadline deadline, ReadOptions options) {
  RawResponse res;
  uint64_t received_before = bytes_received_ - Buffered().size();
  auto context = [&](const Error& e) {
    return std::unexpected(
        e.Wrap("after " + std::to_string(bytes_received_ - received_before) + " response bytes"));
  };

  auto status_line = ReadLine(deadline, kMaxLine);
  if (!status_line) return context(status_line.error());
  if (!*status_line) {
    return MakeError(ErrorCode::kUnavailable, "connection closed before a response");
  }
  {
    std::string_view s = **status_line;
    size_t sp1 = s.find(' ');
    if (sp1 == std::string_view::npos || !s.starts_with("HTTP/")) {
      return MakeError(ErrorCode::kIo, "bad status line: " + std::string(s));
    }
    res.version = std::string(s.substr(0, sp1));
    std::string_view rest = s.substr(sp1 + 1);
    size_t sp2 = rest.find(' ');
    std::string_view code = rest.substr(0, sp2);
    auto [ptr, ec] = std::from_chars(code.data(), code.data() + code.size(), res.status);
    if (ec != std::errc() || ptr != code.data() + code.size() || code.size() != 3) {
      return MakeError(ErrorCode::kIo, "bad status line: " + std::string(s));
    }
    if (sp2 != std::string_view::npos) res.reason = std::string(rest.substr(sp2 + 1));
  }

  std::vector<std::string> lines;
  size_t head_size = 0;
  for (;;) {
    auto line = ReadLine(deadline, kMaxLine);
    if (!line) return context(line.error());
    if (!*line) return context(Error{ErrorCode::kIo, "connection closed in the response head"});
    if ((*line)->empty()) break;
    head_size += (*line)->size();
    if (head_size > kMaxHead) return MakeError(ErrorCode::kIo, "response head too large");
    lines.push_back(std::move(**line));
  }
  auto headers = ParseHeaderLines(lines);
  if (!headers) return std::unexpected(headers.error());
  res.headers = std::move(*headers);

  // Moves `n` body bytes out of the connection.
  auto read_body = [&](uint64_t n) -> Status {
    while (n > 0) {
      if (Buffered().empty()) {
        auto fill = FillBuffer(deadline);
        if (!fill) return std::unexpected(fill.error());
        if (*fill == Fill::kClosed) {
          return MakeError(ErrorCode::kIo, "connection closed in the response body after " +
                                               std::to_string(res.body_bytes) + " bytes");
        }
      }
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, Buffered().size()));
      if (!options.discard_body) res.body.append(Buffered().substr(0, take));
      res.body_bytes += take;
      Consume(take);
      n -= take;
    }
    return {};
  };

  if (options.head_request || res.status / 100 == 1 || res.status == 204 || res.status == 304) {
    return res;
  }
  auto te = res.Header("Transfer-Encoding");
  if (te && IContainsToken(*te, "chunked")) {
    res.chunked = true;
    for (;;) {
      auto size_line = ReadLine(deadline, kMaxLine);
      if (!size_line) return context(size_line.error());
      if (!*size_line) return context(Error{ErrorCode::kIo, "connection closed between chunks"});
      std::string_view s = Trim(std::string_view(**size_line).substr(0, (*size_line)->find(';')));
      uint64_t size = 0;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), size, 16);
      if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
        return MakeError(ErrorCode::kIo, "bad chunk size line: " + **size_line);
      }
      if (size == 0) break;
      if (auto st = read_body(size); !st) return context(st.error());
      auto crlf = ReadLine(deadline, 2);
      if (!crlf) return context(crlf.error());
      if (!*crlf || !(*crlf)->empty()) {
        return MakeError(ErrorCode::kIo, "chunk data not followed by CRLF");
      }
    }
    std::vector<std::string> trailer_lines;
    for (;;) {
      auto line = ReadLine(deadline, kMaxLine);
      if (!line) return context(line.error());
      if (!*line) return context(Error{ErrorCode::kIo, "connection closed in the trailers"});
      if ((*line)->empty()) break;
      trailer_lines.push_back(std::move(**line));
    }
    auto trailers = ParseHeaderLines(trailer_lines);
    if (!trailers) return std::unexpected(trailers.error());
    res.trailers = std::move(*trailers);
    return res;
  }
  if (auto cl = res.Header("Content-Length")) {
    uint64_t length = 0;
    auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
    if (cl->empty() || ec != std::errc() || ptr != cl->data() + cl->size()) {
      return MakeError(ErrorCode::kIo, "bad Content-Length: " + *cl);
    }
    if (auto st = read_body(length); !st) return context(st.error());
    return res;
  }
  res.until_close = true;
  for (;;) {
    if (!Buffered().empty()) {
      if (!options.discard_body) res.body.append(Buffered());
      res.body_bytes += Buffered().size();
      Consume(Buffered().size());
    }
    auto fill = FillBuffer(deadline);
    if (!fill) return context(fill.error());
    if (*fill == Fill::kClosed) return res;
  }
}

Result<std::string> RawConn::ReadUntilClose(Deadline deadline) {
  for (;;) {
    auto fill = FillBuffer(deadline);
    if (!fill && fill.error().code != ErrorCode::kUnavailable) return std::unexpected(fill.error());
    if (!fill || *fill == Fill::kClosed) {
      std::string out(Buffered());
      Consume(out.size());
      return out;
    }
  }
}

bool RawConn::ClosedByPeer(Deadline deadline) {
  for (;;) {
    auto fill = FillBuffer(deadline);
    if (!fill) return fill.error().code == ErrorCode::kUnavailable;  // reset
    if (*fill == Fill::kClosed) return true;
  }
}

std::string BuildRequest(std::string_view method, std::string_view target,
                         std::string_view host_header, const HeaderList& headers,
                         std::string_view body) {
  std::string out;
  out.reserve(128 + body.size());
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  out.append("Host: ").append(host_header).append("\r\n");
  bool framed = false;
  for (const auto& [k, v] : headers) {
    if (IEquals(k, "Content-Length") || IEquals(k, "Transfer-Encoding")) framed = true;
    out.append(k).append(": ").append(v).append("\r\n");
  }
  if (!body.empty() && !framed) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n");
  out.append(body);
  return out;
}

Result<RawResponse> HttpRequest(std::string_view host, uint16_t port, std::string_view method,
                                std::string_view target, std::string_view host_header,
                                const HeaderList& headers, std::string_view body,
                                Deadline deadline) {
  auto conn = RawConn::Connect(host, port, deadline);
  if (!conn) return std::unexpected(conn.error());
  HeaderList all = headers;
  if (std::none_of(all.begin(), all.end(),
                   [](const auto& h) { return IEquals(h.first, "Connection"); })) {
    all.emplace_back("Connection", "close");
  }
  if (auto st = conn->Send(BuildRequest(method, target, host_header, all, body), deadline); !st) {
    return std::unexpected(st.error());
  }
  return conn->ReadResponse(deadline, ReadOptions{.head_request = method == "HEAD"});
}

Result<RawResponse> HttpGet(std::string_view host, uint16_t port, std::string_view target,
                            std::string_view host_header, const HeaderList& extra_headers,
                            Deadline deadline) {
  return HttpRequest(host, port, "GET", target, host_header, extra_headers, {}, deadline);
}

}  // namespace cutover::test
