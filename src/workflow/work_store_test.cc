// The workflow over a work store that is not the work folder (an
// InMemoryObjectStore): the same keys and bytes as over the folder, the
// scratch folder empty afterwards, every local copy released, and redrives
// of scan and deliver that change nothing. No root, no servers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "ledger/in_memory_ledger.h"
#include "store/memory_store.h"
#include "workflow/in_process_run.h"
#include "workflow/steps.h"
#include "workflow/work_store_test_util.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::FileBytes;
using testing::FolderBytes;
using testing::HoldCountingStore;
using testing::StoreBytes;

constexpr int64_t kNow = 1748779200;  // 2025-06-01

class WorkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("work_store_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    input_ = (root_ / "in.csv").string();
    std::ofstream(input_) << testing::kTwoNetworksAndAReject;
  }
  void TearDown() override { fs::remove_all(root_); }

  // A configuration writing under root_/<name>, one file per batch (so the
  // run has two batches).
  Config ConfigAt(const std::string& name) {
    Config c = DefaultConfig((root_ / name).string());
    c.limits.max_files_per_batch = 1;
    return c;
  }

  // `cbpipe run`'s runtime over `work` (null: the work folder itself).
  InputResult Run(const Config& config, ObjectStore* work) {
    InMemoryDeliveryLedger ledger(Env::Default());
    InProcessOptions options;
    options.work = work;
    InProcessRunner runner(config, &ledger, Env::Default(), kNow, options);
    return runner.Process(input_);
  }

  fs::path root_;
  std::string input_;
};

TEST_F(WorkStoreTest, AnInMemoryStoreGetsTheKeysAndBytesOfTheWorkFolder) {
  const Config local = ConfigAt("local");
  const InputResult in_folder = Run(local, nullptr);
  ASSERT_TRUE(in_folder.ok()) << in_folder.error.ToString();

  const Config other = ConfigAt("mem");
  InMemoryObjectStore memory;
  HoldCountingStore work(&memory);
  const InputResult in_store = Run(other, &work);
  ASSERT_TRUE(in_store.ok()) << in_store.error.ToString();

  // Same objects, same bytes: the folder's files but its deliveries.
  std::map<std::string, std::string> folder =
      FolderBytes(root_ / "local", /*skip=*/"outbox/");
  std::map<std::string, std::string> store = StoreBytes(memory);
  ASSERT_EQ(in_folder.batches.size(), 2u);
  EXPECT_EQ(folder.size(), 5u);  // 2 files, 2 manifests, the rejects
  EXPECT_EQ(store, folder);
  EXPECT_EQ(store.count("runs/" + in_store.input_id + "/rejects.csv"), 1u);
  // The same files delivered, byte for byte.
  std::map<std::string, std::string> sent = FolderBytes(root_ / "mem/outbox");
  EXPECT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent, FolderBytes(root_ / "local/outbox"));

  // The same report; its places are the store's.
  EXPECT_EQ(in_store.input_id, in_folder.input_id);
  ASSERT_EQ(in_store.batches.size(), in_folder.batches.size());
  for (size_t i = 0; i < in_store.batches.size(); ++i) {
    const BatchResult& a = in_folder.batches[i];
    const BatchResult& b = in_store.batches[i];
    EXPECT_EQ(b.batch.id, a.batch.id);
    EXPECT_EQ(a.batch.manifest_path,
              (root_ / "local/batches" / a.batch.id / "manifest.json").string());
    EXPECT_EQ(b.batch.manifest_path,
              "memory:///batches/" + b.batch.id + "/manifest.json");
    ASSERT_EQ(b.files.size(), a.files.size());
    for (size_t k = 0; k < b.files.size(); ++k) {
      EXPECT_EQ(b.files[k].file.name, a.files[k].file.name);
      EXPECT_EQ(b.files[k].file.sha256, a.files[k].file.sha256);
      EXPECT_EQ(b.files[k].delivery.outcome, DeliveryOutcome::kDelivered);
    }
  }
  EXPECT_EQ(in_folder.rejects_file, local.work_dir + "/runs/" +
                                        in_folder.input_id + "/rejects.csv");
  EXPECT_EQ(in_store.rejects_file,
            "memory:///runs/" + in_store.input_id + "/rejects.csv");

  // Nothing of it stays on this machine: the scratch folder is gone, and
  // every copy made for verify and deliver was released and removed.
  EXPECT_FALSE(fs::exists(root_ / "mem/batches"));
  EXPECT_FALSE(fs::exists(root_ / "mem/runs"));
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(root_ / "mem/staging", ec) || ec);
  EXPECT_GE(work.taken(), 4);  // each file, by verify and by deliver
  EXPECT_EQ(work.held(), 0);
  for (const std::string& path : work.paths()) EXPECT_FALSE(fs::exists(path));
}

TEST_F(WorkStoreTest, AnUnreadableInputIsQuarantinedInTheStore) {
  Config local = ConfigAt("local");
  local.reject_thresholds.max_rejected_records = 0;  // X1: over the limit
  const InputResult in_folder = Run(local, nullptr);
  ASSERT_FALSE(in_folder.quarantine_dir.empty());

  Config other = ConfigAt("mem");
  other.reject_thresholds.max_rejected_records = 0;
  InMemoryObjectStore memory;
  const InputResult in_store = Run(other, &memory);
  EXPECT_EQ(in_store.error.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(in_store.quarantine_dir,
            "memory:///quarantine/" + in_store.input_id);
  // The input's copy, its reason and the rejects so far, as in the folder.
  const std::string q = "quarantine/" + in_store.input_id;
  std::map<std::string, std::string> store = StoreBytes(memory);
  EXPECT_EQ(store[q + "/in.csv"], FileBytes(input_));
  EXPECT_EQ(store[q + "/reason.txt"],
            "input: " + input_ + "\n" + in_store.error.ToString() + "\n");
  EXPECT_EQ(store, FolderBytes(root_ / "local"));
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(root_ / "mem/staging", ec) || ec);
}

