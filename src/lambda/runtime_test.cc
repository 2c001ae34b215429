// The runtime loop and its client against a runtime API server in the test
// (runtime_api_test_server.h), in-process.
#include "lambda/runtime.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <thread>

#include "lambda/error_type.h"
#include "lambda/function.h"
#include "lambda/runtime_api_test_server.h"
#include "lambda/runtime_client.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using testing::LambdaApiOutcome;
using testing::LambdaRuntimeApiServer;

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr char kTrace[] =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
    "Sampled=1";

LambdaRuntimeOptions Options(const LambdaRuntimeApiServer& api, int n) {
  LambdaRuntimeOptions o;
  o.runtime_api = api.host_port();
  o.max_invocations = n;
  o.deadline_margin_ms = 300;
  return o;
}

std::function<StatusOr<LambdaHandler>()> Init(LambdaHandler h) {
  return [h] { return StatusOr<LambdaHandler>(h); };
}

TEST(LambdaErrorTypeTest, MapsEveryCode) {
  EXPECT_EQ(LambdaErrorType(UnavailableError("x")), "Cbpipe.Transient");
  EXPECT_EQ(LambdaErrorType(DeadlineExceededError("x")), "Cbpipe.Transient");
  EXPECT_EQ(LambdaErrorType(AbortedError("x")), "Cbpipe.Transient");
  EXPECT_EQ(LambdaErrorType(InvalidArgumentError("x")), "Cbpipe.InvalidInput");
  for (const Status& s :
       {NotFoundError("x"), AlreadyExistsError("x"), FailedPreconditionError("x"),
        PermissionDeniedError("x"), UnauthenticatedError("x"),
        ResourceExhaustedError("x"), DataLossError("x"), InternalError("x")}) {
    EXPECT_EQ(LambdaErrorType(s), "Cbpipe.Permanent") << s.ToString();
  }
}

TEST(LambdaRuntimeTest, RespondsWithTheHandlersResultAndSetsTheTraceId) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  api.Push({.request_id = "req-1",
            .body = R"({"n":41})",
            .deadline_ms = NowMs() + 60000,
            .trace_id = kTrace,
            .client_context = R"({"custom":{"a":"b"}})"});
  api.Push({.request_id = "req-2", .body = R"({"n":1})"});
  std::vector<std::string> traces, contexts, arns;
  const Status ended = RunLambdaRuntime(
      Options(api, 2),
      Init([&](const LambdaInvocation& in, const std::atomic<bool>&)
               -> StatusOr<std::string> {
        const char* t = std::getenv("_X_AMZN_TRACE_ID");
        traces.push_back(t ? t : "(unset)");
        contexts.push_back(in.client_context);
        arns.push_back(in.invoked_function_arn);
        const json e = json::parse(in.event);
        return json{{"n", e["n"].get<int>() + 1}}.dump();
      }));
  ASSERT_TRUE(ended.ok()) << ended.ToString();
  std::optional<LambdaApiOutcome> one = api.WaitOutcome("req-1", milliseconds(5000));
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->kind, "response");
  EXPECT_EQ(one->body, R"({"n":42})");
  std::optional<LambdaApiOutcome> two = api.WaitOutcome("req-2", milliseconds(5000));
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->body, R"({"n":2})");
  ASSERT_EQ(traces.size(), 2u);
  EXPECT_EQ(traces[0], kTrace);
  EXPECT_EQ(traces[1], "(unset)");  // not the previous invocation's
  EXPECT_EQ(contexts[0], R"({"custom":{"a":"b"}})");
  EXPECT_EQ(arns[0], "arn:aws:lambda:us-east-1:123456789012:function:cbpipe");
}

