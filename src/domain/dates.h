// Calendar dates and date-times, parsed without the C library's locale or
// time zone. Pure: "now" is always passed in (inject a clock).
//
//   auto d = ParseDateTime("2025-03-01T10:15:00+02:00", {});
//   if (d && d->EpochSeconds() > now_epoch) ...  // in the future
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace cbpipe {

struct DateTime {
  int year = 1970;  // 1..9999
  int month = 1;    // 1..12
  int day = 1;      // 1..days in month
  int hour = 0, minute = 0, second = 0;
  bool has_time = false;
  bool has_offset = false;    // an explicit 'Z' or +hh:mm was given
  int offset_minutes = 0;     // east of UTC

  // Seconds since 1970-01-01T00:00:00Z. A value without offset is taken as
  // UTC; a date without time as its midnight.
  int64_t EpochSeconds() const;
  // Days since 1970-01-01 of the calendar date as written (offset ignored).
  int64_t EpochDays() const;
  // "2025-03-01" or "2025-03-01T10:15:00" / "...+02:00" / "...Z".
  std::string ToIso() const;
  bool operator==(const DateTime&) const = default;
};

bool IsLeapYear(int year);
int DaysInMonth(int year, int month);  // 0 for a month out of range

// ISO 8601: YYYY-MM-DD, YYYYMMDD, YYYY-MM-DDThh:mm[:ss[.fff]] with 'T' or a
// space, optional 'Z' or ±hh:mm / ±hhmm. Impossible dates (2025-02-30, hour
// 24, minute 60) are nullopt. `extra_formats` are tried after ISO, each a
// pattern of %Y %m %d %H %M %S and literal characters, e.g. "%d/%m/%Y".
std::optional<DateTime> ParseDateTime(
    std::string_view text, std::span<const std::string> extra_formats);

// Formats with %Y %m %d %H %M %S and literals ("%Y%m%d" -> "20250301").
std::string FormatDateTime(const DateTime& value, std::string_view pattern);

}  // namespace cbpipe
