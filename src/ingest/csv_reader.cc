// RFC 4180 CSV, parsed in place from the input window.
//
// A row is parsed from its first byte each time it is attempted: when the
// window ends inside it, the window is refilled and the row parsed again.
// That only happens once per read chunk, and keeps the state machine free of
// suspend/resume bookkeeping.
//
// Data rows take a fast path first (ParseRowFast): it finds cell ends and
// quotes 64 bytes at a time with SSE2 bitmasks and hands each plain cell to
// the record in one copy. It never reads past the window and gives up on
// anything it would have to wait for (the end of the window, a row that
// might continue), leaving that row to ParseRow, the reference: both must
// produce the same record for any row the fast path finishes.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "domain/pan.h"
#include "ingest/readers.h"

namespace cbpipe::ingest_internal {
namespace {

// First ',' or '\n' in [s, end), or `end`; eight bytes at a time, since
// unquoted cells are where a CSV reader spends its time.
inline const char* FindCellEnd(const char* s, const char* end) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  while (end - s >= 8) {
    uint64_t v;
    std::memcpy(&v, s, 8);
    const uint64_t comma = v ^ (kOnes * ',');
    const uint64_t newline = v ^ (kOnes * '\n');
    // A zero byte in either marks a hit; the lowest flagged byte is exact.
    const uint64_t hits = ((comma - kOnes) & ~comma & kHighs) |
                          ((newline - kOnes) & ~newline & kHighs);
    if (hits != 0) {
      if constexpr (std::endian::native == std::endian::little) {
        return s + (std::countr_zero(hits) >> 3);
      }
      break;
    }
    s += 8;
  }
  while (s != end && *s != ',' && *s != '\n') ++s;
  return s;
}

// kFallback: ParseRowFast left the row to ParseRow.
enum class RowStatus { kDone, kNeedMore, kUnterminatedQuote, kFallback };

struct RowEnd {
  const char* next = nullptr;  // first byte after the row and its newline
  size_t cells = 0;
  uint64_t newlines = 0;        // inside quoted cells
  uint64_t quote_newlines = 0;  // newlines before an unterminated quote
};

// Splits the row starting at `p` into cells, handing each to `sink` as
// Begin(col), Append(bytes)..., End(). With `eof` false, a row that might
// continue past `end` yields kNeedMore.
template <typename Sink>
RowStatus ParseRow(const char* p, const char* end, bool eof, Sink& sink,
                   RowEnd* out) {
  size_t col = 0;
  uint64_t newlines = 0;
  while (true) {
    sink.Begin(col);
    if (p == end) {
      if (!eof) return RowStatus::kNeedMore;
      sink.End();
      out->next = end;
      break;
    }
    if (*p == '"') {
      const uint64_t quote_newlines = newlines;
      ++p;
      while (true) {
        const char* q = static_cast<const char*>(std::memchr(p, '"', end - p));
        if (q == nullptr) {
          if (!eof) return RowStatus::kNeedMore;
          out->quote_newlines = quote_newlines;
          return RowStatus::kUnterminatedQuote;
        }
        newlines += std::count(p, q, '\n');
        sink.Append(p, q - p);
        if (q + 1 == end) {
          // Closing quote, or the first of a doubled one: the next byte says.
          if (!eof) return RowStatus::kNeedMore;
          p = end;
          break;
        }
        if (q[1] == '"') {
          sink.Append(q, 1);
          p = q + 2;
          continue;
        }
        p = q + 1;
        break;
      }
      if (p == end) {
        sink.End();
        out->next = end;
        break;
      }
      if (*p == ',') {
        sink.End();
        ++p;
        ++col;
        continue;
      }
      if (*p == '\n') {
        sink.End();
        out->next = p + 1;
        break;
      }
      if (*p == '\r') {
        if (p + 1 == end) {
          if (!eof) return RowStatus::kNeedMore;
          sink.End();
          out->next = end;
          break;
        }
        if (p[1] == '\n') {
          sink.End();
          out->next = p + 2;
          break;
        }
      }
      // Text after the closing quote ("ab"cd): keep the row in step by
      // reading the rest as unquoted text, but flag the record.
      sink.StrayAfterQuote();
    }
    const char* s = FindCellEnd(p, end);
    if (s == end && !eof) return RowStatus::kNeedMore;
    const char* cell_end = s;
    if (cell_end != p && cell_end[-1] == '\r' && (s == end || *s == '\n')) {
      --cell_end;  // CRLF
    }
    sink.Append(p, cell_end - p);
    sink.End();
    if (s == end) {
      out->next = end;
      break;
    }
    if (*s == ',') {
      p = s + 1;
      ++col;
      continue;
    }
    out->next = s + 1;
    break;
  }
  out->cells = col + 1;
  out->newlines = newlines;
  return RowStatus::kDone;
}

// Where the cell separators (',' and '\n') and the quotes are in a 64-byte
// block, one bit per byte, so the parser jumps from one to the next instead
// of testing bytes. Blocks are loaded at any position, never past `end`.
class BlockScanner {
 public:
  // Requires end - start >= kBlock.
  BlockScanner(const char* start, const char* end) : last_(end - kBlock) {
    Load(start);
  }

