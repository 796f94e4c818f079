#include "router/recent_paths.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace cutover {
namespace {

TEST(RecentPathsTest, KeepsOneGetInEveryFewNewestFirst) {
  RecentPaths recent(1);
  for (int i = 1; i <= 40; ++i) recent.Offer(0, "/item/" + std::to_string(i));
  std::vector<std::string> got = recent.Sample(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "/item/40");
  EXPECT_EQ(got[1], "/item/32");
  EXPECT_EQ(got[2], "/item/24");
}

TEST(RecentPathsTest, DistinctPathsFromEveryWorkerAndNothingTooLong) {
  RecentPaths recent(2);
  for (int i = 0; i < 16; ++i) recent.Offer(0, "/same");
  for (int i = 0; i < 8; ++i) recent.Offer(1, "/other?q=1");
  for (int i = 0; i < 8; ++i) recent.Offer(1, std::string(RecentPaths::kMaxPath + 1, 'x'));
  std::vector<std::string> got = recent.Sample(10);
  EXPECT_EQ(got, (std::vector<std::string>{"/same", "/other?q=1"}));
  EXPECT_TRUE(RecentPaths(1).Sample(5).empty());
}

TEST(RecentPathsTest, AReaderNeverSeesATornPath) {
  RecentPaths recent(1);
  const std::string a(200, 'a');
  const std::string b(200, 'b');
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 0; !stop.load(); ++i) recent.Offer(0, "/" + (i % 2 ? a : b));
  });
  for (int round = 0; round < 2000; ++round) {
    for (const std::string& path : recent.Sample(RecentPaths::kSlots)) {
      ASSERT_TRUE(path == "/" + a || path == "/" + b) << path.substr(0, 40);
    }
  }
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace cutover
