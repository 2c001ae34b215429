#include "telemetry/prometheus_metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <span>
#include <type_traits>

namespace cbpipe {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

[[maybe_unused]] bool ValidMetricName(std::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameChar(c) || c == ':'; });
}

[[maybe_unused]] bool ValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0]) || name.starts_with("__")) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), IsNameChar);
}

void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    out->append(buf, end);
  }
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, end);
}

// Label values: backslash, double quote and line feed are escaped.
void AppendLabelValue(std::string* out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '"': out->append("\\\""); break;
      case '\n': out->append("\\n"); break;
      default: out->push_back(c);
    }
  }
}

// HELP text: backslash and line feed are escaped.
void AppendHelp(std::string* out, std::string_view name, std::string_view help,
                std::string_view type) {
  out->append("# HELP ");
  out->append(name);
  out->push_back(' ');
  for (char c : help) {
    switch (c) {
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      default: out->push_back(c);
    }
  }
  out->append("\n# TYPE ");
  out->append(name);
  out->push_back(' ');
  out->append(type);
  out->push_back('\n');
}

// `{a="x",b="y"` without the closing brace; empty when there are no labels.
std::string LabelPrefix(const std::vector<std::string>& names,
                        const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out.push_back(i == 0 ? '{' : ',');
    out.append(names[i]);
    out.append("=\"");
    AppendLabelValue(&out, values[i]);
    out.push_back('"');
  }
  return out;
}

// An unambiguous map key for label values that sorts like the values do.
void EncodeKey(std::span<const std::string_view> values, size_t count,
               std::string* key) {
  key->clear();
  size_t i = 0;
  for (std::string_view v : values) {
    if (i++ == count) break;
    for (char c : v) {
      key->push_back(c);
      if (c == '\0') key->push_back('\1');
    }
    key->append(2, '\0');
  }
  for (; i < count; ++i) key->append(2, '\0');  // missing values: ""
}

}  // namespace

// --- Histogram
// ----------------------------------------------------------------

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  size_t index = static_cast<size_t>(
      std::lower_bound(bounds_->begin(), bounds_->end(), v) - bounds_->begin());
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.cumulative.resize(bounds_->size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = total;
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

// --- MetricFamily
// -------------------------------------------------------------

template <typename Series>
MetricFamily<Series>::MetricFamily(std::string name, std::string help,
                                   std::vector<std::string> label_names,
                                   std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  assert(ValidMetricName(name_) && "bad metric name");
  for ([[maybe_unused]] const std::string& label : label_names_) {
    assert(ValidLabelName(label) && "bad label name");
    assert(!(std::is_same_v<Series, Histogram> && label == "le") &&
           "le is reserved for histogram buckets");
  }
  if (label_names_.empty()) {
    series_.emplace(std::string(), Entry{{}, NewSeries()});
  }
}

template <typename Series>
std::unique_ptr<Series> MetricFamily<Series>::NewSeries() const {
  if constexpr (std::is_same_v<Series, Histogram>) {
    return std::make_unique<Histogram>(&bounds_);
  } else {
    return std::make_unique<Series>();
  }
}

template <typename Series>
Series& MetricFamily<Series>::WithLabels(
    std::initializer_list<std::string_view> values) {
  assert(values.size() == label_names_.size() &&
         "wrong number of label values");
  return SeriesFor(std::span<const std::string_view>(values.begin(),
                                                     values.size()));
}

template <typename Series>
Series& MetricFamily<Series>::SeriesFor(
    std::span<const std::string_view> values) {
  thread_local std::string key;
  EncodeKey(values, label_names_.size(), &key);
  {
    std::shared_lock lock(mu_);
    auto it = series_.find(std::string_view(key));
    if (it != series_.end()) return *it->second.series;
  }
  std::unique_lock lock(mu_);
  auto it = series_.find(std::string_view(key));
  if (it != series_.end()) return *it->second.series;
  Entry entry;
  for (std::string_view v : values) {
    if (entry.values.size() == label_names_.size()) break;
    entry.values.emplace_back(v);
  }
  entry.values.resize(label_names_.size());
  entry.series = NewSeries();
  Series& series = *entry.series;
  series_.emplace(key, std::move(entry));
  return series;
}

template <typename Series>
void MetricFamily<Series>::Render(std::string_view type,
                                  std::string* out) const {
  AppendHelp(out, name_, help_, type);
  std::shared_lock lock(mu_);
  for (const auto& [key, entry] : series_) {
    std::string labels = LabelPrefix(label_names_, entry.values);
    if constexpr (std::is_same_v<Series, Histogram>) {
      Histogram::Snapshot snapshot = entry.series->Read();
      for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
        out->append(name_);
        out->append("_bucket");
        out->append(labels);
        out->append(labels.empty() ? "{le=\"" : ",le=\"");
        if (i < bounds_.size()) {
          AppendDouble(out, bounds_[i]);
        } else {
          out->append("+Inf");
        }
        out->append("\"} ");
        AppendUint(out, snapshot.cumulative[i]);
        out->push_back('\n');
      }
      std::string closed = labels.empty() ? labels : labels + "}";
      out->append(name_);
      out->append("_sum");
      out->append(closed);
      out->push_back(' ');
      AppendDouble(out, snapshot.sum);
      out->push_back('\n');
      out->append(name_);
      out->append("_count");
      out->append(closed);
      out->push_back(' ');
      AppendUint(out, snapshot.count());
      out->push_back('\n');
    } else {
      out->append(name_);
      out->append(labels);
      if (!labels.empty()) out->push_back('}');
      out->push_back(' ');
      if constexpr (std::is_same_v<Series, Counter>) {
        AppendUint(out, entry.series->Value());
      } else {
        AppendDouble(out, entry.series->Value());
      }
      out->push_back('\n');
    }
  }
}

