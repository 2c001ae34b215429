// AwsClient: the one HTTP client under every AWS adapter (S3, SQS,
// DynamoDB, SNS, Secrets Manager, CloudWatch). It resolves each service's
// endpoint, signs every request (aws/sigv4.h), reuses connections, retries
// throttling and transient failures with backoff and full jitter, and turns
// AWS error answers (XML or JSON) into a Status naming the AWS error code
// and request id.
//
//   AwsClientOptions options;
//   options.region = "eu-west-1";
//   options.endpoints["s3"] = "http://127.0.0.1:5000";   // moto, MinIO
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<AwsClient> aws,
//                           AwsClient::Create(options, credentials));
//
//   AwsRequest get;                                   // REST (S3)
//   get.service = "s3";  get.operation = "GetObject";
//   get.resource = "s3://bucket/key";
//   get.bucket = "bucket";  get.path = "/key";         // decoded; encoded here
//   get.on_data = [&](std::string_view chunk) { return sink.Write(chunk); };
//   CBPIPE_ASSIGN_OR_RETURN(AwsResponse r, aws->Send(get));
//
//   // JSON protocol (SQS, DynamoDB, Secrets Manager): the answer's JSON
//   CBPIPE_ASSIGN_OR_RETURN(std::string out, aws->CallJson(
//       "sqs", "AmazonSQS.GetQueueUrl", R"({"QueueName":"work"})"));
//   // Query protocol (SNS): the answer's XML (aws/xml.h reads it)
//   CBPIPE_ASSIGN_OR_RETURN(std::string xml, aws->CallQuery(
//       "sns", "CreateTopic", "2010-03-31", {{"Name", "alerts"}}));
//
// Errors (Status codes; the message is "S3 GetObject s3://b/k: NoSuchKey:
// The specified key does not exist. (request id 4442587FB7D0A2F9)"; pass
// an AwsError* to get the parts):
// - kNotFound: NoSuchKey, NoSuchBucket, NoSuchUpload,
//   ResourceNotFoundException, QueueDoesNotExist, NotFound, HTTP 404.
// - kUnauthenticated: ExpiredToken(Exception), InvalidClientTokenId,
//   UnrecognizedClientException, SignatureDoesNotMatch, InvalidAccessKeyId,
//   ... and credentials that cannot be found. kPermissionDenied:
//   AccessDenied(Exception), AuthorizationError, HTTP 403.
// - kFailedPrecondition: ConditionalCheckFailedException,
//   PreconditionFailed, HTTP 412. kAlreadyExists: BucketAlreadyOwnedByYou,
//   ResourceExistsException, QueueNameExists, ...
// - kUnavailable: throttling (SlowDown, Throttling, ThrottlingException,
//   RequestLimitExceeded, ProvisionedThroughputExceededException, ...),
//   HTTP 429/500/502/503/504, connection refused/reset; kDeadlineExceeded:
//   a connect or request timeout. These are retried first (see retry).
// - kInvalidArgument: any other 4xx (ValidationException, ...); kInternal:
//   anything else. Messages never hold the secret key, session token or
//   signature (they are scrubbed even from what the server said).
//
// Retries: throttling, HTTP 429/500/502/503/504 and connection failures are
// retried up to options.retry.max_attempts with exponential backoff and
// full jitter (common/retry.h, waits on options.env so tests use FakeEnv);
// never a 4xx such as AccessDenied or NoSuchKey. A streamed request body is
// retried only when it can rewind; a streamed response only when no byte
// reached on_data yet. An authentication error (ExpiredToken, ...) makes
// the client call provider->Invalidate() and try once more with fresh
// credentials, outside the retry budget.
//
// Thread safety: Send/CallJson/CallQuery/Presign may be called from many
// threads at once; each call borrows its own pooled connection. Callbacks
// (body read, on_data) run on the calling thread. Ownership: the client
// shares the credentials provider; destroy the client after every call
// returned. No thread is started.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/options.h"
#include "aws/sigv4.h"
#include "common/env.h"
#include "common/retry.h"
#include "common/status.h"

