#include "domain/pan.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "domain/network.h"
#include "domain/rules.h"

namespace cbpipe {
namespace {

constexpr size_t kMinDigits = 12;
constexpr size_t kMaxDigits = 19;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// True if the alphanumeric token around s[pos] is an identifier (lower-case
// hex of 16, 32 or 64 characters with a letter), not data.
bool InHexIdentifier(std::string_view s, size_t pos) {
  size_t begin = pos;
  while (begin > 0 && IsAlnum(s[begin - 1])) --begin;
  size_t end = pos;
  while (end < s.size() && IsAlnum(s[end])) ++end;
  const size_t len = end - begin;
  if (len != 16 && len != 32 && len != 64) return false;
  bool letter = false;
  for (size_t i = begin; i < end; ++i) {
    const char c = s[i];
    if (c >= 'a' && c <= 'f') {
      letter = true;
    } else if (!IsDigit(c)) {
      return false;
    }
  }
  return letter;
}

// False when `s` has no 12 digits joined by single separators: the common
// case, decided in one pass.
bool MayHoldCardNumber(std::string_view s) {
  if (s.size() < kMinDigits) return false;
  size_t digits = 0;
  bool after_separator = false;
  for (char c : s) {
    if (IsDigit(c)) {
      if (++digits >= kMinDigits) return true;
      after_separator = false;
    } else if ((c == ' ' || c == '-') && digits > 0 && !after_separator) {
      after_separator = true;
    } else {
      digits = 0;
      after_separator = false;
    }
  }
  return false;
}

struct DigitGroup {
  size_t begin;  // index in the text of its first digit
  size_t size;   // digits in it (contiguous)
};

// Precondition: the groups hold at most 19 digits in all.
bool GroupsAreCardNumber(std::string_view s, const DigitGroup* groups,
                         size_t count) {
  char buf[kMaxDigits];
  size_t n = 0;
  for (size_t g = 0; g < count; ++g) {
    s.copy(buf + n, groups[g].size, groups[g].begin);
    n += groups[g].size;
  }
  return IsCardNumber(std::string_view(buf, n));
}

// Finds the card numbers among one run of groups joined by single
// separators; each is a sequence of whole groups, the longest one first
// from each starting group. `found(first, count, digits)` returns false to
// stop; Scan then returns false too.
template <typename Found>
bool ScanRun(std::string_view s, const std::vector<DigitGroup>& run,
             Found& found) {
  size_t a = 0;
  while (a < run.size()) {
    // The longest sequence from `a` of at most 19 digits...
    size_t b = a;
    size_t digits = 0;
    while (b < run.size() && digits + run[b].size <= kMaxDigits) {
      digits += run[b].size;
      ++b;
    }
    // ...then shorter ones down to 12 digits.
    bool hit = false;
    while (b > a && digits >= kMinDigits) {
      if (GroupsAreCardNumber(s, &run[a], b - a)) {
        if (!found(&run[a], b - a, digits)) return false;
        hit = true;
        break;
      }
      --b;
      digits -= run[b].size;
    }
    a = hit ? b : a + 1;
  }
  return true;
}

// In each byte of `word`, 0x80 when that byte is not an ASCII digit, 0
// when it is (8 bytes at a time, no branch).
inline uint64_t NonDigitBytes(uint64_t word) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t x = word ^ 0x3030303030303030ULL;  // digits become 0..9
  // Per byte: x >= 10 (or x >= 0x80) sets the high bit; no carry crosses
  // bytes since (x & 0x7f) + 0x76 <= 0xf5.
  return (((x & kLow7) + 0x7676767676767676ULL) | x) & kHigh;
}

// How many bytes of a NonDigitBytes result are marked: the 0x80 bits moved
// to bit 0 of each byte and summed by one multiply (no popcnt needed).
inline size_t MarkedBytes(uint64_t marks) {
  return static_cast<size_t>(((marks >> 7) * 0x0101010101010101ULL) >> 56);
}

inline uint64_t Load8(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return word;
}

// Digits in `s`, at least 8 bytes long, 8 bytes at a time: every field of
// every record is asked, and the common answers (fewer than 12 digits in
// all: names, codes, most ids; or digits only) must cost next to nothing.
[[gnu::always_inline]] inline size_t CountDigits(std::string_view s) {
  const size_t n = s.size();
  size_t non_digits = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    non_digits += MarkedBytes(NonDigitBytes(Load8(s.data() + i)));
  }
  if (i < n) {
    // The last 8 bytes, of which only the n - i not yet counted: the
    // word's last bytes in memory.
    const uint64_t tail = NonDigitBytes(Load8(s.data() + n - 8));
    const int shift = static_cast<int>(8 * (8 - (n - i)));
    non_digits +=
        MarkedBytes(std::endian::native == std::endian::little ? tail >> shift
                                                               : tail << shift);
  }
  return n - non_digits;
}

