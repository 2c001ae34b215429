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
  views_.assign(cells_.begin(), cells_.begin() + cell_count_);
  Status status = on_row(rows_, views_);
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

// A bit per byte of the 64 at `p` (at most `n` of them): set for the
// delimiter, a quote, CR and LF. One pass of compares per 64 bytes; the
// parser then visits only the set bits.
uint64_t SpecialMask(const char* p, size_t n, char delimiter,
                     const std::array<bool, 256>& special) {
#if defined(__SSE2__)
  (void)special;
  alignas(16) char tail[64];
  if (n < 64) {
    // Never read past the buffer: the last bytes are copied instead.
    std::memset(tail, 0, sizeof tail);
    std::memcpy(tail, p, n);
    p = tail;
  }
  const __m128i n_delimiter = _mm_set1_epi8(delimiter);
  const __m128i n_quote = _mm_set1_epi8('"');
  const __m128i n_cr = _mm_set1_epi8('\r');
  const __m128i n_lf = _mm_set1_epi8('\n');
  uint64_t mask = 0;
  for (int k = 0; k < 4; ++k) {
    const __m128i v =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
    const __m128i hit = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, n_delimiter), _mm_cmpeq_epi8(v, n_quote)),
        _mm_or_si128(_mm_cmpeq_epi8(v, n_cr), _mm_cmpeq_epi8(v, n_lf)));
    mask |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(hit)))
            << (16 * k);
  }
#else
  (void)delimiter;
  uint64_t mask = 0;
  for (size_t k = 0; k < std::min<size_t>(n, 64); ++k) {
    mask |= static_cast<uint64_t>(special[static_cast<unsigned char>(p[k])])
            << k;
  }
#endif
  // Bits past the end stand for no byte (the padding above is NUL, which a
  // delimiter could be).
  return n >= 64 ? mask : mask & ((uint64_t{1} << n) - 1);
}

}  // namespace

size_t StrictCsvParser::FeedRows(std::string_view bytes,
                                 const RowCallback& on_row, Status* status) {
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();
  // Each `return row - begin` hands the current row, from its first byte,
  // to the state machine: the row is not complete in these bytes, or it
  // has something the writer never writes, which the state machine then
  // reports with its row and byte.
  const char* row = begin;
  const char* cell = begin;  // the current cell's first byte
  bool quoted = false;       // the current cell opened with a quote
  bool in_quotes = false;
  bool doubled = false;            // ...and has a doubled quote
  const char* closed = nullptr;    // its closing quote, once read
  const char* cr = nullptr;        // a CR just read outside quotes
  size_t count = 0;                // cells of the current row so far
  if (views_.size() < 16) views_.resize(16);
  escaped_.clear();
  for (const char* base = begin; base < end; base += 64) {
    uint64_t bits = SpecialMask(base, static_cast<size_t>(end - base),
                                delimiter_, special_);
    while (bits != 0) {
      const char* const at = base + __builtin_ctzll(bits);
      bits &= bits - 1;
      const char c = *at;
      if (in_quotes) {
        // Only a quote matters: it closes the cell, or is the first of a
        // doubled quote when another follows at once.
        if (c == '"') {
          in_quotes = false;
          closed = at;
        }
        continue;
      }
      if (cr != nullptr) {
        // CR must be followed by LF, and that ends the row.
        if (c != '\n' || at != cr + 1) return static_cast<size_t>(row - begin);
      } else if (c == '"') {
        if (at == cell) {
          quoted = true;  // opening quote
        } else if (quoted && at == closed + 1) {
          doubled = true;  // the second of a doubled quote
        } else {
          return static_cast<size_t>(row - begin);  // quote in a cell
        }
        in_quotes = true;
        continue;
      } else {
        // The delimiter, CR or LF ends the cell; after a closing quote,
        // nothing may come before it.
        if (quoted && at != closed + 1) return static_cast<size_t>(row - begin);
        if (count == views_.size()) views_.resize(2 * count);
        if (!quoted) {
          views_[count] = std::string_view(cell, static_cast<size_t>(at - cell));
        } else if (!doubled) {
          views_[count] = std::string_view(
              cell + 1, static_cast<size_t>(closed - cell - 1));
        } else {
          // Unescaped aside; the view is made once the row is complete,
          // as unescaped_ may still grow and move its strings.
          const size_t k = escaped_.size();
          if (unescaped_.size() <= k) unescaped_.emplace_back();
          std::string& text = unescaped_[k];
          text.clear();
          for (const char* s = cell + 1; s < closed; ++s) {
            text.push_back(*s);
            if (*s == '"') ++s;  // the second of a doubled quote
          }
          escaped_.push_back(count);
        }
        ++count;
        quoted = false;
        doubled = false;
        if (c == delimiter_) {
          cell = at + 1;
          continue;
        }
        if (c == '\r') {
          if (!crlf_) return static_cast<size_t>(row - begin);
          cr = at;
          continue;
        }
        if (crlf_) return static_cast<size_t>(row - begin);  // LF without CR
      }
      // `at` is the LF that ends the row.
      const char* const row_end = at + 1;
      const size_t length = static_cast<size_t>(row_end - row);
      if (length > max_row_bytes_) return static_cast<size_t>(row - begin);
      for (size_t k = 0; k < escaped_.size(); ++k) {
        views_[escaped_[k]] = unescaped_[k];
      }
      ++rows_;
      offset_ += length;
      last_row_begin_ = row;
      last_row_end_ = row_end;
      *status = on_row(rows_, std::span<const std::string_view>(
                                  views_.data(), count));
      row = row_end;
      if (!status->ok()) return static_cast<size_t>(row - begin);
      cell = row_end;
      cr = nullptr;
      count = 0;
      escaped_.clear();
    }
  }
  return static_cast<size_t>(row - begin);
}

