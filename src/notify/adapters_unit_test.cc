// The parts of the webhook and email adapters that need no server.
#include <gtest/gtest.h>
#include <stdlib.h>

#include "notify/curl_util.h"
#include "notify/email_notifier.h"
#include "notify/webhook_notifier.h"

namespace cbpipe {
namespace {

TEST(WebhookUrlTest, HttpsAlwaysHttpOnlyToLoopbackOrWhenAllowed) {
  EXPECT_TRUE(ValidateWebhookUrl("https://hooks.example.com/x", false).ok());
  EXPECT_TRUE(ValidateWebhookUrl("http://127.0.0.1:8080/x", false).ok());
  EXPECT_TRUE(ValidateWebhookUrl("http://localhost/x", false).ok());
  EXPECT_TRUE(ValidateWebhookUrl("http://[::1]:9/x", false).ok());
  EXPECT_TRUE(ValidateWebhookUrl("HTTP://127.0.0.9/x", false).ok());

  Status plain = ValidateWebhookUrl("http://hooks.example.com/x", false);
  EXPECT_EQ(plain.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plain.message().find("allow_insecure"), std::string::npos);
  EXPECT_TRUE(ValidateWebhookUrl("http://hooks.example.com/x", true).ok());
  EXPECT_FALSE(
      ValidateWebhookUrl("http://user:pass@127.0.0.1/x?token=t", false).ok());
  // Not fooled by a loopback-looking user or host prefix.
  EXPECT_FALSE(
      ValidateWebhookUrl("http://127.0.0.1@evil.example/x", false).ok());
  EXPECT_FALSE(
      ValidateWebhookUrl("http://127.0.0.1.evil.example/", false).ok());

  EXPECT_FALSE(ValidateWebhookUrl("ftp://example.com/x", true).ok());
  EXPECT_FALSE(ValidateWebhookUrl("file:///etc/passwd", true).ok());
  EXPECT_FALSE(ValidateWebhookUrl("not a url", true).ok());
  EXPECT_FALSE(ValidateWebhookUrl("", true).ok());
}

TEST(WebhookSignatureTest, Rfc4231TestCase2) {
  EXPECT_EQ(WebhookSignature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
            "64ec3843");
}

TEST(WebhookCreateTest, NeedsAResolvableSecret) {
  WebhookOptions o;
  o.url = "https://hooks.example.com/x";
  auto none = WebhookNotifier::Create(o);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kInvalidArgument);

  unsetenv("CBPIPE_TEST_UNSET_SECRET");
  o.secret_ref = "env:CBPIPE_TEST_UNSET_SECRET";
  auto missing = WebhookNotifier::Create(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("CBPIPE_TEST_UNSET_SECRET"),
            std::string::npos);

  o.secret_ref = "hunter2";  // a secret written in the config
  auto literal = WebhookNotifier::Create(o);
  ASSERT_FALSE(literal.ok());
  EXPECT_EQ(literal.status().code(), StatusCode::kInvalidArgument);

  setenv("CBPIPE_TEST_SET_SECRET", "s3cret", 1);
  o.secret_ref = "env:CBPIPE_TEST_SET_SECRET";
  o.url = "https://hooks.example.com/x?token=abc";
  auto made = WebhookNotifier::Create(o);
  EXPECT_TRUE(made.ok()) << made.status().ToString();

