// The SecretStore contract (secret_store.h), run against every adapter:
// the suite is here; each adapter's test binary instantiates it with its
// factory (local_secret_stores_test.cc: env:, file:, memory;
// aws_secrets_manager_test.cc: aws-sm: on moto).
#include "secrets/secret_store_contract.h"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"

namespace cbpipe {

using ::testing::HasSubstr;
using ::testing::Not;

void SecretStoreContract::SetUp() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "cbpipe-secret-contract-XXXXXX")
          .string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  scratch_ = tmpl;
  store_ = GetParam().make();
  ASSERT_NE(store_, nullptr);
}

void SecretStoreContract::TearDown() {
  store_.reset();
  std::filesystem::remove_all(scratch_);
}

TEST_P(SecretStoreContract, ResolvesWhatWasDefined) {
  const std::string password = "hunter2 with spaces \xc3\xa9 and \"quotes\"";
  const std::string ref = Define("pw", password);
  StatusOr<SecretString> got = store_->Resolve(ref);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->value(), password);
  const std::string other = Define("token", "t0ken-value");
  EXPECT_EQ(store_->Resolve(other)->value(), "t0ken-value");
  EXPECT_EQ(store_->Resolve(ref)->value(), password);  // again, unchanged
}

TEST_P(SecretStoreContract, MissingIsNotFoundAndShowsNoSecret) {
  const std::string defined = Define("pw", "Secret-Value-42");
  const std::string ref = GetParam().undefined(scratch_);
  StatusOr<SecretString> got = store_->Resolve(ref);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), Not(HasSubstr("Secret-Value-42")));
  StatusOr<std::string> key = store_->KeyFilePath(ref);
  EXPECT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(), Not(HasSubstr("Secret-Value-42")));
}

TEST_P(SecretStoreContract, EmptyOrSchemelessReferencesAreNotEchoed) {
  EXPECT_EQ(store_->Resolve("").status().code(), StatusCode::kInvalidArgument);
  // A user who pasted the secret itself instead of a reference.
  for (const char* pasted : {"Pa55word!", "c0rrect horse battery"}) {
    StatusOr<SecretString> got = store_->Resolve(pasted);
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), Not(HasSubstr(pasted)));
    EXPECT_EQ(store_->KeyFilePath(pasted).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_THAT(store_->KeyFilePath(pasted).status().message(),
                Not(HasSubstr(pasted)));
  }
}

TEST_P(SecretStoreContract, KeyFilePathIsAPrivateFileHoldingTheKey) {
  const std::string key_text =
      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE "
      "KEY-----\n";
  const std::string ref = DefineKey("id_ed25519", key_text);
  StatusOr<std::string> path = store_->KeyFilePath(ref);
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  struct stat st;
  ASSERT_EQ(::stat(path->c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 077, 0u);
  std::ifstream in(*path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), key_text);
}

TEST_P(SecretStoreContract, ResolvesFromManyThreads) {
  std::vector<std::string> refs;
  for (int i = 0; i < 4; ++i)
    refs.push_back(Define("s" + std::to_string(i), "value-" +
                                                      std::to_string(i)));
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int which = (t + i) % 4;
        StatusOr<SecretString> got = store_->Resolve(refs[which]);
        if (!got.ok() || got->value() != "value-" + std::to_string(which))
          ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST_P(SecretStoreContract, InvalidateKeepsTheValueResolvable) {
  const std::string ref = Define("pw", "still-the-same");
  ASSERT_EQ(store_->Resolve(ref)->value(), "still-the-same");
  store_->Invalidate(ref);  // true or false: whether it cached anything
  StatusOr<SecretString> again = store_->Resolve(ref);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->value(), "still-the-same");
  EXPECT_FALSE(store_->Invalidate("Pa55word!"));
  EXPECT_FALSE(store_->Invalidate(""));
}

}  // namespace cbpipe
