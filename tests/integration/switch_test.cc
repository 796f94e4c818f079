// The switch, as a user sees it: live traffic moves from one color to the
// other without a failed request.
#include <gtest/gtest.h>

#include "harness.h"
#include "support/load_generator.h"
#include "support/raw_http.h"

namespace cutover::test {
namespace {

std::string TwoColorConfig(const Backend& blue, const Backend& green) {
  return "listen: 127.0.0.1:{port}\n"
         "services:\n"
         "  web:\n"
         "    hosts: [localhost]\n"
         "    driver:\n"
         "      type: static\n"
         "      blue: [" + blue.address() + "]\n"
         "      green: [" + green.address() + "]\n"
         "    health: {path: /healthz, interval: 200ms, timeout: 150ms}\n"
         "    drain_timeout: 1s\n";
}

TEST(Switch, OneKeepAliveConnectionMovesWithTheNextRequest) {
  auto dir = TempDir::Create();
  ASSERT_TRUE(dir);
  auto blue = Backend::Start(*dir, "blue");
  auto green = Backend::Start(*dir, "green");
  ASSERT_TRUE(blue && green);
  auto d = Daemon::Start(*dir, TwoColorConfig(**blue, **green));
  ASSERT_TRUE(d) << d.error().message;

  auto conn = RawConn::Connect("127.0.0.1", (*d)->port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto first = conn->ReadResponse(DeadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->body, "blue");

  ASSERT_TRUE((*d)->Switch("web", "green"));
  ASSERT_TRUE(conn->Send(BuildRequest("GET", "/", "localhost")));
  auto second = conn->ReadResponse(DeadlineIn(std::chrono::seconds(5)));
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->body, "green");
}

}  // namespace
}  // namespace cutover::test
