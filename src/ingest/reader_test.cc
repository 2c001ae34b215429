#include "ingest/reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ingest/readers.h"
#include "ingest/test_gzip.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;

struct ReadResult {
  Status status;  // first whole-input error, from OpenReader or Next
  std::vector<RawRecord> records;
  InputFormat format = InputFormat::kAuto;
};

ReadResult Drain(StatusOr<std::unique_ptr<RecordReader>> reader) {
  ReadResult result;
  if (!reader.ok()) {
    result.status = reader.status();
    return result;
  }
  result.format = (*reader)->format();
  RawRecord rec;
  while (true) {
    StatusOr<bool> more = (*reader)->Next(&rec);
    if (!more.ok()) {
      result.status = more.status();
      break;
    }
    if (!*more) break;
    result.records.push_back(rec);
  }
  return result;
}

ReadResult ReadText(std::string data, InputFormat format = InputFormat::kAuto,
                    const FieldMapping& mapping = FieldMapping::Default(),
                    const ReaderLimits& limits = {}) {
  return Drain(
      OpenReaderFromMemory(std::move(data), "mem", format, mapping, limits));
}

// `name` in a folder of this test process, removed when it exits.
std::string ScratchPath(const std::string& name) {
  struct Folder {
    std::filesystem::path path =
        std::filesystem::path(::testing::TempDir()) /
        ("reader_test_" + std::to_string(::getpid()));
    Folder() { std::filesystem::create_directories(path); }
    ~Folder() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Folder folder;
  return (folder.path / name).string();
}

std::string WriteTemp(const std::string& name, const std::string& data) {
  std::string path = ScratchPath(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return path;
}

ReadResult ReadFile(const std::string& name, const std::string& data,
                    InputFormat format = InputFormat::kAuto,
                    const ReaderLimits& limits = {}) {
  return Drain(OpenReader(WriteTemp(name, data), format,
                          FieldMapping::Default(), limits));
}

std::string Gzip(const std::string& data) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS,
                         8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string V(const RawRecord& r, Field f) { return std::string(r.value(f)); }

// True when `needle` occurs in any string the record holds.
bool RecordContains(const RawRecord& r, const std::string& needle) {
  for (const std::string& v : r.values) {
    if (v.find(needle) != std::string::npos) return true;
  }
  for (const std::string& v : r.sensitive_fields) {
    if (v.find(needle) != std::string::npos) return true;
  }
  return r.malformed.find(needle) != std::string::npos ||
         r.malformed_field.find(needle) != std::string::npos;
}

constexpr char kHeader[] = "case_id,network,amount,currency\n";

// ---------------------------------------------------------------- CSV

TEST(CsvReader, ReadsRowsWithLinePositions) {
  ReadResult r = ReadFile("basic.csv", std::string(kHeader) +
                                           "CB1,visa,12.50,USD\n"
                                           "CB2,mastercard,3,EUR\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.format, InputFormat::kCsv);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0].position, 2u);
  EXPECT_EQ(V(r.records[0], Field::kCaseId), "CB1");
  EXPECT_EQ(V(r.records[0], Field::kAmount), "12.50");
  EXPECT_TRUE(r.records[0].has(Field::kCurrency));
  EXPECT_FALSE(r.records[0].has(Field::kArn));
  EXPECT_TRUE(r.records[0].malformed.empty());
  EXPECT_EQ(r.records[1].position, 3u);
  EXPECT_EQ(V(r.records[1], Field::kNetwork), "mastercard");
}

TEST(CsvReader, QuotesDoubledQuotesCommasAndNewlines) {
  ReadResult r = ReadText(std::string(kHeader) +
                          "\"CB,1\",\"vi\"\"sa\",\"1\n2\n3\",\"\"\n"
                          "CB2,\"\",5,\"EUR\"\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(V(r.records[0], Field::kCaseId), "CB,1");
  EXPECT_EQ(V(r.records[0], Field::kNetwork), "vi\"sa");
  EXPECT_EQ(V(r.records[0], Field::kAmount), "1\n2\n3");
  EXPECT_EQ(V(r.records[0], Field::kCurrency), "");
  EXPECT_TRUE(r.records[0].has(Field::kCurrency));
  EXPECT_EQ(r.records[0].position, 2u);
  // The first record spans lines 2-4.
  EXPECT_EQ(r.records[1].position, 5u);
  EXPECT_EQ(V(r.records[1], Field::kCurrency), "EUR");
}

TEST(CsvReader, CrlfBomNoTrailingNewlineAndBlankLinesAtEnd) {
  ReadResult r = ReadText(
      "\xEF\xBB\xBF"
      "Case_ID , network,amount,currency\r\n"
      "CB1,visa,1,USD\r\n"
      "\"CB2\",\"visa\",2,\"USD\"\r\n"
      "CB3,visa,3,USD");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(V(r.records[0], Field::kCaseId), "CB1");
  EXPECT_EQ(V(r.records[0], Field::kCurrency), "USD");
  EXPECT_EQ(V(r.records[1], Field::kCurrency), "USD");
  EXPECT_EQ(V(r.records[2], Field::kCurrency), "USD");
  EXPECT_EQ(r.records[2].position, 4u);

  ReadResult blank =
      ReadText(std::string(kHeader) + "CB1,visa,1,USD\n\n\r\n\n");
  ASSERT_TRUE(blank.status.ok()) << blank.status.ToString();
  EXPECT_EQ(blank.records.size(), 1u);
}

TEST(CsvReader, WrongCellCountIsRecordMalformed) {
  ReadResult r = ReadText(std::string(kHeader) +
                          "CB1,visa,1\n"
                          "CB2,visa,1,USD,extra\n"
                          "CB3,visa,1,USD\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0].malformed, "expected 4 cells, got 3");
  EXPECT_EQ(r.records[1].malformed, "expected 4 cells, got 5");
  EXPECT_TRUE(r.records[2].malformed.empty());
  EXPECT_EQ(r.records[2].position, 4u);
}

TEST(CsvReader, UnterminatedQuoteNamesItsLine) {
  ReadResult r = ReadText(std::string(kHeader) +
                          "CB1,visa,1,USD\n"
                          "CB2,\"visa\n,1,USD\n\n");
  ASSERT_FALSE(r.status.ok());
  EXPECT_THAT(r.status.message(), HasSubstr("line 3"));
  EXPECT_THAT(r.status.message(), HasSubstr("unterminated"));
  EXPECT_EQ(r.records.size(), 1u);
}

TEST(CsvReader, TextAfterClosingQuoteIsMalformed) {
  ReadResult r = ReadText(std::string(kHeader) + "\"CB\"1,visa,1,USD\n");
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_FALSE(r.records[0].malformed.empty());
  EXPECT_EQ(r.records[0].malformed_field, "case_id");
}

TEST(CsvReader, AliasesAndExplicitMapping) {
  ReadResult aliases = ReadText(
      "Case Number,Card-Brand,dispute_amount,CURRENCY_CODE,other\n"
      "CB1,visa,7,USD,x\n");
  ASSERT_TRUE(aliases.status.ok()) << aliases.status.ToString();
  ASSERT_EQ(aliases.records.size(), 1u);
  EXPECT_EQ(V(aliases.records[0], Field::kCaseId), "CB1");
  EXPECT_EQ(V(aliases.records[0], Field::kNetwork), "visa");
  EXPECT_EQ(V(aliases.records[0], Field::kAmount), "7");
  EXPECT_EQ(V(aliases.records[0], Field::kCurrency), "USD");

  FieldMapping mapping = FieldMapping::Default();
  mapping.Set(Field::kAmount, "Amt Value");
  EXPECT_EQ(mapping.Lookup("amt-value"), Field::kAmount);
  EXPECT_EQ(mapping.Lookup("dispute_amount"), std::nullopt);
  EXPECT_EQ(mapping.Lookup("case_number"), Field::kCaseId);
  ReadResult expl = ReadText("case_id,amount,AMT VALUE\nCB1,1,2\n",
                             InputFormat::kAuto, mapping);
  ASSERT_TRUE(expl.status.ok()) << expl.status.ToString();
  ASSERT_EQ(expl.records.size(), 1u);
  EXPECT_EQ(V(expl.records[0], Field::kAmount), "2");
}

TEST(CsvReader, SensitiveColumnsRecordedByNameOnly) {
  ReadResult r = ReadText(
      "case_id,CVV2,amount,track1\n"
      "CB1,987,1,\n"
      "CB2,,1,\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_THAT(r.records[0].sensitive_fields, ::testing::ElementsAre("CVV2"));
  EXPECT_FALSE(RecordContains(r.records[0], "987"));
  EXPECT_TRUE(r.records[1].sensitive_fields.empty());
}

TEST(CsvReader, DuplicateHeaderForOneFieldIsInputError) {
  ReadResult r = ReadText("case_id,amount,dispute_amount\nCB1,1,2\n");
  ASSERT_FALSE(r.status.ok());
  EXPECT_THAT(r.status.message(), HasSubstr("line 1"));
  EXPECT_THAT(r.status.message(), HasSubstr("amount"));
  // Unknown columns may repeat.
  EXPECT_TRUE(ReadText("case_id,x,x\nCB1,1,2\n").status.ok());
}

TEST(CsvReader, EmptyAndHeaderlessInputsAreErrors) {
  ReadResult empty = ReadFile("empty.csv", "");
  ASSERT_FALSE(empty.status.ok());
  EXPECT_EQ(empty.status.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status.message(), HasSubstr("empty input"));
  EXPECT_THAT(empty.status.message(), HasSubstr("empty.csv"));

  ReadResult blank = ReadText("\n\n  \n");
  EXPECT_FALSE(blank.status.ok());
  ReadResult headerless = ReadText("CB1,visa,1,USD\nCB2,visa,2,USD\n");
  ASSERT_FALSE(headerless.status.ok());
  EXPECT_THAT(headerless.status.message(), HasSubstr("header"));
}

TEST(CsvReader, MillionColumnHeaderIsInputError) {
  std::string header;
  header.reserve(2'100'000);
  header += "case_id";
  for (int i = 0; i < 1'000'000; ++i) header += ",c";
  header += "\nCB1\n";
  ReadResult r = ReadText(header);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status.message(), HasSubstr("max_columns"));
}

TEST(CsvReader, HugeFieldIsBoundedError) {
  std::string data = std::string(kHeader) + "CB1,visa,";
  data.append(8 << 20, '9');
  data += ",USD\n";
  ReadResult r = ReadFile("huge.csv", data);
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status.message(), HasSubstr("line 2"));

  // Within the record limit but over the field limit: one bad record.
  ReaderLimits limits;
  limits.max_field_bytes = 16;
  ReadResult small =
      ReadText(std::string(kHeader) + "CB1,visa," + std::string(100, '1') +
                   ",USD\nCB2,v,1,X\n",
               InputFormat::kAuto, FieldMapping::Default(), limits);
  ASSERT_TRUE(small.status.ok());
  ASSERT_EQ(small.records.size(), 2u);
  EXPECT_THAT(small.records[0].malformed, HasSubstr("max_field_bytes"));
  EXPECT_EQ(small.records[0].malformed_field, "amount");
  EXPECT_TRUE(small.records[1].malformed.empty());
}

TEST(CsvReader, ManyRowsAcrossBufferBoundaries) {
  std::string data = "case_id,merchant_name,amount\n";
  const int kRows = 60000;
  for (int i = 0; i < kRows; ++i) {
    // Multi-byte characters and quoted newlines land on read boundaries.
    data += "CB" + std::to_string(i) +
            ",\"caf\xC3\xA9 \xE2\x82\xAC\n\xF0\x9F\x98\x80\"," +
            std::to_string(i) + "\n";
  }
  ReadResult r = ReadFile("many.csv", Gzip(data));
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) {
    ASSERT_EQ(V(r.records[i], Field::kCaseId), "CB" + std::to_string(i));
    ASSERT_EQ(V(r.records[i], Field::kMerchantName),
              "caf\xC3\xA9 \xE2\x82\xAC\n\xF0\x9F\x98\x80");
    ASSERT_EQ(r.records[i].position, 2u + 2u * i);
  }
}

TEST(CsvReader, NotUtf8AndNulAreInputErrors) {
  ReadResult bad = ReadText(std::string(kHeader) + "CB1,visa,1,US\xFF\n");
  ASSERT_FALSE(bad.status.ok());
  EXPECT_THAT(bad.status.message(), HasSubstr("UTF-8"));
  EXPECT_THAT(
      bad.status.message(),
      HasSubstr("byte offset " + std::to_string(sizeof(kHeader) - 1 + 13)));

  ReadResult truncated = ReadText(std::string(kHeader) + "CB1,visa,1,\xE2\x82");
  EXPECT_FALSE(truncated.status.ok());

  ReadResult nul = ReadText(std::string(kHeader) + "CB1,vi" +
                            std::string(1, '\0') + "sa,1,USD\n");
  ASSERT_FALSE(nul.status.ok());
  EXPECT_THAT(nul.status.message(), HasSubstr("NUL"));
}

// Random CSV built from the pieces that make a CSV parser go wrong: quotes,
// doubled quotes, text after a closing quote, CR and LF inside and between
// cells, blank lines, multi-byte characters, ragged rows, fields over the
// limit, a sensitive column and an unmapped one.
std::string RandomCsv(std::mt19937& rng) {
  auto pick = [&rng](int n) {
    return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng));
  };
  static const char* const kPlain[] = {
      "a", "Z", "0", "9", ".", " ", "-", "\xC3\xA9", "\xE2\x82\xAC", "#"};
  static const char* const kQuoted[] = {
      "a", "1", ",", "\n", "\r", "\r\n", "\"\"", " ", "\xF0\x9F\x98\x80"};
  auto text = [&](const char* const* alphabet, int size, int max_len) {
    std::string t;
    const int len = pick(max_len + 1);
    for (int i = 0; i < len; ++i) t += alphabet[pick(size)];
    return t;
  };
  auto cell = [&]() -> std::string {
    switch (pick(12)) {
      case 0: return "";
      case 1: return std::string(40 + pick(120), 'x');  // over small limits
      case 2:
      case 3: return "\"" + text(kQuoted, 9, 20) + "\"";
      case 4: return "\"" + std::string(40 + pick(120), ',') + "\"\"\"";
      case 5: return "\"" + text(kQuoted, 9, 4) + "\"" + text(kPlain, 10, 3);
      case 6: return "\"ab\"\r" + text(kPlain, 10, 2);  // CR after a quote
      case 7: return "a\"b" + text(kPlain, 10, 2);      // quote mid-cell
      case 8: return "a\rb";
      default: return text(kPlain, 10, 20);
    }
  };
  std::string csv = pick(2) ? "case_id,cvv,merchant_name,other,amount,currency"
                            : "\"case_id\",cvv,\"merchant name\",other,amount,"
                              "currency";
  csv += pick(2) ? "\n" : "\r\n";
  const int rows = 50 + pick(400);
  for (int r = 0; r < rows; ++r) {
    const int cells = pick(8) == 0 ? 1 + pick(9) : 6;
    for (int c = 0; c < cells; ++c) {
      if (c > 0) csv += ",";
      csv += cell();
    }
    switch (pick(8)) {
      case 0: csv += "\r\n"; break;
      case 1: csv += "\n\n"; break;
      case 2: csv += "\r\n\r\n"; break;
      default: csv += "\n"; break;
    }
  }
  switch (pick(6)) {
    case 0: csv.pop_back(); break;  // no newline at the end
    case 1: csv += "CB,\"unterminated,1,2\n"; break;
    case 2: csv += "\r"; break;
    default: break;
  }
  return csv;
}

void ExpectSameRead(const ReadResult& fast, const ReadResult& slow,
                    const std::string& what) {
  EXPECT_EQ(fast.status.ToString(), slow.status.ToString()) << what;
  ASSERT_EQ(fast.records.size(), slow.records.size()) << what;
  for (size_t i = 0; i < fast.records.size(); ++i) {
    const RawRecord& a = fast.records[i];
    const RawRecord& b = slow.records[i];
    ASSERT_EQ(a.position, b.position) << what << " record " << i;
    ASSERT_EQ(a.values, b.values) << what << " record " << i;
    ASSERT_EQ(a.present, b.present) << what << " record " << i;
    ASSERT_EQ(a.sensitive_fields, b.sensitive_fields)
        << what << " record " << i;
    ASSERT_EQ(a.malformed, b.malformed) << what << " record " << i;
    ASSERT_EQ(a.malformed_field, b.malformed_field) << what << " record " << i;
  }
}

// The bitmask fast path must read every input exactly as the byte-by-byte
// reference parser does, wherever the window ends fall.
TEST(CsvReader, FastPathMatchesReferenceParser) {
  std::vector<ReaderLimits> variants(3);
  variants[1].max_field_bytes = 16;
  variants[1].max_record_bytes = 400;  // 4 KiB window: many refills
  variants[2].max_field_bytes = 64;
  variants[2].max_record_bytes = 5000;
  std::mt19937 rng(20240917);
  size_t records = 0;
  for (int doc = 0; doc < 60; ++doc) {
    const std::string csv = RandomCsv(rng);
    for (size_t v = 0; v < variants.size(); ++v) {
      const std::string what =
          "document " + std::to_string(doc) + " limits " + std::to_string(v);
      ingest_internal::SetCsvFastPathForTest(false);
      ReadResult slow = ReadText(csv, InputFormat::kCsv,
                                 FieldMapping::Default(), variants[v]);
      ingest_internal::SetCsvFastPathForTest(true);
      ReadResult fast = ReadText(csv, InputFormat::kCsv,
                                 FieldMapping::Default(), variants[v]);
      ExpectSameRead(fast, slow, what);
      if (::testing::Test::HasFatalFailure()) return;
      records += fast.records.size();
    }
  }
  // The inputs must mostly read, or the comparison proves little.
  EXPECT_GT(records, 20000u);
}

TEST(CsvReader, FastPathEdgeCases) {
  // Each row padded so the fast path, not the end of the window, sees it.
  const std::string pad = "\n" + std::string(200, '\n');
  const std::string header = "case_id,cvv,merchant_name,other,amount\n";
  const std::vector<std::string> rows = {
      "\"a\"\"b\",1,\"x\ny\",o,\"1\r\n2\"\r\n",
      "\"ab\"cd,,m,o,1\n",
      "\"ab\"\r\n",
      "\"ab\"\rx,,m,o,1\r\n",
      "a\r\"b,,,,\r\r\n",
      "\"\",\"\",\"\",\"\",\"\"\n",
      "\"" + std::string(100, ',') + "\"," + std::string(100, '7') + ",,,1\n",
      ",,,,,,,\n",
      "x\n",
  };
  for (const std::string& row : rows) {
    // 7 bytes still holds the header names that matter.
    for (const size_t max_field : {size_t{7}, size_t{1} << 20}) {
      ReaderLimits limits;
      limits.max_field_bytes = max_field;
      const std::string csv = header + row + pad;
      ingest_internal::SetCsvFastPathForTest(false);
      ReadResult slow =
          ReadText(csv, InputFormat::kCsv, FieldMapping::Default(), limits);
      ingest_internal::SetCsvFastPathForTest(true);
      ReadResult fast =
          ReadText(csv, InputFormat::kCsv, FieldMapping::Default(), limits);
      ASSERT_EQ(fast.records.size(), 1u) << row << fast.status.ToString();
      ExpectSameRead(fast, slow, row);
    }
  }
}

// ---------------------------------------------------------------- JSON Lines

TEST(JsonLinesReader, ValuesAsTextNumbersRaw) {
  ReadResult r =
      ReadFile("basic.jsonl",
               "{\"case_id\":\"CB\\\"1\\u00e9\",\"amount\":12.50,\"mcc\":1e5,"
               "\"transaction_amount\": -0.0 ,\"status\":true,\"stage\":null,"
               "\"extra\":{\"deep\":[1,2]}}\n"
               "\n"
               "  {\"case_id\":\"CB2\",\"amount\":\"7\",\"status\":false}\r\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.format, InputFormat::kJsonLines);
  ASSERT_EQ(r.records.size(), 2u);
  const RawRecord& a = r.records[0];
  EXPECT_TRUE(a.malformed.empty()) << a.malformed;
  EXPECT_EQ(a.position, 1u);
  EXPECT_EQ(V(a, Field::kCaseId), "CB\"1\xC3\xA9");
  EXPECT_EQ(V(a, Field::kAmount), "12.50");
  EXPECT_EQ(V(a, Field::kMcc), "1e5");
  EXPECT_EQ(V(a, Field::kTransactionAmount), "-0.0");
  EXPECT_EQ(V(a, Field::kStatus), "true");
  EXPECT_FALSE(a.has(Field::kStage));
  EXPECT_EQ(r.records[1].position, 3u);
  EXPECT_EQ(V(r.records[1], Field::kStatus), "false");
}

TEST(JsonLinesReader, MalformedLinesContinue) {
  ReadResult r = ReadText(
      "{\"case_id\":\"A\"}\n"
      "not json\n"
      "{\"case_id\":\"B\",\"amount\":{\"v\":1}}\n"
      "[1,2]\n"
      "{\"case_id\":\"C\",\"case_id\":\"D\"}\n"
      "{\"case_id\":\"E\",\"dispute_id\":\"F\"}\n"
      "{\"case_id\":\"G\"} {\"x\":1}\n"
      "{\"case_id\":\"H\",\"amount\":1.2.3}\n"
      "{\"case_id\":\"I\"\n"
      "{\"case_id\":\"J\"}");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 10u);
  for (size_t i = 0; i < r.records.size(); ++i) {
    EXPECT_EQ(r.records[i].position, i + 1);
  }
  EXPECT_TRUE(r.records[0].malformed.empty());
  EXPECT_FALSE(r.records[1].malformed.empty());
  EXPECT_THAT(r.records[2].malformed, HasSubstr("object"));
  EXPECT_EQ(r.records[2].malformed_field, "amount");
  EXPECT_THAT(r.records[3].malformed, HasSubstr("not a JSON object"));
  EXPECT_THAT(r.records[4].malformed, HasSubstr("duplicate"));
  EXPECT_FALSE(r.records[5].malformed.empty());
  EXPECT_FALSE(r.records[6].malformed.empty());
  EXPECT_THAT(r.records[7].malformed, HasSubstr("number"));
  EXPECT_FALSE(r.records[8].malformed.empty());
  EXPECT_TRUE(r.records[9].malformed.empty());
  EXPECT_EQ(V(r.records[9], Field::kCaseId), "J");
}

TEST(JsonLinesReader, CardNumberKeysAreMaskedInMessages) {
  // Duplicate keys that are card numbers, plain and spaced; with and
  // without the fast path's cache of keys (the second record repeats it).
  ReadResult r = ReadText(
      "{\"case_id\":\"A\",\"4111111111111111\":1,\"4111111111111111\":2}\n"
      "{\"case_id\":\"B\",\"4111111111111111\":1,\"4111111111111111\":2}\n"
      "{\"case_id\":\"C\",\"4115 9900 0000 0006\":\"x\","
      "\"4115 9900 0000 0006\":\"y\"}\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 3u);
  for (const RawRecord& rec : r.records) {
    EXPECT_THAT(rec.malformed, HasSubstr("duplicate key"));
    EXPECT_EQ(rec.malformed.find("4111111111111111"), std::string::npos);
    EXPECT_EQ(rec.malformed.find("4115 9900 0000 0006"), std::string::npos);
    EXPECT_EQ(rec.malformed_field.find("1111111111"), std::string::npos);
  }
  EXPECT_THAT(r.records[0].malformed, HasSubstr("\"411111******1111\""));
  EXPECT_EQ(r.records[0].malformed_field, "411111******1111");
  EXPECT_THAT(r.records[2].malformed, HasSubstr("\"4115 99** **** 0006\""));
}

TEST(CsvReader, CardNumberColumnNameIsMaskedInMessages) {
  ReaderLimits limits;
  limits.max_field_bytes = 16;
  ReadResult r = ReadText("case_id,4111111111111111\nCB1,12345678901234567\n",
                          InputFormat::kAuto, FieldMapping::Default(), limits);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 1u);
  EXPECT_THAT(r.records[0].malformed, HasSubstr("max_field_bytes"));
  EXPECT_EQ(r.records[0].malformed_field, "411111******1111");
}

TEST(JsonLinesReader, DeepNestingIsMalformedNotACrash) {
  std::string deep(100000, '[');
  std::string line1 = "{\"case_id\":" + deep + "\n";
  std::string line2 = "{\"x\":" + deep + std::string(100000, ']') + "}\n";
  ReadResult r = ReadText(line1 + line2 + deep + "\n{\"case_id\":\"Z\"}\n",
                          InputFormat::kJsonLines);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_FALSE(r.records[0].malformed.empty());
  EXPECT_FALSE(r.records[1].malformed.empty());
  EXPECT_FALSE(r.records[2].malformed.empty());
  EXPECT_TRUE(r.records[3].malformed.empty());
}

TEST(JsonLinesReader, SensitiveKeysRecordedByNameOnly) {
  ReadResult r = ReadText(
      "{\"case_id\":\"A\",\"CVV\":\"4321\",\"track2\":\"\",\"pin\":null}\n"
      "{\"case_id\":\"B\",\"cvc\":5678}\n");
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_THAT(r.records[0].sensitive_fields, ::testing::ElementsAre("CVV"));
  EXPECT_FALSE(RecordContains(r.records[0], "4321"));
  EXPECT_THAT(r.records[1].sensitive_fields, ::testing::ElementsAre("cvc"));
  EXPECT_FALSE(RecordContains(r.records[1], "5678"));
}

TEST(JsonLinesReader, KeyAliasesAndEscapedKeys) {
  FieldMapping mapping = FieldMapping::Default();
  mapping.Set(Field::kMerchantId, "Shop");
  ReadResult r = ReadText(
      "{\"Case "
      "Number\":\"A\",\"shop\":\"M1\",\"mid\":\"no\",\"am\\u006Funt\":1}\n"
      "{\"Case "
      "Number\":\"B\",\"shop\":\"M2\",\"mid\":\"no\",\"am\\u006Funt\":2}\n",
      InputFormat::kAuto, mapping);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 2u);
  for (const RawRecord& rec : r.records) EXPECT_TRUE(rec.malformed.empty());
  EXPECT_EQ(V(r.records[1], Field::kCaseId), "B");
  EXPECT_EQ(V(r.records[1], Field::kMerchantId), "M2");
  EXPECT_EQ(V(r.records[1], Field::kAmount), "2");
}

