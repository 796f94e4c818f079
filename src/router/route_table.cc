#include "router/route_table.h"

#include <algorithm>

namespace cutover {

std::string_view NormalizeHost(std::string_view host, char (&out)[256]) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // "example.com."
  if (host.size() >= sizeof(out)) return {};
  for (size_t i = 0; i < host.size(); ++i) {
    char c = host[i];
    out[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  return std::string_view(out, host.size());
}

bool PathHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (!path.starts_with(prefix)) return false;
  if (prefix.back() == '/' || path.size() == prefix.size()) return true;
  char next = path[prefix.size()];
  return next == '/' || next == '?';
}

RouteTable::RouteTable(uint64_t version, std::vector<ServiceRoute> services)
    : version_(version), services_(std::move(services)) {
  for (size_t i = 0; i < services_.size(); ++i) {
    ServiceRoute& s = services_[i];
    s.index = static_cast<uint32_t>(i);
    for (const std::string& h : s.hosts) {
      if (h == "*") {
        wildcard_.push_back(&s);
      } else {
        by_host_[h].push_back(&s);
      }
    }
    for (const TargetPtr& t : s.live_pool()) live_targets_.push_back(t.get());
  }
  auto longer_first = [](const ServiceRoute* a, const ServiceRoute* b) {
    return a->path_prefix.size() > b->path_prefix.size();
  };
  for (auto& [host, list] : by_host_) std::stable_sort(list.begin(), list.end(), longer_first);
  std::stable_sort(wildcard_.begin(), wildcard_.end(), longer_first);
  std::sort(live_targets_.begin(), live_targets_.end());
}

const ServiceRoute* RouteTable::Match(std::string_view host, std::string_view path) const {
  char buf[256];
  std::string_view h = NormalizeHost(host, buf);
  if (auto it = by_host_.find(h); it != by_host_.end()) {
    for (const ServiceRoute* s : it->second) {
      if (PathHasPrefix(path, s->path_prefix)) return s;
    }
  }
  for (const ServiceRoute* s : wildcard_) {
    if (PathHasPrefix(path, s->path_prefix)) return s;
  }
  return nullptr;
}

bool RouteTable::Routes(const Target* target) const {
  return std::binary_search(live_targets_.begin(), live_targets_.end(), target);
}

}  // namespace cutover