Status StrictCsvParser::Feed(std::string_view bytes,
                             const RowCallback& on_row) {
  const char* const data = bytes.data();
  const size_t size = bytes.size();
  size_t i = 0;
  while (i < size) {
    if (state_ == State::kCellStart && !row_open_) {
      Status status;
      i += FeedRows(bytes.substr(i), on_row, &status);
      CBPIPE_RETURN_IF_ERROR(status);
      if (i == size) break;
    }
    // The state machine, up to the end of the current row or of the bytes.
    const size_t start = i;
    bool row_done = false;
    while (i < size && !row_done) {
      // Fast path: a run of ordinary bytes inside a cell is copied as a
      // whole. It stops at the row limit, so the byte that exceeds it still
      // goes through the per-byte path below and gets the same error and
      // offset.
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
      const uint64_t rows_before = rows_;
      Status status = FeedByte(data[i], on_row);
      ++i;
      ++offset_;
      CBPIPE_RETURN_IF_ERROR(status);
      if (rows_ != rows_before) {
        // The row is complete: its bytes are kept for LastRowCells.
        row_done = true;
        row_bytes_copy_.append(data + start, i - start);
        last_row_.swap(row_bytes_copy_);
        row_bytes_copy_.clear();
        last_row_begin_ = nullptr;
      }
    }
    if (!row_done) row_bytes_copy_.append(data + start, i - start);
  }
  if (last_row_begin_ != nullptr) {
    last_row_.assign(last_row_begin_, last_row_end_);
    last_row_begin_ = nullptr;
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

std::vector<std::string> StrictCsvParser::LastRowCells() const {
  std::vector<std::string> cells;
  StrictCsvParser again(delimiter_, crlf_ ? "\r\n" : "\n", max_row_bytes_);
  // The bytes were accepted once already, so this cannot fail.
  (void)again.Feed(last_row_,
                   [&cells](uint64_t, std::span<const std::string_view> row) {
                     cells.assign(row.begin(), row.end());
                     return OkStatus();
                   });
  return cells;
}

}  // namespace cbpipe
