// A fast path for the common JSON record: one flat object whose values are
// strings, numbers, true, false or null. Internal to ingest/.
//
// Debian's simdjson builds On Demand with its generic kernel, which makes a
// short line slow to parse. Nearly every line of a real export is a flat
// object, so the JSON readers first try this hand-written scanner over the
// text in place and hand the line to simdjson only when the scanner declines.
// The scanner is strict: anything it is not sure about (nesting, a bad escape,
// a lone surrogate, a raw control character, a stray byte) makes it decline,
// so odd input always gets simdjson's verdict and messages.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "ingest/reader.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cbpipe::ingest_internal {

// First byte in [p, end) that is '"', '\\' or below 0x20; `end` if none.
// String bodies are where a record's bytes are, so this is the hot loop.
inline const char* FindStringSpecial(const char* p, const char* end) {
#if defined(__SSE2__)
  // SSE2 is part of x86-64 itself: no runtime dispatch needed, unlike the
  // wider kernels simdjson would have to pick at run time.
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i slash = _mm_set1_epi8('\\');
  const __m128i max_control = _mm_set1_epi8(0x1F);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned v <= 0x1F exactly when min(v, 0x1F) == v.
    const __m128i hits = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
        _mm_cmpeq_epi8(_mm_min_epu8(v, max_control), v));
    const int mask = _mm_movemask_epi8(hits);
    if (mask != 0) return p + std::countr_zero(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  // Eight bytes at a time (SWAR). In each mask a borrow can only flag bytes
  // above a real match, so the lowest flagged byte of their union is the
  // first real one.
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) {
      w = __builtin_bswap64(w);  // first byte lowest, as the masks need
    }
    const uint64_t quote = w ^ (kOnes * '"');
    const uint64_t slash = w ^ (kOnes * '\\');
    const uint64_t hits =
        (((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) |
         ((w - kOnes * 0x20) & ~w)) &
        kHigh;
    if (hits != 0) return p + (std::countr_zero(hits) >> 3);
    p += 8;
  }
  for (; p != end; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20) return p;
  }
  return end;
}

// Whether a[0, n) == b[0, n). Inline, for keys of a few bytes, where a call
// to memcmp costs more than the comparison.
inline bool SameBytes(const char* a, const char* b, size_t n) {
  auto word = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;
  };
  if (n >= 8) {
    // Whole words, the last one overlapping the one before.
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (word(a + i) != word(b + i)) return false;
    }
    return word(a + n - 8) == word(b + n - 8);
  }
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Reads a flat JSON object member by member:
//
//   FlatJsonCursor cur(text);
//   if (!cur.Begin()) decline;
//   while (true) {
//     auto step = cur.NextKey(&key, {});  // kEnd after '}', kBail: decline
//     ... cur.NextValue(&value) ...        // false: decline
//   }
//
// Every call returns "decline" when the text is not of that simple shape;
// the caller then throws away whatever it built and parses the whole text
// some other way. Nothing is allocated. Defined here so the per-member calls
// inline into the caller's loop.
class FlatJsonCursor {
 public:
  enum class Kind { kString, kNumber, kTrue, kFalse, kNull };

  // A key, or a string value: the text between the quotes as written.
  struct String {
    std::string_view raw;
    bool escaped = false;  // raw holds a backslash: decode before use
  };
  struct Value {
    Kind kind = Kind::kNull;
    // kString: between the quotes, escapes kept; kNumber: the number as
    // written (it is never converted, "12.50" stays "12.50").
    String text;
  };
  enum class Step {
    kMember,    // a key, scanned
    kExpected,  // the key is the one expected (same bytes)
    kEnd,
    kBail,
  };

  explicit FlatJsonCursor(std::string_view text)
      : p_(text.data()), end_(text.data() + text.size()) {}

  // Whitespace, then '{'.
  bool Begin() {
    SkipSpace();
    if (p_ == end_ || *p_ != '{') return false;
    ++p_;
    SkipSpace();
    if (p_ != end_ && *p_ == '}') return Close();
    return true;
  }

  // The next member's key and its ':'. kEnd once the object has closed and
  // nothing but whitespace follows it. `expect` is the key the caller
  // guesses comes next (records of one file list their keys alike), with
  // `expect.escaped` as it was found when first scanned; a right guess
  // (kExpected) is one comparison instead of a scan. Empty: no guess. The
  // caller must not expect a key holding a raw control character.
  Step NextKey(String* key, const String& expect) {
    if (closed_) return Step::kEnd;
    if (p_ == end_ || *p_ != '"') return Step::kBail;
    const size_t n = expect.raw.size();
    // expect.raw is a whole key body seen before, so the same bytes and a
    // quote are that same key, whatever escapes it holds.
    if (n != 0 && static_cast<size_t>(end_ - p_) > n + 1 && p_[n + 1] == '"' &&
        SameBytes(p_ + 1, expect.raw.data(), n)) {
      key->raw = std::string_view(p_ + 1, n);
      key->escaped = expect.escaped;
      p_ += n + 2;
      return AfterKey(Step::kExpected);
    }
    if (!ScanString(key)) return Step::kBail;
    return AfterKey(Step::kMember);
  }

