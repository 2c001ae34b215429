#include "telemetry/prometheus_metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cbpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsTest, GoldenRendering) {
  MetricsRegistry registry;
  CounterFamily& records = registry.AddCounter(
      "cbpipe_records_total", "Records read.", {"network", "outcome"});
  records.WithLabels({"visa", "accepted"}).Increment(3);
  records.WithLabels({"amex", "rejected"}).Increment();
  records.WithLabels({"visa", "accepted"}).Increment();
  registry.AddCounter("cbpipe_dead_letters_total", "Dead letters.");
  GaugeFamily& gauge = registry.AddGauge("cbpipe_workers", "Busy workers.");
  gauge.Get().Set(2.5);
  HistogramFamily& latency = registry.AddHistogram(
      "cbpipe_latency_seconds", "Latency.", {"destination"}, {0.5, 1, 2.5});
  latency.WithLabels({"visa"}).Observe(0.25);
  latency.WithLabels({"visa"}).Observe(1);
  latency.WithLabels({"visa"}).Observe(10);
  registry.AddGaugeCallback("cbpipe_queue_depth", "Waiting messages.",
                            [] { return 7.0; });
  registry.AddGaugeCallback("cbpipe_unbound", "No function yet.");

  EXPECT_EQ(
      registry.RenderPrometheus(),
      "# HELP cbpipe_records_total Records read.\n"
      "# TYPE cbpipe_records_total counter\n"
      "cbpipe_records_total{network=\"amex\",outcome=\"rejected\"} 1\n"
      "cbpipe_records_total{network=\"visa\",outcome=\"accepted\"} 4\n"
      "# HELP cbpipe_dead_letters_total Dead letters.\n"
      "# TYPE cbpipe_dead_letters_total counter\n"
      "cbpipe_dead_letters_total 0\n"
      "# HELP cbpipe_workers Busy workers.\n"
      "# TYPE cbpipe_workers gauge\n"
      "cbpipe_workers 2.5\n"
      "# HELP cbpipe_latency_seconds Latency.\n"
      "# TYPE cbpipe_latency_seconds histogram\n"
      "cbpipe_latency_seconds_bucket{destination=\"visa\",le=\"0.5\"} 1\n"
      "cbpipe_latency_seconds_bucket{destination=\"visa\",le=\"1\"} 2\n"
      "cbpipe_latency_seconds_bucket{destination=\"visa\",le=\"2.5\"} 2\n"
      "cbpipe_latency_seconds_bucket{destination=\"visa\",le=\"+Inf\"} 3\n"
      "cbpipe_latency_seconds_sum{destination=\"visa\"} 11.25\n"
      "cbpipe_latency_seconds_count{destination=\"visa\"} 3\n"
      "# HELP cbpipe_queue_depth Waiting messages.\n"
      "# TYPE cbpipe_queue_depth gauge\n"
      "cbpipe_queue_depth 7\n"
      "# HELP cbpipe_unbound No function yet.\n"
      "# TYPE cbpipe_unbound gauge\n");
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddCounter("m_total", "a \\ b\nc \"q\"", {"l"})
      .WithLabels({"back\\slash \"quoted\"\nnew line"})
      .Increment();
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP m_total a \\\\ b\\nc \"q\"\n"
            "# TYPE m_total counter\n"
            "m_total{l=\"back\\\\slash \\\"quoted\\\"\\nnew line\"} 1\n");
}

TEST(MetricsTest, HistogramWithoutLabelsAndBoundaries) {
  MetricsRegistry registry;
  HistogramFamily& family = registry.AddHistogram("h", "H.", {}, {1, 2, 4});
  Histogram& h = family.Get();
  for (double v : {0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, -1.0}) h.Observe(v);
  h.Observe(std::nan(""));  // ignored
  Histogram::Snapshot snapshot = h.Read();
  // A value equal to a bound falls in that bound's bucket (le = "<=").
  EXPECT_THAT(snapshot.cumulative, testing::ElementsAre(3, 5, 7, 8));
  EXPECT_EQ(snapshot.count(), 8u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 15.5);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 3\n"
            "h_bucket{le=\"2\"} 5\n"
            "h_bucket{le=\"4\"} 7\n"
            "h_bucket{le=\"+Inf\"} 8\n"
            "h_sum 15.5\n"
            "h_count 8\n");
}

