// The DeliveryLedger port: a durable record of every file delivered to a
// destination, consulted before each upload so nothing is sent twice, and
// the claim that lets at most one worker (thread or process) upload a given
// file to a given destination at a time. Adapters: SqliteDeliveryLedger
// (sqlite_ledger.h: ledger.db, shared by processes) and
// InMemoryDeliveryLedger (in_memory_ledger.h: tests); a DynamoDB adapter
// will implement the same interface.
//
//   auto ledger = SqliteDeliveryLedger::Open(work_dir + "/ledger.db",
//                                            Env::Default());
//   CBPIPE_ASSIGN_OR_RETURN(bool mine, (*ledger)->ClaimDelivery(
//       "visa", "visa_001.csv", owner, 600'000));
//   if (!mine) return UnavailableError("being delivered elsewhere");
//   (*ledger)->RecordIntent(entry);     // before the upload starts
//   ... upload under a temporary name, rename, check size ...
//   (*ledger)->MarkDelivered(entry);    // after the final name is in place
//   (*ledger)->ReleaseDeliveryClaim("visa", "visa_001.csv", owner);
//
// Entries are keyed by (destination, remote_name). An intent left without
// a delivery marks a crash between upload and ledger write: on the retry, a
// remote file with the intended size and SHA-256 is recorded as delivered
// instead of being uploaded again.
//
// The delivery claim (a conditional write, atomic in every adapter; the
// same rules as RunStore's claim of a run):
// - ClaimDelivery(dest, name, owner, lease) succeeds when nobody holds
//   (dest, name), `owner` holds it already (the lease is extended), or the
//   holder's lease has run out (until <= now). Of several owners racing,
//   exactly one wins. The file need not be in the ledger yet.
// - A claim lasts until now + lease_ms by the adapter's Env clock: it
//   expires exactly then and never sooner, even when its holder died.
// - RenewDeliveryClaim extends the lease only while `owner` still holds it;
//   false means someone else does: do not upload or rename.
// - ReleaseDeliveryClaim frees it at once; a no-op for a non-holder.
// Claims are independent of the entries: Find, RecordIntent and
// MarkDelivered neither need nor check one (the deliverer takes it).
//
// Errors (every method): kUnavailable when the store is busy (retry);
// kInternal otherwise.
// Thread safety: every method may be called from several threads at once.
// Ownership: results are plain values owned by the caller; the ledger does
// not own its Env, which must outlive it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace cbpipe {

struct LedgerEntry {
  std::string destination;
  std::string remote_name;  // relative to the destination's folder
  uint64_t size = 0;
  std::string sha256;  // lower-case hex
  std::string batch_id;
  std::string state;       // "intent" or "delivered"
  int64_t updated_at = 0;  // epoch seconds; 0 when written means now
  bool replay = false;
  // With an intent: the temporary name the upload uses (unique per
  // attempt), so a later attempt can remove what a crashed one left.
  std::string temp_name{};
  // The run that recorded the entry ("" when none said): a file found
  // delivered by the same run (an earlier attempt of its deliver step) is
  // that run's delivery, not one of an earlier run.
  std::string run_id{};
};

struct AttemptRecord {
  int64_t at = 0;           // epoch seconds
  std::string error_class;  // "transient" or "permanent"
  std::string code;         // StatusCodeName
  std::string message;
  // The run that made the attempt ("" when none said), so a run reports
  // its own attempts and not those of earlier runs of the same file.
  std::string run_id{};
};

class DeliveryLedger {
 public:
  virtual ~DeliveryLedger() = default;

  // The entry for (destination, remote_name), or nullopt.
  virtual StatusOr<std::optional<LedgerEntry>> Find(
      const std::string& destination, const std::string& remote_name) = 0;
  // Records that an upload of `entry` is about to start (state "intent",
  // with its temp_name). Does not downgrade an existing "delivered" entry
  // with the same hash (it stays "delivered"; the other fields are
  // replaced).
  virtual Status RecordIntent(const LedgerEntry& entry) = 0;
  // Records `entry` as delivered (state "delivered", no temp_name). Find
  // returns every field written, run_id included.
  virtual Status MarkDelivered(const LedgerEntry& entry) = 0;
  // Keeps failed attempts of a delivery (all of `attempts` or nothing),
  // each with its run_id; leaves the entry itself alone. Called once per
  // failed delivery (FileDeliverer), so a delivery retried by the workflow
  // engine adds one attempt per try.
  virtual Status RecordFailure(const LedgerEntry& entry,
                               const std::vector<AttemptRecord>& attempts) = 0;
  // Every attempt RecordFailure kept for (destination, remote_name), in the
  // order recorded, with the run_id each was recorded with.
  virtual StatusOr<std::vector<AttemptRecord>> FailedAttempts(
      const std::string& destination, const std::string& remote_name) = 0;
  // Number of delivered entries (for tests and metrics).
  virtual StatusOr<int64_t> CountDelivered() = 0;

  // The delivery claim, as described above.
  virtual StatusOr<bool> ClaimDelivery(const std::string& destination,
                                       const std::string& remote_name,
                                       const std::string& owner,
                                       int64_t lease_ms) = 0;
  virtual StatusOr<bool> RenewDeliveryClaim(const std::string& destination,
                                            const std::string& remote_name,
                                            const std::string& owner,
                                            int64_t lease_ms) = 0;
  virtual Status ReleaseDeliveryClaim(const std::string& destination,
                                      const std::string& remote_name,
                                      const std::string& owner) = 0;
};

}  // namespace cbpipe
