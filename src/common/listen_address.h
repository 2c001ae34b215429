// The address a local HTTP endpoint listens on ("127.0.0.1:8787",
// "[::1]:8787", "localhost:0"), checked once for `config check` and for the
// server that binds it.
//
//   CBPIPE_ASSIGN_OR_RETURN(ListenAddress a, ParseListenAddress(text));
//   if (!IsLoopbackHost(a.host)) ...
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

struct ListenAddress {
  std::string host;  // without the brackets of an IPv6 address
  int port = 0;      // 0: any free port
};

// host:port with a port from 0 to 65535 and an IPv6 host in brackets;
// kInvalidArgument, with a message that quotes the text, otherwise.
StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// "localhost", an IPv4 address in 127.0.0.0/8 or the IPv6 loopback address
// (in any of its spellings): traffic that never leaves the machine.
bool IsLoopbackHost(std::string_view host);

// The admin API's rule, shared by `config check` and `serve`: a valid
// address (else kInvalidArgument) on a loopback host (else
// kFailedPrecondition). The API speaks plain HTTP with a bearer token, so it
// is never exposed to other machines directly; a TLS-terminating proxy in
// front is the way to reach it from elsewhere.
StatusOr<ListenAddress> ParseAdminListenAddress(std::string_view text);

}  // namespace cbpipe
