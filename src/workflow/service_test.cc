// The service in-process, without root or servers (file:// destinations of
// DefaultConfig): threads owned and joined, waits cut short by a stop, the
// metrics recorded through the injected port, and the queue gauges unbound
// before the queue goes.
#include "workflow/service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "telemetry/in_memory_metrics.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

bool HasSample(Metrics& metrics, std::string_view name) {
  for (const MetricSample& s : metrics.Collect()) {
    if (s.name == name) return true;
  }
  return false;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("service_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    config_ = DefaultConfig((root_ / "work").string());
    config_.service.workers = 2;
    config_.service.settle_ms = 0;
    config_.service.poll_interval_ms = 20;
    config_.service.visibility_seconds = 2;
    config_.service.admin_listen = "";
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Service> Make() {
    auto s = Service::Create(config_, nullptr, &metrics_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Starts the service, waits until `runs` runs succeeded (15 s at most),
  // then stops and joins it.
  bool RunUntilSucceeded(Service& service, int64_t runs) {
    if (!service.Start().ok()) return false;
    bool done = false;
    for (int i = 0; i < 300 && !done; ++i) {
      StatusOr<int64_t> n = service.runs()->Count("succeeded");
      done = n.ok() && *n == runs;
      if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    service.RequestStop();
    return service.Join(10000) && done;
  }

  void DropInput(const std::string& name, int records) {
    const fs::path staged = root_ / ("." + name);
    {
      std::ofstream out(staged);
      out << "case_id,network,arn,merchant_id,transaction_date,"
             "chargeback_date,amount,currency,reason_code\n";
      for (int i = 0; i < records; ++i)
        out << "A" << name << i
            << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    }
    fs::rename(staged, root_ / "work/inbox" / name);
  }

  fs::path root_;
  Config config_;
  InMemoryMetrics metrics_{PipelineMetricSpecs()};
};

TEST_F(ServiceTest, QueueGaugesReadTheQueueOnlyWhileTheServiceLives) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  EXPECT_EQ(metrics_.Value(kQueueDepth), 0);
  ASSERT_TRUE(service->queue()->Send("{}").ok());
  ASSERT_TRUE(service->queue()->Send("{}").ok());
  EXPECT_EQ(metrics_.Value(kQueueDepth), 2);
  EXPECT_TRUE(HasSample(metrics_, kQueueOldestMessageAgeSeconds));
  service.reset();
  // Unbound with the service: nothing reads the destroyed queue (ASan
  // would see it).
  EXPECT_FALSE(HasSample(metrics_, kQueueDepth));
  EXPECT_FALSE(HasSample(metrics_, kQueueOldestMessageAgeSeconds));
}

TEST_F(ServiceTest, CreateNeedsMetrics) {
  EXPECT_EQ(Service::Create(config_, nullptr, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(ServiceTest, StopCutsEveryWaitShortAndJoinJoinsAll) {
  // Polls an hour apart: only a wait that honours the stop ends in time.
  config_.service.poll_interval_ms = 3600 * 1000;
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  ASSERT_TRUE(service->Start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(service->running());
  const auto start = std::chrono::steady_clock::now();
  service->RequestStop();
  EXPECT_TRUE(service->Join(10000));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(service->running());
  EXPECT_TRUE(service->Join(0));  // already joined: still true at once
}

TEST_F(ServiceTest, RunsInputsAndRecordsThroughTheInjectedMetrics) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  fs::create_directories(root_ / "work/inbox");
  DropInput("one.csv", 5);
  DropInput("two.csv", 7);
  ASSERT_TRUE(RunUntilSucceeded(*service, 2));
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"accepted"}), 2);
  EXPECT_EQ(metrics_.Value(kRecordsAcceptedTotal, {"amex"}), 12);
  EXPECT_GE(metrics_.Value(kFilesGeneratedTotal, {"amex"}), 1);
  EXPECT_EQ(metrics_.Value(kDeadLettersTotal), 0);
}

TEST_F(ServiceTest, MalformedMessagesAreDeadLettersAndServingGoesOn) {
  std::unique_ptr<Service> service = Make();
  ASSERT_TRUE(service);
  // Fields of the wrong type would make nlohmann's value() throw.
  for (const char* body :
       {"not json", "[1,2]", "\"text\"", R"({"run_id": 5, "input_key": "k"})",
        R"({"run_id": "r", "input_key": ["k"]})", R"({"run_id": "r"})",
        R"({"run_id": "r", "input_key": "k", "trace_id": {"a": 1}})"}) {
    ASSERT_TRUE(service->queue()->Send(body).ok());
  }
  fs::create_directories(root_ / "work/inbox");
  DropInput("after.csv", 3);
  ASSERT_TRUE(RunUntilSucceeded(*service, 1));
  StatusOr<QueueStats> st = service->queue()->Stats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->dead_letters, 7);
  EXPECT_EQ(metrics_.Value(kDeadLettersTotal), 7);
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"accepted"}), 1);
}

}  // namespace
}  // namespace cbpipe
