#include "workflow/in_process_run.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

#include "ledger/in_memory_ledger.h"
#include "ledger/sqlite_ledger.h"
#include "workflow/work_store_test_util.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1748779200;  // 2025-06-01

class InProcessRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("in_process_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    config_ = DefaultConfig((root_ / "work").string());
    auto ledger = SqliteDeliveryLedger::Open((root_ / "ledger.db").string(),
                                             Env::Default());
    ASSERT_TRUE(ledger.ok());
    ledger_ = std::move(*ledger);
    input_ = (root_ / "in.csv").string();
    std::ofstream(input_) << testing::kTwoNetworksAndAReject;
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  Config config_;
  std::unique_ptr<DeliveryLedger> ledger_;
  Env* env_ = Env::Default();
  std::string input_;
};

TEST_F(InProcessRunTest, DeliversEachNetworksFileAndReportsRejects) {
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
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

TEST_F(InProcessRunTest, FileCorruptedBeforeVerificationFailsTheWholeBatch) {
  InProcessOptions options;
  options.before_step = [this](std::string_view step, const nlohmann::json& in) {
    if (step != "verify") return;
    // Flip one byte of the first file, as a disk or a stray process might.
    const std::string id = in["batch"]["id"];
    const std::string name = in["batch"]["files"][0]["name"];
    std::fstream f(root_ / "work/batches" / id / name,
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-5, std::ios::end);
    char c;
    f.get(c);
    f.seekp(-5, std::ios::end);
    f.put(c == '1' ? '2' : '1');
  };
  InProcessRunner runner(config_, ledger_.get(), env_, kNow, options);
  InputResult r = runner.Process(input_);
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

TEST_F(InProcessRunTest, RejectsAndBatchesAreFiledUnderTheInputIdOnly) {
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  ASSERT_EQ(r.input_id.size(), 16u);
  EXPECT_EQ(r.rejects_file,
            (root_ / "work/runs" / r.input_id / "rejects.csv").string());
  EXPECT_TRUE(fs::exists(r.rejects_file));
  // Rejected records are record data: as private as the batches (0640).
  EXPECT_EQ(
      fs::status(r.rejects_file).permissions(),
      fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  // The names used while the input was being hashed are gone.
  for (const char* dir : {"work/runs", "work/staging"}) {
    if (!fs::exists(root_ / dir)) continue;
    for (const auto& entry : fs::directory_iterator(root_ / dir)) {
      EXPECT_EQ(entry.path().filename().string(), r.input_id) << dir;
    }
  }
}

TEST_F(InProcessRunTest, MissingInputLeavesNothingBehind) {
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process((root_ / "absent.csv").string());
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.scan.input_error.ok());
  EXPECT_EQ(r.scan.records, 0u);
  EXPECT_TRUE(r.input_id.empty());
  EXPECT_FALSE(fs::exists(root_ / "work/runs") &&
               !fs::is_empty(root_ / "work/runs"));
  EXPECT_FALSE(fs::exists(root_ / "work/staging") &&
               !fs::is_empty(root_ / "work/staging"));
}

TEST_F(InProcessRunTest, PendingFoldersLeftADayAgoAreRemoved) {
  // As left by runs killed mid-scan: two stale, one still being written.
  const fs::path work = root_ / "work";
  const auto two_days_ago =
      fs::file_time_type::clock::now() - std::chrono::hours(48);
  for (const fs::path& dir : {work / "runs/pending-0000000000000001",
                              work / "staging/pending-0000000000000002",
                              work / "runs/pending-0000000000000003"}) {
    fs::create_directories(dir);
    std::ofstream(dir / "part") << "x";
  }
  for (const fs::path& p : {work / "runs/pending-0000000000000001/part",
                            work / "runs/pending-0000000000000001",
                            work / "staging/pending-0000000000000002/part",
                            work / "staging/pending-0000000000000002",
                            work / "runs/pending-0000000000000003"}) {
    fs::last_write_time(p, two_days_ago);
  }
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_FALSE(fs::exists(work / "runs/pending-0000000000000001"));
  EXPECT_FALSE(fs::exists(work / "staging/pending-0000000000000002"));
  // Its file was written just now: a scan may still be at it.
  EXPECT_TRUE(fs::exists(work / "runs/pending-0000000000000003/part"));
}

TEST_F(InProcessRunTest, TransportPoolGivesBackWhatWasReturnedHealthy) {
  const DestinationConfig& visa = config_.destinations[0];
  const DestinationConfig& amex = config_.destinations[2];
  TransportPool pool;
  auto first = pool.Take(visa);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Transport* const kept = first->get();
  pool.Give(visa.name, std::move(*first), /*healthy=*/true);
  EXPECT_EQ(pool.idle_count(), 1u);
  // Another destination never gets it.
  auto other = pool.Take(amex);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->get(), kept);
  EXPECT_EQ(pool.idle_count(), 1u);
  auto again = pool.Take(visa);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), kept);
  EXPECT_EQ(pool.idle_count(), 0u);
  // Given back after a failure: closed, not kept.
  pool.Give(visa.name, std::move(*again), /*healthy=*/false);
  EXPECT_EQ(pool.idle_count(), 0u);
  // Idle ones close on request, and when met past their idle limit.
  pool.Give(amex.name, std::move(*other), true);
  pool.CloseIdle(std::chrono::seconds(3600));
  EXPECT_EQ(pool.idle_count(), 1u);
  pool.CloseIdle(std::chrono::seconds(0));
  EXPECT_EQ(pool.idle_count(), 0u);
  TransportPool brief(std::chrono::seconds(0));
  auto t = brief.Take(visa);
  ASSERT_TRUE(t.ok());
  brief.Give(visa.name, std::move(*t), true);
  auto u = brief.Take(amex);  // meets the stale visa one: closed
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(brief.idle_count(), 0u);
}

