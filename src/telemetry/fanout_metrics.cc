#include "telemetry/fanout_metrics.h"

#include <cassert>

namespace cbpipe {

FanOutMetrics::FanOutMetrics(std::vector<std::unique_ptr<Metrics>> adapters)
    : adapters_(std::move(adapters)) {
  assert(!adapters_.empty() && "FanOutMetrics needs an adapter");
}

void FanOutMetrics::Increment(std::string_view name, LabelValues labels,
                              uint64_t n) {
  for (auto& m : adapters_) m->Increment(name, labels, n);
}

void FanOutMetrics::Set(std::string_view name, LabelValues labels,
                        double value) {
  for (auto& m : adapters_) m->Set(name, labels, value);
}

void FanOutMetrics::Observe(std::string_view name, LabelValues labels,
                            double value) {
  for (auto& m : adapters_) m->Observe(name, labels, value);
}

GaugeRegistration FanOutMetrics::WatchGauge(std::string_view name,
                                            std::function<double()> read) {
  auto all = std::make_shared<std::vector<GaugeRegistration>>();
  for (auto& m : adapters_) {
    GaugeRegistration r = m->WatchGauge(name, read);
    if (r.bound()) all->push_back(std::move(r));
  }
  if (all->empty()) return GaugeRegistration();
  return GaugeRegistration([all] {
    for (GaugeRegistration& r : *all) r.Reset();
  });
}

std::vector<MetricSample> FanOutMetrics::Collect() {
  return adapters_.empty() ? std::vector<MetricSample>{}
                           : adapters_.front()->Collect();
}

}  // namespace cbpipe
