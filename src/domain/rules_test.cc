#include "domain/rules.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace cbpipe {
namespace {

// Appends the Luhn check digit to `payload`, computed independently of
// LuhnValid so the two check each other.
std::string WithLuhnCheckDigit(const std::string& payload) {
  int sum = 0;
  bool twice = true;  // the digit left of the check digit is doubled
  for (auto it = payload.rbegin(); it != payload.rend(); ++it) {
    int d = *it - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return payload + static_cast<char>('0' + (10 - sum % 10) % 10);
}

// --- Luhn / ARN --------------------------------------------------------------

TEST(LuhnTest, KnownNumbers) {
  EXPECT_TRUE(LuhnValid("4111111111111111"));
  EXPECT_TRUE(LuhnValid("79927398713"));
  EXPECT_FALSE(LuhnValid("79927398710"));
  EXPECT_TRUE(LuhnValid("0"));
  EXPECT_FALSE(LuhnValid(""));
  EXPECT_FALSE(LuhnValid("4111-1111"));
  EXPECT_FALSE(LuhnValid("7992739871a"));
}

TEST(LuhnTest, HelperAgreesWithLuhnValid) {
  for (const std::string payload :
       {"0", "12345", "7456789012345678901234", "0000000000000000000001"}) {
    EXPECT_TRUE(LuhnValid(WithLuhnCheckDigit(payload))) << payload;
  }
}

TEST(ArnTest, ValidArns) {
  const std::string arn = WithLuhnCheckDigit("7456789012345678901234");
  ASSERT_EQ(arn.size(), 23u);
  EXPECT_EQ(CheckArn23(arn), ArnProblem::kNone);
  EXPECT_TRUE(IsValidArn(arn));
  EXPECT_TRUE(IsValidArn(WithLuhnCheckDigit("2444500500100000000000")));
}

TEST(ArnTest, LeadingZerosAreReal) {
  const std::string arn = WithLuhnCheckDigit("0012345678901234567890");
  ASSERT_EQ(arn.size(), 23u);
  EXPECT_TRUE(IsValidArn(arn));
  // Dropping the zeros (as a spreadsheet would) breaks the format.
  EXPECT_EQ(CheckArn23(arn.substr(2)), ArnProblem::kFormat);
  EXPECT_TRUE(IsValidArn(WithLuhnCheckDigit(std::string(22, '0'))));
}

TEST(ArnTest, EveryWrongCheckDigitIsRejected) {
  const std::string arn = WithLuhnCheckDigit("7456789012345678901234");
  int rejected = 0;
  for (char c = '0'; c <= '9'; ++c) {
    if (c == arn.back()) continue;
    std::string wrong = arn;
    wrong.back() = c;
    EXPECT_EQ(CheckArn23(wrong), ArnProblem::kCheckDigit) << wrong;
    ++rejected;
  }
  EXPECT_EQ(rejected, 9);
}

TEST(ArnTest, SingleDigitTyposAreCaught) {
  const std::string arn = WithLuhnCheckDigit("7456789012345678901234");
  std::string typo = arn;
  typo[10] = typo[10] == '9' ? '0' : static_cast<char>(typo[10] + 1);
  EXPECT_EQ(CheckArn23(typo), ArnProblem::kCheckDigit);
}

TEST(ArnTest, FormatProblems) {
  const std::string arn = WithLuhnCheckDigit("7456789012345678901234");
  EXPECT_EQ(CheckArn23(""), ArnProblem::kFormat);
  EXPECT_EQ(CheckArn23(arn.substr(1)), ArnProblem::kFormat);  // 22 digits
  EXPECT_EQ(CheckArn23(WithLuhnCheckDigit(arn.substr(0, 22) + "5")),
            ArnProblem::kFormat);  // 24 digits, Luhn-valid
  std::string letter = arn;
  letter[5] = 'A';
  EXPECT_EQ(CheckArn23(letter), ArnProblem::kFormat);
  EXPECT_EQ(CheckArn23(" " + arn.substr(1)), ArnProblem::kFormat);
  EXPECT_EQ(CheckArn23(arn.substr(0, 22) + " "), ArnProblem::kFormat);
  EXPECT_EQ(CheckArn23("74567-890123456789012345"), ArnProblem::kFormat);
  EXPECT_FALSE(IsValidArn(letter));
}

TEST(OptionalReferenceTest, EightToThirtyDigits) {
  EXPECT_FALSE(IsValidOptionalReference(""));
  EXPECT_FALSE(IsValidOptionalReference("1234567"));
  EXPECT_TRUE(IsValidOptionalReference("12345678"));
  EXPECT_TRUE(IsValidOptionalReference("00000001"));
  EXPECT_TRUE(IsValidOptionalReference(std::string(30, '9')));
  EXPECT_FALSE(IsValidOptionalReference(std::string(31, '9')));
  EXPECT_FALSE(IsValidOptionalReference("1234567A"));
  EXPECT_FALSE(IsValidOptionalReference("1234 5678"));
}

// --- PAN ---------------------------------------------------------------------

TEST(ClassifyPanTest, FullPans) {
  EXPECT_EQ(ClassifyPan("4111111111111111"), PanKind::kFull);
  EXPECT_EQ(ClassifyPan("378282246310005"), PanKind::kFull);  // 15, Amex
  EXPECT_EQ(ClassifyPan(WithLuhnCheckDigit("41111111111")), PanKind::kFull);
  EXPECT_EQ(ClassifyPan(WithLuhnCheckDigit("411111111111111111")),
            PanKind::kFull);  // 19
}

TEST(ClassifyPanTest, LengthBoundsOfFullPans) {
  // Luhn-valid but too short or too long to be a card number.
  EXPECT_EQ(ClassifyPan(WithLuhnCheckDigit("4111111111")), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan(WithLuhnCheckDigit("4111111111111111111")),
            PanKind::kInvalid);
}

TEST(ClassifyPanTest, NonLuhnDigitsAreInvalid) {
  EXPECT_EQ(ClassifyPan("4111111111111112"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("1234567890123456"), PanKind::kInvalid);
}

TEST(ClassifyPanTest, FullPanWithSeparatorsIsStillFull) {
  // Must never be passed on as "invalid" text that an error message echoes.
  EXPECT_EQ(ClassifyPan("4111 1111 1111 1111"), PanKind::kFull);
  EXPECT_EQ(ClassifyPan("4111-1111-1111-1111"), PanKind::kFull);
  EXPECT_EQ(ClassifyPan("3782 822463 10005"), PanKind::kFull);
  EXPECT_EQ(ClassifyPan(" 4111111111111111 "), PanKind::kFull);
  EXPECT_EQ(ClassifyPan("4111  1111\t1111 1111"), PanKind::kFull);
  EXPECT_EQ(ClassifyPan("4111 1111 1111 1112"), PanKind::kInvalid);
}

TEST(ClassifyPanTest, AcceptedMaskedForms) {
  EXPECT_EQ(ClassifyPan("411111******1111"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("4111********1111"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("411111XXXXXX1111"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("411111xxxxxx1111"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("411111******"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("XXXXXXXXXXXX1234"), PanKind::kMasked);
  // Last-4 forms may be shorter than a PAN: they reveal nothing else.
  EXPECT_EQ(ClassifyPan("****1234"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("xxxx1234"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("XXXX1234"), PanKind::kMasked);
  EXPECT_EQ(ClassifyPan("411111*********1111"), PanKind::kMasked);  // 19
  EXPECT_EQ(ClassifyPan("411111**1111"), PanKind::kMasked);         // 12
}

TEST(ClassifyPanTest, RejectedMaskedForms) {
  // More than the first 6 or last 4 digits visible.
  EXPECT_EQ(ClassifyPan("4111111111**1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("4111111*****1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("411111*****11111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("***12345"), PanKind::kInvalid);
  // Length of a masked full PAN outside 12-19.
  EXPECT_EQ(ClassifyPan("411111*1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("411111**********1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("*****************1234"), PanKind::kInvalid);
  // Too short a mask for a last-4 form.
  EXPECT_EQ(ClassifyPan("***1234"), PanKind::kInvalid);
  // Two mask runs, mixed mask characters, other characters.
  EXPECT_EQ(ClassifyPan("411111***1***1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("411111***XXX1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("411111######1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("4111 11** **** 1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("411111******1111 "), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("1111"), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan(""), PanKind::kInvalid);
  EXPECT_EQ(ClassifyPan("not a pan"), PanKind::kInvalid);
}

TEST(MaskPanTest, KeepsFirstSixAndLastFour) {
  EXPECT_EQ(MaskPan("4111111111111111"), "411111******1111");
  EXPECT_EQ(MaskPan("378282246310005"), "378282*****0005");
  const std::string nineteen = WithLuhnCheckDigit("622126123456789012");
  ASSERT_EQ(nineteen.size(), 19u);
  EXPECT_EQ(MaskPan(nineteen), "622126*********" + nineteen.substr(15));
  const std::string twelve = WithLuhnCheckDigit("41111111111");
  ASSERT_EQ(twelve.size(), 12u);
  EXPECT_EQ(MaskPan(twelve), "411111**" + twelve.substr(8));
}

TEST(MaskPanTest, MaskedResultIsAcceptedAsMasked) {
  for (const std::string& pan :
       {std::string("4111111111111111"), WithLuhnCheckDigit("41111111111"),
        WithLuhnCheckDigit("622126123456789012")}) {
    ASSERT_EQ(ClassifyPan(pan), PanKind::kFull);
    EXPECT_EQ(ClassifyPan(MaskPan(pan)), PanKind::kMasked) << pan;
  }
}

TEST(MaskPanTest, DropsSeparators) {
  EXPECT_EQ(MaskPan("4111 1111 1111 1111"), "411111******1111");
  EXPECT_EQ(MaskPan("4111-1111-1111-1111"), "411111******1111");
}

// --- Currencies --------------------------------------------------------------

TEST(FindCurrencyTest, Exponents) {
  ASSERT_NE(FindCurrency("USD"), nullptr);
  EXPECT_EQ(FindCurrency("USD")->minor_units, 2);
  EXPECT_EQ(FindCurrency("USD")->numeric, 840);
  EXPECT_EQ(FindCurrency("USD")->code, "USD");
  ASSERT_NE(FindCurrency("KWD"), nullptr);
  EXPECT_EQ(FindCurrency("KWD")->minor_units, 3);
  ASSERT_NE(FindCurrency("JPY"), nullptr);
  EXPECT_EQ(FindCurrency("JPY")->minor_units, 0);
  ASSERT_NE(FindCurrency("CLF"), nullptr);
  EXPECT_EQ(FindCurrency("CLF")->minor_units, 4);
  ASSERT_NE(FindCurrency("EUR"), nullptr);
  EXPECT_EQ(FindCurrency("EUR")->minor_units, 2);
  // First and last rows of the table, and a leading-zero numeric code.
  ASSERT_NE(FindCurrency("AED"), nullptr);
  ASSERT_NE(FindCurrency("ZWL"), nullptr);
  ASSERT_NE(FindCurrency("ALL"), nullptr);
  EXPECT_EQ(FindCurrency("ALL")->numeric, 8);
}

TEST(FindCurrencyTest, EveryDocumentedExponent) {
  for (std::string_view code :
       {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}) {
    ASSERT_NE(FindCurrency(code), nullptr) << code;
    EXPECT_EQ(FindCurrency(code)->minor_units, 3) << code;
  }
  for (std::string_view code :
       {"JPY", "KRW", "VND", "CLP", "ISK", "PYG", "UGX", "BIF", "DJF", "GNF",
        "KMF", "RWF", "VUV", "XAF", "XOF", "XPF", "UYI"}) {
    ASSERT_NE(FindCurrency(code), nullptr) << code;
    EXPECT_EQ(FindCurrency(code)->minor_units, 0) << code;
  }
  for (std::string_view code : {"CLF", "UYW"}) {
    ASSERT_NE(FindCurrency(code), nullptr) << code;
    EXPECT_EQ(FindCurrency(code)->minor_units, 4) << code;
  }
}

TEST(FindCurrencyTest, UnknownCodes) {
  // Upper case only: the validator decides whether to upper-case input;
  // here "usd" is simply not a code.
  EXPECT_EQ(FindCurrency("usd"), nullptr);
  EXPECT_EQ(FindCurrency("Usd"), nullptr);
  EXPECT_EQ(FindCurrency("XXX"), nullptr);  // ISO "no currency": left out
  EXPECT_EQ(FindCurrency("XAU"), nullptr);  // precious metal: left out
  EXPECT_EQ(FindCurrency("ZZZ"), nullptr);
  EXPECT_EQ(FindCurrency(""), nullptr);
  EXPECT_EQ(FindCurrency("US"), nullptr);
  EXPECT_EQ(FindCurrency("USDD"), nullptr);
  EXPECT_EQ(FindCurrency(" USD"), nullptr);
  EXPECT_EQ(FindCurrency("840"), nullptr);
  EXPECT_EQ(FindCurrency("[[["), nullptr);
}

// --- Money -------------------------------------------------------------------

ParsedAmount Ok(int64_t minor) { return {AmountProblem::kNone, minor}; }

void ExpectAmount(std::string_view text, int exponent, ParsedAmount want) {
  const ParsedAmount got = ParseAmount(text, exponent);
  EXPECT_EQ(got.problem, want.problem)
      << '"' << text << "\" exponent " << exponent;
  EXPECT_EQ(got.minor, want.minor) << '"' << text << "\" exponent " << exponent;
}

void ExpectProblem(std::string_view text, int exponent, AmountProblem want) {
  EXPECT_EQ(ParseAmount(text, exponent).problem, want)
      << '"' << text << "\" exponent " << exponent;
}

TEST(ParseAmountTest, ExactDecimalToMinorUnits) {
  ExpectAmount("12.5", 2, Ok(1250));
  ExpectAmount("12.50", 2, Ok(1250));
  ExpectAmount("12", 2, Ok(1200));
  ExpectAmount("0.01", 2, Ok(1));
  ExpectAmount("+12.34", 2, Ok(1234));
  ExpectAmount("100", 0, Ok(100));       // JPY
  ExpectAmount("12.345", 3, Ok(12345));  // KWD
  ExpectAmount("0.001", 3, Ok(1));       // KWD
  ExpectAmount("1.2345", 4, Ok(12345));  // CLF
  ExpectAmount("007.50", 2, Ok(750));    // leading zeros are harmless
  ExpectAmount("0.10", 2, Ok(10));
  // Values a binary float would get wrong.
  ExpectAmount("0.29", 2, Ok(29));
  ExpectAmount("1.005", 3, Ok(1005));
  ExpectAmount("123456789012.345", 3, Ok(123456789012345));
}

TEST(ParseAmountTest, TooManyDecimalsIsPrecision) {
  // Trailing zeros count: "1.500" USD is rejected, not rounded.
  ExpectProblem("1.500", 2, AmountProblem::kPrecision);
  ExpectProblem("1.005", 2, AmountProblem::kPrecision);
  ExpectProblem("100.0", 0, AmountProblem::kPrecision);    // JPY
  ExpectProblem("1.0000", 3, AmountProblem::kPrecision);   // KWD
  ExpectProblem("1.00000", 4, AmountProblem::kPrecision);  // CLF
  ExpectProblem("0.000", 2, AmountProblem::kPrecision);
}

TEST(ParseAmountTest, ZeroAndNegativeAreNotPositive) {
  ExpectProblem("0", 2, AmountProblem::kNotPositive);
  ExpectProblem("0.00", 2, AmountProblem::kNotPositive);
  ExpectProblem("+0", 2, AmountProblem::kNotPositive);
  ExpectProblem("000", 0, AmountProblem::kNotPositive);
  ExpectProblem("-0", 2, AmountProblem::kNotPositive);
  ExpectProblem("-1.00", 2, AmountProblem::kNotPositive);
  ExpectProblem("-12", 0, AmountProblem::kNotPositive);
  // A minus sign wins over the other value problems.
  ExpectProblem("-1.500", 2, AmountProblem::kNotPositive);
  ExpectProblem("-" + std::string(40, '9'), 2, AmountProblem::kNotPositive);
}

TEST(ParseAmountTest, MalformedTextIsInvalid) {
  for (std::string_view text :
       {"",         "+",        "-",     "++1",   "+-1",   "--1",  "1e5",
        "1E5",      "1.5e2",    "NaN",   "nan",   "Inf",   "inf",  "-inf",
        "Infinity", "1,000.00", "1,5",   "1 000", ".5",    "5.",   ".",
        "1.2.3",    "1..2",     " 1.00", "1.00 ", "\t1",   "1\n",  "1 .00",
        "$1.00",    "1.00USD",  "0x10",  "１",    "1_000", "1'000"}) {
    ExpectProblem(text, 2, AmountProblem::kInvalid);
  }
  ExpectProblem(std::string_view("1\0", 2), 2, AmountProblem::kInvalid);
}

TEST(ParseAmountTest, UpperLimitIsTenToTheFifteenthMinorUnits) {
  ExpectAmount("1000000000000000", 0, Ok(1'000'000'000'000'000));
  ExpectAmount("10000000000000.00", 2, Ok(1'000'000'000'000'000));
  ExpectAmount("999999999999999", 0, Ok(999'999'999'999'999));
  ExpectProblem("1000000000000001", 0, AmountProblem::kTooLarge);
  ExpectProblem("10000000000000.01", 2, AmountProblem::kTooLarge);
  // Too large only once scaled to minor units.
  ExpectProblem("10000000000001", 2, AmountProblem::kTooLarge);
  ExpectProblem(std::string(40, '9'), 2, AmountProblem::kTooLarge);
  ExpectProblem("1" + std::string(39, '0') + ".00", 2,
                AmountProblem::kTooLarge);
  ExpectProblem("18446744073709551617", 0, AmountProblem::kTooLarge);
  // Leading zeros do not count toward the size.
  ExpectAmount(std::string(40, '0') + "1", 2, Ok(100));
}

TEST(ParseAmountTest, OutOfRangeExponentIsInvalid) {
  ExpectProblem("1", -1, AmountProblem::kInvalid);
  ExpectProblem("1", 19, AmountProblem::kInvalid);
  ExpectProblem("1", 18, AmountProblem::kTooLarge);
}

TEST(FormatAmountTest, InverseOfParse) {
  EXPECT_EQ(FormatAmount(1250, 2), "12.50");
  EXPECT_EQ(FormatAmount(1, 2), "0.01");
  EXPECT_EQ(FormatAmount(0, 2), "0.00");
  EXPECT_EQ(FormatAmount(100, 0), "100");
  EXPECT_EQ(FormatAmount(0, 0), "0");
  EXPECT_EQ(FormatAmount(12345, 3), "12.345");
  EXPECT_EQ(FormatAmount(-5, 3), "-0.005");
  EXPECT_EQ(FormatAmount(-1250, 2), "-12.50");
  EXPECT_EQ(FormatAmount(-7, 0), "-7");
  EXPECT_EQ(FormatAmount(12345, 4), "1.2345");
  EXPECT_EQ(FormatAmount(5, 4), "0.0005");
  EXPECT_EQ(FormatAmount(1'000'000'000'000'000, 2), "10000000000000.00");
  EXPECT_EQ(FormatAmount(std::numeric_limits<int64_t>::min(), 0),
            "-9223372036854775808");
  EXPECT_EQ(FormatAmount(std::numeric_limits<int64_t>::max(), 2),
            "92233720368547758.07");
  for (int exponent : {0, 2, 3, 4}) {
    for (int64_t minor : {1LL, 9LL, 10LL, 1234567LL, 1'000'000'000'000'000LL}) {
      const ParsedAmount back =
          ParseAmount(FormatAmount(minor, exponent), exponent);
      EXPECT_EQ(back.problem, AmountProblem::kNone) << minor << " " << exponent;
      EXPECT_EQ(back.minor, minor) << exponent;
    }
  }
}

// --- Reason codes ------------------------------------------------------------

TEST(FindReasonCodeTest, VisaCurrentAndLegacy) {
  const ReasonCodeInfo* info = FindReasonCode(Network::kVisa, "10.4");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->code, "10.4");
  EXPECT_EQ(info->category, "fraud");
  EXPECT_EQ(info->description, "Other Fraud - Card-Absent Environment");
  EXPECT_FALSE(info->legacy);
  ASSERT_NE(FindReasonCode(Network::kVisa, "12.6.1"), nullptr);
  const ReasonCodeInfo* legacy = FindReasonCode(Network::kVisa, "83");
  ASSERT_NE(legacy, nullptr);
  EXPECT_TRUE(legacy->legacy);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "10.6"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "10.40"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "104"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "10.4 "),
            FindReasonCode(Network::kVisa, "10.4"));
  EXPECT_EQ(FindReasonCode(Network::kVisa, std::string_view("10.4\0", 5)),
            nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "10.4.1.2.3.4.5.6"), nullptr);
}

TEST(FindReasonCodeTest, CodesBelongToTheirNetwork) {
  EXPECT_EQ(FindReasonCode(Network::kMastercard, "10.4"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kAmex, "10.4"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "4853"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kDiscover, "C08"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kAmex, "UA01"), nullptr);
}

TEST(FindReasonCodeTest, Mastercard) {
  const ReasonCodeInfo* info = FindReasonCode(Network::kMastercard, "4853");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->category, "consumer_dispute");
  EXPECT_FALSE(info->legacy);
  const ReasonCodeInfo* legacy = FindReasonCode(Network::kMastercard, "4855");
  ASSERT_NE(legacy, nullptr);
  EXPECT_TRUE(legacy->legacy);
  EXPECT_EQ(FindReasonCode(Network::kMastercard, "4800"), nullptr);
}

TEST(FindReasonCodeTest, AmexLetterCodesAreCaseInsensitive) {
  const ReasonCodeInfo* upper = FindReasonCode(Network::kAmex, "C08");
  ASSERT_NE(upper, nullptr);
  EXPECT_EQ(FindReasonCode(Network::kAmex, "c08"), upper);
  EXPECT_EQ(upper->code, "C08");  // as in the table, not as looked up
  ASSERT_NE(FindReasonCode(Network::kAmex, "fr2"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kAmex, "C8"), nullptr);
}

TEST(FindReasonCodeTest, Discover) {
  ASSERT_NE(FindReasonCode(Network::kDiscover, "UA02"), nullptr);
  ASSERT_NE(FindReasonCode(Network::kDiscover, "ua02"), nullptr);
  ASSERT_NE(FindReasonCode(Network::kDiscover, "05"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kDiscover, "5"), nullptr);
  const ReasonCodeInfo* legacy = FindReasonCode(Network::kDiscover, "UA38");
  ASSERT_NE(legacy, nullptr);
  EXPECT_TRUE(legacy->legacy);
  EXPECT_EQ(legacy->description,
            "Card Not Present - Illegible/Incomplete Copy");
}

TEST(FindReasonCodeTest, SurroundingSpacesAreTrimmed) {
  EXPECT_EQ(FindReasonCode(Network::kVisa, " 10.4 "),
            FindReasonCode(Network::kVisa, "10.4"));
  EXPECT_NE(FindReasonCode(Network::kAmex, "  c08"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "10. 4"), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, ""), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, "   "), nullptr);
  EXPECT_EQ(FindReasonCode(Network::kVisa, std::string(100, '1')), nullptr);
}

TEST(FindReasonCodeTest, EveryTableRowIsLoaded) {
  // Pins the table size so a row the loader cannot parse is noticed.
  const std::pair<Network, std::string_view> first_and_last[] = {
      {Network::kVisa, "10.1"},       {Network::kVisa, "93"},
      {Network::kMastercard, "4808"}, {Network::kMastercard, "4860"},
      {Network::kAmex, "A01"},        {Network::kAmex, "M01"},
      {Network::kDiscover, "UA01"},   {Network::kDiscover, "UA38"},
  };
  for (const auto& [network, code] : first_and_last) {
    EXPECT_NE(FindReasonCode(network, code), nullptr)
        << NetworkName(network) << " " << code;
  }
  int visa = 0, amex_fraud = 0;
  for (int major = 10; major <= 13; ++major) {
    for (int minor = 1; minor <= 9; ++minor) {
      const std::string code =
          std::to_string(major) + "." + std::to_string(minor);
      if (FindReasonCode(Network::kVisa, code) != nullptr) ++visa;
    }
  }
  EXPECT_EQ(visa, 5 + 3 + 7 + 9);
  for (std::string_view code :
       {"F10", "F14", "F22", "F24", "F29", "F30", "F31", "FR2", "FR4", "FR6"}) {
    const ReasonCodeInfo* info = FindReasonCode(Network::kAmex, code);
    if (info != nullptr && info->category == "fraud") ++amex_fraud;
  }
  EXPECT_EQ(amex_fraud, 10);
}

}  // namespace
}  // namespace cbpipe
