// Webhook adapter: POSTs each event as JSON, signed with HMAC-SHA256.
//
//   WebhookOptions o;
//   o.url = "https://hooks.example.com/cbpipe";
//   o.secret_ref = "env:CBPIPE_WEBHOOK_SECRET";
//   auto n = WebhookNotifier::Create(o);
//   if (!n.ok()) return n.status();  // bad URL, unresolvable secret
//   (*n)->Notify(event);              // queued; sent by a background thread
//
// The request:
//   POST <url>
//   Content-Type: application/json
//   X-Cbpipe-Event: batch.delivered
//   X-Cbpipe-Signature: sha256=<lowercase hex HMAC-SHA256(secret, body)>
//   X-Cbpipe-Delivery: <32 hex, one per event, the same on every retry>
//   traceparent: <event.trace_id, when it is a valid W3C traceparent>
//   <body: EventJson(event)>
//
// 2xx is delivered. Retried (options.retry, Step Functions semantics):
// connect errors, timeouts, resets, HTTP 5xx and 429. Given up at once: any
// other status (3xx are not followed, 4xx are the receiver saying no), and
// TLS verification failures. Delivery is at least once: a receiver that
// answers too late gets the event again, with the same X-Cbpipe-Delivery.
//
// URLs: https://, or http:// only to a loopback host (localhost,
// 127.0.0.0/8, ::1) unless allow_insecure is set; anything else is
// kInvalidArgument at Create(). The secret is resolved once at Create() and
// never logged; log lines name the URL without credentials or query.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/retry.h"
#include "common/status.h"
#include "notify/notifier.h"
#include "secrets/secret_store.h"

namespace cbpipe {

class AsyncSender;

struct WebhookOptions {
  std::string url;
  std::string secret_ref;  // "env:NAME" or "file:/path"; required
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};  // whole request
  RetryPolicy retry;             // default: 5 attempts, 1 s doubling, jitter
  size_t queue_capacity = 1000;  // full: the oldest queued event is dropped
  std::string ca_file;           // PEM bundle to trust instead of the system's
  bool allow_insecure = false;   // permit http:// to a non-loopback host
  // Diagnostics (give-ups, drops). Called on the delivery thread.
  std::function<void(std::string_view)> log;
};

// Checks the scheme/host rule above without resolving the secret.
Status ValidateWebhookUrl(std::string_view url, bool allow_insecure);

// "sha256=" + lowercase hex HMAC-SHA256 of `body` under `secret`.
std::string WebhookSignature(std::string_view secret, std::string_view body);

class WebhookNotifier : public Notifier {
 public:
  // The secret is resolved from `secrets` (null: the env:/file: store).
  static StatusOr<std::unique_ptr<WebhookNotifier>> Create(
      WebhookOptions options, SecretStore* secrets = nullptr);
  // Stops at once: the request in flight is abandoned and queued events are
  // dropped (counted). Flush() first to deliver them.
  ~WebhookNotifier() override;

  void Notify(const Event& event) override;
  Status Flush(std::chrono::milliseconds timeout) override;
  NotifierStats stats() const;

 private:
  WebhookNotifier(WebhookOptions options, SecretString secret);
  // One POST. Transient errors are kUnavailable / kDeadlineExceeded.
  Status PostOnce(const Event& event, std::string_view delivery_id,
                  const std::atomic<bool>& stop);

  const WebhookOptions options_;
  const SecretString secret_;
  std::unique_ptr<AsyncSender> sender_;  // last: its thread uses the above
};

}  // namespace cbpipe
