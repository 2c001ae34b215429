// For the ports' contract suites against DynamoDB on moto: a moto server
// shared by the test binary (started on first use, stopped at exit), behind
// a proxy that makes its conditional writes atomic, an AwsClient on it, and
// the adapter harness that gives each test a fresh table (port_test_util.h
// has the SQLite and in-memory ones).
//
//   using Adapters = ::testing::Types<...,
//       DynamoDbAdapterFor<RunStore, DynamoDbRunStore>>;
//   std::unique_ptr<RunStore> store = adapter.Open(&env);     // new table
//   std::shared_ptr<RunStore> other = adapter.Connect(&env, store.get());
//   // other: a second client and adapter on the same table, as a second
//   // machine would have.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "aws/client.h"
#include "aws/credentials.h"
#include "aws/credentials_chain.h"
#include "aws/dynamodb.h"
#include "common/env.h"
#include "servers/http_fault_server.h"
#include "servers/moto_server.h"

namespace cbpipe {

// The binary's moto server; null (and *error set) when it cannot start.
inline testing::MotoServer* SharedMoto(std::string* error) {
  static std::string start_error;
  static std::unique_ptr<testing::MotoServer> moto = [] {
    testing::MotoServer::UseTestCredentials();
    auto started = testing::MotoServer::Start();
    if (!started.ok()) {
      start_error = started.status().ToString();
      return std::unique_ptr<testing::MotoServer>();
    }
    return std::move(*started);
  }();
  if (!moto && error) *error = start_error;
  return moto.get();
}

// The endpoint the DynamoDB tests use: a proxy in front of SharedMoto that
// forwards one request at a time. moto evaluates a ConditionExpression and
// writes without a lock, so two concurrent conditional writes to one item
// can both pass there; DynamoDB applies each item's conditional write
// atomically, and the proxy restores that for the claim races. "" (and
// *error set) when moto cannot start.
inline std::string AtomicMotoEndpoint(std::string* error) {
  static std::unique_ptr<testing::HttpFaultServer> proxy;
  static std::string start_error;
  static const bool started = [] {
    testing::MotoServer* moto = SharedMoto(&start_error);
    if (!moto) return false;
    proxy = std::make_unique<testing::HttpFaultServer>(
        std::vector<testing::HttpStep>{}, moto->port());
    proxy->SerializeForwarding();
    Status status = proxy->Start();
    if (!status.ok()) start_error = status.ToString();
    return status.ok();
  }();
  if (!started) {
    if (error) *error = start_error;
    return "";
  }
  return proxy->endpoint();
}

// A client whose DynamoDB endpoint is `endpoint` (moto's, or a fault
// server's in front of it), with moto's test keys from the environment.
inline std::shared_ptr<AwsClient> DynamoDbTestClient(
    const std::string& endpoint, int max_attempts = 4) {
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["dynamodb"] = endpoint;
  options.request_timeout_seconds = 30;
  options.retry.interval_seconds = 0.01;
  options.retry.max_attempts = max_attempts;
  auto client = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client)) : nullptr;
}

// A client on `endpoint` whose credentials cannot be found (no keys).
inline std::shared_ptr<AwsClient> DynamoDbClientWithoutCredentials(
    const std::string& endpoint) {
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["dynamodb"] = endpoint;
  auto client = AwsClient::Create(
      options, std::make_shared<AwsStaticCredentials>(AwsCredentials{}));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client)) : nullptr;
}

// A table name not used before in this process.
inline std::string FreshDynamoDbTableName() {
  static std::atomic<int> next{0};
  return "cbpipe-test-" + std::to_string(next++);
}

// `Dynamo::Open(client, table, env)` returns StatusOr<std::unique_ptr<Port>>.
template <typename Port, typename Dynamo>
class DynamoDbAdapterFor {
 public:
  static constexpr char kName[] = "DynamoDb";
  std::unique_ptr<Port> Open(Env* env) {
    std::string error;
    endpoint_ = AtomicMotoEndpoint(&error);
    EXPECT_NE(endpoint_, "") << "moto did not start: " << error;
    if (endpoint_.empty()) return nullptr;
    table_ = FreshDynamoDbTableName();
    std::shared_ptr<AwsClient> client = DynamoDbTestClient(endpoint_);
    if (!client) return nullptr;
    Status created = CreateDynamoDbTable(*client, table_);
    EXPECT_TRUE(created.ok()) << created.ToString();
    return OpenOn(std::move(client), env);
  }
  std::shared_ptr<Port> Connect(Env* env, Port* /*opened*/) {
    return std::shared_ptr<Port>(OpenOn(DynamoDbTestClient(endpoint_), env));
  }

 private:
  std::unique_ptr<Port> OpenOn(std::shared_ptr<AwsClient> client, Env* env) {
    auto opened = Dynamo::Open(std::move(client), table_, env);
    EXPECT_TRUE(opened.ok()) << opened.status().ToString();
    return opened.ok() ? std::move(opened).value() : nullptr;
  }
  std::string endpoint_, table_;
};

}  // namespace cbpipe