TEST(LambdaRuntimeTest, AHandlerErrorIsReportedWithItsErrorType) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  api.Push({.request_id = "a", .body = "{}", .deadline_ms = NowMs() + 60000});
  api.Push({.request_id = "b", .body = "{}", .deadline_ms = NowMs() + 60000});
  api.Push({.request_id = "c", .body = "{}", .deadline_ms = NowMs() + 60000});
  int n = 0;
  const Status ended = RunLambdaRuntime(
      Options(api, 3),
      Init([&](const LambdaInvocation&, const std::atomic<bool>&)
               -> StatusOr<std::string> {
        switch (n++) {
          case 0:
            return UnavailableError("sftp refused for card 4111111111111111");
          case 1:
            return InvalidArgumentError("input_key: missing");
          default:
            throw std::runtime_error("boom");
        }
      }));
  ASSERT_TRUE(ended.ok()) << ended.ToString();
  std::optional<LambdaApiOutcome> a = api.WaitOutcome("a", milliseconds(5000));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->kind, "error");
  EXPECT_EQ(a->error_type, "Cbpipe.Transient");
  const json body = json::parse(a->body);
  EXPECT_EQ(body["errorType"], "Cbpipe.Transient");
  EXPECT_EQ(body["errorMessage"],
            "UNAVAILABLE: sftp refused for card 411111******1111");
  std::optional<LambdaApiOutcome> b = api.WaitOutcome("b", milliseconds(5000));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(json::parse(b->body)["errorType"], "Cbpipe.InvalidInput");
  EXPECT_EQ(json::parse(b->body)["errorMessage"],
            "INVALID_ARGUMENT: input_key: missing");
  std::optional<LambdaApiOutcome> c = api.WaitOutcome("c", milliseconds(5000));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(json::parse(c->body)["errorType"], "Cbpipe.Permanent");
  EXPECT_NE(json::parse(c->body)["errorMessage"].get<std::string>().find("boom"),
            std::string::npos);
}

TEST(LambdaRuntimeTest, AnInitErrorIsPostedAndReturned) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  const Status ended = RunLambdaRuntime(Options(api, 1), [] {
    return StatusOr<LambdaHandler>(
        InvalidArgumentError("service.work_store: needed"));
  });
  EXPECT_EQ(ended.code(), StatusCode::kInvalidArgument);
  std::optional<LambdaApiOutcome> init = api.WaitOutcome("", milliseconds(5000));
  ASSERT_TRUE(init.has_value());
  EXPECT_EQ(init->kind, "init_error");
  EXPECT_EQ(init->error_type, "Cbpipe.Init");
  const json body = json::parse(init->body);
  EXPECT_EQ(body["errorType"], "Cbpipe.Init");
  EXPECT_EQ(body["errorMessage"], "INVALID_ARGUMENT: service.work_store: needed");
  EXPECT_EQ(api.next_calls(), 0);  // no event taken after a failed init
}

TEST(LambdaRuntimeTest, StopsBeforeTheDeadlineAndReportsTransient) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  const int64_t deadline = NowMs() + 1500;
  api.Push({.request_id = "slow", .body = "{}", .deadline_ms = deadline});
  api.Push({.request_id = "next", .body = "{}", .deadline_ms = NowMs() + 60000});
  std::atomic<bool> saw_stop{false};
  int calls = 0;
  const Status ended = RunLambdaRuntime(
      Options(api, 2),
      Init([&](const LambdaInvocation&, const std::atomic<bool>& stop)
               -> StatusOr<std::string> {
        if (calls++ > 0) return std::string("{}");
        // A step that would run past the deadline: checks its stop flag.
        for (int i = 0; i < 1000 && !stop.load(); ++i)
          std::this_thread::sleep_for(milliseconds(10));
        saw_stop = stop.load();
        return std::string(R"({"late":true})");
      }));
  ASSERT_TRUE(ended.ok()) << ended.ToString();
  std::optional<LambdaApiOutcome> slow = api.WaitOutcome("slow", milliseconds(5000));
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(slow->kind, "error");
  EXPECT_EQ(slow->error_type, "Cbpipe.Transient");
  EXPECT_LT(slow->at_ms, deadline);           // answered in time
  EXPECT_GE(slow->at_ms, deadline - 300 - 50);  // not long before the margin
  EXPECT_NE(json::parse(slow->body)["errorMessage"].get<std::string>().find(
                "deadline"),
            std::string::npos);
  EXPECT_TRUE(saw_stop);
  // The next invocation runs normally (the late result was dropped).
  std::optional<LambdaApiOutcome> next = api.WaitOutcome("next", milliseconds(5000));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->kind, "response");
  EXPECT_EQ(next->body, "{}");
}

