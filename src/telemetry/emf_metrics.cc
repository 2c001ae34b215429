#include "telemetry/emf_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "domain/pan.h"

namespace cbpipe {
namespace {

using ojson = nlohmann::ordered_json;

// EMF limits (CloudWatch Embedded Metric Format specification).
constexpr size_t kMaxDimensions = 30;
constexpr size_t kMaxMetricsPerLine = 100;

const char* UnitName(MetricUnit unit) {
  switch (unit) {
    case MetricUnit::kCount: return "Count";
    case MetricUnit::kBytes: return "Bytes";
    case MetricUnit::kSeconds: return "Seconds";
    case MetricUnit::kNone: break;
  }
  return "None";
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The root of a line: `_aws` with one directive for `metrics` (all with
// the same dimensions), then the dimension values.
ojson LineRoot(const std::string& namespace_name, int64_t timestamp_ms,
               const std::vector<std::string>& label_names, LabelValues labels,
               const std::vector<const MetricSpec*>& metrics) {
  ojson root = ojson::object();
  ojson directive = ojson::object();
  directive["Namespace"] = namespace_name;
  ojson dimensions = ojson::array();
  ojson values = ojson::object();
  auto value = labels.begin();
  for (const std::string& name : label_names) {
    std::string v;
    if (value != labels.end()) v = MaskCardNumbers(*value++);
    if (v.empty()) v = "none";
    // `_aws` is the directive itself; a metric's own name is its value.
    if (name == "_aws") continue;
    if (dimensions.size() < kMaxDimensions) dimensions.push_back(name);
    values[name] = std::move(v);
  }
  directive["Dimensions"] = ojson::array({std::move(dimensions)});
  ojson list = ojson::array();
  for (const MetricSpec* m : metrics) {
    list.push_back({{"Name", m->name}, {"Unit", UnitName(m->unit)}});
  }
  directive["Metrics"] = std::move(list);
  root["_aws"] = {{"Timestamp", timestamp_ms},
                  {"CloudWatchMetrics", ojson::array({std::move(directive)})}};
  for (auto& [k, v] : values.items()) root[k] = std::move(v);
  return root;
}

void SetNumber(ojson* root, const std::string& name, MetricKind kind,
               double value) {
  if (kind == MetricKind::kCounter && value >= 0 && value < 9.0e18) {
    (*root)[name] = static_cast<uint64_t>(value);
  } else {
    (*root)[name] = value;
  }
}

}  // namespace

EmfWriter EmfStdoutWriter() {
  return [](std::string_view line) { return WriteAll(STDOUT_FILENO, line); };
}

StatusOr<EmfWriter> EmfFileWriter(const std::string& path) {
  int fd =
      ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    std::string message =
        "cannot open EMF output " + path + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM) {
      return Status(StatusCode::kPermissionDenied, message);
    }
    return InvalidArgumentError(message);
  }
  struct Fd {
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { ::close(fd); }
    const int fd;
  };
  auto owned = std::make_shared<Fd>(fd);
  return EmfWriter(
      [owned](std::string_view line) { return WriteAll(owned->fd, line); });
}

StatusOr<EmfWriter> EmfOutputWriter(const std::string& output) {
  if (output == "stdout") return EmfStdoutWriter();
  if (output.empty()) return InvalidArgumentError("EMF output is empty");
  return EmfFileWriter(output);
}

EmfMetrics::EmfMetrics(const std::vector<MetricSpec>& specs, EmfOptions options,
                       EmfWriter writer)
    : options_(std::move(options)),
      specs_(specs),
      totals_(specs),
      writer_(std::move(writer)) {
  if (options_.gauge_interval_ms > 0) {
    gauge_thread_ = std::thread([this] { GaugeLoop(); });
  }
}

EmfMetrics::~EmfMetrics() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (gauge_thread_.joinable()) gauge_thread_.join();
}

void EmfMetrics::GaugeLoop() {
  std::unique_lock<std::mutex> lock(stop_mu_);
  const auto interval = std::chrono::milliseconds(options_.gauge_interval_ms);
  while (!stop_cv_.wait_for(lock, interval, [this] { return stop_; })) {
    lock.unlock();
    FlushGauges();
    lock.lock();
  }
}

const MetricSpec* EmfMetrics::Spec(std::string_view name,
                                   MetricKind kind) const {
  for (const MetricSpec& spec : specs_) {
    // Declared twice: the first wins (as in every adapter).
    if (spec.name == name) return spec.kind == kind ? &spec : nullptr;
  }
  return nullptr;
}

int64_t EmfMetrics::NowMs() const {
  if (options_.now_ms) return options_.now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void EmfMetrics::WriteLine(const std::string& line) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!writer_ || !writer_(line)) write_errors_.fetch_add(1);
}

void EmfMetrics::WriteValue(const MetricSpec& spec, LabelValues labels,
                            double value) {
  if (!std::isfinite(value)) return;
  ojson root = LineRoot(options_.namespace_name, NowMs(), spec.label_names,
                        labels, {&spec});
  SetNumber(&root, spec.name, spec.kind, value);
  WriteLine(root.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n");
}

void EmfMetrics::Increment(std::string_view name, LabelValues labels,
                           uint64_t n) {
  const MetricSpec* spec = Spec(name, MetricKind::kCounter);
  if (!spec) return;
  totals_.Increment(name, labels, n);
  WriteValue(*spec, labels, static_cast<double>(n));
}

void EmfMetrics::Set(std::string_view name, LabelValues labels, double value) {
  const MetricSpec* spec = Spec(name, MetricKind::kGauge);
  if (!spec) return;
  totals_.Set(name, labels, value);
  WriteValue(*spec, labels, value);
}

void EmfMetrics::Observe(std::string_view name, LabelValues labels,
                         double value) {
  const MetricSpec* spec = Spec(name, MetricKind::kHistogram);
  if (!spec || std::isnan(value)) return;
  totals_.Observe(name, labels, value);
  WriteValue(*spec, labels, value);
}

GaugeRegistration EmfMetrics::WatchGauge(std::string_view name,
                                         std::function<double()> read) {
  return totals_.WatchGauge(name, std::move(read));
}

std::vector<MetricSample> EmfMetrics::Collect() { return totals_.Collect(); }

void EmfMetrics::FlushGauges() {
  std::vector<std::pair<const MetricSpec*, double>> gauges;
  for (const MetricSample& s : totals_.Collect()) {
    if (s.kind != MetricKind::kCallbackGauge || !std::isfinite(s.value))
      continue;
    if (const MetricSpec* spec = Spec(s.name, s.kind))
      gauges.emplace_back(spec, s.value);
  }
  const int64_t now = NowMs();
  for (size_t from = 0; from < gauges.size(); from += kMaxMetricsPerLine) {
    const size_t to = std::min(gauges.size(), from + kMaxMetricsPerLine);
    std::vector<const MetricSpec*> specs;
    for (size_t i = from; i < to; ++i) specs.push_back(gauges[i].first);
    ojson root =
        LineRoot(options_.namespace_name, now, /*label_names=*/{}, {}, specs);
    for (size_t i = from; i < to; ++i) {
      SetNumber(&root, gauges[i].first->name, MetricKind::kCallbackGauge,
                gauges[i].second);
    }
    WriteLine(root.dump(-1, ' ', false, ojson::error_handler_t::replace) +
              "\n");
  }
}

}  // namespace cbpipe
