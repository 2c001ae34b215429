// The Lambda runtime loop: initialise once, then take events from the
// runtime API one at a time and answer each with the handler's result or
// its error, until the process is stopped (or `max_invocations`).
//
//   LambdaRuntimeOptions options;
//   options.runtime_api = std::getenv("AWS_LAMBDA_RUNTIME_API");
//   Status ended = RunLambdaRuntime(options, [&]() -> StatusOr<LambdaHandler> {
//     CBPIPE_ASSIGN_OR_RETURN(auto app, LoadStuff());   // init
//     return LambdaHandler([app](const LambdaInvocation& in,
//                                const std::atomic<bool>& stop)
//                              -> StatusOr<std::string> { ... });
//   });
//   // only an init error or a lost runtime API ends it: exit non-zero
//
// Per invocation:
// - `_X_AMZN_TRACE_ID` is set to the invocation's trace id (unset when it
//   has none) before the handler runs, as the X-Ray SDKs expect;
// - the handler runs on a worker thread (owned, joined before the next
//   `next`). When it has not returned `deadline_margin_ms` before
//   Lambda-Runtime-Deadline-Ms, `stop` is set and the invocation is
//   answered Cbpipe.Transient ("deadline") at once, rather than the process
//   being killed mid-work; the handler's later result is dropped (its
//   partial work is redoable: every step is idempotent). An invocation that
//   arrives with less than the margin left is answered so without running;
// - a handler error is reported as {errorType: LambdaErrorType(status),
//   errorMessage: status.ToString() with card numbers masked}, so the
//   message starts with the status code name ("UNAVAILABLE: ...") and
//   StatusFromString (workflow/steps.h) recovers the code from a Catch's
//   Cause;
// - one JSON log line (telemetry/log.h) with the request id, the X-Ray
//   trace id, the duration and the outcome.
// Init: when `init` fails, its error is posted to /runtime/init/error as
// Cbpipe.Init and returned.
// Errors returned: the init error; the runtime API's (kUnavailable when it
// went away). Thread safety: call once per process.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "lambda/runtime_client.h"

namespace cbpipe {

// One invocation's work: the event in, the response JSON out. `stop` is set
// when the deadline is near: return soon (any error).
using LambdaHandler = std::function<StatusOr<std::string>(
    const LambdaInvocation& invocation, const std::atomic<bool>& stop)>;

struct LambdaRuntimeOptions {
  std::string runtime_api;  // AWS_LAMBDA_RUNTIME_API: "host:port"
  // Answered before the deadline by this much (the post must arrive in
  // time): CBPIPE_LAMBDA_DEADLINE_MARGIN_MS.
  int64_t deadline_margin_ms = 1000;
  // Return OK after this many invocations; 0 = never (tests set it).
  int64_t max_invocations = 0;
  Env* env = nullptr;  // the clock; nullptr: Env::Default()
  // Set by another thread to end the loop after the current invocation
  // (the wait for `next` is not cut short). May be null.
  const std::atomic<bool>* stop = nullptr;
};

Status RunLambdaRuntime(const LambdaRuntimeOptions& options,
                        const std::function<StatusOr<LambdaHandler>()>& init);

}  // namespace cbpipe