// Enough records for many hand-overs between the reading thread and the
// caller's: every record still reaches `accept` or `reject` once, in input
// order.
class ScanInputTest : public InProcessRunTest {
 protected:
  void WriteRecords(int count) {
    std::ofstream out(input_);
    out << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n";
    for (int i = 0; i < count; ++i) {
      if (i % 7 == 3) {  // a bad ARN
        out << "X" << i << ",visa,123,M,2025-03-01,2025-04-01,1.00,USD,10.4\n";
      } else if (i % 11 == 5) {  // a duplicate of the record before
        out << "A" << i - 1 << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
      } else {
        out << "A" << i << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
      }
    }
  }
};

TEST_F(ScanInputTest, CallsBackInInputOrder) {
  constexpr int kRecords = 10000;
  WriteRecords(kRecords);
  InputScan scan;
  std::vector<uint64_t> seen;  // positions, accepted or rejected
  int accepted = 0, rejected_errors = 0;
  ScanInput(
      input_, config_, kNow, 5,
      [&](const Record& r, std::vector<RecordError>* errors) {
        EXPECT_TRUE(errors->empty());
        seen.push_back(r.position);
        ++accepted;
        // Every 1000th valid record is turned into a reject by the caller.
        if (accepted % 1000 == 0) {
          RecordError& e = errors->emplace_back();
          e.position = r.position;
          e.code = ErrorCode::kNoDestination;
        }
        return OkStatus();
      },
      [&](const RecordError& e) {
        if (seen.empty() || seen.back() != e.position)
          seen.push_back(e.position);
        ++rejected_errors;
        return OkStatus();
      },
      &scan);
  ASSERT_TRUE(scan.input_error.ok()) << scan.input_error.ToString();
  EXPECT_EQ(scan.records, static_cast<uint64_t>(kRecords));
  EXPECT_EQ(scan.records, scan.accepted + scan.rejected);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kRecords));
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i], i + 2) << i;  // line 1 is the header
  }
  EXPECT_EQ(scan.errors.size(), 5u);
  EXPECT_EQ(scan.errors.size() + scan.errors_truncated,
            static_cast<uint64_t>(rejected_errors));
  uint64_t by_network = 0;
  for (uint64_t n : scan.by_network) by_network += n;
  EXPECT_EQ(by_network, scan.accepted);
  EXPECT_GT(scan.bytes_read, 0u);
}

TEST_F(ScanInputTest, EveryRecordOnceAroundChunkBoundaries) {
  // Chunks are 1024 records and four of them go round: counts on and
  // around those edges, and inputs that go round many times.
  for (int count : {0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 20000}) {
    WriteRecords(count);
    InputScan scan;
    uint64_t next = 2;  // line 1 is the header
    bool in_order = true;
    auto check = [&](uint64_t position) {
      if (position == next) {
        ++next;
      } else if (position != next - 1) {  // a reject's second error
        in_order = false;
      }
    };
    ScanInput(
        input_, config_, kNow, 0,
        [&](const Record& r, std::vector<RecordError>*) {
          check(r.position);
          return OkStatus();
        },
        [&](const RecordError& e) {
          check(e.position);
          return OkStatus();
        },
        &scan);
    ASSERT_TRUE(scan.input_error.ok()) << count;
    EXPECT_EQ(scan.records, static_cast<uint64_t>(count));
    EXPECT_EQ(scan.records, scan.accepted + scan.rejected) << count;
    EXPECT_EQ(next, static_cast<uint64_t>(count) + 2) << count;
    EXPECT_TRUE(in_order) << count;
    // Every 11th record from the 5th copies the id before it.
    uint64_t duplicates = 0;
    for (int i = 0; i < count; ++i) duplicates += (i % 11 == 5 && i % 7 != 3);
    EXPECT_GE(scan.rejected, duplicates) << count;
  }
}

