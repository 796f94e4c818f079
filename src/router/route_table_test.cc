#include "router/route_table.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/address_v4.hpp>
#include <memory>
#include <string>
#include <vector>

namespace cutover {
namespace {

namespace ip = boost::asio::ip;

TargetPtr MakeTarget(uint32_t id, const std::string& service, Color color) {
  auto port = static_cast<uint16_t>(9000 + id);
  return std::make_shared<Target>(id, service, color, HostPort{"127.0.0.1", port},
                                  ip::tcp::endpoint(ip::address_v4::loopback(), port), 1);
}

ServiceRoute MakeService(const std::string& name, std::vector<std::string> hosts,
                         const std::string& path_prefix = "/", Color live = Color::kBlue) {
  ServiceRoute s;
  s.name = name;
  s.hosts = std::move(hosts);
  s.path_prefix = path_prefix;
  s.live = live;
  s.unrouted[0] = std::make_shared<ShardedStats>(1);
  s.unrouted[1] = std::make_shared<ShardedStats>(1);
  return s;
}

// Name of the service matched, or "" when none is.
std::string MatchName(const RouteTable& table, std::string_view host, std::string_view path) {
  const ServiceRoute* s = table.Match(host, path);
  return s == nullptr ? "" : s->name;
}

TEST(RouteTableTest, ExactHostMatch) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop", {"shop.example.com"}));
  services.push_back(MakeService("blog", {"blog.example.com", "www.blog.example.com"}));
  RouteTable table(7, std::move(services));
  EXPECT_EQ(table.version(), 7u);
  ASSERT_EQ(table.services().size(), 2u);
  EXPECT_EQ(table.services()[0].index, 0u);
  EXPECT_EQ(table.services()[1].index, 1u);

  EXPECT_EQ(MatchName(table, "shop.example.com", "/"), "shop");
  EXPECT_EQ(MatchName(table, "blog.example.com", "/post/1"), "blog");
  EXPECT_EQ(MatchName(table, "www.blog.example.com", "/"), "blog");
  const ServiceRoute* shop = table.Match("shop.example.com", "/cart");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop, &table.services()[0]);
}

TEST(RouteTableTest, HostMatchIsCaseInsensitive) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop", {"shop.example.com"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "SHOP.Example.COM", "/"), "shop");
}

TEST(RouteTableTest, HostMatchIgnoresPort) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop", {"shop.example.com"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "shop.example.com:8080", "/"), "shop");
  EXPECT_EQ(MatchName(table, "Shop.Example.Com:80", "/x"), "shop");
}

TEST(RouteTableTest, HostMatchIgnoresTrailingDot) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop", {"shop.example.com"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "shop.example.com.", "/"), "shop");
  EXPECT_EQ(MatchName(table, "shop.example.com.:8080", "/"), "shop");
}

TEST(RouteTableTest, UnknownHostWithoutWildcardIsNoMatch) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop", {"shop.example.com"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(table.Match("other.example.com", "/"), nullptr);
  EXPECT_EQ(table.Match("shop.example.co", "/"), nullptr);
  EXPECT_EQ(table.Match("", "/"), nullptr);
}

TEST(RouteTableTest, EmptyTableMatchesNothing) {
  RouteTable table(0, {});
  EXPECT_EQ(table.Match("a", "/"), nullptr);
  EXPECT_TRUE(table.services().empty());
}

TEST(RouteTableTest, WildcardUsedWhenNoExactHostMatches) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("fallback", {"*"}));
  services.push_back(MakeService("shop", {"shop.example.com"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "shop.example.com", "/"), "shop");
  EXPECT_EQ(MatchName(table, "anything.example.org", "/x"), "fallback");
  EXPECT_EQ(MatchName(table, "", "/"), "fallback");
}

TEST(RouteTableTest, ExactHostWinsOverLongerWildcardPrefix) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("any-api", {"*"}, "/api"));
  services.push_back(MakeService("shop", {"shop.example.com"}, "/"));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "shop.example.com", "/api/x"), "shop");
  EXPECT_EQ(MatchName(table, "other.example.com", "/api/x"), "any-api");
  EXPECT_EQ(table.Match("other.example.com", "/home"), nullptr);
}

TEST(RouteTableTest, WildcardCatchesPathsTheExactHostDoesNotClaim) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("shop-api", {"shop.example.com"}, "/api"));
  services.push_back(MakeService("fallback", {"*"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "shop.example.com", "/api/items"), "shop-api");
  EXPECT_EQ(MatchName(table, "shop.example.com", "/about"), "fallback");
}

