// The DeliveryLedger adapter on SQLite (ledger/ledger.h has the contract):
// ledger.db with its `deliveries`, `delivery_failures` and
// `delivery_claims` tables. One connection serialised by a mutex; several
// processes may share the file (WAL, busy timeout, synchronous FULL: a
// delivery recorded is on disk before the next file starts). The claim is
// one conditional upsert, so it holds across processes.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<DeliveryLedger> ledger,
//       SqliteDeliveryLedger::Open(work_dir + "/ledger.db", Env::Default()));
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/env.h"
#include "ledger/ledger.h"

struct sqlite3;

namespace cbpipe {

class SqliteDeliveryLedger : public DeliveryLedger {
 public:
  // Opens (creating) the database at `path`; files written by earlier
  // versions are upgraded in place. `env` (not owned) is the clock.
  static StatusOr<std::unique_ptr<DeliveryLedger>> Open(const std::string& path,
                                                        Env* env);
  ~SqliteDeliveryLedger() override;

  StatusOr<std::optional<LedgerEntry>> Find(
      const std::string& destination, const std::string& remote_name) override;
  Status RecordIntent(const LedgerEntry& entry) override;
  Status MarkDelivered(const LedgerEntry& entry) override;
  Status RecordFailure(const LedgerEntry& entry,
                       const std::vector<AttemptRecord>& attempts) override;
  StatusOr<std::vector<AttemptRecord>> FailedAttempts(
      const std::string& destination, const std::string& remote_name) override;
  StatusOr<int64_t> CountDelivered() override;
  StatusOr<bool> ClaimDelivery(const std::string& destination,
                               const std::string& remote_name,
                               const std::string& owner,
                               int64_t lease_ms) override;
  StatusOr<bool> RenewDeliveryClaim(const std::string& destination,
                                    const std::string& remote_name,
                                    const std::string& owner,
                                    int64_t lease_ms) override;
  Status ReleaseDeliveryClaim(const std::string& destination,
                              const std::string& remote_name,
                              const std::string& owner) override;

 private:
  SqliteDeliveryLedger(sqlite3* db, Env* env) : db_(db), env_(env) {}
  Status Exec(const char* sql);
  // Adds a TEXT NOT NULL DEFAULT '' column to an older file's `table`
  // unless it is there already.
  Status AddColumn(const std::string& table, const std::string& column);
  Status Upsert(const LedgerEntry& entry, const char* state);

  std::mutex mu_;
  sqlite3* db_;
  Env* env_;
};

}  // namespace cbpipe
