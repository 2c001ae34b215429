#include "workflow/definition.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace cbpipe {
namespace {

using json = nlohmann::json;

constexpr std::string_view kStatesAll = "States.ALL";

bool IsErrorName(const std::string& name) {
  if (name == kStatesAll) return true;
  for (int c = static_cast<int>(StatusCode::kInvalidArgument);
       c <= static_cast<int>(StatusCode::kInternal); ++c) {
    if (StatusCodeName(static_cast<StatusCode>(c)) == name) return true;
  }
  return false;
}

// Parses one state machine (the top level or a Map's ItemProcessor);
// `where` prefixes every error ("States.batches.ItemProcessor.").
class Parser {
 public:
  Status Fail(const std::string& key, const std::string& what) {
    return InvalidArgumentError("workflow definition: " + key + ": " + what);
  }

  Status CheckKeys(const json& obj, const std::string& where,
                   std::initializer_list<std::string_view> allowed) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
        return Fail(where + it.key(), "unknown field");
    }
    return OkStatus();
  }

  StatusOr<double> Number(const json& obj, const std::string& key,
                          const std::string& where, double fallback) {
    if (!obj.contains(key)) return fallback;
    if (!obj[key].is_number()) return Fail(where + key, "must be a number");
    return obj[key].get<double>();
  }

  StatusOr<std::string> String(const json& obj, const std::string& key,
                               const std::string& where, bool required) {
    if (!obj.contains(key)) {
      if (required) return Fail(where + key, "missing");
      return std::string();
    }
    if (!obj[key].is_string()) return Fail(where + key, "must be a string");
    return obj[key].get<std::string>();
  }

  StatusOr<std::vector<std::string>> Errors(const json& rule,
                                            const std::string& where) {
    if (!rule.contains("ErrorEquals") || !rule["ErrorEquals"].is_array() ||
        rule["ErrorEquals"].empty())
      return Fail(where + "ErrorEquals", "must be a non-empty array");
    std::vector<std::string> out;
    for (const json& e : rule["ErrorEquals"]) {
      if (!e.is_string() || !IsErrorName(e.get<std::string>()))
        return Fail(where + "ErrorEquals",
                    "unknown error name " + e.dump() +
                        " (a Status code name or States.ALL)");
      out.push_back(e.get<std::string>());
    }
    if (out.size() > 1 &&
        std::find(out.begin(), out.end(), kStatesAll) != out.end())
      return Fail(where + "ErrorEquals", "States.ALL must appear alone");
    return out;
  }

  StatusOr<JsonPath> Path(const json& obj, const std::string& key,
                          const std::string& where, bool null_ok) {
    if (!obj.contains(key)) return JsonPath{};
    if (obj[key].is_null() && !null_ok) return Fail(where + key, "null");
    StatusOr<JsonPath> p = JsonPath::Parse(obj[key]);
    if (!p.ok()) return Fail(where + key, p.status().message());
    return p;
  }

  Status Retry(const json& state, const std::string& where, State* out) {
    if (!state.contains("Retry")) return OkStatus();
    if (!state["Retry"].is_array())
      return Fail(where + "Retry", "must be an array");
    for (size_t i = 0; i < state["Retry"].size(); ++i) {
      const json& r = state["Retry"][i];
      const std::string at = where + "Retry[" + std::to_string(i) + "].";
      if (!r.is_object()) return Fail(at, "must be an object");
      CBPIPE_RETURN_IF_ERROR(CheckKeys(
          r, at,
          {"ErrorEquals", "IntervalSeconds", "BackoffRate", "MaxAttempts",
           "MaxDelaySeconds", "JitterStrategy", "Comment"}));
      RetryRule rule;
      CBPIPE_ASSIGN_OR_RETURN(rule.error_equals, Errors(r, at));
      CBPIPE_RETURN_IF_ERROR(ParseRetryFields(r, at, &rule));
      if (std::find(rule.error_equals.begin(), rule.error_equals.end(),
                    kStatesAll) != rule.error_equals.end() &&
          i + 1 != state["Retry"].size())
        return Fail(at + "ErrorEquals", "States.ALL must be the last rule");
      out->retry.push_back(std::move(rule));
    }
    return OkStatus();
  }

  Status ParseRetryFields(const json& r, const std::string& at,
                          RetryRule* rule) {
    CBPIPE_ASSIGN_OR_RETURN(
        rule->interval_seconds,
        Number(r, "IntervalSeconds", at, rule->interval_seconds));
    if (rule->interval_seconds < 0)
      return Fail(at + "IntervalSeconds", "must be >= 0");
    CBPIPE_ASSIGN_OR_RETURN(rule->backoff_rate,
                            Number(r, "BackoffRate", at, rule->backoff_rate));
    if (rule->backoff_rate < 1) return Fail(at + "BackoffRate", "must be >= 1");
    CBPIPE_ASSIGN_OR_RETURN(double attempts,
                            Number(r, "MaxAttempts", at, rule->max_attempts));
    if (attempts < 0 || attempts > 1000 || std::floor(attempts) != attempts)
      return Fail(at + "MaxAttempts", "must be an integer in 0..1000");
    rule->max_attempts = static_cast<int>(attempts);
    CBPIPE_ASSIGN_OR_RETURN(
        rule->max_delay_seconds,
        Number(r, "MaxDelaySeconds", at, rule->max_delay_seconds));
    if (rule->max_delay_seconds < 0)
      return Fail(at + "MaxDelaySeconds", "must be >= 0");
    CBPIPE_ASSIGN_OR_RETURN(std::string jitter,
                            String(r, "JitterStrategy", at, false));
    if (!jitter.empty() && jitter != "FULL" && jitter != "NONE")
      return Fail(at + "JitterStrategy", "must be FULL or NONE");
    if (!jitter.empty()) rule->full_jitter = jitter == "FULL";
    return OkStatus();
  }

  Status Catch(const json& state, const std::string& where, State* out) {
    if (!state.contains("Catch")) return OkStatus();
    if (!state["Catch"].is_array())
      return Fail(where + "Catch", "must be an array");
    for (size_t i = 0; i < state["Catch"].size(); ++i) {
      const json& c = state["Catch"][i];
      const std::string at = where + "Catch[" + std::to_string(i) + "].";
      if (!c.is_object()) return Fail(at, "must be an object");
      CBPIPE_RETURN_IF_ERROR(
          CheckKeys(c, at, {"ErrorEquals", "Next", "ResultPath", "Comment"}));
      CatchRule rule;
      CBPIPE_ASSIGN_OR_RETURN(rule.error_equals, Errors(c, at));
      CBPIPE_ASSIGN_OR_RETURN(rule.next, String(c, "Next", at, true));
      CBPIPE_ASSIGN_OR_RETURN(rule.result_path,
                              Path(c, "ResultPath", at, true));
      if (std::find(rule.error_equals.begin(), rule.error_equals.end(),
                    kStatesAll) != rule.error_equals.end() &&
          i + 1 != state["Catch"].size())
        return Fail(at + "ErrorEquals", "States.ALL must be the last rule");
      out->catches.push_back(std::move(rule));
    }
    return OkStatus();
  }

  Status Schema(const json& block, const std::string& key,
                const std::string& where, JsonSchema* out) {
    if (!block.contains(key)) return OkStatus();
    const json& s = block[key];
    const std::string at = where + key + ".";
    if (!s.is_object()) return Fail(where + key, "must be an object");
    CBPIPE_RETURN_IF_ERROR(
        CheckKeys(s, at, {"type", "required", "properties", "description"}));
    if (s.contains("type") && s["type"] != "object")
      return Fail(at + "type", "must be \"object\"");
    out->present = true;
    if (s.contains("required")) {
      if (!s["required"].is_array())
        return Fail(at + "required", "must be an array of names");
      for (const json& r : s["required"]) {
        if (!r.is_string())
          return Fail(at + "required", "must be an array of names");
        out->required.push_back(r.get<std::string>());
      }
    }
    if (s.contains("properties")) {
      if (!s["properties"].is_object())
        return Fail(at + "properties", "must be an object");
      static const std::set<std::string> kTypes = {
          "string", "integer", "number", "boolean", "array", "object"};
      for (auto it = s["properties"].begin(); it != s["properties"].end();
           ++it) {
        const json& p = it.value();
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string() ||
            !kTypes.count(p["type"].get<std::string>()))
          return Fail(at + "properties." + it.key() + ".type",
                      "must be one of string, integer, number, boolean, "
                      "array, object");
        out->types[it.key()] = p["type"].get<std::string>();
      }
    }
    return OkStatus();
  }

  Status Extensions(const json& state, const std::string& where, State* out) {
    if (!state.contains("cbpipe")) return OkStatus();
    const json& c = state["cbpipe"];
    const std::string at = where + "cbpipe.";
    if (!c.is_object()) return Fail(where + "cbpipe", "must be an object");
    CBPIPE_RETURN_IF_ERROR(
        CheckKeys(c, at,
                  {"input_schema", "output_schema", "retry_from_input",
                   "redrive_from", "end_state", "description"}));
    CBPIPE_RETURN_IF_ERROR(Schema(c, "input_schema", at, &out->input_schema));
    CBPIPE_RETURN_IF_ERROR(Schema(c, "output_schema", at, &out->output_schema));
    if (c.contains("retry_from_input")) {
      if (out->type != StateType::kTask || out->retry.empty())
        return Fail(at + "retry_from_input",
                    "only for a Task with Retry rules");
      CBPIPE_ASSIGN_OR_RETURN(JsonPath p,
                              Path(c, "retry_from_input", at, false));
      out->retry_from_input = std::move(p);
    }
    CBPIPE_ASSIGN_OR_RETURN(out->redrive_from,
                            String(c, "redrive_from", at, false));
    CBPIPE_ASSIGN_OR_RETURN(out->end_state, String(c, "end_state", at, false));
    if (!out->end_state.empty() && out->end_state != "rejected" &&
        out->end_state != "failed" && out->end_state != "succeeded")
      return Fail(at + "end_state", "must be rejected, failed or succeeded");
    return OkStatus();
  }

  Status Transition(const json& state, const std::string& where, State* out) {
    const bool has_next = state.contains("Next");
    const bool end = state.contains("End") && state["End"] == true;
    if (state.contains("End") && !state["End"].is_boolean())
      return Fail(where + "End", "must be true or false");
    if (has_next && end) return Fail(where + "Next", "Next and End: pick one");
    if (!has_next && !end) return Fail(where + "Next", "missing (or End)");
    out->end = end;
    if (has_next) {
      CBPIPE_ASSIGN_OR_RETURN(out->next, String(state, "Next", where, true));
    }
    return OkStatus();
  }

  Status Choices(const json& state, const std::string& where, State* out) {
    if (!state.contains("Choices") || !state["Choices"].is_array() ||
        state["Choices"].empty())
      return Fail(where + "Choices", "must be a non-empty array");
    static const std::set<std::string> kOps = {"StringEquals", "NumericEquals",
                                               "NumericGreaterThan",
                                               "BooleanEquals", "IsPresent"};
    for (size_t i = 0; i < state["Choices"].size(); ++i) {
      const json& c = state["Choices"][i];
      const std::string at = where + "Choices[" + std::to_string(i) + "].";
      if (!c.is_object()) return Fail(at, "must be an object");
      ChoiceRule rule;
      CBPIPE_ASSIGN_OR_RETURN(rule.next, String(c, "Next", at, true));
      if (!c.contains("Variable")) return Fail(at + "Variable", "missing");
      CBPIPE_ASSIGN_OR_RETURN(rule.variable, Path(c, "Variable", at, false));
      for (auto it = c.begin(); it != c.end(); ++it) {
        if (it.key() == "Next" || it.key() == "Variable") continue;
        if (!kOps.count(it.key()) || !rule.op.empty())
          return Fail(at + it.key(),
                      "one of StringEquals, NumericEquals, "
                      "NumericGreaterThan, BooleanEquals, IsPresent");
        rule.op = it.key();
        rule.value = it.value();
      }
      if (rule.op.empty()) return Fail(at, "no comparison");
      const bool ok = rule.op == "StringEquals"    ? rule.value.is_string()
                      : rule.op == "BooleanEquals" ? rule.value.is_boolean()
                      : rule.op == "IsPresent"     ? rule.value.is_boolean()
                                                   : rule.value.is_number();
      if (!ok) return Fail(at + rule.op, "wrong type of value");
      out->choices.push_back(std::move(rule));
    }
    CBPIPE_ASSIGN_OR_RETURN(out->default_next,
                            String(state, "Default", where, false));
    return OkStatus();
  }

  Status Map(const json& state, const std::string& where, State* out) {
    if (!state.contains("ItemsPath"))
      return Fail(where + "ItemsPath", "missing");
    CBPIPE_ASSIGN_OR_RETURN(out->items_path,
                            Path(state, "ItemsPath", where, false));
    if (state.contains("ItemSelector")) {
      if (!state["ItemSelector"].is_object())
        return Fail(where + "ItemSelector", "must be an object");
      out->item_selector = state["ItemSelector"];
    }
    CBPIPE_ASSIGN_OR_RETURN(double max,
                            Number(state, "MaxConcurrency", where, 0));
    if (max < 0 || std::floor(max) != max || max > 1000)
      return Fail(where + "MaxConcurrency", "must be an integer in 0..1000");
    out->max_concurrency = static_cast<int>(max);
    if (state.contains("MaxConcurrencyPath")) {
      CBPIPE_ASSIGN_OR_RETURN(JsonPath p,
                              Path(state, "MaxConcurrencyPath", where, false));
      out->max_concurrency_path = std::move(p);
    }
    CBPIPE_ASSIGN_OR_RETURN(
        out->tolerated_failure_percentage,
        Number(state, "ToleratedFailurePercentage", where, 0));
    if (out->tolerated_failure_percentage < 0 ||
        out->tolerated_failure_percentage > 100)
      return Fail(where + "ToleratedFailurePercentage", "must be in 0..100");
    if (!state.contains("ItemProcessor"))
      return Fail(where + "ItemProcessor", "missing");
    const json& p = state["ItemProcessor"];
    if (!p.is_object()) return Fail(where + "ItemProcessor", "not an object");
    CBPIPE_RETURN_IF_ERROR(
        CheckKeys(p, where + "ItemProcessor.",
                  {"StartAt", "States", "ProcessorConfig", "Comment"}));
    auto machine = std::make_shared<StateMachine>();
    CBPIPE_RETURN_IF_ERROR(Machine(p, where + "ItemProcessor.", machine.get()));
    out->processor = std::move(machine);
    return OkStatus();
  }

  Status OneState(const std::string& name, const json& s,
                  const std::string& where, State* out) {
    out->name = name;
    if (!s.is_object()) return Fail(where, "must be an object");
    CBPIPE_ASSIGN_OR_RETURN(std::string type, String(s, "Type", where, true));
    const std::initializer_list<std::string_view> common = {"Type", "Comment",
                                                            "cbpipe"};
    std::vector<std::string_view> allowed(common);
    auto allow = [&](std::initializer_list<std::string_view> more) {
      allowed.insert(allowed.end(), more.begin(), more.end());
    };
    if (type == "Task") {
      out->type = StateType::kTask;
      allow({"Resource", "Parameters", "ResultPath", "Retry", "Catch", "Next",
             "End", "TimeoutSeconds"});
    } else if (type == "Map") {
      out->type = StateType::kMap;
      allow({"ItemsPath", "ItemSelector", "ItemProcessor", "MaxConcurrency",
             "MaxConcurrencyPath", "ToleratedFailurePercentage", "ResultPath",
             "Catch", "Next", "End"});
    } else if (type == "Pass") {
      out->type = StateType::kPass;
      allow({"Result", "ResultPath", "Parameters", "Next", "End"});
    } else if (type == "Choice") {
      out->type = StateType::kChoice;
      allow({"Choices", "Default"});
    } else if (type == "Succeed") {
      out->type = StateType::kSucceed;
    } else if (type == "Fail") {
      out->type = StateType::kFail;
      allow({"Error", "Cause"});
    } else {
      return Fail(where + "Type",
                  "unknown type " + type +
                      " (Task, Map, Pass, Choice, Succeed or Fail)");
    }
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
        return Fail(where + it.key(), "unknown field for a " + type);
    }
    if (out->type == StateType::kTask || out->type == StateType::kMap ||
        out->type == StateType::kPass) {
      CBPIPE_RETURN_IF_ERROR(Transition(s, where, out));
      CBPIPE_ASSIGN_OR_RETURN(out->result_path,
                              Path(s, "ResultPath", where, true));
    }
    if (s.contains("Parameters")) {
      if (!s["Parameters"].is_object())
        return Fail(where + "Parameters", "must be an object");
      out->parameters = s["Parameters"];
    }
    CBPIPE_RETURN_IF_ERROR(Retry(s, where, out));
    CBPIPE_RETURN_IF_ERROR(Catch(s, where, out));
    if (out->type == StateType::kMap)
      CBPIPE_RETURN_IF_ERROR(Map(s, where, out));
    if (out->type == StateType::kChoice)
      CBPIPE_RETURN_IF_ERROR(Choices(s, where, out));
    if (out->type == StateType::kPass && s.contains("Result"))
      out->result = s["Result"];
    if (out->type == StateType::kFail) {
      CBPIPE_ASSIGN_OR_RETURN(out->error, String(s, "Error", where, false));
      CBPIPE_ASSIGN_OR_RETURN(out->cause, String(s, "Cause", where, false));
    }
    return Extensions(s, where, out);
  }

  // Every transition names a state of `m`; every state is reachable.
  Status Links(const StateMachine& m, const std::string& where) {
    auto known = [&](const std::string& next, const std::string& key) {
      if (m.states.count(next)) return OkStatus();
      return Fail(key, "no state named \"" + next + "\"");
    };
    for (const auto& [name, s] : m.states) {
      const std::string at = where + "States." + name + ".";
      if (!s.next.empty()) CBPIPE_RETURN_IF_ERROR(known(s.next, at + "Next"));
      for (size_t i = 0; i < s.catches.size(); ++i)
        CBPIPE_RETURN_IF_ERROR(known(
            s.catches[i].next, at + "Catch[" + std::to_string(i) + "].Next"));
      for (size_t i = 0; i < s.choices.size(); ++i)
        CBPIPE_RETURN_IF_ERROR(known(
            s.choices[i].next, at + "Choices[" + std::to_string(i) + "].Next"));
      if (!s.default_next.empty())
        CBPIPE_RETURN_IF_ERROR(known(s.default_next, at + "Default"));
    }
    std::vector<std::string> reach = m.ReachableFrom(m.start_at);
    for (const auto& [name, s] : m.states) {
      if (std::find(reach.begin(), reach.end(), name) == reach.end())
        return Fail(where + "States." + name,
                    "unreachable from StartAt " + m.start_at);
    }
    return OkStatus();
  }

  Status Machine(const json& doc, const std::string& where, StateMachine* out) {
    CBPIPE_ASSIGN_OR_RETURN(out->start_at, String(doc, "StartAt", where, true));
    if (!doc.contains("States") || !doc["States"].is_object() ||
        doc["States"].empty())
      return Fail(where + "States", "must be a non-empty object");
    for (auto it = doc["States"].begin(); it != doc["States"].end(); ++it) {
      const std::string& name = it.key();
      const std::string at = where + "States." + name + ".";
      if (name.empty() || name.size() > 80 ||
          name.find_first_of("/$.[] ") != std::string::npos ||
          std::all_of(name.begin(), name.end(),
                      [](char c) { return c >= '0' && c <= '9'; }))
        return Fail(where + "States." + name,
                    "a state name is 1..80 characters, not only digits, "
                    "without / $ . [ ] or spaces");
      if (all_names_.count(name))
        return Fail(where + "States." + name,
                    "state names must be unique across the whole definition");
      all_names_.insert(name);
      State state;
      CBPIPE_RETURN_IF_ERROR(OneState(name, it.value(), at, &state));
      out->states.emplace(name, std::move(state));
    }
    if (!out->states.count(out->start_at))
      return Fail(where + "StartAt",
                  "no state named \"" + out->start_at + "\"");
    return Links(*out, where);
  }

  std::set<std::string> all_names_;
};

}  // namespace

