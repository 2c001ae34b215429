#include "aws/dynamodb.h"

#include <string>
#include <utility>

#include "common/env.h"

namespace cbpipe {

using nlohmann::json;

json DynamoS(std::string_view s) { return {{"S", std::string(s)}}; }
json DynamoN(int64_t n) { return {{"N", std::to_string(n)}}; }

namespace {
const json* Attribute(const json& item, std::string_view name,
                      const char* type) {
  if (!item.is_object()) return nullptr;
  auto it = item.find(std::string(name));
  if (it == item.end() || !it->is_object()) return nullptr;
  auto value = it->find(type);
  return value == it->end() ? nullptr : &*value;
}

size_t ValueBytes(const json& value) {
  if (!value.is_object() || value.empty()) return 0;
  // begin() of the object itself: a binding into `*items().begin()` would
  // refer to a temporary (ASan: stack-use-after-scope).
  const auto first = value.begin();
  const std::string& type = first.key();
  const json& v = first.value();
  if (type == "S" && v.is_string())
    return v.get_ref<const std::string&>().size();
  if (type == "N") return 21;
  if (type == "BOOL" || type == "NULL") return 1;
  size_t total = 3;
  if (type == "L" && v.is_array()) {
    for (const json& e : v) total += 1 + ValueBytes(e);
  } else if (type == "M" && v.is_object()) {
    for (const auto& [k, e] : v.items()) total += 1 + k.size() + ValueBytes(e);
  }
  return total;
}
}  // namespace

std::string DynamoGetS(const json& item, std::string_view name) {
  const json* v = Attribute(item, name, "S");
  return v && v->is_string() ? v->get<std::string>() : "";
}

int64_t DynamoGetN(const json& item, std::string_view name) {
  const json* v = Attribute(item, name, "N");
  if (!v || !v->is_string()) return 0;
  try {
    return std::stoll(v->get_ref<const std::string&>());
  } catch (...) {  // not a number DynamoDB would send: treat as absent
    return 0;
  }
}

bool DynamoGetBool(const json& item, std::string_view name) {
  const json* v = Attribute(item, name, "BOOL");
  return v && v->is_boolean() && v->get<bool>();
}

size_t DynamoItemBytes(const json& item) {
  size_t total = 0;
  if (!item.is_object()) return 0;
  for (const auto& [name, value] : item.items()) {
    total += name.size() + ValueBytes(value);
  }
  return total;
}

std::string DynamoExpr::Name(std::string_view attribute) {
  for (const auto& [placeholder, name] : names_.items()) {
    if (name == attribute) return placeholder;
  }
  std::string placeholder = "#n" + std::to_string(names_.size());
  names_[placeholder] = std::string(attribute);
  return placeholder;
}

std::string DynamoExpr::Value(json value) {
  std::string placeholder = ":v" + std::to_string(values_.size());
  values_[placeholder] = std::move(value);
  return placeholder;
}

std::string DynamoExpr::Set(
    const std::vector<std::pair<std::string, json>>& values) {
  std::string out;
  for (const auto& [attribute, value] : values) {
    out += out.empty() ? "SET " : ", ";
    out += Name(attribute) + " = " + Value(value);
  }
  return out;
}

void DynamoExpr::AddTo(json& request) const {
  if (!names_.empty()) request["ExpressionAttributeNames"] = names_;
  if (!values_.empty()) request["ExpressionAttributeValues"] = values_;
}

DynamoDbTable::DynamoDbTable(std::shared_ptr<AwsClient> client,
                             std::string table)
    : client_(std::move(client)), table_(std::move(table)) {}

StatusOr<json> DynamoDbTable::Call(std::string_view operation, json request,
                                   bool* condition_failed) const {
  if (condition_failed) *condition_failed = false;
  request["TableName"] = table_;
  AwsError error;
  auto called = client_->CallJson("dynamodb",
                                  "DynamoDB_20120810." + std::string(operation),
                                  request.dump(), resource(), "", &error);
  if (!called.ok()) {
    if (error.code == "ConditionalCheckFailedException") {
      if (condition_failed) *condition_failed = true;
      return called.status();
    }
    if (error.code == "ResourceNotFoundException" ||
        called.status().code() == StatusCode::kNotFound) {
      return FailedPreconditionError(
          "DynamoDB table " + table_ + " does not exist (" +
          called.status().message() + "); create it as docs/aws.md shows");
    }
    return called.status();
  }
  const std::string& answer = *called;
  json parsed = json::parse(answer, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return InternalError("DynamoDB " + std::string(operation) + " " +
                         resource() + ": the answer is not a JSON object");
  }
  return parsed;
}

StatusOr<bool> DynamoDbTable::CallIf(std::string_view operation,
                                     json request) const {
  bool refused = false;
  auto called = Call(operation, std::move(request), &refused);
  if (refused) return false;
  CBPIPE_RETURN_IF_ERROR(called.status());
  return true;
}

Status DynamoDbTable::ForEachPage(
    std::string_view operation, json request,
    const std::function<Status(const json& page, bool* stop)>& on_page) const {
  while (true) {
    CBPIPE_ASSIGN_OR_RETURN(json page, Call(operation, request));
    bool stop = false;
    CBPIPE_RETURN_IF_ERROR(on_page(page, &stop));
    auto next = page.find("LastEvaluatedKey");
    if (stop || next == page.end() || !next->is_object() || next->empty()) {
      return OkStatus();
    }
    request["ExclusiveStartKey"] = *next;
  }
}

Status CreateDynamoDbTable(AwsClient& client, const std::string& table,
                           double timeout_seconds) {
  auto key_schema = [](const char* hash, const char* range) {
    return json::array({{{"AttributeName", hash}, {"KeyType", "HASH"}},
                        {{"AttributeName", range}, {"KeyType", "RANGE"}}});
  };
  auto index = [&](const char* name, const char* hash) {
    return json{{"IndexName", name},
                {"KeySchema", key_schema(hash, "order")},
                {"Projection", {{"ProjectionType", "ALL"}}}};
  };
  json attributes = json::array();
  for (const char* name : {"pk", "sk", "kind", "state", "order"}) {
    attributes.push_back({{"AttributeName", name}, {"AttributeType", "S"}});
  }
  json request = {
      {"TableName", table},
      {"AttributeDefinitions", attributes},
      {"KeySchema", key_schema("pk", "sk")},
      {"GlobalSecondaryIndexes",
       json::array({index("by_created", "kind"), index("by_state", "state")})},
      {"BillingMode", "PAY_PER_REQUEST"}};
  const std::string resource = "dynamodb://" + table;
  AwsError error;
  auto created = client.CallJson("dynamodb", "DynamoDB_20120810.CreateTable",
                                 request.dump(), resource, "", &error);
  if (!created.ok()) {
    if (error.code == "ResourceInUseException") {
      return AlreadyExistsError("DynamoDB table " + table + " exists");
    }
    return created.status();
  }
  Env* env = Env::Default();
  const int64_t deadline =
      env->NowMs() + static_cast<int64_t>(timeout_seconds * 1000);
  while (true) {
    CBPIPE_ASSIGN_OR_RETURN(
        std::string described,
        client.CallJson("dynamodb", "DynamoDB_20120810.DescribeTable",
                        json{{"TableName", table}}.dump(), resource));
    json parsed = json::parse(described, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object() &&
        parsed.value(json::json_pointer("/Table/TableStatus"), std::string()) ==
            "ACTIVE") {
      return OkStatus();
    }
    if (env->NowMs() >= deadline) {
      return DeadlineExceededError("DynamoDB table " + table +
                                   " not ACTIVE after " +
                                   std::to_string(timeout_seconds) + " s");
    }
    env->SleepFor(0.5, client.options().stop);
  }
}

}  // namespace cbpipe