  // Credentials in the URL are refused, and the refusal does not show them.
  o.url = "https://user:pw@hooks.example.com/x?token=abc";
  auto userinfo = WebhookNotifier::Create(o);
  ASSERT_FALSE(userinfo.ok());
  EXPECT_EQ(userinfo.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(userinfo.status().message().find("credentials"), std::string::npos);
  EXPECT_EQ(userinfo.status().message().find("pw"), std::string::npos);
  EXPECT_EQ(userinfo.status().message().find("abc"), std::string::npos);
}

TEST(CurlUtilTest, RedactUrlAndLoopback) {
  using notify_internal::IsLoopbackHost;
  using notify_internal::RedactUrl;
  EXPECT_EQ(RedactUrl("https://u:p@h.example/a/b?token=x#f"),
            "https://h.example/a/b");
  EXPECT_EQ(RedactUrl("smtp://mail.example:587"), "smtp://mail.example:587");
  EXPECT_EQ(RedactUrl("https://h.example/a@b"), "https://h.example/a@b");
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_FALSE(IsLoopbackHost("127.0.0.1.nip.io"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
}

EmailOptions ValidEmail() {
  EmailOptions o;
  o.url = "smtps://mail.example.com:465";
  o.from = "cbpipe@example.com";
  o.to = {"ops@example.com"};
  return o;
}

TEST(EmailOptionsTest, TransportSecurityAndAddresses) {
  EXPECT_TRUE(ValidateEmailOptions(ValidEmail()).ok());

  EmailOptions o = ValidEmail();
  o.url = "smtp://mail.example.com:587";
  EXPECT_EQ(ValidateEmailOptions(o).code(), StatusCode::kInvalidArgument);
  o.starttls = true;
  EXPECT_TRUE(ValidateEmailOptions(o).ok());
  o.starttls = false;
  o.allow_insecure = true;
  EXPECT_TRUE(ValidateEmailOptions(o).ok());
  o = ValidEmail();
  o.url = "smtp://127.0.0.1:2525";
  EXPECT_TRUE(ValidateEmailOptions(o).ok());
  o.url = "https://mail.example.com";
  EXPECT_FALSE(ValidateEmailOptions(o).ok());
  o.url = "smtps://ops:hunter2@mail.example.com:465";
  Status userinfo = ValidateEmailOptions(o);
  EXPECT_EQ(userinfo.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(userinfo.message().find("hunter2"), std::string::npos);

  o = ValidEmail();
  o.to.clear();
  EXPECT_FALSE(ValidateEmailOptions(o).ok());
  o.to = {"ops@example.com\r\nRCPT TO:<x@evil>"};
  EXPECT_FALSE(ValidateEmailOptions(o).ok());
  o = ValidEmail();
  o.from = "Ops <ops@example.com>";
  EXPECT_FALSE(ValidateEmailOptions(o).ok());
  o = ValidEmail();
  o.username_ref = "env:SMTP_USER";  // without a password
  EXPECT_FALSE(ValidateEmailOptions(o).ok());
}

TEST(EmailMessageTest, HeadersAndBody) {
  Event e;
  e.type = "batch.failed";
  e.run_id = "r7";
  e.batch_id = "b1";
  e.destination = "amex";
  e.time_ms = 1714564800000;  // Wed, 01 May 2024 12:00:00 UTC
  e.counts = {{"records", 10}};
  e.totals = {{"JPY", 5000}};
  e.message = "card 4111111111111111 failed";
  EmailOptions o = ValidEmail();
  o.to = {"a@example.com", "b@example.com"};
  std::string m = EmailMessage(e, o, "0123abcd");
  EXPECT_EQ(m.substr(0, m.find("\r\n\r\n") + 4),
            "Date: Wed, 01 May 2024 12:00:00 +0000\r\n"
            "From: cbpipe@example.com\r\n"
            "To: a@example.com, b@example.com\r\n"
            "Subject: [cbpipe] batch.failed: run r7, batch b1, destination "
            "amex\r\n"
            "Message-ID: <0123abcd@cbpipe>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n");
  EXPECT_NE(m.find("run id:      r7\r\n"), std::string::npos);
  EXPECT_NE(m.find("  records: 10\r\n"), std::string::npos);
  EXPECT_NE(m.find("  JPY: 5000\r\n"), std::string::npos);
  EXPECT_NE(m.find("message:     card 411111******1111 failed\r\n"),
            std::string::npos);
  EXPECT_EQ(m.find("4111111111111111"), std::string::npos);
}

TEST(EmailMessageTest, FieldsCannotInjectHeaders) {
  Event e;
  e.type = "batch.failed";
  e.run_id = "r1\r\nBcc: everyone@example.com";
  std::string m = EmailMessage(e, ValidEmail(), "id");
  EXPECT_EQ(m.find("\r\nBcc:"), std::string::npos);
  EXPECT_NE(m.find("Subject: [cbpipe] batch.failed: run r1  Bcc: "),
            std::string::npos);
}

}  // namespace
}  // namespace cbpipe