TEST(JsonLinesReader, LimitsAndEncodingErrors) {
  ReaderLimits limits;
  limits.max_record_bytes = 64;
  ReadResult longline =
      ReadText("{\"case_id\":\"" + std::string(200, 'x') + "\"}\n",
               InputFormat::kAuto, FieldMapping::Default(), limits);
  ASSERT_FALSE(longline.status.ok());
  EXPECT_THAT(longline.status.message(), HasSubstr("line 1"));

  ReadResult bad =
      ReadText("{\"case_id\":\"A\"}\n{\"case_id\":\"\xC0\xAF\"}\n");
  ASSERT_FALSE(bad.status.ok());
  EXPECT_THAT(bad.status.message(), HasSubstr("UTF-8"));
}

// ---------------------------------------------------------------- JSON array

TEST(JsonArrayReader, ElementsByIndex) {
  ReadResult r = ReadFile("arr.json",
                          " \n[ {\"case_id\":\"A\",\"amount\":12.50},\n"
                          "{\"case_id\":\"B\",\"note\":\"]}[{,\\\"\"} ,"
                          "42, {\"case_id\":{}} ]\n");
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.format, InputFormat::kJsonArray);
  ASSERT_EQ(r.records.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.records[i].position, i);
  EXPECT_EQ(V(r.records[0], Field::kAmount), "12.50");
  EXPECT_EQ(V(r.records[1], Field::kCaseId), "B");
  EXPECT_TRUE(r.records[1].malformed.empty());
  EXPECT_THAT(r.records[2].malformed, HasSubstr("not a JSON object"));
  EXPECT_EQ(r.records[3].malformed_field, "case_id");

  ReadResult empty = ReadText("[]");
  EXPECT_TRUE(empty.status.ok());
  EXPECT_TRUE(empty.records.empty());
}

