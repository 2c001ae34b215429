#include "workflow/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "runs/sqlite_run_store.h"
#include "telemetry/in_memory_metrics.h"
#include "workflow/service.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using StepFn = std::function<StatusOr<json>(const json& input)>;

class WorkflowEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::path(::testing::TempDir()) /
             ("wf_engine_" + std::to_string(::getpid()) + ".db"))
                .string();
    for (const char* s : {"", "-wal", "-shm"}) fs::remove(path_ + s);
    auto store = SqliteRunStore::Open(path_, &env_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    for (const char* s : {"", "-wal", "-shm"}) fs::remove(path_ + s);
  }

  void Define(const char* text) {
    StatusOr<WorkflowDefinition> def = WorkflowDefinition::Parse(text);
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    def_ = std::move(*def);
  }

  // A step that counts its calls (per step and per item "id").
  void Step(const std::string& name, StepFn fn) {
    steps_[name] = std::move(fn);
  }

  int Calls(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[key];
  }

  RunOutcome Resume(const std::string& run_id,
                    const json& input = json{{"x", 1}}) {
    RunRecord run;
    run.run_id = run_id;
    run.input_key = "inputs/" + run_id;
    EXPECT_TRUE(store_->CreateIfAbsent(run).ok());
    WorkflowEngine engine(
        &def_, store_.get(), &env_,
        [this](std::string_view name, const json& in) -> StatusOr<json> {
          {
            std::lock_guard<std::mutex> lock(mu_);
            ++calls_[std::string(name)];
            if (in.is_object() && in.contains("id"))
              ++calls_[std::string(name) + "#" + in["id"].dump()];
          }
          auto it = steps_.find(std::string(name));
          if (it == steps_.end()) return in;  // echo
          return it->second(in);
        },
        options_);
    return engine.Resume(run_id, input, &stop_);
  }

  RunRecord Get(const std::string& run_id) {
    StatusOr<RunRecord> r = store_->Get(run_id);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : RunRecord{};
  }

  std::string StepState(const std::string& run_id, const std::string& name) {
    for (const StepRecord& s : Get(run_id).steps) {
      if (s.name == name) return s.state;
    }
    return "";
  }

  std::string path_;
  FakeEnv env_;
  std::unique_ptr<RunStore> store_;
  WorkflowDefinition def_;
  EngineOptions options_;
  std::map<std::string, StepFn> steps_;
  std::mutex mu_;
  std::map<std::string, int> calls_;
  std::atomic<bool> stop_{false};
};

constexpr char kRetrying[] = R"({
  "StartAt": "a",
  "States": {"a": {"Type": "Task", "End": true, "ResultPath": "$.a",
    "Retry": [{"ErrorEquals": ["UNAVAILABLE"], "IntervalSeconds": 2,
               "BackoffRate": 3, "MaxAttempts": 3, "MaxDelaySeconds": 10,
               "JitterStrategy": "NONE"}]}}})";

TEST_F(WorkflowEngineTest, RetriesWithBackoffCappedByMaxDelay) {
  Define(kRetrying);
  int failures = 3;
  Step("a", [&](const json&) -> StatusOr<json> {
    if (failures-- > 0) return UnavailableError("connection refused");
    return json{{"ok", true}};
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{2, 6, 10}));
  EXPECT_EQ(out.output, json::parse(R"({"x":1,"a":{"ok":true}})"));
  EXPECT_EQ(Get("r1").state, "succeeded");
}

TEST_F(WorkflowEngineTest, RetriesAreToldToTheObserverNotFirstAttempts) {
  Define(kRetrying);
  std::vector<std::string> told;
  options_.on_retry = [&](const TaskRetry& r) {
    told.push_back(std::string(r.state) + " " + std::to_string(r.attempt) +
                   " " + std::string(r.error) + " x=" + r.input["x"].dump());
  };
  int failures = 2;
  Step("a", [&](const json&) -> StatusOr<json> {
    if (failures-- > 0) return UnavailableError("refused");
    return json::object();
  });
  ASSERT_EQ(Resume("r1").state, "succeeded");
  EXPECT_EQ(told, (std::vector<std::string>{"a 2 UNAVAILABLE: refused x=1",
                                            "a 3 UNAVAILABLE: refused x=1"}));
  // A redrive's first attempt is not a retry; an observer that throws
  // does not change the run.
  told.clear();
  options_.on_retry = [&](const TaskRetry&) { throw std::runtime_error("x"); };
  failures = 100;
  ASSERT_EQ(Resume("r2").state, "failed");
  EXPECT_EQ(Calls("a"), 3 + 4);
  failures = 0;
  options_.on_retry = [&](const TaskRetry& r) {
    told.push_back(std::string(r.state));
  };
  EXPECT_EQ(Resume("r2").state, "succeeded");
  EXPECT_TRUE(told.empty());
}

