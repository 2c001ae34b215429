#include "aws/xml.h"

#include <cstdint>
#include <cstdlib>

namespace cbpipe {
namespace {

// Finds the next <tag> or <tag ...> or <tag/> at or after `from`; sets
// *inner_start to just after '>' and *self_closing. npos when none.
size_t FindOpen(std::string_view xml, std::string_view tag, size_t from,
                size_t* inner_start, bool* self_closing) {
  while (true) {
    size_t at = xml.find('<', from);
    if (at == std::string_view::npos) return at;
    size_t name_end = at + 1 + tag.size();
    if (xml.substr(at + 1, tag.size()) == tag && name_end < xml.size() &&
        (xml[name_end] == '>' || xml[name_end] == ' ' || xml[name_end] == '/' ||
         xml[name_end] == '\t' || xml[name_end] == '\n' ||
         xml[name_end] == '\r')) {
      size_t close = xml.find('>', name_end);
      if (close == std::string_view::npos) return std::string_view::npos;
      *self_closing = xml[close - 1] == '/';
      *inner_start = close + 1;
      return at;
    }
    from = at + 1;
  }
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xc0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xe0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    *out += static_cast<char>(0xf0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    *out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

}  // namespace

std::string AwsXmlDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += text[i];
      continue;
    }
    std::string_view entity = text.substr(i + 1, semi - i - 1);
    if (entity == "lt") {
      out += '<';
    } else if (entity == "gt") {
      out += '>';
    } else if (entity == "amp") {
      out += '&';
    } else if (entity == "quot") {
      out += '"';
    } else if (entity == "apos") {
      out += '\'';
    } else if (entity.size() > 1 && entity[0] == '#') {
      std::string digits(entity.substr(1));
      int base = 10;
      if (!digits.empty() && (digits[0] == 'x' || digits[0] == 'X')) {
        digits.erase(0, 1);
        base = 16;
      }
      char* end = nullptr;
      unsigned long cp = std::strtoul(digits.c_str(), &end, base);
      if (digits.empty() || *end != '\0' || cp > 0x10ffff) {
        out += text[i];
        continue;
      }
      AppendUtf8(static_cast<uint32_t>(cp), &out);
    } else {
      out += text[i];
      continue;
    }
    i = semi;
  }
  return out;
}

std::string AwsXmlText(std::string_view xml, std::string_view tag) {
  size_t inner = 0;
  bool self_closing = false;
  if (FindOpen(xml, tag, 0, &inner, &self_closing) == std::string_view::npos ||
      self_closing) {
    return "";
  }
  std::string close = "</" + std::string(tag) + ">";
  size_t end = xml.find(close, inner);
  if (end == std::string_view::npos) return "";
  return AwsXmlDecode(xml.substr(inner, end - inner));
}

std::vector<std::string_view> AwsXmlElements(std::string_view xml,
                                             std::string_view tag) {
  std::vector<std::string_view> out;
  std::string close = "</" + std::string(tag) + ">";
  size_t from = 0;
  while (true) {
    size_t inner = 0;
    bool self_closing = false;
    size_t at = FindOpen(xml, tag, from, &inner, &self_closing);
    if (at == std::string_view::npos) return out;
    if (self_closing) {
      out.push_back(xml.substr(inner, 0));
      from = inner;
      continue;
    }
    size_t end = xml.find(close, inner);
    if (end == std::string_view::npos) return out;
    out.push_back(xml.substr(inner, end - inner));
    from = end + close.size();
  }
}

}  // namespace cbpipe
