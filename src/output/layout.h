// A layout says how one destination's CSV looks: the ordered columns (a
// canonical field or a constant, with a format), header row, delimiter, line
// ending and trailer. Four built-in layouts exist, one per network
// (docs/layouts.md); a destination may use one defined in the config.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "domain/network.h"
#include "domain/record.h"

namespace cbpipe {

enum class ColumnFormat {
  kText,          // the value as validated
  kUpper,         // upper-cased text
  kLower,         // lower-cased text
  kDate,          // date with `date_pattern` (%Y %m %d %H %M %S)
  kAmountDecimal, // "12.50" with the currency's exponent
  kAmountMinor,   // integer minor units: "1250"
};

struct Column {
  std::string header;                  // header cell text
  std::optional<Field> field;          // nullopt: a constant column
  std::string constant;                // value of a constant column
  ColumnFormat format = ColumnFormat::kText;
  std::string date_pattern = "%Y-%m-%d";
  // Identifiers (ARN, case id, merchant id) are always quoted so that a
  // spreadsheet keeps their leading zeros; set for those by default.
  bool always_quote = false;
};

enum class TrailerKind { kNone, kCountAndTotal };

struct Layout {
  std::string name;
  std::vector<Column> columns;
  bool header = true;
  char delimiter = ',';
  std::string line_ending = "\r\n";  // RFC 4180 default
  TrailerKind trailer = TrailerKind::kNone;
};

// The built-in layout named "visa", "mastercard", "amex" or "discover".
std::optional<Layout> BuiltinLayout(std::string_view name);

}  // namespace cbpipe