TEST_F(WorkflowEngineTest, AWaitingRetryIsCheckpointedForOperatorsWhenAsked) {
  Define(kRetrying);
  options_.checkpoint_retry_waits = true;
  std::vector<StepRecord> seen;  // the Task's record as each attempt starts
  int failures = 2;
  Step("a", [&](const json&) -> StatusOr<json> {
    for (const StepRecord& r : Get("r1").steps)
      if (r.name == "a") seen.push_back(r);
    if (failures-- > 0) return UnavailableError("refused");
    return json::object();
  });
  ASSERT_EQ(Resume("r1", json{{"x", 1}, {"destination", "visa"}}).state,
            "succeeded");
  ASSERT_EQ(seen.size(), 2u);  // none before the first attempt
  EXPECT_EQ(seen[0].state, "retrying");
  EXPECT_EQ(seen[0].attempts, 1);
  EXPECT_EQ(seen[0].error, "UNAVAILABLE: refused");
  const json out = json::parse(seen[0].output_json);
  EXPECT_EQ(out["retry_at_ms"], seen[0].finished_ms + 2000);  // IntervalSeconds
  EXPECT_EQ(out["input"], json({{"destination", "visa"}}));  // strings only
  EXPECT_EQ(seen[1].attempts, 2);
  EXPECT_EQ(json::parse(seen[1].output_json)["retry_at_ms"],
            seen[1].finished_ms + 6000);
  // The final checkpoint replaces it.
  EXPECT_EQ(StepState("r1", "a"), "succeeded");

  // Off (the default): nothing is saved between attempts.
  options_.checkpoint_retry_waits = false;
  seen.clear();
  failures = 1;
  Step("a", [&](const json&) -> StatusOr<json> {
    for (const StepRecord& r : Get("r2").steps)
      if (r.name == "a") seen.push_back(r);
    if (failures-- > 0) return UnavailableError("refused");
    return json::object();
  });
  ASSERT_EQ(Resume("r2").state, "succeeded");
  EXPECT_TRUE(seen.empty());
}

TEST_F(WorkflowEngineTest, FullJitterDrawsEachWaitBelowItsBackoff) {
  std::string text = kRetrying;
  text.replace(text.find("\"NONE\""), 6, "\"FULL\"");
  Define(text.c_str());
  env_.SetRandom({0.25, 0.5, 0.999});
  Step("a",
       [&](const json&) -> StatusOr<json> { return UnavailableError("down"); });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error, "UNAVAILABLE: down");
  const std::vector<double> nominal = {2, 6, 10};
  std::vector<double> sleeps = env_.sleeps();
  ASSERT_EQ(sleeps.size(), 3u);  // MaxAttempts 3: four calls
  EXPECT_EQ(Calls("a"), 4);
  EXPECT_DOUBLE_EQ(sleeps[0], 0.5);
  EXPECT_DOUBLE_EQ(sleeps[1], 3);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_GE(sleeps[i], 0);
    EXPECT_LE(sleeps[i], nominal[i]);
  }
}

