// The workflow's steps, one at a time through RunStep and whole through the
// engine, over local adapters only (folder stores and a SQLite ledger in a
// temporary folder, file:// destinations, a notifier that keeps what it is
// told, a FakeEnv): no root, no servers.
#include "workflow/steps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "deliver/local_transport.h"
#include "ingest/test_gzip.h"
#include "ledger/sqlite_ledger.h"
#include "runs/sqlite_run_store.h"
#include "workflow/engine.h"
#include "workflow/in_process_run.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using json = nlohmann::json;

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

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class WorkflowStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("steps_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "objects");
    fs::create_directories(root_ / "work");
    config_ = DefaultConfig((root_ / "work").string());
    auto runs = SqliteRunStore::Open((root_ / "state.db").string(), &env_);
    ASSERT_TRUE(runs.ok()) << runs.status().ToString();
    runs_ = std::move(*runs);
    auto ledger =
        SqliteDeliveryLedger::Open((root_ / "ledger.db").string(), &env_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    inputs_ = std::make_unique<LocalFolderStore>((root_ / "objects").string());
    work_ = std::make_unique<LocalFolderStore>((root_ / "work").string());
    ports_.config = &config_;
    ports_.work = work_.get();
    ports_.inputs = inputs_.get();
    ports_.ledger = ledger_.get();
    ports_.notifier = &notifier_;
    ports_.env = &env_;
  }
  void TearDown() override { fs::remove_all(root_); }

  // The input stored as the service stores it; the scan step's input.
  json Stored(const std::string& path, const std::string& run_id) {
    const std::string key = "inputs/" + run_id;
    EXPECT_TRUE(inputs_->PutFile(key, path).ok());
    return {{"run_id", run_id},
            {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
            {"now_ms", kNowMs},
            {"input_key", key},
            {"input_name", fs::path(path).filename().string()}};
  }

  // Runs cbpipe_workflow.json on the file at `path` as the service would.
  // `steps` (RunStep over ports_ when empty) may wrap the steps.
  RunOutcome RunInput(const std::string& path, const std::string& run_id,
                      StepRunner steps = nullptr) {
    const json input = Stored(path, run_id);
    RunRecord run;
    run.run_id = run_id;
    run.input_key = input["input_key"];
    run.input_name = input["input_name"];
    run.created_ms = kNowMs;
    EXPECT_TRUE(runs_->CreateIfAbsent(run).ok());
    StatusOr<WorkflowDefinition> definition = CbpipeWorkflowDefinition();
    EXPECT_TRUE(definition.ok()) << definition.status().ToString();
    WorkflowEngine engine(&*definition, runs_.get(), &env_,
                          steps ? std::move(steps) : StepsOver(ports_));
    std::atomic<bool> stop{false};
    return engine.Resume(run_id, InitialInput(run), &stop);
  }

  StatusOr<json> Step(std::string_view name, const json& input) {
    return RunStep(name, input, ports_);
  }

  // The first deliver input of the file at `path`, after scan and verify
  // (null when either failed).
  json FirstDelivery(const std::string& path, const std::string& run_id) {
    const json input = Stored(path, run_id);
    StatusOr<json> scanned = Step("scan", input);
    EXPECT_TRUE(scanned.ok()) << scanned.status().ToString();
    if (!scanned.ok()) return nullptr;
    json verify_in = {{"run_id", input["run_id"]},
                      {"trace_id", input["trace_id"]},
                      {"now_ms", input["now_ms"]},
                      {"batch", (*scanned)["batches"][0]}};
    StatusOr<json> verified = Step("verify", verify_in);
    EXPECT_TRUE(verified.ok()) << verified.status().ToString();
    if (!verified.ok()) return nullptr;
    return (*verified)["deliveries"][0];
  }

  // The id `cbpipe run` names an input by: its SHA-256's first 16 digits.
  static std::string ContentId(const std::string& path) {
    StatusOr<std::string> sha = Sha256File(path);
    EXPECT_TRUE(sha.ok()) << sha.status().ToString();
    return sha.ok() ? sha->substr(0, 16) : "";
  }

  // The same input as `cbpipe run` runs it (InProcessRunner: the whole
  // workflow on the engine), in a work dir of its own (work2), at the same
  // clock.
  InputResult ProcessElsewhere(const std::string& path, Config* other) {
    *other = DefaultConfig((root_ / "work2").string());
    auto ledger =
        SqliteDeliveryLedger::Open((root_ / "ledger2.db").string(), &env_);
    EXPECT_TRUE(ledger.ok());
    InProcessRunner runner(*other, ledger->get(), &env_, kNowMs / 1000);
    return runner.Process(path);
  }

  int Delivered() {
    int files = 0;
    std::error_code ec;
    for (const auto& e :
         fs::recursive_directory_iterator(root_ / "work/outbox", ec))
      files += e.is_regular_file();
    return files;
  }

  std::string WriteCsv(const std::string& name, int invalid, int valid,
                       const std::string& extra_rows = "") {
    const std::string path = (root_ / name).string();
    std::ofstream out(path);
    out << "case_id,network,arn,merchant_id,transaction_date,"
           "chargeback_date,amount,currency,reason_code\n";
    for (int i = 0; i < valid; ++i)
      out << "A" << i << ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    for (int i = 0; i < invalid; ++i)
      out << "X" << i << ",visa,123,M,2025-03-01,2025-04-01,1.00,USD,10.4\n";
    out << extra_rows;
    return path;
  }

  fs::path root_;
  Config config_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<LocalFolderStore> inputs_, work_;
  KeepingNotifier notifier_;
  FakeEnv env_{kNowMs};
  Ports ports_;
};

TEST_F(WorkflowStepsTest, EventsCarryTheClocksMilliseconds) {
  RunOutcome out = RunInput(WriteCsv("ok.csv", 0, 3), "0123456789abcdef");
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(Delivered(), 1);
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
  RunOutcome out = RunInput(WriteCsv("bad.csv", 6, 10), "00000000000000aa");
  EXPECT_EQ(out.state, "rejected") << out.error;
  EXPECT_EQ(Delivered(), 0);
  // Quarantined with the reason, and the reason told.
  const std::string text =
      ReadAll(root_ / "work/quarantine/00000000000000aa/reason.txt");
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
  RunOutcome out = RunInput(bomb, "00000000000000bb");
  EXPECT_EQ(out.state, "rejected") << out.error;
  EXPECT_EQ(Delivered(), 0);
  bool told = false;
  for (const Event& e : notifier_.events()) {
    told |= e.type == kEventInputRejected &&
            e.message.find("input.max_compression_ratio") != std::string::npos;
  }
  EXPECT_TRUE(told);
}

// An input run rejects: the steps called one by one with name_by_content
// quarantine it as `cbpipe run` does (same folder, same reason.txt, the
// input named as given).
TEST_F(WorkflowStepsTest, RejectedInputNamedByContentIsQuarantinedAsRunDoes) {
  const std::string bomb = (root_ / "bomb.csv.gz").string();
  ASSERT_TRUE(testing::WriteGzipBomb(bomb, "case_id,network\n", 1ull << 30));
  // As `run` will give it: the key is the path (rooted at /), so messages
  // and the quarantine's copy name the input as it was given.
  LocalFolderStore given("/");
  ports_.inputs = &given;
  json input = Stored(bomb, "some-run");
  input["input_key"] = bomb.substr(1);
  input["name_by_content"] = true;
  input["input_name"] = bomb;
  StatusOr<json> scanned = Step("scan", input);
  ASSERT_FALSE(scanned.ok());
  EXPECT_EQ(scanned.status().code(), StatusCode::kInvalidArgument);
  json caught = input;
  caught["error"] = {{"Error", "INVALID_ARGUMENT"},
                     {"Cause", scanned.status().message()}};
  StatusOr<json> rejected = Step("reject_input", caught);
  ASSERT_TRUE(rejected.ok()) << rejected.status().ToString();
  const std::string id = ContentId(bomb);
  EXPECT_EQ((*rejected)["input_id"], id);
  EXPECT_EQ((*rejected)["quarantine"], "quarantine/" + id);

  Config other;
  InputResult r = ProcessElsewhere(bomb, &other);
  ASSERT_FALSE(r.error.ok());
  ASSERT_EQ(r.quarantine_dir, other.work_dir + "/quarantine/" + id);
  const std::string reason = ReadAll(root_ / "work/quarantine" / id / "reason.txt");
  EXPECT_THAT(reason, HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_EQ(reason, ReadAll(fs::path(r.quarantine_dir) / "reason.txt"));
  const std::string copy =
      ReadAll(root_ / "work/quarantine" / id / "bomb.csv.gz");
  EXPECT_FALSE(copy.empty());
  EXPECT_TRUE(copy == ReadAll(fs::path(r.quarantine_dir) / "bomb.csv.gz"));
  bool told = false;
  for (const Event& e : notifier_.events())
    told |= e.type == kEventInputRejected &&
            e.message.find("not processed: " + bomb + ": gzip data") !=
                std::string::npos;
  EXPECT_TRUE(told);
  ports_.inputs = inputs_.get();
}

// The seam with the engine: cbpipe_workflow.json run by WorkflowEngine over
// RunStep, as serve runs it.
TEST_F(WorkflowStepsTest, TheWorkflowDefinitionRunsTheseSteps) {
  RunOutcome ok = RunInput(WriteCsv("ok.csv", 1, 3), "00000000000000e1");
  EXPECT_EQ(ok.state, "succeeded") << ok.error;
  EXPECT_EQ(Delivered(), 1);
  // replay, `runs show` and the admin API read the scan step's checkpoint.
  StatusOr<RunRecord> stored = runs_->Get("00000000000000e1");
  ASSERT_TRUE(stored.ok());
  bool scanned = false;
  for (const StepRecord& step : stored->steps) {
    if (step.name != "scan" || step.state != "succeeded") continue;
    scanned = true;
    const json out = json::parse(step.output_json, nullptr, false);
    ASSERT_TRUE(out.is_object() && out.contains("batches")) << step.output_json;
    EXPECT_EQ(out["batches"].size(), 1u);
  }
  EXPECT_TRUE(scanned);
}

// A batch failing verification does not stop the others: they are
// delivered, the run fails at settle, and its redrive starts at scan (so
// the corrupted batch is written again), where verify's redrive points.
TEST_F(WorkflowStepsTest, ABatchFailingVerificationFailsTheRunFromScan) {
  config_.limits.max_files_per_batch = 1;  // visa and amex: two batches
  const std::string path = WriteCsv(
      "two.csv", 0, 2,
      "V1,visa,74567890123456789012341,M1,2025-03-01,2025-04-01,"
      "10.00,USD,10.4\n");
  const std::string run_id = "00000000000000b2";
  bool corrupt = true;
  StepRunner steps = [&](std::string_view name, const json& in) {
    if (name == "verify" && corrupt && in["batch"]["id"] == run_id + "-b001") {
      const std::string file = in["batch"]["files"][0]["name"];
      std::ofstream(root_ / "work/batches" / (run_id + "-b001") / file,
                    std::ios::app)
          << "x";
    }
    return RunStep(name, in, ports_);
  };
  RunOutcome failed = RunInput(path, run_id, steps);
  EXPECT_EQ(failed.state, "failed");
  EXPECT_EQ(failed.redrive_from, "scan");
  EXPECT_EQ(Delivered(), 1);  // the other batch
  bool batch_failed = false;
  for (const Event& e : notifier_.events())
    batch_failed |= e.type == kEventBatchFailed &&
                    e.batch_id == run_id + "-b001";
  EXPECT_TRUE(batch_failed);

  corrupt = false;  // the redrive writes the batch again from the input
  RunOutcome redriven = RunInput(path, run_id, steps);
  EXPECT_EQ(redriven.state, "succeeded") << redriven.error;
  EXPECT_EQ(Delivered(), 2);
}

// A file whose delivery failed permanently is tried again by a later
// deliver of the same run once no other file is being retried (a redrive
// after the cause was fixed), and counts the run's earlier attempt.
TEST_F(WorkflowStepsTest, APermanentFailureIsTriedAgainOnRedrive) {
  const json item =
      FirstDelivery(WriteCsv("perm.csv", 0, 2), "00000000000000d1");
  ASSERT_FALSE(item.is_null());
  ASSERT_EQ(item["destination"], "amex");
  // The destination's folder is a file: NOT_FOUND, permanent.
  fs::create_directories(root_ / "work/outbox");
  std::ofstream(root_ / "work/outbox/amex") << "not a folder";
  StatusOr<json> failed = Step("deliver", item);
  ASSERT_FALSE(failed.ok());
  EXPECT_FALSE(failed.status().IsTransient()) << failed.status().ToString();
  fs::remove(root_ / "work/outbox/amex");
  StatusOr<json> redriven = Step("deliver", item);
  ASSERT_TRUE(redriven.ok()) << redriven.status().ToString();
  EXPECT_EQ((*redriven)["files"][0]["status"], "delivered");
  EXPECT_EQ((*redriven)["files"][0]["attempts"], 1);
  EXPECT_EQ(Delivered(), 1);
}

TEST_F(WorkflowStepsTest, DeliverStopsBeforeAFileWhenAskedTo) {
  const json item =
      FirstDelivery(WriteCsv("stop.csv", 0, 2), "00000000000000d2");
  ASSERT_FALSE(item.is_null());
  std::atomic<bool> stop{true};
  ports_.stop = &stop;
  StatusOr<json> stopped = Step("deliver", item);
  EXPECT_EQ(stopped.status().code(), StatusCode::kDeadlineExceeded)
      << stopped.status().ToString();
  EXPECT_EQ(Delivered(), 0);
  stop = false;  // the retry delivers
  StatusOr<json> delivered = Step("deliver", item);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  EXPECT_EQ(Delivered(), 1);
}

// The bug this shape fixes: the service read the clock in validate and
// again in generate, so a record a second in the future at validate could
// be accepted when generate was redriven later. Now the run's clock is in
// the input: a redrive a day later decides the same.
TEST_F(WorkflowStepsTest, RedriveOfEveryStepGivesTheSameResult) {
  // kNowMs is 20:26:40.123; this record is dated 20:26:41, a second ahead.
  const std::string path =
      WriteCsv("edge.csv", 1, 4,
               "F1,amex,,M,2025-03-01,2026-05-28T20:26:41Z,1.00,USD,C08\n");
  const json input = Stored(path, "00000000000000cc");
  StatusOr<json> scanned = Step("scan", input);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  EXPECT_EQ((*scanned)["accepted"], 4);
  EXPECT_EQ((*scanned)["rejected"], 2);  // the invalid one and the future one
  const std::string rejects =
      ReadAll(root_ / "work/runs/00000000000000cc/rejects.csv");
  EXPECT_THAT(rejects, HasSubstr("F1"));
  ASSERT_EQ((*scanned)["batches"].size(), 1u);
  const std::string manifest = (*scanned)["batches"][0]["manifest"];
  const std::string manifest_bytes = ReadAll(root_ / "work" / manifest);

  // A day later (the real clock moved on; the run's did not).
  env_.AdvanceMs(24LL * 3600 * 1000);
  StatusOr<json> again = Step("scan", input);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *scanned);
  EXPECT_EQ(ReadAll(root_ / "work/runs/00000000000000cc/rejects.csv"),
            rejects);
  EXPECT_EQ(ReadAll(root_ / "work" / manifest), manifest_bytes);

  json verify_in = {{"run_id", input["run_id"]},
                    {"trace_id", input["trace_id"]},
                    {"now_ms", input["now_ms"]},
                    {"batch",
                     {{"id", (*scanned)["batches"][0]["id"]},
                      {"manifest", manifest}}}};
  StatusOr<json> verified = Step("verify", verify_in);
  ASSERT_TRUE(verified.ok()) << verified.status().ToString();
  StatusOr<json> verified_again = Step("verify", verify_in);
  ASSERT_TRUE(verified_again.ok());
  EXPECT_EQ(*verified_again, *verified);
  ASSERT_EQ((*verified)["deliveries"].size(), 1u);
  const json item = (*verified)["deliveries"][0];
  EXPECT_EQ(item["destination"], "amex");
  EXPECT_TRUE(item.contains("retry"));

  // A redriven delivery sends nothing twice: the same file under the same
  // name, found in the ledger as this run's delivery, so the redrive's
  // output is the first attempt's.
  StatusOr<json> delivered = Step("deliver", item);
  ASSERT_TRUE(delivered.ok()) << delivered.status().ToString();
  EXPECT_EQ((*delivered)["files"][0]["status"], "delivered");
  StatusOr<json> redelivered = Step("deliver", item);
  ASSERT_TRUE(redelivered.ok()) << redelivered.status().ToString();
  EXPECT_EQ(*redelivered, *delivered);
  EXPECT_EQ(Delivered(), 1);
  // Another run of the same file finds an earlier run's delivery.
  json other_run = item;
  other_run["run_id"] = "another-run";
  StatusOr<json> elsewhere = Step("deliver", other_run);
  ASSERT_TRUE(elsewhere.ok()) << elsewhere.status().ToString();
  EXPECT_EQ((*elsewhere)["files"][0]["status"], "already_delivered");
  EXPECT_EQ(Delivered(), 1);

  json tail = *scanned;
  tail["deliveries"] = {{{"id", (*delivered)["id"]},
                         {"files", (*delivered)["files"]}}};
  const json caught = {{"error", {{"code", "DATA_LOSS"}, {"message", "m"}}},
                       {"input", input}};
  for (const auto& [name, in] : std::vector<std::pair<const char*, json>>{
           {"notify", tail},
           {"settle", tail},
           {"reject_input", caught},
           {"record_failure", caught}}) {
    StatusOr<json> once = Step(name, in);
    StatusOr<json> twice = Step(name, in);
    ASSERT_TRUE(once.ok()) << name << ": " << once.status().ToString();
    ASSERT_TRUE(twice.ok()) << name;
    EXPECT_EQ(*once, *twice) << name;
  }
}

// `cbpipe run` names batches and rejects by the input's content, learnt
// while reading: scan with name_by_content writes exactly what a whole
// `cbpipe run` of the input writes, whatever the run is called.
TEST_F(WorkflowStepsTest, ScanNamedByContentWritesWhatRunWrites) {
  const std::string path =
      WriteCsv("by_content.csv", 2, 5,
               "F1,amex,,M,2025-03-01,2026-05-28T20:26:41Z,1.00,USD,C08\n");
  json input = Stored(path, "run-of-some-other-name");
  input["name_by_content"] = true;
  StatusOr<json> scanned = Step("scan", input);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  const std::string input_id = ContentId(path);
  EXPECT_EQ((*scanned)["input_id"], input_id);
  EXPECT_EQ((*scanned)["rejects_key"], "runs/" + input_id + "/rejects.csv");
  EXPECT_FALSE(fs::exists(root_ / "work/runs/run-of-some-other-name"));
  for (const auto& e : fs::directory_iterator(root_ / "work/runs"))
    EXPECT_THAT(e.path().filename().string(),
                ::testing::Not(::testing::StartsWith("pending-")));
  // A redrive names and writes the same.
  StatusOr<json> again = Step("scan", input);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *scanned);

  Config other;
  InputResult r = ProcessElsewhere(path, &other);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.input_id, input_id);
  EXPECT_EQ(ReadAll(root_ / "work" / (*scanned)["rejects_key"].get<std::string>()),
            ReadAll(r.rejects_file));
  ASSERT_EQ((*scanned)["batches"].size(), r.batches.size());
  for (size_t i = 0; i < r.batches.size(); ++i) {
    const json& b = (*scanned)["batches"][i];
    EXPECT_EQ(b["id"], r.batches[i].batch.id);
    EXPECT_EQ(b["manifest"].get<std::string>(),
              fs::path(r.batches[i].batch.manifest_path)
                  .lexically_relative(other.work_dir)
                  .generic_string());
    ASSERT_EQ(b["files"].size(), r.batches[i].files.size());
    for (size_t f = 0; f < r.batches[i].files.size(); ++f) {
      EXPECT_EQ(b["files"][f]["name"], r.batches[i].files[f].file.name);
      EXPECT_EQ(b["files"][f]["sha256"], r.batches[i].files[f].file.sha256);
    }
  }
}

