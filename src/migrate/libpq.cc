#include "migrate/libpq.h"

#include <dlfcn.h>

#include <string>

namespace cutover {
namespace {

LibPq loaded;

Result<const LibPq*> Load() {
  constexpr const char* kName = "libpq.so.5";
  void* handle = ::dlopen(kName, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return MakeError(ErrorCode::kUnavailable, std::string("PostgreSQL needs its client library ") +
                                                  kName +
                                                  " (Debian package libpq5): " + ::dlerror());
  }
#define CUTOVER_LIBPQ_LOAD(name)                                                                 \
  loaded.name = reinterpret_cast<decltype(loaded.name)>(::dlsym(handle, #name));                 \
  if (loaded.name == nullptr) {                                                                  \
    return MakeError(ErrorCode::kUnavailable,                                                    \
                     std::string(kName) + " has no " #name " (libpq older than cutover needs)"); \
  }
  CUTOVER_LIBPQ_FUNCTIONS(CUTOVER_LIBPQ_LOAD)
#undef CUTOVER_LIBPQ_LOAD
  return &loaded;
}

}  // namespace

Result<const LibPq*> LoadLibPq() {
  static const Result<const LibPq*> result = Load();
  return result;
}

const LibPq& Pq() { return loaded; }

}  // namespace cutover