TEST_F(ScanInputTest, ReadErrorMidInputEndsTheScanAfterEarlierRecords) {
  // A record over the size limit is a whole-input error: the records
  // before it are all passed on, in order, and the scan ends there.
  config_.reader_limits.max_record_bytes = 4096;
  WriteRecords(5000);
  {
    std::ofstream out(input_, std::ios::app);
    out << "BIG," << std::string(10000, 'x') << "\n";
    out << "A99999,amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
  }
  InputScan scan;
  uint64_t last_position = 0;
  ScanInput(
      input_, config_, kNow, 0,
      [&](const Record& r, std::vector<RecordError>*) {
        last_position = std::max(last_position, r.position);
        return OkStatus();
      },
      [&](const RecordError& e) {
        last_position = std::max(last_position, e.position);
        return OkStatus();
      },
      &scan);
  EXPECT_FALSE(scan.input_error.ok());
  EXPECT_EQ(scan.records, 5000u);
  EXPECT_EQ(scan.records, scan.accepted + scan.rejected);
  EXPECT_EQ(last_position, 5001u);
  EXPECT_GT(scan.error_position, 0u);
}

TEST_F(ScanInputTest, AcceptFailureStopsTheScanAtThatRecord) {
  WriteRecords(10000);
  InputScan scan;
  int calls = 0;
  ScanInput(
      input_, config_, kNow, 5,
      [&](const Record&, std::vector<RecordError>*) {
        return ++calls == 3000 ? UnavailableError("disk gone") : OkStatus();
      },
      nullptr, &scan);
  EXPECT_EQ(scan.input_error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 3000);
  EXPECT_LT(scan.records, 10000u);
  EXPECT_EQ(scan.records, scan.accepted + scan.rejected + 1);
  EXPECT_GT(scan.error_position, 0u);
  EXPECT_EQ(scan.bytes_read, scan.error_position);
}

// ---------------------------------------------------------------- limits

class InputThresholdTest : public InProcessRunTest {
 protected:
  // `invalid` visa records with a bad ARN, then `valid` amex records (or
  // the other way round).
  void WriteMix(int invalid, int valid, bool invalid_first = true) {
    std::ofstream out(input_);
    out << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n";
    auto bad = [&] {
      for (int i = 0; i < invalid; ++i)
        out << "X" << i << ",visa,123,M,2025-03-01,2025-04-01,1.00,USD,10.4\n";
    };
    if (invalid_first) bad();
    for (int i = 0; i < valid; ++i)
      out << "A" << i << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    if (!invalid_first) bad();
  }
  // Files delivered anywhere under the outbox.
  int Delivered() {
    int files = 0;
    std::error_code ec;
    for (const auto& e :
         fs::recursive_directory_iterator(root_ / "work/outbox", ec))
      files += e.is_regular_file();
    return files;
  }
  // Data rows of the rejects file (one error per record here).
  int RejectRows(const InputResult& r) {
    std::ifstream in(r.rejects_file);
    int rows = -1;  // the header
    for (std::string line; std::getline(in, line);) ++rows;
    return rows;
  }
};

TEST_F(InputThresholdTest, RejectedRecordsUpToTheLimitStillDeliver) {
  config_.reject_thresholds.max_rejected_records = 5;
  WriteMix(5, 10);
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.scan.rejected, 5u);
  EXPECT_EQ(RejectRows(r), 5);
  EXPECT_EQ(Delivered(), 1);
}

