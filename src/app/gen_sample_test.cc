#include "app/gen_sample.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "domain/network.h"
#include "domain/record.h"
#include "domain/rules.h"
#include "ingest/reader.h"
#include "validate/validator.h"

namespace cbpipe {
namespace {

// 2025-06-15T12:00:00Z
constexpr int64_t kNow = 1749988800;

struct Sample {
  std::string bytes;
  SampleStats stats;
};

Sample Generate(uint64_t records, double invalid_ratio, SampleFormat format,
                uint64_t seed) {
  SampleOptions options;
  options.records = records;
  options.invalid_ratio = invalid_ratio;
  options.format = format;
  options.seed = seed;
  options.now_epoch_seconds = kNow;
  std::FILE* file = std::tmpfile();
  EXPECT_NE(file, nullptr);
  Sample sample;
  StatusOr<SampleStats> stats = WriteSample(options, file);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  if (stats.ok()) sample.stats = *stats;
  std::rewind(file);
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    sample.bytes.append(buffer, n);
  }
  std::fclose(file);
  return sample;
}

// --- Minimal readers for the generator's own output -------------------------
// Independent of ingest/, so the generator is checked against the format
// rules rather than against another implementation of the same code.

// RFC 4180 rows (quoted fields, doubled quotes, '\n' line ends).
std::vector<std::vector<std::string>> ParseCsv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field.push_back('"');
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
    } else {
      field.push_back(c);
    }
  }
  EXPECT_TRUE(field.empty() && row.empty()) << "no final line end";
  return rows;
}

struct JsonValue {
  std::string text;  // unescaped string, or a number's raw text
  bool is_number = false;
};

// One flat JSON object of string and number values per line.
std::vector<std::map<std::string, JsonValue>> ParseJsonLines(
    std::string_view text) {
  std::vector<std::map<std::string, JsonValue>> objects;
  size_t i = 0;
  auto expect = [&](char c) {
    EXPECT_LT(i, text.size());
    EXPECT_EQ(text[i], c) << "at byte " << i;
    ++i;
  };
  auto string = [&]() {
    std::string out;
    expect('"');
    while (i < text.size() && text[i] != '"') {
      if (text[i] == '\\') {
        ++i;
        const char e = text[i];
        if (e == 'u') {
          out.push_back(static_cast<char>(
              std::stoi(std::string(text.substr(i + 1, 4)), nullptr, 16)));
          i += 4;
        } else {
          EXPECT_TRUE(e == '"' || e == '\\') << "escape \\" << e;
          out.push_back(e);
        }
      } else {
        EXPECT_GE(static_cast<unsigned char>(text[i]), 0x20);
        out.push_back(text[i]);
      }
      ++i;
    }
    expect('"');
    return out;
  };
  while (i < text.size()) {
    std::map<std::string, JsonValue>& object = objects.emplace_back();
    expect('{');
    while (i < text.size() && text[i] != '}') {
      if (!object.empty()) expect(',');
      std::string key = string();
      expect(':');
      JsonValue value;
      if (text[i] == '"') {
        value.text = string();
      } else {
        value.is_number = true;
        while (i < text.size() && text[i] != ',' && text[i] != '}') {
          value.text.push_back(text[i++]);
        }
      }
      EXPECT_TRUE(object.emplace(std::move(key), std::move(value)).second);
    }
    expect('}');
    expect('\n');
    if (::testing::Test::HasFailure()) break;
  }
  return objects;
}

// Generated records as RawRecords, in order.
std::vector<RawRecord> ToRawRecords(const Sample& sample, SampleFormat format) {
  std::vector<RawRecord> records;
  if (format == SampleFormat::kCsv) {
    auto rows = ParseCsv(sample.bytes);
    EXPECT_FALSE(rows.empty());
    if (rows.empty()) return records;
    const std::vector<std::string>& header = rows[0];
    EXPECT_EQ(header.size(), kSampleColumns.size());
    for (size_t c = 0; c < header.size(); ++c) {
      EXPECT_EQ(header[c], kSampleColumns[c]);
    }
    for (size_t r = 1; r < rows.size(); ++r) {
      EXPECT_EQ(rows[r].size(), header.size()) << "row " << r;
      RawRecord& raw = records.emplace_back();
      raw.position = r + 1;
      for (size_t c = 0; c < rows[r].size() && c < header.size(); ++c) {
        const std::optional<Field> f = FieldFromName(header[c]);
        EXPECT_TRUE(f.has_value()) << header[c];
        if (!f) continue;
        raw.values[static_cast<int>(*f)] = rows[r][c];
        raw.present[static_cast<int>(*f)] = true;
      }
    }
    return records;
  }
  uint64_t line = 0;
  for (auto& object : ParseJsonLines(sample.bytes)) {
    RawRecord& raw = records.emplace_back();
    raw.position = ++line;
    for (auto& [key, value] : object) {
      const std::optional<Field> f = FieldFromName(key);
      EXPECT_TRUE(f.has_value()) << key;
      if (!f) continue;
      raw.values[static_cast<int>(*f)] = value.text;
      raw.present[static_cast<int>(*f)] = true;
    }
  }
  return records;
}

