// The workflow with its work store on S3 (moto): scan, verify and deliver
// over S3ObjectStore put the batch files and manifests under the store's
// prefix, and deliver sends the bytes stored there.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "ledger/in_memory_ledger.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"
#include "store/s3_store.h"
#include "workflow/in_process_run.h"
#include "workflow/work_store_test_util.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

const auto* const g_moto =
    ::testing::AddGlobalTestEnvironment(new testing::MotoEnvironment());

TEST(WorkStoreS3Test, ScanVerifyAndDeliverOverS3) {
  testing::MotoServer* moto = testing::MotoEnvironment::server();
  ASSERT_NE(moto, nullptr) << testing::MotoEnvironment::error();
  AwsClientOptions aws_options;
  aws_options.region = "us-east-1";
  aws_options.endpoints["s3"] = moto->endpoint();
  StatusOr<std::unique_ptr<AwsClient>> made = AwsClient::Create(
      aws_options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const std::shared_ptr<AwsClient> aws(std::move(*made));
  AwsRequest bucket;
  bucket.service = "s3";
  bucket.method = "PUT";
  bucket.operation = "CreateBucket";
  bucket.bucket = "cbpipe-work";
  bucket.path = "/";
  ASSERT_TRUE(aws->Send(bucket).ok());
  auto s3 = S3ObjectStore::Create(aws, "cbpipe-work", "processed");
  ASSERT_TRUE(s3.ok()) << s3.status().ToString();
  testing::HoldCountingStore work(s3->get());

  const fs::path root = fs::path(::testing::TempDir()) /
                        ("work_store_s3_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string input = (root / "in.csv").string();
  std::ofstream(input) << testing::kTwoNetworksAndAReject;
  const Config config = DefaultConfig((root / "work").string());
  InMemoryDeliveryLedger ledger(Env::Default());
  InProcessOptions run_options;
  run_options.work = &work;
  InputResult r;
  {
    InProcessRunner runner(config, &ledger, Env::Default(),
                           /*now_epoch_seconds=*/1748779200, run_options);
    r = runner.Process(input);
  }
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  ASSERT_EQ(r.batches.size(), 1u);
  const BatchResult& b = r.batches[0];
  EXPECT_EQ(b.batch.manifest_path, "s3://cbpipe-work/processed/batches/" +
                                       b.batch.id + "/manifest.json");

  // Under the prefix: each file, the manifest, the rejects file.
  const std::map<std::string, std::string> stored =
      testing::StoreBytes(**s3);
  EXPECT_EQ(stored.size(), 4u);
  EXPECT_EQ(stored.count("batches/" + b.batch.id + "/manifest.json"), 1u);
  AwsRequest head = bucket;
  head.method = "HEAD";
  head.operation = "HeadObject";
  head.path = "/processed/batches/" + b.batch.id + "/manifest.json";
  EXPECT_TRUE(aws->Send(head).ok());

  // Delivered: the bytes stored.
  const std::map<std::string, std::string> sent =
      testing::FolderBytes(root / "work/outbox");
  ASSERT_EQ(b.files.size(), 2u);
  ASSERT_EQ(sent.size(), 2u);
  for (const DeliveredFile& f : b.files) {
    EXPECT_EQ(f.delivery.outcome, DeliveryOutcome::kDelivered);
    EXPECT_EQ(sent.at(f.file.destination + "/" + f.file.name),
              stored.at("batches/" + b.batch.id + "/" + f.file.name));
  }
  // No batch written locally, no copy kept.
  EXPECT_FALSE(fs::exists(root / "work/batches"));
  EXPECT_EQ(work.held(), 0);
  EXPECT_GE(work.taken(), 2);
  for (const std::string& path : work.paths()) EXPECT_FALSE(fs::exists(path));
  fs::remove_all(root);
}

}  // namespace
}  // namespace cbpipe
