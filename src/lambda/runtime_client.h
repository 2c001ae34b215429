// A client of the Lambda runtime API (the custom runtime protocol,
// 2018-06-01) at AWS_LAMBDA_RUNTIME_API ("host:port"), over libcurl with
// one connection reused for every call:
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<LambdaRuntimeClient> api,
//       LambdaRuntimeClient::Create(std::getenv("AWS_LAMBDA_RUNTIME_API")));
//   for (;;) {
//     CBPIPE_ASSIGN_OR_RETURN(LambdaInvocation in, api->Next());  // blocks
//     CBPIPE_RETURN_IF_ERROR(api->Respond(in.request_id, R"({"ok":1})"));
//     // or api->ReportError(in.request_id, {"Cbpipe.Transient", "..."})
//   }
//   // before the first Next, when the function cannot start:
//   api->ReportInitError({"Cbpipe.Init", "config: ..."});
//
// Calls: GET /2018-06-01/runtime/invocation/next (no timeout: it waits as
// long as Lambda has no event), POST .../invocation/{id}/response,
// .../invocation/{id}/error and /2018-06-01/runtime/init/error (an error is
// {"errorType","errorMessage"} with the Lambda-Runtime-Function-Error-Type
// header).
// Errors: kUnavailable when the API cannot be reached or the connection
// broke; kInvalidArgument for a bad host:port or a `next` answer without a
// request id; kFailedPrecondition when the API refused a post (HTTP 4xx:
// an unknown or already answered request id, a payload over the limit,
// naming the status and the API's errorType); kInternal otherwise.
// Messages hold no event or response body.
// Thread safety: one thread at a time (the runtime loop's). Ownership: the
// client owns its curl handle.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace cbpipe {

// One event, as `next` delivered it.
struct LambdaInvocation {
  std::string request_id;      // Lambda-Runtime-Aws-Request-Id
  int64_t deadline_ms = 0;     // Lambda-Runtime-Deadline-Ms (epoch ms)
  std::string trace_id;        // Lambda-Runtime-Trace-Id ("Root=1-...")
  std::string client_context;  // Lambda-Runtime-Client-Context ("" if none)
  std::string cognito_identity;      // Lambda-Runtime-Cognito-Identity
  std::string invoked_function_arn;  // Lambda-Runtime-Invoked-Function-Arn
  std::string event;                 // the body: the event's JSON
};

// What a failed invocation (or init) reports.
struct LambdaErrorReport {
  std::string error_type;  // "Cbpipe.Transient"
  std::string error_message;
};

class LambdaRuntimeClient {
 public:
  // `host_port`: AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001"). No I/O yet.
  static StatusOr<std::unique_ptr<LambdaRuntimeClient>> Create(
      std::string_view host_port);
  ~LambdaRuntimeClient();
  LambdaRuntimeClient(const LambdaRuntimeClient&) = delete;
  LambdaRuntimeClient& operator=(const LambdaRuntimeClient&) = delete;

  // Waits for the next event.
  StatusOr<LambdaInvocation> Next();
  // `body`: the handler's result (JSON).
  Status Respond(const std::string& request_id, std::string_view body);
  Status ReportError(const std::string& request_id,
                     const LambdaErrorReport& error);
  Status ReportInitError(const LambdaErrorReport& error);

  // Connections opened so far (1 while the API keeps it alive).
  int64_t connections_opened() const { return connections_opened_; }

 private:
  explicit LambdaRuntimeClient(std::string base);
  struct Answer {
    long status = 0;
    std::string body;
    std::string header_lines;
  };
  StatusOr<Answer> Call(const char* method, const std::string& path,
                        std::string_view body,
                        std::string_view error_type);
  Status Post(const std::string& path, std::string_view body,
              std::string_view error_type, std::string_view what);

  const std::string base_;  // "http://host:port/2018-06-01"
  void* curl_ = nullptr;    // CURL*
  int64_t connections_opened_ = 0;
};

}  // namespace cbpipe
