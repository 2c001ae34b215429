// WebhookNotifier against a real HTTP(S) receiver on 127.0.0.1.
#include "notify/webhook_notifier.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "notify/test_receivers.h"

namespace cbpipe {
namespace {

using std::chrono::milliseconds;
using testing::HttpReceiver;
using testing::Reply;

constexpr char kSecret[] = "whsec-test-7f3a9c";

// Computed here with OpenSSL, independently of WebhookSignature.
std::string ExpectedSignature(const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret, static_cast<int>(sizeof kSecret - 1),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac,
       &len);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", mac[i]);
    hex += buf;
  }
  return "sha256=" + hex;
}

Event SampleEvent(const std::string& run_id = "run-20240501-1") {
  Event e;
  e.type = "batch.delivered";
  e.run_id = run_id;
  e.batch_id = "b0007";
  e.destination = "visa_sftp";
  e.trace_id = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.time_ms = 1714564800123;
  e.counts = {{"records", 1200}, {"files", 2}};
  e.totals = {{"EUR", 1234567}, {"USD", 89000}};
  e.message = "delivered 2 files";
  return e;
}

class WebhookTest : public ::testing::Test {
 protected:
  void SetUp() override { setenv("CBPIPE_TEST_WEBHOOK_SECRET", kSecret, 1); }

  WebhookOptions Options(int port) {
    WebhookOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port) + "/hooks/cbpipe";
    o.secret_ref = "env:CBPIPE_TEST_WEBHOOK_SECRET";
    o.connect_timeout = milliseconds(1000);
    o.request_timeout = milliseconds(2000);
    o.retry.interval_seconds = 0.02;
    o.retry.backoff_rate = 2.0;
    o.retry.max_attempts = 4;
    o.retry.max_delay_seconds = 1.0;
    o.retry.full_jitter = false;
    o.log = [this](std::string_view line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.emplace_back(line);
    };
    return o;
  }

  std::unique_ptr<WebhookNotifier> Make(const WebhookOptions& o) {
    auto n = WebhookNotifier::Create(o);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? std::move(*n) : nullptr;
  }

  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> lock(log_mu_);
    return log_;
  }

  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(WebhookTest, PostsSignedEventJson) {
  HttpReceiver receiver;
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  Event e = SampleEvent();
  n->Notify(e);
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());

  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/hooks/cbpipe");
  EXPECT_EQ(r.body, EventJson(e));
  EXPECT_EQ(r.Header("content-type"), "application/json");
  EXPECT_EQ(r.Header("x-cbpipe-signature"), ExpectedSignature(r.body));
  EXPECT_EQ(r.Header("x-cbpipe-event"), "batch.delivered");
  EXPECT_EQ(r.Header("traceparent"), e.trace_id);
  EXPECT_EQ(r.Header("x-cbpipe-delivery").size(), 32u);
  for (const auto& [name, value] : r.headers) {
    EXPECT_EQ(value.find(kSecret), std::string::npos) << name;
  }
  EXPECT_EQ(r.body.find(kSecret), std::string::npos);

  NotifierStats s = n->stats();
  EXPECT_EQ(s.accepted, 1u);
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(s.attempts, 1u);
  EXPECT_EQ(s.failed, 0u);
}

TEST_F(WebhookTest, OmitsMalformedTraceparentHeader) {
  HttpReceiver receiver;
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  Event e = SampleEvent();
  e.trace_id = "not-a-trace\r\nX-Injected: 1";
  n->Notify(e);
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("traceparent"), "");
  EXPECT_EQ(requests[0].Header("x-injected"), "");
  EXPECT_EQ(requests[0].body, EventJson(e));  // still in the JSON
}

TEST_F(WebhookTest, RetriesAfterTwo503sAndDeliversOnce) {
  HttpReceiver receiver([](int n) { return Reply{n <= 2 ? 503 : 200}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());

  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 3u);
  // The same event, signature and delivery id on every attempt.
  for (const auto& r : requests) {
    EXPECT_EQ(r.body, requests[0].body);
    EXPECT_EQ(r.Header("x-cbpipe-signature"),
              ExpectedSignature(requests[0].body));
    EXPECT_EQ(r.Header("x-cbpipe-delivery"),
              requests[0].Header("x-cbpipe-delivery"));
  }
  NotifierStats s = n->stats();
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(s.attempts, 3u);
  EXPECT_EQ(s.failed, 0u);
}

