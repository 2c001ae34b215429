#include "app/gen_sample.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "domain/network.h"
#include "domain/pan.h"

namespace cbpipe::data {
extern const std::string_view kReasonCodesCsv;
}  // namespace cbpipe::data

namespace cbpipe {
namespace {

// --- Randomness --------------------------------------------------------------

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

inline uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// splitmix64, one independent stream per (seed, stream): record i draws from
// its own stream, so it does not depend on how much earlier records drew.
// std::uniform_*_distribution is avoided on purpose: its output differs
// between standard libraries, and the sample must be byte-identical.
class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream)
      : state_(Mix64(seed ^ Mix64(stream + kGolden))) {}

  uint64_t Next() {
    state_ += kGolden;
    return Mix64(state_);
  }
  // Uniform in [0, n); n > 0. Lemire's multiply-shift, no division.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >>
                                 64);
  }
  int BelowInt(int n) {
    return static_cast<int>(Below(static_cast<uint64_t>(n)));
  }
  bool Percent(int p) { return Below(100) < static_cast<uint64_t>(p); }
  char Digit() { return static_cast<char>('0' + Below(10)); }

 private:
  uint64_t state_;
};

// Merchant attributes come from streams of their own, far from record ids.
constexpr uint64_t kMerchantStream = 1ULL << 63;
constexpr int kMerchantCount = 5000;

template <typename T, size_t N>
const T& PickWeighted(Rng& rng, const T (&items)[N]) {
  int total = 0;
  for (const T& item : items) total += item.weight;
  int r = rng.BelowInt(total);
  for (const T& item : items) {
    if (r < item.weight) return item;
    r -= item.weight;
  }
  return items[N - 1];
}

template <typename T, size_t N>
const T& Pick(Rng& rng, const T (&items)[N]) {
  return items[rng.Below(N)];
}

// --- Reference data ----------------------------------------------------------

struct NetworkProfile {
  Network network;
  std::string_view name;
  std::string_view aliases[3];
  int weight;
};
constexpr NetworkProfile kNetworks[] = {
    {Network::kVisa, "visa", {"VISA", "Visa", "VI"}, 50},
    {Network::kMastercard,
     "mastercard",
     {"MC", "Mastercard", "MASTER CARD"},
     30},
    {Network::kAmex, "amex", {"AMEX", "AX", "American Express"}, 12},
    {Network::kDiscover, "discover", {"DISCOVER", "DS", "DI"}, 8},
};

struct CurrencyChoice {
  std::string_view code;
  int exponent;
  int weight;
};
constexpr CurrencyChoice kCurrencies[] = {
    {"USD", 2, 40}, {"EUR", 2, 20}, {"GBP", 2, 10}, {"JPY", 0, 6},
    {"CAD", 2, 5},  {"AUD", 2, 4},  {"KWD", 3, 3},  {"CHF", 2, 3},
    {"SEK", 2, 2},  {"MXN", 2, 2},  {"INR", 2, 2},  {"BHD", 3, 1},
    {"KRW", 0, 2},
};

struct StageChoice {
  std::string_view name;  // empty: the column is left blank (default stage)
  int weight;
};
constexpr StageChoice kStages[] = {
    {"first_chargeback", 70}, {"retrieval", 8},   {"representment", 10},
    {"pre_arbitration", 7},   {"arbitration", 3}, {"", 2},
};

// Commas, double quotes, apostrophes and non-ASCII letters on purpose: they
// exercise CSV quoting and JSON escaping.
constexpr std::string_view kMerchantNames[] = {
    "Joe's Diner",
    "Acme Widgets, Inc.",
    "The \"Best\" Pizza, Ltd.",
    "O'Reilly Auto Parts",
    "Caf\xc3\xa9 de l'Olympe",
    "M\xc3\xbcller & S\xc3\xb6hne GmbH",
    "Big Bob's \"Discount\" Tires",
    "Northwind Traders",
    "Contoso Books",
    "Fabrikam, Inc.",
    "Tailspin Toys",
    "Blue Yonder Airlines",
    "Wide World Importers",
    "Adventure Works Cycles",
    "Coho Winery",
    "Proseware, Inc.",
    "Litware \"Online\" Store",
    "Sakura Sushi \xe6\xa1\x9c",
    "\xc3\x98rsted Outdoor, ApS",
    "Pat's \"Famous\" Cheesesteaks, Philadelphia",
    "Main St. Deli",
    "24/7 Fitness",
    "Zo\xc3\xab's Kitchen",
    "Trey Research",
    "Margie's Travel",
};

