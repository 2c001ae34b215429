#include "domain/network.h"

#include <gtest/gtest.h>

namespace cbpipe {
namespace {

TEST(NetworkNameTest, CanonicalNamesRoundTrip) {
  EXPECT_EQ(NetworkName(Network::kVisa), "visa");
  EXPECT_EQ(NetworkName(Network::kMastercard), "mastercard");
  EXPECT_EQ(NetworkName(Network::kAmex), "amex");
  EXPECT_EQ(NetworkName(Network::kDiscover), "discover");
  for (Network n : kAllNetworks) {
    EXPECT_EQ(ParseNetwork(NetworkName(n)), n) << NetworkName(n);
  }
}

TEST(ParseNetworkTest, AcceptsEveryAlias) {
  EXPECT_EQ(ParseNetwork("VI"), Network::kVisa);
  EXPECT_EQ(ParseNetwork("VISA"), Network::kVisa);
  EXPECT_EQ(ParseNetwork("MC"), Network::kMastercard);
  EXPECT_EQ(ParseNetwork("MASTERCARD"), Network::kMastercard);
  EXPECT_EQ(ParseNetwork("MASTER CARD"), Network::kMastercard);
  EXPECT_EQ(ParseNetwork("AX"), Network::kAmex);
  EXPECT_EQ(ParseNetwork("AMEX"), Network::kAmex);
  EXPECT_EQ(ParseNetwork("AMERICAN EXPRESS"), Network::kAmex);
  EXPECT_EQ(ParseNetwork("DI"), Network::kDiscover);
  EXPECT_EQ(ParseNetwork("DS"), Network::kDiscover);
  EXPECT_EQ(ParseNetwork("DISC"), Network::kDiscover);
  EXPECT_EQ(ParseNetwork("DISCOVER"), Network::kDiscover);
}

TEST(ParseNetworkTest, IsCaseInsensitiveAndIgnoresSurroundingSpaces) {
  EXPECT_EQ(ParseNetwork("visa"), Network::kVisa);
  EXPECT_EQ(ParseNetwork("Visa"), Network::kVisa);
  EXPECT_EQ(ParseNetwork("  mc  "), Network::kMastercard);
  EXPECT_EQ(ParseNetwork("Master Card"), Network::kMastercard);
  EXPECT_EQ(ParseNetwork(" american express"), Network::kAmex);
  EXPECT_EQ(ParseNetwork("Discover "), Network::kDiscover);
}

TEST(ParseNetworkTest, RejectsEverythingElse) {
  EXPECT_EQ(ParseNetwork(""), std::nullopt);
  // Prefixes, extensions and embedded NULs of aliases (the lookup compares
  // packed keys, which must keep the length apart).
  EXPECT_EQ(ParseNetwork("VIS"), std::nullopt);
  EXPECT_EQ(ParseNetwork("VISAX"), std::nullopt);
  EXPECT_EQ(ParseNetwork(std::string_view("MC\0", 3)), std::nullopt);
  EXPECT_EQ(ParseNetwork("AMERICAN EXPRESSX"), std::nullopt);
  EXPECT_EQ(ParseNetwork("AMERICAN EXPRES"), std::nullopt);
  EXPECT_EQ(ParseNetwork("   "), std::nullopt);
  EXPECT_EQ(ParseNetwork("V"), std::nullopt);
  EXPECT_EQ(ParseNetwork("VISA2"), std::nullopt);
  EXPECT_EQ(ParseNetwork("MASTER  CARD"), std::nullopt);  // two spaces
  EXPECT_EQ(ParseNetwork("MASTER-CARD"), std::nullopt);
  EXPECT_EQ(ParseNetwork("JCB"), std::nullopt);
  EXPECT_EQ(ParseNetwork("UNIONPAY"), std::nullopt);
  EXPECT_EQ(ParseNetwork("AMERICAN EXPRESS COMPANY INC"), std::nullopt);
  EXPECT_EQ(ParseNetwork(std::string_view("VISA\0", 5)), std::nullopt);
  EXPECT_EQ(ParseNetwork("\tVISA"), std::nullopt);  // only spaces are trimmed
}

TEST(NetworkFromPanTest, Visa) {
  EXPECT_EQ(NetworkFromPan("4111111111111111"), Network::kVisa);
  EXPECT_EQ(NetworkFromPan("4"), Network::kVisa);
}

TEST(NetworkFromPanTest, MastercardTwoDigitRangeBoundaries) {
  EXPECT_EQ(NetworkFromPan("5000000000000000"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("5099999999999999"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("5100000000000000"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("5555555555554444"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("5599999999999999"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("5600000000000000"), std::nullopt);
}

TEST(NetworkFromPanTest, MastercardTwoSeriesBoundaries) {
  EXPECT_EQ(NetworkFromPan("2220999999999999"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("2221000000000000"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("2500000000000000"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("2720999999999999"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("2721000000000000"), std::nullopt);
}

TEST(NetworkFromPanTest, Amex) {
  EXPECT_EQ(NetworkFromPan("340000000000009"), Network::kAmex);
  EXPECT_EQ(NetworkFromPan("378282246310005"), Network::kAmex);
  EXPECT_EQ(NetworkFromPan("350000000000000"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("360000000000000"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("380000000000000"), std::nullopt);
}

TEST(NetworkFromPanTest, DiscoverRanges) {
  EXPECT_EQ(NetworkFromPan("6011000000000004"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6010999999999999"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("6012000000000000"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("6439999999999999"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("6440000000000000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6499999999999999"), Network::kDiscover);
  // 650 is past 644-649 but inside 65.
  EXPECT_EQ(NetworkFromPan("6500000000000000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6599999999999999"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6600000000000000"), std::nullopt);
}

TEST(NetworkFromPanTest, DiscoverCoBrandedUnionPayRangeBoundaries) {
  EXPECT_EQ(NetworkFromPan("6221259999999999"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("6221260000000000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6225000000000000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6229250000000000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("6229260000000000"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("6200000000000000"), std::nullopt);  // UnionPay
}

TEST(NetworkFromPanTest, MaskedPansUseOnlyVisibleLeadingDigits) {
  EXPECT_EQ(NetworkFromPan("411111******1111"), Network::kVisa);
  EXPECT_EQ(NetworkFromPan("555555******4444"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("622126******0000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("2221XX**********"), Network::kMastercard);
  EXPECT_EQ(NetworkFromPan("6011XXXXXXXX0004"), Network::kDiscover);
}

TEST(NetworkFromPanTest, TooFewVisibleDigitsIsUndecided) {
  EXPECT_EQ(NetworkFromPan("****1234"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("XXXXXXXXXXXX1234"), std::nullopt);
  EXPECT_EQ(NetworkFromPan(""), std::nullopt);
  EXPECT_EQ(NetworkFromPan("5*************"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("222***********"), std::nullopt);
  EXPECT_EQ(NetworkFromPan("62212*********"), std::nullopt);
}

TEST(NetworkFromPanTest, SkipsSeparatorsBetweenDigitGroups) {
  EXPECT_EQ(NetworkFromPan("6221 2600 0000 0000"), Network::kDiscover);
  EXPECT_EQ(NetworkFromPan("2221-0000-0000-0000"), Network::kMastercard);
}

// The two-digit filter never turns away a number NetworkFromPan places,
// and lets through only prefixes of some range.
TEST(NetworkTest, TwoDigitFilterAgreesWithNetworkFromPan) {
  bool placed[100] = {};
  for (int prefix = 100000; prefix <= 999999; ++prefix) {
    const std::string digits = std::to_string(prefix) + "0000000000";
    if (NetworkFromPan(digits).has_value()) {
      ASSERT_TRUE(MayBeInCardRange(prefix / 10000)) << prefix;
      placed[prefix / 10000] = true;
    }
  }
  for (int p = 10; p < 100; ++p) EXPECT_EQ(MayBeInCardRange(p), placed[p]) << p;
  EXPECT_FALSE(MayBeInCardRange(-1));
  EXPECT_FALSE(MayBeInCardRange(100));
}

}  // namespace
}  // namespace cbpipe
