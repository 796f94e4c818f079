#include "release.h"

namespace shop {

Result<Release> ParseRelease(std::string_view label) {
  if (label == "v1") return Release::kV1;
  if (label == "v2") return Release::kV2;
  if (label == "v3") return Release::kV3;
  if (label == "v4") return Release::kV4;
  return Fail("unknown release '" + std::string(label) + "' (expected v1, v2, v3 or v4)");
}

std::string_view ReleaseLabel(Release release) {
  switch (release) {
    case Release::kV1:
      return "v1";
    case Release::kV2:
      return "v2";
    case Release::kV3:
      return "v3";
    case Release::kV4:
      return "v4";
  }
  return "v1";
}

Behaviour BehaviourOf(Release release) {
  Behaviour b;
  b.writes_note = release == Release::kV1;
  b.gift_message = release != Release::kV1;
  b.broken_catalog = release == Release::kV3;
  b.fails_under_load = release == Release::kV4;
  return b;
}

}  // namespace shop
