#include "output/batch_planner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>

#include "output/manifest.h"
#include "output/test_util.h"
#include "output/verifier.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using testing::FourNetworkOptions;
using testing::MakeDestination;
using testing::MakeRecord;
using testing::ReadAll;
using testing::ScratchDir;

StatusOr<std::vector<Batch>> RunPlanner(const OutputOptions& config,
                                        const std::string& work_dir,
                                        const std::vector<Record>& records,
                                        const std::string& input_id = "in1") {
  BatchPlanner planner(config, {.input_id = input_id, .work_dir = work_dir});
  for (const Record& r : records) {
    auto added = planner.Add(r);
    if (!added.ok()) return added.status();
    if (!*added) return InternalError("not routed: " + r.case_id);
  }
  return planner.Finish();
}

std::vector<Record> Many(Network network, int count, const std::string& tag) {
  std::vector<Record> out;
  for (int i = 0; i < count; ++i) {
    out.push_back(MakeRecord(network, tag + std::to_string(i), 100 + i));
  }
  return out;
}

TEST(BatchPlannerTest, OneFilePerNetworkInOneBatch) {
  ScratchDir dir;
  std::vector<Record> records;
  for (Network n : kAllNetworks) {
    auto some = Many(n, 3, std::string(NetworkName(n)));
    records.insert(records.end(), some.begin(), some.end());
  }
  auto batches = RunPlanner(FourNetworkOptions(), dir.path(), records);
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ(batches->size(), 1u);
  const Batch& b = (*batches)[0];
  EXPECT_EQ(b.id, "in1-b001");
  EXPECT_EQ(b.seq, 1);
  EXPECT_EQ(b.dir, dir.path() + "/batches/in1-b001");
  ASSERT_EQ(b.files.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const FileSummary& f = b.files[i];
    EXPECT_EQ(f.network, kAllNetworks[i]);
    EXPECT_EQ(f.destination, NetworkName(kAllNetworks[i]));
    EXPECT_EQ(f.name, std::string(NetworkName(kAllNetworks[i])) +
                          "_20250301_in1_b001_f001.csv");
    EXPECT_EQ(f.records, 3u);
    EXPECT_EQ(f.totals, (std::map<std::string, int64_t>{{"USD", 303}}));
    EXPECT_EQ(ReadAll(f.path).size(), f.bytes);
    EXPECT_EQ(f.layout, NetworkName(kAllNetworks[i]));
  }
  EXPECT_TRUE(fs::exists(b.manifest_path));
  EXPECT_FALSE(fs::exists(dir.path() + "/staging/in1"));
  auto manifest = ReadManifest(b.manifest_path);
  ASSERT_TRUE(manifest.ok()) << manifest.status().ToString();
  EXPECT_EQ(ManifestJson(*manifest), ManifestJson(b));
  EXPECT_TRUE(VerifyBatch(b, FourNetworkOptions()).ok());
}

TEST(BatchPlannerTest, NoDestinationForTheNetworkReturnsFalse) {
  ScratchDir dir;
  OutputOptions config;
  config.routes.push_back(MakeDestination("v", {Network::kVisa}));
  BatchPlanner planner(config, {.input_id = "in1", .work_dir = dir.path()});
  auto added = planner.Add(MakeRecord(Network::kAmex, "a"));
  ASSERT_TRUE(added.ok());
  EXPECT_FALSE(*added);
  auto batches = planner.Finish();
  ASSERT_TRUE(batches.ok());
  EXPECT_TRUE(batches->empty());  // no records: no files, no batch
  EXPECT_FALSE(fs::exists(dir.path() + "/batches/in1-b001"));
}

TEST(BatchPlannerTest, RollsOverAtMaxRecordsPerFile) {
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.limits.max_records_per_file = 3;
  auto batches = RunPlanner(config, dir.path(), Many(Network::kVisa, 10, "v"));
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ(batches->size(), 1u);  // 4 files of one destination, limit 4
  const auto& files = (*batches)[0].files;
  ASSERT_EQ(files.size(), 4u);
  std::vector<uint64_t> counts;
  for (const auto& f : files) counts.push_back(f.records);
  EXPECT_EQ(counts, (std::vector<uint64_t>{3, 3, 3, 1}));
  EXPECT_EQ(files[3].file_seq, 4);
  EXPECT_EQ(files[3].name, "visa_20250301_in1_b001_f004.csv");
  EXPECT_TRUE(VerifyBatch((*batches)[0], config).ok());
}

