#include "telemetry/emf_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "telemetry/fanout_metrics.h"
#include "telemetry/options.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Collects what the adapter writes.
struct Lines {
  std::mutex mu;
  std::vector<std::string> lines;
  EmfWriter Writer() {
    return [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu);
      lines.emplace_back(line);
      return true;
    };
  }
  std::vector<std::string> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return std::exchange(lines, {});
  }
};

// Every EMF rule a line must keep (CloudWatch drops a line that breaks
// one); empty when it keeps them all.
std::vector<std::string> EmfProblems(const std::string& line) {
  std::vector<std::string> problems;
  if (line.empty() || line.back() != '\n') problems.push_back("no newline");
  if (line.find('\n') != line.size() - 1) problems.push_back("two lines");
  json root = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) return {"not a JSON object: " + line};
  const json& aws = root["_aws"];
  if (!aws.is_object()) return {"no _aws"};
  if (!aws["Timestamp"].is_number_integer()) problems.push_back("Timestamp");
  const json& directives = aws["CloudWatchMetrics"];
  if (!directives.is_array() || directives.empty())
    return {"no CloudWatchMetrics"};
  static const std::set<std::string> kUnits = {"Count", "Bytes", "Seconds",
                                               "None"};
  for (const json& d : directives) {
    if (!d["Namespace"].is_string() ||
        d["Namespace"].get<std::string>().empty())
      problems.push_back("Namespace");
    if (!d["Dimensions"].is_array()) problems.push_back("Dimensions");
    for (const json& set : d["Dimensions"]) {
      if (!set.is_array() || set.size() > 30)
        problems.push_back("dimension set over 30");
      for (const json& key : set) {
        if (!key.is_string() || !root.contains(key.get<std::string>()) ||
            !root[key.get<std::string>()].is_string() ||
            root[key.get<std::string>()].get<std::string>().empty())
          problems.push_back("dimension without a value: " + key.dump());
      }
    }
    if (!d["Metrics"].is_array() || d["Metrics"].empty() ||
        d["Metrics"].size() > 100)
      problems.push_back("Metrics count");
    for (const json& m : d["Metrics"]) {
      const std::string name = m.value("Name", "");
      if (name.empty() || !root.contains(name) || !root[name].is_number())
        problems.push_back("metric without a value: " + name);
      if (!kUnits.count(m.value("Unit", "")))
        problems.push_back("unit " + m.dump());
    }
  }
  return problems;
}

json Parse(const std::string& line) { return json::parse(line); }

EmfOptions TestOptions() {
  EmfOptions o;
  o.gauge_interval_ms = 0;
  o.now_ms = [] { return int64_t{1714564800123}; };
  return o;
}

TEST(EmfMetricsTest, CounterLineHasTheEmfStructure) {
  Lines out;
  EmfMetrics m(PipelineMetricSpecs(), TestOptions(), out.Writer());
  m.Increment(kFilesDeliveredTotal, {"visa", "delivered"}, 3);
  std::vector<std::string> lines = out.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(EmfProblems(lines[0]), ::testing::IsEmpty());
  json root = Parse(lines[0]);
  EXPECT_EQ(root["_aws"]["Timestamp"], 1714564800123);
  const json& d = root["_aws"]["CloudWatchMetrics"][0];
  EXPECT_EQ(d["Namespace"], "cbpipe");
  EXPECT_EQ(d["Dimensions"], json::parse(R"([["destination","status"]])"));
  EXPECT_EQ(d["Metrics"],
            json::parse(R"([{"Name":"cbpipe_files_delivered_total",
                              "Unit":"Count"}])"));
  EXPECT_EQ(root["destination"], "visa");
  EXPECT_EQ(root["status"], "delivered");
  EXPECT_EQ(root["cbpipe_files_delivered_total"], 3);
  EXPECT_TRUE(root["cbpipe_files_delivered_total"].is_number_integer());
}