TEST(MetricsTest, GaugeValuesAndSpecialNumbers) {
  MetricsRegistry registry;
  GaugeFamily& g = registry.AddGauge("g", "G.", {"k"});
  g.WithLabels({"a"}).Set(0.1);
  g.WithLabels({"b"}).Set(-3);
  g.WithLabels({"c"}).Set(1e21);
  g.WithLabels({"d"}).Set(std::numeric_limits<double>::infinity());
  g.WithLabels({"e"}).Set(-std::numeric_limits<double>::infinity());
  g.WithLabels({"f"}).Set(std::nan(""));
  g.WithLabels({"g"}).Add(2);
  g.WithLabels({"g"}).Add(-0.5);
  std::string text = registry.RenderPrometheus();
  EXPECT_THAT(text, HasSubstr("g{k=\"a\"} 0.1\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"b\"} -3\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"c\"} 1e+21\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"d\"} +Inf\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"e\"} -Inf\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"f\"} NaN\n"));
  EXPECT_THAT(text, HasSubstr("g{k=\"g\"} 1.5\n"));
}

TEST(MetricsTest, SameLabelsSameSeries) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounter("c_total", "C.", {"a", "b"});
  Counter& one = family.WithLabels({"x", "y"});
  EXPECT_EQ(&one, &family.WithLabels({"x", "y"}));
  EXPECT_NE(&one, &family.WithLabels({"xy", ""}));
  EXPECT_NE(&one, &family.WithLabels({"y", "x"}));
  // Values that could run together in a naive key stay apart.
  EXPECT_NE(&family.WithLabels({std::string_view("a\0", 2), "b"}),
            &family.WithLabels({"a", std::string_view("\0b", 2)}));
}

TEST(MetricsTest, ConcurrentIncrementsSum) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounter("c_total", "C.", {"network"});
  HistogramFamily& hist =
      registry.AddHistogram("h_seconds", "H.", {"destination"}, {1, 10});
  constexpr int kThreads = 8;
  constexpr int kIncrements = 20000;
  Counter& held = family.WithLabels({"held"});
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIncrements; ++i) {
        held.Increment();
        // Looked up each time, series created concurrently.
        family.WithLabels({"n" + std::to_string(i % 16)}).Increment(2);
        hist.WithLabels({t % 2 ? "odd" : "even"}).Observe(i % 20);
      }
    });
  }
  // Rendering while others write must be safe.
  for (int i = 0; i < 20; ++i) {
    EXPECT_THAT(registry.RenderPrometheus(), HasSubstr("# TYPE c_total"));
  }
  for (std::thread& thread : threads) thread.join();

  EXPECT_EQ(held.Value(), uint64_t{kThreads} * kIncrements);
  uint64_t total = 0;
  for (int k = 0; k < 16; ++k) {
    total += family.WithLabels({"n" + std::to_string(k)}).Value();
  }
  EXPECT_EQ(total, uint64_t{2} * kThreads * kIncrements);
  Histogram::Snapshot odd = hist.WithLabels({"odd"}).Read();
  Histogram::Snapshot even = hist.WithLabels({"even"}).Read();
  EXPECT_EQ(odd.count() + even.count(), uint64_t{kThreads} * kIncrements);
  // i % 20 in 0..19: 2 of 20 values are <= 1, 11 of 20 are <= 10.
  EXPECT_EQ(odd.cumulative[0], odd.count() / 10);
  EXPECT_EQ(odd.cumulative[1], odd.count() * 11 / 20);
  // Sum of 0..19 = 190 per 20 observations.
  EXPECT_DOUBLE_EQ(odd.sum + even.sum, 190.0 * kThreads * kIncrements / 20);
}

