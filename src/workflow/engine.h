// The embedded workflow engine: runs a WorkflowDefinition (definition.h,
// an Amazon States Language subset) over a StepRunner, checkpointing every
// Task, Map and Map item in a RunStore, so a restarted process resumes a run
// where it stopped and a failed run is redriven from its redrive point.
//
//   StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
//   WorkflowEngine engine(&*def, run_store, Env::Default(),
//       [&](std::string_view step, const nlohmann::json& in) {
//         return RunStep(step, in, ports);
//       });
//   RunOutcome out = engine.Resume(run_id, initial_input, &stop);
//
// The engine knows nothing of the steps: a Task state named "deliver"
// calls runner("deliver", input). Contract of a run:
// - Resume on a queued run starts at StartAt with `input`, which is
//   checkpointed (record "$input"); later calls use the checkpoint and
//   ignore `input`, so everything the steps must agree on (the run's `now`)
//   stays fixed across restarts and redrives.
// - A "running" run (interrupted) resumes from its checkpoints: completed
//   Tasks and Map items are not run again.
// - A failed run's redrive point is where its error says (the innermost
//   state's cbpipe.redrive_from, else the top-level state that failed), or
//   an earlier one that a failed item of a tolerating Map says (recorded
//   as "RedriveFrom" in that item's entry): a batch that failed
//   verification inside `batches` has the run redriven from scan.
// - A "failed" run is redriven: the checkpoints of its redrive point and of
//   every state reachable from it are discarded (state "discarded"), except
//   that a Map redrive point keeps the items that succeeded; the run then
//   resumes as above. "succeeded" and "rejected" runs return at once.
// - A run with no "$input" record and a checkpoint whose name is no state
//   path of the definition was checkpointed by something else (cbpipe
//   serve's step-list engine, before the workflow definition: validate,
//   generate, ...). All its records are marked "discarded", never read,
//   and the run (queued, running or failed) starts from StartAt with
//   `input`. (Records under the definition's own paths are used as usual,
//   with or without "$input".) The steps must make that safe: in
//   cbpipe the same input and `now` give the same files, and the delivery
//   ledger skips what was delivered (docs/service.md, upgrading).
// - Errors: a step's Status code name is the ASL error name. A step that
//   throws, or returns anything but a JSON object, fails with INTERNAL
//   ("step deliver threw: ..."), routed by Retry/Catch like any error.
//   Nothing thrown crosses Resume.
// - Retry waits use env->SleepFor with `stop`; when `stop` is set (checked
//   before every state, Map item and retry) Resume returns "interrupted"
//   with everything done so far checkpointed. A RunStore error also returns
//   "interrupted" (the caller retries later).
// - Map items run on threads the engine starts and joins inside Resume, at
//   most MaxConcurrency (capped by EngineOptions::max_map_threads) at once.
//   The StepRunner must therefore be callable from several threads.
//
// Checkpoint records (RunStore::SaveStep names): top-level states by name,
// nested ones by path: "batches/0" (item 0 of Map "batches": its output),
// "batches/0/verify" (state verify inside that item). A Task's record holds
// its raw result (succeeded) or {"Error", "Cause"} (failed).
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/env.h"
#include "common/status.h"
#include "workflow/definition.h"
#include "runs/run_store.h"

namespace cbpipe {

using StepRunner = std::function<StatusOr<nlohmann::json>(
    std::string_view name, const nlohmann::json& input)>;

struct RunOutcome {
  // "succeeded", "failed", "rejected", or "interrupted".
  std::string state;
  std::string error;  // "DATA_LOSS: ..." when failed or interrupted
  nlohmann::json output;
  // For a failed run: the top-level state a redrive starts at.
  std::string redrive_from;
};

// Calls one step so that nothing it throws crosses the engine, and checks
// what it returned: an exception (nlohmann's type errors, std::bad_alloc,
// anything) becomes kInternal "step <name> threw: <what>" ("threw a
// non-standard exception" for one that is not a std::exception), an output
// that is not a JSON object kInternal "step <name> returned a non-object:
// <type>". Card numbers in an exception's text are masked. The engine
// calls every step through it; the run then fails (or is caught) with that
// error like any other, and the worker goes on with other runs.
StatusOr<nlohmann::json> CallStepGuarded(
    std::string_view name,
    const std::function<StatusOr<nlohmann::json>()>& call);

// Told of each retry the engine makes of a Task (see EngineOptions).
struct TaskRetry {
  std::string_view state;       // the Task's name ("deliver")
  const nlohmann::json& input;  // its input (after Parameters)
  int attempt;                  // the attempt starting now: 2, 3, ...
  std::string_view error;       // the previous attempt's, "UNAVAILABLE: ..."
};

struct EngineOptions {
  // The most threads one Map state runs its items on.
  int max_map_threads = 16;
  // Called (when set) just before each retry of a Task, after its wait,
  // on the thread running the Task: Map items call it from several threads
  // at once. A first attempt, a resume or a redrive is not a retry. What
  // it throws is ignored. The caller names the metrics (the engine knows
  // no step): serve counts a deliver step's retries per destination.
  std::function<void(const TaskRetry&)> on_retry;
  // When true, before each retry's wait the Task's checkpoint is saved with
  // state "retrying": attempts so far, the error, and output
  // {"retry_at_ms": when the next attempt starts, "error": {...}, "input":
  // the input's string members (run_id, destination, ...)}, so an operator
  // sees a waiting retry (serve's console and `runs show`). The Task's
  // final checkpoint replaces it; on resume a "retrying" record is not
  // taken as done (the Task runs again). A failure to save it is ignored:
  // it is for people, the run does not depend on it.
  bool checkpoint_retry_waits = false;
};

class WorkflowEngine {
 public:
  // `definition`, `store`, `env` must outlive the engine.
  WorkflowEngine(const WorkflowDefinition* definition, RunStore* store,
                 Env* env, StepRunner runner, EngineOptions options = {});

  // Runs `run_id` (which must exist in the store) to its end, or until
  // `stop` (may be null). Thread-safe for different run ids.
  RunOutcome Resume(const std::string& run_id, const nlohmann::json& input,
                    const std::atomic<bool>* stop);

 private:
  class Run;
  const WorkflowDefinition* def_;
  RunStore* store_;
  Env* env_;
  StepRunner runner_;
  EngineOptions options_;
};

}  // namespace cbpipe
