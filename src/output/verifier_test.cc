#include "output/verifier.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <filesystem>

#include "output/manifest.h"
#include "output/test_util.h"

namespace cbpipe {
namespace {

using testing::FourNetworkConfig;
using testing::MakeRecord;
using testing::ReadAll;
using testing::ScratchDir;
using testing::WriteAll;

class VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = FourNetworkConfig();
    BatchPlanner planner(config_, {.input_id = "in1", .work_dir = dir_.path()});
    const std::pair<const char*, int> currencies[] = {
        {"USD", 2}, {"JPY", 0}, {"KWD", 3}, {"EUR", 2}};
    for (int i = 0; i < 20; ++i) {
      const auto [code, exponent] = currencies[i % 4];
      Record r = MakeRecord(kAllNetworks[i % 4], "case-" + std::to_string(i),
                            1000 + i * 101, code, exponent);
      r.merchant_name = "Shop, \"" + std::to_string(i) + "\"\n2nd line";
      ASSERT_TRUE(*planner.Add(r));
    }
    auto batches = planner.Finish();
    ASSERT_TRUE(batches.ok()) << batches.status().ToString();
    ASSERT_EQ(batches->size(), 1u);
    batch_ = (*batches)[0];
    ASSERT_EQ(batch_.files.size(), 4u);
  }

  // Index of the file for `network` in the batch.
  size_t FileOf(Network network) const {
    for (size_t i = 0; i < batch_.files.size(); ++i) {
      if (batch_.files[i].network == network) return i;
    }
    return 0;
  }

  std::string Bytes(size_t i) const { return ReadAll(batch_.files[i].path); }

  // Writes `bytes` and updates the manifest's size and hash to match, as a
  // corruption that happened before the manifest was written would.
  void Rewrite(size_t i, const std::string& bytes, bool update_manifest) {
    WriteAll(batch_.files[i].path, bytes);
    if (!update_manifest) return;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
           digest);
    batch_.files[i].sha256 = HexDigest(digest, sizeof digest);
    batch_.files[i].bytes = bytes.size();
    ASSERT_TRUE(WriteManifest(batch_, batch_.manifest_path).ok());
  }

  // Replaces the first occurrence of `from` in file `i`.
  void Replace(size_t i, const std::string& from, const std::string& to,
               bool update_manifest = true) {
    std::string bytes = Bytes(i);
    const size_t at = bytes.find(from);
    ASSERT_NE(at, std::string::npos) << from << " not in " << bytes;
    bytes.replace(at, from.size(), to);
    Rewrite(i, bytes, update_manifest);
  }

  void ExpectDataLoss(const std::string& needle) {
    Status status = VerifyBatch(batch_, config_);
    EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status.ToString();
    EXPECT_NE(status.message().find(needle), std::string::npos)
        << status.message();
    EXPECT_NE(status.message().find("in1-b001"), std::string::npos);
  }

  ScratchDir dir_;
  Config config_;
  Batch batch_;
};

TEST_F(VerifierTest, FreshBatchPasses) {
  Status status = VerifyBatch(batch_, config_);
  EXPECT_TRUE(status.ok()) << status.ToString();
  auto read = ReadManifest(batch_.manifest_path);
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(VerifyBatch(*read, config_).ok());
}

TEST_F(VerifierTest, FlippedByteIsASha256Mismatch) {
  const size_t i = FileOf(Network::kVisa);
  std::string bytes = Bytes(i);
  const size_t at = bytes.find("******");
  bytes[at] = '#';
  Rewrite(i, bytes, /*update_manifest=*/false);
  ExpectDataLoss("SHA-256");
}

TEST_F(VerifierTest, SizeChangeIsReported) {
  const size_t i = FileOf(Network::kVisa);
  Replace(i, "FIRST_CHARGEBACK", "FIRST_CHARGEBACKS", false);
  ExpectDataLoss("bytes, manifest says");
}

TEST_F(VerifierTest, RemovedRowChangesTheCount) {
  // Visa has no trailer: the manifest's count catches it.
  const size_t visa = FileOf(Network::kVisa);
  std::string bytes = Bytes(visa);
  const size_t row2 = bytes.find("\"case-");
  const size_t next = bytes.find("\"case-", row2 + 1);
  bytes.erase(row2, next - row2);
  Rewrite(visa, bytes, false);
  ExpectDataLoss("data rows, manifest says");
}

TEST_F(VerifierTest, RemovedRowDisagreesWithTheTrailer) {
  const size_t mc = FileOf(Network::kMastercard);
  std::string bytes = Bytes(mc);
  const size_t row2 = bytes.find("\"case-");
  const size_t next = bytes.find("\"case-", row2 + 1);
  bytes.erase(row2, next - row2);
  Rewrite(mc, bytes, true);
  ExpectDataLoss("trailer count");
}

TEST_F(VerifierTest, ExtraColumnIsReported) {
  Replace(FileOf(Network::kAmex), ",FIRST_CHARGEBACK\r\n",
          ",FIRST_CHARGEBACK,extra\r\n");
  ExpectDataLoss("12 cells, layout \"amex\" has 11");
}

TEST_F(VerifierTest, MissingColumnInTheHeaderIsReported) {
  Replace(FileOf(Network::kDiscover), "MCC,", "");
  ExpectDataLoss("row 1: 11 cells");
}