TEST(EmfMetricsTest, EveryKindAndUnitOfThePipelineMetrics) {
  Lines out;
  EmfOptions o = TestOptions();
  o.namespace_name = "cbpipe/test";
  EmfMetrics m(PipelineMetricSpecs(), o, out.Writer());
  m.Increment(kInputsTotal, {"accepted"});
  m.Increment(kRecordsReadTotal, {"mastercard"}, 120);
  m.Increment(kBytesGeneratedTotal, {"amex"}, 4096);
  m.Observe(kDeliveryLatencySeconds, {"visa"}, 0.42);
  m.Increment(kDeadLettersTotal, {});
  GaugeRegistration depth = m.WatchGauge(kQueueDepth, [] { return 7.0; });
  GaugeRegistration age =
      m.WatchGauge(kQueueOldestMessageAgeSeconds, [] { return 1.5; });
  m.FlushGauges();
  std::vector<std::string> lines = out.Take();
  ASSERT_EQ(lines.size(), 6u);
  for (const std::string& line : lines)
    EXPECT_THAT(EmfProblems(line), ::testing::IsEmpty()) << line;
  auto unit = [](const json& root) {
    return root["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"];
  };
  json read = Parse(lines[1]);
  EXPECT_EQ(read["network"], "mastercard");
  EXPECT_EQ(read["cbpipe_records_read_total"], 120);
  EXPECT_EQ(read["_aws"]["CloudWatchMetrics"][0]["Namespace"], "cbpipe/test");
  EXPECT_EQ(unit(Parse(lines[2])), "Bytes");
  json latency = Parse(lines[3]);
  EXPECT_EQ(unit(latency), "Seconds");
  EXPECT_DOUBLE_EQ(latency["cbpipe_delivery_latency_seconds"].get<double>(),
                   0.42);
  json dead = Parse(lines[4]);
  EXPECT_EQ(dead["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json::parse("[[]]"));
  EXPECT_EQ(dead["cbpipe_dead_letters_total"], 1);
  json gauges = Parse(lines[5]);
  EXPECT_EQ(gauges["_aws"]["CloudWatchMetrics"][0]["Metrics"].size(), 2u);
  EXPECT_EQ(gauges["cbpipe_queue_depth"], 7.0);
  EXPECT_EQ(gauges["cbpipe_queue_oldest_message_age_seconds"], 1.5);
}

TEST(EmfMetricsTest, EmptyLabelsAreNoneAndCardNumbersNeverReachALine) {
  Lines out;
  EmfMetrics m(PipelineMetricSpecs(), TestOptions(), out.Writer());
  m.Increment(kFilesDeliveredTotal, {"4111111111111111"});
  m.Increment(kRecordsRejectedTotal, {"card 4111 1111 1111 1111 bad"});
  std::vector<std::string> lines = out.Take();
  ASSERT_EQ(lines.size(), 2u);
  for (const std::string& line : lines) {
    EXPECT_THAT(EmfProblems(line), ::testing::IsEmpty());
    EXPECT_THAT(line, Not(HasSubstr("4111111111111111")));
    EXPECT_THAT(line, Not(HasSubstr("4111 1111 1111 1111")));
  }
  json first = Parse(lines[0]);
  EXPECT_EQ(first["status"], "none");
  EXPECT_THAT(first["destination"].get<std::string>(), HasSubstr("1111"));
}

TEST(EmfMetricsTest, NonFiniteValuesAreNotWrittenButCounted) {
  Lines out;
  EmfMetrics m({{"g", "G.", MetricKind::kGauge, {}, {}, MetricUnit::kNone}},
               TestOptions(), out.Writer());
  m.Set("g", {}, std::numeric_limits<double>::infinity());
  m.Set("g", {}, std::nan(""));
  EXPECT_TRUE(out.Take().empty());
  m.Set("g", {}, -2.5);
  std::vector<std::string> lines = out.Take();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(Parse(lines[0])["g"], -2.5);
  EXPECT_EQ(
      Parse(lines[0])["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
      "None");
}

TEST(EmfMetricsTest, AtMostThirtyDimensionsAndAHundredMetricsPerLine) {
  std::vector<MetricSpec> specs;
  std::vector<std::string> labels;
  for (int i = 0; i < 40; ++i) labels.push_back("l" + std::to_string(i));
  specs.push_back({"wide_total",
                   "W.",
                   MetricKind::kCounter,
                   labels,
                   {},
                   MetricUnit::kCount});
  for (int i = 0; i < 150; ++i) {
    specs.push_back({"cb" + std::to_string(i),
                     "C.",
                     MetricKind::kCallbackGauge,
                     {},
                     {},
                     MetricUnit::kCount});
  }
  Lines out;
  EmfMetrics m(specs, TestOptions(), out.Writer());
  m.Increment("wide_total", {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
                             "k", "l", "m", "n", "o", "p", "q", "r", "s", "t",
                             "u", "v", "w", "x", "y", "z", "0", "1", "2", "3",
                             "4", "5", "6", "7", "8", "9", "A", "B", "C", "D"});
  std::vector<GaugeRegistration> bound;
  for (int i = 0; i < 150; ++i) {
    bound.push_back(
        m.WatchGauge("cb" + std::to_string(i), [i] { return double(i); }));
  }
  m.FlushGauges();
  std::vector<std::string> lines = out.Take();
  ASSERT_EQ(lines.size(), 3u);
  for (const std::string& line : lines)
    EXPECT_THAT(EmfProblems(line), ::testing::IsEmpty());
  json wide = Parse(lines[0]);
  EXPECT_EQ(wide["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].size(), 30u);
  EXPECT_EQ(wide["l39"], "D");  // the rest are plain keys
  EXPECT_EQ(Parse(lines[1])["_aws"]["CloudWatchMetrics"][0]["Metrics"].size(),
            100u);
  json rest = Parse(lines[2]);
  EXPECT_EQ(rest["_aws"]["CloudWatchMetrics"][0]["Metrics"].size(), 50u);
  EXPECT_EQ(rest["cb149"], 149);
}

TEST(EmfMetricsTest, TheGaugeThreadWritesCallbackGaugesUntilDestroyed) {
  Lines out;
  EmfOptions o = TestOptions();
  o.gauge_interval_ms = 10;
  {
    EmfMetrics m(PipelineMetricSpecs(), o, out.Writer());
    GaugeRegistration depth = m.WatchGauge(kQueueDepth, [] { return 4.0; });
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (out.Take().size() < 1 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::vector<std::string> lines = out.Take();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(Parse(lines.back())["cbpipe_queue_depth"], 4.0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  out.Take();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(out.Take().empty());  // joined: nothing after destruction
}

TEST(EmfMetricsTest, AFailedWriteIsCountedNotRaised) {
  EmfMetrics m(PipelineMetricSpecs(), TestOptions(),
               [](std::string_view) { return false; });
  m.Increment(kInputsTotal, {"failed"});
  EXPECT_EQ(m.write_errors(), 1u);
  EXPECT_EQ(m.Collect()[0].value, 1);  // the total is kept all the same
}

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "emf_" + std::to_string(::getpid()) + "_" +
         name;
}

TEST(EmfMetricsTest, FileWriterAppendsWholeLinesFromManyThreads) {
  const std::string path = TempPath("append.log");
  std::remove(path.c_str());
  { std::ofstream(path) << "earlier line\n"; }
  {
    StatusOr<EmfWriter> w1 = EmfFileWriter(path);
    StatusOr<EmfWriter> w2 = EmfFileWriter(path);
    ASSERT_TRUE(w1.ok() && w2.ok());
    EmfMetrics a(PipelineMetricSpecs(), TestOptions(), *w1);
    EmfMetrics b(PipelineMetricSpecs(), TestOptions(), *w2);
    std::vector<std::thread> threads;
    for (EmfMetrics* m : {&a, &b, &a, &b}) {
      threads.emplace_back([m] {
        for (int i = 0; i < 200; ++i)
          m->Increment(kFilesGeneratedTotal, {"visa"});
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "earlier line");
  int count = 0;
  while (std::getline(in, line)) {
    ++count;
    EXPECT_THAT(EmfProblems(line + "\n"), ::testing::IsEmpty());
  }
  EXPECT_EQ(count, 800);
  std::remove(path.c_str());
}

TEST(EmfMetricsTest, AnOutputThatCannotBeOpenedNamesThePath) {
  StatusOr<EmfWriter> w = EmfOutputWriter("/nonexistent-dir/x/emf.log");
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(w.status().message(), HasSubstr("/nonexistent-dir/x/emf.log"));
  EXPECT_FALSE(EmfOutputWriter("").ok());
  EXPECT_TRUE(EmfOutputWriter("stdout").ok());
}

TEST(SelectMetricsTest, PrometheusByDefaultEmfOrBoth) {
  TelemetryOptions o;
  StatusOr<SelectedMetrics> prom = SelectMetrics(o, PipelineMetricSpecs());
  ASSERT_TRUE(prom.ok());
  ASSERT_NE(prom->prometheus, nullptr);
  EXPECT_EQ(prom->metrics.get(), prom->prometheus);

  const std::string path = TempPath("select.log");
  std::remove(path.c_str());
  o.metrics = {"emf"};
  o.emf.output = path;
  o.emf.gauge_interval_ms = 0;
  StatusOr<SelectedMetrics> emf = SelectMetrics(o, PipelineMetricSpecs());
  ASSERT_TRUE(emf.ok());
  EXPECT_EQ(emf->prometheus, nullptr);
  EXPECT_NE(dynamic_cast<EmfMetrics*>(emf->metrics.get()), nullptr);

  o.metrics = {"emf", "prometheus"};
  StatusOr<SelectedMetrics> both = SelectMetrics(o, PipelineMetricSpecs());
  ASSERT_TRUE(both.ok());
  ASSERT_NE(both->prometheus, nullptr);
  both->metrics->Increment(kInputsTotal, {"accepted"}, 2);
  EXPECT_THAT(both->prometheus->Render(),
              HasSubstr("cbpipe_inputs_total{outcome=\"accepted\"} 2\n"));
  std::ifstream in(path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(Parse(line)["cbpipe_inputs_total"], 2);
  std::remove(path.c_str());

  for (auto bad :
       std::vector<std::vector<std::string>>{{}, {"statsd"}, {"emf", "emf"}}) {
    o.metrics = bad;
    EXPECT_EQ(SelectMetrics(o, PipelineMetricSpecs()).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(FanOutMetricsTest, AGaugeRegistrationEndsEveryBinding) {
  std::vector<std::unique_ptr<Metrics>> all;
  all.push_back(std::make_unique<InMemoryMetrics>(PipelineMetricSpecs()));
  all.push_back(std::make_unique<InMemoryMetrics>(PipelineMetricSpecs()));
  FanOutMetrics fan(std::move(all));
  auto* second = static_cast<InMemoryMetrics*>(fan.at(1));
  GaugeRegistration r = fan.WatchGauge(kQueueDepth, [] { return 9.0; });
  EXPECT_EQ(second->Value(kQueueDepth), 9);
  r.Reset();
  EXPECT_EQ(second->Value(kQueueDepth), 0);
  EXPECT_FALSE(fan.WatchGauge("nope", [] { return 1.0; }).bound());
}

}  // namespace
}  // namespace cbpipe
