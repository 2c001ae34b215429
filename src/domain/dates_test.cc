#include "domain/dates.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cbpipe {
namespace {

std::optional<DateTime> Iso(std::string_view text) {
  return ParseDateTime(text, {});
}

std::optional<DateTime> WithFormats(std::string_view text,
                                    std::vector<std::string> formats) {
  return ParseDateTime(text, formats);
}

TEST(CalendarTest, LeapYears) {
  EXPECT_TRUE(IsLeapYear(2024));
  EXPECT_FALSE(IsLeapYear(2023));
  EXPECT_FALSE(IsLeapYear(1900));
  EXPECT_TRUE(IsLeapYear(2000));
  EXPECT_FALSE(IsLeapYear(2100));
  EXPECT_TRUE(IsLeapYear(4));
}

TEST(CalendarTest, DaysInMonth) {
  EXPECT_EQ(DaysInMonth(2025, 1), 31);
  EXPECT_EQ(DaysInMonth(2025, 2), 28);
  EXPECT_EQ(DaysInMonth(2024, 2), 29);
  EXPECT_EQ(DaysInMonth(2025, 4), 30);
  EXPECT_EQ(DaysInMonth(2025, 12), 31);
  EXPECT_EQ(DaysInMonth(2025, 0), 0);
  EXPECT_EQ(DaysInMonth(2025, 13), 0);
}

TEST(ParseDateTimeTest, DateOnlyExtendedAndBasic) {
  const std::optional<DateTime> d = Iso("2025-03-01");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->year, 2025);
  EXPECT_EQ(d->month, 3);
  EXPECT_EQ(d->day, 1);
  EXPECT_FALSE(d->has_time);
  EXPECT_FALSE(d->has_offset);
  EXPECT_EQ(Iso("20250301"), d);
}

TEST(ParseDateTimeTest, DateTimeWithoutOffset) {
  const std::optional<DateTime> d = Iso("2025-03-01T10:15:30");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->has_time);
  EXPECT_FALSE(d->has_offset);
  EXPECT_EQ(d->hour, 10);
  EXPECT_EQ(d->minute, 15);
  EXPECT_EQ(d->second, 30);
  EXPECT_EQ(Iso("2025-03-01 10:15:30"), d);  // space instead of 'T'
  EXPECT_EQ(Iso("2025-03-01t10:15:30"), d);
  EXPECT_EQ(Iso("20250301T101530"), d);  // basic form
}

TEST(ParseDateTimeTest, SecondsAreOptional) {
  const std::optional<DateTime> d = Iso("2025-03-01T10:15");
  ASSERT_TRUE(d.has_value());
  EXPECT_TRUE(d->has_time);
  EXPECT_EQ(d->second, 0);
  EXPECT_EQ(Iso("20250301T1015"), d);
}

