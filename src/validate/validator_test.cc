#include "validate/validator.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "domain/dates.h"
#include "domain/pan.h"
#include "domain/rules.h"

namespace cbpipe {
namespace {

// 2025-06-01T12:00:00Z
constexpr int64_t kNow = 1748779200;

// A Luhn-valid 23-digit ARN.
std::string ArnWithCheckDigit(std::string digits22) {
  for (char d = '0'; d <= '9'; ++d) {
    std::string arn = digits22 + d;
    if (IsValidArn(arn)) return arn;
  }
  return "";
}

class ValidatorTest : public ::testing::Test {
 protected:
  ValidatorTest() : validator_(Options()) {}

  static ValidatorOptions Options() {
    ValidatorOptions o;
    o.now_epoch_seconds = kNow;
    o.extra_date_formats = {"%d/%m/%Y"};
    return o;
  }

  RawRecord Valid() {
    RawRecord r;
    r.position = 2;
    Set(r, Field::kCaseId, "CB" + std::to_string(next_id_++));
    Set(r, Field::kNetwork, "VISA");
    Set(r, Field::kArn, ArnWithCheckDigit("7456789012345678901234"));
    Set(r, Field::kPan, "411111******1111");
    Set(r, Field::kMerchantId, "M-001");
    Set(r, Field::kTransactionDate, "2025-03-01");
    Set(r, Field::kChargebackDate, "2025-04-01T10:00:00Z");
    Set(r, Field::kAmount, "12.50");
    Set(r, Field::kCurrency, "USD");
    Set(r, Field::kReasonCode, "10.4");
    return r;
  }

  static void Set(RawRecord& r, Field f, std::string value) {
    r.values[static_cast<int>(f)] = std::move(value);
    r.present[static_cast<int>(f)] = true;
  }

  // Validates and returns the error codes found.
  std::vector<std::string> Check(const RawRecord& raw) {
    errors_.clear();
    validator_.Validate(raw, &rec_, &errors_);
    std::vector<std::string> codes;
    for (const RecordError& e : errors_)
      codes.push_back(std::string(ErrorCodeName(e.code)));
    return codes;
  }

  Validator validator_;
  Record rec_;
  std::vector<RecordError> errors_;
  int next_id_ = 1;
};

using Codes = std::vector<std::string>;

TEST_F(ValidatorTest, AcceptsAValidRecord) {
  RawRecord raw = Valid();
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.network, Network::kVisa);
  EXPECT_EQ(rec_.amount_minor, 1250);
  EXPECT_EQ(rec_.currency, "USD");
  EXPECT_EQ(rec_.currency_exponent, 2);
  EXPECT_EQ(rec_.reason_code, "10.4");
  EXPECT_EQ(rec_.stage, Stage::kFirstChargeback);
  EXPECT_EQ(rec_.position, 2u);
}

TEST_F(ValidatorTest, MissingRequiredFields) {
  for (Field f : {Field::kCaseId, Field::kMerchantId, Field::kAmount,
                  Field::kCurrency, Field::kReasonCode, Field::kTransactionDate,
                  Field::kChargebackDate, Field::kArn}) {
    RawRecord raw = Valid();
    Set(raw, f, "  ");
    EXPECT_EQ(Check(raw), Codes{"MISSING_FIELD"}) << FieldName(f);
    EXPECT_EQ(errors_[0].field, FieldName(f));
  }
}

TEST_F(ValidatorTest, NetworkDerivedFromPanWhenAbsent) {
  RawRecord raw = Valid();
  Set(raw, Field::kNetwork, "");
  Set(raw, Field::kPan, "371449******8431");
  Set(raw, Field::kArn, "");
  Set(raw, Field::kReasonCode, "C08");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.network, Network::kAmex);
}

TEST_F(ValidatorTest, NetworkUnknownAndMissing) {
  RawRecord raw = Valid();
  Set(raw, Field::kNetwork, "JCB");
  EXPECT_EQ(Check(raw), Codes{"NETWORK_UNKNOWN"});
  raw = Valid();
  Set(raw, Field::kNetwork, "");
  Set(raw, Field::kPan, "");
  EXPECT_EQ(Check(raw), Codes{"MISSING_FIELD"});
  EXPECT_EQ(errors_[0].field, "network");
}