constexpr std::string_view kMccs[] = {
    "5411", "5812", "5999", "4121", "7011", "5732", "5311", "4511",
    "5691", "5942", "5814", "0742", "4814", "5541", "7399", "5912",
};

constexpr std::string_view kDateOffsets[] = {"+01:00", "-05:00", "+05:30",
                                             "+09:00", "-03:00"};

// Values each chosen to break exactly one rule.
constexpr std::string_view kUnknownNetworks[] = {
    "JCB", "UnionPay", "Diners Club", "Maestro", "RuPay", "ELO"};
// Masked PANs whose leading digits belong to no supported network (JCB,
// Diners Club, Maestro): with no network column they leave it unknown.
constexpr std::string_view kForeignPans[] = {
    "353011******0005", "358912******2231", "360569****5904", "305693****0009",
    "675964******7812"};
constexpr std::string_view kUnknownReasonCodes[kNetworkCount][4] = {
    {"10.9", "14.1", "99", "4853"},     // visa
    {"4899", "4800", "10.4", "48.53"},  // mastercard
    {"A99", "Z01", "4853", "C99"},      // amex
    {"UA99", "ZZ", "10.4", "4853"},     // discover
};
constexpr std::string_view kUnknownCurrencies[] = {"XYZ", "US$", "EURO",
                                                   "BTC", "RMB", "UKP"};
// Each fails ParseAmount with kInvalid, kNotPositive or kTooLarge (all
// AMOUNT_INVALID) whatever the currency's exponent.
constexpr std::string_view kInvalidAmounts[] = {"1,234.50",
                                                "12.5.0",
                                                "1e3",
                                                "abc",
                                                ".50",
                                                "5.",
                                                "$12.00",
                                                "12 .00",
                                                "-15.00",
                                                "0",
                                                "99999999999999999",
                                                "NaN"};
constexpr std::string_view kBadMccs[] = {"12a4", "541", "54111", "ABCD"};
constexpr std::string_view kBadStages[] = {"bogus", "second_chargeback",
                                           "escalated", "closed"};

struct ReasonCodeLists {
  std::vector<std::string_view> current[kNetworkCount];
  std::vector<std::string_view> legacy[kNetworkCount];
};

std::string_view TrimText(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// The compiled-in reason_codes.csv (network,code,category,description,
// status; no quoted fields), split per network and status.
const ReasonCodeLists& ReasonCodes() {
  static const ReasonCodeLists* const lists = [] {
    auto* l = new ReasonCodeLists;
    std::string_view text = data::kReasonCodesCsv;
    bool header = true;
    while (!text.empty()) {
      const size_t eol = text.find('\n');
      std::string_view line = text.substr(0, eol);
      text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
      if (header) {
        header = false;
        continue;
      }
      std::string_view f[5];
      size_t count = 0;
      while (count < 5) {
        const size_t comma = line.find(',');
        f[count++] = TrimText(line.substr(0, comma));
        if (comma == std::string_view::npos) break;
        line.remove_prefix(comma + 1);
      }
      if (count != 5 || f[1].empty()) continue;
      for (const NetworkProfile& p : kNetworks) {
        if (f[0] != p.name) continue;
        const int n = static_cast<int>(p.network);
        if (f[4] == "current") l->current[n].push_back(f[1]);
        if (f[4] == "legacy") l->legacy[n].push_back(f[1]);
      }
    }
    return l;
  }();
  return *lists;
}

// --- Invalid record plan -----------------------------------------------------

enum class Kind : uint8_t {
  kMissingField,
  kNetworkUnknown,
  kArnCheckDigit,
  kArnFormat,
  kUnknownReasonCode,
  kCurrencyUnknown,
  kAmountInvalid,
  kAmountPrecision,
  kDateInvalid,
  kDateOrder,
  kDateFuture,
  kDuplicateCase,
  kBadFormat,
  kValid,
};
constexpr uint64_t kKindCount = kSampleInvalidKinds.size();

// Bresenham-style: record i is invalid when floor((i+1)k/n) > floor(ik/n),
// which picks exactly k of n records, evenly spaced; the invalid records'
// ordinal floor(ik/n) chooses the kind in rotation.
class InvalidPlan {
 public:
  InvalidPlan(uint64_t records, uint64_t invalid) : n_(records), k_(invalid) {}

  Kind KindOf(uint64_t i) const {
    if (k_ == 0) return Kind::kValid;
    const uint64_t ordinal = Floor(i);
    if (Floor(i + 1) == ordinal) return Kind::kValid;
    return static_cast<Kind>(ordinal % kKindCount);
  }
  // Among records of the same kind, which variant: 0, 1, 2, ...
  uint64_t VariantOf(uint64_t i) const { return Floor(i) / kKindCount; }

 private:
  uint64_t Floor(uint64_t i) const {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(i) * k_ / n_);
  }
  uint64_t n_, k_;
};