template <typename Series>
void MetricFamily<Series>::ForEach(
    const std::function<void(const std::vector<std::string>&, const Series&)>&
        fn) const {
  std::shared_lock lock(mu_);
  for (const auto& [key, entry] : series_) fn(entry.values, *entry.series);
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

// --- GaugeCallback
// -------------------------------------------------------------

void GaugeCallback::Set(std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  fn_ = std::move(fn);
}

bool GaugeCallback::Read(double* value) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!fn_) return false;
  *value = fn_();
  return true;
}

void GaugeCallback::Render(std::string* out) const {
  AppendHelp(out, name_, help_, "gauge");
  std::lock_guard<std::mutex> lock(mu_);
  if (!fn_) return;
  out->append(name_);
  out->push_back(' ');
  AppendDouble(out, fn_());
  out->push_back('\n');
}

// --- MetricsRegistry
// -------------------------------------------------------------

struct MetricsRegistry::Item {
  std::string name;
  std::unique_ptr<CounterFamily> counter;
  std::unique_ptr<GaugeFamily> gauge;
  std::unique_ptr<HistogramFamily> histogram;
  std::unique_ptr<GaugeCallback> callback;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::CheckNewName([[maybe_unused]] const std::string& name) {
  assert(ValidMetricName(name) && "bad metric name");
  for ([[maybe_unused]] const auto& item : items_) {
    assert(item->name != name && "metric registered twice");
  }
}

CounterFamily& MetricsRegistry::AddCounter(
    std::string name, std::string help, std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckNewName(name);
  auto item = std::make_unique<Item>();
  item->name = name;
  item->counter.reset(new CounterFamily(std::move(name), std::move(help),
                                        std::move(label_names)));
  CounterFamily& family = *item->counter;
  items_.push_back(std::move(item));
  return family;
}

GaugeFamily& MetricsRegistry::AddGauge(std::string name, std::string help,
                                       std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckNewName(name);
  auto item = std::make_unique<Item>();
  item->name = name;
  item->gauge.reset(new GaugeFamily(std::move(name), std::move(help),
                                    std::move(label_names)));
  GaugeFamily& family = *item->gauge;
  items_.push_back(std::move(item));
  return family;
}

HistogramFamily& MetricsRegistry::AddHistogram(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  assert(std::adjacent_find(bounds.begin(), bounds.end(),
                            std::greater_equal<>()) == bounds.end() &&
         "bucket bounds must increase");
  assert(std::none_of(bounds.begin(), bounds.end(),
                      [](double b) { return !std::isfinite(b); }) &&
         "bucket bounds must be finite");
  std::lock_guard<std::mutex> lock(mu_);
  CheckNewName(name);
  auto item = std::make_unique<Item>();
  item->name = name;
  item->histogram.reset(new HistogramFamily(std::move(name), std::move(help),
                                            std::move(label_names),
                                            std::move(bounds)));
  HistogramFamily& family = *item->histogram;
  items_.push_back(std::move(item));
  return family;
}

GaugeCallback& MetricsRegistry::AddGaugeCallback(std::string name,
                                                 std::string help,
                                                 std::function<double()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  CheckNewName(name);
  auto item = std::make_unique<Item>();
  item->name = name;
  item->callback.reset(new GaugeCallback(std::move(name), std::move(help)));
  item->callback->Set(std::move(fn));
  GaugeCallback& callback = *item->callback;
  items_.push_back(std::move(item));
  return callback;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& item : items_) {
    if (item->counter) item->counter->Render("counter", &out);
    if (item->gauge) item->gauge->Render("gauge", &out);
    if (item->histogram) item->histogram->Render("histogram", &out);
    if (item->callback) item->callback->Render(&out);
  }
  return out;
}

// --- PrometheusMetrics
// ------------------------------------------------------------