TEST(JsonArrayReader, BrokenArraysAreInputErrors) {
  for (const char* text :
       {"[{\"a\":1}", "[{\"a\":1} x {\"b\":2}]", "[{\"a\":1},]",
        "[{\"a\":1}] trailing", "[,]", "[{\"a\":\"unterminated}]"}) {
    ReadResult r = ReadText(text, InputFormat::kJsonArray);
    EXPECT_FALSE(r.status.ok()) << text;
    EXPECT_THAT(r.status.message(), HasSubstr("byte offset")) << text;
  }
  ReadResult not_array = ReadText("{\"a\":1}", InputFormat::kJsonArray);
  EXPECT_FALSE(not_array.status.ok());
}

TEST(JsonArrayReader, DeepNestingNeverCrashes) {
  ReadResult open_only = ReadText(std::string(100000, '['));
  EXPECT_FALSE(open_only.status.ok());

  std::string deep = "[{\"x\":" + std::string(100000, '[') +
                     std::string(100000, ']') + "},{\"case_id\":\"B\"}]";
  ReadResult r = ReadText(deep);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_THAT(r.records[0].malformed, HasSubstr("max_json_depth"));
  EXPECT_TRUE(r.records[1].malformed.empty());
}

TEST(AllFormats, SmallWindowRefillsKeepRecordsWhole) {
  // A small record limit means a 4 KiB window, refilled inside many records.
  ReaderLimits limits;
  limits.max_record_bytes = 200;
  std::string csv = "case_id,merchant_name\n";
  std::string jsonl;
  std::string json = "[";
  const int kRows = 3000;
  for (int i = 0; i < kRows; ++i) {
    const std::string id = "CB" + std::to_string(i);
    csv += id + ",\"line\none, \"\"q\"\"\"\r\n";
    jsonl += "{\"case_id\":\"" + id + "\",\"merchant_name\":\"a\\\"b\"}\n";
    json += std::string(i ? "," : "") + "{\"case_id\":\"" + id +
            "\",\"merchant_name\":\"a\\\"b\"}";
  }
  json += "]";
  ReadResult c =
      ReadText(csv, InputFormat::kAuto, FieldMapping::Default(), limits);
  ReadResult l =
      ReadText(jsonl, InputFormat::kAuto, FieldMapping::Default(), limits);
  ReadResult a =
      ReadText(json, InputFormat::kAuto, FieldMapping::Default(), limits);
  for (const ReadResult* r : {&c, &l, &a}) {
    ASSERT_TRUE(r->status.ok()) << r->status.ToString();
    ASSERT_EQ(r->records.size(), static_cast<size_t>(kRows));
    for (int i = 0; i < kRows; ++i) {
      ASSERT_TRUE(r->records[i].malformed.empty()) << r->records[i].malformed;
      ASSERT_EQ(V(r->records[i], Field::kCaseId), "CB" + std::to_string(i));
    }
  }
  EXPECT_EQ(V(c.records[5], Field::kMerchantName), "line\none, \"q\"");
  EXPECT_EQ(c.records[5].position, 2u + 2u * 5);
  EXPECT_EQ(V(l.records[5], Field::kMerchantName), "a\"b");
  EXPECT_EQ(l.records[5].position, 6u);
  EXPECT_EQ(a.records[5].position, 5u);
}

