#include "domain/pan.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "domain/network.h"
#include "domain/rules.h"

namespace cbpipe {
namespace {

// The Luhn check digit appended to `payload`, computed here independently.
std::string WithCheckDigit(const std::string& payload) {
  int sum = 0;
  bool twice = true;
  for (auto it = payload.rbegin(); it != payload.rend(); ++it) {
    int d = *it - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return payload + static_cast<char>('0' + (10 - sum % 10) % 10);
}

// A Luhn-valid number of `length` digits starting with `prefix`.
std::string Card(const std::string& prefix, size_t length) {
  std::string body = prefix;
  while (body.size() < length - 1) body.push_back('0' + body.size() % 10);
  return WithCheckDigit(body);
}

// `digits` written in groups of 4 joined by `separator`.
std::string Grouped(const std::string& digits, char separator) {
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && i % 4 == 0) out.push_back(separator);
    out.push_back(digits[i]);
  }
  return out;
}

TEST(IsCardNumberTest, EveryNetworkRangeAndLength) {
  // One prefix at each end of every IIN range.
  const std::vector<std::string> prefixes = {
      "4",    "51",  "55",  "2221", "2720",   "34",    "37",
      "6011", "644", "649", "65",   "622126", "622925"};
  for (const std::string& prefix : prefixes) {
    for (size_t length = 12; length <= 19; ++length) {
      const std::string card = Card(prefix, length);
      ASSERT_TRUE(LuhnValid(card));
      EXPECT_TRUE(IsCardNumber(card)) << card;
      // One digit changed: the Luhn check fails.
      std::string wrong = card;
      wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
      EXPECT_FALSE(IsCardNumber(wrong)) << wrong;
    }
    EXPECT_FALSE(IsCardNumber(Card(prefix, 11)));
    EXPECT_FALSE(IsCardNumber(Card(prefix, 20)));
  }
}

TEST(IsCardNumberTest, OutsideEveryNetworkRange) {
  // Luhn-valid, the right length, but no network issues such numbers:
  // epoch-millisecond timestamps (1...), 0..., 3 other than 34/37, ...
  for (const std::string prefix :
       {"1", "0", "30", "35", "36", "38", "50", "56", "2220", "2721", "6010",
        "6012", "643", "66", "622125", "622926", "7", "8", "9"}) {
    for (size_t length = 12; length <= 19; ++length) {
      EXPECT_FALSE(IsCardNumber(Card(prefix, length))) << prefix << length;
    }
  }
  EXPECT_FALSE(IsCardNumber("4111-1111-1111-1111"));  // digits only
  EXPECT_FALSE(IsCardNumber(""));
}

TEST(MaskCardNumbersTest, PlainSpacedDashedAndEmbedded) {
  EXPECT_EQ(MaskCardNumbers("4111111111111111"), "411111******1111");
  EXPECT_EQ(MaskCardNumbers("4115 9900 0000 0006"), "4115 99** **** 0006");
  EXPECT_EQ(MaskCardNumbers("4116-9900-0000-0005"), "4116-99**-****-0005");
  EXPECT_EQ(MaskCardNumbers("amex=378282246310005;"), "amex=378282*****0005;");
  EXPECT_EQ(MaskCardNumbers("x4111111111111111y"), "x411111******1111y");
  EXPECT_EQ(MaskCardNumbers("4111111111111111 5555555555554444"),
            "411111******1111 555555******4444");
  EXPECT_EQ(MaskCardNumbers("3782 822463 10005"), "3782 82**** *0005");
  EXPECT_EQ(MaskCardNumbers("4111111111111111110"), "411111*********1110");
  // A trailing group that does not belong is left out of the number.
  EXPECT_EQ(MaskCardNumbers("4111-1111-1111-1111-2024"),
            "4111-11**-****-1111-2024");
  // Inside a longer digit run (an ARN) there is no card number; after a
  // space there may be.
  EXPECT_EQ(MaskCardNumbers("74567890123456789012345"),
            "74567890123456789012345");
  EXPECT_EQ(MaskCardNumbers("74567890123456789012345 4111111111111111"),
            "74567890123456789012345 411111******1111");
}

TEST(MaskCardNumbersTest, LeavesOtherNumbersAlone) {
  for (const std::string& text : {
           std::string("1200 records, 3 files"),
           std::string("4111111111111112"),       // Luhn fails
           std::string("time_ms 1796478000000"),  // a timestamp
           Card("1796", 13),                      // a Luhn-valid one
           std::string("411111******1111"),       // already masked
           std::string("4111  1111 1111 1111"),   // two spaces: no group
           std::string("4111_1111_1111_1111"),    // not a separator
           std::string("run 4f2a9c0d1e4b5a66"),
           // Digits inside lower-case hex ids (16, 32, 64) are identifiers.
           "abc" + Card("4", 13),
           "4bf92f3577b34da6" + Card("4", 16),
           std::string(""),
       }) {
    EXPECT_EQ(MaskCardNumbers(text), text) << text;
    EXPECT_FALSE(ContainsCardNumber(text)) << text;
  }
  // A card number after a hex id of another length is found.
  EXPECT_TRUE(ContainsCardNumber("abcdef " + Card("4", 16)));
  EXPECT_TRUE(ContainsCardNumber("ABC" + Card("4", 13)));  // not lower hex
}

TEST(FindCardNumberTest, SpanCoversDigitsAndSeparators) {
  const std::string text = "ref 4115 9900 0000 0006, 5555555555554444.";
  CardNumberSpan a = FindCardNumber(text);
  EXPECT_EQ(text.substr(a.begin, a.end - a.begin), "4115 9900 0000 0006");
  CardNumberSpan b = FindCardNumber(text, a.end);
  EXPECT_EQ(text.substr(b.begin, b.end - b.begin), "5555555555554444");
  EXPECT_EQ(FindCardNumber(text, b.end).end, 0u);
  EXPECT_EQ(FindCardNumber("no digits").end, 0u);
}

// A slow reference: every sequence of whole digit groups joined by single
// separators is tried.
bool ReferenceContains(const std::string& s) {
  struct Group {
    size_t begin, size;
  };
  std::vector<std::vector<Group>> runs(1);
  for (size_t i = 0; i < s.size();) {
    if (s[i] < '0' || s[i] > '9') {
      ++i;
      continue;
    }
    size_t b = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    const bool joins =
        !runs.back().empty() &&
        runs.back().back().begin + runs.back().back().size + 1 == b &&
        (s[b - 1] == ' ' || s[b - 1] == '-');
    if (!joins) runs.emplace_back();
    runs.back().push_back({b, i - b});
  }
  for (const auto& run : runs) {
    for (size_t a = 0; a < run.size(); ++a) {
      std::string digits;
      for (size_t b = a; b < run.size(); ++b) {
        digits += s.substr(run[b].begin, run[b].size);
        if (digits.size() > 19) break;
        if (IsCardNumber(digits)) return true;
      }
    }
  }
  return false;
}

TEST(MaskCardNumbersTest, AgreesWithReferenceOnRandomText) {
  std::mt19937_64 rng(20260);
  const std::string alphabet = "0123456789 -x*.\xc3\xa9\x80\xff/:";
  const std::vector<std::string> cards = {Card("4", 16), Card("37", 15),
                                          Card("51", 16), Card("6011", 19)};
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    const int pieces = 1 + static_cast<int>(rng() % 6);
    for (int p = 0; p < pieces; ++p) {
      if (rng() % 3 == 0) {
        const std::string& card = cards[rng() % cards.size()];
        const int form = static_cast<int>(rng() % 3);
        text += form == 0 ? card : Grouped(card, form == 1 ? ' ' : '-');
      } else {
        for (int k = static_cast<int>(rng() % 12); k > 0; --k)
          text.push_back(alphabet[rng() % alphabet.size()]);
      }
    }
    ASSERT_EQ(ContainsCardNumber(text), ReferenceContains(text)) << text;
    std::string masked = MaskCardNumbers(text);
    ASSERT_EQ(masked.size(), text.size());
    ASSERT_FALSE(ReferenceContains(masked)) << text << " -> " << masked;
    for (size_t i = 0; i < text.size(); ++i) {
      // Only digits change, and only to '*'.
      if (masked[i] != text[i]) {
        ASSERT_TRUE(text[i] >= '0' && text[i] <= '9');
        ASSERT_EQ(masked[i], '*');
      }
    }
    ASSERT_EQ(MaskCardNumbers(masked), masked);  // idempotent
    std::string in_place = text;
    ASSERT_EQ(MaskCardNumbersInPlace(&in_place), masked != text);
    ASSERT_EQ(in_place, masked);
  }
}

TEST(MaskCardNumbersTest, KeepsFirstSixAndLastFour) {
  for (size_t length = 12; length <= 19; ++length) {
    const std::string card = Card("4", length);
    const std::string masked = MaskCardNumbers(card);
    EXPECT_EQ(masked, MaskPan(card));  // the same policy as the pan field
    EXPECT_EQ(masked.substr(0, 6), card.substr(0, 6));
    EXPECT_EQ(masked.substr(length - 4), card.substr(length - 4));
    EXPECT_EQ(masked.substr(6, length - 10), std::string(length - 10, '*'));
  }
}

TEST(MaskCardNumbersInStatusTest, MessageMaskedCodeKept) {
  const Status st = NotFoundError("in/4115 9900 0000 0006.csv: empty input");
  const Status masked = MaskCardNumbersInStatus(st);
  EXPECT_EQ(masked.code(), StatusCode::kNotFound);
  EXPECT_EQ(masked.message(), "in/4115 99** **** 0006.csv: empty input");
  EXPECT_TRUE(MaskCardNumbersInStatus(OkStatus()).ok());
  EXPECT_EQ(MaskCardNumbersInStatus(st).ToString(), masked.ToString());
}

}  // namespace
}  // namespace cbpipe
