#include "common/text_safety.h"

#include <cstdio>

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

}  // namespace

bool IsUnsafeCodePoint(char32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C ||
         cp == 0x200E || cp == 0x200F || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

std::optional<UnsafeChar> FindUnsafeChar(std::string_view utf8) {
  size_t i = 0;
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
