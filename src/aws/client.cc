#include "aws/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "aws/xml.h"
#include "common/curl_global.h"
#include "common/url.h"
#include "nlohmann/json.hpp"

namespace cbpipe {
namespace {

// Error bodies are small; a misbehaving server must not fill the memory.
constexpr size_t kMaxErrorBody = 64 * 1024;
// The most an answer body is sized for up front from its Content-Length.
constexpr curl_off_t kMaxReservedBody = 256 << 20;
constexpr char kRedacted[] = "[redacted]";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// Replaces every occurrence of each secret in `text`.
std::string Scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < 4) continue;  // too short to be a secret; never match
    for (size_t at = text.find(secret); at != std::string::npos;
         at = text.find(secret, at + std::strlen(kRedacted))) {
      text.replace(at, secret.size(), kRedacted);
    }
  }
  return text;
}

struct ParsedEndpoint {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port]
};

StatusOr<ParsedEndpoint> ParseEndpoint(std::string_view url) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgumentError("endpoint \"" + RedactUrl(url) +
                                "\" is not http(s)://host[:port]");
  }
  ParsedEndpoint out;
  out.scheme = Lower(url.substr(0, sep));
  std::string_view rest = url.substr(sep + 3);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if ((out.scheme != "http" && out.scheme != "https") || rest.empty() ||
      rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return InvalidArgumentError("endpoint \"" + RedactUrl(url) +
                                "\" is not http(s)://host[:port]");
  }
  out.authority = std::string(rest);
  return out;
}

// AWS error codes by meaning. Codes are compared exactly (the JSON
// protocol's "prefix#" and ":suffix" are stripped first).
bool In(std::string_view code, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), code) != set.end();
}

bool IsThrottling(std::string_view code) {
  return In(
      code,
      {"SlowDown", "Throttling", "ThrottlingException", "ThrottledException",
       "RequestThrottled", "RequestThrottledException", "RequestLimitExceeded",
       "TooManyRequestsException", "ProvisionedThroughputExceededException",
       "TransactionInProgressException", "BandwidthLimitExceeded",
       "LimitExceededException", "EC2ThrottledException",
       "PriorRequestNotComplete"});
}

bool IsTransientServerCode(std::string_view code) {
  return In(code, {"InternalError", "InternalFailure", "InternalServerError",
                   "ServiceUnavailable", "ServiceUnavailableException",
                   "RequestTimeout", "RequestTimeoutException",
                   "InternalServerErrorException"});
}

bool IsTransientCurl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_FAIL_REWIND:  // a dead connection and a body that cannot
                                  // rewind
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return true;
    default: return false;
  }
}

// The JSON protocol's "com.amazonaws.dynamodb.v20120810#ResourceNotFound
// Exception" or "ValidationException:http://..." -> the bare code.
std::string BareCode(std::string code) {
  if (size_t hash = code.rfind('#'); hash != std::string::npos) {
    code.erase(0, hash + 1);
  }
  if (size_t colon = code.find(':'); colon != std::string::npos) {
    code.erase(colon);
  }
  return Trim(code);
}

}  // namespace

std::string AwsResponse::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

