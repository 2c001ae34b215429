#include "output/row_formatter.h"

#include <array>
#include <charconv>
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

void AppendUnsigned(uint64_t value, std::string* out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;  // 24 bytes always hold a uint64
  out->append(buffer, end);
}

void AppendSigned(int64_t value, std::string* out) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  (void)ec;
  out->append(buffer, end);
}

char AsciiUpper(char c) { return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c; }
char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

bool IsDateField(Field field) {
  return field == Field::kTransactionDate || field == Field::kChargebackDate ||
         field == Field::kDueDate;
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

bool IsDateOrAmount(Field field) {
  return IsDateField(field) || field == Field::kAmount ||
         field == Field::kTransactionAmount;
}

}  // namespace

bool NeedsFormulaGuard(std::string_view cell) {
  if (cell.empty()) return false;
  switch (cell.front()) {
    case '=':
    case '+':
    case '-':
    case '@':
    case '\t':
    case '\r': return true;
    default: return false;
  }
}

void AppendCsvCell(std::string_view cell, char delimiter, bool always_quote,
                   std::string* out) {
  const bool guard = NeedsFormulaGuard(cell);
  bool quote = always_quote || guard;
  if (!quote) {
    for (char c : cell) {
      // '"', CR and LF all sort at or below '"': one comparison rules out
      // most characters.
      if ((static_cast<unsigned char>(c) <= '"' &&
           (c == '"' || c == '\r' || c == '\n')) ||
          c == delimiter) {
        quote = true;
        break;
      }
    }
  }
  if (!quote) {
    out->append(cell);
    return;
  }
  out->push_back('"');
  if (guard) out->push_back('\'');
  size_t start = 0;
  for (size_t i = 0; i < cell.size(); ++i) {
    if (cell[i] == '"') {
      out->append(cell.substr(start, i + 1 - start));  // through the quote
      out->push_back('"');
      start = i + 1;
    }
  }
  out->append(cell.substr(start));
  out->push_back('"');
}

void AppendAmountDecimal(int64_t minor, int exponent, std::string* out) {
  // Same clamp as FormatAmount: an int64 has at most 19 digits.
  if (exponent < 0) exponent = 0;
  if (exponent > 18) exponent = 18;
  uint64_t magnitude = static_cast<uint64_t>(minor);
  char buffer[48];
  char* p = buffer;
  if (minor < 0) {
    *p++ = '-';
    magnitude = 0 - magnitude;
  }
  char digits[24];
  int length = 0;
  do {
    digits[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length < exponent + 1) digits[length++] = '0';
  while (length > 0) {
    *p++ = digits[--length];
    if (length == exponent && exponent > 0) *p++ = '.';
  }
  out->append(buffer, p);
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

bool CurrencyTotals::CanAdd(std::string_view currency, int64_t minor) const {
  auto it = entries_.find(currency);
  if (it == entries_.end()) return true;
  int64_t sum;
  return !__builtin_add_overflow(it->second.minor, minor, &sum);
}

bool CurrencyTotals::Add(std::string_view currency, int exponent,
                         int64_t minor) {
  auto it = entries_.find(currency);
  if (it == entries_.end()) {
    entries_.emplace(std::string(currency), Entry{minor, exponent});
    return true;
  }
  int64_t sum;
  if (__builtin_add_overflow(it->second.minor, minor, &sum)) return false;
  it->second.minor = sum;
  return true;
}

std::map<std::string, int64_t> CurrencyTotals::MinorByCurrency() const {
  std::map<std::string, int64_t> out;
  for (const auto& [code, entry] : entries_) out.emplace(code, entry.minor);
  return out;
}

RowFormatter::RowFormatter(Layout layout) : layout_(std::move(layout)) {
  for (const Column& column : layout_.columns) {
    DateShape shape = DateShape::kGeneric;
    if (column.date_pattern == "%Y%m%d") shape = DateShape::kCompact;
    if (column.date_pattern == "%Y-%m-%d") shape = DateShape::kDashed;
    date_shapes_.push_back(shape);
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

void RowFormatter::AppendValue(const Column& column, DateShape shape,
                               const Record& record, std::string* out) {
  const Field field = *column.field;
  switch (field) {
    case Field::kTransactionDate:
    case Field::kChargebackDate:
    case Field::kDueDate: {
      const DateTime* date = DateOf(field, record);
      if (date == nullptr) return;
      if (column.format == ColumnFormat::kDate &&
          shape != DateShape::kGeneric && date->year >= 0 &&
          date->year <= 9999) {
        char buffer[32];  // room for any int month and day, even invalid
        char* p = WritePadded(date->year, 4, buffer);
        if (shape == DateShape::kDashed) *p++ = '-';
        p = WritePadded(date->month, 2, p);
        if (shape == DateShape::kDashed) *p++ = '-';
        p = WritePadded(date->day, 2, p);
        out->append(buffer, p);
      } else if (column.format == ColumnFormat::kDate) {
        AppendDate(*date, column.date_pattern, out);
      } else {
        out->append(date->ToIso());  // text: not a built-in layout's path
      }
      return;
    }
    case Field::kAmount:
    case Field::kTransactionAmount: {
      const int64_t* minor = nullptr;
      if (field == Field::kAmount) {
        minor = &record.amount_minor;
      } else if (record.transaction_amount_minor.has_value()) {
        minor = &*record.transaction_amount_minor;
      }
      if (minor == nullptr) return;
      if (column.format == ColumnFormat::kAmountMinor) {
        AppendSigned(*minor, out);
      } else {
        AppendAmountDecimal(*minor, record.currency_exponent, out);
      }
      return;
    }
    default: {
      std::string_view text = TextOf(field, record);
      const size_t at = out->size();
      out->append(text);
      if (column.format == ColumnFormat::kUpper) {
        for (size_t i = at; i < out->size(); ++i) {
          (*out)[i] = AsciiUpper((*out)[i]);
        }
      } else if (column.format == ColumnFormat::kLower) {
        for (size_t i = at; i < out->size(); ++i) {
          (*out)[i] = AsciiLower((*out)[i]);
        }
      }
    }
  }
}

void RowFormatter::AppendRecord(const Record& record, std::string* out) {
  const char delimiter = layout_.delimiter;
  for (size_t i = 0; i < layout_.columns.size(); ++i) {
    if (i > 0) out->push_back(delimiter);
    const Column& column = layout_.columns[i];
    std::string_view cell;
    if (!column.field.has_value()) {
      if (column.format == ColumnFormat::kText) {
        cell = column.constant;
      } else {
        scratch_.clear();
        for (char c : column.constant) {
          scratch_.push_back(column.format == ColumnFormat::kUpper
                                 ? AsciiUpper(c)
                                 : AsciiLower(c));
        }
        cell = scratch_;
      }
    } else if (column.format == ColumnFormat::kText &&
               !IsDateOrAmount(*column.field)) {
      // Plain text needs no copy into the scratch buffer.
      cell = TextOf(*column.field, record);
    } else {
      scratch_.clear();
      AppendValue(column, date_shapes_[i], record, &scratch_);
      cell = scratch_;
    }
    AppendCsvCell(cell, delimiter, column.always_quote, out);
  }
  out->append(layout_.line_ending);
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