TEST_F(InputThresholdTest, OneRejectPastTheLimitRejectsTheWholeInput) {
  config_.reject_thresholds.max_rejected_records = 5;
  WriteMix(6, 10, /*invalid_first=*/false);
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.error.message().find("more than 5 records rejected "
                                   "(input.max_rejected_records)"),
            std::string::npos)
      << r.error.message();
  // Nothing of it delivered or left staged, although ten records were
  // valid; the rejects file stopped at the limit; the input is kept.
  EXPECT_TRUE(r.batches.empty());
  EXPECT_EQ(Delivered(), 0);
  EXPECT_EQ(RejectRows(r), 5);
  EXPECT_FALSE(r.quarantine_dir.empty());
  EXPECT_TRUE(fs::exists(r.quarantine_dir + "/reason.txt"));
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(root_ / "work/staging", ec) || ec);
}

TEST_F(InputThresholdTest, RejectedRatioIsJudgedOverTheWholeInput) {
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  // Exactly half rejected, all at the start: not over 0.5, delivered.
  WriteMix(50, 50);
  InputResult half = runner.Process(input_);
  ASSERT_TRUE(half.ok()) << half.error.ToString();
  EXPECT_EQ(Delivered(), 1);

  // One more rejected than accepted: the input is rejected as a whole.
  fs::remove_all(root_ / "work");
  WriteMix(51, 49);
  InputResult over = runner.Process(input_);
  EXPECT_EQ(over.error.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.error.message().find("51 of 100 records rejected, more "
                                      "than input.max_rejected_ratio (0.5)"),
            std::string::npos)
      << over.error.message();
  EXPECT_TRUE(over.batches.empty());
  EXPECT_EQ(Delivered(), 0);

  // Under 100 records the ratio is not applied (a handful of records says
  // little about the export).
  WriteMix(60, 39);
  InputResult small = runner.Process(input_);
  EXPECT_TRUE(small.ok()) << small.error.ToString();
  EXPECT_EQ(Delivered(), 1);
}

TEST_F(InputThresholdTest, UnroutableRecordsDoNotCountTowardsTheThresholds) {
  // Only visa goes somewhere: amex records are NO_DESTINATION, a config
  // matter reported on its own (cbpipe run exits 1), not a broken input.
  config_.destinations.erase(config_.destinations.begin() + 1,
                             config_.destinations.end());
  config_.reject_thresholds.max_rejected_records = 0;
  WriteMix(0, 200);
  InProcessRunner runner(config_, ledger_.get(), env_, kNow);
  InputResult r = runner.Process(input_);
  EXPECT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.scan.rejected, 200u);
  EXPECT_EQ(r.scan.undeliverable[static_cast<int>(Network::kAmex)], 200u);
  EXPECT_EQ(r.scan.undeliverable_total(), 200u);
}

// ------------------------------------------- deliveries retried by the engine

// A server in memory whose uploads fail as a test says: `fail(name, n)`
// gives the n-th upload (1-based) of `name` its result.
struct ScriptedServer {
  std::mutex mu;
  std::map<std::string, std::string> files;  // remote name -> bytes
  std::map<std::string, int> uploads;        // final name -> uploads tried
  std::function<Status(const std::string& name, int n)> fail;
};

class ScriptedTransport : public Transport {
 public:
  explicit ScriptedTransport(ScriptedServer* server) : server_(server) {}
  Status Upload(const std::string& local_path,
                const std::string& remote_name) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    const int n = ++server_->uploads[FinalName(remote_name)];
    if (server_->fail) {
      Status st = server_->fail(FinalName(remote_name), n);
      if (!st.ok()) return st;
    }
    std::ifstream in(local_path, std::ios::binary);
    server_->files[remote_name] =
        std::string((std::istreambuf_iterator<char>(in)), {});
    return OkStatus();
  }
  Status Rename(const std::string& from, const std::string& to,
                bool replace) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    if (!server_->files.count(from)) return NotFoundError(from);
    if (!replace && server_->files.count(to)) return AlreadyExistsError(to);
    server_->files[to] = std::move(server_->files[from]);
    server_->files.erase(from);
    return OkStatus();
  }
  StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    auto it = server_->files.find(remote_name);
    if (it == server_->files.end()) return std::optional<uint64_t>();
    return std::optional<uint64_t>(it->second.size());
  }
  Status Remove(const std::string& remote_name) override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->files.erase(remote_name);
    return OkStatus();
  }
  std::string Describe() const override { return "scripted://"; }

  // ".visa_001.csv.0123456789abcdef.part" -> "visa_001.csv"
  static std::string FinalName(const std::string& temp) {
    std::string rest = temp.substr(1);
    for (int i = 0; i < 2 && rest.rfind('.') != std::string::npos; ++i)
      rest = rest.substr(0, rest.rfind('.'));
    return rest;
  }

 private:
  ScriptedServer* server_;
};