// ---------------------------------------------------------------- gzip etc.

TEST(RawBytesObserver, SeesTheFileAsStoredThenItsEnd) {
  // Every format, plain and gzip, and a file larger than one read: the
  // observer gets exactly the file's bytes (compressed ones for gzip), in
  // order, and one n == 0 call at the end.
  std::string csv = kHeader;
  for (int i = 0; i < 40000; ++i) csv += "CB" + std::to_string(i) + ",v,1,X\n";
  const std::vector<std::pair<std::string, std::string>> files = {
      {"o.csv", csv},
      {"o.csv.gz", Gzip(csv)},
      {"o.jsonl", "{\"case_id\":\"A\"}\n{\"case_id\":\"B\"}\n"},
      {"o.json", "[{\"case_id\":\"A\"}, {\"case_id\":\"B\"}]\n"},
  };
  for (const auto& [name, data] : files) {
    std::string seen;
    int ends = 0;
    ReadResult r = Drain(OpenReader(
        WriteTemp(name, data), InputFormat::kAuto, FieldMapping::Default(),
        ReaderLimits{}, [&](const char* p, size_t n) {
          EXPECT_EQ(ends, 0) << name << ": bytes after the end";
          if (n == 0) ++ends;
          seen.append(p, n);
        }));
    ASSERT_TRUE(r.status.ok()) << name << ": " << r.status.ToString();
    EXPECT_EQ(ends, 1) << name;
    EXPECT_TRUE(seen == data) << name;
  }
}

