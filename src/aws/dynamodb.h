// DynamoDbTable: the calls the DynamoDB adapters (runs/dynamodb_run_store.h,
// ledger/dynamodb_ledger.h) make on one table, over the one AwsClient: a
// JSON call with the table name filled in, Query/Scan over every page, the
// attribute-value helpers, and the table's creation (tests, setup).
//
//   DynamoDbTable table(client, "cbpipe-state");
//   nlohmann::json key = {{"pk", DynamoS("run#r1")}, {"sk", DynamoS("run")}};
//   CBPIPE_ASSIGN_OR_RETURN(nlohmann::json got, table.Call("GetItem",
//       {{"Key", key}, {"ConsistentRead", true}}));
//   CBPIPE_RETURN_IF_ERROR(table.ForEachItem("Query", request,
//       [&](const nlohmann::json& item) { ...; return OkStatus(); }));
//
// The table's schema (one table may serve both adapters: their keys never
// meet; docs/aws.md "DynamoDB"): partition key `pk` (S), sort key `sk` (S),
// and two global secondary indexes for listing runs newest first:
// `by_created` (`kind` S, `order` S) and `by_state` (`state` S, `order` S),
// both projecting ALL. PAY_PER_REQUEST billing.
//
// Errors: the AwsClient's (aws/client.h), throttling kUnavailable after the
// client's retries, except as Call says; an answer that is not JSON
// kInternal.
// Thread safety: every method may be called from several threads at once.
// Ownership: shares the client.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/client.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace cbpipe {

// Attribute values: {"S": s}, {"N": "123"}, {"BOOL": b}.
nlohmann::json DynamoS(std::string_view s);
nlohmann::json DynamoN(int64_t n);
// The string / number / bool of attribute `name` of `item`; "" / 0 / false
// when absent or of another type.
std::string DynamoGetS(const nlohmann::json& item, std::string_view name);
int64_t DynamoGetN(const nlohmann::json& item, std::string_view name);
bool DynamoGetBool(const nlohmann::json& item, std::string_view name);

// DynamoDB's limit on one item (names and values, UTF-8): 400 KB.
constexpr size_t kDynamoMaxItemBytes = 400 * 1024;
// The size DynamoDB counts for `item` (attribute names plus values; S as
// bytes, N as at most 21 bytes, BOOL 1, lists and maps their contents
// plus 3 bytes per element).
size_t DynamoItemBytes(const nlohmann::json& item);

// Expression names and values for one request, so no attribute name ever
// meets DynamoDB's reserved words ("state", "name", "order", ...):
//
//   DynamoExpr e;
//   std::string set = "SET " + e.Name("state") + " = " + e.Value(DynamoS(s));
//   std::string cond = e.Name("claim_owner") + " = " + e.Value(DynamoS(o));
//   e.AddTo(request);   // ExpressionAttributeNames / ...Values
class DynamoExpr {
 public:
  // "#n0", "#n1", ... (the same placeholder for the same name).
  std::string Name(std::string_view attribute);
  // ":v0", ":v1", ...
  std::string Value(nlohmann::json value);
  // "SET #n0 = :v0, #n1 = :v1" for (attribute, value) pairs.
  std::string Set(
      const std::vector<std::pair<std::string, nlohmann::json>>& values);
  void AddTo(nlohmann::json& request) const;

 private:
  nlohmann::json names_ = nlohmann::json::object();
  nlohmann::json values_ = nlohmann::json::object();
};

class DynamoDbTable {
 public:
  DynamoDbTable(std::shared_ptr<AwsClient> client, std::string table);

  // DynamoDB_20120810.<operation> with `request` plus "TableName"; the
  // answer's JSON. A failed ConditionExpression is kFailedPrecondition with
  // *condition_failed (when given) set; a missing table is also
  // kFailedPrecondition ("DynamoDB table T does not exist"), never
  // kNotFound, which the ports keep for a missing run or entry.
  StatusOr<nlohmann::json> Call(std::string_view operation,
                                nlohmann::json request,
                                bool* condition_failed = nullptr) const;
  // A conditional write: true when written, false when its
  // ConditionExpression refused it; other errors as Call's.
  StatusOr<bool> CallIf(std::string_view operation,
                        nlohmann::json request) const;
  // A Query or Scan over every page (following LastEvaluatedKey): each
  // page's answer goes to `on_page`, which may stop early by setting
  // *stop. Items and Count are in the page.
  Status ForEachPage(std::string_view operation, nlohmann::json request,
                     const std::function<Status(const nlohmann::json& page,
                                                bool* stop)>& on_page) const;

  const std::string& name() const { return table_; }
  // "dynamodb://TABLE", for messages.
  std::string resource() const { return "dynamodb://" + table_; }
  AwsClient& client() const { return *client_; }

 private:
  std::shared_ptr<AwsClient> client_;
  std::string table_;
};

// Creates `table` with the schema above and waits until it is ACTIVE (up to
// `timeout_seconds`). kAlreadyExists when it exists.
Status CreateDynamoDbTable(AwsClient& client, const std::string& table,
                           double timeout_seconds = 60);

}  // namespace cbpipe
