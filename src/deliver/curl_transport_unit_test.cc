// Option checks of MakeNetworkTransport that need no server.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "deliver/curl_transport.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class MakeNetworkTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("CBPIPE_UNIT_PW", "pw-never-shown", 1);
    std::string tmpl = (std::filesystem::temp_directory_path() /
                        "cbpipe-transport-unit-XXXXXX")
                           .string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    key_ = dir_ + "/id_ed25519";
    std::ofstream(key_) << "not really a key\n";
    ::chmod(key_.c_str(), 0600);
    d_.name = "visa";
    d_.url = "sftp://cbpipe@127.0.0.1:2222/in";
    d_.private_key_ref = "file:" + key_;
    d_.host_key_sha256 = "SHA256:" + std::string(43, 'A');
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StatusCode CodeOf() {
    auto t = MakeNetworkTransport(d_);
    return t.ok() ? StatusCode::kOk : t.status().code();
  }

  std::string dir_, key_;
  DestinationConfig d_;
};

TEST_F(MakeNetworkTransportTest, SftpWithPinnedKeyIsAccepted) {
  auto t = MakeNetworkTransport(d_);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Describe(), "sftp://cbpipe@127.0.0.1:2222/in");
}

TEST_F(MakeNetworkTransportTest, SftpNeedsAHostKeyCheck) {
  d_.host_key_sha256.clear();
  auto t = MakeNetworkTransport(d_);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("known_hosts"));
  d_.insecure_skip_host_key = true;
  EXPECT_EQ(CodeOf(), StatusCode::kOk);
}

TEST_F(MakeNetworkTransportTest, SftpFingerprintMustBeSha256Base64) {
  d_.host_key_sha256 = "MD5:aa:bb";
  EXPECT_EQ(CodeOf(), StatusCode::kInvalidArgument);
  d_.host_key_sha256 = std::string(43, 'B') + "=";
  EXPECT_EQ(CodeOf(), StatusCode::kOk);
}

TEST_F(MakeNetworkTransportTest, SftpKeyFileMustBePrivate) {
  ::chmod(key_.c_str(), 0644);
  auto t = MakeNetworkTransport(d_);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(t.status().message(), HasSubstr("chmod 600"));
}

TEST_F(MakeNetworkTransportTest, SftpNeedsACredential) {
  d_.private_key_ref.clear();
  EXPECT_EQ(CodeOf(), StatusCode::kInvalidArgument);
  d_.password_ref = "env:CBPIPE_UNIT_PW";
  EXPECT_EQ(CodeOf(), StatusCode::kOk);
}

TEST_F(MakeNetworkTransportTest, FtpIsRefusedWithoutAllowInsecure) {
  d_.url = "ftp://cbpipe@127.0.0.1/in";
  d_.password_ref = "env:CBPIPE_UNIT_PW";
  auto t = MakeNetworkTransport(d_);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("allow_insecure"));
  d_.allow_insecure = true;
  EXPECT_EQ(CodeOf(), StatusCode::kOk);
}

TEST_F(MakeNetworkTransportTest, PasswordInTheUrlIsRefusedAndNotShown) {
  d_.url = "ftps://cbpipe:pw-in-url@127.0.0.1/in";
  auto t = MakeNetworkTransport(d_);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), Not(HasSubstr("pw-in-url")));
}

TEST_F(MakeNetworkTransportTest, UnknownSchemeAndMissingPieces) {
  d_.url = "http://127.0.0.1/in";
  EXPECT_EQ(CodeOf(), StatusCode::kInvalidArgument);
  d_.url = "sftp://127.0.0.1/in";  // no user
  EXPECT_EQ(CodeOf(), StatusCode::kInvalidArgument);
  d_.username = "cbpipe";
  EXPECT_EQ(CodeOf(), StatusCode::kOk);
  d_.url = "ftps://cbpipe@127.0.0.1/in";  // no password_ref
  EXPECT_EQ(CodeOf(), StatusCode::kInvalidArgument);
}

TEST_F(MakeNetworkTransportTest, MissingSecretNamesTheVariableOnly) {
  d_.url = "ftps://cbpipe@127.0.0.1/in";
  d_.password_ref = "env:CBPIPE_UNIT_UNSET";
  ::unsetenv("CBPIPE_UNIT_UNSET");
  auto t = MakeNetworkTransport(d_);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("CBPIPE_UNIT_UNSET"));
}

TEST_F(MakeNetworkTransportTest, DescribeShowsDefaultPortsAndNoSecret) {
  d_.url = "ftps://cbpipe@example.com/in/";
  d_.password_ref = "env:CBPIPE_UNIT_PW";
  auto t = MakeNetworkTransport(d_);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Describe(), "ftps://cbpipe@example.com:21/in");
  d_.ftps_mode = FtpsMode::kImplicit;
  t = MakeNetworkTransport(d_);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ((*t)->Describe(), "ftps://cbpipe@example.com:990/in");
  EXPECT_THAT((*t)->Describe(), Not(HasSubstr("pw-never-shown")));
}

TEST_F(MakeNetworkTransportTest, BadRemoteNamesAreRefusedBeforeConnecting) {
  auto t = MakeNetworkTransport(d_);
  ASSERT_TRUE(t.ok());
  for (const char* name :
       {"", ".", "..", "a/b", "a\r\nDELE x", "a b", "a\"b"}) {
    EXPECT_EQ((*t)->Remove(name).code(), StatusCode::kInvalidArgument) << name;
  }
}

}  // namespace
}  // namespace cbpipe