// Every destination delivers to one scripted server, retried by the
// engine under its policy (no waiting: a FakeEnv), with the in-memory
// ledger: no servers, no root.
class EngineDeliveryTest : public InProcessRunTest {
 protected:
  void SetUp() override {
    InProcessRunTest::SetUp();
    for (DestinationConfig& d : config_.destinations) {
      d.retry.max_attempts = 4;
      d.temp_suffix = ".part";
    }
    memory_ledger_ = std::make_unique<InMemoryDeliveryLedger>(&fake_);
  }
  InProcessOptions Options() {
    InProcessOptions options;
    options.make_transport = [this](const DestinationConfig&) {
      return StatusOr<std::unique_ptr<Transport>>(
          std::make_unique<ScriptedTransport>(&server_));
    };
    return options;
  }
  InputResult Run() {
    InProcessRunner runner(config_, memory_ledger_.get(), &fake_, kNow,
                           Options());
    return runner.Process(input_);
  }
  // Two visa files in one batch (one record per file), then one amex.
  void WriteTwoVisaFiles() {
    config_.limits.max_records_per_file = 1;
    std::ofstream(input_)
        << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n"
           "V1,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
           "10.00,USD,10.4\n"
           "V2,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
           "11.00,USD,10.4\n"
           "A1,amex,,M2,2025-03-01,2025-04-01,5.00,EUR,C08\n";
  }
  const DeliveredFile* File(const InputResult& r, const std::string& dest,
                            int nth) {
    for (const BatchResult& b : r.batches) {
      for (const DeliveredFile& f : b.files) {
        if (f.file.destination == dest && nth-- == 0) return &f;
      }
    }
    return nullptr;
  }

  FakeEnv fake_{kNow * 1000};
  ScriptedServer server_;
  std::unique_ptr<InMemoryDeliveryLedger> memory_ledger_;
};

TEST_F(EngineDeliveryTest, AFailedFileListsEveryAttemptOfItsRunOnly) {
  server_.fail = [](const std::string& name, int) {
    return name.rfind("visa", 0) == 0 ? UnavailableError("connection reset")
                                      : OkStatus();
  };
  for (int run = 1; run <= 2; ++run) {
    InputResult r = Run();
    EXPECT_FALSE(r.ok());
    const DeliveredFile* visa = File(r, "visa", 0);
    ASSERT_NE(visa, nullptr);
    EXPECT_EQ(visa->delivery.outcome, DeliveryOutcome::kFailed);
    // The destination's four tries, each one attempt of the file; the
    // second run reports its own four, not the first run's too.
    ASSERT_EQ(visa->delivery.attempts.size(), 4u) << "run " << run;
    for (const AttemptRecord& a : visa->delivery.attempts) {
      EXPECT_EQ(a.error_class, "transient");
      EXPECT_EQ(a.code, "UNAVAILABLE");
      EXPECT_EQ(a.message, "connection reset");
    }
    EXPECT_EQ(visa->delivery.error.ToString(), "UNAVAILABLE: connection reset");
    const DeliveredFile* amex = File(r, "amex", 0);
    ASSERT_NE(amex, nullptr);
    EXPECT_EQ(amex->delivery.outcome, run == 1
                                          ? DeliveryOutcome::kDelivered
                                          : DeliveryOutcome::kAlreadyDelivered);
  }
  EXPECT_EQ(memory_ledger_->FailedAttempts("visa", File(Run(), "visa", 0)
                                                       ->file.name)
                ->size(),
            12u);
}

