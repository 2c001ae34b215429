#include "ledger/dynamodb_ledger.h"

#include <utility>

namespace cbpipe {

using nlohmann::json;

namespace {

json Key(const std::string& destination, const std::string& remote_name,
         const char* sk) {
  return {{"pk", DynamoS("file#" + std::to_string(destination.size()) + ":" +
                         destination + "/" + remote_name)},
          {"sk", DynamoS(sk)}};
}

}  // namespace

StatusOr<std::unique_ptr<DeliveryLedger>> DynamoDbDeliveryLedger::Open(
    std::shared_ptr<AwsClient> client, const std::string& table, Env* env) {
  if (!client) return InvalidArgumentError("ledger: no AWS client");
  if (table.empty()) return InvalidArgumentError("ledger: no table name");
  std::unique_ptr<DynamoDbDeliveryLedger> ledger(
      new DynamoDbDeliveryLedger(std::move(client), table, env));
  CBPIPE_RETURN_IF_ERROR(
      ledger->table_.Call("DescribeTable", json::object()).status());
  return std::unique_ptr<DeliveryLedger>(std::move(ledger));
}

StatusOr<std::optional<LedgerEntry>> DynamoDbDeliveryLedger::Find(
    const std::string& destination, const std::string& remote_name) {
  CBPIPE_ASSIGN_OR_RETURN(
      json got,
      table_.Call("GetItem", {{"Key", Key(destination, remote_name, "entry")},
                              {"ConsistentRead", true}}));
  auto item = got.find("Item");
  if (item == got.end() || !item->is_object()) {
    return std::optional<LedgerEntry>();
  }
  LedgerEntry e;
  e.destination = DynamoGetS(*item, "destination");
  e.remote_name = DynamoGetS(*item, "remote_name");
  e.size = static_cast<uint64_t>(DynamoGetN(*item, "size"));
  e.sha256 = DynamoGetS(*item, "sha256");
  e.batch_id = DynamoGetS(*item, "batch_id");
  e.state = DynamoGetS(*item, "state");
  e.updated_at = DynamoGetN(*item, "updated_at");
  e.replay = DynamoGetBool(*item, "replay");
  e.temp_name = DynamoGetS(*item, "temp_name");
  e.run_id = DynamoGetS(*item, "run_id");
  return std::optional<LedgerEntry>(std::move(e));
}

Status DynamoDbDeliveryLedger::Write(const LedgerEntry& entry,
                                     const std::string& state, DynamoExpr& e,
                                     const std::string& condition,
                                     bool* condition_failed) {
  std::vector<std::pair<std::string, json>> fields = {
      {"destination", DynamoS(entry.destination)},
      {"remote_name", DynamoS(entry.remote_name)},
      {"size", DynamoN(static_cast<int64_t>(entry.size))},
      {"sha256", DynamoS(entry.sha256)},
      {"batch_id", DynamoS(entry.batch_id)},
      {"updated_at",
       DynamoN(entry.updated_at ? entry.updated_at : env_->NowSeconds())},
      {"replay", {{"BOOL", entry.replay}}},
      {"run_id", DynamoS(entry.run_id)},
      // A delivered file has no temporary name left to clean up.
      {"temp_name", DynamoS(state == "delivered" ? "" : entry.temp_name)}};
  if (!state.empty()) fields.emplace_back("state", DynamoS(state));
  json request = {{"Key", Key(entry.destination, entry.remote_name, "entry")},
                  {"UpdateExpression", e.Set(fields)}};
  if (!condition.empty()) request["ConditionExpression"] = condition;
  e.AddTo(request);
  return table_.Call("UpdateItem", std::move(request), condition_failed)
      .status();
}

Status DynamoDbDeliveryLedger::RecordIntent(const LedgerEntry& entry) {
  // An intent never downgrades a delivery of the same content: the
  // conditional write refuses then, and the second one replaces the other
  // fields only while it still is that delivery. A third turn means the
  // entry keeps changing under us: busy, retry.
  for (int turn = 0; turn < 3; ++turn) {
    {
      DynamoExpr e;
      const std::string condition =
          "attribute_not_exists(" + e.Name("pk") + ") OR " + e.Name("state") +
          " <> " + e.Value(DynamoS("delivered")) + " OR " + e.Name("sha256") +
          " <> " + e.Value(DynamoS(entry.sha256));
      bool delivered = false;
      Status written = Write(entry, "intent", e, condition, &delivered);
      if (!delivered) return written;
    }
    DynamoExpr e;
    const std::string condition =
        e.Name("state") + " = " + e.Value(DynamoS("delivered")) + " AND " +
        e.Name("sha256") + " = " + e.Value(DynamoS(entry.sha256));
    bool changed = false;
    Status written = Write(entry, "", e, condition, &changed);
    if (!changed) return written;
  }
  return UnavailableError("ledger: the entry for " + entry.destination + "/" +
                          entry.remote_name + " keeps changing; retry");
}

Status DynamoDbDeliveryLedger::MarkDelivered(const LedgerEntry& entry) {
  DynamoExpr e;
  return Write(entry, "delivered", e, "", nullptr);
}

Status DynamoDbDeliveryLedger::RecordFailure(
    const LedgerEntry& entry, const std::vector<AttemptRecord>& attempts) {
  if (attempts.empty()) return OkStatus();
  json list = json::array();
  for (const AttemptRecord& a : attempts) {
    list.push_back({{"M",
                     {{"at", DynamoN(a.at)},
                      {"error_class", DynamoS(a.error_class)},
                      {"code", DynamoS(a.code)},
                      {"message", DynamoS(a.message)},
                      {"run_id", DynamoS(a.run_id)}}}});
  }
  DynamoExpr e;
  const std::string att = e.Name("attempts");
  json request = {
      {"Key", Key(entry.destination, entry.remote_name, "failures")},
      {"UpdateExpression", "SET " + att + " = list_append(if_not_exists(" +
                               att + ", " + e.Value({{"L", json::array()}}) +
                               "), " + e.Value({{"L", list}}) + ")"}};
  e.AddTo(request);
  return table_.Call("UpdateItem", std::move(request)).status();
}

StatusOr<std::vector<AttemptRecord>> DynamoDbDeliveryLedger::FailedAttempts(
    const std::string& destination, const std::string& remote_name) {
  CBPIPE_ASSIGN_OR_RETURN(
      json got, table_.Call("GetItem",
                            {{"Key", Key(destination, remote_name, "failures")},
                             {"ConsistentRead", true}}));
  std::vector<AttemptRecord> attempts;
  const json list =
      got.value(json::json_pointer("/Item/attempts/L"), json::array());
  for (const json& value : list) {
    const json m = value.value("M", json::object());
    AttemptRecord a{DynamoGetN(m, "at"), DynamoGetS(m, "error_class"),
                    DynamoGetS(m, "code"), DynamoGetS(m, "message")};
    a.run_id = DynamoGetS(m, "run_id");
    attempts.push_back(std::move(a));
  }
  return attempts;
}

StatusOr<int64_t> DynamoDbDeliveryLedger::CountDelivered() {
  DynamoExpr e;
  json request = {
      {"Select", "COUNT"},
      {"ConsistentRead", true},
      {"FilterExpression", e.Name("sk") + " = " + e.Value(DynamoS("entry")) +
                               " AND " + e.Name("state") + " = " +
                               e.Value(DynamoS("delivered"))}};
  e.AddTo(request);
  int64_t total = 0;
  CBPIPE_RETURN_IF_ERROR(table_.ForEachPage(
      "Scan", std::move(request), [&](const json& page, bool*) {
        total += page.value("Count", int64_t{0});
        return OkStatus();
      }));
  return total;
}

StatusOr<bool> DynamoDbDeliveryLedger::ClaimDelivery(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  const int64_t now = env_->NowMs();
  DynamoExpr e;
  const std::string o = e.Name("claim_owner"), u = e.Name("claim_until");
  const std::string me = e.Value(DynamoS(owner));
  json request = {
      {"Key", Key(destination, remote_name, "claim")},
      {"UpdateExpression", "SET " + o + " = " + me + ", " + u + " = " +
                               e.Value(DynamoN(now + lease_ms))},
      {"ConditionExpression", "attribute_not_exists(" + e.Name("pk") + ") OR " +
                                  o + " = " + me + " OR " + u +
                                  " <= " + e.Value(DynamoN(now))}};
  e.AddTo(request);
  return table_.CallIf("UpdateItem", std::move(request));
}

StatusOr<bool> DynamoDbDeliveryLedger::RenewDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner, int64_t lease_ms) {
  DynamoExpr e;
  json request = {
      {"Key", Key(destination, remote_name, "claim")},
      {"UpdateExpression", "SET " + e.Name("claim_until") + " = " +
                               e.Value(DynamoN(env_->NowMs() + lease_ms))},
      {"ConditionExpression",
       e.Name("claim_owner") + " = " + e.Value(DynamoS(owner))}};
  e.AddTo(request);
  return table_.CallIf("UpdateItem", std::move(request));
}

Status DynamoDbDeliveryLedger::ReleaseDeliveryClaim(
    const std::string& destination, const std::string& remote_name,
    const std::string& owner) {
  DynamoExpr e;
  json request = {{"Key", Key(destination, remote_name, "claim")},
                  {"ConditionExpression",
                   e.Name("claim_owner") + " = " + e.Value(DynamoS(owner))}};
  e.AddTo(request);
  // Refused: not the holder, a no-op.
  return table_.CallIf("DeleteItem", std::move(request)).status();
}

}  // namespace cbpipe
