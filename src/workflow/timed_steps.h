// The time of every step call as cbpipe_step_duration_seconds{step}
// (telemetry/metrics.h): the Grafana dashboard's run durations per step.
//
//   StepRunner steps = TimedSteps(StepsOver(ports), metrics);
//   WorkflowEngine engine(&def, runs, env, std::move(steps));
//
// Each call is one observation under the step's name, whether it succeeds
// or fails (a retried step is observed once per attempt; the engine's wait
// between attempts is not in it). Measured on the steady clock.
#pragma once

#include "telemetry/metrics.h"
#include "workflow/engine.h"

namespace cbpipe {

// `inner` with each call timed into `metrics` (must outlive the runner).
// Thread-safe as `inner`; what `inner` returns is returned unchanged.
StepRunner TimedSteps(StepRunner inner, Metrics* metrics);

}  // namespace cbpipe
