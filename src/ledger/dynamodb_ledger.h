// The DeliveryLedger adapter on DynamoDB (ledger/ledger.h has the
// contract): one table, shared by every worker on every machine; the
// delivery claim is one conditional UpdateItem, so two workers can never
// both upload the same file to the same destination.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<DeliveryLedger> ledger,
//       DynamoDbDeliveryLedger::Open(aws_client, "cbpipe-state",
//                                    Env::Default()));
//
// Items (table schema in aws/dynamodb.h; docs/aws.md "DynamoDB"), all in
// the partition pk "file#LEN:DESTINATION/NAME" (LEN: the destination's byte
// count, so no two (destination, name) pairs share a key):
// - sk "entry": the LedgerEntry's fields (state "intent" or "delivered").
// - sk "claim": claim_owner, claim_until (epoch ms); deleted on release.
// - sk "failures": attempts, a list appended by each RecordFailure (one
//   atomic UpdateItem: all of it or nothing, in order).
// CountDelivered is a consistent Scan of the whole table (tests and
// metrics, not the delivery path).
//
// Errors: as the port says, plus the AwsClient's codes passed through
// (kUnauthenticated, kPermissionDenied, kUnavailable after retries, ...);
// a missing table is kFailedPrecondition.
// Thread safety: every method may be called from several threads at once.
// Ownership: shares the client; `env` (the claim clock, not owned) must
// outlive the ledger.
#pragma once

#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/dynamodb.h"
#include "common/env.h"
#include "ledger/ledger.h"

namespace cbpipe {

class DynamoDbDeliveryLedger : public DeliveryLedger {
 public:
  // Checks that `table` exists (DescribeTable): kFailedPrecondition when it
  // does not.
  static StatusOr<std::unique_ptr<DeliveryLedger>> Open(
      std::shared_ptr<AwsClient> client, const std::string& table, Env* env);

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
  DynamoDbDeliveryLedger(std::shared_ptr<AwsClient> client, std::string table,
                         Env* env)
      : table_(std::move(client), std::move(table)), env_(env) {}
  // Writes every field of `entry` with `state`; with `condition` (may be
  // empty) built on `e`.
  Status Write(const LedgerEntry& entry, const std::string& state,
               DynamoExpr& e, const std::string& condition,
               bool* condition_failed);

  const DynamoDbTable table_;
  Env* const env_;
};

}  // namespace cbpipe
