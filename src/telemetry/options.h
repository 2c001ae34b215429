// What `[telemetry]` selects (config/ maps the TOML into TelemetryOptions),
// and the Metrics adapter(s) built from it.
//
//   StatusOr<SelectedMetrics> m =
//       SelectMetrics(options, PipelineMetricSpecs());
//   Metrics* metrics = m->metrics.get();  // what the code records to
//   if (m->prometheus) serve GET /metrics with m->prometheus->Render();
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "telemetry/emf_metrics.h"
#include "telemetry/metrics.h"
#include "telemetry/prometheus_metrics.h"
#include "telemetry/xray.h"

namespace cbpipe {

struct TelemetryOptions {
  // Metrics adapters, each at most once: "prometheus" (GET /metrics),
  // "emf" (CloudWatch Embedded Metric Format lines). Several: a
  // FanOutMetrics records to each.
  std::vector<std::string> metrics = {"prometheus"};
  EmfOptions emf;
  XRayOptions xray;
};

// kInvalidArgument naming the entry for an unknown or repeated adapter name
// or an empty list.
Status CheckMetricsNames(const std::vector<std::string>& names);

struct SelectedMetrics {
  std::unique_ptr<Metrics> metrics;
  // The Prometheus adapter inside `metrics` when selected (owned by it),
  // else null.
  PrometheusMetrics* prometheus = nullptr;
};
// Builds the adapters of `options.metrics` over `specs`; the EMF adapter
// writes to options.emf.output (an error naming it when it cannot be
// opened).
StatusOr<SelectedMetrics> SelectMetrics(const TelemetryOptions& options,
                                        const std::vector<MetricSpec>& specs);

}  // namespace cbpipe