TEST_F(WorkflowEngineTest, OnlyMatchingErrorsAreRetried) {
  Define(kRetrying);
  Step("a", [&](const json&) -> StatusOr<json> {
    return InvalidArgumentError("bad row");
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(Calls("a"), 1);
  EXPECT_TRUE(env_.sleeps().empty());
  EXPECT_EQ(out.redrive_from, "a");
  RunRecord run = Get("r1");
  EXPECT_EQ(run.state, "failed");
  EXPECT_EQ(run.current_step, "a");
  EXPECT_EQ(run.error, "INVALID_ARGUMENT: bad row");
}

TEST_F(WorkflowEngineTest, StopDuringARetryWaitInterrupts) {
  Define(kRetrying);
  Step("a", [&](const json&) -> StatusOr<json> {
    stop_ = true;  // a shutdown arrives while the step fails
    return UnavailableError("down");
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "interrupted");
  EXPECT_EQ(Calls("a"), 1);
  EXPECT_EQ(Get("r1").state, "running");
  stop_ = false;
  Step("a", [](const json&) -> StatusOr<json> { return json::object(); });
  EXPECT_EQ(Resume("r1").state, "succeeded");
}

constexpr char kCatching[] = R"({
  "StartAt": "a",
  "States": {
    "a": {"Type": "Task", "Next": "b",
          "Catch": [{"ErrorEquals": ["INVALID_ARGUMENT"], "Next": "reject",
                     "ResultPath": "$.error"},
                    {"ErrorEquals": ["States.ALL"], "Next": "record",
                     "ResultPath": "$.error"}]},
    "b": {"Type": "Task", "End": true},
    "reject": {"Type": "Task", "End": true,
               "cbpipe": {"end_state": "rejected"}},
    "record": {"Type": "Task", "ResultPath": null, "Next": "failed"},
    "failed": {"Type": "Fail"}}})";

TEST_F(WorkflowEngineTest, CatchRoutesByErrorName) {
  Define(kCatching);
  json seen;
  Step("a", [](const json&) -> StatusOr<json> {
    return InvalidArgumentError("not a CSV");
  });
  Step("reject", [&](const json& in) -> StatusOr<json> {
    seen = in;
    return json{{"quarantined", true}};
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "rejected");
  EXPECT_EQ(out.error, "INVALID_ARGUMENT: not a CSV");
  EXPECT_EQ(seen, json::parse(R"({"x":1,"error":{"Error":"INVALID_ARGUMENT",
                                  "Cause":"not a CSV"}})"));
  EXPECT_EQ(Calls("b"), 0);
  EXPECT_EQ(Calls("record"), 0);
  EXPECT_EQ(Get("r1").state, "rejected");
  // A finished run is not run again.
  EXPECT_EQ(Resume("r1").state, "rejected");
  EXPECT_EQ(Calls("reject"), 1);
}

TEST_F(WorkflowEngineTest, OtherErrorsFailTheRunThroughTheFailureState) {
  Define(kCatching);
  Step("a", [](const json&) -> StatusOr<json> {
    return DataLossError("truncated");
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error, "DATA_LOSS: truncated");
  EXPECT_EQ(out.redrive_from, "a");
  EXPECT_EQ(Calls("record"), 1);
  EXPECT_EQ(Calls("reject"), 0);
}

TEST_F(WorkflowEngineTest, AThrowingStepFailsClearlyAndIsCaught) {
  Define(kCatching);
  json seen;
  Step("a", [](const json& in) -> StatusOr<json> {
    (void)in.at("missing");  // nlohmann throws out_of_range
    return in;
  });
  Step("record", [&](const json& in) -> StatusOr<json> {
    seen = in;
    return json::object();
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error.rfind("INTERNAL: step a threw: ", 0), 0u) << out.error;
  EXPECT_EQ(seen["error"]["Error"], "INTERNAL");
}

TEST_F(WorkflowEngineTest, NonStandardExceptionsAndGarbageFailClearly) {
  Define(kCatching);
  Step("a", [](const json&) -> StatusOr<json> { throw 42; });
  EXPECT_EQ(Resume("r1").error,
            "INTERNAL: step a threw a non-standard exception");
  Step("a", [](const json&) -> StatusOr<json> { return json::array(); });
  EXPECT_EQ(Resume("r2").error,
            "INTERNAL: step a returned a non-object: array");
  Step("a", [](const json&) -> StatusOr<json> { return json("text"); });
  EXPECT_EQ(Resume("r3").error,
            "INTERNAL: step a returned a non-object: string");
}

// Moved from the step-list engine's tests when it was deleted: what a
// step throws or returns never crosses the engine, and the run records it.
constexpr char kChain[] = R"({
  "StartAt": "a",
  "States": {
    "a": {"Type": "Task", "ResultPath": "$.a", "Next": "b"},
    "b": {"Type": "Task", "ResultPath": "$.b", "Next": "c",
          "Retry": [{"ErrorEquals": ["UNAVAILABLE"], "IntervalSeconds": 1,
                     "BackoffRate": 2, "MaxAttempts": 2,
                     "JitterStrategy": "NONE"}]},
    "c": {"Type": "Task", "ResultPath": "$.c", "End": true,
          "cbpipe": {"redrive_from": "b"}}}})";

TEST_F(WorkflowEngineTest, AThrowingStepFailsItsRunAndIsRecorded) {
  Define(kChain);
  Step("b", [](const json&) -> StatusOr<json> {
    const json not_an_object = json::array();
    return json{{"x", not_an_object.value("missing", 0)}};  // type_error
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error.rfind(
                "INTERNAL: step b threw: [json.exception.type_error.306]", 0),
            0u)
      << out.error;
  EXPECT_EQ(out.redrive_from, "b");
  RunRecord run = Get("r1");
  EXPECT_EQ(run.state, "failed");
  EXPECT_EQ(run.error, out.error);
  EXPECT_EQ(run.current_step, "b");
  bool found = false;
  for (const StepRecord& s : run.steps) {
    if (s.name != "b") continue;
    found = true;
    EXPECT_EQ(s.state, "failed");
    EXPECT_EQ(s.error, out.error);
    EXPECT_EQ(s.attempts, 1);  // INTERNAL is not in the Retry rule
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(env_.sleeps().empty());
  EXPECT_EQ(Calls("c"), 0);

  Step("b", [](const json&) -> StatusOr<json> { throw std::bad_alloc(); });
  EXPECT_EQ(Resume("r2").error, "INTERNAL: step b threw: std::bad_alloc");
}

TEST_F(WorkflowEngineTest, EveryKindOfGarbageFailsTheRun) {
  Define(kChain);
  int n = 0;
  for (const json& garbage :
       {json(nullptr), json("text"), json::array({1, 2}), json(42), json(4.5),
        json(true), json(json::value_t::discarded)}) {
    Step("a", [garbage](const json&) { return StatusOr<json>(garbage); });
    const std::string id = "g" + std::to_string(n++);
    RunOutcome out = Resume(id);
    EXPECT_EQ(out.state, "failed") << garbage.type_name();
    EXPECT_EQ(out.error, "INTERNAL: step a returned a non-object: " +
                             std::string(garbage.type_name()));
    EXPECT_EQ(Get(id).state, "failed");
  }
  EXPECT_EQ(Calls("b"), 0);
}

TEST_F(WorkflowEngineTest, CardNumbersInAnExceptionAreMasked) {
  Define(kChain);
  Step("a", [](const json&) -> StatusOr<json> {
    throw std::runtime_error("bad record 4111111111111111 here");
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_NE(out.error.find("step a threw: bad record"), std::string::npos)
      << out.error;
  EXPECT_EQ(out.error.find("4111111111111111"), std::string::npos) << out.error;
  // Nothing stored about the run holds it: its error, the step's record.
  RunRecord run = Get("r1");
  EXPECT_EQ(run.error, out.error);
  ASSERT_FALSE(run.steps.empty());
  for (const StepRecord& s : run.steps) {
    EXPECT_EQ(s.error.find("4111111111111111"), std::string::npos) << s.name;
    EXPECT_EQ(s.output_json.find("4111111111111111"), std::string::npos)
        << s.name;
  }
  EXPECT_NE(StepState("r1", "a"), "");
}

TEST_F(WorkflowEngineTest, ExhaustedRetriesFailTheRunWithTheLastError) {
  Define(kChain);
  Step("b", [](const json&) -> StatusOr<json> {
    return UnavailableError("server down");
  });
  RunOutcome out = Resume("r1");
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error, "UNAVAILABLE: server down");
  EXPECT_EQ(Calls("b"), 3);  // MaxAttempts 2: three calls
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{1, 2}));
  for (const StepRecord& s : Get("r1").steps) {
    if (s.name == "b") {
      EXPECT_EQ(s.attempts, 3);
    }
  }
}

TEST_F(WorkflowEngineTest, RedriveResumesAtTheFailedStepWithItsInput) {
  Define(kChain);
  bool down = true;
  Step("b", [&](const json& in) -> StatusOr<json> {
    if (down) return DataLossError("bad file");
    return json{{"saw_a", in.contains("a")}};
  });
  ASSERT_EQ(Resume("r1").state, "failed");
  down = false;
  RunOutcome out = Resume("r1", json{{"x", 2}});
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(Calls("a"), 1);  // not repeated
  EXPECT_EQ(out.output["b"], json({{"saw_a", true}}));
  EXPECT_EQ(out.output["x"], 1);  // the checkpointed input
}

TEST_F(WorkflowEngineTest, RedriveFromAnEarlierStepRunsItAgain) {
  Define(kChain);
  bool bad = true;
  Step("c", [&](const json&) -> StatusOr<json> {
    if (bad) return DataLossError("bad file");
    return json::object();
  });
  ASSERT_EQ(Resume("r1").state, "failed");
  EXPECT_EQ(Get("r1").current_step, "b");  // c's redrive_from
  bad = false;
  EXPECT_EQ(Resume("r1").state, "succeeded");
  EXPECT_EQ(Calls("a"), 1);
  EXPECT_EQ(Calls("b"), 2);
  EXPECT_EQ(Calls("c"), 2);
}

TEST(CallStepGuardedTest, PassesResultsAndErrorsThrough) {
  StatusOr<json> ok = CallStepGuarded("s", [] {
    return StatusOr<json>(json{{"k", 1}});
  });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)["k"], 1);
  StatusOr<json> err = CallStepGuarded(
      "s", [] { return StatusOr<json>(UnavailableError("down")); });
  EXPECT_EQ(err.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(err.status().message(), "down");
  StatusOr<json> unknown =
      CallStepGuarded("s", []() -> StatusOr<json> { throw 7; });
  EXPECT_EQ(unknown.status().code(), StatusCode::kInternal);
  EXPECT_EQ(unknown.status().message(),
            "step s threw a non-standard exception");
}

TEST(CallStepGuardedTest, MasksCardNumbersAndRefusesNonObjects) {
  StatusOr<json> thrown = CallStepGuarded("s", []() -> StatusOr<json> {
    throw std::invalid_argument("pan 5500005555555559 in row 3");
  });
  EXPECT_EQ(thrown.status().code(), StatusCode::kInternal);
  EXPECT_EQ(thrown.status().message().find("5500005555555559"),
            std::string::npos)
      << thrown.status().message();
  EXPECT_EQ(thrown.status().message().rfind("step s threw: pan ", 0), 0u);
  StatusOr<json> array =
      CallStepGuarded("s", [] { return StatusOr<json>(json::array()); });
  EXPECT_EQ(array.status().message(), "step s returned a non-object: array");
}

TEST_F(WorkflowEngineTest, SchemasCheckTaskInputAndOutput) {
  Define(R"({"StartAt": "a", "States": {"a": {"Type": "Task", "End": true,
    "cbpipe": {"input_schema": {"required": ["x"]},
               "output_schema": {"required": ["y"],
                                 "properties": {"y": {"type": "integer"}}}}}}})");
  Step("a", [](const json&) -> StatusOr<json> { return json{{"y", "no"}}; });
  EXPECT_EQ(Resume("r1").error,
            "INTERNAL: output of a does not match its output_schema: y: not "
            "of type integer");
  EXPECT_EQ(Resume("r2", {{"z", 1}}).error,
            "INTERNAL: input of a does not match its input_schema: missing x");
  EXPECT_EQ(Calls("a"), 1);  // the bad input never reached the step
}

