// RFC 4180 CSV, parsed in place from the input window.
//
// A row is parsed from its first byte each time it is attempted: when the
// window ends inside it, the window is refilled and the row parsed again.
// That only happens once per read chunk, and keeps the state machine free of
// suspend/resume bookkeeping.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

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

enum class RowStatus { kDone, kNeedMore, kUnterminatedQuote };

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
      : rec_(rec), columns_(columns), max_field_(max_field_bytes) {}
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

 private:
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
  }

  RawRecord* rec_;
  const std::vector<Column>& columns_;
  size_t max_field_;
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

class CsvReader final : public RecordReader {
 public:
  CsvReader(std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
            const ReaderLimits& limits)
      : in_(std::move(in)), mapping_(mapping), limits_(limits) {}

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
    RowSink sink(out, columns_, limits_.max_field_bytes);
    RowEnd row;
    const RowStatus st =
        ParseRow(in_->begin(), in_->end(), in_->eof(), sink, &row);
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

StatusOr<std::unique_ptr<RecordReader>> MakeCsvReader(
    std::unique_ptr<InputBuffer> in, const FieldMapping& mapping,
    const ReaderLimits& limits) {
  auto reader = std::make_unique<CsvReader>(std::move(in), mapping, limits);
  CBPIPE_RETURN_IF_ERROR(reader->ReadHeader());
  return std::unique_ptr<RecordReader>(std::move(reader));
}

}  // namespace cbpipe::ingest_internal
