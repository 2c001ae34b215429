#include "workflow/legacy_engine.h"

#include "workflow/engine.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "runs/sqlite_run_store.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::path(::testing::TempDir()) /
             ("engine_" + std::to_string(::getpid()) + ".db"))
                .string();
    for (const char* s : {"", "-wal", "-shm"}) fs::remove(path_ + s);
    auto store = SqliteRunStore::Open(path_, &env_);
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    env_.SetRandom({1.0});
    RunRecord run;
    run.run_id = "0123456789abcdef";
    run.input_key = "inputs/x";
    ASSERT_TRUE(*store_->CreateIfAbsent(run));

    // a -> b -> c, b retried on transient errors, failures caught by "fail".
    def_.start = "a";
    def_.steps["a"].fn = [this](const RunRecord&, const json& in) {
      ++calls_["a"];
      json out = in;
      out["a"] = true;
      return StatusOr<json>(out);
    };
    def_.steps["a"].next = "b";
    LegacyStepDefinition& b = def_.steps["b"];
    b.fn = [this](const RunRecord&, const json& in) -> StatusOr<json> {
      ++calls_["b"];
      if (b_failures_ > 0) {
        --b_failures_;
        return b_error_;
      }
      json out = in;
      out["b"] = true;
      return out;
    };
    b.retry = {1.0, 2.0, 3, 10.0, false};
    b.catchers = {{{}, "fail"}};
    b.next = "c";
    LegacyStepDefinition& c = def_.steps["c"];
    c.fn = [this](const RunRecord&, const json& in) -> StatusOr<json> {
      ++calls_["c"];
      if (stop_in_c_) stop_ = true;
      json out = in;
      out["c"] = true;
      return out;
    };
    c.redrive_from = "b";
    def_.steps["fail"].fn = [this](const RunRecord&, const json& in) {
      ++calls_["fail"];
      return StatusOr<json>(in);
    };
    def_.steps["fail"].fails_run = true;
  }
  void TearDown() override {
    store_.reset();
    for (const char* s : {"", "-wal", "-shm"}) fs::remove(path_ + s);
  }

  LegacyRunOutcome Resume() {
    LegacyWorkflowEngine engine(def_, store_.get(), &env_);
    return engine.Resume("0123456789abcdef", {{"input_key", "inputs/x"}},
                         &stop_);
  }

  std::string path_;
  FakeEnv env_;  // retry waits are recorded, not slept
  std::unique_ptr<RunStore> store_;
  LegacyWorkflowDefinition def_;
  std::map<std::string, int> calls_;
  int b_failures_ = 0;
  Status b_error_ = UnavailableError("server down");
  bool stop_in_c_ = false;
  std::atomic<bool> stop_{false};
};

TEST_F(EngineTest, RunsEveryStepAndCheckpointsOutputs) {
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "succeeded");
  EXPECT_EQ(out.output["a"], true);
  EXPECT_EQ(out.output["c"], true);
  StatusOr<RunRecord> run = store_->Get("0123456789abcdef");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state, "succeeded");
  ASSERT_EQ(run->steps.size(), 3u);
  EXPECT_EQ(run->steps[0].name, "a");
  EXPECT_EQ(json::parse(run->steps[2].output_json)["b"], true);
  // A finished run is not run again.
  EXPECT_EQ(Resume().state, "succeeded");
  EXPECT_EQ(calls_["a"], 1);
}

TEST_F(EngineTest, TransientErrorsRetriedWithBackoff) {
  b_failures_ = 2;
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "succeeded");
  EXPECT_EQ(calls_["b"], 3);
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(store_->Get("0123456789abcdef")->steps[1].attempts, 3);
}

TEST_F(EngineTest, ExhaustedRetriesAreCaughtAndFailTheRun) {
  b_failures_ = 10;
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(calls_["b"], 3);
  EXPECT_EQ(calls_["fail"], 1);
  EXPECT_EQ(calls_["c"], 0);
  EXPECT_NE(out.error.find("server down"), std::string::npos);
  StatusOr<RunRecord> run = store_->Get("0123456789abcdef");
  EXPECT_EQ(run->state, "failed");
  EXPECT_EQ(run->current_step, "b");  // where a redrive starts
}

TEST_F(EngineTest, PermanentErrorsAreNotRetried) {
  b_failures_ = 10;
  b_error_ = PermissionDeniedError("550");
  EXPECT_EQ(Resume().state, "failed");
  EXPECT_EQ(calls_["b"], 1);
  EXPECT_TRUE(env_.sleeps().empty());
}

TEST_F(EngineTest, RedrivenRunResumesAtTheFailedStepWithItsInput) {
  b_failures_ = 3;
  EXPECT_EQ(Resume().state, "failed");
  b_failures_ = 0;
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "succeeded");
  EXPECT_EQ(calls_["a"], 1);  // not repeated
  EXPECT_EQ(out.output["a"], true);
  EXPECT_EQ(out.output["b"], true);
}

