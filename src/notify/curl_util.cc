#include "notify/curl_util.h"


namespace cbpipe::notify_internal {
namespace {

int AbortWhenStopped(void* user, curl_off_t, curl_off_t, curl_off_t,
                     curl_off_t) {
  const auto* stop = static_cast<const CancelFlag*>(user);
  return stop != nullptr && stop->load() ? 1 : 0;
}

std::string GetPart(CURLU* u, CURLUPart part) {
  char* value = nullptr;
  if (curl_url_get(u, part, &value, 0) != CURLUE_OK || value == nullptr) {
    return "";
  }
  std::string s(value);
  curl_free(value);
  return s;
}

}  // namespace

StatusOr<ParsedUrl> ParseUrl(std::string_view url) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(),
                                                        &curl_url_cleanup);
  if (!u) return InternalError("curl_url failed");
  std::string copy(url);
  // CURLU_NON_SUPPORT_SCHEME: parse any scheme, so the caller can say which
  // ones it wants.
  if (curl_url_set(u.get(), CURLUPART_URL, copy.c_str(),
                   CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return InvalidArgumentError("not a valid URL: " + RedactUrl(url));
  }
  ParsedUrl parsed;
  parsed.scheme = GetPart(u.get(), CURLUPART_SCHEME);
  for (char& c : parsed.scheme) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  parsed.host = GetPart(u.get(), CURLUPART_HOST);
  if (parsed.host.size() >= 2 && parsed.host.front() == '[' &&
      parsed.host.back() == ']') {
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  }
  if (parsed.host.empty()) {
    return InvalidArgumentError("URL has no host: " + RedactUrl(url));
  }
  return parsed;
}

void SetCommonOptions(CURL* h, const CancelFlag* stop, long connect_timeout_ms,
                      long timeout_ms, const std::string& ca_file,
                      const char* protocols, char* error_buffer) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  // A proxy from the environment must never see loopback traffic.
  curl_easy_setopt(h, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &AbortWhenStopped);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, stop);
}

Status CurlError(CURLcode code, const char* error_buffer,
                 const std::string& what) {
  std::string detail = error_buffer != nullptr && error_buffer[0] != '\0'
                           ? error_buffer
                           : curl_easy_strerror(code);
  std::string msg = what + ": " + detail;
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_AGAIN:
    case CURLE_WEIRD_SERVER_REPLY: return UnavailableError(msg);
    case CURLE_OPERATION_TIMEDOUT: return DeadlineExceededError(msg);
    case CURLE_ABORTED_BY_CALLBACK: return AbortedError(what + ": stopped");
    case CURLE_LOGIN_DENIED: return UnauthenticatedError(msg);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER: return FailedPreconditionError(msg);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return InvalidArgumentError(msg);
    default: return InternalError(msg);
  }
}

}  // namespace cbpipe::notify_internal
