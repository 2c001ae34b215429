#include "domain/rules.h"

#include <algorithm>
#include <array>
#include <vector>

#include "domain/short_key.h"

namespace cbpipe::data {
// Generated from src/domain/data/*.csv by src/domain/CMakeLists.txt.
extern const std::string_view kCurrenciesCsv;
extern const std::string_view kReasonCodesCsv;
}  // namespace cbpipe::data

namespace cbpipe {
namespace {

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// A plain loop: through std::all_of the predicate was called, not inlined,
// and ARNs are checked digit by digit for every record.
bool AllDigits(std::string_view text) {
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// --- CSV tables --------------------------------------------------------------

// Splits the embedded tables. They are simple (no embedded commas today), but
// a deployment may extend them, so a quoted field without doubled quotes is
// understood too; a row that does not parse is skipped, and the tests pin the
// row counts so a skipped row is noticed.
class CsvLines {
 public:
  explicit CsvLines(std::string_view text) : rest_(text) {}

  // Next non-empty line without its line ending; false at the end.
  bool Next(std::string_view& line) {
    while (!rest_.empty()) {
      const size_t end = rest_.find('\n');
      line = rest_.substr(0, end);
      rest_ = end == std::string_view::npos ? std::string_view()
                                            : rest_.substr(end + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!TrimSpaces(line).empty()) return true;
    }
    return false;
  }

 private:
  std::string_view rest_;
};

// Exactly `N` fields or false.
template <size_t N>
bool SplitFields(std::string_view line, std::array<std::string_view, N>& out) {
  size_t count = 0;
  size_t pos = 0;
  while (true) {
    if (count == N) return false;
    std::string_view field;
    if (pos < line.size() && line[pos] == '"') {
      const size_t close = line.find('"', pos + 1);
      if (close == std::string_view::npos) return false;
      field = line.substr(pos + 1, close - pos - 1);
      pos = close + 1;
      if (pos < line.size() && line[pos] != ',') return false;
    } else {
      const size_t comma = line.find(',', pos);
      field = line.substr(pos, comma == std::string_view::npos
                                   ? std::string_view::npos
                                   : comma - pos);
      pos = comma == std::string_view::npos ? line.size() : comma;
    }
    out[count++] = TrimSpaces(field);
    if (pos >= line.size()) break;
    ++pos;  // the comma
  }
  return count == N;
}

// Currency codes are three upper-case letters, so a direct index over all
// 26^3 codes makes FindCurrency a single array read.
constexpr int kCurrencySlots = 26 * 26 * 26;

int CurrencySlot(std::string_view code) {
  if (code.size() != 3) return -1;
  int slot = 0;
  for (char c : code) {
    if (c < 'A' || c > 'Z') return -1;
    slot = slot * 26 + (c - 'A');
  }
  return slot;
}

struct CurrencyTable {
  std::vector<CurrencyInfo> entries;
  std::array<int16_t, kCurrencySlots> slot_to_entry;  // -1: unknown
};

const CurrencyTable& Currencies() {
  static const CurrencyTable* const table = [] {
    auto* t = new CurrencyTable;
    t->slot_to_entry.fill(-1);
    CsvLines lines(data::kCurrenciesCsv);
    std::string_view line;
    lines.Next(line);  // header
    while (lines.Next(line)) {
      std::array<std::string_view, 4> f;
      if (!SplitFields(line, f)) continue;
      const int slot = CurrencySlot(f[0]);
      if (slot < 0 || t->slot_to_entry[slot] >= 0) continue;
      if (f[1].empty() || f[1].size() > 3 || !AllDigits(f[1])) continue;
      if (f[2].size() != 1 || !IsDigit(f[2][0])) continue;
      int numeric = 0;
      for (char c : f[1]) numeric = numeric * 10 + (c - '0');
      t->slot_to_entry[slot] = static_cast<int16_t>(t->entries.size());
      t->entries.push_back({f[0], numeric, f[2][0] - '0'});
    }
    return t;
  }();
  return *table;
}

// Longer than any reason code in use ("12.6.1"); longer input cannot match,
// so the normalised key fits on the stack.
constexpr size_t kMaxReasonCodeLength = 15;

struct ReasonEntry {
  ShortKey key;  // upper case, for lookup (kMaxReasonCodeLength fits)
  ReasonCodeInfo info;
};
static_assert(kMaxReasonCodeLength <= ShortKey::kMaxLength);

struct ReasonTable {
  // Sorted by key within each network.
  std::array<std::vector<ReasonEntry>, kNetworkCount> by_network;
  // Open-addressing index into by_network, at most a quarter full: a code
  // is looked up for every record, and a binary search over a few hundred
  // keys mispredicts a branch at nearly every step.
  struct Index {
    std::vector<int32_t> slots;  // -1: empty
    uint64_t mask = 0;
  };
  std::array<Index, kNetworkCount> index;
};

const ReasonTable& ReasonCodes() {
  static const ReasonTable* const table = [] {
    auto* t = new ReasonTable;
    CsvLines lines(data::kReasonCodesCsv);
    std::string_view line;
    lines.Next(line);  // header
    while (lines.Next(line)) {
      std::array<std::string_view, 5> f;
      if (!SplitFields(line, f)) continue;
      const std::optional<Network> network = ParseNetwork(f[0]);
      if (!network || f[1].empty() || f[1].size() > kMaxReasonCodeLength) {
        continue;
      }
      if (f[4] != "current" && f[4] != "legacy") continue;
      t->by_network[static_cast<int>(*network)].push_back(
          {*ShortKey::Pack(f[1], AsciiUpper),
           {f[1], f[2], f[3], f[4] == "legacy"}});
    }
    for (auto& entries : t->by_network) {
      // Stable, so the first row of a duplicated code wins.
      std::stable_sort(entries.begin(), entries.end(),
                       [](const ReasonEntry& a, const ReasonEntry& b) {
                         return a.key < b.key;
                       });
      entries.erase(std::unique(entries.begin(), entries.end(),
                                [](const ReasonEntry& a, const ReasonEntry& b) {
                                  return a.key == b.key;
                                }),
                    entries.end());
    }
    for (int n = 0; n < kNetworkCount; ++n) {
      const std::vector<ReasonEntry>& entries = t->by_network[n];
      ReasonTable::Index& index = t->index[n];
      size_t size = 16;
      while (size < entries.size() * 4) size *= 2;
      index.slots.assign(size, -1);
      index.mask = size - 1;
      for (size_t e = 0; e < entries.size(); ++e) {
        uint64_t slot = entries[e].key.Hash() & index.mask;
        while (index.slots[slot] >= 0) slot = (slot + 1) & index.mask;
        index.slots[slot] = static_cast<int32_t>(e);
      }
    }
    return t;
  }();
  return *table;
}

// --- Money limits ------------------------------------------------------------

constexpr int64_t kMaxMinorUnits = 1'000'000'000'000'000;  // 10^15
// Larger exponents do not exist in ISO 4217 and would only push every amount
// toward kTooLarge.
constexpr int kMaxExponent = 18;

}  // namespace

// --- Luhn / ARN --------------------------------------------------------------

bool LuhnValid(std::string_view digits) {
  if (digits.empty()) return false;
  // Every second digit from the right is doubled, its digits summed: a
  // table instead of a branch per digit.
  static constexpr int kDoubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
  int sum = 0;
  const size_t n = digits.size();
  for (size_t k = 0; k < n; ++k) {
    const unsigned d = static_cast<unsigned char>(digits[n - 1 - k]) - '0';
    if (d > 9) return false;
    sum += (k & 1) ? kDoubled[d] : static_cast<int>(d);
  }
  return sum % 10 == 0;
}

ArnProblem CheckArn23(std::string_view arn) {
  if (arn.size() != 23 || !AllDigits(arn)) return ArnProblem::kFormat;
  return LuhnValid(arn) ? ArnProblem::kNone : ArnProblem::kCheckDigit;
}

bool IsValidOptionalReference(std::string_view arn) {
  return arn.size() >= 8 && arn.size() <= 30 && AllDigits(arn);
}

// --- PAN ---------------------------------------------------------------------

PanKind ClassifyPan(std::string_view pan) {
  // Separators and stray whitespace are dropped before the full-PAN test: a
  // real card number written "4111 1111 1111 1111" must be recognised (and
  // masked or rejected as a PAN), never passed on as merely invalid text.
  char digits[19];
  size_t digit_count = 0;
  bool only_digits_and_separators = true;
  for (char c : pan) {
    if (IsDigit(c)) {
      if (digit_count == sizeof(digits)) {
        only_digits_and_separators = false;
        break;
      }
      digits[digit_count++] = c;
    } else if (c != ' ' && c != '-' && c != '\t') {
      only_digits_and_separators = false;
      break;
    }
  }
  if (only_digits_and_separators) {
    const bool full =
        digit_count >= 12 && LuhnValid(std::string_view(digits, digit_count));
    return full ? PanKind::kFull : PanKind::kInvalid;
  }

  // Masked: up to 6 leading digits, one run of a single mask character, up to
  // 4 trailing digits. 'x' is accepted as well as 'X' and '*' because
  // processor exports use all three.
  size_t i = 0;
  while (i < pan.size() && IsDigit(pan[i])) ++i;
  const size_t leading = i;
  if (i == pan.size()) return PanKind::kInvalid;
  const char mask = pan[i];
  if (mask != '*' && mask != 'X' && mask != 'x') return PanKind::kInvalid;
  while (i < pan.size() && pan[i] == mask) ++i;
  const size_t mask_length = i - leading;
  const size_t trailing_start = i;
  while (i < pan.size() && IsDigit(pan[i])) ++i;
  const size_t trailing = i - trailing_start;
  if (i != pan.size() || leading > 6 || trailing > 4) return PanKind::kInvalid;
  if (leading > 0) {
    // Shows the BIN, so it must also have the length of a real PAN.
    return pan.size() >= 12 && pan.size() <= 19 ? PanKind::kMasked
                                                : PanKind::kInvalid;
  }
  // Last-4 style ("****1234"): processors commonly shorten the mask, and it
  // reveals nothing about the length.
  return mask_length >= 4 && pan.size() <= 19 ? PanKind::kMasked
                                              : PanKind::kInvalid;
}

std::string MaskPan(std::string_view pan) {
  std::string digits;
  digits.reserve(19);
  for (char c : pan) {
    if (IsDigit(c)) digits.push_back(c);
  }
  // Too short to show 6 + 4 without revealing everything: mask it all.
  if (digits.size() < 12) return std::string(digits.size(), '*');
  std::fill(digits.begin() + 6, digits.end() - 4, '*');
  return digits;
}

// --- Currencies --------------------------------------------------------------

const CurrencyInfo* FindCurrency(std::string_view code) {
  const int slot = CurrencySlot(code);
  if (slot < 0) return nullptr;
  const CurrencyTable& table = Currencies();
  const int entry = table.slot_to_entry[slot];
  return entry < 0 ? nullptr : &table.entries[entry];
}

// --- Money -------------------------------------------------------------------

ParsedAmount ParseAmount(std::string_view text, int exponent) {
  const ParsedAmount invalid{AmountProblem::kInvalid, 0};
  if (exponent < 0 || exponent > kMaxExponent) return invalid;
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  // All digits, integer and fraction, are accumulated as one number; once
  // past the limit the value stops growing, so no input can overflow.
  int64_t value = 0;
  bool too_large = false;
  auto push_digit = [&](char c) {
    if (too_large) return;
    value = value * 10 + (c - '0');
    if (value > kMaxMinorUnits) too_large = true;
  };
  const size_t int_start = i;
  while (i < text.size() && IsDigit(text[i])) push_digit(text[i++]);
  if (i == int_start) return invalid;  // "", "+", ".5"
  int decimals = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    const size_t frac_start = i;
    while (i < text.size() && IsDigit(text[i])) push_digit(text[i++]);
    decimals = static_cast<int>(i - frac_start);
    if (decimals == 0) return invalid;  // "5."
  }
  if (i != text.size()) return invalid;

