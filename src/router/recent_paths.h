// RecentPaths: a sample of the paths of a service's recent live GET
// requests, for an analysis check that replays them at the preview. Each
// router worker writes only its own shard: it counts GET requests and
// copies one path in kEvery into a small ring, under a per-slot sequence
// number (a seqlock) so that the control thread can read the rings while
// the workers write, without locks on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cutover {

class RecentPaths {
 public:
  static constexpr uint32_t kEvery = 8;    // one GET in this many is kept
  static constexpr size_t kSlots = 32;     // per worker
  static constexpr size_t kMaxPath = 248;  // longer paths are not kept

  explicit RecentPaths(size_t workers)
      : shards_(std::make_unique<Shard[]>(workers)), count_(workers) {}

  // Worker `worker` saw a live GET of `path`. Only that worker calls this
  // with its index. Inline: on seven GETs in eight it is one increment.
  void Offer(size_t worker, std::string_view path) {
    Shard& shard = shards_[worker];
    if (++shard.seen % kEvery == 0) Keep(shard, path);
  }

  // The distinct paths in the rings now, at most `limit`, newest first per
  // worker. Any thread.
  std::vector<std::string> Sample(size_t limit) const;

 private:
  struct alignas(64) Slot {
    std::atomic<uint32_t> seq{0};  // odd while the worker writes
    std::atomic<uint32_t> size{0};
    std::array<std::atomic<uint64_t>, kMaxPath / 8> words{};
  };
  struct alignas(64) Shard {
    uint32_t seen = 0;              // GET requests offered (worker only)
    std::atomic<uint32_t> next{0};  // the slot written next (written by the worker only)
    std::array<Slot, kSlots> slots;
  };

  // Copies `path` into the shard's next slot.
  static void Keep(Shard& shard, std::string_view path);

  std::unique_ptr<Shard[]> shards_;
  size_t count_;
};

}  // namespace cutover
