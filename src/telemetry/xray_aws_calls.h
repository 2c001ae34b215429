// The X-Ray subsegment of every AWS call: an AwsCallObserver (aws/client.h)
// that opens a subsegment under the current span (the step the call is made
// in, XRayCurrentScope), sends its X-Amzn-Trace-Id, and fills it in when the
// call ends: HTTP method, URL (without query), status, AWS request id, and
// the error code of a failed call.
//
//   AwsClientOptions options;
//   options.observer = std::make_shared<XRayAwsCalls>();
//   // inside a traced step (workflow/xray_steps.h): each Send is a
//   // subsegment "S3"/"SQS"/... with "namespace":"aws".
//
// Outside a traced step (no current span, X-Ray off) Begin returns null and
// leaves the trace header alone: the call is not traced. Thread-safe (no
// state); Begin and End run on the calling thread, as the client promises.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "aws/client.h"

namespace cbpipe {

// The X-Ray name of an AWS service from its signing name: "s3" -> "S3",
// "sqs" -> "SQS", "dynamodb" -> "DynamoDB", "sns" -> "SNS",
// "secretsmanager" -> "SecretsManager"; any other is kept as it is.
std::string XRayAwsServiceName(std::string_view signing_name);

class XRayAwsCalls : public AwsCallObserver {
 public:
  std::unique_ptr<Call> Begin(const AwsCallRecord& call,
                              std::string* trace_header) override;
};

}  // namespace cbpipe
