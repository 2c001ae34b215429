// The SecretStore contract suite (secret_store.h), written once in
// secret_store_contract_test.cc; every adapter's test binary links it and
// instantiates it with the adapter's factory:
//
//   INSTANTIATE_TEST_SUITE_P(Adapters, SecretStoreContract,
//       ::testing::Values(SecretStoreFactory{"Vault", make, define,
//                                            define_key, undefined}),
//       SecretStoreContract::Name);
//
// Each test gets a fresh store and `scratch`, an empty private folder of
// its own, removed after the test.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "secrets/secret_store.h"

namespace cbpipe {

// How a test gets an adapter and puts secrets where the adapter finds them.
struct SecretStoreFactory {
  std::string name;  // [A-Za-z0-9_]: the test name's suffix
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
 public:
  static std::string Name(
      const ::testing::TestParamInfo<SecretStoreFactory>& info) {
    return info.param.name;
  }

 protected:
  void SetUp() override;
  void TearDown() override;
  std::string Define(const std::string& id, const std::string& value) {
    return GetParam().define(*store_, scratch_, id, value);
  }
  std::string DefineKey(const std::string& id, const std::string& value) {
    return GetParam().define_key(*store_, scratch_, id, value);
  }

  std::string scratch_;
  std::unique_ptr<SecretStore> store_;
};

}  // namespace cbpipe
