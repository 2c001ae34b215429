#include "notify/email_notifier.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <utility>

#include "common/curl_global.h"
#include "domain/pan.h"
#include "notify/async_sender.h"
#include "notify/curl_util.h"

namespace cbpipe {
namespace {

using notify_internal::CurlEasy;
using notify_internal::CurlSlist;

// SMTP forbids lines over 998 octets; no field comes near in practice.
constexpr size_t kMaxFieldChars = 900;

// One line of printable text: control characters become spaces; in headers
// (ascii_only) anything beyond ASCII becomes '?'.
std::string OneLine(std::string_view v, bool ascii_only) {
  std::string out;
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out.push_back(' ');
    } else if (ascii_only && u >= 0x80) {
      out.push_back('?');
    } else {
      out.push_back(c);
    }
    if (out.size() >= kMaxFieldChars) break;
  }
  return out;
}

bool IsPlainAddress(std::string_view a) {
  size_t at = a.find('@');
  if (a.empty() || at == 0 || at == std::string_view::npos ||
      at + 1 == a.size() || a.size() > 254) {
    return false;
  }
  for (char c : a) {
    if (c <= 0x20 || c >= 0x7f ||
        std::string_view("<>()[]\\,;:\"").find(c) != std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// "Wed, 01 May 2024 12:00:00 +0000", locale-independent.
std::string RfcDate(int64_t time_ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  std::time_t t = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "Thu, 01 Jan 1970 00:00:00 +0000";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                kDays[tm.tm_wday % 7], tm.tm_mday, kMonths[tm.tm_mon % 12],
                tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

struct Upload {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadUpload(char* buffer, size_t size, size_t nitems, void* user) {
  auto* u = static_cast<Upload*>(user);
  size_t n = std::min(size * nitems, u->data->size() - u->offset);
  std::copy_n(u->data->data() + u->offset, n, buffer);
  u->offset += n;
  return n;
}

Status AppendTo(CurlSlist& list, const std::string& item) {
  curl_slist* next = curl_slist_append(list.get(), item.c_str());
  if (next == nullptr) return InternalError("out of memory");
  (void)list.release();
  list.reset(next);
  return OkStatus();
}

StatusOr<SecretString> ResolveOptional(SecretStore& secrets,
                                       const std::string& ref,
                                       const std::string& what) {
  if (ref.empty()) return SecretString();
  auto v = secrets.Resolve(ref);
  if (!v.ok()) {
    return Status(v.status().code(), what + ": " + v.status().message());
  }
  return v;
}

}  // namespace

Status ValidateEmailOptions(const EmailOptions& o) {
  auto parsed = notify_internal::ParseUrl(o.url);
  if (!parsed.ok()) return parsed.status();
  std::string name = "email " + notify_internal::RedactUrl(o.url);
  if (!UrlUserinfo(o.url).empty()) {
    return InvalidArgumentError(
        name +
        ": the URL must not hold credentials (user:password@); use "
        "username and password secret references");
  }
  if (parsed->scheme == "smtp") {
    if (!o.starttls && !o.allow_insecure &&
        !notify_internal::IsLoopbackHost(parsed->host)) {
      return InvalidArgumentError(
          name +
          ": plain smtp:// is only allowed to localhost/127.0.0.1 (use "
          "smtps://, starttls = true, or allow_insecure = true)");
    }
  } else if (parsed->scheme != "smtps") {
    return InvalidArgumentError(name + ": the URL must be smtp:// or smtps://");
  }
  if (!IsPlainAddress(o.from)) {
    return InvalidArgumentError(name + ": from is not a plain address: \"" +
                                OneLine(o.from, true) + "\"");
  }
  if (o.to.empty()) {
    return InvalidArgumentError(name + ": to lists no recipient");
  }
  for (const std::string& a : o.to) {
    if (!IsPlainAddress(a)) {
      return InvalidArgumentError(name + ": to holds an invalid address: \"" +
                                  OneLine(a, true) + "\"");
    }
  }
  if (o.username_ref.empty() != o.password_ref.empty()) {
    return InvalidArgumentError(name +
                                ": set both username and password, or neither");
  }
  return OkStatus();
}

std::string EmailMessage(const Event& e, const EmailOptions& o,
                         std::string_view message_id) {
  auto h = [](std::string_view v) { return OneLine(v, true); };
  auto b = [](std::string_view v) { return OneLine(v, false); };
  auto or_dash = [](std::string v) { return v.empty() ? std::string("-") : v; };
  std::string to;
  for (const std::string& a : o.to) {
    if (!to.empty()) to += ", ";
    to += h(a);
  }
  std::string subject = h(o.subject_prefix);
  if (!subject.empty()) subject += " ";
  subject += h(e.type) + ": run " + or_dash(h(e.run_id));
  if (!e.batch_id.empty()) subject += ", batch " + h(e.batch_id);
  if (!e.destination.empty()) subject += ", destination " + h(e.destination);

  std::string m;
  auto line = [&m](const std::string& s) { m += s + "\r\n"; };
  line("Date: " + RfcDate(e.time_ms));
  line("From: " + h(o.from));
  line("To: " + to);
  line("Subject: " + subject);
  line("Message-ID: <" + h(message_id) + "@cbpipe>");
  line("MIME-Version: 1.0");
  line("Content-Type: text/plain; charset=utf-8");
  line("Content-Transfer-Encoding: 8bit");
  line("");
  line("cbpipe event " + b(e.type));
  line("");
  line("type:        " + b(e.type));
  line("time:        " + RfcDate(e.time_ms) + " (" + std::to_string(e.time_ms) +
       " ms)");
  line("run id:      " + or_dash(b(e.run_id)));
  line("batch id:    " + or_dash(b(e.batch_id)));
  line("destination: " + or_dash(b(e.destination)));
  line("trace id:    " + or_dash(b(e.trace_id)));
  if (!e.message.empty()) {
    line("message:     " + b(MaskCardNumbers(e.message)));
  }
  if (!e.counts.empty()) {
    line("");
    line("counts:");
    for (const auto& [k, v] : e.counts) {
      line("  " + b(k) + ": " + std::to_string(v));
    }
  }
  if (!e.totals.empty()) {
    line("");
    line("totals (minor units):");
    for (const auto& [k, v] : e.totals) {
      line("  " + b(k) + ": " + std::to_string(v));
    }
  }
  return m;
}

StatusOr<std::unique_ptr<EmailNotifier>> EmailNotifier::Create(
    EmailOptions options, SecretStore* secrets) {
  CBPIPE_RETURN_IF_ERROR(ValidateEmailOptions(options));
  std::string name = "email " + notify_internal::RedactUrl(options.url);
  SecretStore& store = *SecretsOrDefault(secrets);
  CBPIPE_ASSIGN_OR_RETURN(SecretString username,
                          ResolveOptional(store, options.username_ref, name));
  CBPIPE_ASSIGN_OR_RETURN(SecretString password,
                          ResolveOptional(store, options.password_ref, name));
  CBPIPE_RETURN_IF_ERROR(CurlGlobalInitOnce());
  return std::unique_ptr<EmailNotifier>(new EmailNotifier(
      std::move(options), std::move(username), std::move(password)));
}

EmailNotifier::EmailNotifier(EmailOptions options, SecretString username,
                             SecretString password)
    : options_(std::move(options)),
      username_(std::move(username)),
      password_(std::move(password)) {
  AsyncSenderOptions so;
  so.name = "email " + notify_internal::RedactUrl(options_.url);
  so.retry = options_.retry;
  so.queue_capacity = options_.queue_capacity;
  so.log = options_.log;
  sender_ = std::make_unique<AsyncSender>(
      std::move(so),
      [this](const Event& e, std::string_view id, const CancelFlag& stop) {
        return SendOnce(e, id, stop);
      });
}

EmailNotifier::~EmailNotifier() { sender_.reset(); }

void EmailNotifier::Notify(const Event& event) { sender_->Enqueue(event); }

Status EmailNotifier::Flush(std::chrono::milliseconds timeout) {
  return sender_->Flush(timeout);
}

NotifierStats EmailNotifier::stats() const { return sender_->stats(); }

Status EmailNotifier::SendOnce(const Event& event, std::string_view message_id,
                               const CancelFlag& stop) {
  const std::string what = "SMTP " + notify_internal::RedactUrl(options_.url);
  CurlEasy h(curl_easy_init());
  if (!h) return InternalError(what + ": curl_easy_init failed");
  const std::string message = EmailMessage(event, options_, message_id);
  const std::string mail_from = "<" + options_.from + ">";
  CurlSlist recipients;
  for (const std::string& a : options_.to) {
    CBPIPE_RETURN_IF_ERROR(AppendTo(recipients, "<" + a + ">"));
  }

  char error_buffer[CURL_ERROR_SIZE] = {0};
  notify_internal::SetCommonOptions(
      h.get(), &stop, static_cast<long>(options_.connect_timeout.count()),
      static_cast<long>(options_.request_timeout.count()), options_.ca_file,
      "smtp,smtps", error_buffer);
  curl_easy_setopt(h.get(), CURLOPT_URL, options_.url.c_str());
  if (options_.starttls) {
    curl_easy_setopt(h.get(), CURLOPT_USE_SSL,
                     static_cast<long>(CURLUSESSL_ALL));
  }
  if (!username_.empty()) {
    curl_easy_setopt(h.get(), CURLOPT_USERNAME, username_.c_str());
    curl_easy_setopt(h.get(), CURLOPT_PASSWORD, password_.c_str());
  }
  curl_easy_setopt(h.get(), CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(h.get(), CURLOPT_MAIL_RCPT, recipients.get());
  Upload upload{&message};
  curl_easy_setopt(h.get(), CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h.get(), CURLOPT_READFUNCTION, &ReadUpload);
  curl_easy_setopt(h.get(), CURLOPT_READDATA, &upload);
  curl_easy_setopt(h.get(), CURLOPT_INFILESIZE_LARGE,
                   static_cast<curl_off_t>(message.size()));

  CURLcode rc = curl_easy_perform(h.get());
  if (rc == CURLE_OK) return OkStatus();
  long reply = 0;
  curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &reply);
  if (rc != CURLE_LOGIN_DENIED && rc != CURLE_ABORTED_BY_CALLBACK &&
      reply >= 400 && reply < 600) {
    std::string msg = what + ": server replied " + std::to_string(reply) +
                      " (" + error_buffer + ")";
    if (reply < 500) return UnavailableError(msg);
    return FailedPreconditionError(msg);
  }
  return notify_internal::CurlError(rc, error_buffer, what);
}

}  // namespace cbpipe
