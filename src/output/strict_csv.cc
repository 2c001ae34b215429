#include "output/strict_csv.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cstring>

namespace cbpipe {

StrictCsvParser::StrictCsvParser(char delimiter, std::string_view line_ending,
                                 size_t max_row_bytes)
    : delimiter_(delimiter),
      crlf_(line_ending == "\r\n"),
      max_row_bytes_(max_row_bytes) {
  special_.fill(false);
  for (char c : {delimiter, '"', '\r', '\n'}) {
    special_[static_cast<unsigned char>(c)] = true;
  }
  cells_.emplace_back();
}

Status StrictCsvParser::Error(std::string_view what) const {
  return DataLossError("row " + std::to_string(rows_ + 1) + " (byte " +
                       std::to_string(offset_) + "): " + std::string(what));
}

void StrictCsvParser::EndCell() {
  ++cell_count_;
  if (cells_.size() <= cell_count_) cells_.emplace_back();
  cells_[cell_count_].clear();
}

Status StrictCsvParser::EndRow(const RowCallback& on_row) {
  EndCell();
  ++rows_;
  Status status =
      on_row(rows_, std::span<const std::string>(cells_.data(), cell_count_));
  cell_count_ = 0;
  cells_[0].clear();
  row_open_ = false;
  row_bytes_ = 0;
  state_ = State::kCellStart;
  return status;
}

namespace {

// The offset of the first byte in [begin, end) that `special` marks, or
// end - begin. The parser spends almost all its time skipping ordinary cell
// bytes, so this compares 16 bytes at a time against the four bytes that
// matter outside quotes.
size_t FindSpecial(const char* begin, const char* end, char delimiter,
                   const std::array<bool, 256>& special) {
  const char* p = begin;
#if defined(__SSE2__)
  const __m128i n_delimiter = _mm_set1_epi8(delimiter);
  const __m128i n_quote = _mm_set1_epi8('"');
  const __m128i n_cr = _mm_set1_epi8('\r');
  const __m128i n_lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, n_delimiter),
                     _mm_cmpeq_epi8(v, n_quote)),
        _mm_or_si128(_mm_cmpeq_epi8(v, n_cr), _mm_cmpeq_epi8(v, n_lf)));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return static_cast<size_t>(p - begin) + __builtin_ctz(mask);
    p += 16;
  }
#else
  (void)delimiter;
#endif
  while (p < end && !special[static_cast<unsigned char>(*p)]) ++p;
  return static_cast<size_t>(p - begin);
}

}  // namespace

Status StrictCsvParser::Feed(std::string_view bytes,
                             const RowCallback& on_row) {
  const char* const data = bytes.data();
  const size_t size = bytes.size();
  size_t i = 0;
  while (i < size) {
    // Fast path: a run of ordinary bytes inside a cell is copied as a whole.
    // It stops at the row limit, so the byte that exceeds it still goes
    // through the per-byte path below and gets the same error and offset.
    if (state_ == State::kCellStart || state_ == State::kUnquoted ||
        state_ == State::kQuoted) {
      const size_t limit = std::min(size, i + (max_row_bytes_ - row_bytes_));
      size_t run;
      if (state_ == State::kQuoted) {
        // Inside quotes only '"' ends the run.
        const void* quote = std::memchr(data + i, '"', limit - i);
        run = quote == nullptr
                  ? limit - i
                  : static_cast<size_t>(static_cast<const char*>(quote) -
                                        (data + i));
      } else {
        run = FindSpecial(data + i, data + limit, delimiter_, special_);
      }
      if (run > 0) {
        cells_[cell_count_].append(data + i, run);
        if (state_ == State::kCellStart) state_ = State::kUnquoted;
        row_open_ = true;
        row_bytes_ += run;
        offset_ += run;
        i += run;
        if (i == size) break;
      }
    }
    CBPIPE_RETURN_IF_ERROR(FeedByte(data[i], on_row));
    ++i;
    ++offset_;
  }
  return OkStatus();
}

Status StrictCsvParser::FeedByte(char c, const RowCallback& on_row) {
  row_open_ = true;
  if (++row_bytes_ > max_row_bytes_) {
    return Error("row longer than " + std::to_string(max_row_bytes_) +
                 " bytes");
  }
  std::string& cell = cells_[cell_count_];
  switch (state_) {
    case State::kAfterCr:
      if (c != '\n') return Error("CR not followed by LF");
      return EndRow(on_row);
    case State::kQuoted:
      if (c == '"') {
        state_ = State::kQuoteInQuoted;
      } else {
        cell.push_back(c);
      }
      return OkStatus();
    case State::kQuoteInQuoted:
      if (c == '"') {
        cell.push_back('"');
        state_ = State::kQuoted;
        return OkStatus();
      }
      if (c != delimiter_ && c != '\r' && c != '\n') {
        return Error("character after a closing quote");
      }
      break;  // delimiter or line ending: handled below
    case State::kCellStart:
      if (c == '"') {
        state_ = State::kQuoted;
        return OkStatus();
      }
      break;
    case State::kUnquoted:
      if (c == '"') return Error("quote inside an unquoted cell");
      break;
  }
  // Outside quotes.
  if (c == delimiter_) {
    EndCell();
    state_ = State::kCellStart;
  } else if (c == '\r') {
    if (!crlf_) return Error("CR outside quotes (line ending is LF)");
    state_ = State::kAfterCr;
  } else if (c == '\n') {
    if (crlf_) return Error("LF without CR (line ending is CRLF)");
    return EndRow(on_row);
  } else {
    cell.push_back(c);
    state_ = State::kUnquoted;
  }
  return OkStatus();
}

Status StrictCsvParser::Finish() const {
  if (state_ == State::kQuoted) return Error("quote not closed at end of file");
  if (row_open_) return Error("last row has no line ending");
  return OkStatus();
}

}  // namespace cbpipe
