// A run of a few steps through the engine, traced to a UDP listener standing
// in for the X-Ray daemon: the segment, one subsegment per step call (Map
// items included), their links, times and error flags.
#include "workflow/xray_steps.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "common/env.h"
#include "runs/in_memory_run_store.h"
#include "telemetry/xray_test_daemon.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDefinition[] = R"({"StartAt": "parse", "States": {
  "parse": {"Type": "Task", "Next": "batches"},
  "batches": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
    "ItemSelector": {"run_id.$": "$.run_id", "id.$": "$$.Map.Item.Value"},
    "ItemProcessor": {"StartAt": "deliver", "States": {
      "deliver": {"Type": "Task", "End": true}}},
    "ResultPath": "$.results", "Next": "report"},
  "report": {"Type": "Task", "End": true}}})";

constexpr char kTrace[] = "6a1b2c3d4e5f60718293a4b5c6d7e8f9";

class XRayStepsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<WorkflowDefinition> def = WorkflowDefinition::Parse(kDefinition);
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    def_ = std::move(*def);
  }

  // Runs "run-1" with steps that echo, except `failing` which fails.
  RunOutcome Run(XRayTracer* tracer, const std::string& failing = "") {
    RunRecord run;
    run.run_id = "run-1";
    run.trace_id = kTrace;
    run.input_key = "inputs/run-1";
    EXPECT_TRUE(store_.CreateIfAbsent(run).ok());
    StepRunner steps = [failing](std::string_view name,
                                 const json& in) -> StatusOr<json> {
      if (name == failing) {
        return Status(StatusCode::kUnavailable,
                      "refused for card 4111111111111111");
      }
      return in;
    };
    WorkflowEngine engine(&def_, &store_, &env_,
                          XRayTracedSteps(std::move(steps), tracer));
    XRaySpan segment = BeginRunSegment(tracer, run.run_id, run.trace_id);
    RunOutcome out = engine.Resume(
        run.run_id, json{{"run_id", "run-1"}, {"items", {1, 2, 3}}}, nullptr);
    EndRunSegment(&segment, out);
    return out;
  }

  std::unique_ptr<XRayTracer> Tracer(bool enabled) {
    XRayOptions o;
    o.enabled = enabled;
    o.daemon_address = daemon_.address();
    o.service_name = "cbpipe-test";
    StatusOr<std::unique_ptr<XRayTracer>> t = XRayTracer::Create(o);
    EXPECT_TRUE(t.ok());
    return std::move(*t);
  }

  XRayTestDaemon daemon_;
  FakeEnv env_;
  InMemoryRunStore store_{&env_};
  WorkflowDefinition def_;
};

TEST_F(XRayStepsTest, ASegmentPerRunASubsegmentPerStepCall) {
  std::unique_ptr<XRayTracer> tracer = Tracer(true);
  RunOutcome out = Run(tracer.get());
  ASSERT_EQ(out.state, "succeeded") << out.error;
  std::vector<json> docs = daemon_.Documents();
  // In progress, parse, 3 × deliver, report, the complete segment.
  ASSERT_EQ(docs.size(), 7u);
  const json& begin = docs.front();
  const json& end = docs.back();
  EXPECT_EQ(begin["in_progress"], true);
  EXPECT_EQ(begin["name"], "cbpipe-test");
  EXPECT_EQ(end["id"], begin["id"]);
  EXPECT_FALSE(end.contains("in_progress"));
  EXPECT_EQ(end["annotations"]["run_id"], "run-1");
  EXPECT_EQ(end["annotations"]["outcome"], "succeeded");
  EXPECT_FALSE(end.contains("fault"));
  std::map<std::string, int> names;
  std::set<std::string> ids;
  for (const json& d : docs) {
    // The X-Ray form of the run's W3C trace id.
    EXPECT_EQ(d["trace_id"], "1-6a1b2c3d-4e5f60718293a4b5c6d7e8f9");
    ids.insert(d["id"].get<std::string>());
  }
  EXPECT_EQ(ids.size(), 6u);  // the segment's twice
  for (size_t i = 1; i + 1 < docs.size(); ++i) {
    const json& d = docs[i];
    ++names[d["name"].get<std::string>()];
    EXPECT_EQ(d["type"], "subsegment");
    EXPECT_EQ(d["parent_id"], begin["id"]);
    EXPECT_LE(begin["start_time"].get<double>(), d["start_time"].get<double>());
    EXPECT_LE(d["start_time"].get<double>(), d["end_time"].get<double>());
    EXPECT_LE(d["end_time"].get<double>(), end["end_time"].get<double>());
    EXPECT_FALSE(d.contains("error") || d.contains("fault"));
  }
  EXPECT_EQ(names, (std::map<std::string, int>{
                       {"deliver", 3}, {"parse", 1}, {"report", 1}}));
  // parse ends before the first deliver starts, report after the last.
  EXPECT_EQ(docs[1]["name"], "parse");
  EXPECT_EQ(docs[5]["name"], "report");
  for (int i = 2; i <= 4; ++i) {
    EXPECT_LE(docs[1]["end_time"].get<double>(),
              docs[i]["start_time"].get<double>());
    EXPECT_LE(docs[i]["end_time"].get<double>(),
              docs[5]["start_time"].get<double>());
  }
}

