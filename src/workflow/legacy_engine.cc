#include "workflow/legacy_engine.h"

#include <algorithm>

#include "common/crash_point.h"
#include "workflow/engine.h"

namespace cbpipe {
namespace {

nlohmann::json ErrorInput(const Status& error, const nlohmann::json& input) {
  return {
      {"error",
       {{"code", StatusCodeName(error.code())}, {"message", error.message()}}},
      {"input", input}};
}

bool Matches(const LegacyCatcher& c, const Status& error) {
  return c.codes.empty() || std::find(c.codes.begin(), c.codes.end(),
                                      error.code()) != c.codes.end();
}

}  // namespace

LegacyRunOutcome LegacyWorkflowEngine::Resume(const std::string& run_id,
                                              const nlohmann::json& first_input,
                                              const std::atomic<bool>* stop) {
  LegacyRunOutcome outcome;
  StatusOr<RunRecord> loaded = store_->Get(run_id);
  if (!loaded.ok()) {
    outcome.state = "interrupted";
    outcome.error = loaded.status().ToString();
    return outcome;
  }
  RunRecord run = std::move(*loaded);
  if (run.state == "succeeded" || run.state == "rejected") {
    outcome.state = run.state;
    return outcome;
  }
  // The input of the next step is the output of the last completed one.
  std::string step_name =
      run.current_step.empty() ? def_.start : run.current_step;
  nlohmann::json input = first_input;
  if (!run.steps.empty()) {
    for (const StepRecord& s : run.steps) {
      if (s.name == step_name) break;
      if (s.state == "succeeded" || s.state == "failed") {
        nlohmann::json parsed =
            nlohmann::json::parse(s.output_json, nullptr, false);
        if (!parsed.is_discarded()) input = std::move(parsed);
      }
    }
  }
  // A failed run being redriven starts again at the step that failed.
  Status st = store_->SetState(run_id, "running", step_name, "");
  if (!st.ok()) {
    outcome.state = "interrupted";
    outcome.error = st.ToString();
    return outcome;
  }

  bool run_fails = false;
  std::string end_state;
  std::string last_error;
  while (!step_name.empty()) {
    auto it = def_.steps.find(step_name);
    if (it == def_.steps.end()) {
      outcome.state = "failed";
      outcome.error = "workflow has no step " + step_name;
      store_->SetState(run_id, "failed", step_name, outcome.error)
          .IgnoreError();
      return outcome;
    }
    const LegacyStepDefinition& step = it->second;
    StepRecord record;
    record.name = step_name;
    record.started_ms = env_->NowMs();
    StatusOr<nlohmann::json> result = InternalError("not run");
    for (int attempt = 1;; ++attempt) {
      if (stop && stop->load()) {
        outcome.state = "interrupted";
        return outcome;  // checkpointed: resumes at this step
      }
      record.attempts = attempt;
      result = CallStepGuarded(step_name,
                               [&] { return step.fn(run, input); });
      if (result.ok()) break;
      const bool retry = step.retry_transient &&
                         result.status().IsTransient() &&
                         attempt < step.retry.max_attempts;
      if (!retry) break;
      // A stop cuts the wait short; the loop's next turn sees it.
      env_->SleepFor(RetryDelaySeconds(step.retry, attempt, env_->Random01()),
                     stop);
    }
    record.finished_ms = env_->NowMs();
    CrashPoint("step.before_checkpoint");
    if (result.ok()) {
      record.state = "succeeded";
      record.output_json = result->dump();
      const std::string next = step.next;
      Status saved = store_->SaveStep(run_id, record);
      if (saved.ok()) saved = store_->SetState(run_id, "running", next, "");
      if (!saved.ok()) {
        outcome.state = "interrupted";
        outcome.error = saved.ToString();
        return outcome;
      }
      run_fails |= step.fails_run;
      if (!step.end_state.empty()) end_state = step.end_state;
      input = std::move(*result);
      step_name = next;
      continue;
    }
    // Failed after its retries: catch, or fail the run here.
    record.state = "failed";
    record.error = result.status().ToString();
    last_error = record.error;
    const LegacyCatcher* catcher = nullptr;
    for (const LegacyCatcher& c : step.catchers) {
      if (Matches(c, result.status())) {
        catcher = &c;
        break;
      }
    }
    nlohmann::json caught = ErrorInput(result.status(), input);
    record.output_json = caught.dump();
    Status saved = store_->SaveStep(run_id, record);
    if (!catcher) {
      const std::string resume_at =
          step.redrive_from.empty() ? step_name : step.redrive_from;
      if (saved.ok())
        saved = store_->SetState(run_id, "failed", resume_at, last_error);
      outcome.state = "failed";
      outcome.error = last_error;
      return outcome;
    }
    if (saved.ok())
      saved = store_->SetState(run_id, "running", catcher->next, last_error);
    if (!saved.ok()) {
      outcome.state = "interrupted";
      outcome.error = saved.ToString();
      return outcome;
    }
    input = std::move(caught);
    step_name = catcher->next;
  }
  outcome.output = input;
  if (!end_state.empty()) {
    outcome.state = end_state;
  } else {
    outcome.state = run_fails ? "failed" : "succeeded";
  }
  outcome.error = outcome.state == "succeeded" ? "" : last_error;
  // A failed run resumes, when redriven, at the step that failed.
  std::string resume_at;
  if (outcome.state == "failed") {
    StatusOr<RunRecord> now = store_->Get(run_id);
    if (now.ok()) {
      for (const StepRecord& s : now->steps) {
        if (s.state != "failed") continue;
        auto failed = def_.steps.find(s.name);
        resume_at =
            failed != def_.steps.end() && !failed->second.redrive_from.empty()
                ? failed->second.redrive_from
                : s.name;
      }
    }
  }
  store_->SetState(run_id, outcome.state, resume_at, outcome.error)
      .IgnoreError();
  return outcome;
}

}  // namespace cbpipe
