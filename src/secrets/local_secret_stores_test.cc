// The SecretStore contract (secret_store_contract.h) over the local
// adapters: env:, file: (EnvFileSecretStore) and memory
// (InMemorySecretStore).
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "secrets/env_file_secret_store.h"
#include "secrets/memory_secret_store.h"
#include "secrets/secret_store_contract.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

std::string WritePrivateFile(const std::string& path,
                             const std::string& value) {
  std::ofstream(path, std::ios::binary) << value;
  ::chmod(path.c_str(), 0600);
  return path;
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
    SecretStoreContract::Name);

}  // namespace
}  // namespace cbpipe