namespace cbpipe {

// One call (all its attempts), as the observer sees it. Never holds a
// secret.
struct AwsCallRecord {
  std::string service;    // signing name: "s3"
  std::string operation;  // "GetObject"
  std::string resource;   // "s3://bucket/key"
  std::string region;
  std::string method;    // "GET"
  std::string url;       // without the query (RedactUrl)
  int64_t start_ms = 0;  // options.env clock
  int64_t end_ms = 0;    // End only
  int attempts = 0;      // End only
  int http_status = 0;   // of the last attempt; 0 when none answered
  StatusCode code = StatusCode::kOk;
  std::string error_code;  // AWS error code of the last attempt
  std::string request_id;
  int64_t new_connections = 0;  // TCP connections opened (0: all reused)
  std::string trace_header;     // X-Amzn-Trace-Id sent ("" when none)
};

// Watches every call: the X-Ray subsegment per AWS call (telemetry/),
// metrics. Implementations must be thread-safe (one client serves many
// threads); Begin and End run on the calling thread, so a thread-local
// "current span" is visible.
//
//   class XRayAwsCalls : public AwsCallObserver {
//     std::unique_ptr<Call> Begin(const AwsCallRecord& call,
//                                 std::string* trace_header) override {
//       auto span = XRayBeginAwsCall(display, call.operation, call.region);
//       if (span.active()) *trace_header = span.TraceHeader();
//       return std::make_unique<SpanCall>(std::move(span));  // End fills it
//     }
//   };
class AwsCallObserver {
 public:
  class Call {
   public:
    virtual ~Call() = default;
    // Once, when the call ended (success or not).
    virtual void End(const AwsCallRecord& call) = 0;
  };
  virtual ~AwsCallObserver() = default;
  // A call begins. `trace_header` holds the request's X-Amzn-Trace-Id (""
  // when none); set it to send another. May return null.
  virtual std::unique_ptr<Call> Begin(const AwsCallRecord& call,
                                      std::string* trace_header) = 0;
};

struct AwsClientOptions {
  std::string region;  // required ("eu-west-1")
  // Endpoint override per service signing name ("s3", "sqs", ...):
  // "http://127.0.0.1:5000" for moto, a MinIO URL. Without one:
  // https://SERVICE.REGION.amazonaws.com.
  std::map<std::string, std::string> endpoints;
  AwsS3Addressing s3_addressing = AwsS3Addressing::kAuto;
  double connect_timeout_seconds = 10;
  // The whole attempt, transfer included; 0 = no limit (large objects:
  // rely on idle_timeout_seconds).
  double request_timeout_seconds = 0;
  // An attempt fails when less than one byte moved for this long.
  double idle_timeout_seconds = 60;
  RetryPolicy retry = {.interval_seconds = 0.1,
                       .backoff_rate = 2.0,
                       .max_attempts = 4,
                       .max_delay_seconds = 20.0,
                       .full_jitter = true};
  size_t max_idle_connections = 16;         // pooled handles kept for reuse
  Env* env = nullptr;                       // nullptr: Env::Default()
  const std::atomic<bool>* stop = nullptr;  // cuts retry waits short
  std::string ca_file;                      // "" = system CAs
  std::string user_agent = "cbpipe";
  // Sees every call (may be null). Shared: it must outlive no one.
  std::shared_ptr<AwsCallObserver> observer;
};

// A request body streamed from the caller: sent with UNSIGNED-PAYLOAD, or
// with its SHA-256 when the caller knows it.
struct AwsRequestBody {
  int64_t length = 0;  // exact byte count (Content-Length)
  // Lower-case hex SHA-256 of the body, signed as x-amz-content-sha256 (S3:
  // the server refuses a body that does not match it, XAmzContentSHA256
  // Mismatch, and stores nothing); "" = UNSIGNED-PAYLOAD.
  std::string sha256;
  // Fills up to `size` bytes; returns how many (0 only at the end) or an
  // error, which fails the call without retry.
  std::function<StatusOr<size_t>(char* buffer, size_t size)> read;
  // Starts the body again from its first byte for a retry; false (or no
  // function) when it cannot, and the call is then not retried.
  std::function<bool()> rewind;
};

struct AwsRequest {
  std::string service;    // signing name: "s3", "sqs", "dynamodb", ...
  std::string operation;  // for errors and AwsCallRecord: "PutObject"
  std::string resource;   // for errors: "s3://bucket/key", a queue URL
  std::string method = "GET";
  std::string bucket;      // S3 only: addressed per s3_addressing
  std::string path = "/";  // decoded ("/my key"); encoded once here
  AwsHeaderList query;     // decoded
  AwsHeaderList headers;   // Content-Type, x-amz-*, If-None-Match, ...
  std::string body;        // a small body, hashed into the signature
  std::optional<AwsRequestBody> body_stream;  // large: UNSIGNED-PAYLOAD
  // A 2xx answer's body goes here in pieces instead of AwsResponse::body;
  // an error stops the transfer and is returned as is.
  std::function<Status(std::string_view chunk)> on_data;
  std::string trace_header;  // X-Amzn-Trace-Id value; "" = none
};

struct AwsResponse {
  int http_status = 0;
  AwsHeaderList headers;  // names lower-cased
  std::string body;       // empty when on_data took it
  std::string request_id;
  // The first value of header `lower_name`, "" when absent.
  std::string Header(std::string_view lower_name) const;
};

// The parts of a failed call.
struct AwsError {
  int http_status = 0;  // 0 when no answer came
  std::string code;     // "NoSuchKey"; "" when the answer had none
  std::string message;  // the server's message (scrubbed)
  std::string request_id;
};

class AwsClient {
 public:
  // kInvalidArgument for a bad option (no region, a malformed endpoint).
  static StatusOr<std::unique_ptr<AwsClient>> Create(
      AwsClientOptions options,
      std::shared_ptr<AwsCredentialsProvider> credentials);
  ~AwsClient();
  AwsClient(const AwsClient&) = delete;
  AwsClient& operator=(const AwsClient&) = delete;

