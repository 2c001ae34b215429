// The RunStore adapter on DynamoDB (runs/run_store.h has the contract): one
// table, shared by every worker on every machine; the claim is one
// conditional UpdateItem, so two workers can never both hold a run.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<RunStore> runs,
//       DynamoDbRunStore::Open(aws_client, "cbpipe-state", Env::Default()));
//
// Items (table schema in aws/dynamodb.h; docs/aws.md "DynamoDB"):
// - the run: pk "run#ID", sk "run"; its fields, kind "run", order (newest
//   first, then by id: the GSIs by_created and by_state list and count
//   runs), claim_owner and claim_until (epoch ms; "" and 0 when free).
// - a step: pk "run#ID", sk "step#NAME"; its fields and seq, the order in
//   which it was first saved (from the run's counter item, sk "seq").
// Get is one consistent Query of the run's partition (all pages); List and
// Count Query a GSI, which DynamoDB updates eventually (a run created a
// moment ago may be missing from a listing for a moment).
//
// A step item holds at most 400 KB (DynamoDB's item limit): SaveStep of a
// bigger step (its output_json and error) is kInvalidArgument, naming the
// run, the step and the size; nothing is written. Step outputs are ids,
// keys and counts; files go to the object store.
//
// Errors: as the port says, plus the AwsClient's codes passed through
// (kUnauthenticated, kPermissionDenied, kUnavailable after retries, ...),
// except that a missing table is kFailedPrecondition (never kNotFound,
// which means an unknown run).
// Thread safety: every method may be called from several threads at once.
// Ownership: shares the client; `env` (the claim clock, not owned) must
// outlive the store.
#pragma once

#include <memory>
#include <string>

#include "aws/client.h"
#include "aws/dynamodb.h"
#include "common/env.h"
#include "runs/run_store.h"

namespace cbpipe {

struct DynamoDbRunStoreOptions {
  // Items per Query page (the request's Limit); 0 = DynamoDB's own (up to
  // 1 MB). Tests make it small to cross many pages.
  int page_size = 0;
};

class DynamoDbRunStore : public RunStore {
 public:
  // Checks that `table` exists (DescribeTable): kFailedPrecondition when it
  // does not.
  static StatusOr<std::unique_ptr<RunStore>> Open(
      std::shared_ptr<AwsClient> client, const std::string& table, Env* env,
      DynamoDbRunStoreOptions options = {});

  StatusOr<bool> CreateIfAbsent(const RunRecord& run) override;
  StatusOr<RunRecord> Get(const std::string& run_id) override;
  StatusOr<std::vector<RunRecord>> List(const RunFilter& filter, int limit,
                                        int offset) override;
  StatusOr<int64_t> Count(const RunFilter& filter) override;
  Status SaveStep(const std::string& run_id, const StepRecord& step) override;
  Status SetState(const std::string& run_id, const std::string& state,
                  const std::string& current_step,
                  const std::string& error) override;
  StatusOr<bool> Claim(const std::string& run_id, const std::string& owner,
                       int64_t lease_ms) override;
  StatusOr<bool> RenewClaim(const std::string& run_id, const std::string& owner,
                            int64_t lease_ms) override;
  Status ReleaseClaim(const std::string& run_id,
                      const std::string& owner) override;

 private:
  DynamoDbRunStore(std::shared_ptr<AwsClient> client, std::string table,
                   Env* env, DynamoDbRunStoreOptions options)
      : table_(std::move(client), std::move(table)),
        env_(env),
        options_(options) {}
  // A Query of index by_created or by_state with the state and created_ms
  // range of `filter` (not its input_contains); every page to `on_page`.
  Status QueryIndex(
      const RunFilter& filter, bool count,
      const std::function<Status(const nlohmann::json&, bool*)>& on_page);
  StatusOr<bool> Exists(const std::string& run_id);

  const DynamoDbTable table_;
  Env* const env_;
  const DynamoDbRunStoreOptions options_;
};

}  // namespace cbpipe