  // First ',' or '\n' at or after `x`; nullptr when finding it would mean
  // looking at the last bytes of the window, which are left to ParseRow.
  const char* FindSeparator(const char* x) { return Find<false>(x, nullptr); }
  // First '"' at or after `x`, as above. Sets *separators when a ',' or
  // '\n' lies in [x, result): the caller counts newlines only then.
  const char* FindQuote(const char* x, bool* separators) {
    return Find<true>(x, separators);
  }

  static constexpr size_t kBlock = 64;

 private:
  template <bool kQuote>
  const char* Find(const char* x, bool* separators) {
    while (true) {
      const size_t off = static_cast<size_t>(x - base_);
      if (off < kBlock) {
        const uint64_t m = (kQuote ? quote_ : sep_) >> off;
        if (m != 0) {
          const int k = std::countr_zero(m);
          if (kQuote && ((sep_ >> off) & ((uint64_t{1} << k) - 1)) != 0) {
            *separators = true;
          }
          return x + k;
        }
        if (kQuote && (sep_ >> off) != 0) *separators = true;
        x = base_ + kBlock;
      }
      if (x > last_) return nullptr;
      Load(x);
    }
  }

  void Load(const char* p) {
    base_ = p;
#if defined(__SSE2__)
    const __m128i comma = _mm_set1_epi8(',');
    const __m128i newline = _mm_set1_epi8('\n');
    const __m128i quote = _mm_set1_epi8('"');
    uint64_t sep = 0;
    uint64_t quotes = 0;
    for (int i = 0; i < 4; ++i) {
      const __m128i v =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
      const __m128i s =
          _mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, newline));
      sep |= static_cast<uint64_t>(static_cast<uint16_t>(_mm_movemask_epi8(s)))
             << (16 * i);
      quotes |= static_cast<uint64_t>(static_cast<uint16_t>(
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote))))
                << (16 * i);
    }
    sep_ = sep;
    quote_ = quotes;
#else
    uint64_t sep = 0;
    uint64_t quotes = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      sep |= static_cast<uint64_t>(p[i] == ',' || p[i] == '\n') << i;
      quotes |= static_cast<uint64_t>(p[i] == '"') << i;
    }
    sep_ = sep;
    quote_ = quotes;
#endif
  }

  const char* last_;  // the last position a block may start at
  const char* base_ = nullptr;
  uint64_t sep_ = 0;
  uint64_t quote_ = 0;
};

