#include "output/row_formatter.h"

#include <gtest/gtest.h>

#include <iterator>
#include <limits>
#include <map>

#include "domain/rules.h"
#include "output/test_util.h"

namespace cbpipe {
namespace {

using testing::MakeRecord;

std::string Cell(std::string_view text, bool always_quote = false,
                 char delimiter = ',') {
  std::string out;
  AppendCsvCell(text, delimiter, always_quote, &out);
  return out;
}

TEST(CsvCellTest, PlainCellsAreWrittenAsTheyAre) {
  EXPECT_EQ(Cell("abc"), "abc");
  EXPECT_EQ(Cell(""), "");
  EXPECT_EQ(Cell("12.50"), "12.50");
  EXPECT_EQ(Cell("a;b"), "a;b");  // not the delimiter here
  EXPECT_EQ(Cell("Zürich"), "Zürich");
}

TEST(CsvCellTest, QuotesCellsWithDelimiterQuoteOrLineBreak) {
  EXPECT_EQ(Cell("Acme, Inc."), "\"Acme, Inc.\"");
  EXPECT_EQ(Cell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(Cell("\""), "\"\"\"\"");
  EXPECT_EQ(Cell("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(Cell("two\r\nlines"), "\"two\r\nlines\"");
  EXPECT_EQ(Cell("a;b", false, ';'), "\"a;b\"");
  EXPECT_EQ(Cell("a\tb", false, '\t'), "\"a\tb\"");
  EXPECT_EQ(Cell("a,b", false, '|'), "a,b");
}

TEST(CsvCellTest, AlwaysQuoteKeepsLeadingZerosVisibleAsText) {
  EXPECT_EQ(Cell("000123", true), "\"000123\"");
  EXPECT_EQ(Cell("", true), "\"\"");
  EXPECT_EQ(Cell("a\"b", true), "\"a\"\"b\"");
}

TEST(CsvCellTest, FormulaInjectionIsNeutralisedForEachTriggerCharacter) {
  for (std::string_view trigger : {"=", "+", "-", "@", "\t", "\r"}) {
    const std::string cell = std::string(trigger) + "SUM(A1:A9)";
    EXPECT_TRUE(NeedsFormulaGuard(cell)) << int(trigger[0]);
    EXPECT_EQ(Cell(cell), "\"'" + cell + "\"") << int(trigger[0]);
    EXPECT_EQ(Cell(cell, true), "\"'" + cell + "\"") << int(trigger[0]);
  }
  // Quotes inside a guarded cell are still doubled.
  EXPECT_EQ(Cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
  // Only the first character matters.
  EXPECT_FALSE(NeedsFormulaGuard("a=b"));
  EXPECT_FALSE(NeedsFormulaGuard("'=x"));
  EXPECT_FALSE(NeedsFormulaGuard(""));
  EXPECT_FALSE(NeedsFormulaGuard(" =x"));
  EXPECT_EQ(Cell("a-b"), "a-b");
}

TEST(AppendAmountTest, MatchesFormatAmount) {
  const int64_t values[] = {0,
                            1,
                            5,
                            9,
                            10,
                            99,
                            100,
                            1250,
                            123456789,
                            1000000000000000LL,
                            -5,
                            -1250,
                            std::numeric_limits<int64_t>::max(),
                            std::numeric_limits<int64_t>::min()};
  for (int exponent : {0, 1, 2, 3, 4, 18}) {
    for (int64_t v : values) {
      std::string out = "x";
      AppendAmountDecimal(v, exponent, &out);
      EXPECT_EQ(out, "x" + FormatAmount(v, exponent)) << v << " " << exponent;
    }
  }
  std::string out;
  AppendAmountDecimal(1250, 2, &out);
  EXPECT_EQ(out, "12.50");
  out.clear();
  AppendAmountDecimal(5, 3, &out);
  EXPECT_EQ(out, "0.005");
  out.clear();
  AppendAmountDecimal(100, 0, &out);
  EXPECT_EQ(out, "100");
}

TEST(AppendDateTest, MatchesFormatDateTime) {
  DateTime t{.year = 987,
             .month = 3,
             .day = 1,
             .hour = 7,
             .minute = 5,
             .second = 9,
             .has_time = true};
  for (std::string_view pattern :
       {"%Y%m%d", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S", "%%Y", "100%", "%q", ""}) {
    std::string out;
    AppendDate(t, pattern, &out);
    EXPECT_EQ(out, FormatDateTime(t, pattern)) << pattern;
  }
}

TEST(RowFormatterTest, VisaRowAndHeader) {
  RowFormatter formatter(*BuiltinLayout("visa"));
  std::string out;
  formatter.AppendHeader(&out);
  EXPECT_EQ(out,
            "CASE_ID,ARN,PAN,MERCHANT_ID,TRANSACTION_DATE,CHARGEBACK_DATE,"
            "AMOUNT,CURRENCY,REASON_CODE,STAGE\r\n");
  EXPECT_EQ(formatter.header_size(), out.size());
  out.clear();
  formatter.AppendRecord(MakeRecord(Network::kVisa, "CB-1"), &out);
  EXPECT_EQ(out,
            "\"CB-1\",\"74567890123456789012345\",411111******1111,\"000123\","
            "20250227,20250301,12.50,USD,10.4,FIRST_CHARGEBACK\r\n");
}

TEST(RowFormatterTest, MastercardUsesMinorUnitsAndLowerCaseStage) {
  RowFormatter formatter(*BuiltinLayout("mastercard"));
  Record r = MakeRecord(Network::kMastercard, "M1", 123456, "KWD", 3);
  r.stage = Stage::kPreArbitration;
  std::string out;
  formatter.AppendRecord(r, &out);
  EXPECT_EQ(out,
            "\"M1\",\"74567890123456789012345\",411111******1111,\"000123\","
            "2025-02-27,2025-03-01,123456,KWD,10.4,pre_arbitration\r\n");
}

TEST(RowFormatterTest, AmexQuotesMerchantNameAndLeavesMissingArnEmpty) {
  RowFormatter formatter(*BuiltinLayout("amex"));
  Record r = MakeRecord(Network::kAmex, "A1", 1000, "JPY", 0);
  r.merchant_name = "=cmd|' /C calc'!A0";
  std::string out;
  formatter.AppendRecord(r, &out);
  EXPECT_EQ(out,
            "\"A1\",\"000123\",\"'=cmd|' /C calc'!A0\",411111******1111,\"\","
            "2025-02-27,2025-03-01,1000,JPY,10.4,FIRST_CHARGEBACK\r\n");
}

TEST(RowFormatterTest, DiscoverOptionalDueDateIsEmptyWhenAbsent) {
  RowFormatter formatter(*BuiltinLayout("discover"));
  Record r = MakeRecord(Network::kDiscover, "D1");
  std::string out;
  formatter.AppendRecord(r, &out);
  EXPECT_EQ(out,
            "\"D1\",\"000123\",5999,411111******1111,\"\",20250227,20250301,,"
            "12.50,USD,10.4,FIRST_CHARGEBACK\r\n");
  r.due_date = DateTime{.year = 2025, .month = 3, .day = 31};
  out.clear();
  formatter.AppendRecord(r, &out);
  EXPECT_NE(out.find(",20250331,"), std::string::npos) << out;
}

TEST(RowFormatterTest, CustomLayoutConstantsFormatsAndInjectionInData) {
  Layout layout;
  layout.name = "custom";
  layout.delimiter = ';';
  layout.line_ending = "\n";
  auto add = [&](std::string header, std::optional<Field> field,
                 ColumnFormat format = ColumnFormat::kText) {
    Column c;
    c.header = std::move(header);
    c.field = field;
    c.format = format;
    layout.columns.push_back(c);
  };
  add("=KIND", std::nullopt, ColumnFormat::kUpper);
  layout.columns.back().constant = "detail";
  add("network", Field::kNetwork, ColumnFormat::kUpper);
  add("reason", Field::kReasonText);
  add("when", Field::kChargebackDate);  // text: ISO 8601
  add("amount", Field::kAmount);        // text: decimal
  add("txn", Field::kTransactionAmount, ColumnFormat::kAmountMinor);
  ASSERT_TRUE(ValidateLayout(layout).ok());
  RowFormatter formatter(layout);
  std::string out;
  formatter.AppendHeader(&out);
  EXPECT_EQ(out, "\"'=KIND\";network;reason;when;amount;txn\n");
  Record r = MakeRecord(Network::kMastercard, "X");
  r.reason_text = "-2+3; \"no\"";
  out.clear();
  formatter.AppendRecord(r, &out);
  EXPECT_EQ(out, "DETAIL;MASTERCARD;\"'-2+3; \"\"no\"\"\";2025-03-01;12.50;\n");
  r.transaction_amount_minor = 9999;
  out.clear();
  formatter.AppendRecord(r, &out);
  EXPECT_EQ(out.substr(out.size() - 6), ";9999\n");
}

TEST(CurrencyTotalsTest, RefusesOverflowAndKeepsOrder) {
  CurrencyTotals totals;
  EXPECT_TRUE(totals.Add("USD", 2, 100));
  EXPECT_TRUE(totals.Add("EUR", 2, 5));
  EXPECT_TRUE(totals.Add("USD", 2, 50));
  EXPECT_TRUE(totals.CanAdd("USD", std::numeric_limits<int64_t>::max() - 150));
  EXPECT_FALSE(totals.CanAdd("USD", std::numeric_limits<int64_t>::max() - 149));
  EXPECT_FALSE(totals.Add("USD", 2, std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(totals.MinorByCurrency(),
            (std::map<std::string, int64_t>{{"EUR", 5}, {"USD", 150}}));
}

TEST(TrailerTest, CountAndTotalsPerCurrencyWithEachExponent) {
  RowFormatter formatter(*BuiltinLayout("mastercard"));  // 10 columns
  CurrencyTotals totals;
  totals.Add("USD", 2, 1250);
  totals.Add("JPY", 0, 1000);
  totals.Add("KWD", 3, 12345);
  std::string out;
  formatter.AppendTrailer(3, totals, nullptr, &out);
  EXPECT_EQ(out, "TRAILER,3,JPY=1000;KWD=12.345;USD=12.50,,,,,,,\r\n");

  // As it would be with one more record, for size checks.
  Record eur = MakeRecord(Network::kMastercard, "E", 1, "EUR", 2);
  out.clear();
  formatter.AppendTrailer(3, totals, &eur, &out);
  EXPECT_EQ(out, "TRAILER,4,EUR=0.01;JPY=1000;KWD=12.345;USD=12.50,,,,,,,\r\n");
  Record usd = MakeRecord(Network::kMastercard, "U", 50);
  out.clear();
  formatter.AppendTrailer(3, totals, &usd, &out);
  EXPECT_EQ(out, "TRAILER,4,JPY=1000;KWD=12.345;USD=13.00,,,,,,,\r\n");
  Record zzz = MakeRecord(Network::kMastercard, "Z", 7, "ZWL", 2);
  out.clear();
  formatter.AppendTrailer(3, totals, &zzz, &out);
  EXPECT_EQ(out, "TRAILER,4,JPY=1000;KWD=12.345;USD=12.50;ZWL=0.07,,,,,,,\r\n");
  // The map itself is untouched by the "what if".
  EXPECT_EQ(totals.entries().size(), 3u);
}

TEST(TrailerTest, EmptyTotalsAndSemicolonDelimiter) {
  Layout layout = *BuiltinLayout("amex");
  layout.delimiter = ';';
  RowFormatter formatter(layout);
  std::string out;
  formatter.AppendTrailer(0, CurrencyTotals(), nullptr, &out);
  EXPECT_EQ(out, "TRAILER;0;;;;;;;;;\r\n");
  CurrencyTotals totals;
  totals.Add("EUR", 2, 1);
  totals.Add("USD", 2, 2);
  out.clear();
  formatter.AppendTrailer(2, totals, nullptr, &out);
  EXPECT_EQ(out, "TRAILER;2;\"EUR=0.01;USD=0.02\";;;;;;;;\r\n");
}

// The formatter as it was before the record path was compiled into column
// ops and cells were scanned word by word (commit d41ad2d), kept verbatim
// as the reference the fast paths must match byte for byte.
namespace reference {

char* WritePadded(int64_t value, int width, char* p) {
  uint64_t magnitude = static_cast<uint64_t>(value);
  if (value < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  int length = 0;
  do {
    digits[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length < width) digits[length++] = '0';
  while (length > 0) *p++ = digits[--length];
  return p;
}

char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

void AppendCsvCell(std::string_view cell, char delimiter, bool always_quote,
                   std::string* out) {
  const bool guard =
      !cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' ||
                        cell[0] == '@' || cell[0] == '\t' || cell[0] == '\r');
  bool quote = always_quote || guard;
  if (!quote) {
    for (char c : cell) {
      if ((static_cast<unsigned char>(c) <= '"' &&
           (c == '"' || c == '\r' || c == '\n')) ||
          c == delimiter) {
        quote = true;
        break;
      }
    }
  }
  if (!quote) {
    out->append(cell);
    return;
  }
  out->push_back('"');
  if (guard) out->push_back('\'');
  size_t start = 0;
  for (size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] == '"') {
      out->append(cell.substr(start, i + 1 - start));
      out->push_back('"');
      start = i + 1;
    }
  }
  out->append(cell.substr(start));
  out->push_back('"');
}

void AppendAmountDecimal(int64_t minor, int exponent, std::string* out) {
  if (exponent < 0) exponent = 0;
  if (exponent > 18) exponent = 18;
  uint64_t magnitude = static_cast<uint64_t>(minor);
  char buffer[48];
  char* p = buffer;
  if (minor < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  int length = 0;
  do {
    digits[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length < exponent + 1) digits[length++] = '0';
  while (length > 0) {
    *p++ = digits[--length];
    if (length == exponent && exponent > 0) *p++ = '.';
  }
  out->append(buffer, p);
}

std::string_view TextOf(Field field, const Record& record) {
  switch (field) {
    case Field::kCaseId: return record.case_id;
    case Field::kNetwork: return NetworkName(record.network);
    case Field::kArn: return record.arn;
    case Field::kPan: return record.pan_masked;
    case Field::kMerchantId: return record.merchant_id;
    case Field::kCurrency: return record.currency;
    case Field::kReasonCode: return record.reason_code;
    case Field::kStage: return StageName(record.stage);
    case Field::kTransactionId: return record.transaction_id;
    case Field::kMerchantName: return record.merchant_name;
    case Field::kMcc: return record.mcc;
    case Field::kReasonText: return record.reason_text;
    case Field::kStatus: return record.status;
    default: return {};
  }
}

bool IsDateField(Field field) {
  return field == Field::kTransactionDate || field == Field::kChargebackDate ||
         field == Field::kDueDate;
}

void AppendValue(const Column& column, const Record& record, std::string* out) {
  const Field field = *column.field;
  switch (field) {
    case Field::kTransactionDate:
    case Field::kChargebackDate:
    case Field::kDueDate: {
      const DateTime* date =
          field == Field::kTransactionDate  ? &record.transaction_date
          : field == Field::kChargebackDate ? &record.chargeback_date
          : record.due_date.has_value()     ? &*record.due_date
                                            : nullptr;
      if (date == nullptr) return;
      const bool compact = column.date_pattern == "%Y%m%d";
      const bool dashed = column.date_pattern == "%Y-%m-%d";
      if (column.format == ColumnFormat::kDate && (compact || dashed) &&
          date->year >= 0 && date->year <= 9999) {
        char buffer[32];
        char* p = WritePadded(date->year, 4, buffer);
        if (dashed) *p++ = '-';
        p = WritePadded(date->month, 2, p);
        if (dashed) *p++ = '-';
        p = WritePadded(date->day, 2, p);
        out->append(buffer, p);
      } else if (column.format == ColumnFormat::kDate) {
        out->append(FormatDateTime(*date, column.date_pattern));
      } else {
        out->append(date->ToIso());
      }
      return;
    }
    case Field::kAmount:
    case Field::kTransactionAmount: {
      const int64_t* minor = nullptr;
      if (field == Field::kAmount) {
        minor = &record.amount_minor;
      } else if (record.transaction_amount_minor.has_value()) {
        minor = &*record.transaction_amount_minor;
      }
      if (minor == nullptr) return;
      if (column.format == ColumnFormat::kAmountMinor) {
        out->append(std::to_string(*minor));
      } else {
        AppendAmountDecimal(*minor, record.currency_exponent, out);
      }
      return;
    }
    default: {
      std::string_view text = TextOf(field, record);
      const size_t at = out->size();
      out->append(text);
      if (column.format == ColumnFormat::kUpper) {
        for (size_t i = at; i < out->size(); ++i) {
          (*out)[i] = AsciiUpper((*out)[i]);
        }
      } else if (column.format == ColumnFormat::kLower) {
        for (size_t i = at; i < out->size(); ++i) {
          (*out)[i] = AsciiLower((*out)[i]);
        }
      }
    }
  }
}

std::string Row(const Layout& layout, const Record& record) {
  std::string out, scratch;
  const char delimiter = layout.delimiter;
  for (size_t i = 0; i < layout.columns.size(); ++i) {
    if (i > 0) out.push_back(delimiter);
    const Column& column = layout.columns[i];
    std::string_view cell;
    if (!column.field.has_value()) {
      if (column.format == ColumnFormat::kText) {
        cell = column.constant;
      } else {
        scratch.clear();
        for (char c : column.constant) {
          scratch.push_back(column.format == ColumnFormat::kUpper
                                ? AsciiUpper(c)
                                : AsciiLower(c));
        }
        cell = scratch;
      }
    } else if (column.format == ColumnFormat::kText &&
               !IsDateField(*column.field) && *column.field != Field::kAmount &&
               *column.field != Field::kTransactionAmount) {
      cell = TextOf(*column.field, record);
    } else {
      scratch.clear();
      AppendValue(column, record, &scratch);
      cell = scratch;
    }
    AppendCsvCell(cell, delimiter, column.always_quote, &out);
  }
  out.append(layout.line_ending);
  return out;
}

}  // namespace reference

// Random text biased towards what the cell scan must notice: quotes, line
// breaks, delimiters, formula triggers, NUL and non-ASCII bytes, at every
// position and across every word boundary of the scan (lengths 0 to 40).
class Tricky {
 public:
  explicit Tricky(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  int Below(int n) { return static_cast<int>(Next() % n); }

  std::string Text() {
    static constexpr std::string_view kSpecial =
        "\",;\t\r\n|=+-@'. 0a9Zz\xc3\xbc";
    const int length = Below(5) == 0 ? Below(41) : Below(17);
    std::string text;
    const bool dense = Below(3) == 0;
    for (int i = 0; i < length; ++i) {
      const int pick = Below(dense ? 3 : 12);
      if (pick == 0) {
        text.push_back(kSpecial[Below(static_cast<int>(kSpecial.size()))]);
      } else if (pick == 1 && Below(8) == 0) {
        text.push_back(static_cast<char>(Below(256)));  // any byte, NUL too
      } else {
        text.push_back(static_cast<char>('A' + Below(26) + 32 * Below(2)));
      }
    }
    return text;
  }

  int64_t Amount() {
    static constexpr int64_t kEdges[] = {0,
                                         1,
                                         -1,
                                         9,
                                         10,
                                         99,
                                         100,
                                         1250,
                                         999999999999999999LL,
                                         std::numeric_limits<int64_t>::max(),
                                         std::numeric_limits<int64_t>::min()};
    switch (Below(4)) {
      case 0: return kEdges[Below(std::size(kEdges))];
      case 1: return static_cast<int64_t>(Next());
      default: return Below(10000000);
    }
  }

  DateTime Date() {
    DateTime d;
    static constexpr int kYears[] = {
        0, 1, 9, 10, 99, 100, 999, 1970, 2025, 9999, 10000, -1, -2025, 123456};
    static constexpr int kSmall[] = {0, 1, 9, 10, 12, 31, 99, 100, -1, -12};
    d.year =
        Below(3) == 0 ? kYears[Below(std::size(kYears))] : 1990 + Below(50);
    d.month = Below(4) == 0 ? kSmall[Below(std::size(kSmall))] : 1 + Below(12);
    d.day = Below(4) == 0 ? kSmall[Below(std::size(kSmall))] : 1 + Below(28);
    d.hour = Below(24);
    d.minute = Below(60);
    d.second = Below(60);
    d.has_time = Below(2) == 0;
    d.has_offset = d.has_time && Below(2) == 0;
    d.offset_minutes = d.has_offset ? Below(1500) - 750 : 0;
    return d;
  }

  Record MakeRecord() {
    Record r;
    r.case_id = Text();
    r.network = static_cast<Network>(Below(kNetworkCount + 1));
    r.arn = Text();
    r.pan_masked = Text();
    r.merchant_id = Text();
    r.transaction_date = Date();
    r.chargeback_date = Date();
    r.amount_minor = Amount();
    r.currency = Below(2) == 0 ? "USD" : Text();
    r.currency_exponent = Below(6) == 0 ? Below(24) - 2 : Below(4);
    r.reason_code = Text();
    r.stage = static_cast<Stage>(Below(6));
    r.transaction_id = Text();
    r.merchant_name = Text();
    r.mcc = Text();
    r.reason_text = Text();
    if (Below(2) == 0) r.due_date = Date();
    if (Below(2) == 0) r.transaction_amount_minor = Amount();
    r.status = Text();
    return r;
  }

 private:
  uint64_t state_;
};

constexpr char kDelimiters[] = {',', ';', '\t', '|', ' ', '0',    '5',
                                '-', '.', '\'', '=', 'a', '\x01', '\xfc'};

TEST(CsvCellTest, MatchesTheReferenceOnTrickyText) {
  Tricky random(42);
  for (int i = 0; i < 200000; ++i) {
    const std::string text = random.Text();
    const char delimiter = kDelimiters[random.Below(std::size(kDelimiters))];
    const bool always_quote = random.Below(3) == 0;
    std::string want = "x", got = "x";
    reference::AppendCsvCell(text, delimiter, always_quote, &want);
    AppendCsvCell(text, delimiter, always_quote, &got);
    ASSERT_EQ(got, want) << ::testing::PrintToString(text) << " delimiter "
                         << int(delimiter) << " quote " << always_quote;
  }
}

// Every field in every format (the invalid combinations too: the formatter
// has always written something for them), constants, generic date patterns.
Layout EveryColumnLayout(Tricky& random, char delimiter) {
  Layout layout;
  layout.name = "every";
  layout.delimiter = delimiter;
  layout.line_ending = random.Below(2) == 0 ? "\r\n" : "\n";
  layout.header = random.Below(2) == 0;
  static constexpr ColumnFormat kFormats[] = {
      ColumnFormat::kText,          ColumnFormat::kUpper,
      ColumnFormat::kLower,         ColumnFormat::kDate,
      ColumnFormat::kAmountDecimal, ColumnFormat::kAmountMinor};
  static constexpr std::string_view kPatterns[] = {
      "%Y%m%d", "%Y-%m-%d", "%d/%m/%Y %H:%M:%S", "%Y", "%q%", "\"%Y\"", ""};
  for (int f = 0; f < kFieldCount; ++f) {
    for (ColumnFormat format : kFormats) {
      Column column;
      column.header = random.Text();
      column.field = static_cast<Field>(f);
      column.format = format;
      column.date_pattern = kPatterns[random.Below(std::size(kPatterns))];
      column.always_quote = random.Below(4) == 0;
      layout.columns.push_back(std::move(column));
    }
  }
  for (ColumnFormat format : kFormats) {
    Column column;
    column.header = random.Text();
    column.constant = random.Text();
    column.format = format;
    column.always_quote = random.Below(4) == 0;
    layout.columns.push_back(std::move(column));
  }
  return layout;
}

TEST(RowFormatterTest, MatchesTheReferenceOnTrickyRecordsAndLayouts) {
  Tricky random(7);
  std::vector<Layout> layouts;
  for (std::string_view name : {"visa", "mastercard", "amex", "discover"}) {
    for (char delimiter : kDelimiters) {
      Layout layout = *BuiltinLayout(name);
      layout.delimiter = delimiter;
      layouts.push_back(std::move(layout));
    }
  }
  for (char delimiter : kDelimiters) {
    layouts.push_back(EveryColumnLayout(random, delimiter));
  }
  for (const Layout& layout : layouts) {
    RowFormatter formatter(layout);
    std::string storage;  // reused, as the planner does
    for (int i = 0; i < 2000; ++i) {
      const Record record = random.MakeRecord();
      const std::string want = reference::Row(layout, record);
      std::string appended = "prefix";
      formatter.AppendRecord(record, &appended);
      ASSERT_EQ(appended, "prefix" + want)
          << layout.name << " delimiter " << int(layout.delimiter);
      ASSERT_EQ(formatter.FormatRecord(record, &storage), want)
          << layout.name << " delimiter " << int(layout.delimiter);
    }
  }
}

TEST(RowFormatterTest, FormatRecordReusesItsStorage) {
  RowFormatter formatter(*BuiltinLayout("amex"));
  std::string storage;
  Record big = MakeRecord(Network::kAmex, "A1");
  big.merchant_name = std::string(3000, '"');  // every byte doubled
  Record small = MakeRecord(Network::kAmex, "A2");
  std::string want;
  formatter.AppendRecord(big, &want);
  EXPECT_EQ(formatter.FormatRecord(big, &storage), want);
  const size_t grown = storage.size();
  want.clear();
  formatter.AppendRecord(small, &want);
  EXPECT_EQ(formatter.FormatRecord(small, &storage), want);
  EXPECT_EQ(storage.size(), grown);  // kept, not shrunk and regrown
}

TEST(CurrencyTotalsTest, MatchesAMapOnAnyCodes) {
  Tricky random(3);
  static const std::string kCodes[] = {"USD",
                                       "EUR",
                                       "JPY",
                                       "",
                                       "A",
                                       "AB",
                                       "ABCDEFG",
                                       "ABCDEFGH",
                                       "ABCDEFGHIJKL",
                                       std::string("US\0", 3),
                                       std::string("US\0D", 4),
                                       "usd",
                                       "\xff\xff\xff\xff\xff\xff\xff"};
  for (int round = 0; round < 200; ++round) {
    CurrencyTotals totals;
    std::map<std::string, CurrencyTotals::Entry> model;
    for (int i = 0; i < 50; ++i) {
      const std::string& code = kCodes[random.Below(std::size(kCodes))];
      const int64_t minor = random.Below(10) == 0
                                ? std::numeric_limits<int64_t>::max() / 2
                                : random.Below(1000000);
      const int exponent = random.Below(4);
      auto it = model.find(code);
      int64_t sum = 0;
      const bool fits = it == model.end() ||
                        !__builtin_add_overflow(it->second.minor, minor, &sum);
      ASSERT_EQ(totals.CanAdd(code, minor), fits);
      ASSERT_EQ(totals.Add(code, exponent, minor), fits);
      if (it == model.end()) {
        model.emplace(code, CurrencyTotals::Entry{minor, exponent});
      } else if (fits) {
        it->second.minor = sum;
      }
    }
    ASSERT_EQ(totals.entries().size(), model.size());
    auto it = model.begin();
    for (const auto& [code, entry] : totals.entries()) {
      EXPECT_EQ(code, it->first);
      EXPECT_EQ(entry.minor, it->second.minor);
      EXPECT_EQ(entry.exponent, it->second.exponent);
      ++it;
    }
  }
}

// More codes than the lookup table has slots: codes sharing a slot must
// still each find their own total, whatever order they arrive in.
TEST(CurrencyTotalsTest, ManyCodesEachKeepTheirOwnTotal) {
  Tricky random(11);
  std::vector<std::string> codes;
  for (char a = 'A'; a <= 'Z'; a += 3) {
    for (char b = 'A'; b <= 'Z'; b += 2) {
      codes.push_back({a, b, static_cast<char>('A' + random.Below(26))});
    }
  }
  CurrencyTotals totals;
  std::map<std::string, int64_t> model;
  for (int i = 0; i < 5000; ++i) {
    const std::string& code = codes[random.Below(codes.size())];
    const int64_t minor = 1 + random.Below(1000);
    ASSERT_TRUE(totals.CanAdd(code, minor));
    ASSERT_TRUE(totals.Add(code, 2, minor));
    model[code] += minor;
  }
  EXPECT_GT(model.size(), 64u);
  EXPECT_EQ(totals.MinorByCurrency(), model);
}

}  // namespace
}  // namespace cbpipe