TEST_F(ValidatorTest, NetworkThatDisagreesWithThePanIsRejected) {
  RawRecord raw = Valid();
  Set(raw, Field::kNetwork, "MC");
  Set(raw, Field::kReasonCode, "4853");
  EXPECT_EQ(Check(raw), Codes{"NETWORK_MISMATCH"});
}

TEST_F(ValidatorTest, ArnRules) {
  RawRecord raw = Valid();
  std::string arn = ArnWithCheckDigit("0000000000000000000001");
  Set(raw, Field::kArn, arn);
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.arn, arn);  // leading zeros kept
  arn.back() = arn.back() == '9' ? '0' : static_cast<char>(arn.back() + 1);
  raw = Valid();
  Set(raw, Field::kArn, arn);
  EXPECT_EQ(Check(raw), Codes{"ARN_CHECK_DIGIT"});
  raw = Valid();
  Set(raw, Field::kArn, "1234");
  EXPECT_EQ(Check(raw), Codes{"ARN_FORMAT"});
  // Optional for Amex, but 8-30 digits when present.
  raw = Valid();
  Set(raw, Field::kNetwork, "AX");
  Set(raw, Field::kPan, "");
  Set(raw, Field::kReasonCode, "C08");
  Set(raw, Field::kArn, "12AB");
  EXPECT_EQ(Check(raw), Codes{"ARN_FORMAT"});
}

TEST_F(ValidatorTest, ReasonCodeMustBelongToTheNetwork) {
  RawRecord raw = Valid();
  Set(raw, Field::kReasonCode, "4853");  // a Mastercard code
  EXPECT_EQ(Check(raw), Codes{"UNKNOWN_REASON_CODE"});
}

TEST_F(ValidatorTest, CurrencyAndAmount) {
  RawRecord raw = Valid();
  Set(raw, Field::kCurrency, "XYZ");
  EXPECT_EQ(Check(raw), Codes{"CURRENCY_UNKNOWN"});
  raw = Valid();
  Set(raw, Field::kCurrency, "jpy");
  Set(raw, Field::kAmount, "1500");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.currency, "JPY");
  EXPECT_EQ(rec_.amount_minor, 1500);
  raw = Valid();
  Set(raw, Field::kCurrency, "JPY");
  Set(raw, Field::kAmount, "15.5");
  EXPECT_EQ(Check(raw), Codes{"AMOUNT_PRECISION"});
  raw = Valid();
  Set(raw, Field::kCurrency, "KWD");
  Set(raw, Field::kAmount, "1.234");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.amount_minor, 1234);
  for (const char* bad : {"1e5", "NaN", "1,000.00", "-5.00", "0", "abc"}) {
    raw = Valid();
    Set(raw, Field::kAmount, bad);
    EXPECT_EQ(Check(raw), Codes{"AMOUNT_INVALID"}) << bad;
  }
}

TEST_F(ValidatorTest, DateRules) {
  RawRecord raw = Valid();
  Set(raw, Field::kTransactionDate, "2025-02-30");
  EXPECT_EQ(Check(raw), Codes{"DATE_INVALID"});
  raw = Valid();
  Set(raw, Field::kChargebackDate, "2025-02-01");
  EXPECT_EQ(Check(raw), Codes{"DATE_ORDER"});
  raw = Valid();
  Set(raw, Field::kChargebackDate, "2025-06-01T12:00:01Z");
  EXPECT_EQ(Check(raw), Codes{"DATE_FUTURE"});
  raw = Valid();
  Set(raw, Field::kChargebackDate, "2025-06-03");
  EXPECT_EQ(Check(raw), Codes{"DATE_FUTURE"});
  raw = Valid();
  Set(raw, Field::kChargebackDate, "01/05/2025");  // extra format
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.chargeback_date.month, 5);
}

