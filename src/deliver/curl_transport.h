// Network transports (sftp://, ftps://, ftp://) on libcurl.
//
//   DestinationConfig d;
//   d.url = "sftp://cbpipe@files.example.com:22/incoming";
//   d.private_key_ref = "file:/etc/cbpipe/id_ed25519";   // mode 0600
//   d.known_hosts = "/etc/cbpipe/known_hosts";
//   CBPIPE_ASSIGN_OR_RETURN(auto transport, MakeNetworkTransport(d));
//   CBPIPE_RETURN_IF_ERROR(transport->Upload("/out/b1.csv", "b1.csv.part"));
//
// Options (all in DestinationConfig):
//
// | option                   | protocols | meaning |
// |--------------------------|-----------|-------------------------------------------|
// | url                      | all       | scheme://[user@]host[:port]/dir; no
// | |                          |           | password in it (refused) | |
// username                 | all       | or user@ in the URL | | password_ref
// | all       | secret reference (env:, file:)            | | private_key_ref
// | sftp      | "file:/path/key": that file IS the key    | | |           |
// (passed to libssh2 by path; must be 0600) | | public_key_path          | sftp
// | optional; derived from the key otherwise  | | known_hosts              |
// sftp      | known_hosts file; the host key must match | | host_key_sha256 |
// sftp      | base64 SHA-256 of the host key, with or   | | |           |
// without "SHA256:"                         | | insecure_skip_host_key   | sftp
// | accept any host key (warns on stderr)     | | ftps_mode                |
// ftps      | explicit: AUTH TLS on port 21 (default);  | | |           |
// implicit: TLS from the start, port 990    | | ca_file                  | ftps
// | CA bundle; the system store otherwise     | | allow_insecure           |
// ftp       | required: plain FTP sends the password in | | |           | clear
// text (PCI DSS 2.2.5)                | | active_mode              | ftp/ftps
// | PORT instead of EPSV/PASV                 | | connect_timeout_seconds  |
// all       | TCP + TLS/SSH handshake                   | |
// transfer_timeout_seconds | all       | whole operation | |
// stall_timeout_seconds    | all       | abort when no byte moves for this long
// |
//
// An sftp:// destination needs known_hosts or host_key_sha256 unless
// insecure_skip_host_key is set; ftps:// always verifies the certificate and
// the host name, TLS 1.2 at least, data channel protected (PROT P).
//
// The remote directory must exist: it is never created (a missing directory
// is a permanent kNotFound). Remote names are single path components made of
// [A-Za-z0-9._+=@,~-] (anything else is kInvalidArgument: names go into FTP
// and SFTP commands).
//
// Rename on FTP (RNFR/RNTO) would overwrite, and on SFTP it never does, so
// without `replace` both check the target first (kAlreadyExists): there is a
// window between the check and the rename where another client could create
// the target. With `replace`, SFTP removes the target first (not atomic).
//
// One Transport keeps one libcurl handle, hence one connection, for all its
// calls. Errors are classified as transport.h says; libcurl's detail text is
// in the message, never a credential.
#pragma once

#include <memory>

#include "common/status.h"
#include "config/config.h"
#include "deliver/transport.h"

namespace cbpipe {

// A Transport for an sftp://, ftps:// or ftp:// destination. Checks the
// options and resolves the secrets; does not connect (the first call does).
StatusOr<std::unique_ptr<Transport>> MakeNetworkTransport(
    const DestinationConfig& destination);

}  // namespace cbpipe
