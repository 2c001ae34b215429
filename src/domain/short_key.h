// A short text packed into integers, for the table lookups that run once
// per record (network aliases, reason codes): comparing two keys is three
// integer compares instead of a memcmp call.
//
//   std::optional<ShortKey> k = ShortKey::Pack("mc", AsciiUpper);
//   if (k && *k == *ShortKey::Pack("MC", AsciiUpper)) ...
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace cbpipe {

constexpr char AsciiUpper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

struct ShortKey {
  static constexpr size_t kMaxLength = 16;

  uint64_t head = 0;    // bytes 0-7, first byte most significant
  uint64_t tail = 0;    // bytes 8-15
  uint32_t length = 0;  // kept apart, so "A" and "A\0" differ

  // `text` with `map` applied to every byte; nullopt when it is longer
  // than kMaxLength.
  template <typename Map>
  static constexpr std::optional<ShortKey> Pack(std::string_view text,
                                                Map map) {
    if (text.size() > kMaxLength) return std::nullopt;
    ShortKey key;
    key.length = static_cast<uint32_t>(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      const uint64_t byte = static_cast<unsigned char>(map(text[i]));
      if (i < 8) {
        key.head |= byte << (56 - 8 * i);
      } else {
        key.tail |= byte << (56 - 8 * (i - 8));
      }
    }
    return key;
  }

  // For hash tables: every byte and the length reach every bit (the
  // splitmix64 finaliser; short keys live in the high bytes of `head`).
  constexpr uint64_t Hash() const {
    uint64_t x = head ^ (tail * 0x9e3779b97f4a7c15ULL) ^ length;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  friend constexpr bool operator==(const ShortKey&, const ShortKey&) = default;
  friend constexpr auto operator<=>(const ShortKey&, const ShortKey&) = default;
};

}  // namespace cbpipe