TEST_F(EngineTest, InterruptedRunResumesAfterItsLastCheckpoint) {
  stop_in_c_ = true;  // a shutdown request arrives while c runs
  def_.steps["c"].next = "d";
  def_.steps["d"].fn = [this](const RunRecord&, const json& in) {
    ++calls_["d"];
    return StatusOr<json>(in);
  };
  LegacyRunOutcome first = Resume();
  EXPECT_EQ(first.state, "interrupted");
  EXPECT_EQ(calls_["c"], 1);
  EXPECT_EQ(calls_["d"], 0);
  EXPECT_EQ(store_->Get("0123456789abcdef")->current_step, "d");
  stop_ = false;
  stop_in_c_ = false;
  LegacyRunOutcome second = Resume();
  EXPECT_EQ(second.state, "succeeded");
  EXPECT_EQ(calls_["a"], 1);
  EXPECT_EQ(calls_["b"], 1);
  EXPECT_EQ(calls_["c"], 1);
  EXPECT_EQ(calls_["d"], 1);
  EXPECT_EQ(second.output["c"], true);
}

TEST_F(EngineTest, RedriveFromAnEarlierStep) {
  // c fails permanently with no catcher; its redrive starts at b.
  def_.steps["c"].fn = [this](const RunRecord&, const json&) -> StatusOr<json> {
    ++calls_["c"];
    return DataLossError("bad file");
  };
  EXPECT_EQ(Resume().state, "failed");
  EXPECT_EQ(store_->Get("0123456789abcdef")->current_step, "b");
  def_.steps["c"].fn = [this](const RunRecord&, const json& in) {
    ++calls_["c"];
    return StatusOr<json>(in);
  };
  EXPECT_EQ(Resume().state, "succeeded");
  EXPECT_EQ(calls_["b"], 2);
  EXPECT_EQ(calls_["a"], 1);
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// What a step throws never crosses the engine: the run fails with an error
// that names the step and what went wrong, recorded in the run.
TEST_F(EngineTest, AStepThatThrowsFailsItsRunClearly) {
  def_.steps["b"].fn = [](const RunRecord&, const json&) -> StatusOr<json> {
    const json not_an_object = json::array();
    return json{{"x", not_an_object.value("missing", 0)}};  // type_error
  };
  def_.steps["b"].catchers.clear();
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "failed");
  EXPECT_NE(out.error.find("step b threw: [json.exception.type_error.306]"),
            std::string::npos)
      << out.error;
  StatusOr<RunRecord> run = store_->Get("0123456789abcdef");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->state, "failed");
  EXPECT_EQ(run->error, out.error);
  EXPECT_EQ(run->current_step, "b");
  ASSERT_EQ(run->steps.size(), 2u);
  EXPECT_EQ(run->steps[1].state, "failed");
  EXPECT_EQ(run->steps[1].attempts, 1);  // kInternal: not retried
  EXPECT_TRUE(env_.sleeps().empty());
}

TEST_F(EngineTest, ThrownErrorsAreCaughtLikeOthers) {
  def_.steps["b"].fn = [](const RunRecord&, const json&) -> StatusOr<json> {
    throw std::bad_alloc();
  };
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(calls_["fail"], 1);  // the catch-all catcher ran
  EXPECT_NE(out.error.find("step b threw: std::bad_alloc"), std::string::npos)
      << out.error;
}

TEST_F(EngineTest, GarbageOutputFailsTheRun) {
  for (json garbage : {json(nullptr), json("text"), json::array({1, 2}),
                       json(42), json(json::value_t::discarded)}) {
    TearDown();
    SetUp();
    def_.steps["a"].fn = [garbage](const RunRecord&, const json&) {
      return StatusOr<json>(garbage);
    };
    def_.steps["a"].catchers.clear();
    LegacyRunOutcome out = Resume();
    EXPECT_EQ(out.state, "failed");
    EXPECT_NE(out.error.find("step a returned a non-object: " +
                             std::string(garbage.type_name())),
              std::string::npos)
        << out.error;
    EXPECT_EQ(calls_["b"], 0);
  }
}

TEST_F(EngineTest, CardNumbersInAnExceptionAreMasked) {
  def_.steps["a"].fn = [](const RunRecord&, const json&) -> StatusOr<json> {
    throw std::runtime_error("bad record 4111111111111111 here");
  };
  LegacyRunOutcome out = Resume();
  EXPECT_EQ(out.state, "failed");
  EXPECT_EQ(out.error.find("4111111111111111"), std::string::npos)
      << out.error;
  StatusOr<RunRecord> run = store_->Get("0123456789abcdef");
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->error.find("4111111111111111"), std::string::npos);
  EXPECT_NE(run->error.find("step a threw: bad record"), std::string::npos);
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
  StatusOr<json> unknown = CallStepGuarded("s", []() -> StatusOr<json> {
    throw 7;
  });
  EXPECT_EQ(unknown.status().code(), StatusCode::kInternal);
  EXPECT_EQ(unknown.status().message(), "step s threw a non-standard exception");
}

}  // namespace
}  // namespace cbpipe
