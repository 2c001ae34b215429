// Email adapter: one plain-text message per event, sent through an SMTP
// server with libcurl.
//
//   EmailOptions o;
//   o.url = "smtp://mail.example.com:587";
//   o.starttls = true;                       // STARTTLS, required
//   o.from = "cbpipe@example.com";
//   o.to = {"chargebacks-ops@example.com"};
//   o.username_ref = "env:SMTP_USER";        // optional
//   o.password_ref = "file:/run/secrets/smtp_password";
//   auto n = EmailNotifier::Create(o);
//   (*n)->Notify(event);                     // queued; a thread sends it
//
// Subject: "[cbpipe] <type>: run <run id>, batch <batch id>, destination
// <destination>". The body lists the event's fields, counts and totals (in
// minor units); it never holds credentials, and the message is redacted like
// the JSON (notifier.h). Message-ID is the delivery id, the same on every
// retry.
//
// Transport security: smtps:// (TLS from the start), or smtp:// with
// starttls = true (CURLUSESSL_ALL: the send fails unless the server agrees
// to STARTTLS). Plain smtp:// is allowed only to a loopback host unless
// allow_insecure is set. Certificates are verified (ca_file to trust another
// CA bundle).
//
// Retries as the webhook: connect errors, timeouts and SMTP 4xx replies are
// retried under `retry`; 5xx replies, refused logins and TLS failures give up
// at once. Same bounded queue and drop-oldest rule (async_sender.h).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/retry.h"
#include "common/status.h"
#include "notify/notifier.h"
#include "secrets/secret_store.h"

namespace cbpipe {

class AsyncSender;

struct EmailOptions {
  std::string url;              // smtp://host[:port] or smtps://host[:port]
  std::string from;             // an address: "cbpipe@example.com"
  std::vector<std::string> to;  // at least one address
  std::string username_ref;     // optional secret reference
  std::string password_ref;     // optional secret reference
  bool starttls = false;        // smtp:// upgraded with STARTTLS (required)
  std::string ca_file;
  bool allow_insecure = false;  // permit plain smtp:// to a non-loopback host
  std::string subject_prefix = "[cbpipe]";
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  RetryPolicy retry;
  size_t queue_capacity = 1000;
  std::function<void(std::string_view)> log;  // on the delivery thread
};

// Checks URL, transport security, addresses; resolves no secret.
Status ValidateEmailOptions(const EmailOptions& options);

// The RFC 5322 message (CRLF line ends) sent for `event`.
std::string EmailMessage(const Event& event, const EmailOptions& options,
                         std::string_view message_id);

class EmailNotifier : public Notifier {
 public:
  // The credentials are resolved from `secrets` (null: the env:/file:
  // store).
  static StatusOr<std::unique_ptr<EmailNotifier>> Create(
      EmailOptions options, SecretStore* secrets = nullptr);
  // Stops at once; queued events are dropped (counted). Flush() first.
  ~EmailNotifier() override;

  void Notify(const Event& event) override;
  Status Flush(std::chrono::milliseconds timeout) override;
  NotifierStats stats() const;

 private:
  EmailNotifier(EmailOptions options, SecretString username,
                SecretString password);
  Status SendOnce(const Event& event, std::string_view message_id,
                  const std::atomic<bool>& stop);

  const EmailOptions options_;
  const SecretString username_;
  const SecretString password_;
  std::unique_ptr<AsyncSender> sender_;  // last: its thread uses the above
};

}  // namespace cbpipe