// ParseRow for a row that does not touch the last bytes of the window:
// same cells, same calls on `sink` in the same order, or kFallback (the
// sink may then hold part of the row and must be started afresh). A plain
// cell reaches the sink as one Cell(col, bytes) call. Never returns
// kNeedMore or kUnterminatedQuote: those need the end of the window.
template <typename Sink>
RowStatus ParseRowFast(const char* p, const char* end, Sink& sink,
                       RowEnd* out) {
  if (static_cast<size_t>(end - p) < BlockScanner::kBlock) {
    return RowStatus::kFallback;
  }
  BlockScanner scan(p, end);
  size_t col = 0;
  uint64_t newlines = 0;
  while (true) {
    if (p == end) return RowStatus::kFallback;
    bool stray = false;
    if (*p == '"') {
      sink.Begin(col);
      ++p;
      while (true) {
        bool separators = false;
        const char* q = scan.FindQuote(p, &separators);
        // q + 1 must be inside the window: it says whether the quote closes.
        if (q == nullptr || end - q < 2) return RowStatus::kFallback;
        if (separators) newlines += std::count(p, q, '\n');
        sink.Append(p, q - p);
        if (q[1] == '"') {
          sink.Append(q, 1);
          p = q + 2;
          continue;
        }
        p = q + 1;
        break;
      }
      // p < end: the quote was not the window's last byte.
      if (*p == ',') {
        sink.End();
        ++p;
        ++col;
        continue;
      }
      if (*p == '\n') {
        sink.End();
        out->next = p + 1;
        break;
      }
      if (*p == '\r') {
        if (p + 1 == end) return RowStatus::kFallback;
        if (p[1] == '\n') {
          sink.End();
          out->next = p + 2;
          break;
        }
      }
      // Text after the closing quote: as in ParseRow, the rest of the cell
      // is read as unquoted text into the same cell.
      sink.StrayAfterQuote();
      stray = true;
    }
    const char* s = scan.FindSeparator(p);
    if (s == nullptr) return RowStatus::kFallback;
    const char* cell_end = s;
    if (cell_end != p && cell_end[-1] == '\r' && *s == '\n') {
      --cell_end;  // CRLF
    }
    if (stray) {
      sink.Append(p, cell_end - p);
      sink.End();
    } else {
      sink.Cell(col, p, cell_end - p);
    }
    if (*s == ',') {
      p = s + 1;
      ++col;
      continue;
    }
    out->next = s + 1;
    break;
  }
  out->cells = col + 1;
  out->newlines = newlines;
  return RowStatus::kDone;
}

struct Column {
  std::string name;  // as written, trimmed
  int field = -1;    // index into RawRecord::values, or -1
  bool sensitive = false;
};

// Collects header names, keeping at most `max_columns` of them.
class HeaderSink {
 public:
  HeaderSink(std::vector<std::string>* names, size_t max_columns,
             size_t max_name_bytes)
      : names_(names), max_columns_(max_columns), max_name_(max_name_bytes) {}
  void Begin(size_t col) {
    current_ = nullptr;
    if (col < max_columns_) {
      names_->emplace_back();
      current_ = &names_->back();
    }
  }
  void Append(const char* p, size_t n) {
    if (current_ != nullptr && current_->size() + n <= max_name_) {
      current_->append(p, n);
    }
  }
  void End() {}
  void StrayAfterQuote() {}

 private:
  std::vector<std::string>* names_;
  size_t max_columns_;
  size_t max_name_;
  std::string* current_ = nullptr;
};

// Writes cells straight into the record's reused strings.
class RowSink {
 public:
  RowSink(RawRecord* rec, const std::vector<Column>& columns,
          size_t max_field_bytes)
      : rec_(rec),
        columns_(columns),
        max_field_(max_field_bytes),
        column_data_(columns.data()),
        num_columns_(columns.size()),
        values_(rec->values.data()),
        present_(rec->present.data()) {}
  void Begin(size_t col) {
    col_ = col;
    len_ = 0;
    target_ = nullptr;
    sensitive_ = false;
    if (col < columns_.size()) {
      const Column& c = columns_[col];
      if (c.field >= 0) {
        target_ = &rec_->values[c.field];
        target_->clear();
      }
      sensitive_ = c.sensitive;
    }
  }
  void Append(const char* p, size_t n) {
    len_ += n;
    if (target_ != nullptr && len_ <= max_field_) target_->append(p, n);
  }
  void End() {
    if (target_ != nullptr) rec_->present[columns_[col_].field] = true;
    if (len_ > max_field_ || (sensitive_ && len_ > 0)) [[unlikely]] {
      EndUnusual();
    }
  }
  void StrayAfterQuote() { Flag("text after a closing quote"); }
  // Begin(col), Append(p, n), End() in one step, for a cell read whole: one
  // copy into the record, and no sink state written unless the cell needs
  // EndUnusual.
  void Cell(size_t col, const char* p, size_t n) {
    if (col < num_columns_) [[likely]] {
      const Column& c = column_data_[col];
      if (c.field >= 0) {
        std::string& v = values_[c.field];
        v.clear();
        present_[c.field] = true;
        if (n <= max_field_) [[likely]] {
          v.append(p, n);
          return;
        }
      } else if (!c.sensitive || n == 0) {
        if (n <= max_field_) return;
      }
    } else if (n <= max_field_) {
      return;
    }
    CellUnusual(col, n);
  }

