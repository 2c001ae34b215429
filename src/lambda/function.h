// cbpipe as a Lambda function: the settings Lambda's environment gives,
// the ports opened from the config once per process (init), and one
// handler per step, chosen by _HANDLER:
//
//   CBPIPE_ASSIGN_OR_RETURN(LambdaSettings s, LambdaSettingsFromEnv(std::getenv));
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<LambdaFunction> f,
//                           LambdaFunction::Create(s));             // init
//   StatusOr<std::string> out = f->Handle(invocation, stop);       // each event
//
// Handlers (docs/aws.md "Lambda functions"):
// - every Task state of cbpipe_workflow.json (scan, verify, deliver,
//   notify, settle, reject_input, record_failure): RunStep(_HANDLER, event,
//   ports) (workflow/steps.h); the event and the response are the step's
//   JSON (keys, counts, ids: never records);
// - start: an SQS batch (Records whose bodies are S3 event notifications,
//   workflow/s3_events.h) -> one Step Functions StartExecution per created
//   object, named by the object's content (below), so an object S3 reports
//   twice starts one execution (ExecutionAlreadyExists counts as started).
//   Answers {"batchItemFailures": [{"itemIdentifier": messageId}]} for the
//   messages to try again (SQS ReportBatchItemFailures).
//
// An execution's name: sha256 hex of "bucket/key" and the object's ETag
// (S3's digest of its content), or of its bytes when the event has no
// ETag; its input is the run header {run_id: the name, trace_id: the
// name's first 32 hex digits, now_ms: when it was started} with
// {input_key (relative to [service] object_store), input_name,
// name_by_content: true}.
//
// The config: CBPIPE_CONFIG (a TOML file or s3:// object) when it is set;
// otherwise the template's CBPIPE_* variables when any is set
// (config/lambda_environment.h; deliver then completes each destination's
// connection from its secret, below); otherwise cbpipe.toml in the task
// root. CBPIPE_CONFIG together with a template variable is an error naming
// them (one deployment gives the config one way).
// Ports, from the config: inputs = [service] object_store (start opens only
// it), work = [service] work_store, ledger = [service] ledger (all required
// for the steps: a function keeps nothing on its disk between
// invocations), the notifier
// from [notify.sns] (others are not opened in Lambda), secrets by reference
// (aws-sm: from Secrets Manager, cached), metrics as CloudWatch EMF lines
// on stdout (whatever [telemetry] metrics says), flushed after each
// invocation with the notifier. A relative [output] work_dir is taken
// under TMPDIR (default /tmp): the task root is read-only.
// Destinations from the template variables (deliver only, at init): each
// one's secret ("aws-sm:SECRET#password") is read once for its other keys:
// "username" (required unless the URL has user@), "private_key" (then the
// login uses it, and "password" becomes optional), "host_key_sha256"
// (sftp; required, as a TOML destination needs known_hosts or it). The
// values stay references (resolved at each connection, rotation-safe)
// except username and host_key_sha256, which are not secret.
// Tracing: with AWS_XRAY_DAEMON_ADDRESS set (Lambda sets it), each
// invocation whose _X_AMZN_TRACE_ID is sampled sends a subsegment named by
// the handler under the trace's Parent (Lambda's function segment), with
// the AWS calls made in it as its subsegments (telemetry/xray.h).
// Errors (Create): kInvalidArgument for a missing or bad setting, naming
// the variable or key; what opening a port or reading a secret returns. Thread safety: Handle
// one invocation at a time (the runtime loop's); the ports it uses are
// thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "config/config.h"
#include "config/lambda_environment.h"
#include "lambda/runtime_client.h"
#include "workflow/s3_events.h"

namespace cbpipe {

// What Lambda's environment tells the function.
struct LambdaSettings {
  std::string runtime_api;  // AWS_LAMBDA_RUNTIME_API (required)
  std::string handler;      // _HANDLER (required): a step name or "start"
  std::string task_root;    // LAMBDA_TASK_ROOT ("" = the current folder)
  // CBPIPE_CONFIG: a TOML file, absolute or relative to task_root, or
  // s3://bucket/key (read at init with the default [aws] settings);
  // default "cbpipe.toml" in task_root when no template variable is set.
  std::string config = "cbpipe.toml";
  // The config from the template's CBPIPE_* variables, when CBPIPE_CONFIG
  // is not set and they are (config/lambda_environment.h).
  std::optional<Config> environment_config;
  // CBPIPE_STATE_MACHINE_ARN: what `start` starts (required for it).
  std::string state_machine_arn;
  // CBPIPE_LAMBDA_DEADLINE_MARGIN_MS (default 1000).
  int64_t deadline_margin_ms = 1000;
};

// kInvalidArgument naming the variable when one is missing or malformed.
StatusOr<LambdaSettings> LambdaSettingsFromEnv(
    const std::function<const char*(const char*)>& getenv);

// The handler names: the workflow's Task states, then "start".
std::vector<std::string> LambdaHandlerNames();

// The CBPIPE_* variables a deployment without CBPIPE_CONFIG gives
// `handler`'s function, required ones marked: the config's
// (LambdaConfigVariables) and the runtime's own (CBPIPE_STATE_MACHINE_ARN
// for start, CBPIPE_LAMBDA_DEADLINE_MARGIN_MS). Checked against
// deploy/aws/cbpipe.yaml by lambda_template_test.
std::vector<LambdaConfigVariable> LambdaVariablesOf(const std::string& handler);

class LambdaFunction {
 public:
  static StatusOr<std::unique_ptr<LambdaFunction>> Create(
      const LambdaSettings& settings);
  ~LambdaFunction();
  LambdaFunction(const LambdaFunction&) = delete;
  LambdaFunction& operator=(const LambdaFunction&) = delete;

  // The handler's response JSON, or its error. `stop`: the deadline is
  // near (checked between executions by start and between files by the
  // steps).
  StatusOr<std::string> Handle(const LambdaInvocation& invocation,
                               const std::atomic<bool>& stop);

 private:
  struct State;
  explicit LambdaFunction(std::unique_ptr<State> state);
  StatusOr<std::string> Start(const std::string& event,
                              const std::atomic<bool>& stop);
  // One StartExecution for `o` (under the inputs' s3://bucket/prefix).
  Status StartExecution(const std::string& bucket, const std::string& prefix,
                        const S3ObjectRef& o);
  std::unique_ptr<State> s_;
};

}  // namespace cbpipe
