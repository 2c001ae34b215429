#include "output/verifier.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <filesystem>

#include "output/manifest.h"
#include "output/test_util.h"

namespace cbpipe {
namespace {

using testing::FourNetworkOptions;
using testing::MakeRecord;
using testing::ReadAll;
using testing::ScratchDir;
using testing::WriteAll;

class VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = FourNetworkOptions();
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
  OutputOptions config_;
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
  OutputOptions config = FourNetworkOptions();
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
  config.routes[0].layout = "slim";
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

// Files written by hand in a small layout (case id, amount, currency and a
// free text column, with a trailer), checked with VerifyFile: the corner
// cases of reading rows one ahead of the trailer and of the per-currency
// totals.
class VerifyFileTest : public ::testing::Test {
 protected:
  VerifyFileTest() {
    layout_.name = "mini";
    const std::pair<const char*, Field> columns[] = {
        {"CASE", Field::kCaseId},
        {"AMOUNT", Field::kAmount},
        {"CURRENCY", Field::kCurrency},
        {"NOTE", Field::kMerchantName}};
    for (const auto& [header, field] : columns) {
      Column c;
      c.header = header;
      c.field = field;
      if (field == Field::kAmount) c.format = ColumnFormat::kAmountDecimal;
      layout_.columns.push_back(c);
    }
    layout_.trailer = TrailerKind::kCountAndTotal;
  }

  // Writes the header, `rows` and `trailer` (each without its line ending)
  // and returns a summary that matches the bytes, with `records` and
  // `totals` as given.
  FileSummary Write(const std::vector<std::string>& rows,
                    const std::string& trailer, uint64_t records,
                    std::map<std::string, int64_t> totals) {
    std::string bytes = "CASE,AMOUNT,CURRENCY,NOTE\r\n";
    for (const std::string& row : rows) bytes += row + "\r\n";
    if (!trailer.empty()) bytes += trailer + "\r\n";
    FileSummary file;
    file.name = "mini.csv";
    file.path = dir_.path() + "/mini.csv";
    WriteAll(file.path, bytes);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
           digest);
    file.sha256 = HexDigest(digest, sizeof digest);
    file.bytes = bytes.size();
    file.records = records;
    file.totals = std::move(totals);
    file.layout = "mini";
    file.columns = 4;
    file.trailer = TrailerKind::kCountAndTotal;
    return file;
  }

  void ExpectError(const FileSummary& file, const std::string& needle) {
    Status status = VerifyFile(file, layout_);
    EXPECT_EQ(status.code(), StatusCode::kDataLoss) << status.ToString();
    EXPECT_NE(status.message().find(needle), std::string::npos)
        << status.message();
  }

