// Step calls through the engine, timed into the metrics: one observation
// per call (retries included) under the step's name, failures too.
#include "workflow/timed_steps.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/env.h"
#include "runs/in_memory_run_store.h"
#include "telemetry/in_memory_metrics.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

constexpr char kDefinition[] = R"({"StartAt": "parse", "States": {
  "parse": {"Type": "Task", "Next": "deliver"},
  "deliver": {"Type": "Task", "End": true,
    "Retry": [{"ErrorEquals": ["UNAVAILABLE"], "IntervalSeconds": 0,
               "MaxAttempts": 2}]}}})";

TEST(TimedStepsTest, EveryCallObservedUnderItsStep) {
  StatusOr<WorkflowDefinition> def = WorkflowDefinition::Parse(kDefinition);
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  InMemoryRunStore store(Env::Default());
  RunRecord run;
  run.run_id = "run-1";
  run.input_key = "inputs/run-1";
  ASSERT_TRUE(store.CreateIfAbsent(run).ok());
  InMemoryMetrics metrics(PipelineMetricSpecs());
  int deliver_calls = 0;
  StepRunner steps = [&](std::string_view name,
                         const json& in) -> StatusOr<json> {
    if (name == "parse") {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      return in;
    }
    // Fails twice, then the third attempt (second retry) succeeds.
    if (++deliver_calls < 3)
      return Status(StatusCode::kUnavailable, "refused");
    return in;
  };
  WorkflowEngine engine(&*def, &store, Env::Default(),
                        TimedSteps(std::move(steps), &metrics));
  RunOutcome out = engine.Resume("run-1", json{{"run_id", "run-1"}}, nullptr);
  EXPECT_EQ(out.state, "succeeded") << out.error;

  EXPECT_EQ(metrics.Value(kStepDurationSeconds, {"parse"}), 1);
  EXPECT_EQ(metrics.Value(kStepDurationSeconds, {"deliver"}), 3);
  for (const MetricSample& s : metrics.Collect()) {
    if (s.name != kStepDurationSeconds || s.label_values[0] != "parse")
      continue;
    // The sleep is in it; far less than the 10 min bucket.
    EXPECT_GE(s.value, 0.03);
    EXPECT_LT(s.value, 5);
    ASSERT_EQ(s.cumulative.size(), StepDurationBuckets().size() + 1);
    EXPECT_EQ(s.cumulative[0], 0u);  // not under 10 ms
    EXPECT_EQ(s.cumulative.back(), 1u);
  }
}

}  // namespace
}  // namespace cbpipe