TEST(RouteTableTest, LongestPathPrefixWins) {
  std::vector<ServiceRoute> services;
  // Shorter prefix first in configuration order: length, not order, decides.
  services.push_back(MakeService("web", {"example.com"}, "/"));
  services.push_back(MakeService("api", {"example.com"}, "/api"));
  services.push_back(MakeService("api-v2", {"example.com"}, "/api/v2"));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "example.com", "/"), "web");
  EXPECT_EQ(MatchName(table, "example.com", "/index.html"), "web");
  EXPECT_EQ(MatchName(table, "example.com", "/api"), "api");
  EXPECT_EQ(MatchName(table, "example.com", "/api/users"), "api");
  EXPECT_EQ(MatchName(table, "example.com", "/api?q=1"), "api");
  EXPECT_EQ(MatchName(table, "example.com", "/apix"), "web");
  EXPECT_EQ(MatchName(table, "example.com", "/api/v2"), "api-v2");
  EXPECT_EQ(MatchName(table, "example.com", "/api/v2/users"), "api-v2");
  EXPECT_EQ(MatchName(table, "example.com", "/api/v20"), "api");
}

TEST(RouteTableTest, LongestWildcardPrefixWins) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("web", {"*"}, "/"));
  services.push_back(MakeService("api", {"*"}, "/api"));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "x", "/api/1"), "api");
  EXPECT_EQ(MatchName(table, "x", "/docs"), "web");
}

TEST(RouteTableTest, EarlierServiceWinsTies) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("first", {"example.com"}, "/api"));
  services.push_back(MakeService("second", {"example.com"}, "/api"));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "example.com", "/api/x"), "first");
}

TEST(RouteTableTest, NoPathMatchIsNoMatch) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("api", {"example.com"}, "/api"));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(table.Match("example.com", "/"), nullptr);
  EXPECT_EQ(table.Match("example.com", "/apix"), nullptr);
  EXPECT_EQ(table.Match("example.com", "/API"), nullptr);
}

