// The in-memory adapter of the Metrics port (contract in metrics.h), for
// tests: values are kept in maps and read back with Value() or Collect().
//
//   InMemoryMetrics metrics(PipelineMetricSpecs());
//   service_under_test.Run(&metrics);
//   EXPECT_EQ(metrics.Value(kInputsTotal, {"failed"}), 1);
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "telemetry/metrics.h"

namespace cbpipe {

class InMemoryMetrics : public Metrics {
 public:
  explicit InMemoryMetrics(const std::vector<MetricSpec>& specs);

  void Increment(std::string_view name, LabelValues labels,
                 uint64_t n = 1) override;
  void Set(std::string_view name, LabelValues labels, double value) override;
  void Observe(std::string_view name, LabelValues labels,
               double value) override;
  GaugeRegistration WatchGauge(std::string_view name,
                               std::function<double()> read) override;
  std::vector<MetricSample> Collect() override;

  // A counter's or gauge's value, a histogram's count, a callback gauge's
  // current reading; 0 for a series never recorded.
  double Value(std::string_view name, LabelValues labels = {});

 private:
  struct Family {
    MetricSpec spec;
    // Keyed by the label values (padded or cut to the spec's count).
    std::map<std::vector<std::string>, MetricSample> series;
    std::vector<std::pair<uint64_t, std::function<double()>>> watchers;
  };
  Family* Find(std::string_view name, MetricKind kind);
  MetricSample& SeriesLocked(Family* f, LabelValues labels);

  // Guards the series; watch_mu_ is held while a callback runs so that
  // ending a registration waits for it.
  std::mutex mu_;
  std::mutex watch_mu_;
  std::vector<Family> families_;
  uint64_t next_watch_id_ = 1;
};

}  // namespace cbpipe
