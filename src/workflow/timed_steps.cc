#include "workflow/timed_steps.h"

#include <chrono>
#include <utility>

namespace cbpipe {

StepRunner TimedSteps(StepRunner inner, Metrics* metrics) {
  return [inner = std::move(inner), metrics](
             std::string_view name,
             const nlohmann::json& input) -> StatusOr<nlohmann::json> {
    const auto start = std::chrono::steady_clock::now();
    // Observed however the call ends (a step may throw: the engine's
    // guard turns that into an error after this frame).
    struct Observe {
      Metrics* metrics;
      std::string_view name;
      std::chrono::steady_clock::time_point start;
      ~Observe() {
        const std::chrono::duration<double> took =
            std::chrono::steady_clock::now() - start;
        metrics->Observe(kStepDurationSeconds, {name}, took.count());
      }
    } observe{metrics, name, start};
    return inner(name, input);
  };
}

}  // namespace cbpipe
