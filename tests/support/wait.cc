#include "support/wait.h"

#include <algorithm>
#include <climits>
#include <thread>

namespace cutover::test {

int MillisUntil(Deadline deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, INT_MAX));
}

bool WaitUntil(const std::function<bool()>& condition, Deadline deadline,
               Clock::duration poll_interval) {
  for (;;) {
    if (condition()) return true;
    auto now = Clock::now();
    if (now >= deadline) return condition();
    std::this_thread::sleep_for(std::min<Clock::duration>(poll_interval, deadline - now));
  }
}

}  // namespace cutover::test