StatusCode AwsErrorStatusCode(std::string_view code, int http_status) {
  if (In(code, {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NoSuchVersion",
                "NotFound", "NotFoundException", "ResourceNotFoundException",
                "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
                "NoSuchEntity", "NoSuchEntityException"})) {
    return StatusCode::kNotFound;
  }
  if (AwsErrorIsExpiredCredentials(code) ||
      In(code, {"SignatureDoesNotMatch", "IncompleteSignature",
                "InvalidSignatureException", "MissingAuthenticationToken",
                "MissingAuthenticationTokenException", "AuthFailure",
                "RequestExpired", "InvalidSecurity"})) {
    return StatusCode::kUnauthenticated;
  }
  if (In(code, {"AccessDenied", "AccessDeniedException", "AllAccessDisabled",
                "AuthorizationError", "Forbidden", "KMS.AccessDeniedException",
                "AccountProblem"})) {
    return StatusCode::kPermissionDenied;
  }
  if (In(code, {"ConditionalCheckFailedException", "PreconditionFailed",
                "InvalidObjectState", "TransactionCanceledException",
                "InvalidRequestException"})) {
    return StatusCode::kFailedPrecondition;
  }
  if (In(code, {"BucketAlreadyExists", "BucketAlreadyOwnedByYou",
                "ResourceExistsException", "QueueNameExists",
                "QueueAlreadyExists", "ResourceInUseException",
                "TableAlreadyExistsException", "EntityAlreadyExists"})) {
    return StatusCode::kAlreadyExists;
  }
  if (In(code, {"TransactionConflictException", "OperationAborted"})) {
    return StatusCode::kAborted;
  }
  if (In(code, {"EntityTooLarge", "ItemCollectionSizeLimitExceededException",
                "OverLimit", "KeyTooLongError"})) {
    return StatusCode::kResourceExhausted;
  }
  if (In(code, {"RequestTimeout", "RequestTimeoutException"})) {
    return StatusCode::kDeadlineExceeded;
  }
  if (AwsErrorIsRetryable(code, 0)) return StatusCode::kUnavailable;
  switch (http_status) {
    case 404: return StatusCode::kNotFound;
    case 401: return StatusCode::kUnauthenticated;
    case 403: return StatusCode::kPermissionDenied;
    case 409: return StatusCode::kAborted;
    case 412: return StatusCode::kFailedPrecondition;
    case 429:
    case 500:
    case 502:
    case 503:
    case 504: return StatusCode::kUnavailable;
    default: break;
  }
  if (http_status >= 400 && http_status < 500) {
    return StatusCode::kInvalidArgument;
  }
  return StatusCode::kInternal;
}

bool AwsErrorIsRetryable(std::string_view code, int http_status) {
  if (IsThrottling(code) || IsTransientServerCode(code)) return true;
  return http_status == 429 || http_status == 500 || http_status == 502 ||
         http_status == 503 || http_status == 504;
}

bool AwsErrorIsExpiredCredentials(std::string_view code) {
  return In(code,
            {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
             "UnrecognizedClientException", "InvalidAccessKeyId",
             "InvalidToken", "TokenRefreshRequired", "InvalidIdentityToken"});
}

AwsError ParseAwsErrorBody(int http_status, const AwsHeaderList& headers,
                           std::string_view body) {
  AwsError error;
  error.http_status = http_status;
  std::string error_type;
  for (const auto& [name, value] : headers) {
    std::string key = Lower(name);
    if (key == "x-amz-request-id" || key == "x-amzn-requestid") {
      if (error.request_id.empty()) error.request_id = value;
    } else if (key == "x-amzn-errortype") {
      error_type = value;
    }
  }
  std::string_view trimmed = body;
  while (!trimmed.empty() &&
         std::isspace(static_cast<unsigned char>(trimmed.front()))) {
    trimmed.remove_prefix(1);
  }
  if (!trimmed.empty() && trimmed.front() == '{') {
    nlohmann::json json = nlohmann::json::parse(trimmed, nullptr, false);
    if (json.is_object()) {
      for (const char* key : {"__type", "code", "Code"}) {
        if (json.contains(key) && json[key].is_string()) {
          error.code = BareCode(json[key].get<std::string>());
          break;
        }
      }
      for (const char* key : {"message", "Message", "errorMessage"}) {
        if (json.contains(key) && json[key].is_string()) {
          error.message = json[key].get<std::string>();
          break;
        }
      }
    }
  } else if (!trimmed.empty() && trimmed.front() == '<') {
    error.code = AwsXmlText(trimmed, "Code");
    error.message = AwsXmlText(trimmed, "Message");
    if (error.request_id.empty()) {
      error.request_id = AwsXmlText(trimmed, "RequestId");
    }
  }
  if (error.code.empty() && !error_type.empty()) {
    error.code = BareCode(error_type);
  }
  return error;
}