TEST_F(VerifierTest, ChangedHeaderIsReported) {
  Replace(FileOf(Network::kVisa), "MERCHANT_ID", "MERCHANT_NO");
  ExpectDataLoss("header cell 4");
}

TEST_F(VerifierTest, BrokenQuotingIsReported) {
  Replace(FileOf(Network::kVisa), "\"case-0\"", "\"case-0");
  ExpectDataLoss("file visa_20250301_in1_b001_f001.csv row 2");
  SetUp();
  Replace(FileOf(Network::kVisa), "\"case-0\"", "ca\"se-0");
  ExpectDataLoss("quote inside an unquoted cell");
}

TEST_F(VerifierTest, ChangedAmountIsCaughtByRecomputedTotals) {
  // Visa: no trailer; the rows no longer add up to the manifest's totals.
  Replace(FileOf(Network::kVisa), ",10.00,USD,", ",11.00,USD,");
  ExpectDataLoss("amount totals");
}

TEST_F(VerifierTest, ChangedAmountDisagreesWithTheTrailer) {
  Replace(FileOf(Network::kMastercard), ",1101,JPY,", ",1102,JPY,");
  ExpectDataLoss("trailer totals");
}

TEST_F(VerifierTest, ChangedTrailerIsReported) {
  Replace(FileOf(Network::kAmex), "KWD=", "KWD=1");
  ExpectDataLoss("trailer totals");
  SetUp();
  Replace(FileOf(Network::kAmex), "TRAILER,5,", "TRAILER,6,");
  ExpectDataLoss("trailer count");
  SetUp();
  Replace(FileOf(Network::kAmex), "TRAILER,", "TRAILOR,");
  ExpectDataLoss("not a trailer");
}

TEST_F(VerifierTest, AmountWithWrongDecimalsIsReported) {
  Replace(FileOf(Network::kVisa), ",10.00,USD,", ",10.0,USD,");
  ExpectDataLoss("1 decimals");
}

TEST_F(VerifierTest, TruncatedFileIsReported) {
  std::string bytes = Bytes(FileOf(Network::kDiscover));
  bytes.resize(bytes.size() - 1);  // drop the final LF
  Rewrite(FileOf(Network::kDiscover), bytes, true);
  ExpectDataLoss("last row has no line ending");
}

TEST_F(VerifierTest, MissingFileIsReported) {
  std::filesystem::remove(batch_.files[2].path);
  ExpectDataLoss("missing");
}

TEST_F(VerifierTest, ManifestOnDiskThatDisagreesIsReported) {
  Batch other = batch_;
  other.files[0].records += 1;
  ASSERT_TRUE(WriteManifest(other, batch_.manifest_path).ok());
  ExpectDataLoss("does not describe");
  // Read from disk, the tampered manifest disagrees with the file instead.
  auto read = ReadManifest(batch_.manifest_path);
  ASSERT_TRUE(read.ok());
  Status status = VerifyBatch(*read, config_);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
}

TEST_F(VerifierTest, ManifestTotalsThatDisagreeAreReported) {
  batch_.files[FileOf(Network::kVisa)].totals["USD"] += 1;
  ASSERT_TRUE(WriteManifest(batch_, batch_.manifest_path).ok());
  ExpectDataLoss("amount totals");
}

TEST_F(VerifierTest, LayoutChangedSinceGenerationIsReported) {
  Layout narrower = *BuiltinLayout("visa");
  narrower.columns.pop_back();
  config_.layouts["visa"] = narrower;
  ExpectDataLoss("manifest says 10 columns");
}

TEST(VerifierNoAmountColumnTest, TotalsAreCheckedAgainstTheTrailerOnly) {
  ScratchDir dir;
  Config config = FourNetworkConfig();
  Layout slim;
  slim.name = "slim";
  for (Field f : {Field::kCaseId, Field::kMerchantId, Field::kReasonCode}) {
    Column c;
    c.header = std::string(FieldName(f));
    c.field = f;
    slim.columns.push_back(c);
  }
  slim.trailer = TrailerKind::kCountAndTotal;
  config.layouts["slim"] = slim;
  config.destinations[0].layout = "slim";
  BatchPlanner planner(config, {.input_id = "in2", .work_dir = dir.path()});
  ASSERT_TRUE(*planner.Add(MakeRecord(Network::kVisa, "a", 100)));
  ASSERT_TRUE(*planner.Add(MakeRecord(Network::kVisa, "b", 5, "JPY", 0)));
  auto batches = planner.Finish();
  ASSERT_TRUE(batches.ok());
  Batch batch = (*batches)[0];
  EXPECT_TRUE(VerifyBatch(batch, config).ok());
  EXPECT_NE(ReadAll(batch.files[0].path).find("TRAILER,2,JPY=5;USD=1.00\r\n"),
            std::string::npos);

  batch.files[0].totals["USD"] = 101;
  ASSERT_TRUE(WriteManifest(batch, batch.manifest_path).ok());
  Status status = VerifyBatch(batch, config);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("manifest says {JPY: 5, USD: 101}"),
            std::string::npos)
      << status.message();
}

}  // namespace
}  // namespace cbpipe