constexpr char kMap[] = R"({
  "StartAt": "a",
  "States": {
    "a": {"Type": "Task", "ResultPath": "$.a", "Next": "m"},
    "m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 3,
          "ItemSelector": {"id.$": "$$.Map.Item.Value", "x.$": "$.x",
                           "index.$": "$$.Map.Item.Index"},
          "ItemProcessor": {"StartAt": "item", "States": {
            "item": {"Type": "Task", "End": true}}},
          "ResultPath": "$.results", "Next": "c"},
    "c": {"Type": "Task", "ResultPath": "$.c", "End": true}}})";

json Items(int n) {
  json items = json::array();
  for (int i = 0; i < n; ++i) items.push_back(i);
  return json{{"x", 1}, {"items", items}};
}

TEST_F(WorkflowEngineTest, MapRunsItemsWithinItsConcurrencyAndInOrder) {
  Define(kMap);
  std::atomic<int> running{0}, most{0};
  Step("item", [&](const json& in) -> StatusOr<json> {
    const int now = ++running;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    // Wait (a while) for a second item to run beside this one.
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (most.load() < 2 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    --running;
    return json{{"done", in["id"]}, {"x", in["x"]}, {"index", in["index"]}};
  });
  RunOutcome out = Resume("r1", Items(10));
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_LE(most.load(), 3);
  EXPECT_GE(most.load(), 2);
  ASSERT_EQ(out.output["results"].size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(out.output["results"][i],
              json({{"done", i}, {"x", 1}, {"index", i}}));
    EXPECT_EQ(StepState("r1", "m/" + std::to_string(i)), "succeeded");
    EXPECT_EQ(StepState("r1", "m/" + std::to_string(i) + "/item"), "succeeded");
  }
  EXPECT_EQ(StepState("r1", "m"), "succeeded");
}

TEST_F(WorkflowEngineTest, EngineCapsMapThreads) {
  Define(kMap);
  options_.max_map_threads = 1;
  std::atomic<int> running{0}, most{0};
  Step("item", [&](const json& in) -> StatusOr<json> {
    most = std::max(most.load(), ++running);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    --running;
    return in;
  });
  EXPECT_EQ(Resume("r1", Items(4)).state, "succeeded");
  EXPECT_EQ(most.load(), 1);
}

TEST_F(WorkflowEngineTest, ResumeAfterInterruptionSkipsDoneStepsAndItems) {
  Define(kMap);
  options_.max_map_threads = 1;  // items in order: 0..4 done, then stop
  Step("item", [&](const json& in) -> StatusOr<json> {
    if (in["id"] == 4) stop_ = true;
    return json{{"done", in["id"]}};
  });
  RunOutcome first = Resume("r1", Items(8));
  EXPECT_EQ(first.state, "interrupted");
  EXPECT_EQ(Get("r1").state, "running");
  EXPECT_EQ(Get("r1").current_step, "m");
  EXPECT_EQ(Calls("item"), 5);
  EXPECT_EQ(StepState("r1", "m/5"), "");

  stop_ = false;
  // The checkpointed input wins over what the caller passes now.
  RunOutcome second = Resume("r1", {{"x", 2}, {"items", json::array()}});
  ASSERT_EQ(second.state, "succeeded") << second.error;
  EXPECT_EQ(Calls("a"), 1);
  EXPECT_EQ(Calls("item"), 8);
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(Calls("item#" + std::to_string(i)), 1) << i;
  EXPECT_EQ(Calls("c"), 1);
  EXPECT_EQ(second.output["results"].size(), 8u);
  EXPECT_EQ(second.output["x"], 1);
}

TEST_F(WorkflowEngineTest, AFailedItemFailsTheMapAfterTheRunningOnes) {
  Define(R"({"StartAt": "m", "States": {
    "m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
          "ItemSelector": {"id.$": "$$.Map.Item.Value"},
          "ItemProcessor": {"StartAt": "item", "States": {
            "item": {"Type": "Task", "End": true}}},
          "End": true}}})");
  Step("item", [&](const json& in) -> StatusOr<json> {
    if (in["id"] == 1) return DataLossError("item 1 is corrupt");
    return in;
  });
  RunOutcome out = Resume("r1", Items(4));
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error, "DATA_LOSS: item 1 is corrupt");
  EXPECT_EQ(Calls("item"), 2);  // no new item after the failure
  EXPECT_EQ(StepState("r1", "m/0"), "succeeded");
  EXPECT_EQ(StepState("r1", "m/1"), "failed");
  EXPECT_EQ(StepState("r1", "m"), "failed");
}

