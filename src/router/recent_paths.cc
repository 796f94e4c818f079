#include "router/recent_paths.h"

#include <algorithm>
#include <cstring>

namespace cutover {

void RecentPaths::Keep(Shard& shard, std::string_view path) {
  if (path.size() > kMaxPath || path.empty()) return;
  const uint32_t next = shard.next.load(std::memory_order_relaxed);
  shard.next.store(next + 1, std::memory_order_relaxed);
  Slot& slot = shard.slots[next % kSlots];
  const uint32_t seq = slot.seq.load(std::memory_order_relaxed);
  slot.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t i = 0; i * 8 < path.size(); ++i) {
    uint64_t word = 0;
    std::memcpy(&word, path.data() + i * 8, std::min<size_t>(8, path.size() - i * 8));
    slot.words[i].store(word, std::memory_order_relaxed);
  }
  slot.size.store(static_cast<uint32_t>(path.size()), std::memory_order_relaxed);
  slot.seq.store(seq + 2, std::memory_order_release);
}

std::vector<std::string> RecentPaths::Sample(size_t limit) const {
  std::vector<std::string> out;
  for (size_t s = 0; s < kSlots && out.size() < limit; ++s) {
    for (size_t w = 0; w < count_ && out.size() < limit; ++w) {
      const Shard& shard = shards_[w];
      // Newest first: the slot before `next`, then backwards.
      const uint32_t next = shard.next.load(std::memory_order_relaxed);
      const Slot& slot = shard.slots[(next + kSlots - 1 - s) % kSlots];
      const uint32_t before = slot.seq.load(std::memory_order_acquire);
      if (before == 0 || before % 2 == 1) continue;
      const uint32_t size = std::min<uint32_t>(slot.size.load(std::memory_order_relaxed), kMaxPath);
      std::string path(size, '\0');
      for (size_t i = 0; i * 8 < size; ++i) {
        uint64_t word = slot.words[i].load(std::memory_order_relaxed);
        std::memcpy(path.data() + i * 8, &word, std::min<size_t>(8, size - i * 8));
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      // Written meanwhile: a torn copy, left out.
      if (slot.seq.load(std::memory_order_relaxed) != before) continue;
      if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(std::move(path));
    }
  }
  return out;
}

}  // namespace cutover
