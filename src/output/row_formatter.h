// CSV rows for one layout: header, records and trailer, RFC 4180 quoted and
// protected against spreadsheet formula injection (docs/layouts.md).
//
//   RowFormatter formatter(layout);   // layout passed ValidateLayout
//   std::string row;                  // reused: no allocation per record
//   row.clear();
//   formatter.AppendRecord(record, &row);
//
// This is the hot path of the pipeline: nothing here allocates once the
// buffers have grown, and nothing goes through iostreams.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "domain/record.h"
#include "output/layout.h"

namespace cbpipe {

// True when a spreadsheet would read `cell` as a formula or a control
// character: it starts with '=', '+', '-', '@', TAB or CR (OWASP "CSV
// injection"). Such a cell is written with a leading apostrophe, quoted.
bool NeedsFormulaGuard(std::string_view cell);

// Appends `cell` to `out` as one CSV cell: quoted when `always_quote`, when
// it contains the delimiter, '"', CR or LF, and when it needs the formula
// guard (then prefixed with '\''); quotes inside are doubled.
void AppendCsvCell(std::string_view cell, char delimiter, bool always_quote,
                   std::string* out);

// Hot-path equivalents of FormatAmount and FormatDateTime that append to a
// caller's buffer instead of returning a new string.
void AppendAmountDecimal(int64_t minor, int exponent, std::string* out);
void AppendDate(const DateTime& value, std::string_view pattern,
                std::string* out);

// Per-currency running totals of one file, in integer minor units. Adding
// refuses (and changes nothing) when a total would overflow int64.
//
// Every record looks its currency up (up to three times: does it fit, may it
// be added, add it), so the totals are a small sorted vector searched by a
// packed key rather than a std::map compared string by string: a file holds
// a handful of currencies, and a linear scan over a few integers is cheaper
// than a tree walk of string compares.
class CurrencyTotals {
 public:
  struct Entry {
    int64_t minor = 0;
    int exponent = 2;
  };
  // False on int64 overflow; the totals are then unchanged.
  bool Add(std::string_view currency, int exponent, int64_t minor);
  bool CanAdd(std::string_view currency, int64_t minor) const;
  // Ordered by currency code, which makes the trailer deterministic.
  const std::vector<std::pair<std::string, Entry>>& entries() const {
    return entries_;
  }
  std::map<std::string, int64_t> MinorByCurrency() const;
  bool empty() const { return entries_.empty(); }

 private:
  // Index into entries_, or -1.
  int Find(std::string_view currency) const;

  std::vector<std::pair<std::string, Entry>> entries_;  // by code
  // Per entry, the code packed into an integer (see row_formatter.cc), so
  // that a lookup compares one word per currency.
  std::vector<uint64_t> keys_;
  // A direct-mapped table from a packed code's hash to its index, so that
  // a record's currency is found without scanning (the scan's exit is
  // unpredictable). A code sharing its slot with an earlier one, and a
  // code not in the totals, are looked for by the scan. Rebuilt when a
  // currency is added, which moves the indexes after it.
  static constexpr int kSlots = 64;
  static constexpr std::array<uint64_t, kSlots> EmptySlots() {
    std::array<uint64_t, kSlots> slots{};
    for (uint64_t& key : slots) key = ~uint64_t{0};  // never a packed code
    return slots;
  }
  static int SlotOf(uint64_t key);
  std::array<uint64_t, kSlots> slot_keys_ = EmptySlots();
  std::array<int, kSlots> slot_indexes_{};
};

// The first cell of a count_and_total trailer row.
inline constexpr std::string_view kTrailerTag = "TRAILER";

class RowFormatter {
 public:
  // `layout` must have passed ValidateLayout; it is copied.
  explicit RowFormatter(Layout layout);

  const Layout& layout() const { return layout_; }

  // Each appends one whole row, line ending included, to `out`.
  void AppendHeader(std::string* out) const;
  void AppendRecord(const Record& record, std::string* out);
  // The count_and_total trailer: TRAILER, the record count, the totals as
  // "EUR=10.00;USD=12.50" (by currency code, decimal with each currency's
  // exponent; empty when there are no records), then empty cells up to the
  // layout's column count. When `extra` is given, the trailer is the one
  // the file would have after also adding that record (count + 1, its
  // amount in its currency's total); the caller checks overflow first.
  void AppendTrailer(uint64_t count, const CurrencyTotals& totals,
                     const Record* extra, std::string* out);

  // Formats `record`'s row, line ending included, into `storage` from its
  // start and returns it; the same bytes as AppendRecord. `storage` is only
  // used as memory: its size may end up larger than the row, so that a
  // buffer reused for every record is never zero-filled again.
  std::string_view FormatRecord(const Record& record, std::string* storage);

  // Byte size of the header row (0 without header).
  size_t header_size() const { return header_size_; }
  // At least the size of the trailer of a file holding just `record`.
  size_t SingleRecordTrailerBound(const Record& record) const;

 private:
  // Date patterns the built-in layouts use, written without interpreting
  // the pattern for every record.
  enum class DateShape : uint8_t { kGeneric, kCompact, kDashed };

  // One column compiled once per layout into what the record path needs:
  // no per-record look at the column's format, pattern or constant, and the
  // cells that cannot depend on the record (constants, the network and the
  // stage, which are enums) are kept already quoted and escaped.
  struct ColumnOp {
    enum class Kind : uint8_t {
      kLiteral,        // `cells[0]` as is
      kEnum,           // `cells[network or stage]`
      kText,           // a text field, escaped
      kTextUpper,      // a text field, upper-cased, escaped
      kTextLower,      // a text field, lower-cased, escaped
      kDateFast,       // %Y%m%d or %Y-%m-%d, escaped only when needed
      kDateGeneric,    // any other date pattern
      kDateIso,        // a date field written as text: ISO 8601
      kAmountDecimal,  // escaped only when needed
      kAmountMinor,    // escaped only when needed
    };
    Kind kind = Kind::kLiteral;
    Field field = Field::kCaseId;
    bool always_quote = false;
    // The cell of a date or amount needs no quotes: digits, '.' and '-' are
    // not the delimiter and the column is not always quoted. A leading '-'
    // (negative amount) is still guarded.
    bool plain_number = false;
    DateShape shape = DateShape::kGeneric;
    const std::string Record::*text = nullptr;  // kText*
    size_t column = 0;                          // index in layout_.columns
    std::vector<std::string> cells;             // kLiteral, kEnum
  };

  // Raw write cursor over a std::string (row_formatter.cc).
  class Sink;

  // Appends the cell of one column, quoted and escaped as needed.
  void AppendCell(const ColumnOp& op, const Record& record, Sink& sink);
  // Writes the row into `storage` from `at`; returns the row's end offset.
  size_t WriteRow(const Record& record, std::string* storage, size_t at);

  Layout layout_;
  std::vector<ColumnOp> ops_;  // per column
  size_t header_size_ = 0;
  std::string scratch_;  // one cell's unescaped text, reused
};

}  // namespace cbpipe
