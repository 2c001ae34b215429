// The Metrics port: counters, gauges and histograms named like Prometheus
// metrics, with label values, recorded by the code that knows what happened
// and exported by an adapter: Prometheus text (PrometheusMetrics, served at
// GET /metrics), in memory (InMemoryMetrics, for tests), CloudWatch EMF
// lines (EmfMetrics), several at once (FanOutMetrics); `[telemetry]
// metrics` chooses (SelectMetrics in telemetry/options.h).
//
//   PrometheusMetrics prom(PipelineMetricSpecs());   // the process owns it
//   Metrics* metrics = &prom;                         // code gets the port
//   metrics->Increment(kInputsTotal, {"accepted"});
//   metrics->Observe(kDeliveryLatencySeconds, {"visa"}, 0.42);
//   GaugeRegistration depth = metrics->WatchGauge(
//       kQueueDepth, [&queue] { return Depth(queue); });  // until `depth` ends
//
// Contract (every adapter):
// - The metrics are declared up front (MetricSpec: name, help, kind, label
//   names, buckets, unit), in the order an exporter lists them. Recording
//   a name that was not declared, or with the wrong kind, does nothing.
// - Label values are given in the order of the spec's label names; missing
//   ones are "", extra ones are dropped. A series is created at zero the
//   first time its label values are seen.
// - Increment adds to a counter (never goes down); Set replaces a gauge's
//   value; Observe counts a value in the first histogram bucket whose upper
//   bound is >= it (NaN is ignored) and adds it to the sum.
// - WatchGauge binds a function to a kCallbackGauge (no labels), called
//   when the metrics are collected or exported. While several are bound to
//   one name the latest one is read; with none the gauge has no sample.
//   Once the GaugeRegistration is destroyed (or Reset) the function is
//   never called again: Reset waits for a call in progress, so the owner
//   of what the function reads may be destroyed right after. The function
//   must not record metrics or end a registration itself.
// - Collect returns every series of every declared metric (a counter or
//   gauge without labels always has one; a callback gauge has one while a
//   function is bound), in declaration order, series sorted by label
//   values.
// Thread safety: every method may be called from any thread at once.
// Errors: none; metrics never fail the code that records them.
// Ownership: the process (or test) owns the adapter, which must outlive
// every user and every GaugeRegistration it returned.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cbpipe {

enum class MetricKind { kCounter, kGauge, kHistogram, kCallbackGauge };

// What a value measures (an EMF "Unit"; Prometheus has it in the name).
enum class MetricUnit { kNone, kCount, kBytes, kSeconds };

struct MetricSpec {
  std::string name;  // [a-zA-Z_:][a-zA-Z0-9_:]*
  std::string help;
  MetricKind kind = MetricKind::kCounter;
  // [a-zA-Z_][a-zA-Z0-9_]*, not "__..." ("le" is reserved for histograms).
  std::vector<std::string> label_names;
  std::vector<double> buckets;  // histograms: increasing finite upper bounds
  MetricUnit unit = MetricUnit::kNone;
};

using LabelValues = std::initializer_list<std::string_view>;

// One series as Collect reports it.
struct MetricSample {
  std::string name;
  MetricKind kind = MetricKind::kCounter;
  std::vector<std::string> label_values;
  double value = 0;  // counter, gauge; histogram: the sum
  // Histograms: cumulative counts, one per bucket bound, then +Inf (= count).
  std::vector<uint64_t> cumulative;
};

// Ends a WatchGauge binding when destroyed or Reset (see the contract).
class GaugeRegistration {
 public:
  GaugeRegistration() = default;
  explicit GaugeRegistration(std::function<void()> unbind)
      : unbind_(std::move(unbind)) {}
  GaugeRegistration(GaugeRegistration&& other) noexcept
      : unbind_(std::exchange(other.unbind_, nullptr)) {}
  GaugeRegistration& operator=(GaugeRegistration&& other) noexcept {
    if (this != &other) {
      Reset();
      unbind_ = std::exchange(other.unbind_, nullptr);
    }
    return *this;
  }
  GaugeRegistration(const GaugeRegistration&) = delete;
  GaugeRegistration& operator=(const GaugeRegistration&) = delete;
  ~GaugeRegistration() { Reset(); }

  void Reset() {
    if (unbind_) std::exchange(unbind_, nullptr)();
  }
  bool bound() const { return static_cast<bool>(unbind_); }

 private:
  std::function<void()> unbind_;
};

class Metrics {
 public:
  virtual ~Metrics() = default;

  virtual void Increment(std::string_view name, LabelValues labels,
                         uint64_t n = 1) = 0;
  virtual void Set(std::string_view name, LabelValues labels,
                   double value) = 0;
  virtual void Observe(std::string_view name, LabelValues labels,
                       double value) = 0;
  [[nodiscard]] virtual GaugeRegistration WatchGauge(
      std::string_view name, std::function<double()> read) = 0;
  virtual std::vector<MetricSample> Collect() = 0;
};

// The metrics cbpipe records (docs/observability.md). Label values:
// network "visa", "mastercard", "amex", "discover" or "unknown"; code an
// error code name of validate/ ("ARN_CHECK_DIGIT"); destination a
// destination name; status "delivered", "already_delivered" or "failed";
// outcome "accepted", "quarantined", "failed", "duplicate".
inline constexpr char kInputsTotal[] = "cbpipe_inputs_total";  // {outcome}
inline constexpr char kRecordsReadTotal[] =
    "cbpipe_records_read_total";  // {network}
inline constexpr char kRecordsAcceptedTotal[] =
    "cbpipe_records_accepted_total";  // {network}
inline constexpr char kRecordsRejectedTotal[] =
    "cbpipe_records_rejected_total";  // {code}
inline constexpr char kFilesGeneratedTotal[] =
    "cbpipe_files_generated_total";  // {destination}
inline constexpr char kBytesGeneratedTotal[] =
    "cbpipe_bytes_generated_total";  // {destination}
inline constexpr char kFilesDeliveredTotal[] =
    "cbpipe_files_delivered_total";  // {destination, status}
inline constexpr char kBytesDeliveredTotal[] =
    "cbpipe_bytes_delivered_total";  // {destination}
inline constexpr char kDeliveryLatencySeconds[] =
    "cbpipe_delivery_latency_seconds";  // {destination}
inline constexpr char kDeliveryRetriesTotal[] =
    "cbpipe_delivery_retries_total";  // {destination}
inline constexpr char kDeadLettersTotal[] = "cbpipe_dead_letters_total";
inline constexpr char kQueueDepth[] = "cbpipe_queue_depth";  // callback
inline constexpr char kQueueOldestMessageAgeSeconds[] =
    "cbpipe_queue_oldest_message_age_seconds";  // callback
// 1 when serve's prober last reached the destination's server (TCP and its
// greeting), else 0; no series while probing is off.
inline constexpr char kDestinationUp[] =
    "cbpipe_destination_up";  // {destination}

// Bounds for delivery latency in seconds: 50 ms to 5 min.
std::vector<double> DeliveryLatencyBuckets();

// The specs of the metrics above, in the order /metrics lists them.
std::vector<MetricSpec> PipelineMetricSpecs();

}  // namespace cbpipe