TEST_F(WorkflowStepsTest, ScanDecidesByTheRunsClockNotTheEnvs) {
  const std::string path =
      WriteCsv("edge.csv", 0, 1,
               "F1,amex,,M,2025-03-01,2026-05-28T20:26:41Z,1.00,USD,C08\n");
  json input = Stored(path, "00000000000000dd");
  env_.SetNowMs(kNowMs + 3600 * 1000);  // the env says it is not future
  StatusOr<json> before = Step("scan", input);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ((*before)["rejected"], 1);
  input["now_ms"] = kNowMs + 1000;  // a run started a second later
  StatusOr<json> after = Step("scan", input);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ((*after)["rejected"], 0);
  EXPECT_EQ((*after)["accepted"], 2);
}

TEST_F(WorkflowStepsTest, GarbageInputIsAClearErrorNeverAThrow) {
  const json header = {{"run_id", "00000000000000ee"},
                       {"trace_id", ""},
                       {"now_ms", kNowMs}};
  json wrong_clock = header;
  wrong_clock["now_ms"] = "soon";
  json bad_id = header;
  bad_id["run_id"] = "../etc";
  const std::vector<json> garbage = {
      json(nullptr), json::array({1, 2}), json("scan"), json(42),
      json::object(), json{{"run_id", 5}}, wrong_clock, bad_id,
      // Keys of the right name with the wrong shape.
      json{{"run_id", "00000000000000ee"}, {"trace_id", ""},
           {"now_ms", kNowMs}, {"input_key", 7}, {"batch", "b"},
           {"deliveries", {{"id", 1}}}, {"error", "x"}, {"input", 3},
           {"destination", json::array()}}};
  for (const char* name : {"scan", "verify", "deliver", "notify", "settle",
                           "reject_input", "record_failure"}) {
    for (const json& in : garbage) {
      StatusOr<json> out = InternalError("not run");
      ASSERT_NO_THROW(out = Step(name, in)) << name << " " << in.dump();
      ASSERT_FALSE(out.ok()) << name << " " << in.dump();
      EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument)
          << name << " " << in.dump() << ": " << out.status().ToString();
      EXPECT_THAT(out.status().message(), HasSubstr("step input"))
          << name << " " << in.dump();
    }
  }
  // The key at fault is named.
  StatusOr<json> out = Step("scan", wrong_clock);
  EXPECT_THAT(out.status().message(), HasSubstr("\"now_ms\" must be"));
  json deliver = header;
  deliver["destination"] = "amex";
  deliver["replay"] = "yes";
  deliver["batch"] = {{"id", "b"}, {"manifest", "batches/b/manifest.json"}};
  out = Step("deliver", deliver);
  EXPECT_THAT(out.status().message(), HasSubstr("\"replay\""));
  // An unknown step is not a bad input.
  EXPECT_EQ(Step("generate", header).status().code(), StatusCode::kNotFound);
}