TEST(GzipInput, EachFormatAndMultiMember) {
  ReadResult csv =
      ReadFile("a.csv.gz", Gzip(std::string(kHeader) + "CB1,v,1,X\n"));
  ASSERT_TRUE(csv.status.ok()) << csv.status.ToString();
  ASSERT_EQ(csv.records.size(), 1u);
  EXPECT_EQ(V(csv.records[0], Field::kCaseId), "CB1");

  ReadResult jsonl = ReadFile("a.jsonl.gz", Gzip("{\"case_id\":\"A\"}\n") +
                                                Gzip("{\"case_id\":\"B\"}\n"));
  ASSERT_TRUE(jsonl.status.ok()) << jsonl.status.ToString();
  EXPECT_EQ(jsonl.format, InputFormat::kJsonLines);
  ASSERT_EQ(jsonl.records.size(), 2u);
  EXPECT_EQ(jsonl.records[1].position, 2u);

  ReadResult json = ReadFile("a.json.gz", Gzip("[{\"case_id\":\"A\"},") +
                                              Gzip("{\"case_id\":\"B\"}]"));
  ASSERT_TRUE(json.status.ok()) << json.status.ToString();
  EXPECT_EQ(json.format, InputFormat::kJsonArray);
  ASSERT_EQ(json.records.size(), 2u);

  EXPECT_FALSE(ReadFile("empty.gz", Gzip("")).status.ok());
}

