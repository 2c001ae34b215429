// X-Ray tracing of workflow runs (telemetry/xray.h): one segment per run
// attempt, one subsegment per step call, and the step's span made current
// on its thread so the AWS calls inside it become its subsegments.
//
//   StepRunner steps = XRayTracedSteps(StepsOver(ports), tracer);
//   WorkflowEngine engine(&def, runs, env, steps);
//   XRaySpan segment = BeginRunSegment(tracer, run.run_id, run.trace_id);
//   RunOutcome outcome = engine.Resume(run.run_id, input, &stop);
//   EndRunSegment(&segment, outcome);
//
// The steps find their run's segment by the "run_id" of their input (every
// step input carries the run header, steps.h), on whatever thread the
// engine calls them (Map items run on the engine's threads). A step called
// while its run has no open segment is not traced. With a null or disabled
// tracer everything here passes through and sends nothing.
#pragma once

#include <string>

#include "telemetry/xray.h"
#include "workflow/engine.h"

namespace cbpipe {

// `inner` with each call wrapped in a subsegment named after the step,
// flagged with the step's error (SetStatus) when it fails. Thread-safe as
// `inner`. `tracer` (may be null) must outlive the runner.
StepRunner XRayTracedSteps(StepRunner inner, XRayTracer* tracer);

// The segment of one attempt of a run, named after the tracer's service,
// in the X-Ray trace of the run's W3C trace id (`trace_id_hex`, 32 hex);
// annotated run_id. Inactive when the tracer is null or disabled or the
// trace id is not valid.
XRaySpan BeginRunSegment(XRayTracer* tracer, const std::string& run_id,
                         const std::string& trace_id_hex);
// Annotates the outcome ("succeeded", "failed", ...), flags a failed run
// with its error ("DATA_LOSS: ..." read back into a Status), and ends it.
void EndRunSegment(XRaySpan* segment, const RunOutcome& outcome);

}  // namespace cbpipe