// Runs the validator over the sample and checks every record: valid ones
// pass, invalid ones fail with exactly one error of the expected kind.
void CheckAgainstValidator(uint64_t records, double ratio, SampleFormat format,
                           uint64_t seed) {
  const Sample sample = Generate(records, ratio, format, seed);
  const std::vector<RawRecord> raws = ToRawRecords(sample, format);
  ASSERT_EQ(raws.size(), records);
  ValidatorOptions options;
  options.now_epoch_seconds = kNow;
  Validator validator(options);
  std::map<std::string, uint64_t> by_kind;
  uint64_t rejected = 0;
  for (const RawRecord& raw : raws) {
    Record rec;
    std::vector<RecordError> errors;
    if (validator.Validate(raw, &rec, &errors)) continue;
    ++rejected;
    ASSERT_EQ(errors.size(), 1u)
        << "record at line " << raw.position << " fails " << errors.size()
        << " rules, first " << ErrorCodeName(errors[0].code) << ": "
        << errors[0].message << "; second " << ErrorCodeName(errors[1].code)
        << ": " << errors[1].message;
    ++by_kind[std::string(ErrorCodeName(errors[0].code))];
  }
  EXPECT_EQ(rejected, sample.stats.invalid);
  EXPECT_EQ(by_kind, sample.stats.invalid_by_kind);
}

// --- Tests ------------------------------------------------------------------

TEST(GenSampleTest, SameSeedGivesSameBytes) {
  for (SampleFormat format : {SampleFormat::kCsv, SampleFormat::kJsonLines}) {
    const Sample a = Generate(2000, 0.1, format, 42);
    const Sample b = Generate(2000, 0.1, format, 42);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_GT(a.bytes.size(), 2000u * 100);
  }
}

TEST(GenSampleTest, DifferentSeedGivesDifferentBytes) {
  const Sample a = Generate(500, 0.1, SampleFormat::kCsv, 1);
  const Sample b = Generate(500, 0.1, SampleFormat::kCsv, 2);
  EXPECT_NE(a.bytes, b.bytes);
  // Same record count and invalid positions: the plan does not use the seed.
  EXPECT_EQ(a.stats.invalid_by_kind, b.stats.invalid_by_kind);
}

// A known prefix, so an accidental change to the output is noticed: samples
// are used in benchmarks and bug reports, and must stay reproducible.
TEST(GenSampleTest, OutputIsStable) {
  const Sample a = Generate(3, 0.0, SampleFormat::kCsv, 7);
  const std::string header =
      "case_id,network,arn,pan,merchant_id,merchant_name,mcc,transaction_id,"
      "transaction_date,chargeback_date,amount,currency,reason_code,stage\n";
  ASSERT_EQ(a.bytes.substr(0, header.size()), header);
  EXPECT_EQ(a.bytes.substr(header.size(), 13), "CB0000000001,");
}

TEST(GenSampleTest, InvalidCountIsExactAndRotates) {
  struct Case {
    uint64_t records;
    double ratio;
  };
  for (const Case& c :
       {Case{1000, 0.02}, Case{1000, 0.0}, Case{999, 0.5}, Case{10, 1.0},
        Case{7, 0.3}, Case{12345, 0.0371}, Case{0, 0.5}}) {
    const Sample s = Generate(c.records, c.ratio, SampleFormat::kCsv, 3);
    const auto expected = static_cast<uint64_t>(
        std::llround(static_cast<double>(c.records) * c.ratio));
    EXPECT_EQ(s.stats.records, c.records);
    EXPECT_EQ(s.stats.invalid, expected) << c.records << " x " << c.ratio;
    uint64_t sum = 0, low = UINT64_MAX, high = 0;
    for (std::string_view kind : kSampleInvalidKinds) {
      auto it = s.stats.invalid_by_kind.find(std::string(kind));
      const uint64_t n = it == s.stats.invalid_by_kind.end() ? 0 : it->second;
      sum += n;
      low = std::min(low, n);
      high = std::max(high, n);
    }
    EXPECT_EQ(sum, expected);
    EXPECT_LE(high - low, 1u) << "kinds are given in rotation";
  }
}

