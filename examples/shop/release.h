// Release: which of the shop's four releases this process plays. They are
// built from one source and picked at start (--release or $CUTOVER_RELEASE),
// so that one binary can demonstrate each outcome of a deployment:
//
//   v1  the baseline; writes orders.note, a plain-text order summary
//   v2  adds a gift message to orders (column orders.gift_message, added by
//       an expand migration) and stops using orders.note (dropped by a
//       contract migration once v1 is gone)
//   v3  v2 with a broken catalog: GET /products answers JSON without the
//       "products" field, so the deployment's checks fail before the switch
//   v4  v2 that breaks under sustained traffic: it passes its checks, then
//       fails every 5th catalog or cart request once an instance has served
//       10 of them, so the observe step switches back
//
// Plain values; any thread.
#pragma once

#include <string>
#include <string_view>

#include "result.h"

namespace shop {

enum class Release { kV1, kV2, kV3, kV4 };

// "v1".."v4"; anything else is an error naming the known labels.
Result<Release> ParseRelease(std::string_view label);
std::string_view ReleaseLabel(Release release);

// What the release does differently.
struct Behaviour {
  bool writes_note = false;       // v1: orders.note holds the order summary
  bool gift_message = false;      // v2+: orders.gift_message
  bool broken_catalog = false;    // v3: /products lacks its "products" field
  bool fails_under_load = false;  // v4: every 5th request fails after a while
};

Behaviour BehaviourOf(Release release);

}  // namespace shop
