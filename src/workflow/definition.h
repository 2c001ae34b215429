// A workflow definition as data: a subset of the Amazon States Language
// (ASL), so the embedded engine (workflow/engine.h) and AWS Step Functions
// run the same document. cbpipe's own is src/workflow/cbpipe_workflow.json,
// compiled into the binary:
//
//   StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
//   StatusOr<WorkflowDefinition> toy = WorkflowDefinition::Parse(R"({
//     "StartAt": "a",
//     "States": {"a": {"Type": "Task", "End": true}}})");
//
// Parse validates everything an engine would otherwise meet half-way
// through a run and names the offending state and key
// (`States.deliver.Retry[0].BackoffRate: must be >= 1`).
//
// The subset (ASL semantics unless said otherwise):
// - Top level: StartAt, States, Comment.
// - Task: Parameters, ResultPath, Retry, Catch, Next | End. The task runs
//   the step named like the state (StepRunner in engine.h).
// - Map: ItemsPath, ItemSelector (keys ending in ".$" take a path:
//   "$.x" from the Map's input, "$$.Map.Item.Value" / "$$.Map.Item.Index"),
//   ItemProcessor {StartAt, States}, MaxConcurrency (0: as many as the
//   engine allows), MaxConcurrencyPath, ToleratedFailurePercentage (0..100;
//   a failed item within the tolerance becomes, in the result array, the
//   item's input with "error": {"Error", "Cause"}), ResultPath, Retry, Catch.
// - Pass: Result, ResultPath, Parameters. Choice: Choices [{Variable,
//   StringEquals | NumericEquals | NumericGreaterThan | BooleanEquals |
//   IsPresent, Next}], Default. Succeed. Fail: Error, Cause.
// - Retry [{ErrorEquals, IntervalSeconds (1), BackoffRate (2.0),
//   MaxAttempts (3: retries after the first attempt), MaxDelaySeconds (none),
//   JitterStrategy FULL | NONE}]; the wait before retry n (1-based) is
//   min(IntervalSeconds * BackoffRate^(n-1), MaxDelaySeconds), FULL jitter
//   draws it uniformly from [0, wait].
// - Catch [{ErrorEquals, Next, ResultPath}]: the catcher's input is the
//   state's input with {"Error", "Cause"} at ResultPath ("$": replaces it).
// - Error names are Status code names (UNAVAILABLE, INVALID_ARGUMENT,
//   DATA_LOSS, ...; common/status.h) and "States.ALL" (alone, last).
// - Paths ("$", "$.a.b", null: discard) take object fields only.
//
// cbpipe extensions, in a "cbpipe" object any state may carry (an export to
// Step Functions strips it and maps what it means):
// - input_schema / output_schema: {"type": "object", "required": [...],
//   "properties": {"k": {"type": "string|integer|number|boolean|array|
//   object"}}}; a Task's input and its result are checked against them (a
//   mismatch is an INTERNAL error of the state).
// - retry_from_input: a path into the Task's input to a RetryPolicy
//   (common/retry.h) as JSON — {interval_seconds, backoff_rate,
//   max_attempts (all attempts, the first included), max_delay_seconds,
//   full_jitter} — whose fields override the state's Retry rules: one
//   deliver state retried under each destination's own policy.
// - redrive_from: the top-level state a failed run is redriven from when it
//   failed here (default: the top-level state that failed).
// - end_state: the run's final state when it ends after this state
//   ("rejected": the input is quarantined, never redriven).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

// "$" (the whole document), "$.a.b", or discard (ResultPath null).
struct JsonPath {
  bool discard = false;
  std::vector<std::string> fields;  // empty: the root

  static StatusOr<JsonPath> Parse(const nlohmann::json& text);
  // The value at the path; nullptr when absent.
  const nlohmann::json* Find(const nlohmann::json& doc) const;
  // `doc` with `value` put at the path (the path's objects are created;
  // INVALID_ARGUMENT when a non-object is in the way).
  StatusOr<nlohmann::json> Put(nlohmann::json doc, nlohmann::json value) const;
  std::string ToString() const;
};

struct RetryRule {
  std::vector<std::string> error_equals;
  double interval_seconds = 1;
  double backoff_rate = 2.0;
  int max_attempts = 3;          // retries after the first attempt
  double max_delay_seconds = 0;  // 0: no cap
  bool full_jitter = false;
};

struct CatchRule {
  std::vector<std::string> error_equals;
  std::string next;
  JsonPath result_path;
};

struct ChoiceRule {
  JsonPath variable;
  std::string op;  // StringEquals, NumericEquals, ...
  nlohmann::json value;
  std::string next;
};

// The tiny schema of the "cbpipe" block (see above).
struct JsonSchema {
  bool present = false;
  std::vector<std::string> required;
  std::map<std::string, std::string> types;  // field -> type name
  // OK, or what does not match ("missing run_id", "now: not an integer").
  Status Check(const nlohmann::json& value) const;
};

enum class StateType { kTask, kMap, kPass, kChoice, kSucceed, kFail };

struct StateMachine;

struct State {
  std::string name;
  StateType type = StateType::kTask;
  std::string next;  // "" with end = true
  bool end = false;
  nlohmann::json parameters;  // null: none
  JsonPath result_path;
  std::vector<RetryRule> retry;
  std::vector<CatchRule> catches;
  // Map
  JsonPath items_path;
  nlohmann::json item_selector;  // null: the item itself
  int max_concurrency = 0;
  std::optional<JsonPath> max_concurrency_path;
  double tolerated_failure_percentage = 0;
  std::shared_ptr<const StateMachine> processor;
  // Pass
  std::optional<nlohmann::json> result;
  // Choice
  std::vector<ChoiceRule> choices;
  std::string default_next;
  // Fail
  std::string error, cause;
  // cbpipe extensions
  JsonSchema input_schema, output_schema;
  std::optional<JsonPath> retry_from_input;
  std::string redrive_from;
  std::string end_state;
};

struct StateMachine {
  std::string start_at;
  std::map<std::string, State> states;

  const State* Find(const std::string& name) const;
  // The states reachable from `from` (included) through Next, Catch,
  // Choices and Default.
  std::vector<std::string> ReachableFrom(const std::string& from) const;
};

class WorkflowDefinition {
 public:
  // Parses and validates a definition; INVALID_ARGUMENT naming the key.
  static StatusOr<WorkflowDefinition> Parse(std::string_view text);
  static StatusOr<WorkflowDefinition> FromJson(const nlohmann::json& doc);

  // The same workflow starting at top-level state `state` (and only the
  // states reachable from it): e.g. replay runs From("batches").
  StatusOr<WorkflowDefinition> From(const std::string& state) const;

  const StateMachine& root() const { return *root_; }
  const nlohmann::json& document() const { return document_; }

 private:
  std::shared_ptr<const StateMachine> root_;
  nlohmann::json document_;
};

// Error names: "States.ALL" matches every error.
bool ErrorMatches(const std::vector<std::string>& error_equals,
                  std::string_view error);

// cbpipe's workflow (src/workflow/cbpipe_workflow.json), as compiled in.
std::string_view CbpipeWorkflowJson();
StatusOr<WorkflowDefinition> CbpipeWorkflowDefinition();

}  // namespace cbpipe
