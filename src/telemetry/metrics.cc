#include "telemetry/metrics.h"

namespace cbpipe {

std::vector<double> DeliveryLatencyBuckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

std::vector<double> StepDurationBuckets() {
  return {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

std::string_view CbpipeVersion() { return CBPIPE_VERSION; }

void RecordBuildInfo(Metrics& metrics) {
  metrics.Set(kBuildInfo, {CbpipeVersion()}, 1);
}

std::vector<MetricSpec> PipelineMetricSpecs() {
  using K = MetricKind;
  using U = MetricUnit;
  return {
      {kInputsTotal, "Inputs processed, by outcome.", K::kCounter,
       {"outcome"}, {}, U::kCount},
      {kRecordsReadTotal, "Records read from inputs.", K::kCounter,
       {"network"}, {}, U::kCount},
      {kRecordsAcceptedTotal,
       "Records that passed validation and were written to a file.",
       K::kCounter, {"network"}, {}, U::kCount},
      {kRecordsRejectedTotal,
       "Records rejected, by error code (see the rejects report).",
       K::kCounter, {"code"}, {}, U::kCount},
      {kFilesGeneratedTotal, "CSV files generated and verified.", K::kCounter,
       {"destination"}, {}, U::kCount},
      {kBytesGeneratedTotal, "Bytes of CSV files generated.", K::kCounter,
       {"destination"}, {}, U::kBytes},
      {kFilesDeliveredTotal,
       "Files handed to a destination, by the outcome of each attempt.",
       K::kCounter, {"destination", "status"}, {}, U::kCount},
      {kBytesDeliveredTotal, "Bytes uploaded to destinations.", K::kCounter,
       {"destination"}, {}, U::kBytes},
      {kDeliveryLatencySeconds, "Time of the attempt that delivered one file.",
       K::kHistogram, {"destination"}, DeliveryLatencyBuckets(), U::kSeconds},
      {kDeliveryRetriesTotal, "Delivery attempts that were retries.",
       K::kCounter, {"destination"}, {}, U::kCount},
      {kDeadLettersTotal,
       "Runs or deliveries moved to dead letters after exhausting retries.",
       K::kCounter, {}, {}, U::kCount},
      {kQueueDepth, "Messages waiting in the work queue.", K::kCallbackGauge,
       {}, {}, U::kCount},
      {kQueueOldestMessageAgeSeconds,
       "Age of the oldest message waiting in the work queue.",
       K::kCallbackGauge, {}, {}, U::kSeconds},
      {kQueueDeadLetters,
       "Dead letters waiting for an operator (redrive or purge).",
       K::kCallbackGauge, {}, {}, U::kCount},
      {kStepDurationSeconds,
       "Time of one call of a workflow step (each retry is a call).",
       K::kHistogram, {"step"}, StepDurationBuckets(), U::kSeconds},
      {kUp, "1 while the service runs; 0 while it stops.", K::kCallbackGauge,
       {}, {}, U::kNone},
      {kBuildInfo, "The running build: 1, labelled with its version.",
       K::kGauge, {"version"}, {}, U::kNone},
      {kDestinationUp,
       "1 when the destination's server answered the last probe, else 0.",
       K::kGauge, {"destination"}, {}, U::kNone},
  };
}

}  // namespace cbpipe
