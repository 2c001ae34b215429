// LEGACY: the engine whose definition is C++ (CbpipeWorkflow in steps.cc),
// kept only until the steps move to workflow/engine.h, which runs the
// definition as data (workflow/definition.h, cbpipe_workflow.json).
//
// A small state machine with Step Functions semantics, run by the embedded
// service: each step is a function from a JSON input to a JSON output (ids,
// keys, counts — never records), with a Retry policy and Catch rules. Every
// step's result is checkpointed in the RunStore before the next starts, so
// a restarted process resumes a run after its last completed step.
//
//   LegacyWorkflowDefinition def;
//   def.start = "validate";
//   def.steps["validate"] = {.fn = Validate, .retry = {...},
//                            .catchers = {{{StatusCode::kInvalidArgument},
//                                          "reject_input"}},
//                            .next = "generate"};
//   LegacyWorkflowEngine engine(def, store, env);
//   LegacyRunOutcome out = engine.Resume(run_id, initial_input, &stop);
//
// Retry applies to transient errors (Status::IsTransient) unless a step
// says otherwise; the wait before attempt n+1 is RetryDelaySeconds. A step
// that still fails goes to the first LegacyCatcher whose codes match (empty:
// any) with input {"error": {"code", "message"}, "input": <its input>}; with no
// LegacyCatcher the run fails. A step marked `fails_run` ends the run as failed
// after it ran (the failure path: record a dead letter, alert).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "deliver/deliverer.h"
#include "workflow/run_store.h"

namespace cbpipe {

using LegacyStepFn = std::function<StatusOr<nlohmann::json>(
    const RunRecord& run, const nlohmann::json& input)>;

struct LegacyCatcher {
  std::vector<StatusCode> codes;  // empty: every error
  std::string next;
};

struct LegacyStepDefinition {
  LegacyStepFn fn;
  RetryPolicy retry{0.5, 2.0, 3, 10.0, true};
  bool retry_transient = true;
  std::vector<LegacyCatcher> catchers;
  std::string next;        // "" ends the run
  bool fails_run = false;  // the run ends "failed" after this step
  std::string end_state;   // overrides the final state ("rejected")
  // Where a redriven run starts when this step failed ("" = this step).
  std::string redrive_from;
};

struct LegacyWorkflowDefinition {
  std::string start;
  std::map<std::string, LegacyStepDefinition> steps;
};

struct LegacyRunOutcome {
  std::string state;  // "succeeded", "failed", "rejected", or "interrupted"
  std::string error;
  nlohmann::json output;
};

class LegacyWorkflowEngine {
 public:
  LegacyWorkflowEngine(const LegacyWorkflowDefinition& definition,
                       RunStore* store, RetryEnv env)
      : def_(definition), store_(store), env_(std::move(env)) {}

  // Runs `run_id` from its checkpoint to the end. `input` is the first
  // step's input for a new run. Between steps (and retry waits) `stop` is
  // checked: when set, returns "interrupted" with the run checkpointed.
  LegacyRunOutcome Resume(const std::string& run_id,
                          const nlohmann::json& input,
                          const std::atomic<bool>* stop);

 private:
  const LegacyWorkflowDefinition& def_;
  RunStore* store_;
  RetryEnv env_;
};

}  // namespace cbpipe
