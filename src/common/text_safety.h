// Characters that must never reach a terminal, a card company's file or a
// file name as they are: they can rewrite a terminal (ESC sequences), break
// a line-based file (CR, LF, NUL) or make text read differently from what
// it is (bidirectional overrides such as U+202E).
//
//   if (std::optional<UnsafeChar> c = FindUnsafeChar(value))
//     return "holds " + UnsafeCharName(*c) + " at byte " + ...;
//   std::printf("%s\n", EscapeForTerminal(message).c_str());
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace cbpipe {

// C0 controls (U+0000-U+001F, tab, CR and LF included), DEL (U+007F), C1
// controls (U+0080-U+009F), the line and paragraph separators U+2028 and
// U+2029, and the bidirectional controls U+061C, U+200E, U+200F,
// U+202A-U+202E and U+2066-U+2069.
bool IsUnsafeCodePoint(char32_t cp);

struct UnsafeChar {
  size_t offset = 0;        // byte offset in the text
  char32_t code_point = 0;  // or the byte's value for invalid UTF-8
  bool invalid_utf8 = false;
};

// The first unsafe code point in `utf8`, or a byte that is not valid UTF-8;
// nullopt when the text is safe.
std::optional<UnsafeChar> FindUnsafeChar(std::string_view utf8);

// "U+001B" (a byte of invalid UTF-8: "byte 0xFF").
std::string UnsafeCharName(const UnsafeChar& c);

// `text` made safe to print on a terminal: a backslash becomes "\\", an
// unsafe code point below U+0080 and every byte that is not valid UTF-8
// becomes "\xHH" (ESC is "\x1b"), the other unsafe code points "\uHHHH"
// (U+202E is "\u202e"). Everything else, valid UTF-8 included, is kept.
std::string EscapeForTerminal(std::string_view text);

}  // namespace cbpipe
