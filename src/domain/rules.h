// Pure chargeback rules: ARN, PAN, money, currencies and reason codes.
// Everything here takes values and returns values: no files, no clock.
//
//   if (!IsValidArn("74567890123456789012345")) ...
//   auto minor = ParseAmount("12.345", /*exponent=*/3);  // 12345
//   auto masked = MaskPan("4111111111111111");  // "411111******1111"
//   const CurrencyInfo* kwd = FindCurrency("KWD");  // exponent 3
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "domain/network.h"

namespace cbpipe {

// --- Luhn / ARN -------------------------------------------------------------

// Luhn (mod 10) over all digits of `digits`; false if any non-digit.
bool LuhnValid(std::string_view digits);

enum class ArnProblem { kNone, kFormat, kCheckDigit };
// Exactly 23 digits (leading zeros are real) whose last digit is the Luhn
// check digit over all 23. kFormat for wrong length or non-digits.
ArnProblem CheckArn23(std::string_view arn);
inline bool IsValidArn(std::string_view arn) {
  return CheckArn23(arn) == ArnProblem::kNone;
}
// Amex / Discover reference numbers when present: 8-30 digits, no check digit.
bool IsValidOptionalReference(std::string_view arn);

// --- PAN ----------------------------------------------------------------------

enum class PanKind {
  kFull,     // 12-19 digits, Luhn-valid: must be masked (or rejected)
  kMasked,   // an accepted masked form, kept as it is
  kInvalid,  // neither
};
// Masked forms accepted: one run of a single mask character ('*', 'X' or
// 'x') showing at most the first 6 and last 4 digits; total length 12-19 when
// leading digits are shown ("411111******1111"), or at least 4 mask
// characters and at most 19 long when only trailing digits are ("****1234",
// "XXXXXXXXXXXX1234"). Spaces and dashes between digits are ignored when
// testing for a full PAN ("4111 1111 1111 1111" is kFull). A 12-19 digit
// string that fails Luhn is kInvalid (it is neither a card number nor masked).
PanKind ClassifyPan(std::string_view pan);
// First 6 + last 4 digits with '*' in between, one character per digit of the
// input (separators are dropped). Precondition: ClassifyPan(pan) == kFull.
std::string MaskPan(std::string_view pan);

// --- Currencies -------------------------------------------------------------

struct CurrencyInfo {
  std::string_view code;  // "USD"
  int numeric;            // 840
  int minor_units;        // exponent: 2 for USD, 0 for JPY, 3 for KWD
};
// From the built-in ISO 4217 table (src/domain/data/currencies.csv, compiled
// in). Upper-case code only; nullptr when unknown.
const CurrencyInfo* FindCurrency(std::string_view code);

// --- Money ------------------------------------------------------------------

enum class AmountProblem { kNone, kInvalid, kPrecision, kNotPositive,
                           kTooLarge };
struct ParsedAmount {
  AmountProblem problem = AmountProblem::kNone;
  int64_t minor = 0;
};
// Plain decimal text -> integer minor units with `exponent` decimals:
// "12.5" (exp 2) -> 1250; "100" (exp 0) -> 100. Optional leading '+'.
// kInvalid: empty, exponent notation, NaN/Inf, thousand separators, spaces
// inside, more than one '.', a trailing or leading lone '.', anything else
// that is not [+-]digits[.digits]. kPrecision: more decimals than `exponent`
// (trailing zeros beyond the exponent count too: "1.500" for USD is
// rejected). kNotPositive: zero or negative. kTooLarge: over 10^15 minor
// units. Never goes through a binary float.
ParsedAmount ParseAmount(std::string_view text, int exponent);
// 1250, exp 2 -> "12.50"; 100, exp 0 -> "100"; -5, exp 3 -> "-0.005".
std::string FormatAmount(int64_t minor, int exponent);

// --- Reason codes -------------------------------------------------------------

struct ReasonCodeInfo {
  std::string_view code;
  std::string_view category;
  std::string_view description;
  bool legacy;
};
// From the built-in table (src/domain/data/reason_codes.csv). The code is
// compared as written, after trimming spaces, case-insensitively.
const ReasonCodeInfo* FindReasonCode(Network network, std::string_view code);

}  // namespace cbpipe
