#include "workflow/asl_export.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "common/env.h"
#include "runs/in_memory_run_store.h"
#include "workflow/definition.h"
#include "workflow/engine.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json CbpipeAsl() {
  StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
  EXPECT_TRUE(def.ok()) << def.status().ToString();
  StatusOr<json> asl = ExportAsl(*def, AslExportOptions{});
  EXPECT_TRUE(asl.ok()) << asl.status().ToString();
  return asl.ok() ? *asl : json();
}

StatusOr<json> ExportText(const char* text, AslExportOptions options = {
                                                "", ""}) {
  CBPIPE_ASSIGN_OR_RETURN(WorkflowDefinition def,
                          WorkflowDefinition::Parse(text));
  return ExportAsl(def, options);
}

// Every state of an ASL document, Map processors included, by name.
void CollectStates(const json& states, std::map<std::string, json>* out) {
  for (auto it = states.begin(); it != states.end(); ++it) {
    (*out)[it.key()] = *it;
    if (it->contains("ItemProcessor")) {
      CollectStates((*it)["ItemProcessor"]["States"], out);
    }
  }
}

// The test runs with the source tree as its working directory.
TEST(AslExportTest, CommittedDefinitionIsWhatExportAslWrites) {
  const std::string committed = ReadFile("deploy/aws/cbpipe.asl.json");
  ASSERT_FALSE(committed.empty()) << "deploy/aws/cbpipe.asl.json missing";
  const std::string fix =
      "; regenerate it: build/src/app/cbpipe export-asl --out "
      "deploy/aws/cbpipe.asl.json";
  EXPECT_EQ(AslText(CbpipeAsl()), committed) << "stale" << fix;

  const char* bin = std::getenv("CBPIPE_BIN");
  ASSERT_NE(bin, nullptr) << "CBPIPE_BIN is set by CTest";
  const fs::path out =
      fs::path(::testing::TempDir()) / ("asl_" + std::to_string(::getpid()));
  const std::string cmd =
      std::string(bin) + " export-asl --out " + out.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(ReadFile(out), committed) << "cbpipe export-asl differs" << fix;
  fs::remove(out);
}

TEST(AslExportTest, ExportIsDeterministic) {
  EXPECT_EQ(AslText(CbpipeAsl()), AslText(CbpipeAsl()));
}

TEST(AslExportTest, ErrorNamesAreTheLambdaErrorTypes) {
  EXPECT_EQ(AslErrorName(StatusCode::kUnavailable), "Cbpipe.Transient");
  EXPECT_EQ(AslErrorName(StatusCode::kDeadlineExceeded), "Cbpipe.Transient");
  EXPECT_EQ(AslErrorName(StatusCode::kAborted), "Cbpipe.Transient");
  EXPECT_EQ(AslErrorName(StatusCode::kInvalidArgument), "Cbpipe.InvalidInput");
  for (StatusCode c :
       {StatusCode::kNotFound, StatusCode::kAlreadyExists,
        StatusCode::kFailedPrecondition, StatusCode::kPermissionDenied,
        StatusCode::kUnauthenticated, StatusCode::kResourceExhausted,
        StatusCode::kDataLoss, StatusCode::kInternal}) {
    EXPECT_EQ(AslErrorName(c), "Cbpipe.Permanent") << StatusCodeName(c);
  }
  EXPECT_EQ(AslErrorName(StatusCode::kOk), "");
}

TEST(AslExportTest, FunctionArnVariables) {
  EXPECT_EQ(AslFunctionArnVariable("scan"), "ScanFunctionArn");
  EXPECT_EQ(AslFunctionArnVariable("reject_input"), "RejectInputFunctionArn");
  EXPECT_EQ(AslFunctionArnVariable("record_failure"),
            "RecordFailureFunctionArn");
}