TEST_F(XRayStepsTest, AFailedStepAndRunAreFlaggedWithTheirCode) {
  std::unique_ptr<XRayTracer> tracer = Tracer(true);
  RunOutcome out = Run(tracer.get(), "deliver");
  ASSERT_EQ(out.state, "failed");
  std::vector<json> docs = daemon_.Documents();
  ASSERT_GE(docs.size(), 4u);
  int failed_steps = 0;
  for (const json& d : docs) {
    if (d.value("name", "") != "deliver") continue;
    ++failed_steps;
    EXPECT_EQ(d["fault"], true);
    EXPECT_EQ(d["cause"]["exceptions"][0]["type"], "UNAVAILABLE");
    EXPECT_THAT(d["cause"]["exceptions"][0]["message"].get<std::string>(),
                HasSubstr("refused for card"));
  }
  EXPECT_GE(failed_steps, 1);
  const json& end = docs.back();
  EXPECT_FALSE(end.contains("type"));
  EXPECT_EQ(end["annotations"]["outcome"], "failed");
  EXPECT_EQ(end["fault"], true);
  EXPECT_FALSE(
      end["cause"]["exceptions"][0]["type"].get<std::string>().empty());
}

TEST_F(XRayStepsTest, DisabledOrNullSendsNothingAndRunsTheSame) {
  std::unique_ptr<XRayTracer> off = Tracer(false);
  EXPECT_EQ(Run(off.get()).state, "succeeded");
  EXPECT_TRUE(daemon_.Documents().empty());
  EXPECT_EQ(Run(nullptr).state, "succeeded");
  EXPECT_TRUE(daemon_.Documents().empty());
}

TEST_F(XRayStepsTest, ARunWithoutAValidTraceIdIsNotTraced) {
  std::unique_ptr<XRayTracer> tracer = Tracer(true);
  XRaySpan segment = BeginRunSegment(tracer.get(), "run-2", "not-hex");
  EXPECT_FALSE(segment.active());
  EXPECT_FALSE(tracer->BeginSubsegmentOf("run-2", "parse").active());
  EXPECT_TRUE(daemon_.Documents().empty());
}

// A step's AWS calls become subsegments of the step (the current span).
TEST_F(XRayStepsTest, AwsCallsInsideAStepAreItsChildren) {
  std::unique_ptr<XRayTracer> tracer = Tracer(true);
  StepRunner steps = [](std::string_view, const json& in) -> StatusOr<json> {
    XRaySpan call = XRayBeginAwsCall("S3", "GetObject", "eu-west-1");
    call.SetHttp("GET", "https://bucket.s3.eu-west-1.amazonaws.com/k", 200);
    return in;
  };
  StepRunner traced = XRayTracedSteps(std::move(steps), tracer.get());
  {
    XRaySpan segment = BeginRunSegment(tracer.get(), "run-3", kTrace);
    ASSERT_TRUE(traced("parse", json{{"run_id", "run-3"}}).ok());
  }
  EXPECT_EQ(CurrentXRaySpan(), nullptr);
  std::vector<json> docs = daemon_.Documents();
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[1]["name"], "S3");
  EXPECT_EQ(docs[1]["namespace"], "aws");
  EXPECT_EQ(docs[1]["parent_id"], docs[2]["id"]);
  EXPECT_EQ(docs[2]["name"], "parse");
  EXPECT_EQ(docs[2]["parent_id"], docs[0]["id"]);
}

}  // namespace
}  // namespace cbpipe
