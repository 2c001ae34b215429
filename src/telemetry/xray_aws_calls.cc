#include "telemetry/xray_aws_calls.h"

#include "telemetry/xray.h"

namespace cbpipe {
namespace {

class SpanCall : public AwsCallObserver::Call {
 public:
  explicit SpanCall(XRaySpan span) : span_(std::move(span)) {}
  void End(const AwsCallRecord& call) override {
    span_.SetHttp(call.method, call.url, call.http_status);
    span_.SetAws(call.operation, call.region, call.request_id);
    if (call.attempts > 1)
      span_.Annotate("attempts", std::to_string(call.attempts));
    if (call.code != StatusCode::kOk) {
      // The AWS error code ("NoSuchKey"), never the message: a server may
      // echo what it was sent.
      span_.SetStatus(Status(call.code, call.error_code.empty()
                                            ? std::string("AWS call failed")
                                            : call.error_code));
    }
    span_.End();
  }

 private:
  XRaySpan span_;
};

}  // namespace

std::string XRayAwsServiceName(std::string_view signing_name) {
  if (signing_name == "s3") return "S3";
  if (signing_name == "sqs") return "SQS";
  if (signing_name == "dynamodb") return "DynamoDB";
  if (signing_name == "sns") return "SNS";
  if (signing_name == "secretsmanager") return "SecretsManager";
  return std::string(signing_name);
}

std::unique_ptr<AwsCallObserver::Call> XRayAwsCalls::Begin(
    const AwsCallRecord& call, std::string* trace_header) {
  XRaySpan span = XRayBeginAwsCall(XRayAwsServiceName(call.service),
                                   call.operation, call.region);
  if (!span.active()) return nullptr;
  *trace_header = span.TraceHeader();
  return std::make_unique<SpanCall>(std::move(span));
}

}  // namespace cbpipe