  ScratchDir dir_;
  Layout layout_;
};

TEST_F(VerifyFileTest, QuotedCellsAndAQuotedTrailerTag) {
  FileSummary file =
      Write({"\"a\"\"1\",1.00,USD,\"two\r\nlines, \"\"quoted\"\"\"",
             "b,2.50,USD,", "\"c\",7,JPY,\"\""},
            "\"TRAILER\",\"3\",JPY=7;USD=3.50,", 3, {{"JPY", 7}, {"USD", 350}});
  Status status = VerifyFile(file, layout_);
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST_F(VerifyFileTest, ManyCurrencyCodes) {
  // More codes than any real file has, none of them known to ISO 4217.
  // Every code has a different length or text, so each is its own total.
  std::vector<std::string> rows;
  std::map<std::string, int64_t> totals;
  std::string trailer_totals;
  for (char a = 'A'; a <= 'Z'; ++a) {
    for (char b = 'A'; b <= 'E'; ++b) {
      // Codes of all lengths up to 12 bytes, some sharing a prefix.
      const std::string code =
          std::string("Q") + a + b + std::string((a + b) % 10, 'X');
      rows.push_back("id,-0.05," + code + ",x");
      rows.push_back("id,1.10," + code + ",x");
      totals[code] = 105;
    }
  }
  for (const auto& [code, minor] : totals) {
    if (!trailer_totals.empty()) trailer_totals += ';';
    trailer_totals += code + "=1.05";
  }
  FileSummary file = Write(rows, "TRAILER,260," + trailer_totals + ",", 260,
                           totals);
  Status status = VerifyFile(file, layout_);
  EXPECT_TRUE(status.ok()) << status.ToString();
  file = Write(rows, "TRAILER,260," + trailer_totals + ",", 260, totals);
  file.totals.begin()->second = 106;
  ExpectError(file, "amount totals");
}

TEST_F(VerifyFileTest, BadAmountJustBeforeTheTrailer) {
  FileSummary file =
      Write({"a,1.00,USD,", "b,1.0x,USD,"}, "TRAILER,2,USD=2.00,", 2,
            {{"USD", 200}});
  ExpectError(file, "row 3: amount \"1.0x\" is not a decimal");
}

TEST_F(VerifyFileTest, LastRowIsTheTrailerEvenWhenItIsData) {
  // Without its trailer, the last data row is checked as one: its bad
  // amount does not matter, that it is no trailer does.
  FileSummary file =
      Write({"a,1.00,USD,", "b,oops,USD,"}, "", 2, {{"USD", 100}});
  ExpectError(file, "row 3: last row is not a trailer (first cell \"b\")");
}

TEST_F(VerifyFileTest, ARowsCellCountIsCheckedBeforeTheRowBeforeIt) {
  FileSummary file = Write({"a,1.00,USD,", "b,bad,USD,", "c,1.00,USD"},
                           "TRAILER,3,USD=2.00,", 3, {{"USD", 200}});
  ExpectError(file, "row 4: 3 cells, layout \"mini\" has 4");
}

TEST_F(VerifyFileTest, EmptyCurrency) {
  FileSummary file = Write({"a,1.00,,", "b,1.00,USD,"}, "TRAILER,2,USD=2.00,",
                           2, {{"USD", 200}});
  ExpectError(file, "row 2: empty currency");
}

TEST_F(VerifyFileTest, DecimalsMustAgree) {
  FileSummary file = Write({"a,1.00,QQQ,", "b,1.000,QQQ,"},
                           "TRAILER,2,QQQ=2.00,", 2, {{"QQQ", 1100}});
  ExpectError(file, "row 3: QQQ amount with 3 decimals, earlier 2");
  file = Write({"a,1.00,QQQ,", "b,1.00,QQQ,"}, "TRAILER,2,QQQ=2.0,", 2,
               {{"QQQ", 200}});
  ExpectError(file, "row 4: QQQ amount with 1 decimals, earlier 2");
  file = Write({"a,1.00,JPY,"}, "TRAILER,1,JPY=1.00,", 1, {{"JPY", 100}});
  ExpectError(file, "row 2: JPY amount with 2 decimals, the currency has 0");
  // Only the trailer names KWD: its decimals are checked all the same.
  file = Write({"a,1.00,USD,"}, "TRAILER,1,KWD=0.00;USD=1.00,", 1,
               {{"USD", 100}});
  ExpectError(file, "row 3: KWD amount with 2 decimals, the currency has 3");
}

TEST_F(VerifyFileTest, TrailerListsACodeTwice) {
  FileSummary file = Write({"a,1.00,USD,"}, "TRAILER,1,USD=1.00;USD=0.00,", 1,
                           {{"USD", 100}});
  ExpectError(file, "trailer lists USD twice");
}

TEST_F(VerifyFileTest, LongAmounts) {
  // 19 digits parse, and two of them overflow the total; 20 digits do not.
  FileSummary file =
      Write({"a,9223372036854775.807,QQQ,", "b,0.001,QQQ,", "c,0.001,QQQ,"},
            "TRAILER,3,QQQ=0.002,", 3, {{"QQQ", 2}});
  ExpectError(file, "row 3: the QQQ total overflows 64 bits");
  file = Write({"a,12345678901234567.890,QQQ,", "b,0.001,QQQ,"},
               "TRAILER,2,QQQ=0.001,", 2, {{"QQQ", 1}});
  ExpectError(file, "row 2: amount \"12345678901234567.890\" is not a decimal");
  file = Write({"a,-12345678901234567.89,QQQ,", "b,-0.01,QQQ,"},
               "TRAILER,2,QQQ=-12345678901234567.90,", 2,
               {{"QQQ", -1234567890123456790}});
  Status status = VerifyFile(file, layout_);
  EXPECT_TRUE(status.ok()) << status.ToString();
}

TEST_F(VerifyFileTest, RowsAcrossReadChunks) {
  // Over a megabyte, quoted cells with line breaks and doubled quotes
  // everywhere, so that rows and the trailer fall across the reads.
  for (size_t pad : {0, 1, 2, 7, 13}) {
    std::vector<std::string> rows;
    size_t bytes = 27;
    int64_t total = 0;
    while (bytes < (1u << 20) + 300) {
      const std::string row = "\"id" + std::to_string(rows.size()) +
                              "\",1.25,EUR,\"x\r\n\"\"" +
                              std::string(rows.size() % 97 + pad, 'y') + "\"";
      rows.push_back(row);
      bytes += row.size() + 2;
      total += 125;
    }
    const std::string count = std::to_string(rows.size());
    const std::string sum =
        std::to_string(total / 100) + "." + std::to_string(total % 100);
    FileSummary file = Write(rows, "TRAILER,\"" + count + "\",EUR=" + sum + ",",
                             rows.size(), {{"EUR", total}});
    Status status = VerifyFile(file, layout_);
    EXPECT_TRUE(status.ok()) << status.ToString();
    file = Write(rows, "TRAILER," + count + ",EUR=" + sum + ",\"\"\"\"", rows.size(),
                 {{"EUR", total}});
    ExpectError(file, "trailer cell 4 is not empty");
  }
}

}  // namespace
}  // namespace cbpipe