TEST(GenSampleTest, RejectsBadOptions) {
  SampleOptions options;
  options.invalid_ratio = 1.5;
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(WriteSample(options, file).status().code(),
            StatusCode::kInvalidArgument);
  options.invalid_ratio = std::nan("");
  EXPECT_EQ(WriteSample(options, file).status().code(),
            StatusCode::kInvalidArgument);
  options.invalid_ratio = 0;
  EXPECT_EQ(WriteSample(options, file).status().code(),
            StatusCode::kInvalidArgument)
      << "now_epoch_seconds left at 0";
  options.now_epoch_seconds = kNow;
  options.records = 10'000'000'000ULL;
  EXPECT_EQ(WriteSample(options, file).status().code(),
            StatusCode::kInvalidArgument);
  std::fclose(file);
}

TEST(GenSampleTest, EveryRecordValidOrFailingExactlyOneRuleCsv) {
  CheckAgainstValidator(20000, 0.2, SampleFormat::kCsv, 11);
}

TEST(GenSampleTest, EveryRecordValidOrFailingExactlyOneRuleJsonLines) {
  CheckAgainstValidator(20000, 0.2, SampleFormat::kJsonLines, 12);
}

TEST(GenSampleTest, AllInvalid) {
  CheckAgainstValidator(1000, 1.0, SampleFormat::kCsv, 13);
}

// End to end with cbpipe's own reader: what `cbpipe validate` sees.
void CheckThroughReader(SampleFormat format, InputFormat input_format) {
  const std::string path =
      ::testing::TempDir() + (format == SampleFormat::kCsv
                                  ? "gen_sample_test.csv"
                                  : "gen_sample_test.jsonl");
  SampleOptions options;
  options.records = 20000;
  options.invalid_ratio = 0.1;
  options.format = format;
  options.seed = 99;
  options.now_epoch_seconds = kNow;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  StatusOr<SampleStats> stats = WriteSample(options, file);
  std::fclose(file);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();

  auto reader =
      OpenReader(path, input_format, FieldMapping::Default(), ReaderLimits{});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ValidatorOptions validator_options;
  validator_options.now_epoch_seconds = kNow;
  Validator validator(validator_options);
  std::map<std::string, uint64_t> by_kind;
  uint64_t records = 0, rejected = 0;
  RawRecord raw;
  while (true) {
    raw = RawRecord();
    StatusOr<bool> more = (*reader)->Next(&raw);
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    if (!*more) break;
    ++records;
    Record rec;
    std::vector<RecordError> errors;
    if (validator.Validate(raw, &rec, &errors)) continue;
    ++rejected;
    ASSERT_EQ(errors.size(), 1u)
        << "line " << raw.position << ": " << errors[0].message;
    ++by_kind[std::string(ErrorCodeName(errors[0].code))];
  }
  std::remove(path.c_str());
  EXPECT_EQ(records, options.records);
  EXPECT_EQ(rejected, stats->invalid);
  EXPECT_EQ(by_kind, stats->invalid_by_kind);
}

TEST(GenSampleTest, CbpipeReaderAndValidatorAgreeCsv) {
  CheckThroughReader(SampleFormat::kCsv, InputFormat::kAuto);
}

TEST(GenSampleTest, CbpipeReaderAndValidatorAgreeJsonLines) {
  CheckThroughReader(SampleFormat::kJsonLines, InputFormat::kAuto);
}