TEST(BatchPlannerTest, RollsOverAtMaxFileBytesAndNoFileIsOver) {
  for (const char* network : {"visa", "mastercard"}) {  // without/with trailer
    ScratchDir dir;
    OutputOptions config = FourNetworkOptions();
    config.limits.max_file_bytes = 1000;
    config.limits.max_files_per_batch = 100;
    const Network n = *ParseNetwork(network);
    auto records = Many(n, 50, "case");
    auto batches = RunPlanner(config, dir.path(), records);
    ASSERT_TRUE(batches.ok()) << batches.status().ToString();
    ASSERT_EQ(batches->size(), 1u);
    const auto& files = (*batches)[0].files;
    EXPECT_GT(files.size(), 5u);
    uint64_t total = 0;
    for (const auto& f : files) {
      const uint64_t on_disk = fs::file_size(f.path);
      EXPECT_LE(on_disk, 1000u) << f.name;
      // Full: one more row would not have fitted (rows are ~100 bytes).
      if (&f != &files.back()) {
        EXPECT_GT(on_disk, 1000u - 130u) << f.name;
      }
      total += f.records;
    }
    EXPECT_EQ(total, 50u);
    EXPECT_TRUE(VerifyBatch((*batches)[0], config).ok());
  }
}

TEST(BatchPlannerTest, TrailerGrowthCountsTowardsTheByteLimit) {
  // The exact size of a two-record mastercard file totalling USD 9.99 ...
  ScratchDir probe;
  auto two = RunPlanner(FourNetworkOptions(), probe.path(),
                        {MakeRecord(Network::kMastercard, "1", 500),
                         MakeRecord(Network::kMastercard, "2", 499)});
  ASSERT_TRUE(two.ok());
  ASSERT_EQ((*two)[0].files.size(), 1u);
  const uint64_t size = (*two)[0].files[0].bytes;

  // ... is one byte short for rows of the same length totalling USD 10.00:
  // the second record must roll over because of the trailer alone.
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.limits.max_file_bytes = size;
  auto batches = RunPlanner(config, dir.path(),
                            {MakeRecord(Network::kMastercard, "1", 500),
                             MakeRecord(Network::kMastercard, "2", 500)});
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ((*batches)[0].files.size(), 2u);
  for (const auto& f : (*batches)[0].files) EXPECT_LE(f.bytes, size);
}

TEST(BatchPlannerTest, ByteLimitHoldsWithQuotedTrailerAndManyCurrencies) {
  // A ';' delimiter makes the trailer's totals cell quoted once a second
  // currency appears, a digit or '=' quotes counts and totals: the size
  // estimates must allow for it, and the verifier must read it back.
  for (char delimiter : {';', '=', '0', '1'})
    for (uint64_t limit : {400u, 450u, 555u, 700u, 1000u}) {
      ScratchDir dir;
      OutputOptions config = FourNetworkOptions();
      Layout layout = *BuiltinLayout("amex");
      layout.name = "amex_semicolon";
      layout.delimiter = delimiter;
      config.layouts[layout.name] = layout;
      config.routes[2].layout = layout.name;
      config.limits.max_file_bytes = limit;
      config.limits.max_files_per_batch = 1000;
      const std::pair<const char*, int> currencies[] = {
          {"USD", 2}, {"JPY", 0}, {"KWD", 3}, {"EUR", 2}, {"BHD", 3}};
      std::vector<Record> records;
      for (int i = 0; i < 60; ++i) {
        const auto [code, exponent] = currencies[(i * 7) % 5];
        records.push_back(MakeRecord(Network::kAmex, "a" + std::to_string(i),
                                     99999 + i * 1000003, code, exponent));
      }
      auto batches = RunPlanner(config, dir.path(), records);
      ASSERT_TRUE(batches.ok()) << batches.status().ToString();
      uint64_t total = 0;
      for (const auto& f : (*batches)[0].files) {
        EXPECT_LE(fs::file_size(f.path), limit) << f.name;
        total += f.records;
      }
      EXPECT_EQ(total, 60u);
      Status verified = VerifyBatch((*batches)[0], config);
      EXPECT_TRUE(verified.ok()) << delimiter << " " << verified.ToString();
    }
}

