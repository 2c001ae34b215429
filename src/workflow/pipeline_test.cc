#include "workflow/pipeline.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1748779200;  // 2025-06-01

class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("pipeline_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    config_ = DefaultConfig((root_ / "work").string());
    auto ledger = DeliveryLedger::Open((root_ / "ledger.db").string());
    ASSERT_TRUE(ledger.ok());
    ledger_ = std::move(*ledger);
    env_ = RetryEnv::Real();
    input_ = (root_ / "in.csv").string();
    std::ofstream(input_)
        << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n"
           "V1,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
           "10.00,USD,10.4\n"
           "A1,amex,,M2,2025-03-01,2025-04-01,5.00,EUR,C08\n"
           "X1,visa,123,M3,2025-03-01,2025-04-01,1.00,USD,10.4\n";
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  Config config_;
  std::unique_ptr<DeliveryLedger> ledger_;
  RetryEnv env_;
  std::string input_;
};

TEST_F(PipelineTest, DeliversEachNetworksFileAndReportsRejects) {
  Pipeline pipeline(config_, ledger_.get(), env_, kNow);
  InputResult r = pipeline.Process(input_);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.scan.records, 3u);
  EXPECT_EQ(r.scan.accepted, 2u);
  EXPECT_EQ(r.scan.rejected, 1u);
  ASSERT_EQ(r.batches.size(), 1u);
  ASSERT_EQ(r.batches[0].files.size(), 2u);
  for (const DeliveredFile& f : r.batches[0].files) {
    EXPECT_EQ(f.delivery.outcome, DeliveryOutcome::kDelivered);
    EXPECT_TRUE(fs::exists(root_ / "work/outbox" / f.file.destination /
                           f.delivery.remote_name));
  }
  std::ifstream rejects(r.rejects_file);
  std::string all((std::istreambuf_iterator<char>(rejects)), {});
  EXPECT_NE(all.find("ARN_FORMAT"), std::string::npos);
  EXPECT_NE(all.find("X1"), std::string::npos);
}

TEST_F(PipelineTest, FileCorruptedBeforeVerificationFailsTheWholeBatch) {
  Pipeline pipeline(config_, ledger_.get(), env_, kNow);
  pipeline.SetBeforeVerifyHook([](const Batch& batch) {
    // Flip one byte of the first file, as a disk or a stray process might.
    std::fstream f(batch.files[0].path,
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-5, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-5, std::ios::end);
    f.put(c == '1' ? '2' : '1');
  });
  InputResult r = pipeline.Process(input_);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.batches.size(), 1u);
  EXPECT_EQ(r.batches[0].verify.code(), StatusCode::kDataLoss);
  for (const DeliveredFile& f : r.batches[0].files) {
    EXPECT_EQ(f.delivery.outcome, DeliveryOutcome::kFailed);
  }
  // Nothing of the batch was delivered, not even the intact file.
  EXPECT_FALSE(fs::exists(root_ / "work/outbox"));
  EXPECT_EQ(*ledger_->CountDelivered(), 0);
}

}  // namespace
}  // namespace cbpipe
