#include "ledger/in_memory_ledger.h"

#include <string_view>

namespace cbpipe {

StatusOr<std::optional<LedgerEntry>> InMemoryDeliveryLedger::Find(
    const std::string& destination, const std::string& remote_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find({destination, remote_name});
  if (it == entries_.end()) return std::optional<LedgerEntry>();
  return std::optional<LedgerEntry>(it->second);
}

Status InMemoryDeliveryLedger::Upsert(const LedgerEntry& entry,
                                      const char* state) {
  std::lock_guard<std::mutex> lock(mu_);
  LedgerEntry stored = entry;
  stored.state = state;
  if (stored.updated_at == 0) stored.updated_at = env_->NowSeconds();
  // A delivered file has no temporary name left to clean up.
  if (std::string_view(state) != "intent") stored.temp_name.clear();
  auto [it, inserted] =
      entries_.try_emplace({entry.destination, entry.remote_name}, stored);
  if (!inserted) {
    // An intent never downgrades a delivery of the same content.
    const bool keep_delivered = std::string_view(state) == "intent" &&
                                it->second.state == "delivered" &&
                                it->second.sha256 == entry.sha256;
    it->second = stored;
    if (keep_delivered) it->second.state = "delivered";
  }
  return OkStatus();
}

Status InMemoryDeliveryLedger::RecordIntent(const LedgerEntry& entry) {
  return Upsert(entry, "intent");
}

Status InMemoryDeliveryLedger::MarkDelivered(const LedgerEntry& entry) {
  return Upsert(entry, "delivered");
}

Status InMemoryDeliveryLedger::RecordFailure(
    const LedgerEntry& entry, const std::vector<AttemptRecord>& attempts) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AttemptRecord>& kept =
      failures_[{entry.destination, entry.remote_name}];
  kept.insert(kept.end(), attempts.begin(), attempts.end());
  return OkStatus();
}

StatusOr<std::vector<AttemptRecord>> InMemoryDeliveryLedger::FailedAttempts(
    const std::string& destination, const std::string& remote_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find({destination, remote_name});
  if (it == failures_.end()) return std::vector<AttemptRecord>();
  return it->second;
}

StatusOr<int64_t> InMemoryDeliveryLedger::CountDelivered() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [key, entry] : entries_) n += entry.state == "delivered";
  return n;
}

StatusOr<bool> InMemoryDeliveryLedger::ClaimDelivery(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  return claims_[{destination, remote_name}].Take(owner, env_->NowMs(),
                                                  lease_ms);
}

StatusOr<bool> InMemoryDeliveryLedger::RenewDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = claims_.find({destination, remote_name});
  return it != claims_.end() &&
         it->second.Renew(owner, env_->NowMs(), lease_ms);
}

Status InMemoryDeliveryLedger::ReleaseDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = claims_.find({destination, remote_name});
  if (it != claims_.end() && it->second.owner == owner) claims_.erase(it);
  return OkStatus();
}

}  // namespace cbpipe
