#include "lambda/runtime_client.h"

#include <curl/curl.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "common/curl_global.h"

namespace cbpipe {
namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The value of header `lower_name` in raw "Name: value\r\n" lines, "" when
// absent.
std::string HeaderValue(const std::string& lines, std::string_view lower_name) {
  size_t start = 0;
  while (start < lines.size()) {
    size_t end = lines.find('\n', start);
    if (end == std::string::npos) end = lines.size();
    std::string_view line(lines.data() + start, end - start);
    start = end + 1;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (Lower(line.substr(0, colon)) != lower_name) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    return std::string(value);
  }
  return "";
}

bool ValidHostPort(std::string_view hp) {
  const size_t colon = hp.rfind(':');
  if (hp.empty() || colon == std::string_view::npos || colon == 0 ||
      colon + 1 == hp.size())
    return false;
  for (char c : hp.substr(colon + 1))
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  for (char c : hp.substr(0, colon)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' &&
        c != '[' && c != ']' && c != ':')
      return false;
  }
  return true;
}

std::string ErrorJson(const LambdaErrorReport& e) {
  nlohmann::json j = {{"errorType", e.error_type},
                      {"errorMessage", e.error_message}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

StatusOr<std::unique_ptr<LambdaRuntimeClient>> LambdaRuntimeClient::Create(
    std::string_view host_port) {
  if (!ValidHostPort(host_port)) {
    return InvalidArgumentError(
        "AWS_LAMBDA_RUNTIME_API: want host:port, got \"" +
        std::string(host_port) + "\"");
  }
  CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
  std::unique_ptr<LambdaRuntimeClient> client(new LambdaRuntimeClient(
      "http://" + std::string(host_port) + "/2018-06-01"));
  if (client->curl_ == nullptr) return InternalError("curl_easy_init failed");
  return client;
}

LambdaRuntimeClient::LambdaRuntimeClient(std::string base)
    : base_(std::move(base)), curl_(curl_easy_init()) {}

LambdaRuntimeClient::~LambdaRuntimeClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

StatusOr<LambdaRuntimeClient::Answer> LambdaRuntimeClient::Call(
    const char* method, const std::string& path, std::string_view body,
    std::string_view error_type) {
  CURL* h = static_cast<CURL*>(curl_);
  // Options are set afresh for each call; the handle keeps its connection.
  curl_easy_reset(h);
  Answer answer;
  const std::string url = base_ + path;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // the API is local: no proxy
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  // No overall timeout: `next` waits as long as there is no event.
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, AppendBody);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &answer.header_lines);
  curl_slist* headers = nullptr;
  std::string type_header;
  if (std::string_view(method) == "POST") {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
    headers = curl_slist_append(headers, "Content-Type: application/json");
    // No "Expect: 100-continue" round trip for large responses.
    headers = curl_slist_append(headers, "Expect:");
    if (!error_type.empty()) {
      type_header =
          "Lambda-Runtime-Function-Error-Type: " + std::string(error_type);
      headers = curl_slist_append(headers, type_header.c_str());
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  const CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  long connects = 0;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects);
  connections_opened_ += connects;
  if (rc != CURLE_OK) {
    return UnavailableError(std::string("Lambda runtime API ") + method +
                            " " + path + ": " + curl_easy_strerror(rc));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

StatusOr<LambdaInvocation> LambdaRuntimeClient::Next() {
  CBPIPE_ASSIGN_OR_RETURN(Answer a,
                          Call("GET", "/runtime/invocation/next", "", ""));
  if (a.status != 200) {
    return InternalError("Lambda runtime API next: HTTP " +
                         std::to_string(a.status));
  }
  LambdaInvocation in;
  in.request_id = HeaderValue(a.header_lines, "lambda-runtime-aws-request-id");
  if (in.request_id.empty()) {
    return InvalidArgumentError(
        "Lambda runtime API next: no Lambda-Runtime-Aws-Request-Id");
  }
  const std::string deadline =
      HeaderValue(a.header_lines, "lambda-runtime-deadline-ms");
  try {
    in.deadline_ms = deadline.empty() ? 0 : std::stoll(deadline);
  } catch (const std::exception&) {
    return InvalidArgumentError(
        "Lambda runtime API next: Lambda-Runtime-Deadline-Ms is not a number");
  }
  in.trace_id = HeaderValue(a.header_lines, "lambda-runtime-trace-id");
  in.client_context =
      HeaderValue(a.header_lines, "lambda-runtime-client-context");
  in.cognito_identity =
      HeaderValue(a.header_lines, "lambda-runtime-cognito-identity");
  in.invoked_function_arn =
      HeaderValue(a.header_lines, "lambda-runtime-invoked-function-arn");
  in.event = std::move(a.body);
  return in;
}

Status LambdaRuntimeClient::Post(const std::string& path,
                                 std::string_view body,
                                 std::string_view error_type,
                                 std::string_view what) {
  CBPIPE_ASSIGN_OR_RETURN(Answer a, Call("POST", path, body, error_type));
  if (a.status >= 200 && a.status < 300) return OkStatus();
  // The API answers {"errorMessage","errorType"}; only the type is kept
  // (the message may quote the payload).
  std::string api_type;
  const nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
  if (j.is_object() && j.contains("errorType") && j["errorType"].is_string())
    api_type = ": " + j["errorType"].get<std::string>();
  const std::string message = "Lambda runtime API " + std::string(what) +
                              ": HTTP " + std::to_string(a.status) + api_type;
  if (a.status >= 400 && a.status < 500)
    return FailedPreconditionError(message);
  return InternalError(message);
}

Status LambdaRuntimeClient::Respond(const std::string& request_id,
                                    std::string_view body) {
  return Post("/runtime/invocation/" + request_id + "/response", body, "",
              "response");
}

Status LambdaRuntimeClient::ReportError(const std::string& request_id,
                                        const LambdaErrorReport& error) {
  return Post("/runtime/invocation/" + request_id + "/error", ErrorJson(error),
              error.error_type, "error");
}

Status LambdaRuntimeClient::ReportInitError(const LambdaErrorReport& error) {
  return Post("/runtime/init/error", ErrorJson(error), error.error_type,
              "init error");
}

}  // namespace cbpipe
