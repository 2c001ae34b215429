// The query string of an admin API request, parsed strictly, apart from
// any HTTP library:
//
//   StatusOr<QueryParams> q = ParseQueryParams(QueryOf(target),
//                                              {"limit", "after"});
//   if (!q.ok()) return SendError(400, q.status().message());
//
// Every pair is name=value with exactly one '=' ("limit=1=1" is refused),
// a name among `allowed` given at most once, no empty pair ("limit=3&",
// "&&", "=", "=x"), and %XX escapes that are complete hex; '+' is a space.
// A decoded value holding a control character is refused. Messages quote
// names (escaped for a terminal), never values.
#pragma once

#include <initializer_list>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

using QueryParams = std::map<std::string, std::string, std::less<>>;

// What follows the first '?' of a request target, up to a '#'; empty when
// there is no '?'.
std::string_view QueryOf(std::string_view target);

// kInvalidArgument when the query breaks a rule above.
StatusOr<QueryParams> ParseQueryParams(
    std::string_view query, std::initializer_list<std::string_view> allowed);

}  // namespace cbpipe