// `cbpipe run` verified batch k+1 while it delivered batch k: with
// prefetch_first_task, item i+1's first Task runs beside item i's later
// states, and every item still finishes in order, each state once.
TEST_F(WorkflowEngineTest, PrefetchRunsTheNextFirstTaskBesideTheCurrentItem) {
  Define(R"({"StartAt": "m", "States": {
    "m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
          "ItemSelector": {"id.$": "$$.Map.Item.Value"},
          "ItemProcessor": {"StartAt": "check", "States": {
            "check": {"Type": "Task", "Next": "send"},
            "send": {"Type": "Task", "End": true}}},
          "ResultPath": "$.results", "End": true,
          "cbpipe": {"prefetch_first_task": true}}}})");
  std::mutex mu;
  std::vector<std::string> events;
  std::atomic<int> checked{-1};
  bool overlapped = true;
  Step("check", [&](const json& in) -> StatusOr<json> {
    {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back("check " + in["id"].dump());
    }
    checked = in["id"].get<int>();
    return in;
  });
  Step("send", [&](const json& in) -> StatusOr<json> {
    const int id = in["id"].get<int>();
    // The next item's check runs while this one sends (a while at most).
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (id < 3 && checked.load() < id + 1 &&
           std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(mu);
    if (id < 3 && checked.load() < id + 1) overlapped = false;
    events.push_back("send " + std::to_string(id));
    return json{{"sent", id}};
  });
  RunOutcome out = Resume("r1", Items(4));
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_TRUE(overlapped);
  EXPECT_EQ(events, (std::vector<std::string>{"check 0", "check 1", "send 0",
                                              "check 2", "send 1", "check 3",
                                              "send 2", "send 3"}));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(out.output["results"][i], json({{"sent", i}}));
    EXPECT_EQ(Calls("check#" + std::to_string(i)), 1) << i;
    EXPECT_EQ(StepState("r1", "m/" + std::to_string(i) + "/check"),
              "succeeded");
  }
  EXPECT_EQ(Calls("send"), 4);
}

TEST_F(WorkflowEngineTest, PrefetchIsOnlyForAOneAtATimeMapStartingWithATask) {
  StatusOr<WorkflowDefinition> parallel = WorkflowDefinition::Parse(R"({
    "StartAt": "m", "States": {
    "m": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2,
          "ItemProcessor": {"StartAt": "t", "States": {
            "t": {"Type": "Task", "End": true}}},
          "End": true, "cbpipe": {"prefetch_first_task": true}}}})");
  ASSERT_FALSE(parallel.ok());
  EXPECT_NE(parallel.status().message().find("prefetch_first_task"),
            std::string::npos);
  StatusOr<WorkflowDefinition> task = WorkflowDefinition::Parse(R"({
    "StartAt": "t", "States": {
    "t": {"Type": "Task", "End": true,
          "cbpipe": {"prefetch_first_task": true}}}})");
  EXPECT_FALSE(task.ok());
}

// The shape of cbpipe's workflow: a Map whose failed items are tolerated
// and marked, a settle step that fails the run when one failed, redriven
// from the Map; an item state that asks for a redrive from the start.
constexpr char kPipeline[] = R"({
  "StartAt": "scan",
  "States": {
    "scan": {"Type": "Task", "ResultPath": "$.scan", "Next": "batches",
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "record",
                        "ResultPath": "$.error"}]},
    "batches": {"Type": "Map", "ItemsPath": "$.scan.batches",
      "ItemSelector": {"run.$": "$.run", "batch.$": "$$.Map.Item.Value"},
      "MaxConcurrency": 2,
      "ItemProcessor": {"StartAt": "verify", "States": {
        "verify": {"Type": "Task", "ResultPath": "$.verify",
                   "Next": "destinations",
                   "cbpipe": {"redrive_from": "scan"}},
        "destinations": {"Type": "Map", "ItemsPath": "$.batch.destinations",
          "ItemSelector": {"run.$": "$.run", "batch_id.$": "$.batch.id",
                           "destination.$": "$$.Map.Item.Value"},
          "ToleratedFailurePercentage": 100,
          "ItemProcessor": {"StartAt": "deliver", "States": {
            "deliver": {"Type": "Task", "End": true,
              "Retry": [{"ErrorEquals": ["UNAVAILABLE"], "IntervalSeconds": 1,
                         "MaxAttempts": 1}],
              "cbpipe": {"retry_from_input": "$.destination.retry"}}}},
          "ResultPath": "$.deliveries", "End": true}}},
      "ResultPath": "$.batches",
      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "record",
                 "ResultPath": "$.error"}],
      "Next": "settle"},
    "settle": {"Type": "Task", "ResultPath": "$.settle", "End": true,
               "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "record",
                          "ResultPath": "$.error"}],
               "cbpipe": {"redrive_from": "batches"}},
    "record": {"Type": "Task", "ResultPath": null, "Next": "failed"},
    "failed": {"Type": "Fail"}}})";

