// The two things every layer needs to know about a URL it did not build:
// whether it carries credentials, and a form of it that is safe to print.
//
//   if (!UrlUserinfo(url).empty()) return error("credentials in the URL");
//   log("POST " + RedactUrl(url));
#pragma once

#include <string>
#include <string_view>

namespace cbpipe {

// The userinfo of "scheme://user:pass@host/…" ("user:pass"); empty when the
// authority (what follows "://" up to the first '/', '?' or '#') holds no
// '@'. An '@' in the path or query is not userinfo.
std::string_view UrlUserinfo(std::string_view url);

// The URL without user:password@, query and fragment: safe to log and to
// print (webhook services put tokens in the query).
std::string RedactUrl(std::string_view url);

// `in` with every %XX decoded into `out` (and '+' into a space when
// `plus_is_space`, as in a form-encoded query); false on an incomplete or
// non-hex escape.
bool PercentDecode(std::string_view in, std::string* out,
                   bool plus_is_space = false);

}  // namespace cbpipe