TEST(BatchPlannerTest, OversizedRecordIsResourceExhaustedAndPlannerGoesOn) {
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.limits.max_file_bytes = 600;
  BatchPlanner planner(config, {.input_id = "in1", .work_dir = dir.path()});
  ASSERT_TRUE(*planner.Add(MakeRecord(Network::kVisa, "ok1")));
  Record huge = MakeRecord(Network::kVisa, std::string(700, 'x'));
  huge.position = 42;
  auto added = planner.Add(huge);
  ASSERT_FALSE(added.ok());
  EXPECT_EQ(added.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(added.status().message().find("position 42"), std::string::npos);
  // Also for a destination that has no file yet.
  Record huge_mc = MakeRecord(Network::kMastercard, std::string(700, 'x'));
  EXPECT_EQ(planner.Add(huge_mc).status().code(),
            StatusCode::kResourceExhausted);
  ASSERT_TRUE(*planner.Add(MakeRecord(Network::kVisa, "ok2")));
  auto batches = planner.Finish();
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 1u);
  ASSERT_EQ((*batches)[0].files.size(), 1u);  // no empty mastercard file
  EXPECT_EQ((*batches)[0].files[0].records, 2u);
  EXPECT_TRUE(VerifyBatch((*batches)[0], config).ok());
}

TEST(BatchPlannerTest, PacksFirstFilesOfEveryDestinationFirst) {
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.limits.max_records_per_file = 1;
  std::vector<Record> records;
  // Destination order comes from the config, not from record order.
  for (Network n : {Network::kDiscover, Network::kAmex, Network::kMastercard,
                    Network::kVisa}) {
    auto two = Many(n, 2, std::string(NetworkName(n)));
    records.insert(records.end(), two.begin(), two.end());
  }
  auto batches = RunPlanner(config, dir.path(), records);
  ASSERT_TRUE(batches.ok());
  ASSERT_EQ(batches->size(), 2u);
  for (int b = 0; b < 2; ++b) {
    const Batch& batch = (*batches)[b];
    EXPECT_EQ(batch.id, "in1-b00" + std::to_string(b + 1));
    ASSERT_EQ(batch.files.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(batch.files[i].network, kAllNetworks[i]);
      EXPECT_EQ(batch.files[i].file_seq, b + 1);
      EXPECT_EQ(batch.files[i].batch_seq, b + 1);
    }
    EXPECT_TRUE(VerifyBatch(batch, config).ok());
  }
}

TEST(BatchPlannerTest, MoreDestinationsThanTheBatchLimit) {
  for (int limit : {1, 2, 3}) {
    ScratchDir dir;
    OutputOptions config = FourNetworkOptions();
    config.limits.max_files_per_batch = limit;
    config.limits.max_records_per_file = 2;
    std::vector<Record> records;
    for (Network n : kAllNetworks) {
      auto some = Many(n, n == Network::kVisa ? 5 : 1, "c");
      records.insert(records.end(), some.begin(), some.end());
    }
    auto batches = RunPlanner(config, dir.path(), records);
    ASSERT_TRUE(batches.ok());
    size_t files = 0;
    for (const Batch& b : *batches) {
      EXPECT_LE(b.files.size(), static_cast<size_t>(limit));
      EXPECT_GE(b.files.size(), 1u);
      files += b.files.size();
      EXPECT_TRUE(VerifyBatch(b, config).ok());
    }
    EXPECT_EQ(files, 6u);  // visa 3 files, the others 1 each
    EXPECT_EQ(batches->size(), (6u + limit - 1) / limit);
  }
}

TEST(BatchPlannerTest, OneDestinationForSeveralNetworks) {
  ScratchDir dir;
  OutputOptions config;
  config.routes.push_back(
      MakeDestination("cards", {Network::kAmex, Network::kDiscover}));
  config.routes.back().file_name_template = "{destination}-{network}.csv";
  auto batches = RunPlanner(
      config, dir.path(),
      {MakeRecord(Network::kDiscover, "d"), MakeRecord(Network::kAmex, "a")});
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ((*batches)[0].files.size(), 1u);
  const FileSummary& f = (*batches)[0].files[0];
  // The file holds Discover and Amex records: {network} is the
  // destination, not the first network listed.
  EXPECT_EQ(f.name, "cards-cards.csv");
  EXPECT_EQ(f.layout, "amex");
  EXPECT_EQ(f.records, 2u);
}

