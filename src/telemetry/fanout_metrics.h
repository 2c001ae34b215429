// A Metrics port adapter that forwards every recording to several adapters
// (Prometheus for GET /metrics and CloudWatch EMF at once), chosen by
// `[telemetry] metrics = ["prometheus", "emf"]`.
//
//   std::vector<std::unique_ptr<Metrics>> all;
//   all.push_back(std::make_unique<PrometheusMetrics>(specs));
//   all.push_back(std::make_unique<EmfMetrics>(specs, {}, EmfStdoutWriter()));
//   FanOutMetrics metrics(std::move(all));
//   metrics.Increment(kInputsTotal, {"accepted"});   // both record it
//
// Contract: metrics.h. Collect reads the first adapter (all of them hold the
// same values). WatchGauge binds the function in every adapter; the
// returned registration ends all the bindings (each waits for its call in
// progress); the function may then be called by two adapters at once (a
// scrape and the EMF gauge thread), so it must be thread-safe. Thread safety:
// as the adapters (every one is thread-safe). Ownership: owns the adapters;
// `at(i)` lends them.
#pragma once

#include <memory>
#include <vector>

#include "telemetry/metrics.h"

namespace cbpipe {

class FanOutMetrics : public Metrics {
 public:
  // `adapters` must not be empty or hold null.
  explicit FanOutMetrics(std::vector<std::unique_ptr<Metrics>> adapters);

  void Increment(std::string_view name, LabelValues labels,
                 uint64_t n = 1) override;
  void Set(std::string_view name, LabelValues labels, double value) override;
  void Observe(std::string_view name, LabelValues labels,
               double value) override;
  GaugeRegistration WatchGauge(std::string_view name,
                               std::function<double()> read) override;
  std::vector<MetricSample> Collect() override;

  size_t size() const { return adapters_.size(); }
  Metrics* at(size_t i) const { return adapters_[i].get(); }

 private:
  std::vector<std::unique_ptr<Metrics>> adapters_;
};

}  // namespace cbpipe
