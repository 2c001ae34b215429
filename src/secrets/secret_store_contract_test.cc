// The SecretStore contract (secret_store.h), run against every adapter: a
// new adapter adds its factory to the INSTANTIATE_TEST_SUITE_P at the end.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "secrets/env_file_secret_store.h"
#include "secrets/memory_secret_store.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// How a test gets an adapter and puts secrets where the adapter finds them.
// `scratch` is an empty private folder of the test's own.
struct SecretStoreFactory {
  std::string name;
  std::function<std::unique_ptr<SecretStore>()> make;
  // Makes `value` findable; returns its reference.
  std::function<std::string(SecretStore&, const std::string& scratch,
                            const std::string& id, const std::string& value)>
      define;
  // Same, as a key file KeyFilePath takes.
  std::function<std::string(SecretStore&, const std::string& scratch,
                            const std::string& id, const std::string& value)>
      define_key;
  // A reference of the adapter's shape that names nothing.
  std::function<std::string(const std::string& scratch)> undefined;
};

class SecretStoreContract
    : public ::testing::TestWithParam<SecretStoreFactory> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cbpipe-secret-contract-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    scratch_ = tmpl;
    store_ = GetParam().make();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(scratch_);
  }
  std::string Define(const std::string& id, const std::string& value) {
    return GetParam().define(*store_, scratch_, id, value);
  }
  std::string DefineKey(const std::string& id, const std::string& value) {
    return GetParam().define_key(*store_, scratch_, id, value);
  }

  std::string scratch_;
  std::unique_ptr<SecretStore> store_;
};

std::string WritePrivateFile(const std::string& path,
                             const std::string& value) {
  std::ofstream(path, std::ios::binary) << value;
  ::chmod(path.c_str(), 0600);
  return path;
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

std::unique_ptr<SecretStore> MakeEnvFile() {
  return std::make_unique<EnvFileSecretStore>();
}

std::string DefineFile(SecretStore&, const std::string& scratch,
                       const std::string& id, const std::string& value) {
  return "file:" + WritePrivateFile(scratch + "/" + id, value);
}

// Environment variables are process-wide: each name is the test's own.
std::string DefineEnv(SecretStore&, const std::string& scratch,
                      const std::string& id, const std::string& value) {
  std::string name = "CBPIPE_CONTRACT_" + std::to_string(::getpid()) + "_" +
                     fs::path(scratch).filename().string().substr(23) + "_" +
                     id;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  ::setenv(name.c_str(), value.c_str(), 1);
  return "env:" + name;
}

std::string DefineInMemory(SecretStore& store, const std::string&,
                           const std::string& id, const std::string& value) {
  const std::string ref = "vault:" + id;
  static_cast<InMemorySecretStore&>(store).Set(ref, value);
  return ref;
}

INSTANTIATE_TEST_SUITE_P(
    Adapters, SecretStoreContract,
    ::testing::Values(
        SecretStoreFactory{"EnvFileByFile", MakeEnvFile, DefineFile,
                           DefineFile,
                           [](const std::string& scratch) {
                             return "file:" + scratch + "/none";
                           }},
        SecretStoreFactory{"EnvFileByEnv", MakeEnvFile, DefineEnv, DefineFile,
                           [](const std::string&) {
                             ::unsetenv("CBPIPE_CONTRACT_NEVER_SET");
                             return std::string(
                                 "env:CBPIPE_CONTRACT_NEVER_SET");
                           }},
        SecretStoreFactory{
            "InMemory",
            [] {
              return std::unique_ptr<SecretStore>(new InMemorySecretStore);
            },
            DefineInMemory, DefineInMemory,
            [](const std::string&) { return std::string("vault:none"); }}),
    [](const ::testing::TestParamInfo<SecretStoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace cbpipe
