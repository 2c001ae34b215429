// DynamoDbRunStore beyond the contract (run_store_test.cc runs that against
// it): pages of Query answers, the 400 KB item limit, a missing table,
// throttling and server errors, credentials missing or expired.
#include "runs/dynamodb_run_store.h"

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

class DynamoDbRunStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    moto_ = SharedMoto(&error);
    ASSERT_NE(moto_, nullptr) << "moto did not start: " << error;
    client_ = DynamoDbTestClient(moto_->endpoint());
    ASSERT_NE(client_, nullptr);
    ASSERT_TRUE(CreateDynamoDbTable(*client_, table_).ok());
  }
  std::unique_ptr<RunStore> Open(std::shared_ptr<AwsClient> client,
                                 DynamoDbRunStoreOptions options = {}) {
    auto store =
        DynamoDbRunStore::Open(std::move(client), table_, &env_, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }
  void Create(RunStore& store, const std::string& id, int64_t created_ms) {
    RunRecord run;
    run.run_id = id;
    run.input_key = "inputs/" + id;
    run.state = "queued";
    run.created_ms = created_ms;
    auto created = store.CreateIfAbsent(run);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    ASSERT_TRUE(*created);
  }

  testing::MotoServer* moto_ = nullptr;
  std::shared_ptr<AwsClient> client_;
  const std::string table_ = FreshDynamoDbTableName();
  FakeEnv env_{kStart};
};

// Twelve steps of 100 KB: the run's partition is over 1 MB, which DynamoDB
// answers in several pages; Get follows them and keeps the order.
TEST_F(DynamoDbRunStoreTest, StepsOverOneMegabyteComeBackInOrder) {
  auto store = Open(client_);
  ASSERT_NE(store, nullptr);
  Create(*store, "big", 1);
  // Saved in an order unlike their names, so sorting by name would show.
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) names.push_back("s" + std::to_string(11 - i));
  for (const std::string& name : names) {
    StepRecord step{name, "succeeded", 1, std::string(100 * 1024, 'x'),
                    "",   1,           2};
    ASSERT_TRUE(store->SaveStep("big", step).ok()) << name;
  }
  auto got = store->Get("big");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->steps.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(got->steps[i].name, names[i]);
    EXPECT_EQ(got->steps[i].output_json.size(), 100u * 1024);
  }
}

// Many runs over pages of three items: List skips and stops across pages,
// Count adds every page up.
TEST_F(DynamoDbRunStoreTest, ListAndCountFollowEveryPage) {
  auto store = Open(client_, {.page_size = 3});
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 25; ++i) {
    Create(*store, "r" + std::to_string(100 + i), 1000 + i);
  }
  ASSERT_TRUE(store->SetState("r100", "failed", "", "boom").ok());
  auto count = store->Count({});
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, 25);
  EXPECT_EQ(*store->Count({.state = "queued"}), 24);
  EXPECT_EQ(*store->Count({.state = "failed"}), 1);
  auto page = store->List({}, 7, 10);  // newest first: r114 down to r108
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  ASSERT_EQ(page->size(), 7u);
  EXPECT_EQ(page->front().run_id, "r114");
  EXPECT_EQ(page->back().run_id, "r108");
  auto all = store->List({.state = "queued"}, 100, 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 24u);
  EXPECT_EQ(all->front().run_id, "r124");
  EXPECT_EQ(all->back().run_id, "r101");
  auto failed = store->List({.state = "failed"}, 100, 0);
  ASSERT_TRUE(failed.ok());
  ASSERT_EQ(failed->size(), 1u);
  EXPECT_EQ((*failed)[0].error, "boom");
}

// A step bigger than DynamoDB's item limit is refused before any write,
// with the run, the step and the size; the step's earlier record stays.
TEST_F(DynamoDbRunStoreTest, AStepOverTheItemLimitIsRefusedClearly) {
  auto store = Open(client_);
  ASSERT_NE(store, nullptr);
  Create(*store, "r1", 1);
  ASSERT_TRUE(
      store->SaveStep("r1", {"scan", "succeeded", 1, "{}", "", 1, 2}).ok());
  Status saved = store->SaveStep(
      "r1", {"scan", "succeeded", 2, std::string(401 * 1024, 'x'), "", 3, 4});
  EXPECT_EQ(saved.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(saved.message().find("step scan of run r1"), std::string::npos)
      << saved.ToString();
  EXPECT_NE(saved.message().find("400 KB"), std::string::npos);
  auto got = store->Get("r1");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->steps.size(), 1u);
  EXPECT_EQ(got->steps[0].output_json, "{}");
  // Just under the limit is kept whole.
  const std::string large(390 * 1024, 'y');
  ASSERT_TRUE(
      store->SaveStep("r1", {"scan", "succeeded", 3, large, "", 5, 6}).ok());
  EXPECT_EQ(store->Get("r1")->steps[0].output_json, large);
}

