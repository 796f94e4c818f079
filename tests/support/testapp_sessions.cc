#include "support/testapp_sessions.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace cutover::test {
namespace {

class MemorySessions : public SessionStore {
 public:
  Status Add(std::string_view sid, std::string_view item) override {
    carts_[std::string(sid)].emplace_back(item);
    return {};
  }
  Result<std::vector<std::string>> Items(std::string_view sid) override {
    auto it = carts_.find(std::string(sid));
    if (it == carts_.end()) return std::vector<std::string>{};
    return it->second;
  }

 private:
  std::map<std::string, std::vector<std::string>> carts_;
};

// One line "sid item" per addition. Every addition is one O_APPEND write, so
// lines from several processes never interleave; reads take the whole file,
// so each instance sees the others' writes at once.
class FileSessions : public SessionStore {
 public:
  explicit FileSessions(std::string path) : path_(std::move(path)) {}

  Status Add(std::string_view sid, std::string_view item) override {
    std::string line = std::string(sid) + " " + std::string(item) + "\n";
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return MakeError(ErrorCode::kIo, "open " + path_ + ": " + std::strerror(errno));
    ssize_t n = ::write(fd, line.data(), line.size());
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(line.size())) {
      return MakeError(ErrorCode::kIo, "append " + path_ + ": " + std::strerror(err));
    }
    return {};
  }

  Result<std::vector<std::string>> Items(std::string_view sid) override {
    std::vector<std::string> out;
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return out;
      return MakeError(ErrorCode::kIo, "open " + path_ + ": " + std::strerror(errno));
    }
    std::string text;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    std::string_view rest = text;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      size_t sp = line.find(' ');
      if (sp != std::string_view::npos && line.substr(0, sp) == sid) {
        out.emplace_back(line.substr(sp + 1));
      }
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
    return out;
  }

 private:
  std::string path_;
};

}  // namespace

Result<std::unique_ptr<SessionStore>> SessionStore::Open(std::string_view spec) {
  if (spec == "memory") return std::make_unique<MemorySessions>();
  if (spec.starts_with("file:") && spec.size() > 5) {
    return std::make_unique<FileSessions>(std::string(spec.substr(5)));
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "--sessions: want memory or file:PATH, got '" + std::string(spec) + "'");
}

std::string NewSessionId() {
  static std::mt19937_64 rng{std::random_device{}()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace cutover::test
