#include "common/text_safety.h"

#include <cstdint>
#include <cstdio>
#include <cstring>

namespace cbpipe {
namespace {

// Decodes the UTF-8 sequence at `s[i]` into `*cp` and returns its length,
// or 0 when the bytes there are not valid UTF-8 (overlong forms,
// surrogates and code points over U+10FFFF included).
size_t DecodeUtf8(std::string_view s, size_t i, char32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t len;
  char32_t v;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  if ((len == 3 && v < 0x800) || (len == 4 && v < 0x10000) ||
      (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
    return 0;
  *cp = v;
  return len;
}

// In each byte of `word`, 0x80 when that byte is not printable ASCII
// (below 0x20, or 0x7F and above), 0 when it is: 8 bytes at a time.
inline uint64_t NotPrintableAscii(uint64_t word) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t low = word & kLow7;
  // Per byte, with no carry across bytes: low + 0x60 sets the high bit when
  // low >= 0x20; low + 0x01 sets it when low == 0x7F.
  const uint64_t printable =
      (low + 0x6060606060606060ULL) & ~(low + 0x0101010101010101ULL);
  return (~printable | word) & kHigh;
}

}  // namespace

bool IsUnsafeCodePoint(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C ||
         cp == 0x200E || cp == 0x200F || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

std::optional<UnsafeChar> FindUnsafeChar(std::string_view utf8) {
  size_t i = 0;
  // Every field of every record is asked: printable ASCII, the common case,
  // is passed over 8 bytes at a time (the last 8 overlapping the ones
  // before), and answered without a byte loop.
  const size_t n = utf8.size();
  if (n >= 8) {
    uint64_t word;
    for (; i + 8 <= n; i += 8) {
      std::memcpy(&word, utf8.data() + i, sizeof(word));
      if (NotPrintableAscii(word) != 0) break;
    }
    if (i + 8 > n) {
      if (i == n) return std::nullopt;
      std::memcpy(&word, utf8.data() + n - 8, sizeof(word));
      if (NotPrintableAscii(word) == 0) return std::nullopt;
    }
  }
  while (i < utf8.size()) {
    const unsigned char c = static_cast<unsigned char>(utf8[i]);
    if (c >= 0x20 && c < 0x7F) {  // the common case: printable ASCII
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t len = DecodeUtf8(utf8, i, &cp);
    if (len == 0) return UnsafeChar{i, c, true};
    if (IsUnsafeCodePoint(cp)) return UnsafeChar{i, cp, false};
    i += len;
  }
  return std::nullopt;
}

std::string UnsafeCharName(const UnsafeChar& c) {
  char buf[24];
  if (c.invalid_utf8) {
    std::snprintf(buf, sizeof buf, "byte 0x%02X",
                  static_cast<unsigned>(c.code_point));
  } else {
    std::snprintf(buf, sizeof buf, "U+%04X",
                  static_cast<unsigned>(c.code_point));
  }
  return buf;
}

std::string EscapeForTerminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  char buf[16];
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    char32_t cp = 0;
    const size_t len = DecodeUtf8(text, i, &cp);
    if (len == 0 || cp < 0x80) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
      ++i;
    } else if (IsUnsafeCodePoint(cp)) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      out += buf;
      i += len;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace cbpipe
