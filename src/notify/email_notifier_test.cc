// EmailNotifier against an SMTP sink on 127.0.0.1 written for the test.
#include "notify/email_notifier.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include <string>

#include "notify/test_receivers.h"

namespace cbpipe {
namespace {

using std::chrono::milliseconds;
using testing::SmtpSink;

constexpr char kUser[] = "cbpipe-mailer";
constexpr char kPassword[] = "smtp-pw-91c2e7";

Event SampleEvent() {
  Event e;
  e.type = "delivery.failed";
  e.run_id = "run-20240501-9";
  e.batch_id = "b0042";
  e.destination = "mastercard_ftps";
  e.trace_id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.time_ms = 1714564800000;
  e.counts = {{"files", 3}, {"records", 5000}};
  e.totals = {{"GBP", 777700}};
  e.message = "upload refused: 550 permission denied";
  return e;
}

std::string Base64Decode(const std::string& in) {
  std::string out(in.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return "";
  // EVP_DecodeBlock counts each '=' of padding as a decoded zero byte.
  size_t padding = 0;
  for (size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) ++padding;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

class EmailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("CBPIPE_TEST_SMTP_USER", kUser, 1);
    setenv("CBPIPE_TEST_SMTP_PASSWORD", kPassword, 1);
  }

  EmailOptions Options(int port) {
    EmailOptions o;
    o.url = "smtp://127.0.0.1:" + std::to_string(port);
    o.from = "cbpipe@example.test";
    o.to = {"ops@example.test", "finance@example.test"};
    o.connect_timeout = milliseconds(1000);
    o.request_timeout = milliseconds(3000);
    o.retry.interval_seconds = 0.02;
    o.retry.max_attempts = 3;
    o.retry.full_jitter = false;
    return o;
  }

  std::unique_ptr<EmailNotifier> Make(const EmailOptions& o) {
    auto n = EmailNotifier::Create(o);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? std::move(*n) : nullptr;
  }
};

TEST_F(EmailTest, SendsOneMessageToEveryRecipient) {
  SmtpSink::Options so;
  so.advertise_auth = true;
  SmtpSink sink(so);
  ASSERT_TRUE(sink.Start());
  EmailOptions o = Options(sink.port());
  o.username_ref = "env:CBPIPE_TEST_SMTP_USER";
  o.password_ref = "env:CBPIPE_TEST_SMTP_PASSWORD";
  auto n = Make(o);
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());

  auto messages = sink.messages();
  ASSERT_EQ(messages.size(), 1u);
  const auto& m = messages[0];
  EXPECT_EQ(m.mail_from, "cbpipe@example.test");
  EXPECT_EQ(m.rcpt_to, (std::vector<std::string>{"ops@example.test",
                                                 "finance@example.test"}));
  EXPECT_NE(m.data.find("Subject: [cbpipe] delivery.failed: run "
                        "run-20240501-9, batch b0042, destination "
                        "mastercard_ftps\r\n"),
            std::string::npos)
      << m.data;
  EXPECT_NE(m.data.find("To: ops@example.test, finance@example.test\r\n"),
            std::string::npos);
  EXPECT_NE(m.data.find("run id:      run-20240501-9"), std::string::npos);
  EXPECT_NE(m.data.find("  GBP: 777700"), std::string::npos);
  EXPECT_EQ(m.data.find(kPassword), std::string::npos);
  EXPECT_EQ(m.data.find(kUser), std::string::npos);

  // The credentials went over AUTH PLAIN, not into the message.
  auto auth = sink.auth_lines();
  ASSERT_EQ(auth.size(), 1u);
  std::string b64 = auth[0].substr(auth[0].rfind(' ') + 1);
  EXPECT_EQ(Base64Decode(b64),
            std::string("\0", 1) + kUser + std::string("\0", 1) + kPassword);
  EXPECT_EQ(n->stats().delivered, 1u);
}

TEST_F(EmailTest, Retries451) {
  SmtpSink::Options so;
  so.fail_mail_from_times = 1;
  so.fail_code = 451;
  SmtpSink sink(so);
  ASSERT_TRUE(sink.Start());
  auto n = Make(Options(sink.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(sink.messages().size(), 1u);
  EXPECT_EQ(n->stats().attempts, 2u);
  EXPECT_EQ(n->stats().delivered, 1u);
}

TEST_F(EmailTest, GivesUpAt550) {
  SmtpSink::Options so;
  so.rcpt_reject_code = 550;
  SmtpSink sink(so);
  ASSERT_TRUE(sink.Start());
  std::vector<std::string> log;
  EmailOptions o = Options(sink.port());
  o.log = [&log](std::string_view line) { log.emplace_back(line); };
  auto n = Make(o);
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(sink.messages().size(), 0u);
  EXPECT_EQ(n->stats().attempts, 1u);
  EXPECT_EQ(n->stats().failed, 1u);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("550"), std::string::npos) << log[0];
}

TEST_F(EmailTest, StarttlsRequiredFailsWhenTheServerCannot) {
  SmtpSink sink;  // does not offer STARTTLS
  ASSERT_TRUE(sink.Start());
  EmailOptions o = Options(sink.port());
  o.starttls = true;
  auto n = Make(o);
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(sink.messages().size(), 0u);
  EXPECT_EQ(n->stats().failed, 1u);
  EXPECT_EQ(n->stats().attempts, 1u);
}

TEST_F(EmailTest, RetriesWhileTheServerIsDown) {
  SmtpSink sink;
  ASSERT_TRUE(sink.Start());
  int port = sink.port();
  sink.Stop();  // refuses connections from now on
  auto n = Make(Options(port));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(n->stats().attempts, 3u);
  EXPECT_EQ(n->stats().failed, 1u);
}

}  // namespace
}  // namespace cbpipe
