#include "workflow/xray_steps.h"

#include <nlohmann/json.hpp>

namespace cbpipe {
namespace {

// "CODE: message" (Status::ToString) back into a Status; kInternal when
// the prefix is not a code name.
Status StatusOfError(const std::string& error) {
  const size_t colon = error.find(": ");
  if (colon != std::string::npos) {
    const std::string_view name(error.data(), colon);
    for (int c = static_cast<int>(StatusCode::kInvalidArgument);
         c <= static_cast<int>(StatusCode::kInternal); ++c) {
      const auto code = static_cast<StatusCode>(c);
      if (StatusCodeName(code) == name)
        return Status(code, error.substr(colon + 2));
    }
  }
  return Status(StatusCode::kInternal, error);
}

}  // namespace

StepRunner XRayTracedSteps(StepRunner inner, XRayTracer* tracer) {
  if (!tracer || !tracer->enabled()) return inner;
  return [inner = std::move(inner), tracer](
             std::string_view name,
             const nlohmann::json& input) -> StatusOr<nlohmann::json> {
    std::string run_id;
    if (input.is_object()) {
      auto it = input.find("run_id");
      if (it != input.end() && it->is_string()) run_id = it->get<std::string>();
    }
    XRaySpan step =
        run_id.empty() ? XRaySpan() : tracer->BeginSubsegmentOf(run_id, name);
    XRayCurrentScope current(step.active() ? &step : nullptr);
    StatusOr<nlohmann::json> out = inner(name, input);
    if (!out.ok()) step.SetStatus(out.status());
    return out;
  };
}

XRaySpan BeginRunSegment(XRayTracer* tracer, const std::string& run_id,
                         const std::string& trace_id_hex) {
  if (!tracer) return XRaySpan();
  StatusOr<TraceId> trace = TraceId::FromHex(trace_id_hex);
  if (!trace.ok()) return XRaySpan();
  XRaySpan segment = tracer->BeginSegment(*trace, "", run_id);
  segment.Annotate("run_id", run_id);
  return segment;
}

void EndRunSegment(XRaySpan* segment, const RunOutcome& outcome) {
  if (!segment->active()) return;
  segment->Annotate("outcome", outcome.state);
  if (outcome.state == "failed")
    segment->SetStatus(StatusOfError(outcome.error));
  segment->End();
}

}  // namespace cbpipe
