#include "runs/dynamodb_run_store.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <utility>

namespace cbpipe {

using nlohmann::json;

namespace {

json Key(const std::string& run_id, const std::string& sk) {
  return {{"pk", DynamoS("run#" + run_id)}, {"sk", DynamoS(sk)}};
}

// The GSIs' sort key: ascending order is created_ms descending, then run id
// ascending (what List returns).
std::string Order(int64_t created_ms, const std::string& run_id) {
  char head[24];
  std::snprintf(
      head, sizeof head, "%020" PRId64,
      std::numeric_limits<int64_t>::max() - std::max<int64_t>(created_ms, 0));
  return std::string(head) + "#" + run_id;
}

RunRecord ReadRun(const json& item) {
  RunRecord r;
  r.run_id = DynamoGetS(item, "run_id");
  r.input_key = DynamoGetS(item, "input_key");
  r.input_name = DynamoGetS(item, "input_name");
  r.trace_id = DynamoGetS(item, "trace_id");
  r.state = DynamoGetS(item, "state");
  r.current_step = DynamoGetS(item, "current_step");
  r.error = DynamoGetS(item, "error");
  r.created_ms = DynamoGetN(item, "created_ms");
  r.updated_ms = DynamoGetN(item, "updated_ms");
  return r;
}

StepRecord ReadStep(const json& item) {
  StepRecord s;
  s.name = DynamoGetS(item, "name");
  s.state = DynamoGetS(item, "state");
  s.attempts = static_cast<int>(DynamoGetN(item, "attempts"));
  s.output_json = DynamoGetS(item, "output_json");
  s.error = DynamoGetS(item, "error");
  s.started_ms = DynamoGetN(item, "started_ms");
  s.finished_ms = DynamoGetN(item, "finished_ms");
  return s;
}

const json& Items(const json& page) {
  static const json kNone = json::array();
  auto it = page.find("Items");
  return it != page.end() && it->is_array() ? *it : kNone;
}

}  // namespace

StatusOr<std::unique_ptr<RunStore>> DynamoDbRunStore::Open(
    std::shared_ptr<AwsClient> client, const std::string& table, Env* env,
    DynamoDbRunStoreOptions options) {
  if (!client) return InvalidArgumentError("run store: no AWS client");
  if (table.empty()) return InvalidArgumentError("run store: no table name");
  std::unique_ptr<DynamoDbRunStore> store(
      new DynamoDbRunStore(std::move(client), table, env, options));
  CBPIPE_RETURN_IF_ERROR(
      store->table_.Call("DescribeTable", json::object()).status());
  return std::unique_ptr<RunStore>(std::move(store));
}

StatusOr<bool> DynamoDbRunStore::CreateIfAbsent(const RunRecord& run) {
  const int64_t created = run.created_ms ? run.created_ms : env_->NowMs();
  json item = Key(run.run_id, "run");
  item["kind"] = DynamoS("run");
  item["order"] = DynamoS(Order(created, run.run_id));
  item["run_id"] = DynamoS(run.run_id);
  item["input_key"] = DynamoS(run.input_key);
  item["input_name"] = DynamoS(run.input_name);
  item["trace_id"] = DynamoS(run.trace_id);
  item["state"] = DynamoS(run.state);
  item["current_step"] = DynamoS(run.current_step);
  item["error"] = DynamoS(run.error);
  item["created_ms"] = DynamoN(created);
  item["updated_ms"] = DynamoN(created);
  item["claim_owner"] = DynamoS("");
  item["claim_until"] = DynamoN(0);
  DynamoExpr e;
  json request = {
      {"Item", item},
      {"ConditionExpression", "attribute_not_exists(" + e.Name("pk") + ")"}};
  e.AddTo(request);
  bool exists = false;
  auto put = table_.Call("PutItem", std::move(request), &exists);
  if (exists) return false;
  CBPIPE_RETURN_IF_ERROR(put.status());
  return true;
}

StatusOr<RunRecord> DynamoDbRunStore::Get(const std::string& run_id) {
  DynamoExpr e;
  json request = {{"KeyConditionExpression",
                   e.Name("pk") + " = " + e.Value(DynamoS("run#" + run_id))},
                  {"ConsistentRead", true}};
  if (options_.page_size > 0) request["Limit"] = options_.page_size;
  e.AddTo(request);
  std::optional<RunRecord> run;
  std::vector<std::pair<int64_t, StepRecord>> steps;
  CBPIPE_RETURN_IF_ERROR(table_.ForEachPage(
      "Query", std::move(request), [&](const json& page, bool*) {
        for (const json& item : Items(page)) {
          const std::string sk = DynamoGetS(item, "sk");
          if (sk == "run") {
            run = ReadRun(item);
          } else if (sk.rfind("step#", 0) == 0) {
            steps.emplace_back(DynamoGetN(item, "seq"), ReadStep(item));
          }
        }
        return OkStatus();
      }));
  if (!run) return NotFoundError("run store: no run " + run_id);
  std::stable_sort(
      steps.begin(), steps.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [seq, step] : steps) run->steps.push_back(std::move(step));
  return *std::move(run);
}

Status DynamoDbRunStore::QueryIndex(
    const RunFilter& filter, bool count,
    const std::function<Status(const json&, bool*)>& on_page) {
  const std::string& state = filter.state;
  DynamoExpr e;
  json request = {{"IndexName", state.empty() ? "by_created" : "by_state"},
                  {"ScanIndexForward", true}};
  std::string key =
      state.empty() ? e.Name("kind") + " = " + e.Value(DynamoS("run"))
                    : e.Name("state") + " = " + e.Value(DynamoS(state));
  // The created_ms range on the sort key, whose ascending order is
  // created_ms descending: created_ms < to_ms is order >= Order(to_ms - 1)
  // without its id, created_ms >= from_ms is order <= Order(from_ms) with
  // every id ('~' sorts after hex digits).
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string low =
      filter.to_ms ? Order(std::clamp<int64_t>(*filter.to_ms - 1, 0, kMax), "")
                   : std::string();
  const std::string high =
      filter.from_ms ? Order(std::max<int64_t>(*filter.from_ms, 0), "~")
                     : std::string();
  if (filter.to_ms && *filter.to_ms <= 0) {
    // Nothing was created before the epoch; an empty answer.
    bool stop = false;
    return on_page(json::object(), &stop);
  }
  if (filter.to_ms && filter.from_ms) {
    key += " AND " + e.Name("order") + " BETWEEN " + e.Value(DynamoS(low)) +
           " AND " + e.Value(DynamoS(high));
  } else if (filter.to_ms) {
    key += " AND " + e.Name("order") + " >= " + e.Value(DynamoS(low));
  } else if (filter.from_ms) {
    key += " AND " + e.Name("order") + " <= " + e.Value(DynamoS(high));
  }
  request["KeyConditionExpression"] = key;
  if (count) request["Select"] = "COUNT";
  if (options_.page_size > 0) request["Limit"] = options_.page_size;
  e.AddTo(request);
  return table_.ForEachPage("Query", std::move(request), on_page);
}

StatusOr<std::vector<RunRecord>> DynamoDbRunStore::List(const RunFilter& filter,
                                                        int limit,
                                                        int offset) {
  std::vector<RunRecord> runs;
  if (limit == 0) return runs;
  if (filter.from_ms && filter.to_ms && *filter.from_ms >= *filter.to_ms)
    return runs;
  int64_t skip = std::max(offset, 0);
  // The state and range are the Query's; the input name (DynamoDB's
  // contains() is case-sensitive) is matched here.
  CBPIPE_RETURN_IF_ERROR(
      QueryIndex(filter, false, [&](const json& page, bool* stop) {
        for (const json& item : Items(page)) {
          RunRecord run = ReadRun(item);
          if (!filter.Matches(run)) continue;
          if (skip > 0) {
            --skip;
            continue;
          }
          runs.push_back(std::move(run));
          if (limit > 0 && runs.size() >= static_cast<size_t>(limit)) {
            *stop = true;
            break;
          }
        }
        return OkStatus();
      }));
  return runs;
}

StatusOr<int64_t> DynamoDbRunStore::Count(const RunFilter& filter) {
  if (filter.from_ms && filter.to_ms && *filter.from_ms >= *filter.to_ms)
    return 0;
  int64_t total = 0;
  const bool by_query = filter.input_contains.empty();
  CBPIPE_RETURN_IF_ERROR(
      QueryIndex(filter, by_query, [&](const json& page, bool*) {
        if (by_query) {
          total += page.value("Count", int64_t{0});
        } else {
          for (const json& item : Items(page)) {
            if (filter.Matches(ReadRun(item))) ++total;
          }
        }
        return OkStatus();
      }));
  return total;
}

Status DynamoDbRunStore::SaveStep(const std::string& run_id,
                                  const StepRecord& step) {
  json item = Key(run_id, "step#" + step.name);
  item["name"] = DynamoS(step.name);
  item["state"] = DynamoS(step.state);
  item["attempts"] = DynamoN(step.attempts);
  item["output_json"] = DynamoS(step.output_json);
  item["error"] = DynamoS(step.error);
  item["started_ms"] = DynamoN(step.started_ms);
  item["finished_ms"] = DynamoN(step.finished_ms);
  item["seq"] = DynamoN(0);
  const size_t bytes = DynamoItemBytes(item);
  if (bytes > kDynamoMaxItemBytes) {
    return InvalidArgumentError(
        "run store: step " + step.name + " of run " + run_id + " is " +
        std::to_string(bytes) + " bytes, over DynamoDB's 400 KB item limit" +
        " (step outputs hold ids, keys and counts; files go to the object" +
        " store)");
  }
  // The step's place: the run's counter, taken once per save; a step saved
  // again keeps the number it got first (if_not_exists).
  DynamoExpr c;
  json bump = {
      {"Key", Key(run_id, "seq")},
      {"UpdateExpression", "ADD " + c.Name("n") + " " + c.Value(DynamoN(1))},
      {"ReturnValues", "UPDATED_NEW"}};
  c.AddTo(bump);
  CBPIPE_ASSIGN_OR_RETURN(json bumped, table_.Call("UpdateItem", bump));
  const int64_t seq =
      DynamoGetN(bumped.value("Attributes", json::object()), "n");

  DynamoExpr e;
  std::vector<std::pair<std::string, json>> fields;
  for (const auto& [name, value] : item.items()) {
    if (name != "pk" && name != "sk" && name != "seq") {
      fields.emplace_back(name, value);
    }
  }
  std::string update = e.Set(fields) + ", " + e.Name("seq") +
                       " = if_not_exists(" + e.Name("seq") + ", " +
                       e.Value(DynamoN(seq)) + ")";
  json request = {{"Key", Key(run_id, "step#" + step.name)},
                  {"UpdateExpression", update}};
  e.AddTo(request);
  return table_.Call("UpdateItem", std::move(request)).status();
}

Status DynamoDbRunStore::SetState(const std::string& run_id,
                                  const std::string& state,
                                  const std::string& current_step,
                                  const std::string& error) {
  DynamoExpr e;
  json request = {
      {"Key", Key(run_id, "run")},
      {"UpdateExpression", e.Set({{"state", DynamoS(state)},
                                  {"current_step", DynamoS(current_step)},
                                  {"error", DynamoS(error)},
                                  {"updated_ms", DynamoN(env_->NowMs())}})},
      {"ConditionExpression", "attribute_exists(" + e.Name("pk") + ")"}};
  e.AddTo(request);
  bool missing = false;
  auto updated = table_.Call("UpdateItem", std::move(request), &missing);
  if (missing) return NotFoundError("run store: no run " + run_id);
  return updated.status();
}

StatusOr<bool> DynamoDbRunStore::Exists(const std::string& run_id) {
  DynamoExpr e;
  json request = {{"Key", Key(run_id, "run")},
                  {"ConsistentRead", true},
                  {"ProjectionExpression", e.Name("pk")}};
  e.AddTo(request);
  CBPIPE_ASSIGN_OR_RETURN(json got, table_.Call("GetItem", std::move(request)));
  return got.contains("Item");
}

StatusOr<bool> DynamoDbRunStore::Claim(const std::string& run_id,
                                       const std::string& owner,
                                       int64_t lease_ms) {
  const int64_t now = env_->NowMs();
  DynamoExpr e;
  const std::string o = e.Name("claim_owner"), u = e.Name("claim_until");
  const std::string me = e.Value(DynamoS(owner));
  json request = {
      {"Key", Key(run_id, "run")},
      {"UpdateExpression", "SET " + o + " = " + me + ", " + u + " = " +
                               e.Value(DynamoN(now + lease_ms))},
      // Held by nobody (released: until 0), by `owner`, or expired.
      {"ConditionExpression", "attribute_exists(" + e.Name("pk") + ") AND (" +
                                  o + " = " + me + " OR " + u +
                                  " <= " + e.Value(DynamoN(now)) + ")"}};
  e.AddTo(request);
  bool refused = false;
  auto updated = table_.Call("UpdateItem", std::move(request), &refused);
  if (updated.ok()) return true;
  if (!refused) return updated.status();
  CBPIPE_ASSIGN_OR_RETURN(bool exists, Exists(run_id));
  if (!exists) return NotFoundError("run store: no run " + run_id);
  return false;
}

StatusOr<bool> DynamoDbRunStore::RenewClaim(const std::string& run_id,
                                            const std::string& owner,
                                            int64_t lease_ms) {
  DynamoExpr e;
  const std::string o = e.Name("claim_owner"), u = e.Name("claim_until");
  json request = {
      {"Key", Key(run_id, "run")},
      {"UpdateExpression",
       "SET " + u + " = " + e.Value(DynamoN(env_->NowMs() + lease_ms))},
      {"ConditionExpression", "attribute_exists(" + e.Name("pk") + ") AND " +
                                  o + " = " + e.Value(DynamoS(owner))}};
  e.AddTo(request);
  return table_.CallIf("UpdateItem", std::move(request));
}

Status DynamoDbRunStore::ReleaseClaim(const std::string& run_id,
                                      const std::string& owner) {
  DynamoExpr e;
  const std::string o = e.Name("claim_owner");
  json request = {
      {"Key", Key(run_id, "run")},
      {"UpdateExpression",
       e.Set({{"claim_owner", DynamoS("")}, {"claim_until", DynamoN(0)}})},
      {"ConditionExpression", "attribute_exists(" + e.Name("pk") + ") AND " +
                                  o + " = " + e.Value(DynamoS(owner))}};
  e.AddTo(request);
  // Refused: not the holder, a no-op.
  return table_.CallIf("UpdateItem", std::move(request)).status();
}

}  // namespace cbpipe