TEST_F(WebhookTest, Retries429) {
  HttpReceiver receiver([](int n) { return Reply{n == 1 ? 429 : 204}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(receiver.requests().size(), 2u);
  EXPECT_EQ(n->stats().delivered, 1u);
}

TEST_F(WebhookTest, GivesUpAt400WithoutRetrying) {
  HttpReceiver receiver([](int) { return Reply{400}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(receiver.requests().size(), 1u);
  NotifierStats s = n->stats();
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.attempts, 1u);
  auto log = Log();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("HTTP 400"), std::string::npos) << log[0];
  EXPECT_NE(log[0].find("run-20240501-1"), std::string::npos) << log[0];
  EXPECT_EQ(log[0].find(kSecret), std::string::npos) << log[0];
}

TEST_F(WebhookTest, GivesUpWhenAttemptsAreUsedUp) {
  HttpReceiver receiver([](int) { return Reply{500}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(receiver.requests().size(), 4u);  // max_attempts
  EXPECT_EQ(n->stats().failed, 1u);
}

TEST_F(WebhookTest, DeliversWhenTheReceiverComesUpWithinTheRetryWindow) {
  int port = 0;
  {
    HttpReceiver probe;  // find a free port, then free it
    ASSERT_TRUE(probe.Start());
    port = probe.port();
  }
  WebhookOptions o = Options(port);
  o.retry.interval_seconds = 0.05;
  o.retry.max_attempts = 6;  // waits 0.05+0.1+0.2+0.4+0.8 s in all
  auto n = Make(o);
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  std::this_thread::sleep_for(milliseconds(150));
  EXPECT_GE(n->stats().attempts, 2u);  // refused, retried
  EXPECT_EQ(n->stats().delivered, 0u);

  HttpReceiver receiver;
  ASSERT_TRUE(receiver.Start(port));
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(receiver.requests().size(), 1u);
  EXPECT_EQ(n->stats().delivered, 1u);
}

TEST_F(WebhookTest, NotifyReturnsAtOnceWhileTheReceiverHangs) {
  HttpReceiver receiver([](int n) { return Reply{200, n == 1}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent("run-a"));
  ASSERT_TRUE(receiver.WaitForRequests(1, milliseconds(3000)));

  // The delivery thread is stuck in the first POST.
  for (int i = 0; i < 5; ++i) {
    auto start = std::chrono::steady_clock::now();
    n->Notify(SampleEvent("run-b" + std::to_string(i)));
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_LT(took, milliseconds(10));
  }
  Status early = n->Flush(milliseconds(100));
  EXPECT_EQ(early.code(), StatusCode::kDeadlineExceeded) << early.ToString();

  receiver.Release();
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(receiver.requests().size(), 6u);
  EXPECT_EQ(n->stats().delivered, 6u);
}

TEST_F(WebhookTest, RequestTimeoutIsRetried) {
  HttpReceiver receiver([](int n) { return Reply{200, n == 1}; });
  ASSERT_TRUE(receiver.Start());
  WebhookOptions o = Options(receiver.port());
  o.request_timeout = milliseconds(300);
  auto n = Make(o);
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  ASSERT_TRUE(n->Flush(milliseconds(5000)).ok());
  NotifierStats s = n->stats();
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(s.attempts, 2u);
  EXPECT_EQ(receiver.requests().size(), 2u);
}

TEST_F(WebhookTest, DestructionAbandonsTheRequestInFlight) {
  HttpReceiver receiver([](int) { return Reply{200, true}; });
  ASSERT_TRUE(receiver.Start());
  auto n = Make(Options(receiver.port()));
  ASSERT_NE(n, nullptr);
  n->Notify(SampleEvent());
  n->Notify(SampleEvent("run-queued"));
  ASSERT_TRUE(receiver.WaitForRequests(1, milliseconds(3000)));
  auto start = std::chrono::steady_clock::now();
  n.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "notify_test.XXXXXX")
            .string();
    path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_F(WebhookTest, HttpsVerifiesTheCertificate) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string cert, key;
  ASSERT_TRUE(testing::WriteSelfSignedCert(dir.path(), &cert, &key));
  HttpReceiver receiver;
  ASSERT_TRUE(receiver.Start(0, cert, key));
  WebhookOptions o = Options(receiver.port());
  o.url = "https://127.0.0.1:" + std::to_string(receiver.port()) + "/hook";

  {  // Not trusted: given up at once, nothing reaches the handler.
    auto untrusting = Make(o);
    ASSERT_NE(untrusting, nullptr);
    untrusting->Notify(SampleEvent());
    ASSERT_TRUE(untrusting->Flush(milliseconds(5000)).ok());
    EXPECT_EQ(untrusting->stats().failed, 1u);
    EXPECT_EQ(untrusting->stats().attempts, 1u);
    EXPECT_EQ(receiver.requests().size(), 0u);
    auto log = Log();
    ASSERT_EQ(log.size(), 1u);
    EXPECT_NE(log[0].find("FAILED_PRECONDITION"), std::string::npos) << log[0];
  }
  o.ca_file = cert;
  auto trusting = Make(o);
  ASSERT_NE(trusting, nullptr);
  trusting->Notify(SampleEvent());
  ASSERT_TRUE(trusting->Flush(milliseconds(5000)).ok());
  EXPECT_EQ(trusting->stats().delivered, 1u);
  auto requests = receiver.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].Header("x-cbpipe-signature"),
            ExpectedSignature(requests[0].body));
}

}  // namespace
}  // namespace cbpipe