StatusOr<JsonPath> JsonPath::Parse(const json& text) {
  JsonPath p;
  if (text.is_null()) {
    p.discard = true;
    return p;
  }
  if (!text.is_string()) return InvalidArgumentError("a path is a string");
  const std::string s = text.get<std::string>();
  if (s.empty() || s[0] != '$' || (s.size() > 1 && s[1] != '.'))
    return InvalidArgumentError("path \"" + s +
                                "\" must be \"$\" or start with \"$.\"");
  size_t pos = 1;
  while (pos < s.size()) {
    const size_t end = s.find('.', pos + 1);
    std::string field = s.substr(
        pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    if (field.empty() || field.find_first_of("[]*$@") != std::string::npos)
      return InvalidArgumentError("path \"" + s +
                                  "\": only object fields (\"$.a.b\")");
    p.fields.push_back(std::move(field));
    if (end == std::string::npos) break;
    pos = end;
  }
  return p;
}

const json* JsonPath::Find(const json& doc) const {
  const json* at = &doc;
  for (const std::string& f : fields) {
    if (!at->is_object()) return nullptr;
    auto it = at->find(f);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

StatusOr<json> JsonPath::Put(json doc, json value) const {
  if (discard) return doc;
  if (fields.empty()) return value;
  json* at = &doc;
  for (const std::string& f : fields) {
    if (at->is_null()) *at = json::object();
    if (!at->is_object())
      return InvalidArgumentError("cannot put a result at " + ToString() +
                                  ": not an object on the way");
    at = &(*at)[f];
  }
  *at = std::move(value);
  return doc;
}

std::string JsonPath::ToString() const {
  if (discard) return "null";
  std::string out = "$";
  for (const std::string& f : fields) out += "." + f;
  return out;
}

Status JsonSchema::Check(const json& value) const {
  if (!present) return OkStatus();
  if (!value.is_object()) return InvalidArgumentError("not an object");
  for (const std::string& r : required) {
    if (!value.contains(r)) return InvalidArgumentError("missing " + r);
  }
  for (const auto& [key, type] : types) {
    auto it = value.find(key);
    if (it == value.end()) continue;
    const bool ok = type == "string"    ? it->is_string()
                    : type == "integer" ? it->is_number_integer()
                    : type == "number"  ? it->is_number()
                    : type == "boolean" ? it->is_boolean()
                    : type == "array"   ? it->is_array()
                                        : it->is_object();
    if (!ok) return InvalidArgumentError(key + ": not of type " + type);
  }
  return OkStatus();
}

const State* StateMachine::Find(const std::string& name) const {
  auto it = states.find(name);
  return it == states.end() ? nullptr : &it->second;
}

std::vector<std::string> StateMachine::ReachableFrom(
    const std::string& from) const {
  std::vector<std::string> out;
  std::vector<std::string> todo = {from};
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (std::find(out.begin(), out.end(), name) != out.end()) continue;
    const State* s = Find(name);
    if (!s) continue;
    out.push_back(name);
    if (!s->next.empty()) todo.push_back(s->next);
    for (const CatchRule& c : s->catches) todo.push_back(c.next);
    for (const ChoiceRule& c : s->choices) todo.push_back(c.next);
    if (!s->default_next.empty()) todo.push_back(s->default_next);
  }
  return out;
}

StatusOr<WorkflowDefinition> WorkflowDefinition::Parse(std::string_view text) {
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded())
    return InvalidArgumentError("workflow definition: not valid JSON");
  return FromJson(doc);
}

StatusOr<WorkflowDefinition> WorkflowDefinition::FromJson(const json& doc) {
  if (!doc.is_object())
    return InvalidArgumentError("workflow definition: not a JSON object");
  Parser parser;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() != "StartAt" && it.key() != "States" &&
        it.key() != "Comment" && it.key() != "Version" && it.key() != "cbpipe")
      return parser.Fail(it.key(), "unknown field");
  }
  auto root = std::make_shared<StateMachine>();
  CBPIPE_RETURN_IF_ERROR(parser.Machine(doc, "", root.get()));
  // redrive_from names a top-level state, wherever it is written.
  std::vector<const StateMachine*> machines = {root.get()};
  while (!machines.empty()) {
    const StateMachine* m = machines.back();
    machines.pop_back();
    for (const auto& [name, s] : m->states) {
      if (!s.redrive_from.empty() && !root->states.count(s.redrive_from))
        return parser.Fail(
            "States." + name + ".cbpipe.redrive_from",
            "no top-level state named \"" + s.redrive_from + "\"");
      if (s.processor) machines.push_back(s.processor.get());
    }
  }
  WorkflowDefinition def;
  def.root_ = std::move(root);
  def.document_ = doc;
  return def;
}