// Fields MISSING_FIELD records leave blank, in rotation. The last blanks both
// network and pan, so the network can be neither read nor derived.
enum class MissingField : uint8_t {
  kMerchantId,
  kAmount,
  kCurrency,
  kReasonCode,
  kTransactionDate,
  kChargebackDate,
  kArn,
  kNetworkAndPan,
};
constexpr uint64_t kMissingFieldCount = 8;

// --- Dates -------------------------------------------------------------------

struct CivilDate {
  int year, month, day;
};

// Howard Hinnant's civil_from_days: proleptic Gregorian, days since
// 1970-01-01.
CivilDate CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return {static_cast<int>(y), static_cast<int>(m), static_cast<int>(d)};
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DayOfYear(const CivilDate& d) {
  static constexpr int kBefore[] = {0,   31,  59,  90,  120, 151,
                                    181, 212, 243, 273, 304, 334};
  return kBefore[d.month - 1] + d.day + (d.month > 2 && IsLeap(d.year) ? 1 : 0);
}

int64_t FloorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0 && (a < 0) != (b < 0)) ? 1 : 0);
}

// --- Text helpers ------------------------------------------------------------

// A short string stored inline, so that building a record allocates nothing.
// Every value the generator makes is far below the capacity (the longest
// merchant name with its store number is under 70 bytes); anything past it
// would be dropped, never written out of bounds.
class FieldText {
 public:
  static constexpr size_t kCapacity = 120;

  void clear() { size_ = 0; }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  char& operator[](size_t i) { return data_[i]; }
  char& back() { return data_[size_ - 1]; }
  void pop_back() { --size_; }
  void push_back(char c) {
    if (size_ < kCapacity) data_[size_++] = c;
  }
  void append(std::string_view s) {
    const size_t n = std::min(s.size(), kCapacity - size_);
    std::memcpy(data_ + size_, s.data(), n);
    size_ += n;
  }
  void append(size_t count, char c) {
    const size_t n = std::min(count, kCapacity - size_);
    std::memset(data_ + size_, c, n);
    size_ += n;
  }
  void assign(std::string_view s) {
    size_ = 0;
    append(s);
  }
  void insert(size_t pos, char c) {
    if (size_ == kCapacity || pos > size_) return;
    std::memmove(data_ + pos + 1, data_ + pos, size_ - pos);
    data_[pos] = c;
    ++size_;
  }
  std::string_view view() const { return {data_, size_}; }

 private:
  char data_[kCapacity];
  size_t size_ = 0;
};

// `value` in decimal, zero-padded to at least `width` (at most 20) digits.
void AppendNumber(FieldText& out, uint64_t value, int width) {
  static constexpr char kPairs[] =
      "0001020304050607080910111213141516171819"
      "2021222324252627282930313233343536373839"
      "4041424344454647484950515253545556575859"
      "6061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char buffer[24];
  char* end = buffer + sizeof(buffer);
  char* p = end;
  while (value >= 100) {
    const uint64_t pair = value % 100;
    value /= 100;
    p -= 2;
    std::memcpy(p, kPairs + 2 * pair, 2);
  }
  if (value >= 10) {
    p -= 2;
    std::memcpy(p, kPairs + 2 * value, 2);
  } else {
    *--p = static_cast<char>('0' + value);
  }
  while (end - p < width && p > buffer) *--p = '0';
  out.append(std::string_view(p, static_cast<size_t>(end - p)));
}

constexpr uint64_t kPowersOf10[] = {1,
                                    10,
                                    100,
                                    1000,
                                    10000,
                                    100000,
                                    1000000,
                                    10000000,
                                    100000000,
                                    1000000000,
                                    10000000000,
                                    100000000000,
                                    1000000000000,
                                    10000000000000,
                                    100000000000000,
                                    1000000000000000};

// `count` uniform random digits, up to 15 per draw.
void AppendDigits(FieldText& out, Rng& rng, int count) {
  while (count > 0) {
    const int n = std::min(count, 15);
    AppendNumber(out, rng.Below(kPowersOf10[n]), n);
    count -= n;
  }
}