TEST_F(ValidatorTest, ControlAndBidiCharactersInTextFieldsAreRefused) {
  const Field text_fields[] = {Field::kCaseId,        Field::kMerchantId,
                               Field::kTransactionId, Field::kMerchantName,
                               Field::kReasonText,    Field::kStatus};
  const std::string bad_values[] = {"Shop\x1b]0;pwned\x07",
                                    "Shop\x1b[2J",
                                    "two\nlines",
                                    "a\tb",
                                    "cr\rhere",
                                    std::string("n\0l", 3),
                                    "del\x7f",
                                    "c1\xC2\x9B",
                                    "evil\xE2\x80\xAEtxt.exe",
                                    "iso\xE2\x81\xA6x\xE2\x81\xA9",
                                    "lrm\xE2\x80\x8E",
                                    "ls\xE2\x80\xA8"};
  for (Field f : text_fields) {
    for (const std::string& v : bad_values) {
      RawRecord raw = Valid();
      Set(raw, f, v);
      EXPECT_EQ(Check(raw), Codes{"CONTROL_CHARACTER"}) << FieldName(f);
      ASSERT_EQ(errors_.size(), 1u);
      EXPECT_EQ(errors_[0].field, FieldName(f));
      EXPECT_NE(errors_[0].message.find("U+"), std::string::npos);
      // The value itself is not repeated in the message.
      EXPECT_EQ(errors_[0].message.find(v), std::string::npos);
    }
  }
  RawRecord raw = Valid();
  Set(raw, Field::kMerchantName,
      "\xE2\x80\xAE"
      "evil");
  Check(raw);
  ASSERT_EQ(errors_.size(), 1u);
  EXPECT_EQ(errors_[0].message,
            "merchant_name holds U+202E at byte 0, a control or "
            "bidirectional character");

  // Surrounding spaces, tabs and line ends are trimmed as before; other
  // scripts, accents and symbols pass.
  raw = Valid();
  Set(raw, Field::kMerchantName,
      "\tCaf\xC3\xA9 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D "
      "\xE2\x82\xAC & Co.\r\n");
  Set(raw, Field::kReasonText,
      "goods not received \xE2\x80\x94 \xF0\x9F\x93\xA6");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.merchant_name,
            "Caf\xC3\xA9 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xE2\x82\xAC & Co.");
}

TEST_F(ValidatorTest, DuplicateCaseIdsAfterTheFirst) {
  RawRecord raw = Valid();
  Set(raw, Field::kCaseId, "DUP-1");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(Check(raw), Codes{"DUPLICATE_CASE"});
  EXPECT_EQ(Check(raw), Codes{"DUPLICATE_CASE"});
}

TEST_F(ValidatorTest, DuplicateIsReportedRightAfterTheCaseIdsOtherErrors) {
  // The duplicate check finishes last, but its error keeps its place: after
  // what is wrong with the record as a whole, before the other fields.
  RawRecord raw = Valid();
  Set(raw, Field::kCaseId, "DUP-2");
  EXPECT_EQ(Check(raw), Codes{});
  raw.malformed = "3 cells, header has 4";
  Set(raw, Field::kNetwork, "");
  Set(raw, Field::kPan, "");
  Set(raw, Field::kCurrency, "ZZZ");
  // Earlier errors of another record stay where they are.
  std::vector<RecordError> errors(2);
  EXPECT_FALSE(validator_.Validate(raw, &rec_, &errors));
  Codes codes;
  for (size_t i = 2; i < errors.size(); ++i) {
    codes.push_back(std::string(ErrorCodeName(errors[i].code)));
  }
  EXPECT_EQ(codes, (Codes{"BAD_FORMAT", "DUPLICATE_CASE", "MISSING_FIELD",
                          "CURRENCY_UNKNOWN"}));
  EXPECT_EQ(errors[0].code, ErrorCode::kBadFormat);
  EXPECT_TRUE(errors[0].message.empty());
}

