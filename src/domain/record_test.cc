#include "domain/record.h"

#include <gtest/gtest.h>

#include <set>

namespace cbpipe {
namespace {

constexpr Stage kAllStages[] = {Stage::kRetrieval, Stage::kFirstChargeback,
                                Stage::kRepresentment, Stage::kPreArbitration,
                                Stage::kArbitration};

TEST(FieldNameTest, CanonicalNamesRoundTrip) {
  std::set<std::string_view> names;
  for (int i = 0; i < kFieldCount; ++i) {
    const Field field = static_cast<Field>(i);
    const std::string_view name = FieldName(field);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(FieldFromName(name), field) << name;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kFieldCount));
  EXPECT_EQ(FieldName(Field::kCaseId), "case_id");
  EXPECT_EQ(FieldName(Field::kTransactionDate), "transaction_date");
  EXPECT_EQ(FieldName(Field::kStatus), "status");
}

TEST(FieldFromNameTest, Aliases) {
  EXPECT_EQ(FieldFromName("case_number"), Field::kCaseId);
  EXPECT_EQ(FieldFromName("dispute_id"), Field::kCaseId);
  EXPECT_EQ(FieldFromName("chargeback_id"), Field::kCaseId);
  EXPECT_EQ(FieldFromName("card_network"), Field::kNetwork);
  EXPECT_EQ(FieldFromName("card_brand"), Field::kNetwork);
  EXPECT_EQ(FieldFromName("scheme"), Field::kNetwork);
  EXPECT_EQ(FieldFromName("acquirer_reference_number"), Field::kArn);
  EXPECT_EQ(FieldFromName("card_number"), Field::kPan);
  EXPECT_EQ(FieldFromName("masked_pan"), Field::kPan);
  EXPECT_EQ(FieldFromName("mid"), Field::kMerchantId);
  EXPECT_EQ(FieldFromName("dispute_date"), Field::kChargebackDate);
  EXPECT_EQ(FieldFromName("chargeback_amount"), Field::kAmount);
  EXPECT_EQ(FieldFromName("dispute_amount"), Field::kAmount);
  EXPECT_EQ(FieldFromName("currency_code"), Field::kCurrency);
  EXPECT_EQ(FieldFromName("reason"), Field::kReasonCode);
  EXPECT_EQ(FieldFromName("dispute_stage"), Field::kStage);
  EXPECT_EQ(FieldFromName("respond_by"), Field::kDueDate);
}

TEST(FieldFromNameTest, CaseSpacesAndDashes) {
  EXPECT_EQ(FieldFromName("Case Number"), Field::kCaseId);
  EXPECT_EQ(FieldFromName("CASE-ID"), Field::kCaseId);
  EXPECT_EQ(FieldFromName("  Dispute Amount  "), Field::kAmount);
  EXPECT_EQ(FieldFromName("Transaction-Date"), Field::kTransactionDate);
  EXPECT_EQ(FieldFromName("ARN"), Field::kArn);
  EXPECT_EQ(FieldFromName("MCC"), Field::kMcc);
}

TEST(FieldFromNameTest, UnknownNames) {
  EXPECT_EQ(FieldFromName(""), std::nullopt);
  EXPECT_EQ(FieldFromName("caseid"), std::nullopt);
  EXPECT_EQ(FieldFromName("case__id"), std::nullopt);
  EXPECT_EQ(FieldFromName("amount_usd"), std::nullopt);
  EXPECT_EQ(FieldFromName("cvv"), std::nullopt);
}

TEST(IsSensitiveFieldNameTest, CardVerificationValuesAndTrackData) {
  for (std::string_view name :
       {"cvv", "CVV", "cvv2", "CVC", "cvc2", "cid", "cav2", "cvn", "csc",
        "track1", "Track2", "track_data", "Track-Data", "track", "pin",
        "PIN Block", "pinblock", "magstripe", " cvv ", "Track 2", "CVV 2",
        "Track 1 Data", "Security Code"}) {
    EXPECT_TRUE(IsSensitiveFieldName(name)) << name;
  }
}

TEST(IsSensitiveFieldNameTest, OrdinaryFieldsAreNotSensitive) {
  for (std::string_view name :
       {"", "pan", "card_number", "masked_pan", "amount", "cvv_result",
        "pincode", "case_id", "tracking_number", "status"}) {
    EXPECT_FALSE(IsSensitiveFieldName(name)) << name;
  }
}

TEST(StageTest, CanonicalNamesRoundTrip) {
  for (Stage stage : kAllStages) {
    EXPECT_EQ(ParseStage(StageName(stage)), stage) << StageName(stage);
  }
  EXPECT_EQ(StageName(Stage::kFirstChargeback), "first_chargeback");
  EXPECT_EQ(StageName(Stage::kPreArbitration), "pre_arbitration");
}

TEST(ParseStageTest, CaseInsensitiveWithSpacesAndDashes) {
  EXPECT_EQ(ParseStage("RETRIEVAL"), Stage::kRetrieval);
  EXPECT_EQ(ParseStage("First Chargeback"), Stage::kFirstChargeback);
  EXPECT_EQ(ParseStage("Pre-Arbitration"), Stage::kPreArbitration);
  EXPECT_EQ(ParseStage(" arbitration "), Stage::kArbitration);
  EXPECT_EQ(ParseStage("Representment"), Stage::kRepresentment);
}

TEST(ParseStageTest, Synonyms) {
  EXPECT_EQ(ParseStage("second presentment"), Stage::kRepresentment);
  EXPECT_EQ(ParseStage("Request for Information"), Stage::kRetrieval);
  EXPECT_EQ(ParseStage("RFI"), Stage::kRetrieval);
  EXPECT_EQ(ParseStage("chargeback"), Stage::kFirstChargeback);
}

TEST(ParseStageTest, UnknownStages) {
  EXPECT_EQ(ParseStage(""), std::nullopt);
  EXPECT_EQ(ParseStage("prearbitration"), std::nullopt);
  EXPECT_EQ(ParseStage("second chargeback"), std::nullopt);
  EXPECT_EQ(ParseStage("arb"), std::nullopt);
}

}  // namespace
}  // namespace cbpipe
