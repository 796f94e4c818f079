// Shopping-cart sessions for cutover-testapp: kept in process memory, or in a
// file shared by several instances (so a session created on one color can be
// read on the other). Used only from the app's single event-loop thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace cutover::test {

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Adds `item` to session `sid`'s cart.
  virtual Status Add(std::string_view sid, std::string_view item) = 0;
  // The items of session `sid`, oldest first; empty for an unknown session.
  virtual Result<std::vector<std::string>> Items(std::string_view sid) = 0;

  // "memory" or "file:PATH".
  static Result<std::unique_ptr<SessionStore>> Open(std::string_view spec);
};

// A new random session id (hex).
std::string NewSessionId();

}  // namespace cutover::test
