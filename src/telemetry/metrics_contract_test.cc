// The Metrics port's contract (telemetry/metrics.h), run against every
// adapter: Prometheus, in-memory, CloudWatch EMF, and the fan-out of
// Prometheus + EMF.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <thread>

#include "telemetry/emf_metrics.h"
#include "telemetry/fanout_metrics.h"
#include "telemetry/in_memory_metrics.h"
#include "telemetry/metrics.h"
#include "telemetry/prometheus_metrics.h"

namespace cbpipe {
namespace {

using Factory =
    std::function<std::unique_ptr<Metrics>(const std::vector<MetricSpec>&)>;

struct Adapter {
  const char* name;
  Factory make;
};

std::vector<MetricSpec> TestSpecs() {
  return {
      {"c_total", "C.", MetricKind::kCounter, {"a", "b"}, {}, MetricUnit::kCount},
      {"plain_total", "P.", MetricKind::kCounter, {}, {}, MetricUnit::kCount},
      {"g", "G.", MetricKind::kGauge, {"k"}, {}, MetricUnit::kNone},
      {"h_seconds", "H.", MetricKind::kHistogram, {"d"}, {1, 2, 4},
       MetricUnit::kSeconds},
      {"depth", "D.", MetricKind::kCallbackGauge, {}, {}, MetricUnit::kCount},
      {"wide_total", "W.", MetricKind::kCounter, {"a", "b", "c", "d", "e", "f"},
       {}, MetricUnit::kCount},
  };
}

// No gauge thread: Collect reads the callback gauges.
EmfOptions QuietEmf() {
  EmfOptions o;
  o.gauge_interval_ms = 0;
  return o;
}

class MetricsContractTest : public ::testing::TestWithParam<Adapter> {
 protected:
  void SetUp() override { metrics_ = GetParam().make(TestSpecs()); }

  // The sample of `name` with these label values, or null.
  std::optional<MetricSample> Find(const std::string& name,
                                   std::vector<std::string> labels) {
    for (MetricSample& s : metrics_->Collect()) {
      if (s.name == name && s.label_values == labels) return s;
    }
    return std::nullopt;
  }