// A missing table is a configuration error, never "no such run".
TEST_F(DynamoDbRunStoreTest, AMissingTableIsFailedPreconditionNotNotFound) {
  auto opened = DynamoDbRunStore::Open(client_, "no-such-table", &env_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("no-such-table"), std::string::npos)
      << opened.status().ToString();
  // Deleted under an open store.
  auto store = Open(client_);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(client_
                  ->CallJson("dynamodb", "DynamoDB_20120810.DeleteTable",
                             R"({"TableName":")" + table_ + R"("})")
                  .ok());
  EXPECT_EQ(store->Get("r1").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->Claim("r1", "w1", 1000).status().code(),
            StatusCode::kFailedPrecondition);
}

// Throttling and a 500 are retried by the client; the claim then holds
// exactly as without them.
TEST_F(DynamoDbRunStoreTest, ThrottlingAndServerErrorsAreRetried) {
  auto store = Open(client_);
  ASSERT_NE(store, nullptr);
  Create(*store, "r1", 1);
  HttpFaultServer proxy(
      {HttpStep::Answer(400,
                        R"({"__type":"com.amazonaws.dynamodb.v20120810#)"
                        R"(ThrottlingException","message":"slow down"})",
                        {{"Content-Type", "application/x-amz-json-1.0"}}),
       HttpStep::Answer(500, R"({"__type":"InternalServerError"})"),
       HttpStep::Forward()},
      moto_->port());
  ASSERT_TRUE(proxy.Start().ok());
  auto through = DynamoDbRunStore::Open(DynamoDbTestClient(proxy.endpoint()),
                                        table_, &env_);
  ASSERT_TRUE(through.ok()) << through.status().ToString();
  auto claimed = (*through)->Claim("r1", "w1", 60'000);
  ASSERT_TRUE(claimed.ok()) << claimed.status().ToString();
  EXPECT_TRUE(*claimed);
  EXPECT_FALSE(*store->Claim("r1", "w2", 60'000));
  EXPECT_GE(proxy.requests().size(), 4u);  // 3 for Open, 1+ for the claim

  // Throttled past the retry budget: kUnavailable, the store's "retry".
  std::vector<HttpStep> throttled(
      4, HttpStep::Answer(400, R"({"__type":"com.amazonaws.dynamodb.v20120810#)"
                               R"(ProvisionedThroughputExceededException"})"));
  HttpFaultServer busy(throttled, moto_->port());
  ASSERT_TRUE(busy.Start().ok());
  auto busy_open = DynamoDbRunStore::Open(
      DynamoDbTestClient(busy.endpoint(), 2), table_, &env_);
  EXPECT_EQ(busy_open.status().code(), StatusCode::kUnavailable)
      << busy_open.status().ToString();
}

// Credentials that cannot be found fail every call as kUnauthenticated;
// expired ones are refreshed once by the client and the call goes on.
TEST_F(DynamoDbRunStoreTest, CredentialsMissingOrExpired) {
  auto opened = DynamoDbRunStore::Open(
      DynamoDbClientWithoutCredentials(moto_->endpoint()), table_, &env_);
  EXPECT_EQ(opened.status().code(), StatusCode::kUnauthenticated)
      << opened.status().ToString();

  HttpFaultServer expired(
      {HttpStep::Answer(400, R"({"__type":"com.amazon.coral.service#)"
                             R"(ExpiredTokenException","message":"expired"})")},
      moto_->port());
  ASSERT_TRUE(expired.Start().ok());
  auto store = DynamoDbRunStore::Open(DynamoDbTestClient(expired.endpoint()),
                                      table_, &env_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(expired.requests().size(), 2u);
}

}  // namespace
}  // namespace cbpipe