std::string AwsClient::ServiceDisplayName(std::string_view service) {
  static const std::map<std::string, std::string, std::less<>> kNames = {
      {"s3", "S3"},
      {"sqs", "SQS"},
      {"sns", "SNS"},
      {"dynamodb", "DynamoDB"},
      {"secretsmanager", "Secrets Manager"},
      {"monitoring", "CloudWatch"},
      {"logs", "CloudWatch Logs"},
      {"xray", "X-Ray"},
      {"sts", "STS"},
      {"kms", "KMS"},
      {"events", "EventBridge"},
      {"states", "Step Functions"}};
  auto it = kNames.find(service);
  return it == kNames.end() ? std::string(service) : it->second;
}

// --- the client ---

struct AwsClient::Target {
  std::string url;          // scheme://authority + path [+ ? + query]
  std::string host_header;  // authority as signed
  std::string path;         // wire path
  bool s3 = false;
};

namespace {

// The state of one HTTP exchange, shared with libcurl's callbacks.
struct Attempt {
  CURL* curl = nullptr;
  const AwsRequest* request = nullptr;
  size_t body_offset = 0;
  int64_t delivered = 0;  // bytes handed to on_data
  AwsHeaderList headers;
  std::string body;
  Status callback_error;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    attempt->headers.clear();  // a new answer (after 100 Continue)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    attempt->headers.emplace_back(Lower(Trim(line.substr(0, colon))),
                                  Trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  size_t bytes = size * n;
  long code = 0;
  curl_easy_getinfo(attempt->curl, CURLINFO_RESPONSE_CODE, &code);
  bool success = code >= 200 && code < 300;
  if (success && attempt->request->on_data) {
    Status s = attempt->request->on_data(std::string_view(data, bytes));
    if (!s.ok()) {
      attempt->callback_error = std::move(s);
      return 0;  // aborts the transfer
    }
    attempt->delivered += static_cast<int64_t>(bytes);
    return bytes;
  }
  if (!success && attempt->body.size() >= kMaxErrorBody) return bytes;
  if (success && attempt->body.empty()) {
    // The whole answer is kept (a ranged S3 get, a JSON page): sized once
    // from Content-Length, not grown by doubling to up to twice its size.
    curl_off_t length = -1;
    if (curl_easy_getinfo(attempt->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                          &length) == CURLE_OK &&
        length > 0 && length <= kMaxReservedBody)
      attempt->body.reserve(static_cast<size_t>(length));
  }
  attempt->body.append(data, bytes);
  return bytes;
}

size_t OnRead(char* data, size_t size, size_t n, void* user) {
  auto* attempt = static_cast<Attempt*>(user);
  size_t room = size * n;
  const AwsRequest& request = *attempt->request;
  if (request.body_stream) {
    StatusOr<size_t> got = request.body_stream->read(data, room);
    if (!got.ok()) {
      attempt->callback_error = got.status();
      return CURL_READFUNC_ABORT;
    }
    return std::min(*got, room);
  }
  size_t len = std::min(room, request.body.size() - attempt->body_offset);
  std::memcpy(data, request.body.data() + attempt->body_offset, len);
  attempt->body_offset += len;
  return len;
}

// libcurl rewinds the body when it must send it again on its own (a reused
// connection that turned out dead): only back to the start.
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* attempt = static_cast<Attempt*>(user);
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  const AwsRequest& request = *attempt->request;
  if (request.body_stream) {
    if (offset != 0 || !request.body_stream->rewind ||
        !request.body_stream->rewind()) {
      return CURL_SEEKFUNC_CANTSEEK;
    }
    return CURL_SEEKFUNC_OK;
  }
  if (offset < 0 || static_cast<size_t>(offset) > request.body.size()) {
    return CURL_SEEKFUNC_FAIL;
  }
  attempt->body_offset = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

}  // namespace