  // One signed call, retried as the header says. A non-2xx answer is an
  // error; `error` (may be null) receives its parts.
  StatusOr<AwsResponse> Send(const AwsRequest& request,
                             AwsError* error = nullptr);

  // The JSON protocol: POST / with X-Amz-Target: `target`
  // ("DynamoDB_20120810.PutItem") and `json`; returns the answer's JSON
  // text. Content type application/x-amz-json-1.1 for secretsmanager and
  // logs, 1.0 otherwise. `resource` names the object in errors.
  StatusOr<std::string> CallJson(std::string_view service,
                                 std::string_view target, std::string_view json,
                                 std::string_view resource = "",
                                 std::string_view trace_header = "",
                                 AwsError* error = nullptr);

  // The Query protocol: POST / form-encoded Action, Version and `params`;
  // returns the answer's XML.
  StatusOr<std::string> CallQuery(std::string_view service,
                                  std::string_view action,
                                  std::string_view version,
                                  const AwsHeaderList& params,
                                  std::string_view resource = "",
                                  std::string_view trace_header = "",
                                  AwsError* error = nullptr);

  // A presigned URL for `request` (GET/PUT of an S3 object), valid
  // `expires_seconds` from now.
  StatusOr<std::string> Presign(const AwsRequest& request,
                                int64_t expires_seconds);

  // "https://sqs.eu-west-1.amazonaws.com" or the override, no trailing '/'.
  std::string EndpointUrl(std::string_view service) const;
  const AwsClientOptions& options() const { return options_; }
  // The provider's Source() now ("" for the default chain before its first
  // successful Get).
  std::string credentials_source() const { return credentials_->Source(); }

  // "S3", "SQS", "DynamoDB", "SNS", "Secrets Manager", ... for messages.
  static std::string ServiceDisplayName(std::string_view service);

 private:
  struct Target;  // URL, Host header, canonical path of one request

  AwsClient(AwsClientOptions options,
            std::shared_ptr<AwsCredentialsProvider> credentials);
  StatusOr<Target> Resolve(const AwsRequest& request) const;
  void* Borrow();             // CURL*
  void Return(void* handle);  // CURL*

  const AwsClientOptions options_;
  const std::shared_ptr<AwsCredentialsProvider> credentials_;
  Env* const env_;
  std::mutex mu_;
  std::vector<void*> idle_;  // guarded by mu_
};

// The Status code an AWS error code (and HTTP status, when the code is
// unknown) maps to. Exposed for the adapters' tests.
StatusCode AwsErrorStatusCode(std::string_view aws_code, int http_status);
// True for throttling codes and transient HTTP statuses.
bool AwsErrorIsRetryable(std::string_view aws_code, int http_status);
// True for codes meaning "these credentials are stale": refresh once.
bool AwsErrorIsExpiredCredentials(std::string_view aws_code);
// Reads code, message and request id from an error answer's body (XML or
// JSON) and headers.
AwsError ParseAwsErrorBody(int http_status, const AwsHeaderList& headers,
                           std::string_view body);

}  // namespace cbpipe
