#include "domain/pan.h"

#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Digits in `s`, 16 bytes at a time: every field of every record is asked,
// and the common case (fewer than 12 digits in all: names, codes, most
// ids) must cost next to nothing.
size_t CountDigits(std::string_view s) {
  size_t n = 0;
  size_t i = 0;
#if defined(__SSE2__)
  // c is a digit when (c - '0') ^ 0x80, as a signed byte, is below
  // -128 + 10.
  const __m128i zero = _mm_set1_epi8('0');
  const __m128i flip = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i limit = _mm_set1_epi8(static_cast<char>(-128 + 10));
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i v =
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    const __m128i shifted = _mm_xor_si128(_mm_sub_epi8(v, zero), flip);
    const int mask = _mm_movemask_epi8(_mm_cmplt_epi8(shifted, limit));
    n += static_cast<size_t>(__builtin_popcount(static_cast<unsigned>(mask)));
  }
#endif
  for (; i < s.size(); ++i) {
    n += static_cast<unsigned char>(s[i] - '0') <= 9;
  }
  return n;
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
  // Every network's range starts with 2 to 6: most other numbers (epoch
  // milliseconds start with 1) are out after one compare.
  if (digits[0] < '2' || digits[0] > '6') return false;
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
  return FindCardNumber(text).end != 0;
}

bool MaskCardNumbersInPlace(std::string* text) {
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