StatusOr<std::unique_ptr<AwsClient>> AwsClient::Create(
    AwsClientOptions options,
    std::shared_ptr<AwsCredentialsProvider> credentials) {
  if (options.region.empty()) {
    return InvalidArgumentError(
        "AWS client: no region (set [aws] region or "
        "AWS_REGION)");
  }
  if (!credentials) {
    return InvalidArgumentError("AWS client: no credentials provider");
  }
  for (const auto& [service, url] : options.endpoints) {
    StatusOr<ParsedEndpoint> parsed = ParseEndpoint(url);
    if (!parsed.ok()) {
      return InvalidArgumentError("AWS client: " + service + " " +
                                  parsed.status().message());
    }
  }
  if (options.retry.max_attempts < 1) options.retry.max_attempts = 1;
  CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
  return std::unique_ptr<AwsClient>(
      new AwsClient(std::move(options), std::move(credentials)));
}

AwsClient::AwsClient(AwsClientOptions options,
                     std::shared_ptr<AwsCredentialsProvider> credentials)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      env_(options_.env ? options_.env : Env::Default()) {}

AwsClient::~AwsClient() {
  for (void* handle : idle_) curl_easy_cleanup(static_cast<CURL*>(handle));
}

void* AwsClient::Borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* handle = idle_.back();
      idle_.pop_back();
      return handle;
    }
  }
  return curl_easy_init();
}

void AwsClient::Return(void* handle) {
  auto* curl = static_cast<CURL*>(handle);
  curl_easy_reset(curl);  // keeps the live connection for the next call
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < options_.max_idle_connections) {
    idle_.push_back(curl);
    return;
  }
  curl_easy_cleanup(curl);
}

std::string AwsClient::EndpointUrl(std::string_view service) const {
  auto it = options_.endpoints.find(std::string(service));
  if (it != options_.endpoints.end()) {
    std::string url = it->second;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
  }
  return "https://" + std::string(service) + "." + options_.region +
         ".amazonaws.com";
}

StatusOr<AwsClient::Target> AwsClient::Resolve(
    const AwsRequest& request) const {
  if (request.service.empty()) {
    return InvalidArgumentError("AWS request without a service");
  }
  CBPIPE_ASSIGN_OR_RETURN(ParsedEndpoint endpoint,
                          ParseEndpoint(EndpointUrl(request.service)));
  Target target;
  target.s3 = request.service == "s3";
  std::string path = request.path.empty() ? "/" : request.path;
  if (path[0] != '/') path.insert(0, "/");
  std::string wire_path = AwsUriEncode(path, /*keep_slash=*/true);
  target.host_header = endpoint.authority;
  if (target.s3 && !request.bucket.empty()) {
    bool overridden = options_.endpoints.count("s3") > 0;
    bool path_style =
        options_.s3_addressing == AwsS3Addressing::kPathStyle ||
        (options_.s3_addressing == AwsS3Addressing::kAuto &&
         (overridden || request.bucket.find('.') != std::string::npos));
    if (path_style) {
      wire_path = "/" + AwsUriEncode(request.bucket, false) + wire_path;
    } else {
      target.host_header = request.bucket + "." + endpoint.authority;
    }
  }
  target.path = wire_path;
  target.url = endpoint.scheme + "://" + target.host_header + wire_path;
  if (!request.query.empty()) {
    target.url += "?";
    target.url += AwsCanonicalQuery(request.query);
  }
  return target;
}

