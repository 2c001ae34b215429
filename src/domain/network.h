// Card networks: names, aliases and derivation from a PAN's leading digits.
//
//   auto n = ParseNetwork("MC");          // Network::kMastercard
//   auto d = NetworkFromPan("6011000000000004");  // Network::kDiscover
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cbpipe {

enum class Network : uint8_t { kVisa = 0, kMastercard, kAmex, kDiscover };
inline constexpr int kNetworkCount = 4;
inline constexpr std::array<Network, kNetworkCount> kAllNetworks = {
    Network::kVisa, Network::kMastercard, Network::kAmex, Network::kDiscover};

// "visa", "mastercard", "amex", "discover".
std::string_view NetworkName(Network network);

// Canonical names and common spellings, case-insensitive, surrounding spaces
// ignored: VI, VISA, MC, MASTERCARD, MASTER CARD, AX, AMEX, AMERICAN EXPRESS,
// DI, DS, DISC, DISCOVER. Anything else is nullopt.
std::optional<Network> ParseNetwork(std::string_view text);

// From the leading digits of a PAN, full or masked (only the leading digits
// are read): Visa 4; Mastercard 51-55 and 2221-2720; Amex 34, 37; Discover
// 6011, 644-649, 65, 622126-622925. nullopt when no rule matches or too few
// leading digits are visible to decide.
std::optional<Network> NetworkFromPan(std::string_view pan);
// True when a number whose first two digits are `two_digits` (10-99) may
// lie in a network's range above: a filter before costlier checks, never
// false for a number NetworkFromPan would place.
bool MayBeInCardRange(int two_digits);

}  // namespace cbpipe