  // A minus sign is the more useful message even when the digits have
  // other problems too.
  if (negative) return {AmountProblem::kNotPositive, 0};
  // Trailing zeros count: "1.500" USD is not how a USD amount is written,
  // which hints at a wrong currency or column.
  if (decimals > exponent) return {AmountProblem::kPrecision, 0};
  for (int k = decimals; k < exponent; ++k) push_digit('0');
  if (too_large) return {AmountProblem::kTooLarge, 0};
  if (value == 0) return {AmountProblem::kNotPositive, 0};
  return {AmountProblem::kNone, value};
}

std::string FormatAmount(int64_t minor, int exponent) {
  exponent = std::clamp(exponent, 0, kMaxExponent);
  // Unsigned so that INT64_MIN has a magnitude.
  uint64_t magnitude = static_cast<uint64_t>(minor);
  if (minor < 0) magnitude = 0 - magnitude;
  char buffer[24];
  int length = 0;
  do {
    buffer[length++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  while (length < exponent + 1) buffer[length++] = '0';
  std::string out;
  out.reserve(static_cast<size_t>(length) + 2);
  if (minor < 0) out.push_back('-');
  for (int i = length - 1; i >= 0; --i) {
    out.push_back(buffer[i]);
    if (i == exponent && exponent > 0) out.push_back('.');
  }
  return out;
}

// --- Reason codes ------------------------------------------------------------

const ReasonCodeInfo* FindReasonCode(Network network, std::string_view code) {
  code = TrimSpaces(code);
  if (code.empty() || code.size() > kMaxReasonCodeLength) return nullptr;
  const int index = static_cast<int>(network);
  if (index < 0 || index >= kNetworkCount) return nullptr;
  const ShortKey key = *ShortKey::Pack(code, AsciiUpper);
  const ReasonTable& table = ReasonCodes();
  const std::vector<ReasonEntry>& entries = table.by_network[index];
  const ReasonTable::Index& hashed = table.index[index];
  for (uint64_t slot = key.Hash() & hashed.mask;;
       slot = (slot + 1) & hashed.mask) {
    const int32_t e = hashed.slots[slot];
    if (e < 0) return nullptr;
    if (entries[e].key == key) return &entries[e].info;
  }
}

}  // namespace cbpipe