StatusOr<AwsResponse> AwsClient::Send(const AwsRequest& request,
                                      AwsError* error_out) {
  AwsCallRecord record;
  record.service = request.service;
  record.operation = request.operation;
  record.resource = request.resource;
  record.region = options_.region;
  record.method = request.method;
  record.start_ms = env_->NowMs();
  std::vector<std::string> secrets;  // scrubbed from every message

  StatusOr<Target> target = Resolve(request);
  if (target.ok()) record.url = RedactUrl(target->url);
  std::string trace_header = request.trace_header;
  std::unique_ptr<AwsCallObserver::Call> observed;
  if (options_.observer) {
    observed = options_.observer->Begin(record, &trace_header);
  }
  record.trace_header = trace_header;

  std::string what = ServiceDisplayName(request.service) + " " +
                     request.operation +
                     (request.resource.empty() ? "" : " " + request.resource);
  auto finish = [&](StatusOr<AwsResponse> result,
                    const AwsError& error) -> StatusOr<AwsResponse> {
    record.end_ms = env_->NowMs();
    record.code = result.ok() ? StatusCode::kOk : result.status().code();
    record.error_code = error.code;
    if (result.ok()) record.request_id = result->request_id;
    if (!result.ok()) record.request_id = error.request_id;
    if (error_out) {
      *error_out = error;
      error_out->message = Scrub(error.message, secrets);
    }
    if (observed) observed->End(record);
    if (!result.ok()) {
      return Status(result.status().code(),
                    Scrub(result.status().message(), secrets));
    }
    return result;
  };

  if (!target.ok()) {
    return finish(
        Status(target.status().code(), what + ": " + target.status().message()),
        AwsError{});
  }

  AwsSigningOptions signing;
  signing.region = options_.region;
  signing.service = request.service;
  signing.normalize_path = !target->s3;
  signing.double_encode_path = !target->s3;
  signing.sign_body = target->s3;
  bool streamed = request.body_stream.has_value();
  signing.payload_hash =
      !streamed                            ? AwsPayloadHash(request.body)
      : request.body_stream->sha256.empty() ? std::string(kAwsUnsignedPayload)
                                            : request.body_stream->sha256;
  bool upload = streamed || !request.body.empty() || request.method == "PUT" ||
                request.method == "POST";
  int64_t upload_size = streamed ? request.body_stream->length
                                 : static_cast<int64_t>(request.body.size());

  bool refreshed_credentials = false;
  for (int attempt_no = 1;; ++attempt_no) {
    record.attempts = attempt_no;
    StatusOr<AwsCredentials> creds = credentials_->Get();
    if (!creds.ok()) {
      std::string source = credentials_->Source();
      return finish(Status(creds.status().code(),
                           what + ": AWS credentials" +
                               (source.empty() ? "" : " (" + source + ")") +
                               ": " + creds.status().message()),
                    AwsError{});
    }
    secrets = {creds->secret_access_key, creds->session_token};

    AwsSigningRequest to_sign;
    to_sign.method = request.method;
    to_sign.path = target->path;
    to_sign.query = request.query;
    to_sign.headers = request.headers;
    to_sign.headers.emplace_back("Host", target->host_header);
    signing.time_s = env_->NowSeconds();
    StatusOr<AwsSignature> sig = AwsSignHeaders(to_sign, *creds, signing);
    if (!sig.ok()) {
      return finish(
          Status(sig.status().code(), what + ": " + sig.status().message()),
          AwsError{});
    }
    secrets.push_back(sig->signature);

    Attempt attempt;
    attempt.request = &request;
    attempt.curl = static_cast<CURL*>(Borrow());
    if (attempt.curl == nullptr) {
      return finish(InternalError(what + ": curl_easy_init failed"),
                    AwsError{});
    }
    CURL* curl = attempt.curl;
    curl_slist* headers = nullptr;
    for (const auto& [name, value] : to_sign.headers) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    for (const auto& [name, value] : sig->headers) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    if (!trace_header.empty()) {
      headers = curl_slist_append(headers,
                                  ("X-Amzn-Trace-Id: " + trace_header).c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    char error_buffer[CURL_ERROR_SIZE] = "";

    curl_easy_setopt(curl, CURLOPT_URL, target->url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(
        curl, CURLOPT_CONNECTTIMEOUT_MS,
        static_cast<long>(options_.connect_timeout_seconds * 1000));
    if (options_.request_timeout_seconds > 0) {
      curl_easy_setopt(
          curl, CURLOPT_TIMEOUT_MS,
          static_cast<long>(options_.request_timeout_seconds * 1000));
    }
    if (options_.idle_timeout_seconds > 0) {
      curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(
          curl, CURLOPT_LOW_SPEED_TIME,
          std::max(1L, static_cast<long>(options_.idle_timeout_seconds)));
    }
    if (!options_.ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &attempt);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &attempt);
    if (request.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (upload) {
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(curl, CURLOPT_READDATA, &attempt);
      curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, OnSeek);
      curl_easy_setopt(curl, CURLOPT_SEEKDATA, &attempt);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(upload_size));
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    } else if (request.method != "GET") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }

    CURLcode rc = curl_easy_perform(curl);
    long http_status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
    long connects = 0;
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
    record.new_connections += connects;
    record.http_status = static_cast<int>(http_status);
    curl_slist_free_all(headers);
    Return(curl);

    // What went wrong in this attempt, and whether another may help.
    Status failure;
    AwsError error;
    bool retryable = false;
    if (!attempt.callback_error.ok()) {
      // The caller's reader or writer failed: its error, never retried.
      return finish(Status(attempt.callback_error.code(),
                           what + ": " + attempt.callback_error.message()),
                    error);
    }
    if (rc != CURLE_OK) {
      std::string detail =
          error_buffer[0] ? error_buffer : curl_easy_strerror(rc);
      StatusCode code = rc == CURLE_OPERATION_TIMEDOUT
                            ? StatusCode::kDeadlineExceeded
                        : IsTransientCurl(rc) ? StatusCode::kUnavailable
                                              : StatusCode::kInternal;
      if (rc == CURLE_PEER_FAILED_VERIFICATION ||
          rc == CURLE_SSL_CACERT_BADFILE) {
        code = StatusCode::kFailedPrecondition;
      }
      failure = Status(
          code, what + ": " + detail + " (" + RedactUrl(target->url) + ")");
      retryable = IsTransientCurl(rc);
    } else if (http_status >= 200 && http_status < 300) {
      AwsResponse response;
      response.http_status = static_cast<int>(http_status);
      response.headers = std::move(attempt.headers);
      response.body = std::move(attempt.body);
      response.request_id = response.Header("x-amz-request-id");
      if (response.request_id.empty()) {
        response.request_id = response.Header("x-amzn-requestid");
      }
      return finish(std::move(response), error);
    } else {
      error = ParseAwsErrorBody(static_cast<int>(http_status), attempt.headers,
                                attempt.body);
      std::string code_text = error.code.empty()
                                  ? "HTTP " + std::to_string(http_status)
                                  : error.code;
      std::string message = what + ": " + code_text;
      if (!error.message.empty()) message += ": " + error.message;
      if (!error.request_id.empty()) {
        message += " (request id " + error.request_id + ")";
      }
      failure =
          Status(AwsErrorStatusCode(error.code, static_cast<int>(http_status)),
                 message);
      retryable =
          AwsErrorIsRetryable(error.code, static_cast<int>(http_status));
      if (AwsErrorIsExpiredCredentials(error.code) && !refreshed_credentials) {
        // Stale credentials: fetch fresh ones and try once more, outside
        // the retry budget.
        refreshed_credentials = true;
        credentials_->Invalidate();
        if (!streamed ||
            (request.body_stream->rewind && request.body_stream->rewind())) {
          if (attempt.delivered == 0) {
            --attempt_no;
            continue;
          }
        }
      }
    }

    if (!retryable || attempt_no >= options_.retry.max_attempts) {
      if (attempt_no > 1) {
        failure = Status(failure.code(), failure.message() + " after " +
                                             std::to_string(attempt_no) +
                                             " attempts");
      }
      return finish(failure, error);
    }
    if (attempt.delivered > 0) {
      return finish(
          Status(failure.code(), failure.message() +
                                     " (not retried: part of the answer was "
                                     "already passed on)"),
          error);
    }
    if (streamed &&
        !(request.body_stream->rewind && request.body_stream->rewind())) {
      return finish(Status(failure.code(),
                           failure.message() +
                               " (not retried: the request body cannot be "
                               "sent again)"),
                    error);
    }
    double wait =
        RetryDelaySeconds(options_.retry, attempt_no, env_->Random01());
    if (!env_->SleepFor(wait, options_.stop)) {
      return finish(Status(failure.code(), failure.message() +
                                               " (stopped while waiting to "
                                               "retry)"),
                    error);
    }
  }
}

