// The Transport port: moves a local file to one card company's server.
//
//   auto t = MakeTransport(destination, secrets);   // chosen by URL scheme
//   CBPIPE_RETURN_IF_ERROR((*t)->Upload("/work/b1/visa.csv", "visa.csv.part"));
//   CBPIPE_RETURN_IF_ERROR((*t)->Rename("visa.csv.part", "visa.csv"));
//   auto size = (*t)->RemoteSize("visa.csv");        // nullopt: not there
//
// Remote names are relative to the destination's remote directory; an
// adapter never writes outside it. The safe-upload protocol (temporary name,
// rename, size check, ledger) is built on top of this port in
// deliver/deliverer.h, so every adapter gets it the same way.
//
// Errors: kUnavailable / kDeadlineExceeded for transient failures (connect
// refused, timeout, reset, FTP 421/425/426/450/451/452, SSH disconnect);
// kUnauthenticated (login refused), kPermissionDenied (550, not writable),
// kNotFound (remote directory missing), kFailedPrecondition (host key or
// certificate rejected) and kInvalidArgument for permanent ones. Messages
// never contain credentials.
//
// Thread safety: one Transport is used by one thread at a time. It may keep
// a connection open between calls (one connection for all the files of a
// batch going to the same destination).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace cbpipe {

class Transport {
 public:
  virtual ~Transport() = default;

  // Copies `local_path` to `remote_name`, creating or truncating it.
  virtual Status Upload(const std::string& local_path,
                        const std::string& remote_name) = 0;
  // Renames `from` to `to`. Fails (kAlreadyExists where the server says so)
  // rather than replacing an existing `to` unless `replace` is true.
  virtual Status Rename(const std::string& from, const std::string& to,
                        bool replace) = 0;
  // Size of `remote_name`, or nullopt when it does not exist.
  virtual StatusOr<std::optional<uint64_t>> RemoteSize(
      const std::string& remote_name) = 0;
  // Removes `remote_name`; OK when it does not exist.
  virtual Status Remove(const std::string& remote_name) = 0;
  // SHA-256 (lower-case hex) of `remote_name` where the adapter can compute
  // it cheaply (a local folder); nullopt where it cannot (FTP, SFTP), and
  // the caller then relies on the ledger.
  virtual StatusOr<std::optional<std::string>> RemoteSha256(
      const std::string& /*remote_name*/) {
    return std::optional<std::string>();
  }
  // For logs and reports: "sftp://user@127.0.0.1:2222/in" (no secrets).
  virtual std::string Describe() const = 0;
};

}  // namespace cbpipe