// Luhn check digit for `body` (digits only), so that body + digit passes.
char LuhnCheckDigit(std::string_view body) {
  int sum = 0;
  bool twice = true;  // the check digit itself will be the undoubled one
  for (size_t i = body.size(); i-- > 0;) {
    int d = body[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return static_cast<char>('0' + (10 - sum % 10) % 10);
}

// Identifiers and references are random digits, and one in a few dozen
// would be a card number (Luhn-valid, in a network's range), which the
// validator rightly rejects (PAN_IN_FIELD): a valid record must not carry
// one. Changing the last digit breaks the Luhn check.
void AvoidCardNumber(FieldText& digits) {
  if (digits.size() == 0 || !IsCardNumber(digits.view())) return;
  char& last = digits.back();
  last = static_cast<char>('0' + (last - '0' + 1) % 10);
}

enum class DateStyle {
  kDate,
  kDateTimeZ,
  kDateTimeSpace,
  kDateTimeOffset,
  kCompact
};

void AppendDate(FieldText& out, int64_t days, DateStyle style,
                int seconds_of_day, std::string_view offset) {
  const CivilDate d = CivilFromDays(days);
  const bool compact = style == DateStyle::kCompact;
  AppendNumber(out, static_cast<uint64_t>(d.year), 4);
  if (!compact) out.push_back('-');
  AppendNumber(out, static_cast<uint64_t>(d.month), 2);
  if (!compact) out.push_back('-');
  AppendNumber(out, static_cast<uint64_t>(d.day), 2);
  if (style == DateStyle::kDate || compact) return;
  out.push_back(style == DateStyle::kDateTimeSpace ? ' ' : 'T');
  AppendNumber(out, static_cast<uint64_t>(seconds_of_day / 3600), 2);
  out.push_back(':');
  AppendNumber(out, static_cast<uint64_t>(seconds_of_day / 60 % 60), 2);
  out.push_back(':');
  AppendNumber(out, static_cast<uint64_t>(seconds_of_day % 60), 2);
  if (style == DateStyle::kDateTimeZ) out.push_back('Z');
  if (style == DateStyle::kDateTimeOffset) out.append(offset);
}

// Minor units as a decimal with exactly `exponent` decimals.
void AppendAmount(FieldText& out, uint64_t minor, int exponent) {
  uint64_t scale = 1;
  for (int i = 0; i < exponent; ++i) scale *= 10;
  AppendNumber(out, minor / scale, 1);
  if (exponent > 0) {
    out.push_back('.');
    AppendNumber(out, minor % scale, exponent);
  }
}

// --- Records -----------------------------------------------------------------

enum Column : int {
  kCaseId,
  kNetwork,
  kArn,
  kPan,
  kMerchantId,
  kMerchantName,
  kMcc,
  kTransactionId,
  kTransactionDate,
  kChargebackDate,
  kAmount,
  kCurrency,
  kReasonCode,
  kStage,
  kColumnCount,
};
static_assert(kColumnCount == kSampleColumns.size());

struct SampleRecord {
  FieldText values[kColumnCount];
  bool amount_as_number = false;  // JSON: unquoted
  bool keep_empty = false;        // JSON: "" rather than leaving the key out

  void Clear() {
    for (FieldText& v : values) v.clear();
    amount_as_number = false;
    keep_empty = false;
  }
};

class RecordMaker {
 public:
  RecordMaker(const SampleOptions& options, const InvalidPlan& plan)
      : options_(options),
        plan_(plan),
        now_days_(FloorDiv(options.now_epoch_seconds, 86400)),
        reasons_(ReasonCodes()) {}

  // Fills `rec` with record i; returns its kind.
  Kind Make(uint64_t i, SampleRecord& rec);

 private:
  void AppendCaseId(FieldText& out, uint64_t i) const {
    out.append("CB");
    AppendNumber(out, i + 1, 10);
  }
  void MakeArn(Rng& rng, int64_t transaction_day, FieldText& out) const;
  void MakePan(Rng& rng, Network network, FieldText& out) const;

  const SampleOptions& options_;
  const InvalidPlan& plan_;
  const int64_t now_days_;
  const ReasonCodeLists& reasons_;
};

// Format digit, acquirer BIN (6), Julian date YDDD of the transaction (4),
// sequence (11), Luhn check digit. Some format digits and BINs are zero, so
// leading zeros occur.
void RecordMaker::MakeArn(Rng& rng, int64_t transaction_day,
                          FieldText& out) const {
  const size_t start = out.size();
  static constexpr char kFormatDigits[] = {'2', '7', '7', '2', '0', '8'};
  out.push_back(kFormatDigits[rng.Below(sizeof(kFormatDigits))]);
  if (rng.Percent(10)) out.append("00");
  while (out.size() - start < 7) out.push_back(rng.Digit());
  const CivilDate d = CivilFromDays(transaction_day);
  AppendNumber(out, static_cast<uint64_t>(d.year % 10), 1);
  AppendNumber(out, static_cast<uint64_t>(DayOfYear(d)), 3);
  AppendDigits(out, rng, 11);
  out.push_back(LuhnCheckDigit(out.view().substr(start)));
}

// First 6 + last 4 digits with the middle masked; the BIN matches the
// network. Amex PANs have 15 digits.
void RecordMaker::MakePan(Rng& rng, Network network, FieldText& out) const {
  int length = 16;
  switch (network) {
    case Network::kVisa:
      out.push_back('4');
      AppendDigits(out, rng, 5);
      if (rng.Percent(3)) length = 19;
      break;
    case Network::kMastercard:
      if (rng.Percent(70)) {
        out.push_back('5');
        out.push_back(static_cast<char>('1' + rng.Below(5)));
        AppendDigits(out, rng, 4);
      } else {
        AppendNumber(out, 2221 + rng.Below(2720 - 2221 + 1), 4);
        AppendDigits(out, rng, 2);
      }
      break;
    case Network::kAmex:
      out.append(rng.Percent(50) ? "34" : "37");
      AppendDigits(out, rng, 4);
      length = 15;
      break;
    case Network::kDiscover:
      switch (rng.Below(3)) {
        case 0:
          out.append("6011");
          AppendDigits(out, rng, 2);
          break;
        case 1:
          out.append("64");
          out.push_back(static_cast<char>('4' + rng.Below(6)));
          AppendDigits(out, rng, 3);
          break;
        default:
          out.append("65");
          AppendDigits(out, rng, 4);
          break;
      }
      break;
  }
  const char mask = rng.Percent(5) ? 'X' : '*';
  if (rng.Percent(3)) out.clear();  // last four only: "************1234"
  out.append(static_cast<size_t>(length - 4 - static_cast<int>(out.size())),
             mask);
  AppendDigits(out, rng, 4);
}

Kind RecordMaker::Make(uint64_t i, SampleRecord& rec) {
  rec.Clear();
  Rng rng(options_.seed, i);
  const Kind kind = plan_.KindOf(i);
  const uint64_t variant = plan_.VariantOf(i);
  FieldText* v = rec.values;

  const bool needs_arn_network =
      kind == Kind::kArnCheckDigit ||
      (kind == Kind::kMissingField &&
       static_cast<MissingField>(variant % kMissingFieldCount) ==
           MissingField::kArn);
  const NetworkProfile& profile = needs_arn_network
                                      ? kNetworks[rng.Below(2)]
                                      : PickWeighted(rng, kNetworks);
  const Network network = profile.network;
  const int n = static_cast<int>(network);
  const bool needs_arn =
      network == Network::kVisa || network == Network::kMastercard;

  // case id
  if (kind == Kind::kDuplicateCase) {
    // An earlier record's id; duplicates themselves carry someone else's id,
    // so step back past them (record 0 is never a duplicate).
    uint64_t j = rng.Below(i);
    while (plan_.KindOf(j) == Kind::kDuplicateCase) --j;
    AppendCaseId(v[kCaseId], j);
  } else {
    AppendCaseId(v[kCaseId], i);
  }

  // network and pan
  const int network_style = rng.BelowInt(100);
  if (network_style < 10) {
    v[kNetwork].assign(profile.aliases[rng.Below(3)]);
  } else {
    v[kNetwork].assign(profile.name);
  }
  if (!rng.Percent(7)) MakePan(rng, network, v[kPan]);
  // Sometimes the network is left for the reader to derive from the PAN.
  if (network_style >= 97 && !v[kPan].empty() && v[kPan][0] != '*' &&
      v[kPan][0] != 'X') {
    v[kNetwork].clear();
  }

  // merchant
  const uint64_t merchant = rng.Below(kMerchantCount);
  {
    Rng m(options_.seed, kMerchantStream | merchant);
    v[kMerchantId].push_back(static_cast<char>('1' + m.Below(9)));
    AppendDigits(v[kMerchantId], m, 11);
    AvoidCardNumber(v[kMerchantId]);
    v[kMerchantName].assign(Pick(m, kMerchantNames));
    if (m.Percent(50)) {
      v[kMerchantName].append(" #");
      AppendNumber(v[kMerchantName], 1 + m.Below(999), 1);
    }
    v[kMcc].assign(Pick(m, kMccs));
  }
  AppendDigits(v[kTransactionId], rng, 15);
  AvoidCardNumber(v[kTransactionId]);

  // dates: both at least two days in the past, the chargeback at least two
  // days after the transaction, so no time zone offset can reorder them
  int64_t chargeback_day = now_days_ - 2 - static_cast<int64_t>(rng.Below(365));
  int64_t transaction_day =
      chargeback_day - 2 - static_cast<int64_t>(rng.Below(119));
  if (kind == Kind::kDateOrder) {
    chargeback_day = now_days_ - 40 - static_cast<int64_t>(rng.Below(330));
    transaction_day = chargeback_day + 2 + static_cast<int64_t>(rng.Below(29));
  } else if (kind == Kind::kDateFuture) {
    chargeback_day = now_days_ + 2 + static_cast<int64_t>(rng.Below(60));
    transaction_day = now_days_ - 2 - static_cast<int64_t>(rng.Below(120));
  }
  const int date_style = rng.BelowInt(100);
  const DateStyle style = date_style < 80   ? DateStyle::kDate
                          : date_style < 90 ? DateStyle::kDateTimeZ
                          : date_style < 95 ? DateStyle::kDateTimeSpace
                          : date_style < 98 ? DateStyle::kDateTimeOffset
                                            : DateStyle::kCompact;
  const std::string_view offset = Pick(rng, kDateOffsets);
  AppendDate(v[kTransactionDate], transaction_day, style, rng.BelowInt(86400),
             offset);
  AppendDate(v[kChargebackDate], chargeback_day, style, rng.BelowInt(86400),
             offset);

  // arn
  if (needs_arn) {
    MakeArn(rng, transaction_day, v[kArn]);
  } else if (rng.Percent(40)) {
    AppendDigits(v[kArn], rng, 8 + rng.BelowInt(23));
    AvoidCardNumber(v[kArn]);
  }

  // amount and currency
  const CurrencyChoice& currency = PickWeighted(rng, kCurrencies);
  v[kCurrency].assign(currency.code);
  if (rng.Percent(3)) {
    for (size_t k = 0; k < v[kCurrency].size(); ++k) {
      v[kCurrency][k] = static_cast<char>(v[kCurrency][k] - 'A' + 'a');
    }
  }
  {
    uint64_t low = 1;
    for (int d = rng.BelowInt(4) + 2; d > 0; --d) low *= 10;
    const uint64_t minor = low + rng.Below(9 * low);  // 3 to 6 digits
    FieldText& amount = v[kAmount];
    AppendAmount(amount, minor, currency.exponent);
    if (currency.exponent > 0 && rng.Percent(10)) {
      // "12.50" -> "12.5", "12.00" -> "12": fewer decimals are allowed.
      while (amount.back() == '0') amount.pop_back();
      if (amount.back() == '.') amount.pop_back();
    }
    rec.amount_as_number = rng.Percent(25);
  }

  // reason code: mostly current codes, some legacy
  {
    const auto& current = reasons_.current[n];
    const auto& legacy = reasons_.legacy[n];
    const bool use_legacy =
        !legacy.empty() && (current.empty() || rng.Percent(10));
    const auto& list = use_legacy ? legacy : current;
    if (!list.empty()) v[kReasonCode].assign(list[rng.Below(list.size())]);
  }

  const StageChoice& stage = PickWeighted(rng, kStages);
  v[kStage].assign(stage.name);
  rec.keep_empty = rng.Percent(30);

  // Break exactly one rule.
  switch (kind) {
    case Kind::kValid: break;
    case Kind::kMissingField:
      switch (static_cast<MissingField>(variant % kMissingFieldCount)) {
        case MissingField::kMerchantId: v[kMerchantId].clear(); break;
        case MissingField::kAmount: v[kAmount].clear(); break;
        case MissingField::kCurrency: v[kCurrency].clear(); break;
        case MissingField::kReasonCode: v[kReasonCode].clear(); break;
        case MissingField::kTransactionDate: v[kTransactionDate].clear(); break;
        case MissingField::kChargebackDate: v[kChargebackDate].clear(); break;
        case MissingField::kArn: v[kArn].clear(); break;
        case MissingField::kNetworkAndPan:
          v[kNetwork].clear();
          v[kPan].clear();
          break;
      }
      break;
    case Kind::kNetworkUnknown:
      if (rng.Percent(50)) {
        v[kNetwork].assign(Pick(rng, kUnknownNetworks));
      } else {
        v[kNetwork].clear();
        v[kPan].assign(Pick(rng, kForeignPans));
      }
      break;
    case Kind::kArnCheckDigit: {
      char& check = v[kArn].back();
      check = static_cast<char>('0' + (check - '0' + 1 + rng.BelowInt(9)) % 10);
      break;
    }
    case Kind::kArnFormat: {
      FieldText& arn = v[kArn];
      if (!needs_arn) {
        arn.clear();
        AppendDigits(arn, rng, rng.Percent(50) ? 5 : 31);
        break;
      }
      const FieldText original = arn;
      switch (rng.Below(4)) {
        case 0: arn.pop_back(); break;                // 22 digits
        case 1: arn.push_back(rng.Digit()); break;    // 24 digits
        case 2: arn[1 + rng.Below(21)] = 'O'; break;  // a letter
        default: arn.insert(7, '-'); break;           // a separator
      }
      // A letter or separator splits the digits in two groups, and one of
      // them may be a card number by chance (PAN_IN_FIELD as well): one
      // digit short instead.
      if (ContainsCardNumber(arn.view())) {
        arn = original;
        arn.pop_back();
      }
      break;
    }
    case Kind::kUnknownReasonCode:
      v[kReasonCode].assign(kUnknownReasonCodes[n][rng.Below(4)]);
      break;
    case Kind::kCurrencyUnknown:
      // The amount still has at most 3 decimals, which any exponent the
      // validator assumes for an unknown currency (4) accepts.
      v[kCurrency].assign(Pick(rng, kUnknownCurrencies));
      break;
    case Kind::kAmountInvalid:
      v[kAmount].assign(Pick(rng, kInvalidAmounts));
      rec.amount_as_number = false;
      break;
    case Kind::kAmountPrecision: {
      FieldText& amount = v[kAmount];
      amount.clear();
      AppendAmount(amount, 100 + rng.Below(99900), currency.exponent);
      if (currency.exponent == 0) amount.push_back('.');
      // One decimal too many: a significant digit, or a trailing zero.
      amount.push_back(rng.Percent(70) ? static_cast<char>('1' + rng.Below(9))
                                       : '0');
      break;
    }
    case Kind::kDateInvalid: {
      FieldText& date =
          rng.Percent(50) ? v[kTransactionDate] : v[kChargebackDate];
      const CivilDate d = CivilFromDays(chargeback_day);
      date.clear();
      const uint64_t year = static_cast<uint64_t>(d.year);
      switch (rng.Below(6)) {
        case 0:
          AppendNumber(date, year, 4);
          date.append("-02-30");
          break;
        case 1:  // 29 February of a common year
          AppendNumber(date, IsLeap(d.year) ? year - 1 : year, 4);
          date.append("-02-29");
          break;
        case 2:
          AppendNumber(date, year, 4);
          date.append("-04-31");
          break;
        case 3:
          AppendNumber(date, year, 4);
          date.append("-13-01");
          break;
        case 4:
          AppendNumber(date, year, 4);
          date.append("-00-10");
          break;
        default:
          AppendNumber(date, year, 4);
          date.append("-06-15T24:00:00Z");
          break;
      }
      break;
    }
    case Kind::kDateOrder:
    case Kind::kDateFuture:
    case Kind::kDuplicateCase: break;  // done above
    case Kind::kBadFormat:
      if (rng.Percent(50)) {
        v[kMcc].assign(Pick(rng, kBadMccs));
      } else {
        v[kStage].assign(Pick(rng, kBadStages));
      }
      break;
  }
  return kind;
}

// --- Writers -----------------------------------------------------------------

// Output is assembled in a flat buffer and written in large blocks. A record
// is at most 14 fields of FieldText::kCapacity bytes, each growing at most
// 6-fold when escaped, plus keys and punctuation: kRecordBound bytes. The
// buffer is flushed as soon as less than that is free, so a record is
// written without bounds checks.
class OutputBuffer {
 public:
  static constexpr size_t kFlushBytes = 1 << 20;
  static constexpr size_t kRecordBound =
      kColumnCount * (6 * FieldText::kCapacity + 32) + 16;

  explicit OutputBuffer(std::FILE* out)
      : out_(out), data_(new char[kFlushBytes + kRecordBound]) {}

  void Put(char c) { data_[size_++] = c; }
  void Put(std::string_view s) {
    std::memcpy(data_.get() + size_, s.data(), s.size());
    size_ += s.size();
  }
  Status FlushIfFull() { return size_ >= kFlushBytes ? Flush() : OkStatus(); }
  Status Flush() {
    if (size_ == 0) return OkStatus();
    const size_t written = std::fwrite(data_.get(), 1, size_, out_);
    if (written != size_) {
      return InternalError(std::string("writing the sample failed: ") +
                           std::strerror(errno));
    }
    size_ = 0;
    return OkStatus();
  }

 private:
  std::FILE* out_;
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

bool CsvNeedsQuotes(std::string_view value) {
  if (value.empty()) return false;
  if (value.front() == ' ' || value.back() == ' ') return true;
  // Bytes 0x0A, 0x0D, 0x22 and 0x2C ('\n', '\r', '"', ','), as a bit mask.
  constexpr uint64_t kSpecial =
      (1ULL << '\n') | (1ULL << '\r') | (1ULL << '"') | (1ULL << ',');
  bool special = false;
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    special |= c < 64 && ((kSpecial >> c) & 1) != 0;
  }
  return special;
}

void PutCsvField(OutputBuffer& out, std::string_view value, bool quote) {
  if (!quote && !CsvNeedsQuotes(value)) {
    out.Put(value);
    return;
  }
  out.Put('"');
  for (char c : value) {
    if (c == '"') out.Put('"');
    out.Put(c);
  }
  out.Put('"');
}

void PutCsvRecord(OutputBuffer& out, const SampleRecord& rec) {
  for (int c = 0; c < kColumnCount; ++c) {
    if (c > 0) out.Put(',');
    // ARNs are always quoted: they are text, and leading zeros are real.
    const std::string_view value = rec.values[c].view();
    PutCsvField(out, value, c == kArn && !value.empty());
  }
  out.Put('\n');
}

void PutJsonString(OutputBuffer& out, std::string_view value) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.Put('"');
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out.Put('\\');
      out.Put(ch);
    } else if (c < 0x20) {
      out.Put("\\u00");
      out.Put(kHex[c >> 4]);
      out.Put(kHex[c & 15]);
    } else {
      out.Put(ch);
    }
  }
  out.Put('"');
}

