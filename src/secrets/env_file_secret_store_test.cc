#include "secrets/env_file_secret_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "secrets/memory_secret_store.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value, as a plain string the expectations can compare.
StatusOr<std::string> ResolveSecret(std::string_view reference) {
  CBPIPE_ASSIGN_OR_RETURN(SecretString value,
                          EnvFileSecretStore().Resolve(reference));
  return value.value();
}

StatusOr<std::string> ResolveSecretFilePath(std::string_view reference) {
  return EnvFileSecretStore().KeyFilePath(reference);
}

class SecretsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-secrets-XXXXXX")
            .string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, const std::string& content,
                        mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }

  std::string dir_;
};

TEST_F(SecretsTest, EnvReturnsTheValue) {
  ::setenv("CBPIPE_TEST_SECRET", "hunter2", 1);
  auto s = ResolveSecret("env:CBPIPE_TEST_SECRET");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "hunter2");
  ::unsetenv("CBPIPE_TEST_SECRET");
}

TEST_F(SecretsTest, EnvUnsetOrEmptyNamesTheVariable) {
  ::unsetenv("CBPIPE_TEST_UNSET");
  auto s = ResolveSecret("env:CBPIPE_TEST_UNSET");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr("CBPIPE_TEST_UNSET"));

  ::setenv("CBPIPE_TEST_EMPTY", "", 1);
  s = ResolveSecret("env:CBPIPE_TEST_EMPTY");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("CBPIPE_TEST_EMPTY"));
  ::unsetenv("CBPIPE_TEST_EMPTY");

  EXPECT_EQ(ResolveSecret("env:").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SecretsTest, FileStripsOneTrailingNewline) {
  auto s = ResolveSecret("file:" + WriteFile("a", "s3cret\n", 0600));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "s3cret");

  s = ResolveSecret("file:" + WriteFile("b", "two\n\n", 0600));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "two\n");

  s = ResolveSecret("file:" + WriteFile("c", "crlf\r\n", 0400));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "crlf");

  s = ResolveSecret("file:" + WriteFile("d", "none", 0600));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "none");
}

TEST_F(SecretsTest, FileReadableByOthersIsRefusedWithoutShowingTheValue) {
  for (mode_t mode : {0640, 0604, 0644, 0660}) {
    std::string path = WriteFile("open", "topsecretvalue\n", mode);
    auto s = ResolveSecret("file:" + path);
    ASSERT_FALSE(s.ok()) << std::oct << mode;
    EXPECT_EQ(s.status().code(), StatusCode::kPermissionDenied);
    EXPECT_THAT(s.status().message(), HasSubstr("chmod 600"));
    EXPECT_THAT(s.status().message(), HasSubstr(path));
    EXPECT_THAT(s.status().message(), Not(HasSubstr("topsecretvalue")));
  }
}

TEST_F(SecretsTest, FileMissingEmptyOrRelative) {
  EXPECT_EQ(ResolveSecret("file:" + dir_ + "/nope").status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(ResolveSecret("file:" + WriteFile("e", "", 0600)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSecret("file:relative/path").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSecret("file:" + dir_).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SecretsTest, UnknownSchemeDoesNotEchoTheReference) {
  auto s = ResolveSecret("Pa55word!");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), Not(HasSubstr("Pa55word!")));
  EXPECT_EQ(ResolveSecret("vault:x").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSecret("").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SecretsTest, KeyFilePathChecksTheMode) {
  std::string key = WriteFile("id", "KEY", 0600);
  auto p = ResolveSecretFilePath("file:" + key);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, key);

  ::chmod(key.c_str(), 0644);
  p = ResolveSecretFilePath("file:" + key);
  EXPECT_EQ(p.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(p.status().message(), HasSubstr("chmod 600"));

  EXPECT_EQ(ResolveSecretFilePath("env:KEY").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveSecretFilePath("file:" + dir_ + "/none").status().code(),
            StatusCode::kNotFound);
}

TEST_F(SecretsTest, DefaultIsTheEnvFileStore) {
  InMemorySecretStore mine;
  EXPECT_EQ(SecretsOrDefault(&mine), &mine);
  EXPECT_EQ(SecretsOrDefault(nullptr), EnvFileSecretStore::Default());
  ::setenv("CBPIPE_TEST_DEFAULT", "from-env", 1);
  EXPECT_EQ(SecretsOrDefault(nullptr)->Resolve("env:CBPIPE_TEST_DEFAULT")
                ->value(),
            "from-env");
  ::unsetenv("CBPIPE_TEST_DEFAULT");
}

TEST(SecretStringTest, MoveLeavesTheSourceEmpty) {
  SecretString a(std::string("abcdefghijklmnopqrstuvwxyz0123456789"));
  SecretString b(std::move(a));
  EXPECT_EQ(b.value(), "abcdefghijklmnopqrstuvwxyz0123456789");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): by design
  std::string s = "wipe me";
  WipeString(s);
  EXPECT_TRUE(s.empty());
}

}  // namespace
}  // namespace cbpipe