 private:
  // End() for a Cell() that is too long or sensitive; the target was
  // cleared already.
  [[gnu::noinline]] void CellUnusual(size_t col, size_t n) {
    col_ = col;
    len_ = n;
    target_ = nullptr;
    sensitive_ = false;
    if (col < num_columns_) {
      const Column& c = column_data_[col];
      if (c.field >= 0) target_ = &values_[c.field];
      sensitive_ = c.sensitive;
    }
    EndUnusual();
  }
  [[gnu::noinline]] void EndUnusual() {
    if (len_ > max_field_) {
      if (target_ != nullptr) target_->clear();
      Flag("field longer than max_field_bytes (" + std::to_string(len_) +
           " > " + std::to_string(max_field_) + " bytes)");
    }
    // Only the column name travels on; the value stays in the input window.
    if (sensitive_ && len_ > 0) {
      rec_->sensitive_fields.push_back(columns_[col_].name);
    }
  }
  [[gnu::noinline]] void Flag(std::string message) {
    if (!rec_->malformed.empty()) return;
    rec_->malformed = std::move(message);
    if (col_ >= columns_.size()) {
      // A cell beyond the header: the row is reported for its cell count.
      rec_->malformed_field.clear();
      return;
    }
    const Column& c = columns_[col_];
    rec_->malformed_field =
        c.field >= 0 ? std::string(FieldName(static_cast<Field>(c.field)))
                     : c.name;
    // A column name may be a card number (domain/pan.h).
    MaskCardNumbersInPlace(&rec_->malformed_field);
  }

  RawRecord* rec_;
  const std::vector<Column>& columns_;
  size_t max_field_;
  // The same as columns_ and rec_'s arrays, loaded once for Cell().
  const Column* column_data_;
  size_t num_columns_;
  std::string* values_;
  bool* present_;
  size_t col_ = 0;
  size_t len_ = 0;
  std::string* target_ = nullptr;
  bool sensitive_ = false;
};

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

// Tests turn the fast path off to check it against ParseRow.
bool csv_fast_path = true;

class CsvReader final : public RecordReader {
 public:
  CsvReader(std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
            const ReaderLimits& limits)
      : in_(std::move(in)),
        mapping_(mapping),
        limits_(limits),
        fast_path_(csv_fast_path) {}

  Status ReadHeader();
  StatusOr<bool> Next(RawRecord* out) override;
  InputFormat format() const override { return InputFormat::kCsv; }
  uint64_t bytes_read() const override { return in_->consumed(); }

 private:
  // Skips an empty line at the window start. Returns true when it did;
  // may refill the window to see a whole "\r\n".
  StatusOr<bool> SkipBlankLine();
  Status LineError(uint64_t line, const std::string& what) const {
    return InvalidArgumentError(in_->name() + ": line " + std::to_string(line) +
                                ": " + what);
  }
  Status TooLong(uint64_t line) const {
    return ResourceExhaustedError(
        in_->name() + ": line " + std::to_string(line) +
        ": record longer than max_record_bytes (" +
        std::to_string(limits_.max_record_bytes) + ")");
  }

  std::unique_ptr<InputBuffer> in_;
  FieldMapping mapping_;
  ReaderLimits limits_;
  std::vector<Column> columns_;
  uint64_t line_ = 1;  // line where the next row starts
  bool fast_path_;
};