TEST_F(ValidatorTest, DeferredDuplicateCheckReportsLikeValidate) {
  // Validate, and ValidateAllButDuplicate + CheckDuplicate on another
  // validator (as the scan does on two threads), give the same errors in
  // the same order for the same sequence of records.
  Validator deferred(Options());
  DuplicateSet seen;
  std::vector<RawRecord> inputs;
  RawRecord raw = Valid();
  Set(raw, Field::kCaseId, " DUP-3 ");
  inputs.push_back(raw);
  inputs.push_back(raw);  // duplicate of a valid record
  raw.malformed = "3 cells, header has 4";
  Set(raw, Field::kCurrency, "ZZZ");
  inputs.push_back(raw);  // duplicate with errors before and after it
  Set(raw, Field::kCaseId, "");
  inputs.push_back(raw);  // no case id: no duplicate check
  inputs.push_back(raw);
  inputs.push_back(Valid());
  for (const RawRecord& input : inputs) {
    std::vector<RecordError> expected;
    const bool expected_ok = validator_.Validate(input, &rec_, &expected);
    Record rec;
    std::vector<RecordError> errors;
    DuplicateCheck check;
    bool ok = deferred.ValidateAllButDuplicate(input, &rec, &errors, &check);
    ok = CheckDuplicate(check, rec, &seen, &errors) && ok;
    EXPECT_EQ(ok, expected_ok);
    ASSERT_EQ(errors.size(), expected.size());
    for (size_t i = 0; i < errors.size(); ++i) {
      EXPECT_EQ(errors[i].code, expected[i].code) << i;
      EXPECT_EQ(errors[i].field, expected[i].field) << i;
      EXPECT_EQ(errors[i].case_id, expected[i].case_id) << i;
      EXPECT_EQ(errors[i].position, expected[i].position) << i;
      EXPECT_EQ(errors[i].message, expected[i].message) << i;
    }
  }
  EXPECT_EQ(seen.size(), 2u);  // "DUP-3" and the last record's id
  EXPECT_EQ(deferred.distinct_case_ids(), 0u);
}

TEST_F(ValidatorTest, FullPanIsMaskedOrRejectedByPolicy) {
  RawRecord raw = Valid();
  Set(raw, Field::kPan, "4111111111111111");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.pan_masked, "411111******1111");

  ValidatorOptions strict = Options();
  strict.pan_policy = PanPolicy::kReject;
  Validator v(strict);
  std::vector<RecordError> errors;
  EXPECT_FALSE(v.Validate(raw, &rec_, &errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(ErrorCodeName(errors[0].code), "PAN_NOT_MASKED");
  EXPECT_EQ(errors[0].message.find("4111111111111111"), std::string::npos);
}

TEST_F(ValidatorTest, SensitiveDataRejectsWithoutEchoingValues) {
  RawRecord raw = Valid();
  raw.sensitive_fields = {"cvv", "track2"};
  EXPECT_EQ(Check(raw), (Codes{"SENSITIVE_DATA", "SENSITIVE_DATA"}));
  EXPECT_EQ(errors_[0].field, "cvv");
  EXPECT_EQ(errors_[1].field, "track2");
}

TEST_F(ValidatorTest, ReaderLevelProblemIsBadFormat) {
  RawRecord raw = Valid();
  raw.malformed = "expected 10 cells, got 9";
  EXPECT_EQ(Check(raw), Codes{"BAD_FORMAT"});
  EXPECT_EQ(errors_[0].field, "record");
}

TEST_F(ValidatorTest, OptionalFieldsChecked) {
  RawRecord raw = Valid();
  Set(raw, Field::kMcc, "12a4");
  EXPECT_EQ(Check(raw), Codes{"BAD_FORMAT"});
  raw = Valid();
  Set(raw, Field::kStage, "bogus");
  EXPECT_EQ(Check(raw), Codes{"BAD_FORMAT"});
  raw = Valid();
  Set(raw, Field::kStage, "Pre-Arbitration");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.stage, Stage::kPreArbitration);
  raw = Valid();
  Set(raw, Field::kDueDate, "2025-13-01");
  EXPECT_EQ(Check(raw), Codes{"DATE_INVALID"});
}

TEST_F(ValidatorTest, AllProblemsOfARecordAreReported) {
  RawRecord raw = Valid();
  Set(raw, Field::kAmount, "1e3");
  Set(raw, Field::kCurrency, "ZZZ");
  Set(raw, Field::kTransactionDate, "yesterday");
  Set(raw, Field::kMerchantId, "");
  Codes codes = Check(raw);
  std::sort(codes.begin(), codes.end());
  EXPECT_EQ(codes, (Codes{"AMOUNT_INVALID", "CURRENCY_UNKNOWN", "DATE_INVALID",
                          "MISSING_FIELD"}));
  for (const RecordError& e : errors_) {
    EXPECT_EQ(e.position, 2u);
    EXPECT_FALSE(e.message.empty());
  }
}