TEST_F(EngineDeliveryTest, AFileDeliveredInAnEarlierTryOfTheRunIsDelivered) {
  WriteTwoVisaFiles();
  // The second visa file fails its first upload: the engine tries the
  // destination again, and finds the first file in the ledger.
  std::string second;
  server_.fail = [&second](const std::string& name, int n) {
    if (name.rfind("visa", 0) != 0) return OkStatus();
    if (second.empty() || second == name) {
      second = name;
      return OkStatus();
    }
    return n == 1 ? UnavailableError("timeout") : OkStatus();
  };
  InputResult r = Run();
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  const DeliveredFile* first = File(r, "visa", 0);
  const DeliveredFile* other = File(r, "visa", 1);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(first->delivery.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(other->delivery.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(server_.uploads[first->file.name], 1);
  EXPECT_EQ(server_.uploads[other->file.name], 2);
  // A later run: everything was delivered by an earlier one.
  InputResult again = Run();
  ASSERT_TRUE(again.ok()) << again.error.ToString();
  for (const BatchResult& b : again.batches) {
    for (const DeliveredFile& f : b.files)
      EXPECT_EQ(f.delivery.outcome, DeliveryOutcome::kAlreadyDelivered)
          << f.file.name;
  }
}

TEST_F(EngineDeliveryTest, APermanentFailureDoesNotStopRetriesOfAnotherFile) {
  WriteTwoVisaFiles();
  std::string first;
  server_.fail = [&first](const std::string& name, int n) {
    if (name.rfind("visa", 0) != 0) return OkStatus();
    if (first.empty()) first = name;
    if (name == first) return PermissionDeniedError("no write access");
    return n <= 2 ? UnavailableError("busy") : OkStatus();
  };
  InputResult r = Run();
  EXPECT_FALSE(r.ok());
  const DeliveredFile* refused = File(r, "visa", 0);
  const DeliveredFile* busy = File(r, "visa", 1);
  ASSERT_NE(refused, nullptr);
  ASSERT_NE(busy, nullptr);
  ASSERT_EQ(refused->file.name, first);
  // One attempt: a permanent error is not tried again in the run...
  EXPECT_EQ(refused->delivery.outcome, DeliveryOutcome::kFailed);
  ASSERT_EQ(refused->delivery.attempts.size(), 1u);
  EXPECT_EQ(refused->delivery.attempts[0].error_class, "permanent");
  EXPECT_EQ(refused->delivery.error.ToString(),
            "PERMISSION_DENIED: no write access");
  EXPECT_EQ(server_.uploads[first], 1);
  // ...while the other file's transient errors are, until it goes out.
  EXPECT_EQ(busy->delivery.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(server_.uploads[busy->file.name], 3);
  EXPECT_EQ(File(r, "amex", 0)->delivery.outcome,
            DeliveryOutcome::kDelivered);
}

TEST_F(EngineDeliveryTest, ABatchFailingVerificationDoesNotStopTheOthers) {
  config_.limits.max_files_per_batch = 1;  // visa and amex: two batches
  InProcessOptions options = Options();
  int verified = 0;
  options.before_step = [&](std::string_view step, const nlohmann::json& in) {
    if (step != "verify" || verified++ != 0) return;
    const std::string id = in["batch"]["id"];
    const std::string name = in["batch"]["files"][0]["name"];
    std::ofstream(root_ / "work/batches" / id / name, std::ios::app) << "x";
  };
  InProcessRunner runner(config_, memory_ledger_.get(), &fake_, kNow, options);
  InputResult r = runner.Process(input_);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.batches.size(), 2u);
  EXPECT_EQ(r.batches[0].verify.code(), StatusCode::kDataLoss);
  ASSERT_EQ(r.batches[0].files.size(), 1u);
  EXPECT_EQ(r.batches[0].files[0].delivery.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.batches[0].files[0].delivery.error.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(r.batches[0].files[0].delivery.attempts.empty());
  EXPECT_TRUE(r.batches[1].ok());
  ASSERT_EQ(r.batches[1].files.size(), 1u);
  EXPECT_EQ(r.batches[1].files[0].delivery.outcome,
            DeliveryOutcome::kDelivered);
  EXPECT_EQ(*memory_ledger_->CountDelivered(), 1);
}

TEST_F(EngineDeliveryTest, AnUnreadableInputIsQuarantinedWithItsCounts) {
  config_.reject_thresholds.max_rejected_records = 0;
  InputResult r = Run();  // X1 has a bad ARN: over the limit
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.error.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(r.scan.records, 3u);
  EXPECT_EQ(r.scan.rejected, 1u);
  ASSERT_EQ(r.input_id.size(), 16u);
  EXPECT_EQ(r.quarantine_dir,
            config_.work_dir + "/quarantine/" + r.input_id);
  EXPECT_EQ(r.rejects_file,
            config_.work_dir + "/runs/" + r.input_id + "/rejects.csv");
  std::ifstream reason(r.quarantine_dir + "/reason.txt");
  std::string text((std::istreambuf_iterator<char>(reason)), {});
  EXPECT_EQ(text, "input: " + input_ + "\n" + r.error.ToString() + "\n");
  EXPECT_TRUE(fs::exists(r.quarantine_dir + "/in.csv"));
  EXPECT_TRUE(fs::exists(input_));  // the original kept
  EXPECT_TRUE(server_.uploads.empty());
}

}  // namespace
}  // namespace cbpipe