TEST(GzipInput, TruncatedAndCorruptAreErrors) {
  std::string data = std::string(kHeader);
  for (int i = 0; i < 2000; ++i) data += "CB" + std::to_string(i) + ",v,1,X\n";
  std::string gz = Gzip(data);

  ReadResult truncated = ReadFile("t.csv.gz", gz.substr(0, gz.size() / 2));
  ASSERT_FALSE(truncated.status.ok());
  EXPECT_EQ(truncated.status.code(), StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status.message(), HasSubstr("truncated"));
  EXPECT_THAT(truncated.status.message(), HasSubstr("t.csv.gz"));

  ReadResult no_trailer = ReadFile("t2.csv.gz", gz.substr(0, gz.size() - 4));
  EXPECT_FALSE(no_trailer.status.ok());

  std::string corrupt = gz;
  for (size_t i = 20; i < 40; ++i)
    corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  ReadResult bad = ReadFile("c.csv.gz", corrupt);
  ASSERT_FALSE(bad.status.ok());
  EXPECT_EQ(bad.status.code(), StatusCode::kDataLoss);
}

TEST(Formats, OverrideAndNames) {
  // Forced JSON Lines on CSV text: every line is one malformed record.
  ReadResult r =
      ReadText(std::string(kHeader) + "CB1,v,1,X\n", InputFormat::kJsonLines);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_FALSE(r.records[0].malformed.empty());

  // Forced CSV on a JSON Lines file: read as CSV (no known column).
  EXPECT_FALSE(
      ReadText("{\"case_id\":\"A\"}\n", InputFormat::kCsv).status.ok());
  ReadResult arr = ReadText("[{\"case_id\":\"A\"}]", InputFormat::kJsonLines);
  ASSERT_TRUE(arr.status.ok());
  EXPECT_EQ(arr.format, InputFormat::kJsonLines);

  EXPECT_EQ(ParseInputFormat("CSV"), InputFormat::kCsv);
  EXPECT_EQ(ParseInputFormat("ndjson"), InputFormat::kJsonLines);
  EXPECT_EQ(ParseInputFormat("json"), InputFormat::kJsonArray);
  EXPECT_EQ(ParseInputFormat("xml"), std::nullopt);
  EXPECT_EQ(InputFormatName(InputFormat::kJsonLines), "jsonl");
}