TEST(BatchPlannerTest, SeveralNetworksNameFilesAfterTheDestination) {
  ScratchDir dir;
  OutputOptions config;
  config.routes.push_back(MakeDestination("visa", {Network::kVisa}));
  config.routes.push_back(
      MakeDestination("processor", {Network::kAmex, Network::kDiscover}));
  auto batches = RunPlanner(
      config, dir.path(),
      {MakeRecord(Network::kVisa, "v"), MakeRecord(Network::kAmex, "a"),
       MakeRecord(Network::kDiscover, "d")});
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ((*batches)[0].files.size(), 2u);
  // A single-network destination keeps its network's name, as before.
  EXPECT_EQ((*batches)[0].files[0].name, "visa_20250301_in1_b001_f001.csv");
  // Amex and Discover records together: never an "amex_" file.
  EXPECT_EQ((*batches)[0].files[1].name,
            "processor_20250301_in1_b001_f001.csv");
  EXPECT_EQ((*batches)[0].files[1].records, 2u);
}

TEST(BatchPlannerTest, TotalOverflowRollsOverIntoANewFile) {
  ScratchDir dir;
  const int64_t big = std::numeric_limits<int64_t>::max() / 2 + 1;
  auto batches = RunPlanner(FourNetworkOptions(), dir.path(),
                            {MakeRecord(Network::kMastercard, "1", big),
                             MakeRecord(Network::kMastercard, "2", big)});
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ((*batches)[0].files.size(), 2u);
}

TEST(BatchPlannerTest, DateTokenIsTheLatestChargebackDate) {
  ScratchDir dir;
  std::vector<Record> records = Many(Network::kVisa, 3, "v");
  records[1].chargeback_date = {
      .year = 2025, .month = 4, .day = 2, .hour = 1, .has_time = true};
  records[2].chargeback_date = {.year = 2024, .month = 12, .day = 31};
  auto batches = RunPlanner(FourNetworkOptions(), dir.path(), records);
  ASSERT_TRUE(batches.ok());
  EXPECT_EQ((*batches)[0].files[0].name, "visa_20250402_in1_b001_f001.csv");

  // A record no destination takes still counts: the name depends on the
  // input, not on the routing.
  ScratchDir dir2;
  OutputOptions visa_only;
  visa_only.routes.push_back(MakeDestination("visa", {Network::kVisa}));
  BatchPlanner planner(visa_only, {.input_id = "in1", .work_dir = dir2.path()});
  for (const Record& r : records) ASSERT_TRUE(*planner.Add(r));
  Record amex = MakeRecord(Network::kAmex, "a");
  amex.chargeback_date = {.year = 2025, .month = 5, .day = 9};
  EXPECT_FALSE(*planner.Add(amex));
  auto routed = planner.Finish();
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ((*routed)[0].files[0].name, "visa_20250509_in1_b001_f001.csv");
}

TEST(BatchPlannerTest, IsDeterministicAcrossRunsAndFolders) {
  OutputOptions config = FourNetworkOptions();
  config.limits.max_records_per_file = 4;
  std::vector<Record> records;
  for (int i = 0; i < 40; ++i) {
    Network n = kAllNetworks[i % 4];
    Record r = MakeRecord(n, "case-" + std::to_string(i), 1000 + i * 37,
                          i % 3 == 0 ? "JPY" : "USD", i % 3 == 0 ? 0 : 2);
    r.merchant_name = i % 5 == 0 ? "=evil()" : "Shop \"" + std::to_string(i);
    records.push_back(r);
  }
  ScratchDir a, b;
  auto first = RunPlanner(config, a.path(), records);
  auto second = RunPlanner(config, b.path(), records);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_EQ(first->size(), second->size());
  for (size_t i = 0; i < first->size(); ++i) {
    const Batch& x = (*first)[i];
    const Batch& y = (*second)[i];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(ReadAll(x.manifest_path), ReadAll(y.manifest_path));
    ASSERT_EQ(x.files.size(), y.files.size());
    for (size_t j = 0; j < x.files.size(); ++j) {
      EXPECT_EQ(x.files[j].name, y.files[j].name);
      EXPECT_EQ(x.files[j].sha256, y.files[j].sha256);
      EXPECT_EQ(ReadAll(x.files[j].path), ReadAll(y.files[j].path));
    }
  }

  // Again into the same work folder: the batch folders are replaced with
  // identical contents and nothing else is left behind.
  auto again = RunPlanner(config, a.path(), records);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (size_t i = 0; i < again->size(); ++i) {
    EXPECT_EQ(ReadAll((*again)[i].manifest_path),
              ReadAll((*first)[i].manifest_path));
    EXPECT_TRUE(VerifyBatch((*again)[i], config).ok());
  }
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(a.path() + "/batches")) {
    EXPECT_EQ(e.path().filename().string().rfind("in1-b", 0), 0u) << e.path();
    ++entries;
  }
  EXPECT_EQ(entries, first->size());
}

