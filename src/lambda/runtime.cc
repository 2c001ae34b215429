#include "lambda/runtime.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "domain/pan.h"
#include "lambda/error_type.h"
#include "telemetry/log.h"
#include "telemetry/xray.h"

namespace cbpipe {
namespace {

// The 32 hex digits of an X-Ray root ("1-" + 8 + "-" + 24), as the logs'
// trace_id; "" when it is not one.
std::string TraceHex(const std::string& root) {
  if (root.size() != 35 || !root.starts_with("1-") || root[10] != '-')
    return "";
  std::string hex = root.substr(2, 8) + root.substr(11);
  for (char c : hex)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
  return hex;
}

LambdaErrorReport ReportFor(const Status& status) {
  const Status masked = MaskCardNumbersInStatus(status);
  return {std::string(LambdaErrorType(masked)), masked.ToString()};
}

// Runs `handler` on its own thread and waits for it until `wait_ms` ran
// out. Returns the result, or nullopt at the deadline (then `stop` is set
// and the thread is still running: join it with Finish).
class HandlerRun {
 public:
  HandlerRun(const LambdaHandler& handler, const LambdaInvocation& in)
      : thread_([this, &handler, &in] {
          StatusOr<std::string> r = InternalError("handler did not run");
          try {
            r = handler(in, stop_);
          } catch (const std::exception& e) {
            r = InternalError(std::string("handler threw: ") + e.what());
          } catch (...) {
            r = InternalError("handler threw");
          }
          std::lock_guard<std::mutex> lock(mu_);
          result_.emplace(std::move(r));
          done_.notify_all();
        }) {}
  ~HandlerRun() { Finish(); }

  // wait_ms < 0: as long as it takes.
  std::optional<StatusOr<std::string>> WaitFor(int64_t wait_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    auto done = [this] { return result_.has_value(); };
    if (wait_ms < 0) {
      done_.wait(lock, done);
    } else {
      done_.wait_for(lock, std::chrono::milliseconds(wait_ms), done);
    }
    if (!result_) {
      stop_ = true;
      return std::nullopt;
    }
    return std::move(result_);
  }
  void Finish() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable done_;
  std::optional<StatusOr<std::string>> result_;
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace

Status RunLambdaRuntime(const LambdaRuntimeOptions& options,
                        const std::function<StatusOr<LambdaHandler>()>& init) {
  Env* env = options.env ? options.env : Env::Default();
  CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<LambdaRuntimeClient> api,
                          LambdaRuntimeClient::Create(options.runtime_api));
  StatusOr<LambdaHandler> handler = init();
  if (!handler.ok()) {
    const Status masked = MaskCardNumbersInStatus(handler.status());
    Log().Error("lambda.init_failed", masked.ToString());
    const Status posted = api->ReportInitError(
        {std::string(kLambdaErrorInit), masked.ToString()});
    if (!posted.ok()) Log().Error("lambda.api_error", posted.ToString());
    return masked;
  }
  for (int64_t n = 0;
       options.max_invocations == 0 || n < options.max_invocations; ++n) {
    if (options.stop && options.stop->load()) break;
    CBPIPE_ASSIGN_OR_RETURN(LambdaInvocation in, api->Next());
    const int64_t started_ms = env->NowMs();
    if (in.trace_id.empty()) {
      ::unsetenv("_X_AMZN_TRACE_ID");
    } else {
      ::setenv("_X_AMZN_TRACE_ID", in.trace_id.c_str(), 1);
    }
    const std::string root = ParseXRayTraceHeader(in.trace_id).root;
    LogContext ctx{.trace_id = TraceHex(root)};

    std::optional<StatusOr<std::string>> result;
    const int64_t budget_ms =
        in.deadline_ms - options.deadline_margin_ms - started_ms;
    if (in.deadline_ms > 0 && budget_ms <= 0) {
      result.emplace(DeadlineExceededError(
          "deadline: the invocation arrived " +
          std::to_string(in.deadline_ms - started_ms) +
          " ms before its deadline, inside the margin of " +
          std::to_string(options.deadline_margin_ms) + " ms"));
    } else {
      HandlerRun run(*handler, in);
      // No deadline header: wait as long as it takes.
      result = run.WaitFor(in.deadline_ms > 0 ? budget_ms : -1);
      if (!result) {
        result.emplace(DeadlineExceededError(
            "deadline: stopped " + std::to_string(options.deadline_margin_ms) +
            " ms before the invocation's deadline; the step is safe to "
            "retry"));
        // Answer first (in time), then wait for the handler to notice the
        // stop flag: its thread is joined before the next event.
        const Status posted = api->ReportError(in.request_id, ReportFor(result->status()));
        if (!posted.ok()) Log().Error(ctx, "lambda.api_error", posted.ToString());
        Log().Warn(ctx, "lambda.deadline", result->status().ToString(),
                   {LogField::Id("request_id", in.request_id),
                    LogField::Id("xray_trace_id", root),
                    {"duration_ms", env->NowMs() - started_ms}});
        run.Finish();
        continue;
      }
    }
    Status posted;
    if (result->ok()) {
      posted = api->Respond(in.request_id, **result);
      Log().Info(ctx, "lambda.invocation", "done",
                 {LogField::Id("request_id", in.request_id),
                  LogField::Id("xray_trace_id", root),
                  {"duration_ms", env->NowMs() - started_ms}});
    } else {
      const LambdaErrorReport report = ReportFor(result->status());
      posted = api->ReportError(in.request_id, report);
      Log().Warn(ctx, "lambda.invocation", report.error_message,
                 {LogField::Id("request_id", in.request_id),
                  LogField::Id("xray_trace_id", root),
                  LogField::Id("error_type", report.error_type),
                  {"duration_ms", env->NowMs() - started_ms}});
    }
    if (!posted.ok()) {
      // A response the API refused (too large, ...) is reported as an
      // error instead, so the invocation does not hang.
      Log().Error(ctx, "lambda.api_error", posted.ToString());
      if (posted.code() != StatusCode::kFailedPrecondition) return posted;
      const Status again = api->ReportError(in.request_id, ReportFor(posted));
      if (!again.ok()) Log().Error(ctx, "lambda.api_error", again.ToString());
    }
  }
  return OkStatus();
}

}  // namespace cbpipe