TEST(LambdaRuntimeTest, AnInvocationInsideTheMarginDoesNotRun) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  api.Push({.request_id = "late", .body = "{}", .deadline_ms = NowMs() + 100});
  bool ran = false;
  const Status ended = RunLambdaRuntime(
      Options(api, 1), Init([&](const LambdaInvocation&, const std::atomic<bool>&)
                                -> StatusOr<std::string> {
        ran = true;
        return std::string("{}");
      }));
  ASSERT_TRUE(ended.ok());
  std::optional<LambdaApiOutcome> late = api.WaitOutcome("late", milliseconds(5000));
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->error_type, "Cbpipe.Transient");
  EXPECT_FALSE(ran);
}

TEST(LambdaRuntimeClientTest, ReusesOneConnection) {
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  auto client = LambdaRuntimeClient::Create(api.host_port());
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 3; ++i) {
    const std::string id = "r" + std::to_string(i);
    api.Push({.request_id = id, .body = "{}"});
    StatusOr<LambdaInvocation> in = (*client)->Next();
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    EXPECT_EQ(in->request_id, id);
    EXPECT_EQ(in->deadline_ms, 0);
    ASSERT_TRUE((*client)->Respond(id, "{}").ok());
  }
  EXPECT_EQ((*client)->connections_opened(), 1);
}

TEST(LambdaRuntimeClientTest, ErrorsNameTheCall) {
  EXPECT_EQ(LambdaRuntimeClient::Create("no-port").status().code(),
            StatusCode::kInvalidArgument);
  // Nothing listens on port 1.
  auto client = LambdaRuntimeClient::Create("127.0.0.1:1");
  ASSERT_TRUE(client.ok());
  const Status s = (*client)->Next().status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("runtime API"), std::string::npos);
}

TEST(LambdaSettingsTest, ReadsTheEnvironment) {
  std::map<std::string, std::string> env = {
      {"AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"},
      {"_HANDLER", "scan"},
      {"LAMBDA_TASK_ROOT", "/var/task"},
      {"CBPIPE_LAMBDA_DEADLINE_MARGIN_MS", "2500"}};
  auto get = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  StatusOr<LambdaSettings> s = LambdaSettingsFromEnv(get);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->handler, "scan");
  EXPECT_EQ(s->config, "cbpipe.toml");
  EXPECT_EQ(s->deadline_margin_ms, 2500);
  env["CBPIPE_LAMBDA_DEADLINE_MARGIN_MS"] = "soon";
  s = LambdaSettingsFromEnv(get);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("CBPIPE_LAMBDA_DEADLINE_MARGIN_MS"),
            std::string::npos);
  env.erase("AWS_LAMBDA_RUNTIME_API");
  EXPECT_FALSE(LambdaSettingsFromEnv(get).ok());
}

TEST(LambdaFunctionTest, HandlersAreTheWorkflowsTasksAndStart) {
  const std::vector<std::string> names = LambdaHandlerNames();
  for (const char* n : {"scan", "verify", "deliver", "notify", "settle",
                        "reject_input", "record_failure", "start"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  EXPECT_EQ(std::find(names.begin(), names.end(), "batches"), names.end());
  LambdaSettings s;
  s.handler = "scna";
  const Status st = LambdaFunction::Create(s).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("_HANDLER"), std::string::npos);
}

}  // namespace
}  // namespace cbpipe