TEST_F(ValidatorTest, CardNumbersInProseAreMaskedInEveryForm) {
  RawRecord raw = Valid();
  Set(raw, Field::kReasonText, "card 4111111111111111 used twice");
  Set(raw, Field::kMerchantName, "Shop 4115 9900 0000 0006");
  Set(raw, Field::kTransactionId, "123456789012345");  // not a card number
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.reason_text, "card 411111******1111 used twice");
  EXPECT_EQ(rec_.merchant_name, "Shop 4115 99** **** 0006");
  EXPECT_EQ(rec_.transaction_id, "123456789012345");

  raw = Valid();
  Set(raw, Field::kReasonText, "4116-9900-0000-0005");
  EXPECT_EQ(Check(raw), Codes{});
  EXPECT_EQ(rec_.reason_text, "4116-99**-****-0005");
}

TEST_F(ValidatorTest, CardNumberInAnyOtherFieldRejectsTheRecordMasked) {
  struct Case {
    Field field;
    std::string value;
  };
  const Case cases[] = {
      {Field::kCaseId, "4111111111111111"},
      {Field::kCaseId, "4115 9900 0000 0006"},
      {Field::kCaseId, "REF-4116-9900-0000-0005"},
      {Field::kMerchantId, "378282246310005"},
      {Field::kTransactionId, "6011111111111117"},
      {Field::kStatus, "5555-5555-5555-4444"},
      {Field::kArn, "4111111111111111"},
      {Field::kAmount, "4111111111111111"},
      {Field::kChargebackDate, "4111 1111 1111 1111"},
      {Field::kNetwork, "4111111111111111"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(FieldName(c.field)) + " = " + c.value);
    RawRecord raw = Valid();
    Set(raw, c.field, c.value);
    Codes codes = Check(raw);
    EXPECT_NE(std::find(codes.begin(), codes.end(), "PAN_IN_FIELD"),
              codes.end());
    for (const RecordError& e : errors_) {
      for (const std::string* text : {&e.case_id, &e.field, &e.message}) {
        EXPECT_FALSE(ContainsCardNumber(*text)) << *text;
      }
      if (e.code == ErrorCode::kPanInField) {
        EXPECT_EQ(e.field, FieldName(c.field));
        EXPECT_NE(e.message.find(MaskCardNumbers(c.value)), std::string::npos)
            << e.message;
      }
    }
    if (c.field == Field::kCaseId) {
      EXPECT_EQ(errors_[0].case_id, MaskCardNumbers(c.value));
    }
  }
  // Numbers that are not card numbers are identifiers like any other.
  for (const std::string id :
       {"4111111111111112", "1796478000000", "74567890123456789012345"}) {
    RawRecord raw = Valid();
    Set(raw, Field::kTransactionId, id);
    EXPECT_EQ(Check(raw), Codes{}) << id;
    EXPECT_EQ(rec_.transaction_id, id);
  }
}

TEST_F(ValidatorTest, ReaderMessagesAndDuplicatesNeverCarryACardNumber) {
  // A malformed row whose only cell is a card number: the case id column of
  // the report shows it masked.
  RawRecord raw;
  raw.position = 9;
  Set(raw, Field::kCaseId, "4111111111111111");
  raw.malformed = "expected 14 cells, got 1";
  Check(raw);
  ASSERT_FALSE(errors_.empty());
  for (const RecordError& e : errors_) {
    EXPECT_EQ(e.case_id, "411111******1111");
    EXPECT_FALSE(ContainsCardNumber(e.message)) << e.message;
  }
  // A reader message or field name (a JSON key) holding one.
  raw = Valid();
  raw.malformed = "duplicate key \"4115 9900 0000 0006\"";
  raw.malformed_field = "4115 9900 0000 0006";
  Check(raw);
  ASSERT_FALSE(errors_.empty());
  EXPECT_EQ(errors_[0].message, "duplicate key \"4115 99** **** 0006\"");
  EXPECT_EQ(errors_[0].field, "4115 99** **** 0006");
  // The same card number twice as case id: DUPLICATE_CASE shows it masked.
  Validator v(Options());
  std::vector<RecordError> errors;
  Record rec;
  for (int i = 0; i < 2; ++i) {
    raw = Valid();
    Set(raw, Field::kCaseId, "6011111111111117");
    EXPECT_FALSE(v.Validate(raw, &rec, &errors));
  }
  bool duplicate = false;
  for (const RecordError& e : errors) {
    duplicate |= e.code == ErrorCode::kDuplicateCase;
    EXPECT_FALSE(ContainsCardNumber(e.case_id + e.message)) << e.message;
  }
  EXPECT_TRUE(duplicate);
}

}  // namespace
}  // namespace cbpipe
