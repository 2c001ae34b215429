#include "notify/webhook_notifier.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <utility>

#include "common/curl_global.h"
#include "notify/async_sender.h"
#include "notify/curl_util.h"

namespace cbpipe {
namespace {

using notify_internal::CurlEasy;
using notify_internal::CurlSlist;

size_t Discard(char*, size_t size, size_t nitems, void*) {
  return size * nitems;
}

// Printable ASCII only: a header value can never break the request.
std::string HeaderSafe(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c >= 0x20 && c <= 0x7e) out.push_back(c);
  }
  return out;
}

Status AppendHeader(CurlSlist& list, const std::string& header) {
  curl_slist* next = curl_slist_append(list.get(), header.c_str());
  if (next == nullptr) return InternalError("out of memory building headers");
  (void)list.release();
  list.reset(next);
  return OkStatus();
}

}  // namespace

Status ValidateWebhookUrl(std::string_view url, bool allow_insecure) {
  auto parsed = notify_internal::ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  std::string safe = notify_internal::RedactUrl(url);
  if (!UrlUserinfo(url).empty()) {
    return InvalidArgumentError(
        "webhook " + safe +
        ": the URL must not hold credentials (user:password@); the "
        "receiver authenticates events by their HMAC signature (secret)");
  }
  if (parsed->scheme == "https") return OkStatus();
  if (parsed->scheme == "http") {
    if (allow_insecure || notify_internal::IsLoopbackHost(parsed->host)) {
      return OkStatus();
    }
    return InvalidArgumentError(
        "webhook " + safe +
        ": http:// is only allowed to localhost/127.0.0.1 (use https://, "
        "or set allow_insecure = true to send events unencrypted)");
  }
  return InvalidArgumentError("webhook " + safe +
                              ": the URL must be https:// or http://");
}

std::string WebhookSignature(std::string_view secret, std::string_view body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(body.data()), body.size(),
           mac, &mac_len) == nullptr) {
    return "";
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < mac_len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 0xf]);
  }
  return out;
}

StatusOr<std::unique_ptr<WebhookNotifier>> WebhookNotifier::Create(
    WebhookOptions options, SecretStore* secrets) {
  CBPIPE_RETURN_IF_ERROR(
      ValidateWebhookUrl(options.url, options.allow_insecure));
  std::string safe = notify_internal::RedactUrl(options.url);
  if (options.secret_ref.empty()) {
    return InvalidArgumentError(
        "webhook " + safe +
        ": a signing secret is required (secret = \"env:NAME\" or "
        "\"file:/path\")");
  }
  auto resolved = SecretsOrDefault(secrets)->Resolve(options.secret_ref);
  if (!resolved.ok()) {
    return Status(resolved.status().code(),
                  "webhook " + safe + ": " + resolved.status().message());
  }
  SecretString secret = std::move(*resolved);
  if (secret.empty()) {
    return InvalidArgumentError("webhook " + safe + ": the secret " +
                                options.secret_ref + " is empty");
  }
  CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
  return std::unique_ptr<WebhookNotifier>(
      new WebhookNotifier(std::move(options), std::move(secret)));
}

WebhookNotifier::WebhookNotifier(WebhookOptions options, SecretString secret)
    : options_(std::move(options)), secret_(std::move(secret)) {
  AsyncSenderOptions so;
  so.name = "webhook " + notify_internal::RedactUrl(options_.url);
  so.retry = options_.retry;
  so.queue_capacity = options_.queue_capacity;
  so.log = options_.log;
  sender_ = std::make_unique<AsyncSender>(
      std::move(so),
      [this](const Event& e, std::string_view id, const CancelFlag& stop) {
        return PostOnce(e, id, stop);
      });
}

WebhookNotifier::~WebhookNotifier() { sender_.reset(); }

void WebhookNotifier::Notify(const Event& event) { sender_->Enqueue(event); }

Status WebhookNotifier::Flush(std::chrono::milliseconds timeout) {
  return sender_->Flush(timeout);
}

NotifierStats WebhookNotifier::stats() const { return sender_->stats(); }

Status WebhookNotifier::PostOnce(const Event& event,
                                 std::string_view delivery_id,
                                 const CancelFlag& stop) {
  const std::string what = "POST " + notify_internal::RedactUrl(options_.url);
  CurlEasy h(curl_easy_init());
  if (!h) return InternalError(what + ": curl_easy_init failed");
  const std::string body = EventJson(event);

  CurlSlist headers;
  CBPIPE_RETURN_IF_ERROR(
      AppendHeader(headers, "Content-Type: application/json"));
  CBPIPE_RETURN_IF_ERROR(
      AppendHeader(headers, "X-Cbpipe-Event: " + HeaderSafe(event.type)));
  CBPIPE_RETURN_IF_ERROR(AppendHeader(
      headers,
      "X-Cbpipe-Signature: " + WebhookSignature(secret_.value(), body)));
  CBPIPE_RETURN_IF_ERROR(
      AppendHeader(headers, "X-Cbpipe-Delivery: " + HeaderSafe(delivery_id)));
  if (IsTraceparent(event.trace_id)) {
    CBPIPE_RETURN_IF_ERROR(
        AppendHeader(headers, "traceparent: " + event.trace_id));
  }
  // No "100 Continue" round trip for a small body.
  CBPIPE_RETURN_IF_ERROR(AppendHeader(headers, "Expect:"));

  char error_buffer[CURL_ERROR_SIZE] = {0};
  notify_internal::SetCommonOptions(
      h.get(), &stop, static_cast<long>(options_.connect_timeout.count()),
      static_cast<long>(options_.request_timeout.count()), options_.ca_file,
      "http,https", error_buffer);
  curl_easy_setopt(h.get(), CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(h.get(), CURLOPT_USERAGENT, "cbpipe-notifier/1");
  curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(h.get(), CURLOPT_POST, 1L);
  curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(h.get(), CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, &Discard);

  CURLcode rc = curl_easy_perform(h.get());
  if (rc != CURLE_OK) {
    return notify_internal::CurlError(rc, error_buffer, what);
  }
  long code = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &code);
  std::string answered = what + ": HTTP " + std::to_string(code);
  if (code >= 200 && code < 300) return OkStatus();
  if (code >= 500 || code == 429) return UnavailableError(answered);
  if (code == 401 || code == 403) return PermissionDeniedError(answered);
  if (code >= 300 && code < 400) {
    return FailedPreconditionError(answered + " (redirects are not followed)");
  }
  return FailedPreconditionError(answered);
}

}  // namespace cbpipe
