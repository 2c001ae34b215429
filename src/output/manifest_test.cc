#include "output/manifest.h"

#include <gtest/gtest.h>

#include "output/test_util.h"

namespace cbpipe {
namespace {

Batch SampleBatch() {
  Batch b;
  b.id = "in1-b002";
  b.seq = 2;
  b.input_id = "in1";
  b.dir = "/w/batches/in1-b002";
  b.manifest_path = b.dir + "/manifest.json";
  FileSummary f;
  f.destination = "mc-acquirer";
  f.network = Network::kMastercard;
  f.name = "mastercard_20250301_in1_b002_f003.csv";
  f.path = b.dir + "/" + f.name;
  f.records = 12;
  f.bytes = 3456;
  f.sha256 = std::string(64, 'a');
  f.totals = {{"JPY", 1000}, {"USD", 9223372036854775807LL}};
  f.batch_seq = 2;
  f.file_seq = 3;
  f.layout = "mastercard";
  f.columns = 10;
  f.trailer = TrailerKind::kCountAndTotal;
  b.files.push_back(f);
  return b;
}

TEST(ManifestTest, RoundTripsThroughJson) {
  const Batch b = SampleBatch();
  const std::string json = ManifestJson(b);
  EXPECT_NE(json.find("\"USD\": 9223372036854775807"), std::string::npos);
  auto back = ParseManifest(json, b.dir);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, b.id);
  EXPECT_EQ(back->seq, 2);
  EXPECT_EQ(back->input_id, "in1");
  EXPECT_EQ(back->manifest_path, b.manifest_path);
  ASSERT_EQ(back->files.size(), 1u);
  const FileSummary& f = back->files[0];
  EXPECT_EQ(f.path, b.files[0].path);
  EXPECT_EQ(f.totals, b.files[0].totals);
  EXPECT_EQ(f.network, Network::kMastercard);
  EXPECT_EQ(f.trailer, TrailerKind::kCountAndTotal);
  EXPECT_EQ(f.batch_seq, 2);
  EXPECT_EQ(f.file_seq, 3);
  EXPECT_EQ(f.columns, 10);
  EXPECT_EQ(ManifestJson(*back), json);
}

TEST(ManifestTest, WriteThenRead) {
  testing::ScratchDir dir;
  Batch b = SampleBatch();
  const std::string path = dir.path() + "/manifest.json";
  ASSERT_TRUE(WriteManifest(b, path).ok());
  auto back = ReadManifest(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->dir, dir.path());
  EXPECT_EQ(ReadManifest(dir.path() + "/nope.json").status().code(),
            StatusCode::kNotFound);
}

TEST(ManifestTest, MalformedManifestsAreDataLoss) {
  const std::string good = ManifestJson(SampleBatch());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  for (const std::string& bad : {
           std::string("{"),
           std::string("[]"),
           std::string("null"),
           replace("\"version\": 1", "\"version\": 2"),
           replace("\"records\": 12", "\"records\": \"12\""),
           replace("\"records\": 12", "\"records\": -1"),
           replace("\"seq\": 2", "\"sequence\": 2"),
           replace("\"name\": \"mastercard", "\"name\": \"../mastercard"),
           replace("\"network\": \"mastercard\"", "\"network\": \"jcb\""),
           replace("\"trailer\": \"count_and_total\"", "\"trailer\": \"x\""),
           replace(std::string(64, 'a'), std::string(63, 'a')),
       }) {
    auto parsed = ParseManifest(bad, "/w");
    EXPECT_EQ(parsed.status().code(), StatusCode::kDataLoss) << bad;
  }
}

}  // namespace
}  // namespace cbpipe