class PipelineShapeTest : public WorkflowEngineTest {
 protected:
  void SetUp() override {
    WorkflowEngineTest::SetUp();
    Define(kPipeline);
    Step("scan", [](const json& in) -> StatusOr<json> {
      json batches = json::array();
      for (const char* id : {"b1", "b2"}) {
        batches.push_back(
            {{"id", id},
             {"destinations",
              {{{"name", "visa"}, {"retry", {{"max_attempts", 3}}}},
               {{"name", "mc"}}}}});
      }
      return json{{"batches", batches}, {"now", in["run"]["now"]}};
    });
    Step("verify", [](const json& in) -> StatusOr<json> {
      return json{{"verified", in["batch"]["id"]}};
    });
    Step("deliver", [this](const json& in) -> StatusOr<json> {
      const std::string key = in["batch_id"].get<std::string>() + "/" +
                              in["destination"]["name"].get<std::string>();
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++delivered_[key];
      }
      if (down_ == key) return UnavailableError(key + " refused");
      return json{{"delivered", key}};
    });
    Step("settle", [](const json& in) -> StatusOr<json> {
      int failed = 0;
      for (const json& b : in["batches"])
        for (const json& d : b["deliveries"]) failed += d.contains("error");
      if (failed) return AbortedError(std::to_string(failed) + " failed");
      return json{{"settled", true}};
    });
  }

  json Input() { return {{"run", {{"id", "r"}, {"now", 1700000000}}}}; }

  int Delivered(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return delivered_[key];
  }

  std::string down_;
  std::map<std::string, int> delivered_;
};

TEST_F(PipelineShapeTest, ATolerantMapMarksFailedItemsAndRetriesPerItem) {
  down_ = "b2/visa";
  RunOutcome out = Resume("r1", Input());
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error, "ABORTED: 1 failed");
  EXPECT_EQ(out.redrive_from, "batches");
  EXPECT_EQ(Calls("record"), 1);
  // visa's own policy (3 attempts) beats the rule's MaxAttempts 1.
  EXPECT_EQ(Delivered("b2/visa"), 3);
  EXPECT_EQ(Delivered("b2/mc"), 1);
  EXPECT_EQ(StepState("r1", "batches/1/destinations/0"), "failed");
  EXPECT_EQ(StepState("r1", "batches/1/destinations/1"), "succeeded");
  EXPECT_EQ(StepState("r1", "batches/1"), "succeeded");
}

TEST_F(PipelineShapeTest, RedriveFromAFailedStepEqualsAFirstAttempt) {
  RunOutcome clean = Resume("clean", Input());
  ASSERT_EQ(clean.state, "succeeded") << clean.error;
  calls_.clear();
  delivered_.clear();

  down_ = "b2/visa";
  ASSERT_EQ(Resume("r1", Input()).state, "failed");
  down_ = "";
  RunOutcome redriven = Resume("r1", json{{"run", {{"now", 0}}}});
  ASSERT_EQ(redriven.state, "succeeded") << redriven.error;
  EXPECT_EQ(redriven.output, clean.output);
  EXPECT_EQ(Calls("scan"), 1);
  EXPECT_EQ(Calls("verify"), 2);  // not again: b2 verified before
  EXPECT_EQ(Delivered("b1/visa"), 1);
  EXPECT_EQ(Delivered("b1/mc"), 1);
  EXPECT_EQ(Delivered("b2/mc"), 1);
  EXPECT_EQ(Delivered("b2/visa"), 4);  // three on the first run, one now
  EXPECT_EQ(Calls("settle"), 2);
  EXPECT_EQ(Get("r1").state, "succeeded");
  EXPECT_EQ(StepState("r1", "settle"), "succeeded");
}

TEST_F(PipelineShapeTest, ARedriveInterruptedHalfwayDoesNotReuseStaleSteps) {
  down_ = "b2/visa";
  ASSERT_EQ(Resume("r1", Input()).state, "failed");
  down_ = "";
  // The redrive stops inside the Map; settle's old failure must not be
  // reused when it resumes.
  Step("deliver", [this](const json& in) -> StatusOr<json> {
    stop_ = true;
    return json{{"delivered", in["destination"]["name"]}};
  });
  EXPECT_EQ(Resume("r1", Input()).state, "interrupted");
  stop_ = false;
  RunOutcome out = Resume("r1", Input());
  EXPECT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(out.output["settle"], json({{"settled", true}}));
}

TEST_F(WorkflowEngineTest, ChoiceAndPassStates) {
  Define(R"({"StartAt": "c", "States": {
    "c": {"Type": "Choice", "Default": "small",
          "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10,
                       "Next": "big"}]},
    "big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size",
            "Next": "done"},
    "small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size",
              "Next": "done"},
    "done": {"Type": "Succeed"}}})");
  EXPECT_EQ(Resume("r1", {{"n", 11}}).output["size"], "big");
  EXPECT_EQ(Resume("r2", {{"n", 3}}).output["size"], "small");
}

