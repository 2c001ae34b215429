// The DeliveryLedger adapter in memory (ledger/ledger.h has the contract):
// for tests and for runs that need no record across processes. It keeps
// nothing when destroyed.
//
//   InMemoryDeliveryLedger ledger(Env::Default());
//   FileDeliverer deliverer(destination, transport.get(), &ledger, env);
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/env.h"
#include "common/lease.h"
#include "ledger/ledger.h"

namespace cbpipe {

class InMemoryDeliveryLedger : public DeliveryLedger {
 public:
  // `env` (not owned) is the clock.
  explicit InMemoryDeliveryLedger(Env* env) : env_(env) {}

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
  using Key = std::pair<std::string, std::string>;  // destination, name
  Status Upsert(const LedgerEntry& entry, const char* state);

  std::mutex mu_;
  Env* env_;
  std::map<Key, LedgerEntry> entries_;
  std::map<Key, std::vector<AttemptRecord>> failures_;
  std::map<Key, Lease> claims_;
};

}  // namespace cbpipe
