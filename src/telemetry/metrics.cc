#include "telemetry/metrics.h"

namespace cbpipe {

std::vector<double> DeliveryLatencyBuckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
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
      {kDestinationUp,
       "1 when the destination's server answered the last probe (TCP "
       "connect and greeting, no login), else 0.",
       K::kGauge, {"destination"}, {}, U::kNone},
  };
}

}  // namespace cbpipe
