#include "output/row_formatter.h"

#include <gtest/gtest.h>

#include <limits>

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

}  // namespace
}  // namespace cbpipe
