// DynamoDbDeliveryLedger beyond the contract (ledger_test.cc runs that
// against it): its keys, a missing table, throttling and server errors,
// credentials missing, one table shared with the run store.
#include "ledger/dynamodb_ledger.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aws/credentials.h"
#include "aws/dynamodb_test_util.h"
#include "common/env.h"
#include "servers/http_fault_server.h"

namespace cbpipe {
namespace {

using testing::HttpFaultServer;
using testing::HttpStep;

constexpr int64_t kStart = 1'700'000'000'000;

class DynamoDbLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    moto_ = SharedMoto(&error);
    ASSERT_NE(moto_, nullptr) << "moto did not start: " << error;
    client_ = DynamoDbTestClient(moto_->endpoint());
    ASSERT_NE(client_, nullptr);
    ASSERT_TRUE(CreateDynamoDbTable(*client_, table_).ok());
    auto ledger = DynamoDbDeliveryLedger::Open(client_, table_, &env_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
  }

  testing::MotoServer* moto_ = nullptr;
  std::shared_ptr<AwsClient> client_;
  const std::string table_ = FreshDynamoDbTableName();
  FakeEnv env_{kStart};
  std::unique_ptr<DeliveryLedger> ledger_;
};

// Destinations and names may hold '/': ("a/b", "c") and ("a", "b/c") are
// two files, their entries, claims and failures apart.
TEST_F(DynamoDbLedgerTest, DestinationAndNameNeverRunTogether) {
  LedgerEntry e{"a/b", "c", 1, "h1", "b1", "", 0, false};
  ASSERT_TRUE(ledger_->MarkDelivered(e).ok());
  EXPECT_FALSE((*ledger_->Find("a", "b/c")).has_value());
  ASSERT_TRUE(*ledger_->ClaimDelivery("a/b", "c", "w1", 60'000));
  EXPECT_TRUE(*ledger_->ClaimDelivery("a", "b/c", "w2", 60'000));
  ASSERT_TRUE(
      ledger_->RecordFailure(e, {{1, "transient", "UNAVAILABLE", "x"}}).ok());
  EXPECT_TRUE(ledger_->FailedAttempts("a", "b/c")->empty());
  EXPECT_EQ(ledger_->FailedAttempts("a/b", "c")->size(), 1u);
  EXPECT_EQ(*ledger_->CountDelivered(), 1);
}

// The run store and the ledger may share one table: their items never
// meet, and neither counts the other's.
TEST_F(DynamoDbLedgerTest, OneTableServesTheRunStoreToo) {
  ASSERT_TRUE(client_
                  ->CallJson("dynamodb", "DynamoDB_20120810.PutItem",
                             R"({"TableName":")" + table_ +
                                 R"(","Item":{"pk":{"S":"run#r1"},)"
                                 R"("sk":{"S":"run"},"state":)"
                                 R"({"S":"delivered"}}})")
                  .ok());
  EXPECT_EQ(*ledger_->CountDelivered(), 0);
  ASSERT_TRUE(
      ledger_->MarkDelivered({"visa", "f.csv", 1, "h", "b", "", 0, false})
          .ok());
  EXPECT_EQ(*ledger_->CountDelivered(), 1);
}

TEST_F(DynamoDbLedgerTest, AMissingTableIsFailedPrecondition) {
  auto opened = DynamoDbDeliveryLedger::Open(client_, "no-such-table", &env_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("no-such-table"), std::string::npos)
      << opened.status().ToString();
  ASSERT_TRUE(client_
                  ->CallJson("dynamodb", "DynamoDB_20120810.DeleteTable",
                             R"({"TableName":")" + table_ + R"("})")
                  .ok());
  EXPECT_EQ(ledger_->Find("visa", "f.csv").status().code(),
            StatusCode::kFailedPrecondition);
  // Not "somebody else holds it": an error the deliverer retries or reports.
  EXPECT_EQ(ledger_->ClaimDelivery("visa", "f.csv", "w1", 1).status().code(),
            StatusCode::kFailedPrecondition);
}

// Throttling and a 500 are retried by the client; past the budget the
// ledger answers kUnavailable (retry), never a claim.
TEST_F(DynamoDbLedgerTest, ThrottlingAndServerErrorsAreRetried) {
  HttpFaultServer proxy(
      {HttpStep::Forward(),  // Open's DescribeTable
       HttpStep::Answer(400, R"({"__type":"com.amazonaws.dynamodb.v20120810#)"
                             R"(ThrottlingException","message":"slow down"})"),
       HttpStep::Answer(500, R"({"__type":"InternalServerError"})"),
       HttpStep::Forward()},
      moto_->port());
  ASSERT_TRUE(proxy.Start().ok());
  auto through = DynamoDbDeliveryLedger::Open(
      DynamoDbTestClient(proxy.endpoint()), table_, &env_);
  ASSERT_TRUE(through.ok()) << through.status().ToString();
  auto claimed = (*through)->ClaimDelivery("visa", "f.csv", "w1", 60'000);
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  EXPECT_TRUE(*claimed);
  EXPECT_EQ(proxy.requests().size(), 4u);
  EXPECT_FALSE(*ledger_->ClaimDelivery("visa", "f.csv", "w2", 60'000));

  HttpFaultServer busy(
      {HttpStep::Forward(),
       HttpStep::Answer(400, R"({"__type":"com.amazonaws.dynamodb.v20120810#)"
                             R"(ProvisionedThroughputExceededException"})"),
       HttpStep::Answer(503, "")},
      moto_->port());
  ASSERT_TRUE(busy.Start().ok());
  auto slow = DynamoDbDeliveryLedger::Open(
      DynamoDbTestClient(busy.endpoint(), 2), table_, &env_);
  ASSERT_TRUE(slow.ok()) << slow.status().ToString();
  auto refused = (*slow)->ClaimDelivery("visa", "g.csv", "w1", 60'000);
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable)
      << refused.status().ToString();
}

TEST_F(DynamoDbLedgerTest, MissingCredentialsAreUnauthenticated) {
  auto opened = DynamoDbDeliveryLedger::Open(
      DynamoDbClientWithoutCredentials(moto_->endpoint()), table_, &env_);
  EXPECT_EQ(opened.status().code(), StatusCode::kUnauthenticated)
      << opened.status().ToString();
}

}  // namespace
}  // namespace cbpipe
