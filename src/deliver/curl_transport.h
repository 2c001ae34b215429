// Network transports (ftps://, ftp://) on libcurl; sftp:// destinations are
// handed to MakeSftpTransport (sftp_transport.h), which speaks SFTP on
// libssh2 directly.
//
//   DestinationConfig d;
//   d.url = "ftps://cbpipe@files.example.com:21/incoming";
//   d.password_ref = "env:VISA_FTPS_PASSWORD";
//   CBPIPE_ASSIGN_OR_RETURN(auto transport, MakeNetworkTransport(d));
//   CBPIPE_RETURN_IF_ERROR(transport->Upload("/out/b1.csv", "b1.csv.part"));
//
// Options (all in DestinationConfig):
//
//   url                       scheme://[user@]host[:port]/dir; no password
//                             in it (refused)
//   username                  or user@ in the URL
//   password_ref              secret reference (env:, file:)
//   ftps_mode                 explicit: AUTH TLS on port 21 (default);
//                             implicit: TLS from the start, port 990
//   ca_file                   CA bundle; the system store otherwise
//   allow_insecure            ftp: required, plain FTP sends the password in
//                             clear text (PCI DSS 2.2.5)
//   active_mode               PORT instead of EPSV/PASV
//   connect_timeout_seconds   TCP + TLS handshake
//   transfer_timeout_seconds  whole operation
//   stall_timeout_seconds     abort when no byte moves for this long
//
// ftps:// always verifies the certificate and the host name, TLS 1.2 at
// least, data channel protected (PROT P).
//
// The remote directory must exist: it is never created (a missing directory
// is a permanent kNotFound). Remote names are single path components made of
// [A-Za-z0-9._+=@,~-] (anything else is kInvalidArgument: names go into FTP
// commands).
//
// Rename (RNFR/RNTO) would overwrite, so without `replace` it checks the
// target first (kAlreadyExists): there is a window between the check and
// the rename where another client could create the target.
//
// One Transport keeps one libcurl handle, hence one connection, for all its
// calls. Errors are classified as transport.h says; libcurl's detail text is
// in the message, never a credential.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "deliver/destination.h"
#include "deliver/transport.h"
#include "secrets/secret_store.h"

namespace cbpipe {

// A Transport for an sftp://, ftps:// or ftp:// destination. Checks the
// options and resolves the secrets from `secrets` (null: the env:/file:
// store); does not connect (the first call does).
StatusOr<std::unique_ptr<Transport>> MakeNetworkTransport(
    const DestinationConfig& destination, SecretStore* secrets = nullptr);

// The parts of a destination URL. kInvalidArgument for a URL with a
// password, a query or a fragment, or no host.
struct DestinationUrl {
  std::string scheme, user, host, port, path;  // path still %-encoded
};
StatusOr<DestinationUrl> ParseDestinationUrl(const std::string& url);
// "%2Fa%20b" -> "/a b".
std::string UrlDecode(const std::string& text);
// The login user of a network destination: its `username` or the url's
// user@ (the two must agree); kInvalidArgument, naming `where`, when there
// is neither.
StatusOr<std::string> DestinationUser(const DestinationConfig& d,
                                      const DestinationUrl& url,
                                      const std::string& where);
// The url's path as a folder: "/" when empty, always ending in '/'; still
// %-encoded.
std::string DestinationFolder(const DestinationUrl& url);
// OK for a plain file name of [A-Za-z0-9._+=@,~-] (no path, not "." or
// "..", at most 255 bytes), the only remote names the network transports
// send; kInvalidArgument otherwise.
Status CheckRemoteName(const std::string& name);

}  // namespace cbpipe
