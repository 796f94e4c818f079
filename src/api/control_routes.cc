#include "api/control_routes.h"

namespace cutover {

Result<std::string> RequestActor(const HttpRequest& request) {
  constexpr size_t kMaxActor = 128;
  auto it = request.find(kActorHeader);
  if (it == request.end() || it->value().empty()) return std::string(kDefaultActor);
  const std::string_view actor(it->value().data(), it->value().size());
  bool printable = actor.size() <= kMaxActor;
  for (char c : actor) printable = printable && c >= 0x20 && c <= 0x7e;
  if (!printable) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "header " + std::string(kActorHeader) + ": must be at most " +
                         std::to_string(kMaxActor) + " printable ASCII characters");
  }
  return std::string(actor);
}

}  // namespace cutover