TEST(AslExportTest, CbpipeTasksCallTheirFunctionsAndDropTheExtension) {
  std::map<std::string, json> states;
  CollectStates(CbpipeAsl()["States"], &states);
  for (const char* task : {"scan", "verify", "deliver", "notify", "settle",
                           "reject_input", "record_failure"}) {
    ASSERT_TRUE(states.count(task)) << task;
    EXPECT_EQ(states[task]["Resource"],
              "${" + AslFunctionArnVariable(task) + "}");
  }
  for (const auto& [name, s] : states) {
    EXPECT_FALSE(s.contains("cbpipe")) << name;
    EXPECT_FALSE(s.contains("ToleratedFailurePercentage")) << name;
  }
  // Catches keep their routes, with the classes the Lambdas report.
  const json& scan = states["scan"];
  EXPECT_EQ(scan["Catch"][0]["ErrorEquals"], json({"Cbpipe.InvalidInput"}));
  EXPECT_EQ(scan["Catch"][0]["Next"], "reject_input");
  EXPECT_EQ(scan["Catch"][1]["ErrorEquals"], json({"States.ALL"}));
  EXPECT_EQ(scan["Catch"][1]["Next"], "record_failure");
  EXPECT_EQ(scan["Retry"][0]["ErrorEquals"][0], "Cbpipe.Transient");
  // Map items that fail are tolerated by a Catch to a Pass state.
  EXPECT_EQ(states["verify"]["Catch"].back()["Next"], "batches_item_failed");
  EXPECT_EQ(states["deliver"]["Catch"].back()["Next"],
            "destinations_item_failed");
  EXPECT_EQ(states["batches_item_failed"]["Type"], "Pass");
  EXPECT_EQ(states["batches"]["ItemProcessor"]["ProcessorConfig"]["Mode"],
            "INLINE");
}

TEST(AslExportTest, FailurePathSendsTheRunToTheQueueAndAlerts) {
  const json asl = CbpipeAsl();
  const json& states = asl["States"];
  EXPECT_EQ(states["record_failure"]["Next"], "dead_letter");
  EXPECT_EQ(states["record_failure"]["Catch"][0]["Next"], "dead_letter");
  const json& dl = states["dead_letter"];
  EXPECT_EQ(dl["Resource"], "arn:aws:states:::sqs:sendMessage");
  EXPECT_EQ(dl["Parameters"]["QueueUrl"], "${DeadLetterQueueUrl}");
  EXPECT_EQ(dl["Parameters"]["MessageBody"]["input.$"], "$$.Execution.Input");
  EXPECT_EQ(dl["Next"], "alert");
  EXPECT_EQ(states["alert"]["Resource"], "arn:aws:states:::sns:publish");
  EXPECT_EQ(states["alert"]["Parameters"]["TopicArn"], "${AlertTopicArn}");
  EXPECT_EQ(states["alert"]["Next"], "failed");
  EXPECT_EQ(states["failed"]["Type"], "Fail");
  EXPECT_EQ(states["reject_input"]["Next"], "alert_rejected");
  EXPECT_FALSE(states["reject_input"].contains("End"));
  EXPECT_EQ(states["alert_rejected"]["Resource"],
            "arn:aws:states:::sns:publish");
  EXPECT_EQ(states["alert_rejected"]["End"], true);
}

TEST(AslExportTest, RetryFieldsAreWrittenOutAndErrorsMapped) {
  StatusOr<json> asl = ExportText(R"({"StartAt": "a", "States": {
    "a": {"Type": "Task", "Next": "m",
          "Retry": [{"ErrorEquals": ["ABORTED", "UNAVAILABLE",
                                     "DEADLINE_EXCEEDED"]},
                    {"ErrorEquals": ["INVALID_ARGUMENT"], "IntervalSeconds": 3,
                     "BackoffRate": 1.5, "MaxAttempts": 0,
                     "MaxDelaySeconds": 7, "JitterStrategy": "FULL"}]},
    "m": {"Type": "Map", "ItemsPath": "$.xs", "End": true,
          "Catch": [{"ErrorEquals": ["UNAVAILABLE", "DEADLINE_EXCEEDED",
                                     "ABORTED"], "Next": "z"}],
          "ItemProcessor": {"StartAt": "b",
                            "States": {"b": {"Type": "Task", "End": true}}}},
    "z": {"Type": "Succeed"}
  }})");
  ASSERT_TRUE(asl.ok()) << asl.status().ToString();
  const json& a = (*asl)["States"]["a"];
  EXPECT_EQ(a["Retry"][0],
            json::parse(R"({"ErrorEquals": ["Cbpipe.Transient",
                "Lambda.ServiceException", "Lambda.AWSLambdaException",
                "Lambda.SdkClientException", "Lambda.TooManyRequestsException"],
                "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 3,
                "JitterStrategy": "NONE"})"));
  EXPECT_EQ(a["Retry"][1],
            json::parse(R"({"ErrorEquals": ["Cbpipe.InvalidInput"],
                "IntervalSeconds": 3, "BackoffRate": 1.5, "MaxAttempts": 0,
                "MaxDelaySeconds": 7, "JitterStrategy": "FULL"})"));
  // The Lambda service's errors come from Tasks only.
  EXPECT_EQ((*asl)["States"]["m"]["Catch"][0]["ErrorEquals"],
            json({"Cbpipe.Transient"}));
  EXPECT_EQ((*asl)["States"]["m"]["Catch"][0]["ResultPath"], "$");
  // Without the failure-path options nothing is added.
  EXPECT_EQ((*asl)["States"].size(), 3u);
}

