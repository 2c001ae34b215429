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
// Transient errors are retried under the destination's RetryPolicy with
// Step Functions semantics; permanent ones stop at once. Every attempt is
// kept and, when the delivery fails, written to the ledger.
//
//   FileDeliverer d(destination, transport.get(), ledger.get(), env);
//   DeliveryResult r = d.Deliver({path, name, size, sha256, batch_id});
//
// One FileDeliverer per destination and thread; its Transport keeps one
// connection for all the files of a batch.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "deliver/destination.h"
#include "deliver/ledger.h"
#include "deliver/transport.h"
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
};

enum class DeliveryOutcome { kDelivered, kAlreadyDelivered, kFailed };
std::string_view DeliveryOutcomeName(DeliveryOutcome o);

struct DeliveryResult {
  DeliveryOutcome outcome = DeliveryOutcome::kFailed;
  std::string remote_name;  // differs from the file's name after a rename
  std::vector<AttemptRecord> attempts;  // failed attempts, oldest first
  Status error;                         // the last error when kFailed
};

// What the retry loop needs from the world, injected so tests need not
// sleep: `sleep` waits (default: really), `random01` draws from [0, 1),
// `now` gives epoch seconds.
struct RetryEnv {
  std::function<void(double seconds)> sleep;
  std::function<double()> random01;
  std::function<int64_t()> now;
  static RetryEnv Real();
};

// True for errors worth another attempt (Status::IsTransient).
bool IsTransientDeliveryError(const Status& status);

class FileDeliverer {
 public:
  FileDeliverer(const DestinationConfig& destination, Transport* transport,
                DeliveryLedger* ledger, RetryEnv env);
  DeliveryResult Deliver(const FileToDeliver& file);

 private:
  // One attempt of the protocol. Sets *outcome on success.
  Status AttemptOnce(const FileToDeliver& file, std::string* remote_name,
                     DeliveryOutcome* outcome);
  // Applies on_conflict: an error (fail), *replace (replace), or another
  // *remote_name (rename; *already when that name holds this file already).
  Status ResolveConflict(const FileToDeliver& file, std::string* remote_name,
                         bool* replace, bool* already);

  const DestinationConfig& destination_;
  Transport* transport_;
  DeliveryLedger* ledger_;
  RetryEnv env_;
};

// ".<name>.<16 random hex><suffix>": the temporary name of one upload.
std::string TemporaryUploadName(const std::string& name,
                                const std::string& suffix);

// The adapter for a destination, chosen by its URL scheme: file:// is a
// LocalFolderTransport; sftp:// is SftpTransport (libssh2); ftps:// and
// ftp:// go through libcurl. Secret references are resolved from `secrets`
// (null: the env:/file: store).
StatusOr<std::unique_ptr<Transport>> MakeTransport(
    const DestinationConfig& destination, SecretStore* secrets = nullptr);

}  // namespace cbpipe