StatusOr<WorkflowDefinition> WorkflowDefinition::From(
    const std::string& state) const {
  if (!root_->Find(state))
    return InvalidArgumentError("workflow definition: no top-level state \"" +
                                state + "\"");
  json doc = document_;
  doc["StartAt"] = state;
  std::vector<std::string> keep = root_->ReachableFrom(state);
  for (auto it = document_["States"].begin(); it != document_["States"].end();
       ++it) {
    if (std::find(keep.begin(), keep.end(), it.key()) == keep.end())
      doc["States"].erase(it.key());
  }
  // A redrive point that is gone becomes the new start.
  std::vector<json*> todo = {&doc};
  while (!todo.empty()) {
    json* j = todo.back();
    todo.pop_back();
    if (j->is_object() && j->contains("cbpipe") && (*j)["cbpipe"].is_object() &&
        (*j)["cbpipe"].contains("redrive_from") &&
        std::find(keep.begin(), keep.end(), (*j)["cbpipe"]["redrive_from"]) ==
            keep.end())
      (*j)["cbpipe"]["redrive_from"] = state;
    if (j->is_structured()) {
      for (json& child : *j) todo.push_back(&child);
    }
  }
  return FromJson(doc);
}

bool ErrorMatches(const std::vector<std::string>& error_equals,
                  std::string_view error) {
  for (const std::string& e : error_equals) {
    if (e == kStatesAll || e == error) return true;
  }
  return false;
}

StatusOr<WorkflowDefinition> CbpipeWorkflowDefinition() {
  return WorkflowDefinition::Parse(CbpipeWorkflowJson());
}

}  // namespace cbpipe
