#include "ingest/flat_json.h"

#include <cstdint>
#include <cstring>

namespace cbpipe::ingest_internal {
namespace {

// Value of four hex digits at `p`, or -1.
int32_t Hex4(const char* p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    const char c = p[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool DecodeJsonString(std::string_view raw, std::string* out) {
  out->clear();
  const char* p = raw.data();
  const char* const end = raw.data() + raw.size();
  while (true) {
    const char* bs = static_cast<const char*>(std::memchr(p, '\\', end - p));
    if (bs == nullptr) {
      out->append(p, end);
      return true;
    }
    out->append(p, bs);
    if (end - bs < 2) return false;
    p = bs + 2;
    switch (bs[1]) {
      case '"': out->push_back('"'); break;
      case '\\': out->push_back('\\'); break;
      case '/': out->push_back('/'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'n': out->push_back('\n'); break;
      case 'r': out->push_back('\r'); break;
      case 't': out->push_back('\t'); break;
      case 'u': {
        if (end - p < 4) return false;
        const int32_t hi = Hex4(p);
        if (hi < 0) return false;
        p += 4;
        uint32_t cp = static_cast<uint32_t>(hi);
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low half
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // Only a following low half makes a character; anything else
          // would leave invalid UTF-8 behind.
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return false;
          const int32_t lo = Hex4(p + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) +
               (static_cast<uint32_t>(lo) - 0xDC00);
        }
        AppendUtf8(cp, out);
        break;
      }
      default: return false;
    }
  }
}

}  // namespace cbpipe::ingest_internal
