// The sftp:// transport: SFTP version 3 spoken directly over an SSH channel
// opened with libssh2 (not libcurl), so every request is one the protocol
// defines and the operator can allow or refuse on the server:
//
// | Transport call | SFTP requests sent                                       |
// |----------------|----------------------------------------------------------|
// | (connect)      | SSH handshake, host key check, auth; INIT (the VERSION   |
// |                | reply lists the extensions the server offers)            |
// | Upload         | OPEN(write, create, truncate), WRITE... (pipelined, up   |
// |                | to 64 requests in flight), fsync@openssh.com when        |
// |                | offered (unless fsync = false), CLOSE; the last two      |
// |                | right behind the last WRITE, and Upload returns when     |
// |                | all are answered (two round trips for a small file)      |
// | Rename         | RENAME (never overwrites); with `replace`:               |
// |                | posix-rename@openssh.com when offered (atomic), else     |
// |                | REMOVE then RENAME                                       |
// | RemoteSize     | STAT of the file; on "no such file", STAT of the folder  |
// |                | (once per connection) to tell a missing folder apart     |
// | Remove         | REMOVE                                                   |
//
// Nothing ever OPENs a file or a folder for reading, LISTs or READs. With
// `write_only = true` in the destination nothing sends STAT either: a failed
// Rename or Remove is reported as the server said, without the STATs that
// would otherwise tell which side was the problem.
//
//   DestinationConfig d;
//   d.url = "sftp://cbpipe@files.example.com:22/incoming";
//   d.private_key_ref = "file:/etc/cbpipe/id_ed25519";   // mode 0600
//   d.known_hosts = "/etc/cbpipe/known_hosts";
//   CBPIPE_ASSIGN_OR_RETURN(auto transport, MakeSftpTransport(d));
//   CBPIPE_RETURN_IF_ERROR(transport->Upload("/out/b1.csv", "b1.csv.part"));
//
// Host key: known_hosts (the entry for [host]:port, or host for port 22)
// and/or host_key_sha256 (base64 SHA-256, "SHA256:" optional) must match;
// one of them is required unless insecure_skip_host_key. Authentication:
// public key (private_key_ref "file:/path", the key file, mode 0600; or
// "env:NAME", the key text itself) and/or password (password_ref).
//
// Timeouts: connect_timeout_seconds bounds TCP connect, SSH handshake and
// authentication; stall_timeout_seconds aborts any call when the server
// sends nothing for that long (kDeadlineExceeded); transfer_timeout_seconds
// bounds one whole call. The session is non-blocking: no call hangs.
//
// One Transport keeps one SSH connection open for all its calls and opens
// a new one after an error that may have broken it. Errors follow
// transport.h; each message names the request the server refused, the
// remote path, and what the operator can change.
#pragma once

#include <memory>

#include "common/status.h"
#include "deliver/destination.h"
#include "deliver/transport.h"
#include "secrets/secret_store.h"

namespace cbpipe {

// Checks the options and resolves the secrets from `secrets` (null: the
// env:/file: store); does not connect (the first call does).
// kInvalidArgument names the destination and the option.
StatusOr<std::unique_ptr<Transport>> MakeSftpTransport(
    const DestinationConfig& destination, SecretStore* secrets = nullptr);

// The extensions an SFTP server offered in its VERSION reply: what the
// interop tests record (docs/interop.md) and a diagnostic can print.
struct SftpServerOffers {
  bool fsync = false;         // fsync@openssh.com
  bool posix_rename = false;  // posix-rename@openssh.com
};

// Connects `transport` (made by MakeSftpTransport) if it is not, and says
// what its server offered. kInvalidArgument for any other transport.
StatusOr<SftpServerOffers> SftpOffers(Transport* transport);

}  // namespace cbpipe