TEST(RouteTableTest, Ipv6Host) {
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("local6", {"[::1]"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(MatchName(table, "[::1]:8080", "/"), "local6");
  EXPECT_EQ(MatchName(table, "[::1]", "/"), "local6");
  EXPECT_EQ(table.Match("[::2]:8080", "/"), nullptr);
}

TEST(RouteTableTest, OverLongHostMatchesOnlyWildcard) {
  const std::string long_label(300, 'a');
  std::vector<ServiceRoute> services;
  services.push_back(MakeService("exact", {"a.example"}));
  RouteTable table(1, std::move(services));
  EXPECT_EQ(table.Match(long_label, "/"), nullptr);

  std::vector<ServiceRoute> with_wildcard;
  with_wildcard.push_back(MakeService("exact", {"a.example"}));
  with_wildcard.push_back(MakeService("fallback", {"*"}));
  RouteTable table2(2, std::move(with_wildcard));
  EXPECT_EQ(MatchName(table2, long_label, "/"), "fallback");
}

TEST(RouteTableTest, RoutesOnlyLivePoolTargets) {
  TargetPtr shop_blue = MakeTarget(1, "shop", Color::kBlue);
  TargetPtr shop_green = MakeTarget(2, "shop", Color::kGreen);
  TargetPtr blog_blue = MakeTarget(3, "blog", Color::kBlue);
  TargetPtr blog_green = MakeTarget(4, "blog", Color::kGreen);
  TargetPtr stranger = MakeTarget(5, "other", Color::kBlue);

  std::vector<ServiceRoute> services;
  ServiceRoute shop = MakeService("shop", {"shop.example.com"}, "/", Color::kBlue);
  shop.pools[0] = {shop_blue};
  shop.pools[1] = {shop_green};
  ServiceRoute blog = MakeService("blog", {"blog.example.com"}, "/", Color::kGreen);
  blog.pools[0] = {blog_blue};
  blog.pools[1] = {blog_green};
  services.push_back(std::move(shop));
  services.push_back(std::move(blog));
  RouteTable table(3, std::move(services));

  EXPECT_TRUE(table.Routes(shop_blue.get()));
  EXPECT_FALSE(table.Routes(shop_green.get()));
  EXPECT_FALSE(table.Routes(blog_blue.get()));
  EXPECT_TRUE(table.Routes(blog_green.get()));
  EXPECT_FALSE(table.Routes(stranger.get()));
  EXPECT_FALSE(table.Routes(nullptr));

  const ServiceRoute* matched = table.Match("blog.example.com", "/");
  ASSERT_NE(matched, nullptr);
  ASSERT_EQ(matched->live_pool().size(), 1u);
  EXPECT_EQ(matched->live_pool()[0], blog_green);
}

TEST(RouteTableTest, SwitchingLiveColorInANewTable) {
  TargetPtr blue = MakeTarget(1, "shop", Color::kBlue);
  TargetPtr green = MakeTarget(2, "shop", Color::kGreen);
  auto build = [&](uint64_t version, Color live) {
    ServiceRoute s = MakeService("shop", {"shop.example.com"}, "/", live);
    s.pools[0] = {blue};
    s.pools[1] = {green};
    std::vector<ServiceRoute> services;
    services.push_back(std::move(s));
    return std::make_shared<const RouteTable>(version, std::move(services));
  };
  auto before = build(1, Color::kBlue);
  auto after = build(2, Color::kGreen);
  // The old table still routes to blue: requests that pinned it keep it.
  EXPECT_TRUE(before->Routes(blue.get()));
  EXPECT_FALSE(before->Routes(green.get()));
  EXPECT_FALSE(after->Routes(blue.get()));
  EXPECT_TRUE(after->Routes(green.get()));
  EXPECT_EQ(after->Match("shop.example.com", "/")->live_pool()[0], green);
}

TEST(RouteTableTest, TargetCarriesItsAddress) {
  TargetPtr t = MakeTarget(4, "shop", Color::kGreen);
  EXPECT_EQ(t->id, 4u);
  EXPECT_EQ(t->service, "shop");
  EXPECT_EQ(t->color, Color::kGreen);
  EXPECT_EQ(t->address_text, "127.0.0.1:9004");
  EXPECT_EQ(t->endpoint.port(), 9004);
  EXPECT_TRUE(t->healthy.load());
}

TEST(NormalizeHostTest, LowerCasesAndStripsPort) {
  char buf[256];
  EXPECT_EQ(NormalizeHost("Example.COM", buf), "example.com");
  EXPECT_EQ(NormalizeHost("example.com:8080", buf), "example.com");
  EXPECT_EQ(NormalizeHost("example.com.", buf), "example.com");
  EXPECT_EQ(NormalizeHost("EXAMPLE.com.:443", buf), "example.com");
  EXPECT_EQ(NormalizeHost("10.0.0.1:80", buf), "10.0.0.1");
  EXPECT_EQ(NormalizeHost("[::1]:8080", buf), "[::1]");
  EXPECT_EQ(NormalizeHost("[2001:DB8::1]", buf), "[2001:db8::1]");
  EXPECT_EQ(NormalizeHost("", buf), "");
}

TEST(NormalizeHostTest, OverLongHostIsEmpty) {
  char buf[256];
  const std::string fits(255, 'A');
  EXPECT_EQ(NormalizeHost(fits, buf), std::string(255, 'a'));
  EXPECT_EQ(NormalizeHost(std::string(256, 'a'), buf), "");
  EXPECT_EQ(NormalizeHost(std::string(1000, 'a') + ":80", buf), "");
  // The port does not count toward the length.
  EXPECT_EQ(NormalizeHost(fits + ":8080", buf), std::string(255, 'a'));
}

TEST(PathHasPrefixTest, SegmentBoundaries) {
  EXPECT_TRUE(PathHasPrefix("/api", "/api"));
  EXPECT_TRUE(PathHasPrefix("/api/x", "/api"));
  EXPECT_TRUE(PathHasPrefix("/api?q=1", "/api"));
  EXPECT_TRUE(PathHasPrefix("/api/", "/api"));
  EXPECT_FALSE(PathHasPrefix("/apix", "/api"));
  EXPECT_FALSE(PathHasPrefix("/ap", "/api"));
  EXPECT_FALSE(PathHasPrefix("/", "/api"));
  EXPECT_FALSE(PathHasPrefix("/API", "/api"));
  EXPECT_FALSE(PathHasPrefix("/v1/api", "/api"));
}

TEST(PathHasPrefixTest, RootAndEmptyMatchEverything) {
  for (const char* path : {"/", "/x", "/api?q", "*", ""}) {
    EXPECT_TRUE(PathHasPrefix(path, "/")) << path;
    EXPECT_TRUE(PathHasPrefix(path, "")) << path;
  }
}

TEST(PathHasPrefixTest, TrailingSlashIsPlainPrefix) {
  EXPECT_TRUE(PathHasPrefix("/static/", "/static/"));
  EXPECT_TRUE(PathHasPrefix("/static/app.js", "/static/"));
  EXPECT_FALSE(PathHasPrefix("/static", "/static/"));
  EXPECT_FALSE(PathHasPrefix("/staticx", "/static/"));
}

}  // namespace
}  // namespace cutover
