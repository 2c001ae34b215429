#include "output/row_formatter.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <utility>

namespace cbpipe {
namespace {

// Writes `value` zero-padded to at least `width` digits at `p`; returns the
// end. Formatting into a stack buffer and appending once is what keeps the
// row formatter fast: std::string::push_back per character costs a capacity
// check each time.
char* WritePadded(int64_t value, int width, char* p) {
  uint64_t magnitude = static_cast<uint64_t>(value);
  if (value < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  int length = 0;
  do {
    digits[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length < width) digits[length++] = '0';
  while (length > 0) *p++ = digits[--length];
  return p;
}

// "00".."99": two digits per division instead of one.
constexpr std::array<char, 200> kDigitPairs = [] {
  std::array<char, 200> pairs{};
  for (int i = 0; i < 100; ++i) {
    pairs[2 * i] = static_cast<char>('0' + i / 10);
    pairs[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return pairs;
}();

// Two digits of `value` (0..99) at `p`.
inline void WriteTwoDigits(unsigned value, char* p) {
  std::memcpy(p, &kDigitPairs[2 * value], 2);
}

// The decimal digits of `value`, zero-padded to at least `min_digits`,
// written backwards so that they end at `end`; returns where they start.
inline char* DigitsBefore(uint64_t value, int min_digits, char* end) {
  char* p = end;
  while (value >= 100) {
    p -= 2;
    WriteTwoDigits(static_cast<unsigned>(value % 100), p);
    value /= 100;
  }
  if (value >= 10) {
    p -= 2;
    WriteTwoDigits(static_cast<unsigned>(value), p);
  } else {
    *--p = static_cast<char>('0' + value);
  }
  while (end - p < min_digits) *--p = '0';
  return p;
}

// A decimal with `exponent` (0..18) decimals, as FormatAmount writes it, at
// `p`; at most 21 bytes (sign, 19 digits, point). Returns the end.
char* WriteAmountDecimal(int64_t minor, int exponent, char* p) {
  uint64_t magnitude = static_cast<uint64_t>(minor);
  if (minor < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  char* const end = digits + sizeof digits;
  const char* start = DigitsBefore(magnitude, exponent + 1, end);
  const size_t whole = static_cast<size_t>(end - start) - exponent;
  std::memcpy(p, start, whole);
  p += whole;
  if (exponent > 0) {
    *p++ = '.';
    std::memcpy(p, start + whole, exponent);
    p += exponent;
  }
  return p;
}

// std::to_chars's output for an int64, at `p`; at most 20 bytes.
char* WriteSigned(int64_t value, char* p) {
  uint64_t magnitude = static_cast<uint64_t>(value);
  if (value < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  char* const end = digits + sizeof digits;
  const char* start = DigitsBefore(magnitude, 1, end);
  const size_t length = static_cast<size_t>(end - start);
  std::memcpy(p, start, length);
  return p + length;
}

void AppendUnsigned(uint64_t value, std::string* out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;  // 24 bytes always hold a uint64
  out->append(buffer, end);
}

char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

// `text` through the case change a column's format asks for, as the
// record path has always applied it: upper, lower, or none.
std::string CaseChanged(std::string_view text, ColumnFormat format) {
  std::string out(text);
  for (char& c : out) {
    if (format == ColumnFormat::kUpper) c = AsciiUpper(c);
    if (format == ColumnFormat::kLower) c = AsciiLower(c);
  }
  return out;
}

bool IsDateField(Field field) {
  return field == Field::kTransactionDate || field == Field::kChargebackDate ||
         field == Field::kDueDate;
}

bool IsAmountField(Field field) {
  return field == Field::kAmount || field == Field::kTransactionAmount;
}

const DateTime* DateOf(Field field, const Record& record) {
  switch (field) {
    case Field::kTransactionDate: return &record.transaction_date;
    case Field::kChargebackDate: return &record.chargeback_date;
    case Field::kDueDate:
      return record.due_date.has_value() ? &*record.due_date : nullptr;
    default: return nullptr;
  }
}

const int64_t* AmountOf(Field field, const Record& record) {
  if (field == Field::kAmount) return &record.amount_minor;
  if (record.transaction_amount_minor.has_value()) {
    return &*record.transaction_amount_minor;
  }
  return nullptr;
}

// The validated text of a text field; empty for fields that are not text.
std::string_view TextOf(Field field, const Record& record) {
  switch (field) {
    case Field::kCaseId: return record.case_id;
    case Field::kNetwork: return NetworkName(record.network);
    case Field::kArn: return record.arn;
    case Field::kPan: return record.pan_masked;
    case Field::kMerchantId: return record.merchant_id;
    case Field::kCurrency: return record.currency;
    case Field::kReasonCode: return record.reason_code;
    case Field::kStage: return StageName(record.stage);
    case Field::kTransactionId: return record.transaction_id;
    case Field::kMerchantName: return record.merchant_name;
    case Field::kMcc: return record.mcc;
    case Field::kReasonText: return record.reason_text;
    case Field::kStatus: return record.status;
    default: return {};
  }
}

// The string member holding a text field; nullptr for the others.
const std::string Record::*TextMember(Field field) {
  switch (field) {
    case Field::kCaseId: return &Record::case_id;
    case Field::kArn: return &Record::arn;
    case Field::kPan: return &Record::pan_masked;
    case Field::kMerchantId: return &Record::merchant_id;
    case Field::kCurrency: return &Record::currency;
    case Field::kReasonCode: return &Record::reason_code;
    case Field::kTransactionId: return &Record::transaction_id;
    case Field::kMerchantName: return &Record::merchant_name;
    case Field::kMcc: return &Record::mcc;
    case Field::kReasonText: return &Record::reason_text;
    case Field::kStatus: return &Record::status;
    default: return nullptr;
  }
}

bool IsGuardChar(char c) {
  switch (c) {
    case '=':
    case '+':
    case '-':
    case '@':
    case '\t':
    case '\r': return true;
    default: return false;
  }
}

// Cells are scanned eight bytes at a time (SWAR) for the bytes that force
// quotes: a per-byte loop over every cell of every row was the formatter's
// biggest cost.
constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Non-zero when some byte of `v` is zero. Exact as a yes/no answer (a borrow
// can only mark bytes above a real zero byte).
inline uint64_t ZeroByte(uint64_t v) { return (v - kOnes) & ~v & kHighs; }

inline uint64_t Broadcast(char c) {
  return kOnes * static_cast<unsigned char>(c);
}

inline uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t Load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// True when `test` holds for some word covering the bytes of s[0, n). Words
// may overlap or repeat bytes, and short cells are padded with NUL bytes:
// every test here looks for bytes that are never NUL.
template <typename Test>
inline bool AnyWord(const char* s, size_t n, Test test) {
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      if (test(Load8(s + i))) return true;
    }
    return test(Load8(s + n - 8));
  }
  if (n >= 4) return test(Load4(s) | (Load4(s + n - 4) << 32));
  if (n == 0) return false;
  return test(static_cast<uint64_t>(static_cast<unsigned char>(s[0])) |
              static_cast<uint64_t>(static_cast<unsigned char>(s[n / 2])) << 8 |
              static_cast<uint64_t>(static_cast<unsigned char>(s[n - 1]))
                  << 16);
}

// Whether s[0, n) holds '"', CR, LF or the delimiter (`delimiters` is the
// delimiter in every byte; it is never NUL).
inline bool HasSpecial(const char* s, size_t n, uint64_t delimiters) {
  return AnyWord(s, n, [delimiters](uint64_t w) {
    return (ZeroByte(w ^ Broadcast('"')) | ZeroByte(w ^ Broadcast('\r')) |
            ZeroByte(w ^ Broadcast('\n')) | ZeroByte(w ^ delimiters)) != 0;
  });
}

inline bool HasQuote(const char* s, size_t n) {
  return AnyWord(s, n,
                 [](uint64_t w) { return ZeroByte(w ^ Broadcast('"')) != 0; });
}

inline void Store8(char* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline void Store4(char* p, uint32_t v) { std::memcpy(p, &v, 4); }

// Copies s[0, n) to `p` word by word unless `stop` holds for one of the
// words (then returns false, having written part of it: the caller writes
// over it). Scanning and copying in one pass spares a memcpy call per cell;
// words are gathered as AnyWord does.
template <typename Stop>
inline bool CopyUnless(const char* s, size_t n, char* p, Stop stop) {
  if (n >= 8) {
    size_t i = 0;
    for (; i + 8 < n; i += 8) {
      const uint64_t w = Load8(s + i);
      if (stop(w)) return false;
      Store8(p + i, w);
    }
    const uint64_t w = Load8(s + n - 8);
    if (stop(w)) return false;
    Store8(p + n - 8, w);
    return true;
  }
  if (n >= 4) {
    const uint32_t lo = static_cast<uint32_t>(Load4(s));
    const uint32_t hi = static_cast<uint32_t>(Load4(s + n - 4));
    if (stop(lo | static_cast<uint64_t>(hi) << 32)) return false;
    Store4(p, lo);
    Store4(p + n - 4, hi);
    return true;
  }
  if (n == 0) return true;
  // Positions 0, n / 2 and n - 1 cover every byte of 1 to 3.
  const char a = s[0], b = s[n / 2], c = s[n - 1];
  if (stop(static_cast<uint64_t>(static_cast<unsigned char>(a)) |
           static_cast<uint64_t>(static_cast<unsigned char>(b)) << 8 |
           static_cast<uint64_t>(static_cast<unsigned char>(c)) << 16)) {
    return false;
  }
  p[0] = a;
  p[n / 2] = b;
  p[n - 1] = c;
  return true;
}

// memcpy for the short, already escaped cells (constants, enum names).
inline void CopyShort(const char* s, size_t n, char* p) {
  CopyUnless(s, n, p, [](uint64_t) { return false; });
}

// AppendCsvCell into raw memory with room for 2 * n + 3 bytes (every byte a
// doubled quote, the apostrophe and the two quotes); returns the end.
inline char* WriteCell(const char* s, size_t n, uint64_t delimiters,
                       bool always_quote, char* p) {
  const bool guard = n > 0 && IsGuardChar(s[0]);
  if (!always_quote && !guard && CopyUnless(s, n, p, [delimiters](uint64_t w) {
        return (ZeroByte(w ^ Broadcast('"')) | ZeroByte(w ^ Broadcast('\r')) |
                ZeroByte(w ^ Broadcast('\n')) | ZeroByte(w ^ delimiters)) != 0;
      })) {
    return p + n;
  }
  *p++ = '"';
  if (guard) *p++ = '\'';
  if (CopyUnless(s, n, p, [](uint64_t w) {
        return ZeroByte(w ^ Broadcast('"')) != 0;
      })) {
    p += n;
  } else {
    for (size_t i = 0; i < n; ++i) {
      *p++ = s[i];
      if (s[i] == '"') *p++ = '"';
    }
  }
  *p++ = '"';
  return p;
}

// An absent value's cell; unlike std::string_view{} its data() is not null,
// so it can be given to memcpy.
constexpr std::string_view kEmpty = "";

// Room a cell of `n` unescaped bytes can take once escaped.
constexpr size_t EscapedBound(size_t n) { return 2 * n + 3; }

}  // namespace

// A write cursor into a std::string used as plain memory: the row is written
// through a pointer, with one capacity check per cell instead of one per
// append, and the string is resized (zero-filled) only when it must grow.
class RowFormatter::Sink {
 public:
  // Bytes always left free after the room a Reserve asked for, so that the
  // delimiter after a cell needs no check of its own.
  static constexpr size_t kSlack = 8;

  Sink(std::string* storage, size_t at) : storage_(storage) {
    base_ = storage->data();
    p_ = base_ + at;
    end_ = base_ + storage->size();
  }

  // Where to write at most `n` more bytes; Commit the new end after.
  [[gnu::always_inline]] char* Reserve(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n + kSlack) Grow(n + kSlack);
    return p_;
  }
  void Commit(char* p) { p_ = p; }
  // One byte after a reserved write, within its slack.
  void PutInSlack(char c) { *p_++ = c; }
  size_t offset() const { return static_cast<size_t>(p_ - base_); }

 private:
  [[gnu::noinline]] void Grow(size_t n) {
    const size_t used = offset();
    // Some slack, so that the next cells of the row fit without another
    // resize; a reused buffer keeps its size and soon never grows.
    storage_->resize(used + n + 512);
    base_ = storage_->data();
    p_ = base_ + used;
    end_ = base_ + storage_->size();
  }

  std::string* storage_;
  char* base_;
  char* p_;
  char* end_;
};

bool NeedsFormulaGuard(std::string_view cell) {
  return !cell.empty() && IsGuardChar(cell.front());
}

void AppendCsvCell(std::string_view cell, char delimiter, bool always_quote,
                   std::string* out) {
  const bool guard = NeedsFormulaGuard(cell);
  if (!always_quote && !guard &&
      !HasSpecial(cell.data(), cell.size(), Broadcast(delimiter))) {
    out->append(cell);
    return;
  }
  out->push_back('"');
  if (guard) out->push_back('\'');
  if (!HasQuote(cell.data(), cell.size())) {
    out->append(cell);
  } else {
    size_t start = 0;
    for (size_t i = 0; i < cell.size(); ++i) {
      if (cell[i] == '"') {
        out->append(cell.substr(start, i + 1 - start));  // through the quote
        out->push_back('"');
        start = i + 1;
      }
    }
    out->append(cell.substr(start));
  }
  out->push_back('"');
}

void AppendAmountDecimal(int64_t minor, int exponent, std::string* out) {
  // Same clamp as FormatAmount: an int64 has at most 19 digits.
  if (exponent < 0) exponent = 0;
  if (exponent > 18) exponent = 18;
  char buffer[32];
  out->append(buffer, WriteAmountDecimal(minor, exponent, buffer));
}

void AppendDate(const DateTime& value, std::string_view pattern,
                std::string* out) {
  // Mirrors FormatDateTime (domain/dates.h) directive for directive.
  char buffer[128];
  char* p = buffer;
  for (size_t i = 0; i < pattern.size(); ++i) {
    // Flush before a directive (at most 12 bytes) could overrun.
    if (p - buffer > static_cast<ptrdiff_t>(sizeof buffer) - 16) {
      out->append(buffer, p);
      p = buffer;
    }
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      *p++ = pattern[i];
      continue;
    }
    switch (pattern[++i]) {
      case 'Y': p = WritePadded(value.year, 4, p); break;
      case 'm': p = WritePadded(value.month, 2, p); break;
      case 'd': p = WritePadded(value.day, 2, p); break;
      case 'H': p = WritePadded(value.hour, 2, p); break;
      case 'M': p = WritePadded(value.minute, 2, p); break;
      case 'S': p = WritePadded(value.second, 2, p); break;
      case '%': *p++ = '%'; break;
      default: *p++ = '%'; *p++ = pattern[i];
    }
  }
  out->append(buffer, p);
}

namespace {

// A currency code of up to 7 bytes packed with its length into one word, so
// that equal words mean equal codes; longer codes (never valid ISO 4217,
// but the class takes any text) are compared as strings.
constexpr uint64_t kUnpacked = ~uint64_t{0};

uint64_t PackCode(std::string_view code) {
  if (code.size() > 7) return kUnpacked;
  uint64_t key = static_cast<uint64_t>(code.size()) << 56;
  for (size_t i = 0; i < code.size(); ++i) {
    key |= static_cast<uint64_t>(static_cast<unsigned char>(code[i]))
           << (8 * i);
  }
  return key;
}

}  // namespace

// Multiplicative hashing: the top bits of the product depend on every byte.
int CurrencyTotals::SlotOf(uint64_t key) {
  static_assert(kSlots == 64, "the shift keeps 6 bits");
  return static_cast<int>((key * 0x9E3779B97F4A7C15ull) >> 58);
}

int CurrencyTotals::Find(std::string_view currency) const {
  const uint64_t key = PackCode(currency);
  const size_t count = keys_.size();
  if (key != kUnpacked) {
    const int slot = SlotOf(key);
    if (slot_keys_[slot] == key) return slot_indexes_[slot];
    for (size_t i = 0; i < count; ++i) {
      if (keys_[i] == key) return static_cast<int>(i);
    }
    return -1;
  }
  for (size_t i = 0; i < count; ++i) {
    if (entries_[i].first == currency) return static_cast<int>(i);
  }
  return -1;
}

bool CurrencyTotals::CanAdd(std::string_view currency, int64_t minor) const {
  const int i = Find(currency);
  if (i < 0) return true;
  int64_t sum;
  return !__builtin_add_overflow(entries_[i].second.minor, minor, &sum);
}

bool CurrencyTotals::Add(std::string_view currency, int exponent,
                         int64_t minor) {
  const int i = Find(currency);
  if (i < 0) {
    // New currencies are rare (a few per file): keep the vector sorted
    // here rather than sorting for every trailer.
    auto at = std::lower_bound(entries_.begin(), entries_.end(), currency,
                               [](const auto& entry, std::string_view code) {
                                 return entry.first < code;
                               });
    const auto index = at - entries_.begin();
    entries_.insert(at, {std::string(currency), Entry{minor, exponent}});
    keys_.insert(keys_.begin() + index, PackCode(currency));
    // The indexes after `at` moved: the first code of each slot keeps it.
    slot_keys_ = EmptySlots();
    for (size_t k = 0; k < keys_.size(); ++k) {
      if (keys_[k] == kUnpacked) continue;
      const int slot = SlotOf(keys_[k]);
      if (slot_keys_[slot] != kUnpacked) continue;
      slot_keys_[slot] = keys_[k];
      slot_indexes_[slot] = static_cast<int>(k);
    }
    return true;
  }
  int64_t sum;
  if (__builtin_add_overflow(entries_[i].second.minor, minor, &sum)) {
    return false;
  }
  entries_[i].second.minor = sum;
  return true;
}

std::map<std::string, int64_t> CurrencyTotals::MinorByCurrency() const {
  std::map<std::string, int64_t> out;
  for (const auto& [code, entry] : entries_) out.emplace(code, entry.minor);
  return out;
}

RowFormatter::RowFormatter(Layout layout) : layout_(std::move(layout)) {
  const char delimiter = layout_.delimiter;
  // A date or amount cell holds only digits, '.' and '-'.
  const bool number_safe_delimiter = !(delimiter >= '0' && delimiter <= '9') &&
                                     delimiter != '.' && delimiter != '-';
  for (size_t i = 0; i < layout_.columns.size(); ++i) {
    const Column& column = layout_.columns[i];
    ColumnOp op;
    op.column = i;
    op.always_quote = column.always_quote;
    op.plain_number = number_safe_delimiter && !column.always_quote;
    if (column.date_pattern == "%Y%m%d") op.shape = DateShape::kCompact;
    if (column.date_pattern == "%Y-%m-%d") op.shape = DateShape::kDashed;
    auto escaped = [&](std::string_view text) {
      std::string cell;
      AppendCsvCell(text, delimiter, column.always_quote, &cell);
      return cell;
    };
    if (!column.field.has_value()) {
      // A constant is the same in every row: escaped once, here. Any format
      // but text lower-cases unless it is upper, as it always has.
      std::string text = column.constant;
      if (column.format != ColumnFormat::kText) {
        for (char& c : text) {
          c = column.format == ColumnFormat::kUpper ? AsciiUpper(c)
                                                    : AsciiLower(c);
        }
      }
      op.kind = ColumnOp::Kind::kLiteral;
      op.cells.push_back(escaped(text));
      ops_.push_back(std::move(op));
      continue;
    }
    const Field field = *column.field;
    op.field = field;
    if (IsDateField(field)) {
      if (column.format != ColumnFormat::kDate) {
        op.kind = ColumnOp::Kind::kDateIso;
      } else if (op.shape != DateShape::kGeneric) {
        op.kind = ColumnOp::Kind::kDateFast;
      } else {
        op.kind = ColumnOp::Kind::kDateGeneric;
      }
    } else if (IsAmountField(field)) {
      op.kind = column.format == ColumnFormat::kAmountMinor
                    ? ColumnOp::Kind::kAmountMinor
                    : ColumnOp::Kind::kAmountDecimal;
    } else if (field == Field::kNetwork || field == Field::kStage) {
      // Enums: one ready cell per value.
      op.kind = ColumnOp::Kind::kEnum;
      if (field == Field::kNetwork) {
        for (Network n : kAllNetworks) {
          op.cells.push_back(
              escaped(CaseChanged(NetworkName(n), column.format)));
        }
      } else {
        for (Stage s :
             {Stage::kRetrieval, Stage::kFirstChargeback, Stage::kRepresentment,
              Stage::kPreArbitration, Stage::kArbitration}) {
          op.cells.push_back(escaped(CaseChanged(StageName(s), column.format)));
        }
      }
    } else if (const std::string Record::*member = TextMember(field)) {
      op.text = member;
      op.kind =
          column.format == ColumnFormat::kUpper   ? ColumnOp::Kind::kTextUpper
          : column.format == ColumnFormat::kLower ? ColumnOp::Kind::kTextLower
                                                  : ColumnOp::Kind::kText;
    } else {
      // Not a field with text (none exists today): an empty cell, as
      // TextOf gives.
      op.kind = ColumnOp::Kind::kLiteral;
      op.cells.push_back(escaped(""));
    }
    ops_.push_back(std::move(op));
  }
  std::string header;
  AppendHeader(&header);
  header_size_ = header.size();
}

void RowFormatter::AppendHeader(std::string* out) const {
  if (!layout_.header) return;
  for (size_t i = 0; i < layout_.columns.size(); ++i) {
    if (i > 0) out->push_back(layout_.delimiter);
    AppendCsvCell(layout_.columns[i].header, layout_.delimiter,
                  /*always_quote=*/false, out);
  }
  out->append(layout_.line_ending);
}

size_t RowFormatter::SingleRecordTrailerBound(const Record& record) const {
  // "TRAILER", "1", "CUR=<at most 21 characters>", each quoted at worst
  // (and the totals guarded), the delimiters and the line ending.
  return kTrailerTag.size() + 2 + 3 + record.currency.size() + 1 + 21 + 3 +
         layout_.columns.size() + layout_.line_ending.size();
}

void RowFormatter::AppendCell(const ColumnOp& op, const Record& record,
                              Sink& sink) {
  const uint64_t delimiters = Broadcast(layout_.delimiter);
  // The escaped form of `text`, the slow but general way.
  auto append_text = [&](std::string_view text) {
    char* p = sink.Reserve(EscapedBound(text.size()));
    sink.Commit(
        WriteCell(text.data(), text.size(), delimiters, op.always_quote, p));
  };
  // A date or amount just written at [start, end): as it is when nothing in
  // it needs quotes (the usual case), else escaped in place.
  auto finish_number = [&](char* start, char* end) {
    if (op.plain_number && *start != '-') {
      sink.Commit(end);
      return;
    }
    char copy[64];
    const size_t n = static_cast<size_t>(end - start);
    std::memcpy(copy, start, n);
    sink.Commit(WriteCell(copy, n, delimiters, op.always_quote, start));
  };
  // Room for any number or fast date, escaped.
  constexpr size_t kNumberRoom = EscapedBound(24);

  switch (op.kind) {
    case ColumnOp::Kind::kLiteral: {
      const std::string& cell = op.cells[0];
      char* p = sink.Reserve(cell.size());
      CopyShort(cell.data(), cell.size(), p);
      sink.Commit(p + cell.size());
      return;
    }
    case ColumnOp::Kind::kEnum: {
      const size_t value = op.field == Field::kNetwork
                               ? static_cast<size_t>(record.network)
                               : static_cast<size_t>(record.stage);
      if (value < op.cells.size()) {
        const std::string& cell = op.cells[value];
        char* p = sink.Reserve(cell.size());
        CopyShort(cell.data(), cell.size(), p);
        sink.Commit(p + cell.size());
      } else {
        // Not a known enumerator: whatever name TextOf gives it.
        append_text(CaseChanged(TextOf(op.field, record),
                                layout_.columns[op.column].format));
      }
      return;
    }
    case ColumnOp::Kind::kText: append_text(record.*op.text); return;
    case ColumnOp::Kind::kTextUpper:
    case ColumnOp::Kind::kTextLower: {
      const std::string& text = record.*op.text;
      const bool upper = op.kind == ColumnOp::Kind::kTextUpper;
      scratch_.assign(text);
      for (char& c : scratch_) c = upper ? AsciiUpper(c) : AsciiLower(c);
      append_text(scratch_);
      return;
    }
    case ColumnOp::Kind::kDateFast:
    case ColumnOp::Kind::kDateGeneric:
    case ColumnOp::Kind::kDateIso: {
      const DateTime* date = DateOf(op.field, record);
      if (date == nullptr) {
        append_text(kEmpty);
        return;
      }
      if (op.kind == ColumnOp::Kind::kDateFast && date->year >= 0 &&
          date->year <= 9999 && date->month >= 0 && date->month <= 99 &&
          date->day >= 0 && date->day <= 99) {
        char* const start = sink.Reserve(kNumberRoom);
        char* p = start;
        WriteTwoDigits(static_cast<unsigned>(date->year / 100), p);
        WriteTwoDigits(static_cast<unsigned>(date->year % 100), p + 2);
        p += 4;
        if (op.shape == DateShape::kDashed) *p++ = '-';
        WriteTwoDigits(static_cast<unsigned>(date->month), p);
        p += 2;
        if (op.shape == DateShape::kDashed) *p++ = '-';
        WriteTwoDigits(static_cast<unsigned>(date->day), p);
        finish_number(start, p + 2);
        return;
      }
      scratch_.clear();
      if (op.kind == ColumnOp::Kind::kDateIso) {
        scratch_ = date->ToIso();  // text: not a built-in layout's path
      } else {
        AppendDate(*date, layout_.columns[op.column].date_pattern, &scratch_);
      }
      append_text(scratch_);
      return;
    }
    case ColumnOp::Kind::kAmountDecimal:
    case ColumnOp::Kind::kAmountMinor: {
      const int64_t* minor = AmountOf(op.field, record);
      if (minor == nullptr) {
        append_text(kEmpty);
        return;
      }
      char* const start = sink.Reserve(kNumberRoom);
      char* end;
      if (op.kind == ColumnOp::Kind::kAmountMinor) {
        end = WriteSigned(*minor, start);
      } else {
        // Same clamp as FormatAmount: an int64 has at most 19 digits.
        const int exponent = std::clamp(record.currency_exponent, 0, 18);
        end = WriteAmountDecimal(*minor, exponent, start);
      }
      finish_number(start, end);
      return;
    }
  }
}

size_t RowFormatter::WriteRow(const Record& record, std::string* storage,
                              size_t at) {
  Sink sink(storage, at);
  const char delimiter = layout_.delimiter;
  for (size_t i = 0; i < ops_.size(); ++i) {
    // The previous cell's Reserve left room for the delimiter.
    if (i > 0) sink.PutInSlack(delimiter);
    AppendCell(ops_[i], record, sink);
  }
  const std::string& ending = layout_.line_ending;
  char* p = sink.Reserve(ending.size());
  std::memcpy(p, ending.data(), ending.size());
  sink.Commit(p + ending.size());
  return sink.offset();
}

void RowFormatter::AppendRecord(const Record& record, std::string* out) {
  out->resize(WriteRow(record, out, out->size()));
}

std::string_view RowFormatter::FormatRecord(const Record& record,
                                            std::string* storage) {
  const size_t size = WriteRow(record, storage, 0);
  return std::string_view(storage->data(), size);
}

void RowFormatter::AppendTrailer(uint64_t count, const CurrencyTotals& totals,
                                 const Record* extra, std::string* out) {
  const char delimiter = layout_.delimiter;
  AppendCsvCell(kTrailerTag, delimiter, false, out);
  out->push_back(delimiter);
  scratch_.clear();
  AppendUnsigned(count + (extra != nullptr ? 1 : 0), &scratch_);
  AppendCsvCell(scratch_, delimiter, false, out);
  out->push_back(delimiter);

  // Merge `extra` into the ordered totals without touching the map, so that
  // asking "would it fit?" costs no allocation.
  scratch_.clear();
  bool extra_done = extra == nullptr;
  auto append_total = [&](std::string_view code, int64_t minor, int exponent) {
    if (!scratch_.empty()) scratch_.push_back(';');
    scratch_.append(code);
    scratch_.push_back('=');
    AppendAmountDecimal(minor, exponent, &scratch_);
  };
  for (const auto& [code, entry] : totals.entries()) {
    if (!extra_done && extra->currency < code) {
      append_total(extra->currency, extra->amount_minor,
                   extra->currency_exponent);
      extra_done = true;
    }
    int64_t minor = entry.minor;
    if (!extra_done && extra->currency == code) {
      // The caller checked CanAdd; on overflow the sum is left out rather
      // than being undefined behaviour.
      int64_t sum;
      if (!__builtin_add_overflow(minor, extra->amount_minor, &sum)) {
        minor = sum;
      }
      extra_done = true;
    }
    append_total(code, minor, entry.exponent);
  }
  if (!extra_done) {
    append_total(extra->currency, extra->amount_minor,
                 extra->currency_exponent);
  }
  AppendCsvCell(scratch_, delimiter, false, out);
  for (size_t i = 3; i < layout_.columns.size(); ++i) {
    out->push_back(delimiter);
  }
  out->append(layout_.line_ending);
}

}  // namespace cbpipe