// Calls `found` for every card number in s[from...], in order.
template <typename Found>
void Scan(std::string_view s, size_t from, Found&& found) {
  if (from >= s.size() || s.size() - from < kMinDigits) return;
  const size_t digits = CountDigits(s.substr(from));
  if (digits < kMinDigits) return;
  if (from == 0 && digits == s.size()) {
    // The common case on the validator's hot path: an identifier or
    // reference (an ARN) made only of digits is one group, a card number
    // or not.
    if (IsCardNumber(s)) {
      const DigitGroup group{0, s.size()};
      found(&group, 1, s.size());
    }
    return;
  }
  if (!MayHoldCardNumber(s.substr(from))) return;
  thread_local std::vector<DigitGroup> run;
  run.clear();
  size_t i = from;
  const size_t n = s.size();
  while (i < n) {
    if (!IsDigit(s[i])) {
      ++i;
      continue;
    }
    const size_t begin = i;
    while (i < n && IsDigit(s[i])) ++i;
    const DigitGroup group{begin, i - begin};
    const bool exempt = InHexIdentifier(s, begin);
    // A group continues the current run if one separator joins them.
    const bool joins = !run.empty() && !exempt &&
                       run.back().begin + run.back().size + 1 == begin &&
                       (s[begin - 1] == ' ' || s[begin - 1] == '-');
    if (!joins && !run.empty()) {
      if (!ScanRun(s, run, found)) return;
      run.clear();
    }
    if (!exempt) run.push_back(group);
  }
  if (!run.empty()) ScanRun(s, run, found);
}

}  // namespace

bool IsCardNumber(std::string_view digits) {
  if (digits.size() < kMinDigits || digits.size() > kMaxDigits) return false;
  // Most numbers that are not card numbers (ids, epoch milliseconds) are
  // out after a look at their first two digits, before the Luhn check.
  const int first = digits[0] - '0', second = digits[1] - '0';
  if (first < 0 || first > 9 || second < 0 || second > 9 ||
      !MayBeInCardRange(first * 10 + second)) {
    return false;
  }
  return LuhnValid(digits) && NetworkFromPan(digits).has_value();
}

CardNumberSpan FindCardNumber(std::string_view text, size_t from) {
  CardNumberSpan span;
  auto found = [&](const DigitGroup* groups, size_t count, size_t) {
    span.begin = groups[0].begin;
    span.end = groups[count - 1].begin + groups[count - 1].size;
    return false;
  };
  Scan(text, from, found);
  return span;
}

bool ContainsCardNumber(std::string_view text) {
  // The validator asks this of every identifier of every record: the common
  // answers (too few digits; one group of digits) without the full scan.
  if (text.size() < kMinDigits) return false;
  const size_t digits = CountDigits(text);
  if (digits < kMinDigits) return false;
  if (digits == text.size()) return IsCardNumber(text);
  return FindCardNumber(text).end != 0;
}

bool MaskCardNumbersInPlace(std::string* text) {
  if (!ContainsCardNumber(*text)) return false;
  std::string& s = *text;
  bool masked = false;
  bool again = true;
  auto found = [&](const DigitGroup* groups, size_t count, size_t digits) {
    size_t index = 0;  // digit index within the card number
    for (size_t g = 0; g < count; ++g) {
      for (size_t i = 0; i < groups[g].size; ++i, ++index) {
        if (index >= 6 && index + 4 < digits) s[groups[g].begin + i] = '*';
      }
    }
    masked = again = true;
    return true;
  };
  // Masking splits groups, and the last four digits of one card number with
  // the groups after it could form another: scan again until nothing is
  // found (each pass masks at least one digit, and one pass is the rule).
  while (again) {
    again = false;
    Scan(std::string_view(s), 0, found);
  }
  return masked;
}

std::string MaskCardNumbers(std::string_view text) {
  std::string out(text);
  MaskCardNumbersInPlace(&out);
  return out;
}

Status MaskCardNumbersInStatus(const Status& status) {
  if (status.ok() || !ContainsCardNumber(status.message())) return status;
  return Status(status.code(), MaskCardNumbers(status.message()));
}

}  // namespace cbpipe