// cbpipe_workflow.json's shapes: the Map's nested result and Catch with
// ResultPath $.error.
TEST_F(WorkflowStepsTest, NotifySettleAndCatchStepsTakeTheDefinitionsShapes) {
  const json file = {{"destination", "visa"}, {"name", "v.txt"},
                     {"records", 2}, {"bytes", 9}, {"totals", {{"USD", 5}}}};
  json delivered = file;
  delivered["status"] = "delivered";
  json tail = {{"run_id", "00000000000000a7"}, {"trace_id", ""},
               {"now_ms", kNowMs}};
  tail["deliveries"] = json::array(
      {{{"id", "00000000000000a7-b001"},
        {"manifest", "batches/00000000000000a7-b001/manifest.json"},
        {"deliveries",
         json::array({{{"id", "00000000000000a7-b001"},
                       {"destination", "visa"},
                       {"files", json::array({delivered})}},
                      {{"destination", "amex"},
                       {"files", json::array({file})},
                       {"error",
                        {{"Error", "UNAVAILABLE"},
                         {"Cause", "server busy"}}}}})}}});
  ASSERT_TRUE(Step("notify", tail).ok());
  int failed_events = 0;
  for (const Event& e : notifier_.events()) {
    if (e.type == kEventDeliveryFailed) {
      ++failed_events;
      EXPECT_THAT(e.message, HasSubstr("server busy"));
    }
  }
  EXPECT_EQ(failed_events, 1);
  StatusOr<json> settled = Step("settle", tail);
  EXPECT_EQ(settled.status().code(), StatusCode::kAborted);
  EXPECT_THAT(settled.status().message(), HasSubstr("1 file(s)"));

  const json input = Stored(WriteCsv("caught.csv", 0, 1), "00000000000000a7");
  json caught = input;
  caught["error"] = {{"Error", "INVALID_ARGUMENT"}, {"Cause", "too big"}};
  StatusOr<json> rejected = Step("reject_input", caught);
  ASSERT_TRUE(rejected.ok()) << rejected.status().ToString();
  EXPECT_EQ((*rejected)["quarantine"], "quarantine/00000000000000a7");
  EXPECT_THAT(ReadAll(root_ / "work/quarantine/00000000000000a7/reason.txt"),
              HasSubstr("too big"));
  EXPECT_TRUE(Step("record_failure", caught).ok());
}