TEST(GenSampleTest, ValidRecordsAreRealistic) {
  const Sample sample = Generate(20000, 0.0, SampleFormat::kCsv, 5);
  const std::vector<RawRecord> raws = ToRawRecords(sample, SampleFormat::kCsv);
  ASSERT_EQ(raws.size(), 20000u);
  std::set<std::string> case_ids, currencies, stages;
  std::map<Network, uint64_t> networks;
  bool name_with_quote = false, name_with_comma = false,
       name_with_apostrophe = false, leading_zero_arn = false,
       derived_network = false;
  const int64_t today = kNow / 86400;
  for (const RawRecord& raw : raws) {
    auto value = [&](Field f) { return std::string(raw.value(f)); };
    EXPECT_TRUE(case_ids.insert(value(Field::kCaseId)).second);
    EXPECT_EQ(value(Field::kCaseId).size(), 12u);
    EXPECT_EQ(value(Field::kCaseId).substr(0, 2), "CB");

    const std::string pan = value(Field::kPan);
    std::optional<Network> network = ParseNetwork(value(Field::kNetwork));
    if (value(Field::kNetwork).empty()) {
      derived_network = true;
      network = NetworkFromPan(pan);
    }
    ASSERT_TRUE(network.has_value()) << value(Field::kNetwork) << " " << pan;
    ++networks[*network];

    if (!pan.empty()) {
      EXPECT_EQ(ClassifyPan(pan), PanKind::kMasked) << pan;
      if (*network == Network::kAmex) {
        EXPECT_EQ(pan.size(), 15u) << pan;
      } else {
        EXPECT_TRUE(pan.size() == 16 || pan.size() == 19) << pan;
      }
      if (pan[0] != '*' && pan[0] != 'X') {
        EXPECT_EQ(NetworkFromPan(pan), network) << pan;
        EXPECT_EQ(pan.find_first_not_of("0123456789"), 6u) << pan;
      }
    }

    const std::string arn = value(Field::kArn);
    if (*network == Network::kVisa || *network == Network::kMastercard) {
      EXPECT_EQ(CheckArn23(arn), ArnProblem::kNone) << arn;
      leading_zero_arn |= arn[0] == '0';
    } else if (!arn.empty()) {
      EXPECT_TRUE(IsValidOptionalReference(arn)) << arn;
    }

    EXPECT_NE(FindReasonCode(*network, value(Field::kReasonCode)), nullptr)
        << NetworkName(*network) << " " << value(Field::kReasonCode);

    std::string currency = value(Field::kCurrency);
    for (char& c : currency) c = static_cast<char>(std::toupper(c));
    const CurrencyInfo* info = FindCurrency(currency);
    ASSERT_NE(info, nullptr) << currency;
    currencies.insert(currency);
    const std::string amount = value(Field::kAmount);
    EXPECT_EQ(ParseAmount(amount, info->minor_units).problem,
              AmountProblem::kNone)
        << amount << " " << currency;
    const size_t dot = amount.find('.');
    if (dot != std::string::npos) {
      EXPECT_LE(static_cast<int>(amount.size() - dot - 1), info->minor_units);
    }

    auto txn = ParseDateTime(value(Field::kTransactionDate), {});
    auto cb = ParseDateTime(value(Field::kChargebackDate), {});
    ASSERT_TRUE(txn && cb) << value(Field::kTransactionDate) << " "
                           << value(Field::kChargebackDate);
    EXPECT_LT(txn->EpochSeconds(), cb->EpochSeconds());
    EXPECT_LT(cb->EpochDays(), today);

    const std::string mcc = value(Field::kMcc);
    EXPECT_EQ(mcc.size(), 4u);
    EXPECT_EQ(mcc.find_first_not_of("0123456789"), std::string::npos);
    const std::string stage = value(Field::kStage);
    if (!stage.empty()) {
      EXPECT_TRUE(ParseStage(stage).has_value()) << stage;
    }
    stages.insert(stage);

    const std::string name = value(Field::kMerchantName);
    name_with_quote |= name.find('"') != std::string::npos;
    name_with_comma |= name.find(',') != std::string::npos;
    name_with_apostrophe |= name.find('\'') != std::string::npos;
  }
  EXPECT_EQ(networks.size(), 4u);
  for (const char* code : {"USD", "EUR", "GBP", "JPY", "KWD"}) {
    EXPECT_EQ(currencies.count(code), 1u) << code;
  }
  EXPECT_GE(stages.size(), 5u);
  EXPECT_TRUE(name_with_quote);
  EXPECT_TRUE(name_with_comma);
  EXPECT_TRUE(name_with_apostrophe);
  EXPECT_TRUE(leading_zero_arn);
  EXPECT_TRUE(derived_network);
}

TEST(GenSampleTest, JsonLinesHasNumberAndStringAmounts) {
  const Sample sample = Generate(2000, 0.0, SampleFormat::kJsonLines, 9);
  uint64_t numbers = 0, strings = 0;
  for (auto& object : ParseJsonLines(sample.bytes)) {
    auto it = object.find("amount");
    ASSERT_NE(it, object.end());
    ++(it->second.is_number ? numbers : strings);
  }
  EXPECT_GT(numbers, 200u);
  EXPECT_GT(strings, 1000u);
}

// The same records in both formats: a JSON Lines sample is the CSV sample
// in another syntax.
TEST(GenSampleTest, CsvAndJsonLinesHoldTheSameRecords) {
  const Sample csv = Generate(3000, 0.1, SampleFormat::kCsv, 21);
  const Sample jsonl = Generate(3000, 0.1, SampleFormat::kJsonLines, 21);
  const auto a = ToRawRecords(csv, SampleFormat::kCsv);
  const auto b = ToRawRecords(jsonl, SampleFormat::kJsonLines);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].values, b[i].values) << "record " << i;
  }
}

// The reference values invalid records use are really unknown to the
// domain tables, so each such record fails exactly the intended rule.
TEST(GenSampleTest, UnknownValuesAreUnknown) {
  for (const char* code : {"XYZ", "US$", "EURO", "BTC", "RMB", "UKP"}) {
    EXPECT_EQ(FindCurrency(code), nullptr) << code;
  }
  for (const char* name :
       {"JCB", "UnionPay", "Diners Club", "Maestro", "RuPay", "ELO"}) {
    EXPECT_FALSE(ParseNetwork(name).has_value()) << name;
  }
}

}  // namespace
}  // namespace cbpipe