// Checkpoints another engine wrote (no "$input" record: serve's step list
// before the workflow definition) are never read, even under a name the
// definition has: the run starts from StartAt.
TEST_F(WorkflowEngineTest, CheckpointsWithoutTheInputRecordAreDiscarded) {
  Define(kChain);
  for (const char* state : {"running", "failed", "queued"}) {
    const std::string id = std::string("old-") + state;
    RunRecord run;
    run.run_id = id;
    run.input_key = "inputs/" + id;
    ASSERT_TRUE(store_->CreateIfAbsent(run).ok());
    for (const char* name : {"validate", "b", "c"}) {
      StepRecord rec;
      rec.name = name;
      rec.state = std::string(name) == "c" ? "failed" : "succeeded";
      rec.output_json = R"({"error":{"code":"ABORTED","message":"old"}})";
      ASSERT_TRUE(store_->SaveStep(id, rec).ok());
    }
    ASSERT_TRUE(store_->SetState(id, state, "generate", "old").ok());
    RunOutcome out = Resume(id);
    ASSERT_EQ(out.state, "succeeded") << state << ": " << out.error;
    EXPECT_EQ(out.output, json::parse(R"({"x":1,"a":{"x":1},
        "b":{"x":1,"a":{"x":1}},"c":{"x":1,"a":{"x":1},"b":{"x":1,"a":{"x":1}}}})"))
        << state;
    EXPECT_EQ(StepState(id, "validate"), "discarded");
    EXPECT_EQ(StepState(id, "b"), "succeeded");
  }
  EXPECT_EQ(Calls("a"), 3);
  EXPECT_EQ(Calls("b"), 3);
  EXPECT_EQ(Calls("c"), 3);

  // Records under the definition's own names are used, $input or not.
  RunRecord seeded;
  seeded.run_id = "seeded";
  seeded.input_key = "inputs/seeded";
  ASSERT_TRUE(store_->CreateIfAbsent(seeded).ok());
  StepRecord a;
  a.name = "a";
  a.state = "succeeded";
  a.output_json = R"({"seeded":true})";
  ASSERT_TRUE(store_->SaveStep("seeded", a).ok());
  RunOutcome out = Resume("seeded");
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(out.output["a"], json({{"seeded", true}}));
  EXPECT_EQ(Calls("a"), 3);
}

