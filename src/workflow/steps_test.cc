// The service's workflow (validate ... settle) run by the engine over real
// local adapters: a folder object store, SQLite run store and ledger,
// file:// destinations, a notifier that keeps what it is told and a fixed
// clock.
#include "workflow/steps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "ingest/test_gzip.h"
#include "workflow/pipeline.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// 2026-05-28T20:26:40.123Z: a clock with milliseconds that are not zero.
constexpr int64_t kNowMs = 1780000000123;

class KeepingNotifier : public Notifier {
 public:
  void Notify(const Event& event) override {
    std::lock_guard lock(mu_);
    events_.push_back(event);
  }
  Status Flush(std::chrono::milliseconds) override { return OkStatus(); }
  std::vector<Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
};

class WorkflowStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("steps_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "objects");
    config_ = DefaultConfig((root_ / "work").string());
    auto runs = RunStore::Open((root_ / "state.db").string());
    ASSERT_TRUE(runs.ok()) << runs.status().ToString();
    runs_ = std::move(*runs);
    auto ledger = DeliveryLedger::Open((root_ / "ledger.db").string());
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    store_ = std::make_unique<LocalFolderStore>((root_ / "objects").string());
    services_.config = &config_;
    services_.store = store_.get();
    services_.ledger = ledger_.get();
    services_.notifier = &notifier_;
    services_.env = RetryEnv::Real();
    services_.now_ms = [] { return kNowMs; };
  }
  void TearDown() override { fs::remove_all(root_); }

  // Runs the workflow on the file at `path` as the service would.
  LegacyRunOutcome RunInput(const std::string& path,
                            const std::string& run_id) {
    const std::string key = "inputs/" + run_id;
    EXPECT_TRUE(store_->PutFile(key, path).ok());
    RunRecord run;
    run.run_id = run_id;
    run.input_key = key;
    run.input_name = fs::path(path).filename().string();
    EXPECT_TRUE(runs_->CreateIfAbsent(run).ok());
    const LegacyWorkflowDefinition definition = CbpipeWorkflow(&services_);
    LegacyWorkflowEngine engine(definition, runs_.get(), RetryEnv::Real());
    std::atomic<bool> stop{false};
    return engine.Resume(run_id, InitialInput(key, run.input_name), &stop);
  }

  int Delivered() {
    int files = 0;
    std::error_code ec;
    for (const auto& e :
         fs::recursive_directory_iterator(root_ / "work/outbox", ec))
      files += e.is_regular_file();
    return files;
  }

  std::string WriteCsv(const std::string& name, int invalid, int valid) {
    const std::string path = (root_ / name).string();
    std::ofstream out(path);
    out << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n";
    for (int i = 0; i < valid; ++i)
      out << "A" << i << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    for (int i = 0; i < invalid; ++i)
      out << "X" << i << ",visa,123,M,2025-03-01,2025-04-01,1.00,USD,10.4\n";
    return path;
  }

  fs::path root_;
  Config config_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<LocalFolderStore> store_;
  KeepingNotifier notifier_;
  StepServices services_;
};

TEST_F(WorkflowStepsTest, EventsCarryTheClocksMilliseconds) {
  LegacyRunOutcome out = RunInput(WriteCsv("ok.csv", 0, 3), "0123456789abcdef");
  ASSERT_EQ(out.state, "succeeded") << out.error;
  const std::vector<Event> events = notifier_.events();
  ASSERT_FALSE(events.empty());
  for (const Event& e : events) {
    EXPECT_EQ(e.time_ms, kNowMs) << e.type;
    EXPECT_THAT(EventJson(e),
                HasSubstr(R"("time":"2026-05-28T20:26:40.123Z")"));
  }
}

TEST_F(WorkflowStepsTest, InputOverTheRejectLimitIsRejectedWithItsReason) {
  config_.reject_thresholds.max_rejected_records = 5;
  LegacyRunOutcome out =
      RunInput(WriteCsv("bad.csv", 6, 10), "00000000000000aa");
  EXPECT_EQ(out.state, "rejected") << out.error;
  EXPECT_EQ(Delivered(), 0);
  // Quarantined with the reason, and the reason told.
  const std::string reason = (root_ /
                              "work/quarantine/00000000000000aa/"
                              "reason.txt")
                                 .string();
  std::ifstream in(reason);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_THAT(text, HasSubstr("input.max_rejected_records"));
  bool told = false;
  for (const Event& e : notifier_.events()) {
    if (e.type != kEventInputRejected) continue;
    told = true;
    EXPECT_THAT(e.message, HasSubstr("bad.csv not processed: input rejected "
                                     "as a whole: more than 5 records"));
  }
  EXPECT_TRUE(told);
  // The rejects file stopped at the limit.
  std::ifstream rejects(root_ / "work/runs/00000000000000aa/rejects.csv");
  int rows = -1;
  for (std::string line; std::getline(rejects, line);) ++rows;
  EXPECT_EQ(rows, 5);
}

TEST_F(WorkflowStepsTest, GzipBombIsRejectedWithItsReason) {
  const std::string bomb = (root_ / "bomb.csv.gz").string();
  ASSERT_TRUE(testing::WriteGzipBomb(bomb, "case_id,network\n", 1ull << 30));
  LegacyRunOutcome out = RunInput(bomb, "00000000000000bb");
  EXPECT_EQ(out.state, "rejected") << out.error;
  EXPECT_EQ(Delivered(), 0);
  bool told = false;
  for (const Event& e : notifier_.events()) {
    told |= e.type == kEventInputRejected &&
            e.message.find("input.max_compression_ratio") != std::string::npos;
  }
  EXPECT_TRUE(told);
}

}  // namespace
}  // namespace cbpipe
