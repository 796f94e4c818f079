#include "stores.h"

namespace shop {

std::string RedactUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t start = scheme + 3;
  const size_t at = url.find('@', start);
  const size_t slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return url;
  const size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string OrderColumns::List() const {
  std::string out;
  if (note) out += ", note";
  if (gift_message) out += ", gift_message";
  return out;
}

Result<Stores> OpenStores(const StoreOptions& options) {
  Stores stores;
  if (options.redis_url.empty()) {
    stores.carts = NewSqliteCartStore(options.sqlite_path);
  } else {
    Result<RedisAddress> address = ParseRedisUrl(options.redis_url);
    if (!address) return std::unexpected(address.error());
    stores.carts = NewRedisCartStore(std::move(*address));
  }
  if (options.database_url.empty()) {
    stores.orders = NewSqliteOrderStore(options.sqlite_path, options.columns);
  } else {
    stores.orders = NewPostgresOrderStore(options.database_url, options.columns);
  }
  return stores;
}

}  // namespace shop