TEST(ParseDateTimeTest, FractionalSecondsAreDropped) {
  const std::optional<DateTime> whole = Iso("2025-03-01T10:15:30Z");
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(Iso("2025-03-01T10:15:30.999Z"), whole);
  EXPECT_EQ(Iso("2025-03-01T10:15:30.123456789Z"), whole);
  EXPECT_EQ(Iso("2025-03-01T10:15:30,5Z"), whole);
  EXPECT_EQ(Iso("2025-03-01T10:15:30."), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15.5"), std::nullopt);  // only after seconds
}

TEST(ParseDateTimeTest, Offsets) {
  const std::optional<DateTime> z = Iso("2025-03-01T10:15:00Z");
  ASSERT_TRUE(z.has_value());
  EXPECT_TRUE(z->has_offset);
  EXPECT_EQ(z->offset_minutes, 0);

  const std::optional<DateTime> east = Iso("2025-03-01T10:15:00+02:00");
  ASSERT_TRUE(east.has_value());
  EXPECT_TRUE(east->has_offset);
  EXPECT_EQ(east->offset_minutes, 120);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+0200"), east);

  const std::optional<DateTime> west = Iso("2025-03-01T10:15-05:30");
  ASSERT_TRUE(west.has_value());
  EXPECT_EQ(west->offset_minutes, -330);

  EXPECT_EQ(Iso("2025-03-01T10:15:00+14:00")->offset_minutes, 840);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+19:00"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+02:60"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+2:00"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+02"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01Z"), std::nullopt);  // offset needs a time
}

TEST(ParseDateTimeTest, TenCharacterNearMissesAreRejected) {
  // "YYYY-MM-DD" has a fast path of its own; these only look like it.
  EXPECT_EQ(Iso("2025-0a-01"), std::nullopt);
  EXPECT_EQ(Iso("+025-03-01"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-0 "), std::nullopt);
  EXPECT_EQ(Iso("2025/03/01"), std::nullopt);
  EXPECT_EQ(Iso("2025-031-1"), std::nullopt);
  const std::optional<DateTime> d = Iso("0999-12-31");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->year, 999);
  EXPECT_EQ(d->month, 12);
  EXPECT_EQ(d->day, 31);
  EXPECT_FALSE(d->has_time);
}

TEST(ParseDateTimeTest, ImpossibleDatesAreRejected) {
  EXPECT_EQ(Iso("2025-02-30"), std::nullopt);
  EXPECT_TRUE(Iso("2024-02-29").has_value());
  EXPECT_EQ(Iso("2023-02-29"), std::nullopt);
  EXPECT_EQ(Iso("1900-02-29"), std::nullopt);
  EXPECT_TRUE(Iso("2000-02-29").has_value());
  EXPECT_EQ(Iso("2025-13-01"), std::nullopt);
  EXPECT_EQ(Iso("2025-00-01"), std::nullopt);
  EXPECT_EQ(Iso("2025-01-00"), std::nullopt);
  EXPECT_EQ(Iso("2025-01-32"), std::nullopt);
  EXPECT_EQ(Iso("2025-04-31"), std::nullopt);
  EXPECT_TRUE(Iso("2025-12-31").has_value());
}

TEST(ParseDateTimeTest, ImpossibleTimesAreRejected) {
  EXPECT_TRUE(Iso("2025-03-01T23:59:59").has_value());
  EXPECT_TRUE(Iso("2025-03-01T00:00:00").has_value());
  EXPECT_EQ(Iso("2025-03-01T24:00:00"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:60:00"), std::nullopt);
  // Leap seconds: rejected, nothing downstream can hold a 60th second.
  EXPECT_EQ(Iso("2025-03-01T23:59:60"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T23:59:61"), std::nullopt);
}

TEST(ParseDateTimeTest, YearRange) {
  EXPECT_EQ(Iso("0000-01-01"), std::nullopt);
  EXPECT_TRUE(Iso("0001-01-01").has_value());
  EXPECT_TRUE(Iso("9999-12-31").has_value());
  EXPECT_EQ(Iso("10000-01-01"), std::nullopt);
  EXPECT_EQ(Iso("-2025-01-01"), std::nullopt);
  EXPECT_EQ(Iso("+2025-01-01"), std::nullopt);
}

TEST(ParseDateTimeTest, MalformedTextIsRejected) {
  EXPECT_EQ(Iso(""), std::nullopt);
  EXPECT_EQ(Iso("2025"), std::nullopt);
  EXPECT_EQ(Iso("2025-03"), std::nullopt);
  EXPECT_EQ(Iso("2025-3-1"), std::nullopt);
  EXPECT_EQ(Iso("2025/03/01"), std::nullopt);
  EXPECT_EQ(Iso("2025-0301"), std::nullopt);  // mixed basic and extended
  EXPECT_EQ(Iso("202503-01"), std::nullopt);
  EXPECT_EQ(Iso("20250301T10:15"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T1015"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T1:15"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01x"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15:00Zjunk"), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01T10:15:00+02:00 "), std::nullopt);
  EXPECT_EQ(Iso(" 2025-03-01"), std::nullopt);  // values are not trimmed
  EXPECT_EQ(Iso("2025-03-01 "), std::nullopt);
  EXPECT_EQ(Iso("2025-03-01\n"), std::nullopt);
  EXPECT_EQ(Iso(std::string_view("2025-03-01\0", 11)), std::nullopt);
  EXPECT_EQ(Iso("２０２５-03-01"), std::nullopt);
}

TEST(ParseDateTimeTest, ExtraFormatsAreTriedAfterIso) {
  const std::optional<DateTime> d = WithFormats("01/03/2025", {"%d/%m/%Y"});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->year, 2025);
  EXPECT_EQ(d->month, 3);
  EXPECT_EQ(d->day, 1);
  EXPECT_FALSE(d->has_time);
  EXPECT_EQ(WithFormats("1/3/2025", {"%d/%m/%Y"}), d);

  const std::optional<DateTime> us =
      WithFormats("03/01/2025 10:15", {"%d/%m/%Y", "%m/%d/%Y %H:%M"});
  ASSERT_TRUE(us.has_value());
  EXPECT_EQ(us->month, 3);
  EXPECT_EQ(us->day, 1);
  EXPECT_TRUE(us->has_time);
  EXPECT_EQ(us->hour, 10);
  EXPECT_EQ(us->minute, 15);
  EXPECT_EQ(us->second, 0);

  // ISO still wins, and the formats do not make ISO garbage acceptable.
  EXPECT_EQ(WithFormats("2025-03-01", {"%d/%m/%Y"}), Iso("2025-03-01"));
  EXPECT_EQ(WithFormats("01/03/2025", {}), std::nullopt);
}

TEST(ParseDateTimeTest, ExtraFormatsAreCalendarChecked) {
  EXPECT_EQ(WithFormats("30/02/2025", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_TRUE(WithFormats("29/02/2024", {"%d/%m/%Y"}).has_value());
  EXPECT_EQ(WithFormats("01/13/2025", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("03/01/2025 24:00", {"%m/%d/%Y %H:%M"}), std::nullopt);
  EXPECT_EQ(WithFormats("03/01/2025 10:60", {"%m/%d/%Y %H:%M"}), std::nullopt);
  EXPECT_EQ(WithFormats("03/01/2025 10:15:60", {"%m/%d/%Y %H:%M:%S"}),
            std::nullopt);
}

TEST(ParseDateTimeTest, ExtraFormatsRejectTrailingAndMissingParts) {
  EXPECT_EQ(WithFormats("01/03/2025 ", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("01/03/2025x", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("01/03/25", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("001/03/2025", {"%d/%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("01-03-2025", {"%d/%m/%Y"}), std::nullopt);
  // A pattern without a full date, or with unknown directives, matches
  // nothing.
  EXPECT_EQ(WithFormats("03/2025", {"%m/%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("01/03/2025", {"%d/%m/%y"}), std::nullopt);
  EXPECT_EQ(WithFormats("01/03/2025", {"%d/%m/%Y%"}), std::nullopt);
}

TEST(ParseDateTimeTest, AdjacentDirectivesNeedTwoDigits) {
  const std::optional<DateTime> d =
      WithFormats("01032025 101530", {"%d%m%Y %H%M%S"});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->ToIso(), "2025-03-01T10:15:30");
  EXPECT_EQ(WithFormats("1032025", {"%d%m%Y"}), std::nullopt);
  EXPECT_EQ(WithFormats("100%/01/03/2025", {"100%%/%d/%m/%Y"})->day, 1);
}

TEST(EpochTest, EpochDays) {
  EXPECT_EQ(Iso("1970-01-01")->EpochDays(), 0);
  EXPECT_EQ(Iso("1970-01-02")->EpochDays(), 1);
  EXPECT_EQ(Iso("1969-12-31")->EpochDays(), -1);
  EXPECT_EQ(Iso("2000-03-01")->EpochDays(), 11017);
  EXPECT_EQ(Iso("2025-03-01")->EpochDays(), 20148);
  EXPECT_EQ(Iso("0001-01-01")->EpochDays(), -719162);
  EXPECT_EQ(Iso("9999-12-31")->EpochDays(), 2932896);
  // The calendar date as written: the offset does not move it.
  EXPECT_EQ(Iso("2025-03-01T23:00:00-05:00")->EpochDays(), 20148);
}

TEST(EpochTest, EpochSecondsHonoursOffset) {
  EXPECT_EQ(Iso("1970-01-01T00:00:00Z")->EpochSeconds(), 0);
  EXPECT_EQ(Iso("1970-01-01")->EpochSeconds(), 0);
  EXPECT_EQ(Iso("2025-03-01T10:15:00Z")->EpochSeconds(), 1740824100);
  // Without an offset the value is taken as UTC.
  EXPECT_EQ(Iso("2025-03-01T10:15:00")->EpochSeconds(), 1740824100);
  EXPECT_EQ(Iso("2025-03-01T12:15:00+02:00")->EpochSeconds(), 1740824100);
  EXPECT_EQ(Iso("2025-03-01T04:45:00-05:30")->EpochSeconds(), 1740824100);
  // Crossing midnight backwards.
  EXPECT_EQ(Iso("2025-03-02T01:00:00+02:00")->EpochSeconds(),
            Iso("2025-03-01T23:00:00Z")->EpochSeconds());
  EXPECT_EQ(Iso("2025-03-01")->EpochSeconds(), 20148LL * 86400);
}

TEST(ToIsoTest, Forms) {
  EXPECT_EQ(Iso("2025-03-01")->ToIso(), "2025-03-01");
  EXPECT_EQ(Iso("20250301")->ToIso(), "2025-03-01");
  EXPECT_EQ(Iso("2025-03-01T10:15")->ToIso(), "2025-03-01T10:15:00");
  EXPECT_EQ(Iso("2025-03-01T10:15:00.5Z")->ToIso(), "2025-03-01T10:15:00Z");
  EXPECT_EQ(Iso("2025-03-01T10:15:00+0200")->ToIso(),
            "2025-03-01T10:15:00+02:00");
  EXPECT_EQ(Iso("2025-03-01T10:15:00-05:30")->ToIso(),
            "2025-03-01T10:15:00-05:30");
  // +00:00 and Z are the same instant; Z is the shorter spelling.
  EXPECT_EQ(Iso("2025-03-01T10:15:00+00:00")->ToIso(), "2025-03-01T10:15:00Z");
  EXPECT_EQ(Iso("0001-01-01")->ToIso(), "0001-01-01");
}

TEST(ToIsoTest, RoundTripsThroughParse) {
  for (std::string_view text :
       {"2025-03-01", "2024-02-29T23:59:59", "2025-03-01T10:15:00Z",
        "2025-03-01T10:15:00+05:45", "2025-03-01T10:15:00-12:00"}) {
    const std::optional<DateTime> d = Iso(text);
    ASSERT_TRUE(d.has_value()) << text;
    EXPECT_EQ(d->ToIso(), text);
    EXPECT_EQ(Iso(d->ToIso()), d);
  }
}

TEST(FormatDateTimeTest, Patterns) {
  const DateTime d = *Iso("2025-03-01T09:05:07");
  EXPECT_EQ(FormatDateTime(d, "%Y%m%d"), "20250301");
  EXPECT_EQ(FormatDateTime(d, "%d/%m/%Y"), "01/03/2025");
  EXPECT_EQ(FormatDateTime(d, "%Y-%m-%dT%H:%M:%S"), "2025-03-01T09:05:07");
  EXPECT_EQ(FormatDateTime(d, "chargebacks_%Y%m%d_%H%M.csv"),
            "chargebacks_20250301_0905.csv");
  EXPECT_EQ(FormatDateTime(d, "100%%"), "100%");
  EXPECT_EQ(FormatDateTime(d, ""), "");
  EXPECT_EQ(FormatDateTime(d, "no directives"), "no directives");
  // Unknown directives and a trailing '%' are copied as written.
  EXPECT_EQ(FormatDateTime(d, "%y-%q"), "%y-%q");
  EXPECT_EQ(FormatDateTime(d, "%Y%"), "2025%");
  EXPECT_EQ(FormatDateTime(*Iso("0042-01-02"), "%Y"), "0042");
}

}  // namespace
}  // namespace cbpipe