StatusOr<bool> CsvReader::SkipBlankLine() {
  while (true) {
    const char* p = in_->begin();
    const char* end = in_->end();
    if (p == end) return false;
    if (*p == '\n') {
      in_->Consume(1);
      ++line_;
      return true;
    }
    if (*p != '\r') return false;
    if (p + 1 == end) {
      if (in_->eof()) {
        in_->Consume(1);
        return true;
      }
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    if (p[1] != '\n') return false;
    in_->Consume(2);
    ++line_;
    return true;
  }
}

Status CsvReader::ReadHeader() {
  std::vector<std::string> names;
  RowEnd row;
  while (true) {
    CBPIPE_ASSIGN_OR_RETURN(bool skipped, SkipBlankLine());
    if (skipped) continue;
    if (in_->size() == 0) {
      if (in_->eof()) return LineError(line_, "CSV input has no header row");
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    names.clear();
    HeaderSink sink(&names, limits_.max_columns, limits_.max_field_bytes);
    RowStatus st = ParseRow(in_->begin(), in_->end(), in_->eof(), sink, &row);
    if (st == RowStatus::kNeedMore) {
      if (in_->size() > limits_.max_record_bytes) return TooLong(line_);
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    if (st == RowStatus::kUnterminatedQuote) {
      return LineError(line_ + row.quote_newlines,
                       "unterminated quoted field starts here");
    }
    break;
  }
  if (static_cast<size_t>(row.next - in_->begin()) > limits_.max_record_bytes) {
    return TooLong(line_);
  }
  if (row.cells > limits_.max_columns) {
    return ResourceExhaustedError(
        in_->name() + ": line " + std::to_string(line_) + ": header has " +
        std::to_string(row.cells) + " columns, more than max_columns (" +
        std::to_string(limits_.max_columns) + ")");
  }
  columns_.resize(names.size());
  std::array<int, kFieldCount> column_of;
  column_of.fill(-1);
  bool any_known = false;
  for (size_t i = 0; i < names.size(); ++i) {
    Column& c = columns_[i];
    c.name = std::string(TrimSpaces(names[i]));
    c.sensitive = IsSensitiveFieldName(c.name);
    any_known = any_known || c.sensitive;
    if (c.sensitive) continue;
    std::optional<Field> field = mapping_.Lookup(c.name);
    if (!field) continue;
    any_known = true;
    const int f = static_cast<int>(*field);
    if (column_of[f] >= 0) {
      return LineError(line_, "columns \"" + columns_[column_of[f]].name +
                                  "\" and \"" + c.name +
                                  "\" both map to field " +
                                  std::string(FieldName(*field)));
    }
    column_of[f] = static_cast<int>(i);
    c.field = f;
  }
  // Without this, a file whose header row is missing would be read with its
  // first record as column names and every row rejected one by one.
  if (!any_known) {
    return LineError(line_,
                     "CSV header names no known column (is the header row "
                     "missing?)");
  }
  line_ += row.newlines + 1;
  in_->ConsumeTo(row.next);
  return OkStatus();
}

StatusOr<bool> CsvReader::Next(RawRecord* out) {
  while (true) {
    if (in_->size() == 0) {
      if (in_->eof()) return false;
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    CBPIPE_ASSIGN_OR_RETURN(bool skipped, SkipBlankLine());
    if (skipped || in_->size() == 0) continue;

    out->Clear();
    out->position = line_;
    RowEnd row;
    RowStatus st = RowStatus::kFallback;
    if (fast_path_) {
      RowSink sink(out, columns_, limits_.max_field_bytes);
      st = ParseRowFast(in_->begin(), in_->end(), sink, &row);
      if (st == RowStatus::kFallback) {
        out->Clear();  // the fast path may have filled part of the row
        out->position = line_;
        row = RowEnd();
      }
    }
    if (st == RowStatus::kFallback) {
      RowSink sink(out, columns_, limits_.max_field_bytes);
      st = ParseRow(in_->begin(), in_->end(), in_->eof(), sink, &row);
    }
    if (st == RowStatus::kNeedMore) {
      if (in_->size() > limits_.max_record_bytes) return TooLong(line_);
      CBPIPE_ASSIGN_OR_RETURN(bool more, in_->Fill());
      (void)more;
      continue;
    }
    if (st == RowStatus::kUnterminatedQuote) {
      return LineError(line_ + row.quote_newlines,
                       "unterminated quoted field starts here");
    }
    if (static_cast<size_t>(row.next - in_->begin()) >
        limits_.max_record_bytes) {
      return TooLong(line_);
    }
    if (row.cells != columns_.size()) {
      // The cell count says more about the row than any one cell does.
      out->malformed = "expected " + std::to_string(columns_.size()) +
                       " cells, got " + std::to_string(row.cells);
      out->malformed_field.clear();
    }
    line_ += row.newlines + 1;
    in_->ConsumeTo(row.next);
    return true;
  }
}

}  // namespace

void SetCsvFastPathForTest(bool enabled) { csv_fast_path = enabled; }

StatusOr<std::unique_ptr<RecordReader>> MakeCsvReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits) {
  auto reader = std::make_unique<CsvReader>(std::move(in), mapping, limits);
  CBPIPE_RETURN_IF_ERROR(reader->ReadHeader());
  return std::unique_ptr<RecordReader>(std::move(reader));
}

}  // namespace cbpipe::ingest_internal
