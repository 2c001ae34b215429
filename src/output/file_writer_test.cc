#include "output/file_writer.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <limits>

#include "output/test_util.h"

namespace cbpipe {
namespace {

using testing::MakeRecord;
using testing::ReadAll;
using testing::ScratchDir;

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         digest);
  return HexDigest(digest, sizeof digest);
}

TEST(FileWriterTest, WritesHeaderRowsAndTrailerAndDescribesTheBytes) {
  ScratchDir dir;
  const std::string path = dir.path() + "/mc.csv";
  auto writer = FileWriter::Create(path, *BuiltinLayout("mastercard"));
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  ASSERT_TRUE((*writer)->Append(MakeRecord(Network::kMastercard, "1")).ok());
  ASSERT_TRUE((*writer)
                  ->Append(MakeRecord(Network::kMastercard, "2", 7, "JPY", 0))
                  .ok());
  ASSERT_TRUE(
      (*writer)
          ->Append(MakeRecord(Network::kMastercard, "3", 1001, "KWD", 3))
          .ok());
  ASSERT_TRUE((*writer)->Append(MakeRecord(Network::kMastercard, "4", 1)).ok());
  auto stats = (*writer)->Close();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();

  const std::string bytes = ReadAll(path);
  EXPECT_EQ(stats->bytes, bytes.size());
  EXPECT_EQ(stats->records, 4u);
  EXPECT_EQ(stats->sha256, Sha256Hex(bytes));
  EXPECT_EQ(stats->totals, (std::map<std::string, int64_t>{
                               {"JPY", 7}, {"KWD", 1001}, {"USD", 1251}}));
  EXPECT_TRUE(bytes.starts_with("claim_id,acquirer_reference_data,"));
  EXPECT_TRUE(
      bytes.ends_with("\r\nTRAILER,4,JPY=7;KWD=1.001;USD=12.51,,,,,,,\r\n"))
      << bytes;
}

TEST(FileWriterTest, SizeWithPredictsTheClosedSizeExactly) {
  ScratchDir dir;
  for (const char* name : {"visa", "mastercard"}) {
    const std::string path = dir.path() + "/" + name + ".csv";
    auto writer = FileWriter::Create(path, *BuiltinLayout(name));
    ASSERT_TRUE(writer.ok());
    Record r = MakeRecord(Network::kMastercard, "x", 999999);
    std::string row;
    (*writer)->formatter().AppendRecord(r, &row);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE((*writer)->Append(r).ok());
    std::optional<uint64_t> predicted = (*writer)->SizeWith(row.size(), r);
    ASSERT_TRUE(predicted.has_value());
    ASSERT_TRUE((*writer)->AppendRow(row, r).ok());
    auto stats = (*writer)->Close();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(*predicted, stats->bytes) << name;
  }
}

TEST(FileWriterTest, HeaderlessVisaFileWithNoRecordsIsEmpty) {
  ScratchDir dir;
  Layout layout = *BuiltinLayout("visa");
  layout.header = false;
  auto writer = FileWriter::Create(dir.path() + "/v.csv", layout);
  ASSERT_TRUE(writer.ok());
  auto stats = (*writer)->Close();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->bytes, 0u);
  // SHA-256 of nothing.
  EXPECT_EQ(stats->sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(FileWriterTest, TotalOverflowIsRefusedWithAClearError) {
  ScratchDir dir;
  auto writer =
      FileWriter::Create(dir.path() + "/mc.csv", *BuiltinLayout("mastercard"));
  ASSERT_TRUE(writer.ok());
  const int64_t big = std::numeric_limits<int64_t>::max() / 2 + 1;
  Record r = MakeRecord(Network::kMastercard, "1", big);
  ASSERT_TRUE((*writer)->Append(r).ok());
  EXPECT_FALSE((*writer)->SizeWith(10, r).has_value());
  Status status = (*writer)->Append(r);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("USD total would overflow"),
            std::string::npos);
  // Another currency is unaffected; the refused record left no trace.
  ASSERT_TRUE(
      (*writer)->Append(MakeRecord(Network::kMastercard, "2", 1, "EUR")).ok());
  auto stats = (*writer)->Close();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->records, 2u);
  EXPECT_EQ(stats->totals.at("USD"), big);
}

TEST(FileWriterTest, RowsBiggerThanTheBufferAndManyRowsHashCorrectly) {
  ScratchDir dir;
  const std::string path = dir.path() + "/v.csv";
  auto writer = FileWriter::Create(path, *BuiltinLayout("visa"));
  ASSERT_TRUE(writer.ok());
  Record r = MakeRecord(Network::kVisa, std::string(300 * 1024, 'c'));
  ASSERT_TRUE((*writer)->Append(r).ok());
  r.case_id = "small";
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE((*writer)->Append(r).ok());
  auto stats = (*writer)->Close();
  ASSERT_TRUE(stats.ok());
  const std::string bytes = ReadAll(path);
  EXPECT_EQ(stats->bytes, bytes.size());
  EXPECT_EQ(stats->sha256, Sha256Hex(bytes));
}

TEST(FileWriterTest, CreateInAMissingFolderFails) {
  auto writer =
      FileWriter::Create("/nonexistent-cbpipe/x.csv", *BuiltinLayout("visa"));
  EXPECT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find("/nonexistent-cbpipe/x.csv"),
            std::string::npos);
}

}  // namespace
}  // namespace cbpipe
