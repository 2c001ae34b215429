// dynamodb:// in the registry, against moto: the [aws] table's endpoint
// and region reach the adapters, one table serves the run store and the
// ledger, a missing table and a bad URL are clear errors.
#include <gtest/gtest.h>

#include <string>

#include "aws/dynamodb_test_util.h"
#include "common/env.h"
#include "workflow/registry.h"

namespace cbpipe {
namespace {

TEST(RegistryDynamoDbTest, RunStoreAndLedgerShareOneTable) {
  std::string error;
  testing::MotoServer* moto = SharedMoto(&error);
  ASSERT_NE(moto, nullptr) << error;
  AwsOptions aws;
  aws.region = "us-east-1";
  aws.endpoints["dynamodb"] = moto->endpoint();
  auto client = AwsClientFor(aws);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE(CreateDynamoDbTable(**client, "cbpipe-state").ok());

  FakeEnv env;
  auto runs = OpenRunStore("dynamodb://cbpipe-state", &env, aws);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  auto ledger = OpenDeliveryLedger("dynamodb://cbpipe-state/", &env, aws);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  RunRecord run;
  run.run_id = "r1";
  ASSERT_TRUE(*(*runs)->CreateIfAbsent(run));
  ASSERT_TRUE(*(*runs)->Claim("r1", "w1", 60'000));
  ASSERT_TRUE((*ledger)
                  ->MarkDelivered({"visa", "f.csv", 1, "h", "b", "", 0, false})
                  .ok());
  // A second opener (another process would do the same) sees both.
  auto other = OpenRunStore("dynamodb://cbpipe-state", &env, aws);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(*(*other)->Claim("r1", "w2", 60'000));
  EXPECT_EQ(*(*runs)->Count({}), 1);
  EXPECT_EQ(*(*ledger)->CountDelivered(), 1);

  auto missing = OpenDeliveryLedger("dynamodb://no-such-table", &env, aws);
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("no-such-table"),
            std::string::npos);
  for (const char* bad : {"dynamodb://", "dynamodb://ab", "dynamodb://t t",
                          "dynamodb://table?x=1", "dynamodb://eu/table"}) {
    EXPECT_EQ(OpenRunStore(bad, &env, aws).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace cbpipe
