#include "common/listen_address.h"

#include <gtest/gtest.h>

namespace cbpipe {
namespace {

TEST(ListenAddressTest, ParsesHostAndPort) {
  StatusOr<ListenAddress> a = ParseListenAddress("127.0.0.1:8787");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8787);
  a = ParseListenAddress("[::1]:0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 0);
  a = ParseListenAddress("localhost:65535");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->port, 65535);
}

TEST(ListenAddressTest, RefusesMalformedAddresses) {
  for (const char* bad :
       {"", "8787", ":8787", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:65536",
        "127.0.0.1:-1", "127.0.0.1:80a", "127.0.0.1:000080", "::1:8787",
        "[::1:8787", "[]:8787", "local host:1", "a/b:1"}) {
    StatusOr<ListenAddress> a = ParseListenAddress(bad);
    EXPECT_FALSE(a.ok()) << bad;
    if (!a.ok()) {
      EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ListenAddressTest, LoopbackHosts) {
  for (const char* host :
       {"localhost", "127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1"})
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "example.com",
                           "127.0.0.1.nip.io", "128.0.0.1", "127.1", ""})
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
}

TEST(ListenAddressTest, AdminRuleRefusesNonLoopbackWithATrueMessage) {
  EXPECT_TRUE(ParseAdminListenAddress("127.0.0.1:8787").ok());
  EXPECT_TRUE(ParseAdminListenAddress("[::1]:8787").ok());
  StatusOr<ListenAddress> a = ParseAdminListenAddress("0.0.0.0:8787");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(a.status().message().find("not a loopback address"),
            std::string::npos);
  EXPECT_EQ(a.status().message().find("explicitly"), std::string::npos);
  a = ParseAdminListenAddress("127.0.0.1:99999");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cbpipe
