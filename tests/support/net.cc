#include "support/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <thread>

#include "support/temp_dir.h"

namespace cutover::test {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Reset(other.fd_);
    other.fd_ = -1;
  }
  return *this;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

namespace {

// Binds a socket of its own to a free port of 127.0.0.1; the port stays
// taken while `fd` is open.
Result<uint16_t> BindFreePort(UniqueFd& fd) {
  fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, std::string("socket: ") + strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return MakeError(ErrorCode::kIo, std::string("bind: ") + strerror(errno));
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return MakeError(ErrorCode::kIo, std::string("getsockname: ") + strerror(errno));
  }
  return ntohs(addr.sin_port);
}

}  // namespace

Result<uint16_t> FreePort() {
  UniqueFd fd;
  return BindFreePort(fd);
}

Result<std::vector<uint16_t>> FreePorts(size_t n) {
  std::vector<UniqueFd> held(n);
  std::vector<uint16_t> ports;
  for (UniqueFd& fd : held) {
    Result<uint16_t> port = BindFreePort(fd);
    if (!port) return std::unexpected(port.error());
    ports.push_back(*port);
  }
  return ports;
}

namespace {

// One connect attempt to one address; the socket stays non-blocking.
Result<UniqueFd> ConnectOne(const addrinfo& ai, Deadline deadline) {
  UniqueFd fd(::socket(ai.ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return MakeError(ErrorCode::kIo, std::string("socket: ") + strerror(errno));
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) == 0) return fd;
  if (errno != EINPROGRESS) {
    return MakeError(ErrorCode::kUnavailable, std::string("connect: ") + strerror(errno));
  }
  pollfd p{fd.get(), POLLOUT, 0};
  int r;
  do {
    r = ::poll(&p, 1, MillisUntil(deadline));
  } while (r < 0 && errno == EINTR);
  if (r == 0) return MakeError(ErrorCode::kTimeout, "connect: timed out");
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return MakeError(ErrorCode::kUnavailable, std::string("connect: ") + strerror(err));
  return fd;
}

}  // namespace

Result<UniqueFd> ConnectTcp(std::string_view host, uint16_t port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  std::string host_str(host);
  std::string port_str = std::to_string(port);
  int rc = ::getaddrinfo(host_str.c_str(), port_str.c_str(), &hints, &list);
  if (rc != 0) {
    return MakeError(ErrorCode::kUnavailable, "resolve " + host_str + ": " + gai_strerror(rc));
  }
  Result<UniqueFd> last = MakeError(ErrorCode::kUnavailable, "no address for " + host_str);
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    last = ConnectOne(*ai, deadline);
    if (last) break;
  }
  ::freeaddrinfo(list);
  if (!last) {
    return std::unexpected(last.error().Wrap(host_str + ":" + port_str));
  }
  return last;
}

bool WaitForPort(std::string_view host, uint16_t port, Deadline deadline) {
  return WaitUntil(
      [&] {
        auto attempt = std::min(deadline, DeadlineIn(std::chrono::seconds(1)));
        return ConnectTcp(host, port, attempt).has_value();
      },
      deadline);
}

std::optional<std::string> WaitForFile(const std::string& path, Deadline deadline) {
  std::optional<std::string> out;
  WaitUntil(
      [&] {
        auto text = ReadFile(path);
        if (!text) return false;
        while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back()))) {
          text->pop_back();
        }
        if (text->empty()) return false;
        out = std::move(*text);
        return true;
      },
      deadline);
  return out;
}

std::optional<uint16_t> WaitForPortFile(const std::string& path, Deadline deadline) {
  auto text = WaitForFile(path, deadline);
  if (!text) return std::nullopt;
  uint16_t port = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), port);
  if (ec != std::errc() || ptr != text->data() + text->size() || port == 0) return std::nullopt;
  return port;
}

}  // namespace cutover::test