TEST(BatchPlannerTest, ConfigProblemsAreReportedByAddAndFinish) {
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.routes[0].file_name_template = "{network}_{when}.csv";
  BatchPlanner planner(config, {.input_id = "in1", .work_dir = dir.path()});
  EXPECT_EQ(planner.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(planner.status().message().find("{when}"), std::string::npos);
  EXPECT_FALSE(planner.Add(MakeRecord(Network::kVisa, "x")).ok());
  EXPECT_FALSE(planner.Finish().ok());

  OutputOptions bad_layout = FourNetworkOptions();
  bad_layout.routes[1].layout = "missing";
  EXPECT_EQ(BatchPlanner(bad_layout, {.input_id = "in1", .work_dir = "w"})
                .status()
                .code(),
            StatusCode::kNotFound);

  for (const char* id : {"", "..", "a/b", "in 1"}) {
    EXPECT_FALSE(BatchPlanner(FourNetworkOptions(),
                              {.input_id = id, .work_dir = dir.path()})
                     .status()
                     .ok())
        << id;
  }
  OutputOptions zero = FourNetworkOptions();
  zero.limits.max_files_per_batch = 0;
  EXPECT_FALSE(
      BatchPlanner(zero, {.input_id = "in1", .work_dir = "w"}).status().ok());
}

TEST(BatchPlannerTest, InputIdCanComeAfterTheRecords) {
  ScratchDir dir;
  BatchPlanner planner(FourNetworkOptions(),
                       {.input_id = "", .work_dir = dir.path()}, "pending-1");
  ASSERT_TRUE(planner.status().ok()) << planner.status().ToString();
  for (const Record& r : Many(Network::kVisa, 3, "v")) {
    ASSERT_TRUE(planner.Add(r).ok());
  }
  EXPECT_TRUE(fs::exists(dir.path() + "/staging/pending-1"));
  EXPECT_EQ(planner.SetInputId("a/b").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(planner.SetInputId("in7").ok());
  EXPECT_EQ(planner.SetInputId("in8").code(), StatusCode::kFailedPrecondition);
  auto batches = planner.Finish();
  ASSERT_TRUE(batches.ok()) << batches.status().ToString();
  ASSERT_EQ(batches->size(), 1u);
  EXPECT_EQ((*batches)[0].id, "in7-b001");
  EXPECT_EQ((*batches)[0].files[0].name, "visa_20250301_in7_b001_f001.csv");
  EXPECT_FALSE(fs::exists(dir.path() + "/staging/pending-1"));
  EXPECT_TRUE(VerifyBatch((*batches)[0], FourNetworkOptions()).ok());

  BatchPlanner no_id(FourNetworkOptions(),
                     {.input_id = "", .work_dir = dir.path()}, "pending-2");
  EXPECT_EQ(no_id.Finish().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(BatchPlanner(FourNetworkOptions(),
                            {.input_id = "", .work_dir = dir.path()}, "a/b")
                   .status()
                   .ok());
}

TEST(BatchPlannerTest, NamesThatCollideInABatchAreAnError) {
  ScratchDir dir;
  OutputOptions config = FourNetworkOptions();
  config.limits.max_records_per_file = 1;
  config.routes[0].file_name_template = "{network}_{date}.csv";
  auto batches = RunPlanner(config, dir.path(), Many(Network::kVisa, 2, "v"));
  ASSERT_FALSE(batches.ok());
  EXPECT_NE(batches.status().message().find("twice"), std::string::npos);
}

TEST(ExpandFileNameTemplateTest, TokensPaddingAndErrors) {
  NameTokens t{.network = "visa",
               .destination = "acq-visa",
               .date = "20250301",
               .input_id = "in1",
               .batch = 2,
               .file = 1234};
  EXPECT_EQ(
      *ExpandFileNameTemplate(
          "{network}-{destination}-{date}-{input_id}-{batch}-{file}.csv", t),
      "visa-acq-visa-20250301-in1-002-1234.csv");
  EXPECT_FALSE(ExpandFileNameTemplate("{nope}.csv", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("{network.csv", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("network}.csv", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("a/{network}.csv", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("..", t).ok());
  EXPECT_FALSE(ExpandFileNameTemplate("manifest.json", t).ok());
}

}  // namespace
}  // namespace cbpipe