TEST_F(WorkflowEngineTest, UnknownRunIsInterruptedNotCreated) {
  Define(kRetrying);
  WorkflowEngine engine(&def_, store_.get(), &env_,
                        [](std::string_view, const json& in) { return in; });
  RunOutcome out = engine.Resume("nope", json::object(), nullptr);
  EXPECT_EQ(out.state, "interrupted");
  EXPECT_FALSE(store_->Get("nope").ok());
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// The real definition (cbpipe_workflow.json) with toy steps that keep the
// step contracts of workflow/steps.h.
class CbpipeWorkflowTest : public WorkflowEngineTest {
 protected:
  void SetUp() override {
    WorkflowEngineTest::SetUp();
    StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
    ASSERT_TRUE(def.ok()) << def.status().ToString();
    def_ = std::move(*def);
    Step("scan", [this](const json& in) -> StatusOr<json> {
      if (unreadable_) return InvalidArgumentError("not a CSV file");
      json out = in;
      out["batches"] = {{{"id", "B1"}, {"manifest", "batches/B1/m.json"}},
                        {{"id", "B2"}, {"manifest", "batches/B2/m.json"}}};
      return out;
    });
    Step("verify", [this](const json& in) -> StatusOr<json> {
      const std::string id = in["batch"]["id"];
      if (id == corrupt_) return DataLossError(id + ": sha256 mismatch");
      json deliveries = json::array();
      for (const char* dest : {"visa", "mc"}) {
        deliveries.push_back({{"run_id", in["run_id"]},
                              {"now_ms", in["now_ms"]},
                              {"batch", in["batch"]},
                              {"destination", dest},
                              {"retry",
                               {{"max_attempts", max_attempts_},
                                {"interval_seconds", 3},
                                {"full_jitter", false}}},
                              {"files", {{{"name", id + "." + dest}}}}});
      }
      return json{{"id", id},
                  {"manifest", in["batch"]["manifest"]},
                  {"deliveries", deliveries}};
    });
    Step("deliver", [this](const json& in) -> StatusOr<json> {
      const std::string key = in["batch"]["id"].get<std::string>() + "/" +
                              in["destination"].get<std::string>();
      if (key == down_) return UnavailableError(key + ": refused");
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (failures_[key] > 0) {
          --failures_[key];
          return UnavailableError(key + ": refused");
        }
      }
      return json{{"id", in["batch"]["id"]},
                  {"destination", in["destination"]},
                  {"files", in["files"]}};
    });
    Step("notify", [](const json& in) -> StatusOr<json> { return in; });
    Step("settle", [](const json& in) -> StatusOr<json> {
      for (const json& b : in["deliveries"]) {
        if (b.contains("error")) return AbortedError("a batch failed");
      }
      for (const json& b : in["deliveries"])
        for (const json& d : b["deliveries"])
          if (d.contains("error")) return AbortedError("a delivery failed");
      return in;
    });
    Step("reject_input", [](const json& in) -> StatusOr<json> {
      json out = in;
      out["quarantine"] = "quarantine/" + in["run_id"].get<std::string>();
      return out;
    });
  }

  json Input() {
    return {{"run_id", "0123456789abcdef"},
            {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"},
            {"now_ms", 1'700'000'000'000},
            {"input_key", "inputs/a.csv"},
            {"input_name", "a.csv"}};
  }

  bool unreadable_ = false;
  std::string corrupt_, down_;
  int max_attempts_ = 2;                 // each destination's retry policy
  std::map<std::string, int> failures_;  // "B1/visa" -> failures left
};

TEST_F(CbpipeWorkflowTest, DeliversEveryBatchToEveryDestination) {
  RunOutcome out = Resume("r1", Input());
  ASSERT_EQ(out.state, "succeeded") << out.error;
  ASSERT_EQ(out.output["deliveries"].size(), 2u);
  const json& b2 = out.output["deliveries"][1];
  EXPECT_EQ(b2["id"], "B2");
  EXPECT_EQ(b2["deliveries"][1], json::parse(R"({"id":"B2","destination":"mc",
                            "files":[{"name":"B2.mc"}]})"));
  EXPECT_EQ(out.output["now_ms"], 1'700'000'000'000);
  EXPECT_EQ(Calls("notify"), 1);
  EXPECT_EQ(Calls("record_failure"), 0);
}

TEST_F(CbpipeWorkflowTest, AnUnreadableInputIsRejected) {
  unreadable_ = true;
  RunOutcome out = Resume("r1", Input());
  EXPECT_EQ(out.state, "rejected");
  EXPECT_EQ(out.output["quarantine"], "quarantine/0123456789abcdef");
  EXPECT_EQ(out.output["error"],
            json({{"Error", "INVALID_ARGUMENT"}, {"Cause", "not a CSV file"}}));
  EXPECT_EQ(Calls("verify"), 0);
}

TEST_F(CbpipeWorkflowTest, AFailedDeliveryIsRetriedThenRedrivenAlone) {
  down_ = "B2/visa";
  RunOutcome failed = Resume("r1", Input());
  EXPECT_EQ(failed.state, "failed");
  EXPECT_EQ(failed.error, "ABORTED: a delivery failed");
  EXPECT_EQ(failed.redrive_from, "batches");
  EXPECT_EQ(Calls("record_failure"), 1);
  EXPECT_EQ(Calls("notify"), 1);  // the failure was told before settle
  EXPECT_EQ(env_.sleeps(), std::vector<double>{3});  // the item's policy
  RunOutcome clean = Resume("r2", [&] {
    down_ = "";
    json in = Input();
    return in;
  }());
  ASSERT_EQ(clean.state, "succeeded");
  const int delivers = Calls("deliver");
  RunOutcome redriven = Resume("r1", Input());
  ASSERT_EQ(redriven.state, "succeeded") << redriven.error;
  EXPECT_EQ(redriven.output, clean.output);
  EXPECT_EQ(Calls("deliver") - delivers, 1);  // only B2/visa again
  EXPECT_EQ(Calls("scan"), 2);                // r1 once, r2 once
}

// serve's metric: the retries the engine makes of one destination's
// deliver step, not its first attempt, per destination.
TEST_F(CbpipeWorkflowTest, DeliveryRetriesAreCountedPerDestination) {
  InMemoryMetrics metrics(PipelineMetricSpecs());
  options_.on_retry = CountDeliveryRetries(&metrics);
  max_attempts_ = 3;
  failures_["B1/visa"] = 2;  // UNAVAILABLE twice, then delivered
  failures_["B2/mc"] = 1;
  RunOutcome out = Resume("r1", Input());
  ASSERT_EQ(out.state, "succeeded") << out.error;
  EXPECT_EQ(metrics.Value(kDeliveryRetriesTotal, {"visa"}), 2);
  EXPECT_EQ(metrics.Value(kDeliveryRetriesTotal, {"mc"}), 1);
  EXPECT_EQ(Calls("deliver"), 4 + 3);
  EXPECT_EQ(env_.sleeps().size(), 3u);
}

// A batch failing verification does not stop the others (the batches Map
// tolerates it, as `cbpipe run` always did): B2 is delivered, B1's entry is
// its item with the error, settle fails the run, and the redrive starts at
// scan, verify's redrive point, so B1 is written again.
TEST_F(CbpipeWorkflowTest, AVerifyFailureIsRedrivenFromScan) {
  corrupt_ = "B1";
  RunOutcome failed = Resume("r1", Input());
  EXPECT_EQ(failed.state, "failed");
  EXPECT_EQ(failed.error, "ABORTED: a batch failed");
  EXPECT_EQ(Get("r1").current_step, "scan");
  EXPECT_EQ(Calls("notify"), 1);
  EXPECT_EQ(Calls("deliver"), 2);  // B2 to visa and mc
  corrupt_ = "";
  RunOutcome redriven = Resume("r1", Input());
  EXPECT_EQ(redriven.state, "succeeded") << redriven.error;
  EXPECT_EQ(Calls("scan"), 2);
  EXPECT_EQ(Calls("verify"), 4);  // B1 failed and B2, then B1 and B2
  EXPECT_EQ(redriven.output["deliveries"].size(), 2u);
}

TEST_F(CbpipeWorkflowTest, ABadRetryPolicyInTheItemFailsClearly) {
  Step("verify", [](const json& in) -> StatusOr<json> {
    return json{{"id", in["batch"]["id"]},
                {"deliveries",
                 {{{"run_id", in["run_id"]},
                   {"batch", in["batch"]},
                   {"destination", "visa"},
                   {"retry", {{"max_attempts", "three"}}}}}}};
  });
  down_ = "B1/visa";
  RunOutcome out = Resume("r1", Input());
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(Calls("deliver"), 0);
  const std::vector<StepRecord> steps = Get("r1").steps;
  bool found = false;
  for (const StepRecord& s : steps) {
    if (s.name == "batches/0/destinations/0/deliver") {
      found = true;
      EXPECT_EQ(s.error,
                "INTERNAL: retry_from_input: bad or unknown field "
                "max_attempts = \"three\"");
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace cbpipe
