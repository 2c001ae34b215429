// The ObjectStore contract suite (object_store.h), written once in
// object_store_contract_test.cc and run against every adapter listed in the
// INSTANTIATE_TEST_SUITE_P at its end; a new adapter adds its factory there:
//
//   ObjectStoreFactory{"S3", [](const std::string& scratch) {
//     return std::unique_ptr<ObjectStore>(new S3Store(...));
//   }}
//
// Each test gets a fresh store;
// `scratch` is an empty folder of its own that the factory may use (a local
// folder's root) and that is removed after the test.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "store/object_store.h"

namespace cbpipe {

struct ObjectStoreFactory {
  std::string name;  // [A-Za-z0-9_]: the test name's suffix
  std::function<std::unique_ptr<ObjectStore>(const std::string& scratch)>
      make;
};

class ObjectStoreContract
    : public ::testing::TestWithParam<ObjectStoreFactory> {
 public:
  static std::string Name(
      const ::testing::TestParamInfo<ObjectStoreFactory>& info) {
    return info.param.name;
  }

 protected:
  void SetUp() override;
  void TearDown() override;

  std::string scratch_;
  std::unique_ptr<ObjectStore> store_;
};

}  // namespace cbpipe
