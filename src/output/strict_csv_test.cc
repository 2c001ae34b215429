#include "output/strict_csv.h"

#include <gtest/gtest.h>

namespace cbpipe {
namespace {

using Rows = std::vector<std::vector<std::string>>;

// Parses `text` fed in pieces of `chunk` bytes (to exercise state carried
// across Feed calls).
StatusOr<Rows> Parse(std::string_view text, std::string_view eol = "\r\n",
                     size_t chunk = 1 << 20, char delimiter = ',') {
  StrictCsvParser parser(delimiter, eol, 64);
  Rows rows;
  auto on_row = [&](uint64_t row, std::span<const std::string> cells) {
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
                              [&](uint64_t, std::span<const std::string>) {
                                ++calls;
                                return DataLossError("stop");
                              });
  EXPECT_EQ(status.message(), "stop");
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace cbpipe