TEST(AslExportTest, RefusesWhatStepFunctionsCannotSay) {
  struct Case {
    const char* states;
    const char* error;
  };
  const Case cases[] = {
      {R"("a": {"Type": "Task", "End": true,
                "Retry": [{"ErrorEquals": ["UNAVAILABLE"]}]})",
       "States.a.Retry[0].ErrorEquals: names UNAVAILABLE but not "
       "DEADLINE_EXCEEDED, ABORTED"},
      {R"("a": {"Type": "Task", "End": true,
                "Catch": [{"ErrorEquals": ["DATA_LOSS"], "Next": "b"}]},
          "b": {"Type": "Succeed"})",
       "States.a.Catch[0].ErrorEquals: names DATA_LOSS but not NOT_FOUND"},
      {R"("a": {"Type": "Task", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"],
                           "IntervalSeconds": 0.5}]})",
       "States.a.Retry[0].IntervalSeconds: Step Functions takes whole "
       "seconds"},
      {R"("a": {"Type": "Task", "End": true,
                "Retry": [{"ErrorEquals": ["States.ALL"],
                           "MaxDelaySeconds": 2.5}]})",
       "States.a.Retry[0].MaxDelaySeconds: Step Functions takes whole "
       "seconds"},
      {R"("m": {"Type": "Map", "ItemsPath": "$.xs", "End": true,
                "ToleratedFailurePercentage": 50,
                "ItemProcessor": {"StartAt": "b", "States": {
                  "b": {"Type": "Task", "End": true}}}})",
       "States.m.ToleratedFailurePercentage: an inline Map has none"},
      {R"("m": {"Type": "Map", "ItemsPath": "$.xs", "End": true,
                "ToleratedFailurePercentage": 100,
                "ItemProcessor": {"StartAt": "b", "States": {
                  "b": {"Type": "Task", "Next": "m_item_failed"},
                  "m_item_failed": {"Type": "Succeed"}}}})",
       "States.m_item_failed: two states of that name"},
  };
  for (const Case& c : cases) {
    // Each case's first state (its name is the one letter after the quote).
    const std::string text = std::string(R"({"StartAt": ")") + c.states[1] +
                             R"(", "States": {)" + c.states + "}}";
    StatusOr<json> asl = ExportText(text.c_str());
    ASSERT_FALSE(asl.ok()) << c.states;
    EXPECT_NE(asl.status().message().find(c.error), std::string::npos)
        << asl.status().ToString();
  }
}

TEST(AslExportTest, FailurePathNeedsItsStates) {
  const char* text = R"({"StartAt": "a", "States": {
      "a": {"Type": "Task", "End": true}}})";
  StatusOr<json> asl = ExportText(text, {"record_failure", ""});
  ASSERT_FALSE(asl.ok());
  EXPECT_EQ(asl.status().code(), StatusCode::kFailedPrecondition);
  asl = ExportText(text, {"", "a"});
  ASSERT_TRUE(asl.ok()) << asl.status().ToString();
  EXPECT_EQ((*asl)["States"]["a"]["Next"], "alert_rejected");

  asl = ExportText(R"({"StartAt": "a", "States": {
      "a": {"Type": "Task", "Next": "alert"},
      "alert": {"Type": "Succeed"}}})",
                   {"a", ""});
  ASSERT_FALSE(asl.ok());
  EXPECT_NE(asl.status().message().find("States.alert"), std::string::npos);
}