void PutJsonRecord(OutputBuffer& out, const SampleRecord& rec) {
  out.Put('{');
  bool first = true;
  for (int c = 0; c < kColumnCount; ++c) {
    const std::string_view value = rec.values[c].view();
    if (value.empty() && !rec.keep_empty) continue;
    if (!first) out.Put(',');
    first = false;
    out.Put('"');
    out.Put(kSampleColumns[c]);
    out.Put("\":");
    if (c == kAmount && rec.amount_as_number && !value.empty()) {
      out.Put(value);
    } else {
      PutJsonString(out, value);
    }
  }
  out.Put("}\n");
}

constexpr uint64_t kMaxRecords = 9'999'999'999ULL;  // case ids: 10 digits
constexpr int64_t kMinNow = 63'072'000;             // 1972-01-01
constexpr int64_t kMaxNow = 253'370'764'800;        // 9999-01-01

}  // namespace

StatusOr<SampleStats> WriteSample(const SampleOptions& options,
                                  std::FILE* out) {
  if (!(options.invalid_ratio >= 0.0 && options.invalid_ratio <= 1.0)) {
    return InvalidArgumentError("invalid_ratio must be between 0 and 1");
  }
  if (options.records > kMaxRecords) {
    return InvalidArgumentError("at most 9999999999 records (10-digit ids)");
  }
  if (out == nullptr) return InvalidArgumentError("no output stream");
  // Dates reach about 500 days back and 62 days ahead; all must be four-digit
  // years. Zero is refused too: it is what a caller who forgot to set the
  // present passes.
  if (options.now_epoch_seconds < kMinNow ||
      options.now_epoch_seconds >= kMaxNow) {
    return InvalidArgumentError(
        "now_epoch_seconds must be between 1972 and 9998");
  }

  const auto invalid = static_cast<uint64_t>(std::llround(
      static_cast<double>(options.records) * options.invalid_ratio));
  const InvalidPlan plan(options.records, invalid);
  RecordMaker maker(options, plan);
  SampleStats stats;
  stats.records = options.records;
  uint64_t by_kind[kKindCount] = {};

  OutputBuffer buffer(out);
  const bool csv = options.format == SampleFormat::kCsv;
  if (csv) {
    for (size_t c = 0; c < kSampleColumns.size(); ++c) {
      if (c > 0) buffer.Put(',');
      buffer.Put(kSampleColumns[c]);
    }
    buffer.Put('\n');
  }
  SampleRecord rec;
  for (uint64_t i = 0; i < options.records; ++i) {
    const Kind kind = maker.Make(i, rec);
    if (kind != Kind::kValid) {
      ++stats.invalid;
      ++by_kind[static_cast<int>(kind)];
    }
    if (csv) {
      PutCsvRecord(buffer, rec);
    } else {
      PutJsonRecord(buffer, rec);
    }
    CBPIPE_RETURN_IF_ERROR(buffer.FlushIfFull());
  }
  CBPIPE_RETURN_IF_ERROR(buffer.Flush());
  if (std::fflush(out) != 0) {
    return InternalError(std::string("writing the sample failed: ") +
                         std::strerror(errno));
  }
  for (uint64_t k = 0; k < kKindCount; ++k) {
    if (by_kind[k] > 0) {
      stats.invalid_by_kind[std::string(kSampleInvalidKinds[k])] = by_kind[k];
    }
  }
  return stats;
}

}  // namespace cbpipe
