// A layout says how one destination's CSV looks: the ordered columns (a
// canonical field or a constant, with a format), header row, delimiter, line
// ending and trailer. Four built-in layouts exist, one per network
// (docs/layouts.md); a destination may use one defined in the config.
//
//   std::optional<Layout> visa = BuiltinLayout("visa");
//   CBPIPE_RETURN_IF_ERROR(ValidateLayout(*visa));
//   auto format = ParseColumnFormat("amount_minor");  // kAmountMinor
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "domain/network.h"
#include "domain/record.h"

namespace cbpipe {

struct OutputOptions;
struct OutputRoute;

enum class ColumnFormat {
  kText,           // the value as validated
  kUpper,          // upper-cased text (ASCII letters only)
  kLower,          // lower-cased text (ASCII letters only)
  kDate,           // date with `date_pattern` (%Y %m %d %H %M %S)
  kAmountDecimal,  // "12.50" with the currency's exponent
  kAmountMinor,    // integer minor units: "1250"
};

// "text", "upper", "lower", "date", "amount", "amount_minor" (the names the
// config uses); nullopt for anything else. Exact, lower-case match.
std::optional<ColumnFormat> ParseColumnFormat(std::string_view name);
std::string_view ColumnFormatName(ColumnFormat format);

struct Column {
  std::string header;          // header cell text
  std::optional<Field> field;  // nullopt: a constant column
  std::string constant;        // value of a constant column
  ColumnFormat format = ColumnFormat::kText;
  std::string date_pattern = "%Y-%m-%d";
  // Identifiers (ARN, case id, merchant id) are always quoted so that a
  // spreadsheet keeps their leading zeros; set for those by default.
  bool always_quote = false;
};

enum class TrailerKind { kNone, kCountAndTotal };

// "none", "count_and_total"; nullopt for anything else.
std::optional<TrailerKind> ParseTrailerKind(std::string_view name);
std::string_view TrailerKindName(TrailerKind kind);

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
// The name of a network's built-in layout ("visa", ...).
std::string_view BuiltinLayoutName(Network network);

// kInvalidArgument naming the layout and the column when the layout cannot
// produce a well-formed, verifiable file:
//  - no columns, or more than 1000;
//  - a delimiter that is '"', CR, LF or NUL;
//  - a line ending other than "\r\n" or "\n";
//  - a date format on a field that is not a date, an amount format on a field
//    that is not an amount, a date or amount format on a constant column;
//  - an empty date pattern;
//  - a count_and_total trailer with fewer than 3 columns (it needs 3 cells).
Status ValidateLayout(const Layout& layout);

// The layout called `name`: one of options.layouts (the config's
// [layout.NAME] tables) first, then a built-in one. kNotFound when neither
// exists.
StatusOr<Layout> FindLayout(const OutputOptions& options,
                            std::string_view name);
// The layout `destination` writes with: its `layout` setting, or the
// built-in layout of its first network when that is empty. kNotFound for an
// unknown name, kInvalidArgument for a destination without networks.
StatusOr<Layout> LayoutForDestination(const OutputOptions& options,
                                      const OutputRoute& destination);

}  // namespace cbpipe