  // The value after the key, and the ',' or '}' after it.
  bool NextValue(Value* value) {
    if (p_ == end_) return false;
    const char* const start = p_;
    switch (*p_) {
      case '"':
        value->kind = Kind::kString;
        if (!ScanString(&value->text)) return false;
        break;
      case 't':
        value->kind = Kind::kTrue;
        if (!ScanLiteral("true")) return false;
        break;
      case 'f':
        value->kind = Kind::kFalse;
        if (!ScanLiteral("false")) return false;
        break;
      case 'n':
        value->kind = Kind::kNull;
        if (!ScanLiteral("null")) return false;
        break;
      default:
        // Objects, arrays and anything stray end up here too.
        value->kind = Kind::kNumber;
        if (!ScanNumber()) return false;
        value->text.raw = std::string_view(start, p_ - start);
        value->text.escaped = false;
        break;
    }
    // What follows a value must end it: "truex", "1x" or "\"a\"b" decline
    // here rather than in every scanner.
    SkipSpace();
    if (p_ == end_) return false;
    if (*p_ == ',') {
      ++p_;
      SkipSpace();
      return true;
    }
    if (*p_ != '}') return false;
    return Close();
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  void SkipSpace() {
    while (p_ != end_ && static_cast<unsigned char>(*p_) <= ' ' &&
           (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) {
      ++p_;
    }
  }

  Step AfterKey(Step step) {
    SkipSpace();
    if (p_ == end_ || *p_ != ':') return Step::kBail;
    ++p_;
    SkipSpace();
    return step;
  }

  // At the '}': only whitespace may follow.
  bool Close() {
    ++p_;
    SkipSpace();
    closed_ = true;
    return p_ == end_;
  }

  // At the opening quote.
  bool ScanString(String* out) {
    const char* const start = ++p_;
    bool escaped = false;
    while (true) {
      const char* s = FindStringSpecial(p_, end_);
      if (s == end_) return false;  // unclosed
      if (*s == '"') {
        out->raw = std::string_view(start, s - start);
        out->escaped = escaped;
        p_ = s + 1;
        return true;
      }
      if (*s != '\\') return false;  // raw control character
      // Step over the escaped byte so an escaped quote does not end the
      // string; DecodeJsonString checks the escape itself.
      if (end_ - s < 2) return false;
      escaped = true;
      p_ = s + 2;
    }
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool ScanNumber() {
    if (*p_ == '-') ++p_;
    if (p_ == end_) return false;
    if (*p_ == '0') {
      ++p_;
    } else if (!Digits()) {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!Digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!Digits()) return false;
    }
    return true;
  }

  bool Digits() {
    const char* const start = p_;
    while (p_ != end_ && IsDigit(*p_)) ++p_;
    return p_ != start;
  }

  bool ScanLiteral(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  const char* p_;
  const char* end_;
  bool closed_ = false;  // the '}' has been read
};

// Appends the decoded form of `raw` (the body of a JSON string, as found by
// FlatJsonCursor, so without raw control characters) to `out` after clearing
// it. False for an unknown escape, a short \u escape or a surrogate that is
// not part of a pair; `out` is then unspecified.
bool DecodeJsonString(std::string_view raw, std::string* out);

// The object parser behind the JSON readers, for tests and fuzzing, which
// compare the fast path with the simdjson path on the same text. Defined in
// json_reader.cc; the readers use the parser directly, not through this.
class JsonObjectParserForTest {
 public:
  virtual ~JsonObjectParserForTest() = default;
  // As the readers do: fast path, else simdjson. `out` as after Clear().
  virtual void Parse(std::string_view text, RawRecord* out) = 0;
  // Fast path alone; false when it declines (`out` is then unspecified).
  virtual bool ParseFlatOnly(std::string_view text, RawRecord* out) = 0;
  // simdjson alone.
  virtual void ParseSimdjsonOnly(std::string_view text, RawRecord* out) = 0;
};

std::unique_ptr<JsonObjectParserForTest> MakeJsonObjectParserForTest(
    const FieldMapping& mapping, const ReaderLimits& limits);

}  // namespace cbpipe::ingest_internal
