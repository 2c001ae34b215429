// The delivery ledger: a durable record (SQLite) of every file delivered to a
// destination, consulted before each upload so nothing is sent twice.
//
//   auto ledger = DeliveryLedger::Open("/var/lib/cbpipe/ledger.db");
//   (*ledger)->RecordIntent(entry);     // before the upload starts
//   ... upload under a temporary name, rename, check size ...
//   (*ledger)->MarkDelivered(entry);    // after the final name is in place
//
// An intent left without a delivery marks a crash between upload and ledger
// write: on the retry, a remote file with the intended size and SHA-256 is
// recorded as delivered instead of being uploaded again.
//
// Thread safety: all methods may be called from several threads (one
// connection, serialised by a mutex). Several processes may share the file
// (WAL mode, busy timeout).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace cbpipe {

struct LedgerEntry {
  std::string destination;
  std::string remote_name;  // relative to the destination's folder
  uint64_t size = 0;
  std::string sha256;  // lower-case hex
  std::string batch_id;
  std::string state;  // "intent" or "delivered"
  int64_t updated_at = 0;  // epoch seconds
  bool replay = false;
  // With an intent: the temporary name the upload uses (unique per
  // attempt), so a later attempt can remove what a crashed one left.
  std::string temp_name{};
};

struct AttemptRecord {
  int64_t at = 0;          // epoch seconds
  std::string error_class; // "transient" or "permanent"
  std::string code;        // StatusCodeName
  std::string message;
};

class DeliveryLedger {
 public:
  static StatusOr<std::unique_ptr<DeliveryLedger>> Open(
      const std::string& path);
  ~DeliveryLedger();

  // The entry for (destination, remote_name), or nullopt.
  StatusOr<std::optional<LedgerEntry>> Find(const std::string& destination,
                                            const std::string& remote_name);
  // Records that an upload of `entry` is about to start (state "intent").
  // Does not downgrade an existing "delivered" entry with the same hash.
  Status RecordIntent(const LedgerEntry& entry);
  // Records `entry` as delivered (state "delivered").
  Status MarkDelivered(const LedgerEntry& entry);
  // Keeps the attempt history of a delivery that exhausted its retries.
  Status RecordFailure(const LedgerEntry& entry,
                       const std::vector<AttemptRecord>& attempts);
  // Number of delivered entries (for tests and metrics).
  StatusOr<int64_t> CountDelivered();

 private:
  explicit DeliveryLedger(sqlite3* db) : db_(db) {}
  Status Exec(const char* sql);
  Status Upsert(const LedgerEntry& entry, const char* state);

  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace cbpipe