// The steps one at a time, as an orchestrator redriving them would call
// them.
class WorkStoreStepsTest : public WorkStoreTest {
 protected:
  void SetUp() override {
    WorkStoreTest::SetUp();
    config_ = ConfigAt("mem");
    inputs_ = std::make_unique<LocalFolderStore>((root_ / "objects").string());
    ASSERT_TRUE(inputs_->PutFile("inputs/r1", input_).ok());
    ports_.config = &config_;
    ports_.inputs = inputs_.get();
    ports_.ledger = &ledger_;
    ports_.env = Env::Default();
  }

  json ScanInput() const {
    return {{"run_id", "r1"},
            {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
            {"now_ms", kNow * 1000},
            {"input_key", "inputs/r1"},
            {"input_name", "in.csv"}};
  }

  StatusOr<json> Step(std::string_view name, const json& input,
                      ObjectStore* work) {
    ports_.work = work;
    return RunStep(name, input, ports_);
  }

  Config config_;
  std::unique_ptr<LocalFolderStore> inputs_;
  InMemoryDeliveryLedger ledger_{Env::Default()};
  Ports ports_;
};

TEST_F(WorkStoreStepsTest, ARedriveOfScanGivesTheSameKeysAndBytes) {
  InMemoryObjectStore memory;
  StatusOr<json> first = Step("scan", ScanInput(), &memory);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::map<std::string, std::string> objects = StoreBytes(memory);
  ASSERT_EQ((*first)["batches"].size(), 2u);
  StatusOr<json> again = Step("scan", ScanInput(), &memory);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(StoreBytes(memory), objects);

  // A scan that died putting its first manifest (after that batch's file):
  // no manifest without its files, and the redrive completes it as above.
  InMemoryObjectStore crashed;
  HoldCountingStore failing(&crashed);
  const std::string manifest = (*first)["batches"][0]["manifest"];
  failing.FailPutOnce(manifest);
  StatusOr<json> died = Step("scan", ScanInput(), &failing);
  EXPECT_EQ(died.status().code(), StatusCode::kUnavailable);
  const std::map<std::string, std::string> partial = StoreBytes(crashed);
  EXPECT_EQ(partial.count(manifest), 0u);
  for (const auto& [key, bytes] : partial) {
    EXPECT_EQ(objects.at(key), bytes) << key;
    EXPECT_EQ(key.ends_with("manifest.json"), false) << key;
  }
  StatusOr<json> redriven = Step("scan", ScanInput(), &failing);
  ASSERT_TRUE(redriven.ok()) << redriven.status().ToString();
  EXPECT_EQ(*redriven, *first);
  EXPECT_EQ(StoreBytes(crashed), objects);
  std::error_code ec;
  EXPECT_TRUE(fs::is_empty(root_ / "mem/staging", ec) || ec);
}

TEST_F(WorkStoreStepsTest, VerifyAndARedrivenDeliverReadTheStore) {
  InMemoryObjectStore memory;
  HoldCountingStore work(&memory);
  StatusOr<json> scanned = Step("scan", ScanInput(), &work);
  ASSERT_TRUE(scanned.ok()) << scanned.status().ToString();
  for (const json& batch : (*scanned)["batches"]) {
    json input = {{"run_id", "r1"},
                  {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
                  {"now_ms", kNow * 1000},
                  {"batch", {{"id", batch["id"]}, {"manifest", batch["manifest"]}}}};
    StatusOr<json> verified = Step("verify", input, &work);
    ASSERT_TRUE(verified.ok()) << verified.status().ToString();
    EXPECT_EQ(work.held(), 0);
    for (const json& item : (*verified)["deliveries"]) {
      StatusOr<json> first = Step("deliver", item, &work);
      ASSERT_TRUE(first.ok()) << first.status().ToString();
      StatusOr<json> again = Step("deliver", item, &work);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      EXPECT_EQ(*again, *first);
      for (const json& f : (*first)["files"]) EXPECT_EQ(f["status"], "delivered");
      EXPECT_EQ(work.held(), 0);
    }
  }
  // What went out is what the store holds.
  const std::map<std::string, std::string> objects = StoreBytes(memory);
  const std::map<std::string, std::string> sent =
      FolderBytes(root_ / "mem/outbox");
  ASSERT_EQ(sent.size(), 2u);
  for (const json& batch : (*scanned)["batches"]) {
    for (const json& f : batch["files"]) {
      const std::string name = f["name"];
      const std::string key = "batches/" + batch["id"].get<std::string>() +
                              "/" + name;
      EXPECT_EQ(sent.at(f["destination"].get<std::string>() + "/" + name),
                objects.at(key));
    }
  }
  for (const std::string& path : work.paths()) EXPECT_FALSE(fs::exists(path));

  // A batch file gone from the store is lost data, not a missing argument.
  const json& batch = (*scanned)["batches"][0];
  ASSERT_TRUE(memory
                  .Delete("batches/" + batch["id"].get<std::string>() + "/" +
                          batch["files"][0]["name"].get<std::string>())
                  .ok());
  StatusOr<json> lost = Step(
      "verify",
      {{"run_id", "r1"}, {"trace_id", ""}, {"now_ms", kNow * 1000},
       {"batch", {{"id", batch["id"]}, {"manifest", batch["manifest"]}}}},
      &work);
  EXPECT_EQ(lost.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(work.held(), 0);
}

}  // namespace
}  // namespace cbpipe
