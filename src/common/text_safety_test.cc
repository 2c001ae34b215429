#include "common/text_safety.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace cbpipe {
namespace {

TEST(TextSafetyTest, ControlAndBidiCodePointsAreUnsafe) {
  for (char32_t cp = 0; cp < 0x20; ++cp) EXPECT_TRUE(IsUnsafeCodePoint(cp));
  for (char32_t cp = 0x7F; cp <= 0x9F; ++cp) EXPECT_TRUE(IsUnsafeCodePoint(cp));
  for (char32_t cp : {0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A, 0x202B,
                      0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069})
    EXPECT_TRUE(IsUnsafeCodePoint(cp)) << static_cast<unsigned>(cp);
  for (char32_t cp = 0x20; cp < 0x7F; ++cp) EXPECT_FALSE(IsUnsafeCodePoint(cp));
  for (char32_t cp : {0xA0, 0xE9, 0x200D, 0x2030, 0x20AC, 0x1F600})
    EXPECT_FALSE(IsUnsafeCodePoint(cp)) << static_cast<unsigned>(cp);
}

TEST(TextSafetyTest, FindUnsafeCharGivesOffsetAndCodePoint) {
  EXPECT_FALSE(FindUnsafeChar("ACME Caf\xC3\xA9 \xE2\x82\xAC 12").has_value());
  EXPECT_FALSE(FindUnsafeChar("").has_value());

  std::optional<UnsafeChar> c = FindUnsafeChar("ab\x1b]0;pwned\x07");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->offset, 2u);
  EXPECT_EQ(c->code_point, 0x1Bu);
  EXPECT_EQ(UnsafeCharName(*c), "U+001B");

  c = FindUnsafeChar("Caf\xC3\xA9 \xE2\x80\xAEtxt.exe");  // U+202E
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->offset, 6u);
  EXPECT_EQ(UnsafeCharName(*c), "U+202E");

  c = FindUnsafeChar(std::string_view("a\0b", 3));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->offset, 1u);
  EXPECT_EQ(UnsafeCharName(*c), "U+0000");

  EXPECT_EQ(FindUnsafeChar("tab\there")->code_point, 0x09u);
  EXPECT_EQ(FindUnsafeChar("line\r\n")->code_point, 0x0Du);
  EXPECT_EQ(FindUnsafeChar("c1 \xC2\x9B")->code_point, 0x9Bu);  // U+009B CSI

  c = FindUnsafeChar("bad \xFF");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->invalid_utf8);
  EXPECT_EQ(UnsafeCharName(*c), "byte 0xFF");
  // Overlong, surrogate and truncated sequences are not UTF-8.
  EXPECT_TRUE(FindUnsafeChar("\xC0\x9B")->invalid_utf8);
  EXPECT_TRUE(FindUnsafeChar("\xED\xA0\x80")->invalid_utf8);
  EXPECT_TRUE(FindUnsafeChar("\xE2\x80")->invalid_utf8);
}

TEST(TextSafetyTest, EscapeForTerminalNeutralisesEscapeSequences) {
  EXPECT_EQ(EscapeForTerminal("\x1b]0;pwned\x07"), "\\x1b]0;pwned\\x07");
  EXPECT_EQ(EscapeForTerminal("\x1b[2J"), "\\x1b[2J");
  EXPECT_EQ(EscapeForTerminal("a\tb\nc\r\x7f"), "a\\x09b\\x0ac\\x0d\\x7f");
  EXPECT_EQ(EscapeForTerminal(std::string_view("\0", 1)), "\\x00");
  EXPECT_EQ(EscapeForTerminal("x\xE2\x80\xAEy"), "x\\u202ey");
  EXPECT_EQ(EscapeForTerminal("\xC2\x9B"), "\\u009b");
  EXPECT_EQ(EscapeForTerminal("\xFF\xFE"), "\\xff\\xfe");
  // A backslash is doubled, so an escape in the output is always ours.
  EXPECT_EQ(EscapeForTerminal("C:\\x1b"), "C:\\\\x1b");
  // Printable text and valid UTF-8 pass unchanged.
  EXPECT_EQ(EscapeForTerminal("Caf\xC3\xA9 \xE2\x82\xAC 'ok' 100%"),
            "Caf\xC3\xA9 \xE2\x82\xAC 'ok' 100%");
}

TEST(TextSafetyTest, EscapedTextIsAlwaysSafe) {
  // Every single byte and every pair of bytes: the result holds no unsafe
  // character and no byte that is not UTF-8.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; b += 7) {
      const char in[2] = {static_cast<char>(a), static_cast<char>(b)};
      const std::string out = EscapeForTerminal(std::string_view(in, 2));
      EXPECT_FALSE(FindUnsafeChar(out).has_value()) << a << " " << b;
    }
  }
}

// The 8-bytes-at-a-time fast path against a byte-by-byte reference: every
// single byte value at every offset of strings of 0-40 bytes.
TEST(TextSafetyTest, FastPathFindsEveryUnsafeByteAtEveryOffset) {
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int byte = 0; byte < 256; ++byte) {
        std::string s(len, 'a');
        s[pos] = static_cast<char>(byte);
        std::optional<UnsafeChar> c = FindUnsafeChar(s);
        const bool printable = byte >= 0x20 && byte < 0x7F;
        ASSERT_EQ(c.has_value(), !printable)
            << len << " " << pos << " " << byte;
        if (c) {
          EXPECT_EQ(c->offset, pos);
        }
      }
    }
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 20000; ++round) {
    std::string s(rng() % 48, 'x');
    for (char& ch : s) ch = static_cast<char>(0x20 + rng() % 0x5F);
    EXPECT_FALSE(FindUnsafeChar(s).has_value()) << s;
  }
}

}  // namespace
}  // namespace cbpipe
