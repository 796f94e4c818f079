#include "common/types.h"

#include <gtest/gtest.h>

namespace cutover {
namespace {

TEST(ParseHostPort, AcceptsHostAndPort) {
  auto hp = ParseHostPort("127.0.0.1:8080");
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8080);
  EXPECT_EQ(hp->ToString(), "127.0.0.1:8080");
}

TEST(ParseHostPort, AcceptsBracketedIpv6) {
  auto hp = ParseHostPort("[::1]:80");
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->ToString(), "[::1]:80");
}

TEST(ParseHostPort, RejectsMissingOrBadPort) {
  EXPECT_FALSE(ParseHostPort("localhost").has_value());
  EXPECT_FALSE(ParseHostPort("localhost:").has_value());
  EXPECT_FALSE(ParseHostPort("localhost:70000").has_value());
  EXPECT_FALSE(ParseHostPort(":80").has_value());
  EXPECT_FALSE(ParseHostPort("::1:80").has_value());
}

TEST(ParseDuration, ReadsUnits) {
  EXPECT_EQ(ParseDuration("500ms").value(), Millis(500));
  EXPECT_EQ(ParseDuration("1s").value(), Millis(1000));
  EXPECT_EQ(ParseDuration("1.5s").value(), Millis(1500));
  EXPECT_EQ(ParseDuration("2m").value(), Millis(120000));
  EXPECT_EQ(ParseDuration("1h").value(), Millis(3600000));
}

TEST(ParseDuration, RequiresAUnit) {
  EXPECT_FALSE(ParseDuration("5").has_value());
  EXPECT_FALSE(ParseDuration("5 s").has_value());
  EXPECT_FALSE(ParseDuration("s").has_value());
  EXPECT_FALSE(ParseDuration("-1s").has_value());
}

TEST(FormatDuration, RoundTrips) {
  for (const char* s : {"500ms", "1s", "1500ms", "2m", "1h"}) {
    EXPECT_EQ(FormatDuration(ParseDuration(s).value()), s);
  }
}

TEST(ParseByteSize, ReadsUnits) {
  EXPECT_EQ(ParseByteSize("4096").value(), 4096u);
  EXPECT_EQ(ParseByteSize("16KiB").value(), 16384u);
  EXPECT_EQ(ParseByteSize("1MiB").value(), 1048576u);
  EXPECT_FALSE(ParseByteSize("1MB").has_value());
}

}  // namespace
}  // namespace cutover
