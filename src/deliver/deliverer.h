// The safe-upload protocol, the same for every transport (DESIGN.md §5):
//
//   1. Ledger says delivered with this SHA-256 -> already_delivered.
//   2. The final name exists remotely: the ledger's intent (or, for a local
//      folder, the file's own hash) proves it is ours -> record it as
//      delivered, already_delivered; otherwise a conflict -> permanent error,
//      unless on_conflict says replace or rename.
//   3. Ledger intent (with the temporary name), upload as
//      .<name>.<16 random hex><temp_suffix> (unique per attempt, so two
//      uploaders never touch each other's file), rename to <name>, check
//      the remote size, ledger delivered. A receiver never sees a partial
//      file under the final name; on failure the temporary file is removed,
//      and one a crashed attempt left is removed by the next attempt (its
//      name is in the ledger's intent).
//
// Each attempt from step 2 on runs under the ledger's claim of (destination,
// name) (ledger/ledger.h), so two workers or processes never upload the same
// file at once: a claim held by another is a transient kUnavailable error
// (retried, here or by a later attempt of the step), and the claim is
// renewed before the rename, so a worker that lost it never renames.
//
// Transient errors are retried under the destination's RetryPolicy with
// Step Functions semantics, waiting on the Env (a set `stop` ends the
// retries); permanent ones stop at once. Every attempt is kept and, when
// the delivery fails, written to the ledger.
//
//   FileDeliverer d(destination, transport.get(), ledger.get(),
//                   Env::Default());
//   DeliveryResult r = d.Deliver({path, name, size, sha256, batch_id});
//
// One FileDeliverer per destination and thread; its Transport keeps one
// connection for all the files of a batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/env.h"
#include "deliver/destination.h"
#include "deliver/transport.h"
#include "ledger/ledger.h"
#include "secrets/secret_store.h"

namespace cbpipe {

struct FileToDeliver {
  std::string local_path;
  std::string name;  // final remote name
  uint64_t size = 0;
  std::string sha256;
  std::string batch_id;
  // Send again although the ledger has it (the receiver lost it); the
  // ledger records the delivery as a replay.
  bool replay = false;
  // The run delivering it ("" for none): kept with the ledger entry and
  // every failed attempt. A file the ledger has as delivered by this same
  // run (an earlier try of the workflow's deliver step) is kDelivered, one
  // delivered by another run kAlreadyDelivered.
  std::string run_id{};
};

enum class DeliveryOutcome { kDelivered, kAlreadyDelivered, kFailed };
std::string_view DeliveryOutcomeName(DeliveryOutcome o);

struct DeliveryResult {
  DeliveryOutcome outcome = DeliveryOutcome::kFailed;
  std::string remote_name;  // differs from the file's name after a rename
  std::vector<AttemptRecord> attempts;  // failed attempts, oldest first
  Status error;                         // the last error when kFailed
  // kDelivered by an earlier try of this same run (the ledger has it under
  // the run's id): reported as delivered, but nothing was sent this time,
  // so counters and "delivered" log lines must not count it again.
  bool earlier_try = false;
};

// How long a delivery claim lasts unless the caller says otherwise: a
// worker killed while delivering blocks that file for at most this long.
inline constexpr int64_t kDeliveryClaimLeaseMs = 60'000;

// True for errors worth another attempt (Status::IsTransient).
bool IsTransientDeliveryError(const Status& status);

class FileDeliverer {
 public:
  // `env` (clock, retry waits, jitter) and `stop` (may be null: retry
  // until the policy gives up) must outlive the deliverer.
  FileDeliverer(const DestinationConfig& destination, Transport* transport,
                DeliveryLedger* ledger, Env* env,
                int64_t claim_lease_ms = kDeliveryClaimLeaseMs,
                const std::atomic<bool>* stop = nullptr);
  DeliveryResult Deliver(const FileToDeliver& file);

 private:
  // One attempt of the protocol. Sets *outcome on success, and
  // *earlier_try when the ledger had the file from this run already.
  Status AttemptOnce(const FileToDeliver& file, std::string* remote_name,
                     DeliveryOutcome* outcome, bool* earlier_try);
  // The protocol from step 2 on, under the claim of `file`.
  Status AttemptClaimed(const FileToDeliver& file, std::string* remote_name,
                        DeliveryOutcome* outcome, bool* earlier_try,
                        const std::string& owner);
  // Applies on_conflict: an error (fail), *replace (replace), or another
  // *remote_name (rename; *already when that name holds this file already).
  Status ResolveConflict(const FileToDeliver& file, std::string* remote_name,
                         bool* replace, bool* already);

  const DestinationConfig& destination_;
  Transport* transport_;
  DeliveryLedger* ledger_;
  Env* env_;
  const int64_t claim_lease_ms_;
  const std::atomic<bool>* stop_;
};

// ".<name>.<16 random hex><suffix>": the temporary name of one upload.
std::string TemporaryUploadName(const std::string& name,
                                const std::string& suffix);

// The adapter for a destination, chosen by its URL scheme: file:// is a
// LocalFolderTransport; sftp:// is SftpTransport (libssh2); ftps:// and
// ftp:// go through libcurl. Secret references are resolved from `secrets`
// (null: the env:/file: store). With a `secrets` given, a login the server
// refuses (kUnauthenticated) is tried once more after
// secrets->Invalidate(password_ref / private_key_ref) dropped a cached
// value (aws-sm:), with the credentials read again: a secret rotated since
// it was cached is picked up without a restart. `secrets` must outlive the
// transport.
StatusOr<std::unique_ptr<Transport>> MakeTransport(
    const DestinationConfig& destination, SecretStore* secrets = nullptr);

}  // namespace cbpipe
