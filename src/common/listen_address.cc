#include "common/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/text_safety.h"

namespace cbpipe {
namespace {

// The address as a message shows it. Appended, not `"\"" + Escape(...)`:
// GCC 12 at -O3 warns (-Wrestrict, bug 105651) on that inlined insert.
std::string Shown(std::string_view text) {
  std::string shown = "\"";
  shown += EscapeForTerminal(text.substr(0, 80));
  shown += '"';
  return shown;
}

}  // namespace

StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  const std::string shown = Shown(text);
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return InvalidArgumentError(shown +
                                " must be host:port, e.g. 127.0.0.1:8787");
  ListenAddress a;
  a.host = std::string(text.substr(0, colon));
  if (a.host.front() == '[') {
    if (a.host.size() < 3 || a.host.back() != ']')
      return InvalidArgumentError(shown + ": an IPv6 host needs [brackets]");
    a.host = a.host.substr(1, a.host.size() - 2);
  } else if (a.host.find(':') != std::string::npos) {
    return InvalidArgumentError(shown + ": write an IPv6 host as [::1]:8787");
  }
  for (char c : a.host) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= ' ' || u >= 0x7F || c == '/' || c == '@' || c == '[' || c == ']')
      return InvalidArgumentError(shown +
                                  ": the host is not a host name "
                                  "or IP address");
  }
  const std::string_view port = text.substr(colon + 1);
  int64_t n = 0;
  bool ok = port.size() <= 5;
  for (char c : port) {
    if (c < '0' || c > '9') ok = false;
    if (ok) n = n * 10 + (c - '0');
  }
  if (!ok || n > 65535)
    return InvalidArgumentError(shown + ": the port must be 0 to 65535");
  a.port = static_cast<int>(n);
  return a;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

StatusOr<ListenAddress> ParseAdminListenAddress(std::string_view text) {
  StatusOr<ListenAddress> a = ParseListenAddress(text);
  if (!a.ok()) return a.status();
  if (!IsLoopbackHost(a->host)) {
    return FailedPreconditionError(
        Shown(text) +
        " is not a loopback address: the admin API speaks plain HTTP, so "
        "it listens only on 127.0.0.1, [::1] or localhost; to reach it from "
        "other machines, put a TLS-terminating proxy in front of it");
  }
  return a;
}

}  // namespace cbpipe
