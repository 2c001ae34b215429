#include "domain/network.h"

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

// Longer than any alias: anything this long cannot match, so the upper-case
// copy lives on the stack.
constexpr size_t kMaxAliasLength = 16;

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
  if (text.empty() || text.size() > kMaxAliasLength) return std::nullopt;
  char upper[kMaxAliasLength];
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    upper[i] = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  const std::string_view key(upper, text.size());
  for (const NetworkAlias& alias : kNetworkAliases) {
    if (alias.name == key) return alias.network;
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

}  // namespace cbpipe