struct PrometheusMetrics::Family {
  MetricKind kind;
  CounterFamily* counter = nullptr;
  GaugeFamily* gauge = nullptr;
  HistogramFamily* histogram = nullptr;
  GaugeCallback* callback = nullptr;
  std::string name;
  // kCallbackGauge: the bound functions, latest last (under watch_mu_).
  std::vector<std::pair<uint64_t, std::function<double()>>> watchers;
};

PrometheusMetrics::PrometheusMetrics(const std::vector<MetricSpec>& specs) {
  for (const MetricSpec& spec : specs) {
    if (families_.count(spec.name)) continue;  // declared twice: first wins
    auto f = std::make_unique<Family>();
    f->kind = spec.kind;
    f->name = spec.name;
      switch (spec.kind) {
      case MetricKind::kCounter:
        f->counter = &registry_.AddCounter(spec.name, spec.help,
                                           spec.label_names);
        break;
      case MetricKind::kGauge:
        f->gauge = &registry_.AddGauge(spec.name, spec.help, spec.label_names);
        break;
      case MetricKind::kHistogram:
        f->histogram = &registry_.AddHistogram(spec.name, spec.help,
                                               spec.label_names, spec.buckets);
        break;
      case MetricKind::kCallbackGauge:
        f->callback = &registry_.AddGaugeCallback(spec.name, spec.help);
        break;
    }
    order_.push_back(f.get());
    families_.emplace(spec.name, std::move(f));
  }
}

PrometheusMetrics::~PrometheusMetrics() = default;

PrometheusMetrics::Family* PrometheusMetrics::Find(std::string_view name,
                                                   MetricKind kind) {
  auto it = families_.find(name);
  if (it == families_.end() || it->second->kind != kind) return nullptr;
  return it->second.get();
}

namespace {
std::span<const std::string_view> Span(LabelValues labels) {
  return {labels.begin(), labels.size()};
}
}  // namespace

void PrometheusMetrics::Increment(std::string_view name, LabelValues labels,
                                  uint64_t n) {
  Family* f = Find(name, MetricKind::kCounter);
  if (f) f->counter->SeriesFor(Span(labels)).Increment(n);
}

void PrometheusMetrics::Set(std::string_view name, LabelValues labels,
                            double value) {
  Family* f = Find(name, MetricKind::kGauge);
  if (f) f->gauge->SeriesFor(Span(labels)).Set(value);
}

void PrometheusMetrics::Observe(std::string_view name, LabelValues labels,
                                double value) {
  Family* f = Find(name, MetricKind::kHistogram);
  if (f) f->histogram->SeriesFor(Span(labels)).Observe(value);
}

GaugeRegistration PrometheusMetrics::WatchGauge(std::string_view name,
                                                std::function<double()> read) {
  Family* f = Find(name, MetricKind::kCallbackGauge);
  if (!f || !read) return GaugeRegistration();
  std::lock_guard<std::mutex> lock(watch_mu_);
  const uint64_t id = next_watch_id_++;
  f->watchers.emplace_back(id, read);
  // GaugeCallback::Set waits for a render in progress.
  f->callback->Set(std::move(read));
  return GaugeRegistration([this, f, id] { Unwatch(f, id); });
}

void PrometheusMetrics::Unwatch(Family* f, uint64_t id) {
  std::lock_guard<std::mutex> lock(watch_mu_);
  std::erase_if(f->watchers, [id](const auto& w) { return w.first == id; });
  if (f->watchers.empty()) {
    f->callback->Clear();
  } else {
    f->callback->Set(f->watchers.back().second);
  }
}

std::vector<MetricSample> PrometheusMetrics::Collect() {
  std::vector<MetricSample> out;
  for (const Family* f : order_) {
    auto add = [&](const std::vector<std::string>& values) -> MetricSample& {
      MetricSample& s = out.emplace_back();
      s.name = f->name;
      s.kind = f->kind;
      s.label_values = values;
      return s;
    };
    switch (f->kind) {
      case MetricKind::kCounter:
        f->counter->ForEach([&](const auto& values, const Counter& c) {
          add(values).value = static_cast<double>(c.Value());
        });
        break;
      case MetricKind::kGauge:
        f->gauge->ForEach([&](const auto& values, const Gauge& g) {
          add(values).value = g.Value();
        });
        break;
      case MetricKind::kHistogram:
        f->histogram->ForEach([&](const auto& values, const Histogram& h) {
          Histogram::Snapshot snap = h.Read();
          MetricSample& s = add(values);
          s.value = snap.sum;
          s.cumulative = std::move(snap.cumulative);
        });
        break;
      case MetricKind::kCallbackGauge: {
        double v = 0;
        if (f->callback->Read(&v)) add({}).value = v;
        break;
      }
    }
  }
  return out;
}

}  // namespace cbpipe
