#include "common/url.h"

#include <gtest/gtest.h>

namespace cbpipe {
namespace {

TEST(UrlTest, UserinfoIsTheAuthorityBeforeTheLastAt) {
  EXPECT_EQ(UrlUserinfo("http://user:pass@host/x?token=1"), "user:pass");
  EXPECT_EQ(UrlUserinfo("sftp://alice@host:22/in"), "alice");
  EXPECT_EQ(UrlUserinfo("https://a:b@c@host/"), "a:b@c");
  EXPECT_EQ(UrlUserinfo("https://host/a@b"), "");
  EXPECT_EQ(UrlUserinfo("https://host?to=a@b"), "");
  EXPECT_EQ(UrlUserinfo("https://host#a@b"), "");
  EXPECT_EQ(UrlUserinfo("sftp://host:22/p:q@r"), "");
  EXPECT_EQ(UrlUserinfo("no scheme@host"), "");
}

TEST(UrlTest, RedactDropsCredentialsQueryAndFragment) {
  EXPECT_EQ(RedactUrl("https://u:p@h.example/a/b?token=x#f"),
            "https://h.example/a/b");
  EXPECT_EQ(RedactUrl("http://user:pass@127.0.0.1:9/hook?token=s3cret"),
            "http://127.0.0.1:9/hook");
  EXPECT_EQ(RedactUrl("smtp://mail.example:587"), "smtp://mail.example:587");
  EXPECT_EQ(RedactUrl("https://h.example/a@b"), "https://h.example/a@b");
}

TEST(UrlTest, PercentDecode) {
  std::string out;
  EXPECT_TRUE(PercentDecode("a%20b%2Fc%3d+d", &out));
  EXPECT_EQ(out, "a b/c=+d");
  EXPECT_TRUE(PercentDecode("a%20b+d", &out, /*plus_is_space=*/true));
  EXPECT_EQ(out, "a b d");
  for (const char* bad : {"%", "%2", "a%zz", "%g0"})
    EXPECT_FALSE(PercentDecode(bad, &out)) << bad;
}

}  // namespace
}  // namespace cbpipe
