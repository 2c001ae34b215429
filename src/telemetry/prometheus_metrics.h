// The Prometheus adapter of the Metrics port (PrometheusMetrics, at the
// end), and the registry it is built on: counters, gauges and histograms
// with labels, rendered in the text exposition format (version 0.0.4) for
// GET /metrics.
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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry/metrics.h"

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
  // Like WithLabels, but missing values are "" and extra ones dropped
  // (the Metrics port's rule) instead of a programming error.
  Series& SeriesFor(std::span<const std::string_view> values);
  // The series of a family without labels.
  Series& Get() { return WithLabels({}); }

  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const std::vector<double>& bounds() const { return bounds_; }
  // Calls `fn` for every series, sorted by label values, under the
  // family's shared lock (`fn` must not add series to it).
  void ForEach(const std::function<void(const std::vector<std::string>&,
                                        const Series&)>& fn) const;

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
  // The function's value; false when there is none (no sample).
  bool Read(double* value) const;

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

// The Metrics port over a MetricsRegistry: each MetricSpec becomes a family
// (registered in the order given), rendered by Render() exactly as the
// registry renders it. Unknown names or a kind that does not match are
// ignored (see metrics.h).
//
//   PrometheusMetrics metrics(PipelineMetricSpecs());
//   metrics.Increment(kInputsTotal, {"accepted"});
//   std::string body = metrics.Render();   // GET /metrics
class PrometheusMetrics : public Metrics {
 public:
  explicit PrometheusMetrics(const std::vector<MetricSpec>& specs);
  ~PrometheusMetrics() override;

  void Increment(std::string_view name, LabelValues labels,
                 uint64_t n = 1) override;
  void Set(std::string_view name, LabelValues labels, double value) override;
  void Observe(std::string_view name, LabelValues labels,
               double value) override;
  GaugeRegistration WatchGauge(std::string_view name,
                               std::function<double()> read) override;
  std::vector<MetricSample> Collect() override;

  // The text exposition format 0.0.4 (see MetricsRegistry).
  std::string Render() const { return registry_.RenderPrometheus(); }

 private:
  struct Family;
  Family* Find(std::string_view name, MetricKind kind);
  void Unwatch(Family* family, uint64_t id);

  MetricsRegistry registry_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
  std::vector<Family*> order_;
  std::mutex watch_mu_;  // the callback stacks
  uint64_t next_watch_id_ = 1;
};

}  // namespace cbpipe
