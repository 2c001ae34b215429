// One moto server for a whole gtest binary (starting one takes seconds):
//
//   const auto* const kMoto =
//       ::testing::AddGlobalTestEnvironment(new testing::MotoEnvironment);
//   ...
//   MotoServer* moto = testing::MotoEnvironment::server();
//   ASSERT_NE(moto, nullptr) << testing::MotoEnvironment::error();
//   ASSERT_TRUE(moto->Reset().ok());  // each test starts from nothing
//
// SetUp sets moto's test credentials (MotoServer::UseTestCredentials) and
// starts the server; when it cannot, server() is null and error() says
// why. TearDown stops it. Not thread-safe (gtest calls it on one thread).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "gtest/gtest.h"
#include "servers/moto_server.h"

namespace cbpipe::testing {

class MotoEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    MotoServer::UseTestCredentials();
    auto moto = MotoServer::Start();
    if (!moto.ok()) {
      error_ = moto.status().ToString();
      return;
    }
    server_ = std::move(*moto);
  }
  void TearDown() override { server_.reset(); }

  static MotoServer* server() { return server_.get(); }
  static const std::string& error() { return error_; }

 private:
  static inline std::unique_ptr<MotoServer> server_;
  static inline std::string error_ = "moto was not started";
};

}  // namespace cbpipe::testing
