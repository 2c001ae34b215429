// The workflow definition (definition.h) as an AWS Step Functions state
// machine: what `cbpipe export-asl` writes and deploy/aws/cbpipe.asl.json
// holds, so Step Functions and the embedded engine run one document.
//
//   StatusOr<WorkflowDefinition> def = CbpipeWorkflowDefinition();
//   StatusOr<nlohmann::json> asl = ExportAsl(*def, AslExportOptions{});
//   std::string text = AslText(*asl);  // sorted keys, 2 spaces, final \n
//
// What the export does to the definition (docs/aws.md, "The state
// machine"):
// - Task: "Resource": "${<Name>FunctionArn}" (state "reject_input" ->
//   ${RejectInputFunctionArn}), a DefinitionSubstitutions placeholder the
//   CloudFormation template fills with the Lambda function whose _HANDLER
//   is the state's name. The function's response is the state's result.
// - Error names: a Status code name becomes the errorType the Lambda
//   runtime reports for it (AslErrorName): UNAVAILABLE, DEADLINE_EXCEEDED,
//   ABORTED -> "Cbpipe.Transient"; INVALID_ARGUMENT -> "Cbpipe.InvalidInput";
//   every other code -> "Cbpipe.Permanent". "States.*" names stay. A rule
//   naming part of a class (UNAVAILABLE without ABORTED) cannot be told
//   apart on AWS and is an INVALID_ARGUMENT error of the export. A Task's
//   retrier of Cbpipe.Transient also retries the Lambda service's own
//   transient errors (Lambda.ServiceException, Lambda.AWSLambdaException,
//   Lambda.SdkClientException, Lambda.TooManyRequestsException), on the
//   same schedule.
// - Retry: every field written out (defaults made explicit):
//   IntervalSeconds, BackoffRate, MaxAttempts, MaxDelaySeconds (when set),
//   JitterStrategy. Step Functions takes whole seconds: a fractional
//   IntervalSeconds or MaxDelaySeconds is INVALID_ARGUMENT.
// - Map: inline (ItemProcessor.ProcessorConfig.Mode INLINE). An inline Map
//   has no ToleratedFailurePercentage: 100 becomes a Catch (States.ALL,
//   ResultPath $.error) on every Task and Map of the ItemProcessor to a Pass
//   state "<map>_item_failed" that ends the item, so a failed item's entry is its
//   state's input with "error": {Error, Cause}, as the engine makes it (the
//   item's input when its first state failed). 0 is dropped; anything else
//   is INVALID_ARGUMENT. prefetch_first_task has no equivalent (items run
//   MaxConcurrency at a time).
// - The "cbpipe" member of each state is dropped: schemas are checked by
//   the step itself, redrive points are Step Functions' own redrive, and
//   retry_from_input (a destination's own retry policy) cannot be expressed:
//   on AWS the state's Retry as written applies to every destination.
// - The failure path: after options.dead_letter_after (cbpipe's
//   record_failure) come "dead_letter", an SQS SendMessage integration
//   (${DeadLetterQueueUrl}; body {execution, input, run_id, error}), and
//   "alert", an SNS Publish integration (${AlertTopicArn}); then the
//   state's own Next. The state gets a Catch to dead_letter so a failed
//   notification never loses the dead letter. After options.alert_after_end
//   (cbpipe's reject_input, an End state) comes "alert_rejected", an SNS
//   Publish of the rejection.
//
// Errors: INVALID_ARGUMENT naming the state and key
// ("States.scan.Retry[0].IntervalSeconds: Step Functions takes whole
// seconds"); FAILED_PRECONDITION when a state the options name is missing or
// of the wrong shape, or a name the export adds is taken (Step Functions
// wants state names unique across the document, Map processors included). Pure: no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"
#include "workflow/definition.h"

namespace cbpipe {

struct AslExportOptions {
  // The Task after which a failed run goes to the dead-letter queue and an
  // alert is published; "" adds no failure path.
  std::string dead_letter_after = "record_failure";
  // An End Task after which an alert is published (a rejected input); ""
  // adds none.
  std::string alert_after_end = "reject_input";
};

// The Step Functions definition of `def` (see above).
StatusOr<nlohmann::json> ExportAsl(const WorkflowDefinition& def,
                                   const AslExportOptions& options);

// The document as committed: keys sorted, 2-space indent, a final newline.
std::string AslText(const nlohmann::json& asl);

// The errorType a Lambda handler reports for a Status code, which the
// exported Retry and Catch rules match: "Cbpipe.Transient",
// "Cbpipe.InvalidInput" or "Cbpipe.Permanent" (kOk: "").
std::string_view AslErrorName(StatusCode code);

// The DefinitionSubstitutions name of a Task's function ARN:
// "reject_input" -> "RejectInputFunctionArn".
std::string AslFunctionArnVariable(std::string_view state);

}  // namespace cbpipe
