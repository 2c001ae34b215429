// The CloudWatch adapter of the Metrics port (contract in metrics.h):
// every recording is written at once as one line of CloudWatch Embedded
// Metric Format (EMF) JSON, which CloudWatch Logs turns into metrics (Lambda
// and ECS/awslogs read standard output; the CloudWatch agent tails a file).
//
//   StatusOr<EmfWriter> out = EmfFileWriter("/var/log/cbpipe/emf.log");
//   EmfMetrics metrics(PipelineMetricSpecs(), {.namespace_name = "cbpipe"},
//                      *std::move(out));
//   metrics.Increment(kFilesDeliveredTotal, {"visa", "delivered"});
//   // {"_aws":{"Timestamp":1714564800123,"CloudWatchMetrics":[{"Namespace":
//   //   "cbpipe","Dimensions":[["destination","status"]],"Metrics":[{"Name":
//   //   "cbpipe_files_delivered_total","Unit":"Count"}]}]},
//   //   "destination":"visa","status":"delivered",
//   //   "cbpipe_files_delivered_total":1}
//
// What a line holds (docs/aws.md, "Metrics and tracing"):
// - Increment: the amount added (CloudWatch sums them: use the Sum
//   statistic); Set: the gauge's new value; Observe: the observed value
//   (CloudWatch keeps the distribution: percentiles instead of buckets).
// - Callback gauges (queue depth) are read and written together in one line
//   by FlushGauges(): every `gauge_interval_ms` by the adapter's own thread
//   (started by the constructor, joined by the destructor), or by hand when
//   the interval is 0.
// - Every label of the metric is a dimension (destination, network, and the
//   small closed sets outcome, status, code), its value a top-level key. An
//   empty label value is written "none" (CloudWatch refuses empty
//   dimension values). Label values pass through MaskCardNumbers: a card
//   number can never reach CloudWatch, whatever a caller passes. At most 30
//   dimensions (the EMF limit): further labels are plain keys.
// - Metric names are the Prometheus names (cbpipe_files_delivered_total);
//   units from MetricSpec: Count, Bytes, Seconds, None. Non-finite values
//   (NaN, infinities) are not written (JSON cannot hold them); Collect still
//   sees gauges set to them.
// - A line lists at most 100 metrics (the EMF limit): FlushGauges writes
//   more lines when there are more callback gauges.
// Collect returns the running totals (kept like InMemoryMetrics), so the
// contract suite and `cbpipe` tooling read them back like any adapter's.
// Thread safety: every method from any thread; lines are written whole, one
// writer call each, never interleaved. Errors: a failed write is counted
// (write_errors()) and otherwise ignored: metrics never fail the caller.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "telemetry/in_memory_metrics.h"
#include "telemetry/metrics.h"

namespace cbpipe {

// Writes one complete line (ending in '\n'); false when it failed. Called
// under the adapter's lock: one call at a time.
using EmfWriter = std::function<bool(std::string_view line)>;

// Standard output, one write(2) per line.
EmfWriter EmfStdoutWriter();
// A file opened for appending (created 0644 if missing), one write(2) per
// line (no fsync); closed when the last copy of the writer goes.
// kInvalidArgument/kPermissionDenied naming the path when it cannot be
// opened.
StatusOr<EmfWriter> EmfFileWriter(const std::string& path);

struct EmfOptions {
  std::string namespace_name = "cbpipe";  // the CloudWatch namespace
  // Where lines go: "stdout" or a file path (EmfOutputWriter).
  std::string output = "stdout";
  // How often the callback gauges are written; 0 = only by FlushGauges().
  int64_t gauge_interval_ms = 60000;
  // Epoch milliseconds of `_aws.Timestamp`; null = the system clock.
  std::function<int64_t()> now_ms;
};

// The writer for `output` ("stdout" or a path).
StatusOr<EmfWriter> EmfOutputWriter(const std::string& output);

class EmfMetrics : public Metrics {
 public:
  EmfMetrics(const std::vector<MetricSpec>& specs, EmfOptions options,
             EmfWriter writer);
  // Stops and joins the gauge thread.
  ~EmfMetrics() override;
  EmfMetrics(const EmfMetrics&) = delete;
  EmfMetrics& operator=(const EmfMetrics&) = delete;

  void Increment(std::string_view name, LabelValues labels,
                 uint64_t n = 1) override;
  void Set(std::string_view name, LabelValues labels, double value) override;
  void Observe(std::string_view name, LabelValues labels,
               double value) override;
  GaugeRegistration WatchGauge(std::string_view name,
                               std::function<double()> read) override;
  std::vector<MetricSample> Collect() override;

  // Writes the bound callback gauges' current values (nothing when none is
  // bound).
  void FlushGauges();
  uint64_t write_errors() const { return write_errors_.load(); }

 private:
  const MetricSpec* Spec(std::string_view name, MetricKind kind) const;
  // One line for one value of `spec`.
  void WriteValue(const MetricSpec& spec, LabelValues labels, double value);
  void WriteLine(const std::string& line);
  int64_t NowMs() const;
  void GaugeLoop();

  const EmfOptions options_;
  const std::vector<MetricSpec> specs_;
  InMemoryMetrics totals_;
  EmfWriter writer_;
  std::mutex write_mu_;
  std::atomic<uint64_t> write_errors_{0};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;         // under stop_mu_
  std::thread gauge_thread_;  // runs GaugeLoop when the interval is > 0
};

}  // namespace cbpipe
