#include "domain/dates.h"

namespace cbpipe {
namespace {

constexpr int64_t kSecondsPerDay = 86400;
// Offsets in use run from -12:00 to +14:00; anything past 18 hours is a typo,
// not a time zone.
constexpr int kMaxOffsetMinutes = 18 * 60;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// A cursor over the input: every Read* either consumes what it read and
// returns true, or leaves the position unspecified and returns false (the
// caller then gives up on the whole value).
class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  bool AtEnd() const { return pos_ == text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool PeekDigit() const { return IsDigit(Peek()); }
  bool Consume(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++pos_;
    return true;
  }
  // Exactly `count` digits.
  bool ReadFixed(int count, int& value) {
    value = 0;
    for (int i = 0; i < count; ++i) {
      if (!PeekDigit()) return false;
      value = value * 10 + (text_[pos_++] - '0');
    }
    return true;
  }
  // One or two digits, taking two when two are there.
  bool ReadOneOrTwo(int& value) {
    if (!PeekDigit()) return false;
    value = text_[pos_++] - '0';
    if (PeekDigit()) value = value * 10 + (text_[pos_++] - '0');
    return true;
  }
  // One or more digits, dropped: fractional seconds finer than the record
  // keeps.
  bool SkipDigits() {
    if (!PeekDigit()) return false;
    while (PeekDigit()) ++pos_;
    return true;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

bool IsValid(const DateTime& v) {
  return v.year >= 1 && v.year <= 9999 && v.month >= 1 && v.month <= 12 &&
         v.day >= 1 && v.day <= DaysInMonth(v.year, v.month) && v.hour >= 0 &&
         v.hour <= 23 && v.minute >= 0 && v.minute <= 59 && v.second >= 0 &&
         // Leap seconds are rejected: no system downstream can store 60.
         v.second <= 59 && v.offset_minutes >= -kMaxOffsetMinutes &&
         v.offset_minutes <= kMaxOffsetMinutes;
}

// 'Z' or ±hh:mm or ±hhmm.
bool ReadOffset(Scanner& in, DateTime& out) {
  if (in.Consume('Z') || in.Consume('z')) {
    out.has_offset = true;
    out.offset_minutes = 0;
    return true;
  }
  int sign = 0;
  if (in.Consume('+')) {
    sign = 1;
  } else if (in.Consume('-')) {
    sign = -1;
  } else {
    return false;
  }
  int hours = 0, minutes = 0;
  if (!in.ReadFixed(2, hours)) return false;
  in.Consume(':');
  if (!in.ReadFixed(2, minutes) || minutes > 59) return false;
  out.has_offset = true;
  out.offset_minutes = sign * (hours * 60 + minutes);
  return true;
}

// "YYYY-MM-DD", the form nearly every record uses, without the scanner.
bool ParsePlainDate(std::string_view text, DateTime& out) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  int digits[8];
  static constexpr int kAt[8] = {0, 1, 2, 3, 5, 6, 8, 9};
  for (int i = 0; i < 8; ++i) {
    digits[i] = static_cast<unsigned char>(text[kAt[i]]) - '0';
    if (digits[i] < 0 || digits[i] > 9) return false;
  }
  out.year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
  out.month = digits[4] * 10 + digits[5];
  out.day = digits[6] * 10 + digits[7];
  return true;
}

std::optional<DateTime> ParseIso(std::string_view text) {
  DateTime out;
  if (ParsePlainDate(text, out)) {
    if (!IsValid(out)) return std::nullopt;
    return out;
  }
  Scanner in(text);
  if (!in.ReadFixed(4, out.year)) return std::nullopt;
  // The extended form (with separators) and the basic form are not mixed:
  // "2025-0301" is more likely a typo than a date.
  const bool extended = in.Consume('-');
  if (!in.ReadFixed(2, out.month)) return std::nullopt;
  if (extended && !in.Consume('-')) return std::nullopt;
  if (!in.ReadFixed(2, out.day)) return std::nullopt;
  if (!in.AtEnd()) {
    if (!in.Consume('T') && !in.Consume('t') && !in.Consume(' ')) {
      return std::nullopt;
    }
    out.has_time = true;
    if (!in.ReadFixed(2, out.hour)) return std::nullopt;
    // Basic-form times ("T101500") only follow basic-form dates.
    const bool time_extended = in.Consume(':');
    if (time_extended != extended) return std::nullopt;
    if (!in.ReadFixed(2, out.minute)) return std::nullopt;
    const bool has_seconds = time_extended ? in.Consume(':') : in.PeekDigit();
    if (has_seconds) {
      if (!in.ReadFixed(2, out.second)) return std::nullopt;
      if (in.Consume('.') || in.Consume(',')) {
        if (!in.SkipDigits()) return std::nullopt;
      }
    }
    if (!in.AtEnd() && !ReadOffset(in, out)) return std::nullopt;
  }
  if (!in.AtEnd() || !IsValid(out)) return std::nullopt;
  return out;
}

std::optional<DateTime> ParsePattern(std::string_view text,
                                     std::string_view pattern) {
  Scanner in(text);
  DateTime out;
  bool seen_year = false, seen_month = false, seen_day = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%') {
      if (!in.Consume(pattern[i])) return std::nullopt;
      continue;
    }
    if (++i == pattern.size()) return std::nullopt;  // pattern ends in '%'
    const char directive = pattern[i];
    if (directive == '%') {
      if (!in.Consume('%')) return std::nullopt;
      continue;
    }
    if (directive == 'Y') {
      if (!in.ReadFixed(4, out.year)) return std::nullopt;
      seen_year = true;
      continue;
    }
    int* field = nullptr;
    switch (directive) {
      case 'm':
        field = &out.month;
        seen_month = true;
        break;
      case 'd':
        field = &out.day;
        seen_day = true;
        break;
      case 'H':
        field = &out.hour;
        out.has_time = true;
        break;
      case 'M': field = &out.minute; break;
      case 'S': field = &out.second; break;
      default: return std::nullopt;  // an unknown directive matches nothing
    }
    // "1/3/2025" is how people write dates, so a field followed by a literal
    // (or the end) may have one digit; between two directives ("%Y%m%d")
    // only two digits keep the split unambiguous.
    const bool next_is_directive =
        i + 1 < pattern.size() && pattern[i + 1] == '%';
    const bool ok =
        next_is_directive ? in.ReadFixed(2, *field) : in.ReadOneOrTwo(*field);
    if (!ok) return std::nullopt;
  }
  if (!in.AtEnd() || !seen_year || !seen_month || !seen_day) {
    return std::nullopt;
  }
  if (!IsValid(out)) return std::nullopt;
  return out;
}

// At least `count` digits, zero-padded; never truncates, so a hand-built
// out-of-range value stays visible instead of wrapping.
void AppendPadded(std::string& out, int value, int count) {
  unsigned magnitude = static_cast<unsigned>(value);
  if (value < 0) {
    out.push_back('-');
    magnitude = 0u - magnitude;
  }
  char buffer[12];
  int length = 0;
  do {
    buffer[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  for (int i = length; i < count; ++i) out.push_back('0');
  while (length > 0) out.push_back(buffer[--length]);
}

}  // namespace

bool IsLeapYear(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12) return 0;
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

int64_t DateTime::EpochDays() const {
  // Howard Hinnant's days_from_civil: exact for the proleptic Gregorian
  // calendar, no table, no time zone database.
  const int64_t y = static_cast<int64_t>(year) - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t mp = (month + 9) % 12;  // March = 0
  const int64_t doy = (153 * mp + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int64_t DateTime::EpochSeconds() const {
  int64_t seconds =
      EpochDays() * kSecondsPerDay + hour * 3600 + minute * 60 + second;
  if (has_offset) seconds -= static_cast<int64_t>(offset_minutes) * 60;
  return seconds;
}

std::string DateTime::ToIso() const {
  std::string out;
  out.reserve(25);
  AppendPadded(out, year, 4);
  out.push_back('-');
  AppendPadded(out, month, 2);
  out.push_back('-');
  AppendPadded(out, day, 2);
  if (!has_time) return out;
  out.push_back('T');
  AppendPadded(out, hour, 2);
  out.push_back(':');
  AppendPadded(out, minute, 2);
  out.push_back(':');
  AppendPadded(out, second, 2);
  if (!has_offset) return out;
  if (offset_minutes == 0) {
    out.push_back('Z');
    return out;
  }
  const int magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
  out.push_back(offset_minutes < 0 ? '-' : '+');
  AppendPadded(out, magnitude / 60, 2);
  out.push_back(':');
  AppendPadded(out, magnitude % 60, 2);
  return out;
}

std::optional<DateTime> ParseDateTime(
    std::string_view text, std::span<const std::string> extra_formats) {
  if (std::optional<DateTime> iso = ParseIso(text)) return iso;
  for (const std::string& pattern : extra_formats) {
    if (std::optional<DateTime> parsed = ParsePattern(text, pattern)) {
      return parsed;
    }
  }
  return std::nullopt;
}

std::string FormatDateTime(const DateTime& value, std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 8);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out.push_back(pattern[i]);
      continue;
    }
    switch (pattern[++i]) {
      case 'Y': AppendPadded(out, value.year, 4); break;
      case 'm': AppendPadded(out, value.month, 2); break;
      case 'd': AppendPadded(out, value.day, 2); break;
      case 'H': AppendPadded(out, value.hour, 2); break;
      case 'M': AppendPadded(out, value.minute, 2); break;
      case 'S': AppendPadded(out, value.second, 2); break;
      case '%': out.push_back('%'); break;
      default:
        // Unknown directives are copied as written so a typo shows up in
        // the output instead of silently vanishing.
        out.push_back('%');
        out.push_back(pattern[i]);
    }
  }
  return out;
}

}  // namespace cbpipe
