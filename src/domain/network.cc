#include "domain/network.h"

#include <array>
#include <iterator>

#include "domain/short_key.h"

namespace cbpipe {
namespace {

struct NetworkAlias {
  std::string_view name;  // upper case
  Network network;
};

constexpr NetworkAlias kNetworkAliases[] = {
    {"VI", Network::kVisa},
    {"VISA", Network::kVisa},
    {"MC", Network::kMastercard},
    {"MASTERCARD", Network::kMastercard},
    {"MASTER CARD", Network::kMastercard},
    {"AX", Network::kAmex},
    {"AMEX", Network::kAmex},
    {"AMERICAN EXPRESS", Network::kAmex},
    {"DI", Network::kDiscover},
    {"DS", Network::kDiscover},
    {"DISC", Network::kDiscover},
    {"DISCOVER", Network::kDiscover},
};

// The aliases packed once, for a lookup of integer compares: the network
// column is parsed for every record.
struct PackedAlias {
  ShortKey key;
  Network network;
};
constexpr size_t kAliasCount = std::size(kNetworkAliases);
constexpr std::array<PackedAlias, kAliasCount> kPackedAliases = [] {
  std::array<PackedAlias, kAliasCount> packed{};
  for (size_t i = 0; i < kAliasCount; ++i) {
    packed[i] = {*ShortKey::Pack(kNetworkAliases[i].name, AsciiUpper),
                 kNetworkAliases[i].network};
  }
  return packed;
}();

// A range of leading-digit prefixes of one length: "51".."55" is {2, 51, 55}.
struct IinRange {
  int length;
  int low;
  int high;
  Network network;
};

// Ranges do not overlap between networks, so order does not matter; a range
// only decides once `length` digits are visible.
constexpr IinRange kIinRanges[] = {
    {1, 4, 4, Network::kVisa},
    {2, 51, 55, Network::kMastercard},
    {4, 2221, 2720, Network::kMastercard},
    {2, 34, 34, Network::kAmex},
    {2, 37, 37, Network::kAmex},
    {4, 6011, 6011, Network::kDiscover},
    {3, 644, 649, Network::kDiscover},
    {2, 65, 65, Network::kDiscover},
    {6, 622126, 622925, Network::kDiscover},
};
constexpr int kMaxIinLength = 6;

// Two-digit prefixes that start some range of kIinRanges.
constexpr std::array<bool, 100> TwoDigitPrefixes() {
  std::array<bool, 100> table{};
  for (const IinRange& range : kIinRanges) {
    if (range.length == 1) {
      for (int d = 0; d < 10; ++d) table[range.low * 10 + d] = true;
      continue;
    }
    int divisor = 1;
    for (int k = 2; k < range.length; ++k) divisor *= 10;
    for (int p = range.low / divisor; p <= range.high / divisor; ++p)
      table[p] = true;
  }
  return table;
}
constexpr std::array<bool, 100> kTwoDigitPrefixes = TwoDigitPrefixes();

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string_view NetworkName(Network network) {
  switch (network) {
    case Network::kVisa: return "visa";
    case Network::kMastercard: return "mastercard";
    case Network::kAmex: return "amex";
    case Network::kDiscover: return "discover";
  }
  return "visa";
}

std::optional<Network> ParseNetwork(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  const std::optional<ShortKey> key = ShortKey::Pack(text, AsciiUpper);
  if (!key || key->length == 0) return std::nullopt;
  for (const PackedAlias& alias : kPackedAliases) {
    if (alias.key == *key) return alias.network;
  }
  return std::nullopt;
}

std::optional<Network> NetworkFromPan(std::string_view pan) {
  // Spaces and dashes between digit groups ("4111 1111 ...") are skipped so
  // a PAN typed with separators is still recognised; a mask character ends
  // the visible prefix.
  while (!pan.empty() && pan.front() == ' ') pan.remove_prefix(1);
  int prefix[kMaxIinLength + 1] = {};  // prefix[n]: first n digits as a number
  int visible = 0;
  for (char c : pan) {
    if (visible == kMaxIinLength) break;
    if (IsDigit(c)) {
      prefix[visible + 1] = prefix[visible] * 10 + (c - '0');
      ++visible;
    } else if (c != ' ' && c != '-') {
      break;
    }
  }
  for (const IinRange& range : kIinRanges) {
    if (visible < range.length) continue;
    const int value = prefix[range.length];
    if (value >= range.low && value <= range.high) return range.network;
  }
  return std::nullopt;
}

bool MayBeInCardRange(int two_digits) {
  return two_digits >= 0 && two_digits < 100 && kTwoDigitPrefixes[two_digits];
}

}  // namespace cbpipe