TEST(MetricsTest, PipelineMetricsThroughThePort) {
  PrometheusMetrics prom(PipelineMetricSpecs());
  Metrics& metrics = prom;
  metrics.Increment(kRecordsReadTotal, {"visa"}, 10);
  metrics.Increment(kRecordsAcceptedTotal, {"visa"}, 9);
  metrics.Increment(kRecordsRejectedTotal, {"ARN_CHECK_DIGIT"});
  metrics.Increment(kFilesDeliveredTotal, {"visa", "delivered"});
  metrics.Observe(kDeliveryLatencySeconds, {"visa"}, 0.3);
  metrics.Increment(kDeadLettersTotal, {});
  GaugeRegistration depth =
      metrics.WatchGauge(kQueueDepth, [] { return 4.0; });
  std::string text = prom.Render();
  for (const char* name : {
           "cbpipe_inputs_total",
           "cbpipe_records_read_total",
           "cbpipe_records_accepted_total",
           "cbpipe_records_rejected_total",
           "cbpipe_files_generated_total",
           "cbpipe_bytes_generated_total",
           "cbpipe_files_delivered_total",
           "cbpipe_bytes_delivered_total",
           "cbpipe_delivery_latency_seconds",
           "cbpipe_delivery_retries_total",
           "cbpipe_dead_letters_total",
           "cbpipe_queue_depth",
           "cbpipe_queue_oldest_message_age_seconds",
       }) {
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + name + " ")) << name;
  }
  EXPECT_THAT(text,
              HasSubstr("cbpipe_records_read_total{network=\"visa\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("cbpipe_files_delivered_total{destination="
                              "\"visa\",status=\"delivered\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cbpipe_delivery_latency_seconds_bucket{"
                              "destination=\"visa\",le=\"0.5\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cbpipe_dead_letters_total 1\n"));
  EXPECT_THAT(text, HasSubstr("cbpipe_queue_depth 4\n"));
  EXPECT_THAT(text,
              Not(HasSubstr("\ncbpipe_queue_oldest_message_age_seconds ")));
  depth.Reset();
  EXPECT_THAT(prom.Render(), Not(HasSubstr("cbpipe_queue_depth 4")));
}

// The exposition of a fresh pipeline registry, byte for byte: the names,
// help texts, types and order docs/observability.md lists.
TEST(MetricsTest, PipelineExpositionIsUnchanged) {
  PrometheusMetrics prom(PipelineMetricSpecs());
  EXPECT_EQ(prom.Render(),
            "# HELP cbpipe_inputs_total Inputs processed, by outcome.\n"
            "# TYPE cbpipe_inputs_total counter\n"
            "# HELP cbpipe_records_read_total Records read from inputs.\n"
            "# TYPE cbpipe_records_read_total counter\n"
            "# HELP cbpipe_records_accepted_total Records that passed "
            "validation and were written to a file.\n"
            "# TYPE cbpipe_records_accepted_total counter\n"
            "# HELP cbpipe_records_rejected_total Records rejected, by error "
            "code (see the rejects report).\n"
            "# TYPE cbpipe_records_rejected_total counter\n"
            "# HELP cbpipe_files_generated_total CSV files generated and "
            "verified.\n"
            "# TYPE cbpipe_files_generated_total counter\n"
            "# HELP cbpipe_bytes_generated_total Bytes of CSV files "
            "generated.\n"
            "# TYPE cbpipe_bytes_generated_total counter\n"
            "# HELP cbpipe_files_delivered_total Files handed to a "
            "destination, by the outcome of each attempt.\n"
            "# TYPE cbpipe_files_delivered_total counter\n"
            "# HELP cbpipe_bytes_delivered_total Bytes uploaded to "
            "destinations.\n"
            "# TYPE cbpipe_bytes_delivered_total counter\n"
            "# HELP cbpipe_delivery_latency_seconds Time of the attempt that "
            "delivered one file.\n"
            "# TYPE cbpipe_delivery_latency_seconds histogram\n"
            "# HELP cbpipe_delivery_retries_total Delivery attempts that were "
            "retries.\n"
            "# TYPE cbpipe_delivery_retries_total counter\n"
            "# HELP cbpipe_dead_letters_total Runs or deliveries moved to "
            "dead letters after exhausting retries.\n"
            "# TYPE cbpipe_dead_letters_total counter\n"
            "cbpipe_dead_letters_total 0\n"
            "# HELP cbpipe_queue_depth Messages waiting in the work queue.\n"
            "# TYPE cbpipe_queue_depth gauge\n"
            "# HELP cbpipe_queue_oldest_message_age_seconds Age of the oldest "
            "message waiting in the work queue.\n"
            "# TYPE cbpipe_queue_oldest_message_age_seconds gauge\n"
            "# HELP cbpipe_destination_up 1 when the destination's server "
            "answered the last probe (TCP connect and greeting, no login), "
            "else 0.\n"
            "# TYPE cbpipe_destination_up gauge\n");
}

}  // namespace
}  // namespace cbpipe
