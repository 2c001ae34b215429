// The one card-number (PAN) detector and the one masking policy, used for
// every field, message, file name and log line (PCI DSS 3.3/3.4).
//
//   IsCardNumber("4111111111111111");               // true
//   ContainsCardNumber("ref 4111-1111-1111-1111");  // true
//   MaskCardNumbers("card 4111 1111 1111 1111");
//       // "card 4111 11** **** 1111"
//   MaskCardNumbers("time_ms 1796470000000");
//       // unchanged: not in a card network's ranges
//
// What counts as a card number: 12 to 19 digits that pass the Luhn check and
// whose leading digits fall in a card network's IIN ranges (NetworkFromPan:
// Visa, Mastercard, Amex, Discover). In text it may be written plain or with
// single spaces or dashes between digit groups ("4111 1111 1111 1111",
// "4111-1111-1111-1111"); it is made of whole groups (a digit group is a
// maximal run of digits, whatever surrounds it: "x4111111111111111y" holds
// one). A group of more than 19 digits (an ARN) is never part of one.
// Exception: digits inside a lower-case hexadecimal token of exactly 16, 32
// or 64 characters with at least one letter a-f (run ids, trace ids,
// SHA-256 digests) are identifiers, not card numbers.
//
// The masking policy: the first 6 and last 4 digits stay, every digit between
// becomes '*', separators and everything else stay where they were (the
// length does not change). MaskPan (domain/rules.h) is the same policy for a
// value that is a card number and nothing else, written without separators.
//
// Pure functions: no I/O, thread-safe. The common case (no run of 12 digits)
// is decided in one pass without allocating.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// `digits` (digits only, no separators) is a card number: 12-19 digits,
// Luhn-valid, in a network's IIN ranges.
bool IsCardNumber(std::string_view digits);

// Where a card number lies in a text: [begin, end) from its first to its
// last digit, separators included.
struct CardNumberSpan {
  size_t begin = 0;
  size_t end = 0;
};

// The first card number in `text` at or after byte `from`; end == 0 when
// there is none.
CardNumberSpan FindCardNumber(std::string_view text, size_t from = 0);

// True when `text` holds a card number anywhere.
bool ContainsCardNumber(std::string_view text);

// Masks every card number in `text` in place (see the policy above). True
// when anything was masked.
bool MaskCardNumbersInPlace(std::string* text);
// The same, as a copy.
std::string MaskCardNumbers(std::string_view text);
// `status` with its message masked (an error may name an input file or
// quote a value), code unchanged.
Status MaskCardNumbersInStatus(const Status& status);

}  // namespace cbpipe
