#include "app/query_params.h"

#include <algorithm>

#include "common/text_safety.h"

namespace cbpipe {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX and '+' decoded; false on an incomplete escape.
bool Decode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] != '%') {
      out->push_back(in[i]);
    } else {
      if (i + 2 >= in.size()) return false;
      const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
  }
  return true;
}

}  // namespace

std::string_view QueryOf(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  return query.substr(0, query.find('#'));
}

StatusOr<QueryParams> ParseQueryParams(
    std::string_view query, std::initializer_list<std::string_view> allowed) {
  QueryParams params;
  if (query.empty()) return params;
  size_t start = 0;
  while (start <= query.size()) {
    const size_t end = std::min(query.find('&', start), query.size());
    const std::string_view pair = query.substr(start, end - start);
    start = end + 1;
    const size_t eq = pair.find('=');
    if (pair.empty() || eq == 0 || eq == std::string_view::npos ||
        pair.find('=', eq + 1) != std::string_view::npos) {
      return InvalidArgumentError(
          "malformed query string: every parameter is name=value, joined "
          "by single '&'");
    }
    std::string name, value;
    if (!Decode(pair.substr(0, eq), &name) ||
        !Decode(pair.substr(eq + 1), &value)) {
      return InvalidArgumentError(
          "malformed query string: incomplete %-escape");
    }
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return InvalidArgumentError("unknown query parameter \"" +
                                  EscapeForTerminal(name.substr(0, 64)) + "\"");
    }
    if (FindUnsafeChar(value).has_value()) {
      return InvalidArgumentError("query parameter \"" + name +
                                  "\" holds a control character");
    }
    if (params.count(name)) {
      return InvalidArgumentError("query parameter \"" + name +
                                  "\" given more than once");
    }
    params.emplace(std::move(name), std::move(value));
  }
  return params;
}

}  // namespace cbpipe