StatusOr<std::string> AwsClient::CallJson(
    std::string_view service, std::string_view target, std::string_view json,
    std::string_view resource, std::string_view trace_header, AwsError* error) {
  AwsRequest request;
  request.service = std::string(service);
  size_t dot = target.rfind('.');
  request.operation = std::string(
      dot == std::string_view::npos ? target : target.substr(dot + 1));
  request.resource = std::string(resource);
  request.method = "POST";
  bool v11 = service == "secretsmanager" || service == "logs";
  request.headers = {{"Content-Type", v11 ? "application/x-amz-json-1.1"
                                          : "application/x-amz-json-1.0"},
                     {"X-Amz-Target", std::string(target)}};
  request.body = std::string(json);
  request.trace_header = std::string(trace_header);
  CBPIPE_ASSIGN_OR_RETURN(AwsResponse response, Send(request, error));
  return std::move(response.body);
}

StatusOr<std::string> AwsClient::CallQuery(
    std::string_view service, std::string_view action, std::string_view version,
    const AwsHeaderList& params, std::string_view resource,
    std::string_view trace_header, AwsError* error) {
  AwsRequest request;
  request.service = std::string(service);
  request.operation = std::string(action);
  request.resource = std::string(resource);
  request.method = "POST";
  request.headers = {
      {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  request.body = "Action=" + AwsUriEncode(action, false) +
                 "&Version=" + AwsUriEncode(version, false);
  for (const auto& [name, value] : params) {
    request.body += '&';
    request.body += AwsUriEncode(name, false);
    request.body += '=';
    request.body += AwsUriEncode(value, false);
  }
  request.trace_header = std::string(trace_header);
  CBPIPE_ASSIGN_OR_RETURN(AwsResponse response, Send(request, error));
  return std::move(response.body);
}

StatusOr<std::string> AwsClient::Presign(const AwsRequest& request,
                                         int64_t expires_seconds) {
  CBPIPE_ASSIGN_OR_RETURN(Target target, Resolve(request));
  CBPIPE_ASSIGN_OR_RETURN(AwsCredentials creds, credentials_->Get());
  AwsSigningRequest to_sign;
  to_sign.method = request.method;
  to_sign.path = target.path;
  to_sign.query = request.query;
  to_sign.headers = {{"Host", target.host_header}};
  AwsSigningOptions signing;
  signing.region = options_.region;
  signing.service = request.service;
  signing.time_s = env_->NowSeconds();
  signing.normalize_path = !target.s3;
  signing.double_encode_path = !target.s3;
  signing.payload_hash = kAwsUnsignedPayload;
  signing.expires_seconds = expires_seconds;
  StatusOr<AwsSignature> sig = AwsPresign(to_sign, creds, signing);
  if (!sig.ok()) {
    return Status(sig.status().code(),
                  ServiceDisplayName(request.service) +
                      " presign: " + sig.status().message());
  }
  AwsHeaderList query = request.query;
  query.insert(query.end(), sig->query.begin(), sig->query.end());
  std::string url = target.url.substr(0, target.url.find('?'));
  return url + "?" + AwsCanonicalQuery(query);
}

}  // namespace cbpipe