  std::unique_ptr<Metrics> metrics_;
};

TEST_P(MetricsContractTest, FreshMetricsHaveOnlyUnlabelledSeries) {
  std::vector<MetricSample> all = metrics_->Collect();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name, "plain_total");
  EXPECT_EQ(all[0].value, 0);
}

TEST_P(MetricsContractTest, CountersAddPerLabelValues) {
  metrics_->Increment("c_total", {"x", "y"});
  metrics_->Increment("c_total", {"x", "y"}, 4);
  metrics_->Increment("c_total", {"y", "x"});
  metrics_->Increment("plain_total", {}, 7);
  EXPECT_EQ(Find("c_total", {"x", "y"})->value, 5);
  EXPECT_EQ(Find("c_total", {"y", "x"})->value, 1);
  EXPECT_EQ(Find("plain_total", {})->value, 7);
  EXPECT_EQ(Find("c_total", {"x", "y"})->kind, MetricKind::kCounter);
}

TEST_P(MetricsContractTest, MissingLabelValuesAreEmptyExtraOnesDropped) {
  metrics_->Increment("c_total", {"x"});
  metrics_->Increment("c_total", {"x", "", "ignored"});
  EXPECT_EQ(Find("c_total", {"x", ""})->value, 2);
}

TEST_P(MetricsContractTest, ManyLabels) {
  metrics_->Increment("wide_total", {"1", "2", "3", "4", "5", "6"}, 2);
  metrics_->Increment("wide_total", {"1", "2", "3", "4", "5", "6"});
  metrics_->Increment("wide_total", {"1", "2", "3", "4", "5"});
  EXPECT_EQ(Find("wide_total", {"1", "2", "3", "4", "5", "6"})->value, 3);
  EXPECT_EQ(Find("wide_total", {"1", "2", "3", "4", "5", ""})->value, 1);
}

TEST_P(MetricsContractTest, GaugesReplaceTheirValue) {
  metrics_->Set("g", {"a"}, 2.5);
  metrics_->Set("g", {"a"}, -1);
  metrics_->Set("g", {"b"}, 1e21);
  EXPECT_EQ(Find("g", {"a"})->value, -1);
  EXPECT_EQ(Find("g", {"b"})->value, 1e21);
}

TEST_P(MetricsContractTest, HistogramsCountInTheFirstBucketAtOrAbove) {
  for (double v : {0.5, 1.0, 1.5, 4.0, 9.0}) metrics_->Observe("h_seconds", {"v"}, v);
  metrics_->Observe("h_seconds", {"v"}, std::nan(""));  // ignored
  std::optional<MetricSample> h = Find("h_seconds", {"v"});
  ASSERT_TRUE(h);
  EXPECT_EQ(h->kind, MetricKind::kHistogram);
  EXPECT_THAT(h->cumulative, ::testing::ElementsAre(2, 3, 4, 5));
  EXPECT_DOUBLE_EQ(h->value, 16.0);
}

TEST_P(MetricsContractTest, UndeclaredNamesAndWrongKindsDoNothing) {
  metrics_->Increment("nope_total", {});
  metrics_->Set("c_total", {"x", "y"}, 3);       // a counter, not a gauge
  metrics_->Observe("g", {"a"}, 1);              // a gauge
  metrics_->Increment("h_seconds", {"v"});       // a histogram
  GaugeRegistration r = metrics_->WatchGauge("g", [] { return 1.0; });
  EXPECT_FALSE(r.bound());
  EXPECT_EQ(metrics_->Collect().size(), 1u);  // plain_total only
}

TEST_P(MetricsContractTest, CallbackGaugeReadsTheLatestBindingUntilItEnds) {
  EXPECT_FALSE(Find("depth", {}));
  GaugeRegistration first = metrics_->WatchGauge("depth", [] { return 3.0; });
  EXPECT_TRUE(first.bound());
  EXPECT_EQ(Find("depth", {})->value, 3);
  {
    GaugeRegistration second =
        metrics_->WatchGauge("depth", [] { return 8.0; });
    EXPECT_EQ(Find("depth", {})->value, 8);
  }
  EXPECT_EQ(Find("depth", {})->value, 3);
  GaugeRegistration moved = std::move(first);
  EXPECT_FALSE(first.bound());
  EXPECT_EQ(Find("depth", {})->value, 3);
  moved.Reset();
  EXPECT_FALSE(Find("depth", {}));
}

// The owner of what a callback reads may go right after its registration
// ends: no call is running or starts after Reset returns.
TEST_P(MetricsContractTest, ResetWaitsForACallInProgress) {
  auto value = std::make_unique<std::atomic<double>>(1.0);
  std::atomic<bool> in_call{false};
  GaugeRegistration r = metrics_->WatchGauge("depth", [&] {
    in_call = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const double v = value->load();
    in_call = false;
    return v;
  });
  std::thread reader([&] { metrics_->Collect(); });
  while (!in_call.load()) std::this_thread::yield();
  r.Reset();
  EXPECT_FALSE(in_call.load());
  value.reset();  // ASan: a later call would read freed memory
  reader.join();
  EXPECT_FALSE(Find("depth", {}));
}

TEST_P(MetricsContractTest, ConcurrentRecordingLosesNothing) {
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        metrics_->Increment("c_total", {"n", std::to_string(i % 3)});
        metrics_->Observe("h_seconds", {t % 2 ? "odd" : "even"}, 1);
        if (i % 500 == 0) metrics_->Collect();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  double total = 0;
  uint64_t observed = 0;
  for (const MetricSample& s : metrics_->Collect()) {
    if (s.name == "c_total") total += s.value;
    if (s.name == "h_seconds") observed += s.cumulative.back();
  }
  EXPECT_EQ(total, kThreads * kEach);
  EXPECT_EQ(observed, static_cast<uint64_t>(kThreads * kEach));
}

TEST_P(MetricsContractTest, CollectFollowsDeclarationOrder) {
  GaugeRegistration r = metrics_->WatchGauge("depth", [] { return 1.0; });
  metrics_->Observe("h_seconds", {"z"}, 1);
  metrics_->Set("g", {"b"}, 1);
  metrics_->Set("g", {"a"}, 1);
  metrics_->Increment("c_total", {"x", "y"});
  std::vector<std::string> order;
  for (const MetricSample& s : metrics_->Collect())
    order.push_back(s.name + (s.label_values.empty() ? "" : ":" + s.label_values[0]));
  EXPECT_THAT(order, ::testing::ElementsAre("c_total:x", "plain_total", "g:a",
                                            "g:b", "h_seconds:z", "depth"));
}

INSTANTIATE_TEST_SUITE_P(
    Adapters, MetricsContractTest,
    ::testing::Values(
        Adapter{"Prometheus",
                [](const std::vector<MetricSpec>& s) -> std::unique_ptr<Metrics> {
                  return std::make_unique<PrometheusMetrics>(s);
                }},
        Adapter{"InMemory",
                [](const std::vector<MetricSpec>& s) -> std::unique_ptr<Metrics> {
                  return std::make_unique<InMemoryMetrics>(s);
                }},
        // Lines are checked in emf_metrics_test.cc; here only the totals.
        Adapter{"Emf",
                [](const std::vector<MetricSpec>& s) -> std::unique_ptr<Metrics> {
                  return std::make_unique<EmfMetrics>(
                      s, QuietEmf(),
                      [](std::string_view) { return true; });
                }},
        Adapter{"FanOut",
                [](const std::vector<MetricSpec>& s) -> std::unique_ptr<Metrics> {
                  std::vector<std::unique_ptr<Metrics>> all;
                  all.push_back(std::make_unique<PrometheusMetrics>(s));
                  all.push_back(std::make_unique<EmfMetrics>(
                      s, QuietEmf(),
                      [](std::string_view) { return true; }));
                  return std::make_unique<FanOutMetrics>(std::move(all));
                }}),
    [](const ::testing::TestParamInfo<Adapter>& info) {
      return std::string(info.param.name);
    });

TEST(InMemoryMetricsTest, ValueReadsEveryKind) {
  InMemoryMetrics m(TestSpecs());
  m.Increment("c_total", {"x", "y"}, 2);
  m.Observe("h_seconds", {"v"}, 3);
  m.Observe("h_seconds", {"v"}, 30);
  GaugeRegistration r = m.WatchGauge("depth", [] { return 6.0; });
  EXPECT_EQ(m.Value("c_total", {"x", "y"}), 2);
  EXPECT_EQ(m.Value("c_total", {"x"}), 0);
  EXPECT_EQ(m.Value("h_seconds", {"v"}), 2);
  EXPECT_EQ(m.Value("depth"), 6);
}

}  // namespace
}  // namespace cbpipe
