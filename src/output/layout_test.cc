#include "output/layout.h"

#include <gtest/gtest.h>

#include <set>

#include "output/test_util.h"

namespace cbpipe {
namespace {

TEST(BuiltinLayoutTest, EveryNetworkHasAValidLayoutOfItsName) {
  for (Network n : kAllNetworks) {
    auto layout = BuiltinLayout(NetworkName(n));
    ASSERT_TRUE(layout.has_value()) << NetworkName(n);
    EXPECT_EQ(layout->name, NetworkName(n));
    EXPECT_TRUE(ValidateLayout(*layout).ok())
        << ValidateLayout(*layout).ToString();
  }
  EXPECT_FALSE(BuiltinLayout("jcb").has_value());
  EXPECT_FALSE(BuiltinLayout("VISA").has_value());
}

TEST(BuiltinLayoutTest, LayoutsDiffer) {
  std::set<std::string> header_rows;
  for (Network n : kAllNetworks) {
    std::string row;
    const Layout layout = *BuiltinLayout(NetworkName(n));
    for (const Column& c : layout.columns) {
      row += c.header + ",";
    }
    header_rows.insert(row);
  }
  EXPECT_EQ(header_rows.size(), 4u);
}

TEST(BuiltinLayoutTest, IdentifiersAreAlwaysQuotedAndOthersAreNot) {
  for (Network n : kAllNetworks) {
    const Layout layout = *BuiltinLayout(NetworkName(n));
    for (const Column& c : layout.columns) {
      const bool id = c.field == Field::kArn || c.field == Field::kCaseId ||
                      c.field == Field::kMerchantId;
      EXPECT_EQ(c.always_quote, id) << NetworkName(n) << " " << c.header;
    }
  }
}

TEST(BuiltinLayoutTest, VisaColumnsAsDocumented) {
  Layout visa = *BuiltinLayout("visa");
  std::vector<std::string> headers;
  for (const Column& c : visa.columns) headers.push_back(c.header);
  EXPECT_EQ(headers, (std::vector<std::string>{
                         "CASE_ID", "ARN", "PAN", "MERCHANT_ID",
                         "TRANSACTION_DATE", "CHARGEBACK_DATE", "AMOUNT",
                         "CURRENCY", "REASON_CODE", "STAGE"}));
  EXPECT_EQ(visa.columns[4].date_pattern, "%Y%m%d");
  EXPECT_EQ(visa.columns[6].format, ColumnFormat::kAmountDecimal);
  EXPECT_EQ(visa.columns[9].format, ColumnFormat::kUpper);
  EXPECT_EQ(visa.trailer, TrailerKind::kNone);
  EXPECT_EQ(visa.line_ending, "\r\n");
}

TEST(BuiltinLayoutTest, MastercardUsesMinorUnitsAndATrailer) {
  Layout mc = *BuiltinLayout("mastercard");
  EXPECT_EQ(mc.trailer, TrailerKind::kCountAndTotal);
  bool minor = false;
  for (const Column& c : mc.columns) {
    if (c.field == Field::kAmount)
      minor = c.format == ColumnFormat::kAmountMinor;
  }
  EXPECT_TRUE(minor);
}

TEST(ColumnFormatTest, ParsesConfigNamesAndRoundTrips) {
  for (auto [name, format] : std::vector<std::pair<std::string, ColumnFormat>>{
           {"text", ColumnFormat::kText},
           {"upper", ColumnFormat::kUpper},
           {"lower", ColumnFormat::kLower},
           {"date", ColumnFormat::kDate},
           {"amount", ColumnFormat::kAmountDecimal},
           {"amount_minor", ColumnFormat::kAmountMinor}}) {
    EXPECT_EQ(ParseColumnFormat(name), format) << name;
    EXPECT_EQ(ColumnFormatName(format), name);
  }
  EXPECT_FALSE(ParseColumnFormat("Amount").has_value());
  EXPECT_FALSE(ParseColumnFormat("").has_value());
  EXPECT_EQ(ParseTrailerKind("count_and_total"), TrailerKind::kCountAndTotal);
  EXPECT_EQ(ParseTrailerKind("none"), TrailerKind::kNone);
  EXPECT_FALSE(ParseTrailerKind("count").has_value());
}

Layout OneColumn(Field field, ColumnFormat format) {
  Layout layout;
  layout.name = "custom";
  Column c;
  c.header = "X";
  c.field = field;
  c.format = format;
  layout.columns.push_back(c);
  return layout;
}

TEST(ValidateLayoutTest, RejectsWhatCannotBeWrittenOrVerified) {
  Layout empty;
  empty.name = "empty";
  EXPECT_EQ(ValidateLayout(empty).code(), StatusCode::kInvalidArgument);

  for (char bad : {'"', '\r', '\n', '\0'}) {
    Layout l = *BuiltinLayout("visa");
    l.delimiter = bad;
    EXPECT_FALSE(ValidateLayout(l).ok()) << int(bad);
  }
  for (char good : {',', ';', '|', '\t', '=', '\'', '1', 'A'}) {
    Layout l = *BuiltinLayout("visa");
    l.delimiter = good;
    EXPECT_TRUE(ValidateLayout(l).ok()) << int(good);
  }
  Layout cr = *BuiltinLayout("visa");
  cr.line_ending = "\r";
  EXPECT_FALSE(ValidateLayout(cr).ok());
  cr.line_ending = "\n";
  EXPECT_TRUE(ValidateLayout(cr).ok());

  EXPECT_FALSE(
      ValidateLayout(OneColumn(Field::kCaseId, ColumnFormat::kDate)).ok());
  EXPECT_FALSE(
      ValidateLayout(OneColumn(Field::kCurrency, ColumnFormat::kAmountMinor))
          .ok());
  EXPECT_TRUE(
      ValidateLayout(OneColumn(Field::kDueDate, ColumnFormat::kDate)).ok());
  EXPECT_TRUE(ValidateLayout(OneColumn(Field::kTransactionAmount,
                                       ColumnFormat::kAmountDecimal))
                  .ok());

  Layout no_pattern = OneColumn(Field::kChargebackDate, ColumnFormat::kDate);
  no_pattern.columns[0].date_pattern = "";
  EXPECT_FALSE(ValidateLayout(no_pattern).ok());

  Layout constant = OneColumn(Field::kCaseId, ColumnFormat::kAmountDecimal);
  constant.columns[0].field.reset();
  EXPECT_FALSE(ValidateLayout(constant).ok());
  constant.columns[0].format = ColumnFormat::kUpper;
  EXPECT_TRUE(ValidateLayout(constant).ok());

  Layout short_trailer = OneColumn(Field::kCaseId, ColumnFormat::kText);
  short_trailer.trailer = TrailerKind::kCountAndTotal;
  Status status = ValidateLayout(short_trailer);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("custom"), std::string::npos);
}

TEST(FindLayoutTest, ConfigLayoutsFirstThenBuiltins) {
  OutputOptions config = testing::FourNetworkOptions();
  Layout mine = OneColumn(Field::kCaseId, ColumnFormat::kText);
  mine.name = "";
  config.layouts["mine"] = mine;
  auto found = FindLayout(config, "mine");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->name, "mine");
  EXPECT_EQ(found->columns.size(), 1u);
  EXPECT_EQ(FindLayout(config, "amex")->name, "amex");
  EXPECT_EQ(FindLayout(config, "nope").status().code(), StatusCode::kNotFound);

  OutputRoute d = testing::MakeDestination("x", {Network::kDiscover});
  EXPECT_EQ(LayoutForDestination(config, d)->name, "discover");
  d.layout = "mine";
  EXPECT_EQ(LayoutForDestination(config, d)->name, "mine");
  d.layout = "nope";
  EXPECT_EQ(LayoutForDestination(config, d).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace cbpipe
