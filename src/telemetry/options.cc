#include "telemetry/options.h"

#include <algorithm>

#include "telemetry/fanout_metrics.h"

namespace cbpipe {

Status CheckMetricsNames(const std::vector<std::string>& names) {
  if (names.empty()) {
    return InvalidArgumentError(
        "needs at least one of \"prometheus\", \"emf\"");
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "prometheus" && names[i] != "emf") {
      return InvalidArgumentError("unknown metrics adapter \"" + names[i] +
                                  "\"; known: \"prometheus\", \"emf\"");
    }
    if (std::find(names.begin(), names.begin() + i, names[i]) !=
        names.begin() + i) {
      return InvalidArgumentError("\"" + names[i] + "\" is listed twice");
    }
  }
  return OkStatus();
}

StatusOr<SelectedMetrics> SelectMetrics(const TelemetryOptions& options,
                                        const std::vector<MetricSpec>& specs) {
  CBPIPE_RETURN_IF_ERROR(CheckMetricsNames(options.metrics));
  SelectedMetrics selected;
  std::vector<std::unique_ptr<Metrics>> all;
  for (const std::string& name : options.metrics) {
    if (name == "prometheus") {
      auto prometheus = std::make_unique<PrometheusMetrics>(specs);
      selected.prometheus = prometheus.get();
      all.push_back(std::move(prometheus));
    } else {
      CBPIPE_ASSIGN_OR_RETURN(EmfWriter writer,
                              EmfOutputWriter(options.emf.output));
      all.push_back(
          std::make_unique<EmfMetrics>(specs, options.emf, std::move(writer)));
    }
  }
  if (all.size() == 1) {
    selected.metrics = std::move(all.front());
  } else {
    selected.metrics = std::make_unique<FanOutMetrics>(std::move(all));
  }
  return selected;
}

}  // namespace cbpipe