TEST_F(WorkflowStepsTest, DeliveryOfAMissingManifestIsDataLoss) {
  json item = {{"run_id", "00000000000000ff"}, {"trace_id", ""},
               {"now_ms", kNowMs}, {"destination", "amex"},
               {"batch", {{"id", "x-b001"},
                          {"manifest", "batches/x-b001/manifest.json"}}}};
  StatusOr<json> out = Step("deliver", item);
  EXPECT_EQ(out.status().code(), StatusCode::kDataLoss)
      << out.status().ToString();
}

TEST(RunWithRetryTest, RetriesTransientErrorsUnderThePolicyOnly) {
  FakeEnv env;
  RetryPolicy policy{1.0, 2.0, 3, 60.0, false};
  int calls = 0;
  StepRunner failing = [&calls](std::string_view, const json&)
      -> StatusOr<json> {
    ++calls;
    return UnavailableError("server busy");
  };
  int attempts = 0;
  StatusOr<json> out =
      RunWithRetry(failing, "deliver", json::object(), policy, &env, nullptr,
                   &attempts);
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(env.sleeps(), (std::vector<double>{1.0, 2.0}));

  calls = 0;
  StepRunner refused = [&calls](std::string_view, const json&)
      -> StatusOr<json> {
    ++calls;
    return PermissionDeniedError("no");
  };
  out = RunWithRetry(refused, "deliver", json::object(), policy, &env, nullptr,
                     &attempts);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(attempts, 1);

  // A stop request cuts the wait short and returns the last error.
  calls = 0;
  std::atomic<bool> stop{true};
  out = RunWithRetry(failing, "deliver", json::object(), policy, &env, &stop,
                     &attempts);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(out.ok());
}

TEST(RunDeliveriesTest, ADeliveryThatKeepsFailingBecomesFailedFiles) {
  FakeEnv env;
  StepRunner failing = [](std::string_view, const json&) -> StatusOr<json> {
    return UnavailableError("server busy");
  };
  const json items = json::array(
      {{{"destination", "visa"},
        {"retry", {{"max_attempts", 2}, {"interval_seconds", 0.5}}},
        {"files",
         {{{"destination", "visa"}, {"name", "a.txt"}, {"records", 3},
           {"bytes", 10}, {"totals", {{"USD", 300}}}}}}}});
  const json files = RunDeliveries(failing, items, &env, nullptr);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0]["status"], "failed");
  EXPECT_EQ(files[0]["attempts"], 2);
  EXPECT_THAT(files[0]["error"].get<std::string>(), HasSubstr("server busy"));
  EXPECT_EQ(files[0]["records"], 3);
}

}  // namespace
}  // namespace cbpipe
