// A strict RFC 4180 parser for checking files cbpipe wrote. Unlike the
// ingest reader, which is lenient with what others send, it accepts only
// what the writer produces: every row ends with the layout's line ending
// (the last one too), a quote may only open a cell or close it (doubled
// inside), and CR or LF appear bare only as the line ending.
//
//   StrictCsvParser parser(',', "\r\n");
//   auto on_row = [&](uint64_t row, std::span<const std::string_view> cells) {
//     ...; return OkStatus();
//   };
//   CBPIPE_RETURN_IF_ERROR(parser.Feed(chunk, on_row));   // any chunking
//   CBPIPE_RETURN_IF_ERROR(parser.Finish());
//
// The cells passed to `on_row` are only valid during the call: they point
// into the chunk being fed or into the parser's own buffers.
//
// Errors are kDataLoss naming the row (1-based) and byte offset (0-based).
// Memory: one row; a row over `max_row_bytes` is an error.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

class StrictCsvParser {
 public:
  // Returning a non-OK Status stops the parse with that Status.
  using RowCallback = std::function<Status(
      uint64_t row, std::span<const std::string_view> cells)>;

  StrictCsvParser(char delimiter, std::string_view line_ending,
                  size_t max_row_bytes = 16 << 20);

  Status Feed(std::string_view bytes, const RowCallback& on_row);
  // End of input: an unterminated last row or open quote is an error.
  Status Finish() const;

  uint64_t rows() const { return rows_; }

  // The cells of the last complete row, parsed again from a copy of its
  // bytes the parser keeps (one copy per Feed call, not per row). For a
  // caller that only knows at the end which row was the last one, such as
  // a check of a trailer row, without copying every row on the way.
  std::vector<std::string> LastRowCells() const;

 private:
  enum class State { kCellStart, kUnquoted, kQuoted, kQuoteInQuoted, kAfterCr };

  Status Error(std::string_view what) const;
  // Parses the complete, well-formed rows at the front of `bytes` straight
  // from the buffer, passing cells that point into it. Stops at the first
  // row that is not complete in `bytes` or not plainly well formed (or
  // too long), leaving it to the state machine, which then reports any
  // error exactly as if it had read every byte. Returns the bytes consumed;
  // `status` is the callback's error, if any.
  size_t FeedRows(std::string_view bytes, const RowCallback& on_row,
                  Status* status);
  // The byte-by-byte state machine, for every byte the fast paths in Feed
  // do not take (quotes, delimiters, line endings, the row limit).
  Status FeedByte(char c, const RowCallback& on_row);
  void EndCell();
  Status EndRow(const RowCallback& on_row);

  char delimiter_;
  bool crlf_;
  size_t max_row_bytes_;
  std::array<bool, 256> special_;  // delimiter, quote, CR, LF
  State state_ = State::kCellStart;
  bool row_open_ = false;           // a byte of the current row has been read
  std::vector<std::string> cells_;  // strings reused between rows
  std::vector<std::string_view> views_;  // the cells passed to the callback
  // FeedRows: cells with doubled quotes, unescaped, and their indexes.
  std::vector<std::string> unescaped_;
  std::vector<size_t> escaped_;
  size_t cell_count_ = 0;
  size_t row_bytes_ = 0;
  uint64_t rows_ = 0;    // completed rows
  uint64_t offset_ = 0;  // of the byte being read
  // The bytes of the last complete row, line ending included.
  std::string last_row_;
  // Where the last complete row lies in the chunk being fed (FeedRows),
  // copied into last_row_ once at the end of Feed; null when the state
  // machine completed the last row and has stored it itself.
  const char* last_row_begin_ = nullptr;
  const char* last_row_end_ = nullptr;
  std::string row_bytes_copy_;  // the current row's bytes in the slow path
};

}  // namespace cbpipe
