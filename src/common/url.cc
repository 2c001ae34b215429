#include "common/url.h"

namespace cbpipe {

std::string_view UrlUserinfo(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  std::string_view authority = url.substr(scheme_end + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return {};
  return authority.substr(0, at);
}

std::string RedactUrl(std::string_view url) {
  std::string s(url.substr(0, url.find_first_of("?#")));
  const size_t scheme_end = s.find("://");
  const size_t authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  const size_t path = s.find('/', authority);
  const size_t at = s.rfind('@', path == std::string::npos ? s.size() : path);
  if (at != std::string::npos && at >= authority) {
    s.erase(authority, at + 1 - authority);
  }
  return s;
}

}  // namespace cbpipe
