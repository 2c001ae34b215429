#include "app/query_params.h"

#include <algorithm>

#include "common/text_safety.h"
#include "common/url.h"

namespace cbpipe {

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
    if (!PercentDecode(pair.substr(0, eq), &name, /*plus_is_space=*/true) ||
        !PercentDecode(pair.substr(eq + 1), &value, /*plus_is_space=*/true)) {
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