// The waits Step Functions makes before retries 1..MaxAttempts of one
// exported retrier, read from its fields alone: IntervalSeconds x
// BackoffRate^(n-1), capped by MaxDelaySeconds (the upper bound of a FULL
// jitter draw).
std::vector<double> AslRetryWaits(const json& retrier) {
  std::vector<double> waits;
  const double interval = retrier["IntervalSeconds"].get<double>();
  const double rate = retrier["BackoffRate"].get<double>();
  for (int n = 1; n <= retrier["MaxAttempts"].get<int>(); ++n) {
    double w = interval * std::pow(rate, n - 1);
    if (retrier.contains("MaxDelaySeconds"))
      w = std::min(w, retrier["MaxDelaySeconds"].get<double>());
    waits.push_back(w);
  }
  return waits;
}

// The definition's own text of state `name` (Map processors included).
const json* RawState(const json& states, const std::string& name) {
  for (auto it = states.begin(); it != states.end(); ++it) {
    if (it.key() == name) return &*it;
    if (it->contains("ItemProcessor")) {
      const json* s = RawState((*it)["ItemProcessor"]["States"], name);
      if (s) return s;
    }
  }
  return nullptr;
}

// For every Task of cbpipe's workflow with Retry rules, and every error
// its rules name: the waits the embedded engine makes (run on the state's
// own rules, the step failing every time) equal those the exported ASL
// Retry fields define, and the exported rule matches the errorType the
// Lambda reports for that error.
TEST(AslExportTest, EngineRetryDelaysEqualTheAslRetryFields) {
  StatusOr<WorkflowDefinition> cbpipe_def = CbpipeWorkflowDefinition();
  ASSERT_TRUE(cbpipe_def.ok());
  std::map<std::string, json> exported;
  CollectStates(CbpipeAsl()["States"], &exported);
  int checked = 0;
  for (const auto& [name, asl_state] : exported) {
    if (!asl_state.contains("Retry") ||
        asl_state["Resource"].get<std::string>().rfind("${", 0) != 0)
      continue;
    const json* raw = RawState(cbpipe_def->document()["States"], name);
    ASSERT_NE(raw, nullptr) << name;
    json one = {{"Type", "Task"}, {"Retry", (*raw)["Retry"]}, {"End", true}};
    StatusOr<WorkflowDefinition> def = WorkflowDefinition::FromJson(
        {{"StartAt", name}, {"States", {{name, one}}}});
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    for (size_t k = 0; k < (*raw)["Retry"].size(); ++k) {
      const json& retrier = asl_state["Retry"][k];
      const std::vector<double> bounds = AslRetryWaits(retrier);
      const bool full = retrier["JitterStrategy"] == "FULL";
      for (const json& error : (*raw)["Retry"][k]["ErrorEquals"]) {
        const StatusCode code = StatusCodeFromName(error.get<std::string>());
        SCOPED_TRACE(name + " " + error.get<std::string>());
        bool matched = false;
        for (const json& e : retrier["ErrorEquals"])
          matched |= e == AslErrorName(code);
        EXPECT_TRUE(matched) << retrier.dump();

        FakeEnv env;
        std::vector<double> draws;
        for (size_t i = 0; i < bounds.size(); ++i)
          draws.push_back((i % 2) ? 0.999 : 0.25 + 0.1 * i);
        env.SetRandom(draws);
        InMemoryRunStore store(&env);
        RunRecord run;
        run.run_id = "r";
        ASSERT_TRUE(store.CreateIfAbsent(run).ok());
        int calls = 0;
        WorkflowEngine engine(
            &*def, &store, &env,
            [&](std::string_view, const json&) -> StatusOr<json> {
              ++calls;
              return Status(code, "fails every time");
            });
        RunOutcome out = engine.Resume("r", json::object(), nullptr);
        EXPECT_EQ(out.state, "failed");
        EXPECT_EQ(calls, retrier["MaxAttempts"].get<int>() + 1);
        const std::vector<double> sleeps = env.sleeps();
        ASSERT_EQ(sleeps.size(), bounds.size());
        for (size_t i = 0; i < bounds.size(); ++i) {
          EXPECT_NEAR(sleeps[i], full ? bounds[i] * draws[i] : bounds[i],
                      1e-9)
              << "retry " << i + 1;
          EXPECT_GE(sleeps[i], 0);
          EXPECT_LE(sleeps[i], bounds[i]);
        }
        ++checked;
      }
    }
  }
  // scan and deliver, three transient errors each.
  EXPECT_EQ(checked, 6);
}

}  // namespace
}  // namespace cbpipe
