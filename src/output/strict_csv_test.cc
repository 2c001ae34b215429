#include "output/strict_csv.h"

#include <gtest/gtest.h>

#include <random>

namespace cbpipe {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// Parses `text` fed in pieces of `chunk` bytes (to exercise state carried
// across Feed calls).
StatusOr<Rows> Parse(std::string_view text, std::string_view eol = "\r\n",
                     size_t chunk = 1 << 20, char delimiter = ',',
                     size_t max_row_bytes = 64) {
  StrictCsvParser parser(delimiter, eol, max_row_bytes);
  Rows rows;
  auto on_row = [&](uint64_t row, std::span<const std::string_view> cells) {
    EXPECT_EQ(row, rows.size() + 1);
    rows.emplace_back(cells.begin(), cells.end());
    return OkStatus();
  };
  for (size_t i = 0; i < text.size(); i += chunk) {
    CBPIPE_RETURN_IF_ERROR(parser.Feed(text.substr(i, chunk), on_row));
  }
  CBPIPE_RETURN_IF_ERROR(parser.Finish());
  return rows;
}

TEST(StrictCsvParserTest, ParsesWhatTheWriterWrites) {
  const std::string text =
      "a,\"b,c\",\"say \"\"hi\"\"\",,\"\"\r\n"
      "\"two\r\nlines\",x,'q,\"'=1\",\r\n";
  for (size_t chunk : {1, 2, 3, 7, 1000}) {
    auto rows = Parse(text, "\r\n", chunk);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    EXPECT_EQ(*rows, (Rows{{"a", "b,c", "say \"hi\"", "", ""},
                           {"two\r\nlines", "x", "'q", "'=1", ""}}))
        << chunk;
  }
  auto lf = Parse("a|b\n|\n", "\n", 1, '|');
  ASSERT_TRUE(lf.ok());
  EXPECT_EQ(*lf, (Rows{{"a", "b"}, {"", ""}}));
  auto empty = Parse("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(StrictCsvParserTest, RejectsMalformedInput) {
  for (std::string_view bad : {
           "a\"b,c\r\n",     // stray quote in an unquoted cell
           "\"ab\"c,d\r\n",  // text after a closing quote
           "\"abc,d\r\n",    // quote never closed
           "a,b",            // last row without line ending
           "a,b\n",          // LF where CRLF is the line ending
           "a\rb\r\n",       // bare CR
           "a,b\r\r\n",      // CR CR LF
           "\"a\" ,b\r\n",   // space after closing quote
       }) {
    auto rows = Parse(bad);
    EXPECT_EQ(rows.status().code(), StatusCode::kDataLoss) << bad;
  }
  EXPECT_FALSE(Parse("a\r\n", "\n").ok());  // CR with LF line ending
  auto long_row = Parse(std::string(100, 'x') + "\r\n");
  EXPECT_EQ(long_row.status().code(), StatusCode::kDataLoss);
}

TEST(StrictCsvParserTest, ErrorsNameRowAndByte) {
  auto rows = Parse("a,b\r\nc,d\"\r\n");
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("row 2"), std::string::npos)
      << rows.status().message();
  EXPECT_NE(rows.status().message().find("byte 8"), std::string::npos)
      << rows.status().message();
}

TEST(StrictCsvParserTest, RowLimitErrorNamesTheByteOverTheLimit) {
  // Long runs of ordinary bytes are skipped in bulk: the limit must still
  // trip at the first byte over it, in or out of quotes, however fed.
  for (size_t chunk : {1, 5, 1000}) {
    for (const std::string& text :
         {std::string(100, 'x') + "\r\n",
          "a,\"" + std::string(100, 'y') + "\"\r\n"}) {
      auto rows = Parse(text, "\r\n", chunk);
      ASSERT_FALSE(rows.ok());
      EXPECT_NE(rows.status().message().find("(byte 64)"), std::string::npos)
          << rows.status().message();
    }
  }
  auto fits = Parse(std::string(62, 'x') + "\r\n");
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
}

TEST(StrictCsvParserTest, CallbackErrorStopsTheParse) {
  StrictCsvParser parser(',', "\r\n");
  int calls = 0;
  Status status = parser.Feed("a\r\nb\r\nc\r\n",
                              [&](uint64_t, std::span<const std::string_view>) {
                                ++calls;
                                return DataLossError("stop");
                              });
  EXPECT_EQ(status.message(), "stop");
  EXPECT_EQ(calls, 1);
}

// Rows are parsed straight from the buffer when they are complete in it and
// plainly well formed, and byte by byte otherwise. Fed one byte at a time,
// nearly everything takes the byte-by-byte path, so for any input the two
// must agree: the same rows, or the same error with the same row and byte.
TEST(StrictCsvParserTest, RowFastPathAgreesWithTheStateMachine) {
  std::mt19937 random(20250301);
  // Long pieces too, for cells across 64-byte blocks (the fast path looks
  // at the bytes 64 at a time).
  const std::string zs(70, 'z');
  const std::string alphabet[] = {"a",  "bc",   ",",  "\"", "\"\"",
                                  "\r", "\n",  "\r\n", "\"x,\r\ny\"", "'=1",
                                  zs,   "\"" + zs + "\"\"" + zs + "\"",
                                  "\"" + zs + "\""};
  for (std::string_view eol : {"\r\n", "\n"}) {
    for (int round = 0; round < 6000; ++round) {
      std::string text;
      const int pieces = static_cast<int>(random() % 40);
      for (int k = 0; k < pieces; ++k) {
        // Mostly well-formed rows, so that the error, if any, comes late.
        text += random() % 4 != 0 ? alphabet[random() % std::size(alphabet)]
                                  : std::string(eol);
      }
      if (random() % 2 == 0) text += eol;
      // A small limit too, so that complete rows over it are read.
      const size_t limit = round % 2 == 0 ? 12 : 1 << 20;
      const auto reference = Parse(text, eol, 1, ',', limit);
      for (size_t chunk : {2, 3, 7, 16, 63, 64, 65, 130, 1000}) {
        const auto rows = Parse(text, eol, chunk, ',', limit);
        ASSERT_EQ(rows.ok(), reference.ok()) << text << " chunk " << chunk;
        if (rows.ok()) {
          EXPECT_EQ(*rows, *reference) << text;
        } else {
          EXPECT_EQ(rows.status().message(), reference.status().message())
              << text << " chunk " << chunk;
        }
      }
    }
  }
}

TEST(StrictCsvParserTest, FastPathHandlesQuotesAndLineBreaksInCells) {
  // Long enough for several 64-byte blocks, with every kind of cell.
  std::string text;
  std::vector<std::vector<std::string>> want;
  for (int i = 0; i < 50; ++i) {
    const std::string n = std::to_string(i);
    text += "\"" + n + "\",plain" + n + ",\"a,\"\"b\"\"\r\nc\",,\"\"\r\n";
    want.push_back({n, "plain" + n, "a,\"b\"\r\nc", "", ""});
  }
  StrictCsvParser parser(',', "\r\n", 1 << 20);
  Rows rows;
  auto on_row = [&](uint64_t, std::span<const std::string_view> cells) {
    rows.emplace_back(cells.begin(), cells.end());
    return OkStatus();
  };
  ASSERT_TRUE(parser.Feed(text, on_row).ok());
  ASSERT_TRUE(parser.Finish().ok());
  EXPECT_EQ(rows, want);
  EXPECT_EQ(parser.LastRowCells(), want.back());
}

TEST(StrictCsvParserTest, LastRowCellsHoweverTheRowWasRead) {
  const std::string text = "h1,h2\r\na,b\r\n\"TRAILER\",\"x\"\"\r\ny\"\r\n";
  for (size_t chunk : {1, 2, 5, 9, 1000}) {
    StrictCsvParser parser(',', "\r\n");
    auto on_row = [](uint64_t, std::span<const std::string_view>) {
      return OkStatus();
    };
    for (size_t i = 0; i < text.size(); i += chunk) {
      ASSERT_TRUE(parser.Feed(std::string_view(text).substr(i, chunk), on_row)
                      .ok());
    }
    ASSERT_TRUE(parser.Finish().ok());
    EXPECT_EQ(parser.LastRowCells(),
              (std::vector<std::string>{"TRAILER", "x\"\r\ny"}))
        << chunk;
  }
  StrictCsvParser empty(',', "\n");
  EXPECT_TRUE(empty.LastRowCells().empty());
}

}  // namespace
}  // namespace cbpipe
