// Prometheus metrics: counters, gauges and histograms with labels, rendered
// in the text exposition format (version 0.0.4) for GET /metrics.
//
//   MetricsRegistry registry;
//   CounterFamily& files = registry.AddCounter(
//       "cbpipe_files_delivered_total", "Files delivered.",
//       {"destination", "status"});
//   Counter& visa_ok = files.WithLabels({"visa", "delivered"});  // keep it
//   visa_ok.Increment();                                 // one atomic add
//   registry.AddGaugeCallback("cbpipe_queue_depth", "Messages waiting.",
//                             [&] { return queue.Depth(); });
//   std::string body = registry.RenderPrometheus();
//
// Or, for the pipeline's own metrics, PipelineMetrics (all of them defined in
// one place; see docs/observability.md):
//
//   Metrics().records_read_total.WithLabels({"visa"}).Increment();
//
// Thread safety: everything may be used from any thread. Updating a series is
// one relaxed atomic operation; WithLabels() takes a shared lock and finds
// the series (creating it the first time under an exclusive lock). A series
// lives as long as its registry: hot paths keep the reference.
//
// Misuse (a bad metric or label name, a name registered twice, the wrong
// number of label values) is a programming error: it asserts in debug
// builds; in release builds WithLabels() pads or truncates the values.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace cbpipe {

// Only goes up (whole numbers: records, files, bytes, retries).
class Counter {
 public:
  void Increment(uint64_t n = 1) {
    value_.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Fixed buckets chosen when the family is registered.
class Histogram {
 public:
  // `bounds`: strictly increasing, finite upper bounds (the +Inf bucket is
  // implicit).
  explicit Histogram(const std::vector<double>* bounds);
  // Counts `v` in the first bucket whose bound is >= v. NaN is ignored.
  void Observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0;
    uint64_t count() const {
      return cumulative.empty() ? 0 : cumulative.back();
    }
  };
  // Count and +Inf bucket always agree, even while others observe.
  Snapshot Read() const;

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds + 1
  std::atomic<double> sum_{0};
};

class MetricsRegistry;

// All the series of one metric name, one per distinct label values.
template <typename Series>
class MetricFamily {
 public:
  // The series for these label values (as many as the family's label
  // names, same order), created at zero the first time. The reference stays
  // valid as long as the registry.
  Series& WithLabels(std::initializer_list<std::string_view> values);
  // The series of a family without labels.
  Series& Get() { return WithLabels({}); }

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

 private:
  friend class MetricsRegistry;
  MetricFamily(std::string name, std::string help,
               std::vector<std::string> label_names,
               std::vector<double> bounds = {});
  std::unique_ptr<Series> NewSeries() const;
  void Render(std::string_view type, std::string* out) const;

  struct Entry {
    std::vector<std::string> values;
    std::unique_ptr<Series> series;
  };

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable std::shared_mutex mu_;
  // Keyed by the encoded label values: rendering comes out sorted.
  std::map<std::string, Entry, std::less<>> series_;
};

using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

// A gauge whose value is computed when the metrics are rendered (queue depth,
// age of the oldest message). Without a function it renders no sample.
class GaugeCallback {
 public:
  // `fn` is called during RenderPrometheus(), from the rendering thread; it
  // must not render the registry itself.
  void Set(std::function<double()> fn);
  void Clear() { Set(nullptr); }

 private:
  friend class MetricsRegistry;
  GaugeCallback(std::string name, std::string help)
      : name_(std::move(name)), help_(std::move(help)) {}
  void Render(std::string* out) const;

  const std::string name_;
  const std::string help_;
  mutable std::mutex mu_;
  std::function<double()> fn_;
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*,
  // not starting with "__" ("le" is reserved for histograms). A family
  // without labels renders its one series (at 0) from the start.
  CounterFamily& AddCounter(std::string name, std::string help,
                            std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {});
  // `bounds`: strictly increasing finite upper bounds.
  HistogramFamily& AddHistogram(std::string name, std::string help,
                                std::vector<std::string> label_names,
                                std::vector<double> bounds);
  GaugeCallback& AddGaugeCallback(std::string name, std::string help,
                                  std::function<double()> fn = nullptr);

  // Every family in registration order, series sorted by label values:
  //   # HELP name help
  //   # TYPE name counter|gauge|histogram
  //   name{label="value",...} 42
  // Histograms: name_bucket{...,le="0.5"} (cumulative, then le="+Inf"),
  // name_sum, name_count. Label values escape \ " and newline; help text
  // escapes \ and newline. Values: integers as such, others in the shortest
  // form that reads back exactly, +Inf, -Inf, NaN.
  std::string RenderPrometheus() const;

 private:
  struct Item;
  void CheckNewName(const std::string& name);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Item>> items_;
};

// Bounds for delivery latency in seconds: 50 ms to 5 min.
std::vector<double> DeliveryLatencyBuckets();

// The metrics cbpipe exports, all defined here (names in
// docs/observability.md). Label values: network "visa", "mastercard",
// "amex", "discover" or "unknown"; code an error code name of validate/
// ("ARN_CHECK_DIGIT"); destination a destination name; status "delivered",
// "already_delivered" or "failed"; outcome "accepted", "quarantined",
// "failed", "duplicate".
struct PipelineMetrics {
  explicit PipelineMetrics(MetricsRegistry& registry);

  CounterFamily& inputs_total;                // {outcome}
  CounterFamily& records_read_total;          // {network}
  CounterFamily& records_accepted_total;      // {network}
  CounterFamily& records_rejected_total;      // {code}
  CounterFamily& files_generated_total;       // {destination}
  CounterFamily& bytes_generated_total;       // {destination}
  CounterFamily& files_delivered_total;       // {destination, status}
  CounterFamily& bytes_delivered_total;       // {destination}
  HistogramFamily& delivery_latency_seconds;  // {destination}
  CounterFamily& delivery_retries_total;      // {destination}
  Counter& dead_letters_total;
  GaugeCallback& queue_depth;
  GaugeCallback& queue_oldest_message_age_seconds;
};

// The process-wide registry (served at /metrics) and the pipeline metrics
// registered in it. Never destroyed.
MetricsRegistry& DefaultMetricsRegistry();
PipelineMetrics& Metrics();

}  // namespace cbpipe