TEST(OpenReader, MissingFileIsNotFound) {
  auto r = OpenReader(ScratchPath("does-not-exist.csv"),
                      InputFormat::kAuto, FieldMapping::Default(), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(RawRecord, ClearKeepsCapacity) {
  RawRecord rec;
  rec.values[0].assign(1000, 'x');
  rec.present[0] = true;
  rec.malformed = "m";
  const size_t capacity = rec.values[0].capacity();
  rec.Clear();
  EXPECT_TRUE(rec.values[0].empty());
  EXPECT_EQ(rec.values[0].capacity(), capacity);
  EXPECT_FALSE(rec.present[0]);
  EXPECT_TRUE(rec.malformed.empty());
}

TEST(OpenReader, ReportsBytesRead) {
  auto reader =
      OpenReaderFromMemory(std::string(kHeader) + "CB1,v,1,X\n", "mem",
                           InputFormat::kAuto, FieldMapping::Default(), {});
  ASSERT_TRUE(reader.ok());
  RawRecord rec;
  ASSERT_TRUE((*reader)->Next(&rec).value());
  EXPECT_EQ((*reader)->bytes_read(), sizeof(kHeader) - 1 + 10);
}

// ---------------------------------------------------------------- limits

TEST(InputLimits, DecompressedSizeIsExactAtTheBoundary) {
  std::string data = std::string(kHeader);
  for (int i = 0; i < 20000; ++i) data += "CB" + std::to_string(i) + ",v,1,X\n";
  for (const bool gzip : {false, true}) {
    SCOPED_TRACE(gzip ? "gzip" : "plain");
    const std::string stored = gzip ? Gzip(data) : data;
    ReaderLimits limits;
    limits.max_decompressed_bytes = data.size();
    ReadResult at = ReadFile("size.csv", stored, InputFormat::kAuto, limits);
    ASSERT_TRUE(at.status.ok()) << at.status.ToString();
    EXPECT_EQ(at.records.size(), 20000u);

    limits.max_decompressed_bytes = data.size() - 1;
    ReadResult over = ReadFile("size.csv", stored, InputFormat::kAuto, limits);
    EXPECT_EQ(over.status.code(), StatusCode::kResourceExhausted);
    EXPECT_THAT(over.status.message(),
                HasSubstr("input.max_decompressed_bytes (" +
                          std::to_string(data.size() - 1) + " bytes"));
  }
}

TEST(InputLimits, GzipBombIsRefusedWithinItsFirstMegabytes) {
  // 1 GiB of blank lines after a header, from about 1 MB of gzip.
  const std::string path = ScratchPath("bomb.csv.gz");
  ASSERT_TRUE(testing::WriteGzipBomb(path, kHeader, 1ull << 30));
  uint64_t seen = 0;
  const auto start = std::chrono::steady_clock::now();
  ReadResult r = Drain(OpenReader(
      path, InputFormat::kAuto, FieldMapping::Default(), ReaderLimits{},
      [&seen](const char*, size_t n) { seen += n; }));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status.message(),
              HasSubstr("over input.max_compression_ratio (100)"));
  EXPECT_THAT(r.status.message(), HasSubstr("bomb.csv.gz"));
  // Refused after the first compressed chunk, not after the gigabyte.
  EXPECT_LT(seen, 1u << 20);
  EXPECT_LT(seconds, 2.0);
}

TEST(InputLimits, CompressionRatioCanBeRaisedAndRealDataIsFarBelowIt) {
  // 16 MiB of blank lines (about 1000:1) pass with a ratio limit above it.
  const std::string path = ScratchPath("blank.csv.gz");
  ASSERT_TRUE(testing::WriteGzipBomb(path, kHeader, 16ull << 20, 4ull << 20));
  ReaderLimits raised;
  raised.max_compression_ratio = 2000;
  ReadResult r = Drain(
      OpenReader(path, InputFormat::kAuto, FieldMapping::Default(), raised));
  EXPECT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_TRUE(r.records.empty());

  // Rows that differ as real ones do compress far less than 100:1, even
  // at gzip's best level, well past the point the ratio is checked from.
  std::string data = std::string(kHeader);
  for (int i = 0; data.size() < (4u << 20); ++i)
    data += "CB" + std::to_string(1000000 + i) + ",visa," +
            std::to_string(i % 9973) + "." + std::to_string(i % 100) + ",USD\n";
  const std::string gz = testing::GzipRepeated(data, 1);
  EXPECT_LT(data.size() / gz.size(), 100u);
  ReadResult real = ReadFile("real.csv.gz", gz);
  EXPECT_TRUE(real.status.ok()) << real.status.ToString();
}

}  // namespace
}  // namespace cbpipe
