#include "telemetry/in_memory_metrics.h"

#include <algorithm>
#include <cmath>

namespace cbpipe {

InMemoryMetrics::InMemoryMetrics(const std::vector<MetricSpec>& specs) {
  for (const MetricSpec& spec : specs) {
    const bool seen =
        std::any_of(families_.begin(), families_.end(),
                    [&](const Family& f) { return f.spec.name == spec.name; });
    if (seen) continue;  // declared twice: the first wins
    Family f;
    f.spec = spec;
    // Counters and gauges without labels have their one series from the
    // start, like the Prometheus adapter's.
    if (spec.label_names.empty() && (spec.kind == MetricKind::kCounter ||
                                     spec.kind == MetricKind::kGauge)) {
      MetricSample& s = f.series[{}];
      s.name = spec.name;
      s.kind = spec.kind;
    }
    families_.push_back(std::move(f));
  }
}

InMemoryMetrics::Family* InMemoryMetrics::Find(std::string_view name,
                                               MetricKind kind) {
  for (Family& f : families_) {
    if (f.spec.name == name) return f.spec.kind == kind ? &f : nullptr;
  }
  return nullptr;
}

MetricSample& InMemoryMetrics::SeriesLocked(Family* f, LabelValues labels) {
  std::vector<std::string> key(labels.begin(), labels.end());
  key.resize(f->spec.label_names.size());
  auto [it, fresh] = f->series.try_emplace(key);
  if (fresh) {
    it->second.name = f->spec.name;
    it->second.kind = f->spec.kind;
    it->second.label_values = key;
    if (f->spec.kind == MetricKind::kHistogram)
      it->second.cumulative.assign(f->spec.buckets.size() + 1, 0);
  }
  return it->second;
}

void InMemoryMetrics::Increment(std::string_view name, LabelValues labels,
                                uint64_t n) {
  Family* f = Find(name, MetricKind::kCounter);
  if (!f) return;
  std::lock_guard<std::mutex> lock(mu_);
  SeriesLocked(f, labels).value += static_cast<double>(n);
}

void InMemoryMetrics::Set(std::string_view name, LabelValues labels,
                          double value) {
  Family* f = Find(name, MetricKind::kGauge);
  if (!f) return;
  std::lock_guard<std::mutex> lock(mu_);
  SeriesLocked(f, labels).value = value;
}

void InMemoryMetrics::Observe(std::string_view name, LabelValues labels,
                              double value) {
  Family* f = Find(name, MetricKind::kHistogram);
  if (!f || std::isnan(value)) return;
  std::lock_guard<std::mutex> lock(mu_);
  MetricSample& s = SeriesLocked(f, labels);
  const std::vector<double>& bounds = f->spec.buckets;
  const size_t first = static_cast<size_t>(
      std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin());
  for (size_t i = first; i < s.cumulative.size(); ++i) ++s.cumulative[i];
  s.value += value;
}

GaugeRegistration InMemoryMetrics::WatchGauge(std::string_view name,
                                              std::function<double()> read) {
  Family* f = Find(name, MetricKind::kCallbackGauge);
  if (!f || !read) return GaugeRegistration();
  std::lock_guard<std::mutex> lock(watch_mu_);
  const uint64_t id = next_watch_id_++;
  f->watchers.emplace_back(id, std::move(read));
  return GaugeRegistration([this, f, id] {
    std::lock_guard<std::mutex> lock(watch_mu_);
    std::erase_if(f->watchers, [id](const auto& w) { return w.first == id; });
  });
}

std::vector<MetricSample> InMemoryMetrics::Collect() {
  std::vector<MetricSample> out;
  for (Family& f : families_) {
    if (f.spec.kind == MetricKind::kCallbackGauge) {
      std::lock_guard<std::mutex> lock(watch_mu_);
      if (f.watchers.empty()) continue;
      MetricSample& s = out.emplace_back();
      s.name = f.spec.name;
      s.kind = f.spec.kind;
      s.value = f.watchers.back().second();
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, sample] : f.series) out.push_back(sample);
  }
  return out;
}

double InMemoryMetrics::Value(std::string_view name, LabelValues labels) {
  std::vector<std::string> key(labels.begin(), labels.end());
  for (const MetricSample& s : Collect()) {
    if (s.name != name) continue;
    std::vector<std::string> padded = key;
    padded.resize(s.label_values.size());
    if (s.label_values != padded) continue;
    return s.kind == MetricKind::kHistogram
               ? static_cast<double>(s.cumulative.back())
               : s.value;
  }
  return 0;
}

}  // namespace cbpipe
