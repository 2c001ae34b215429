#include "aws/client.h"

#include <atomic>
#include <mutex>
#include <regex>
#include <thread>

#include "aws/xml.h"
#include "common/retry.h"
#include "gtest/gtest.h"
#include "servers/http_fault_server.h"

namespace cbpipe {
namespace {

using testing::HttpFaultServer;
using testing::HttpRecordedRequest;
using testing::HttpStep;

constexpr char kSecret[] = "SECRETKEYabcdef0123456789";
constexpr char kToken[] = "SESSIONTOKENxyz987654321";

AwsCredentials Creds(std::string key_id = "AKIDTEST") {
  AwsCredentials c;
  c.access_key_id = std::move(key_id);
  c.secret_access_key = kSecret;
  c.session_token = kToken;
  return c;
}

// Counts Invalidate calls; hands out a second key id after the first.
class RotatingCredentials : public AwsCredentialsProvider {
 public:
  StatusOr<AwsCredentials> Get() override {
    return Creds(invalidations_.load() == 0 ? "AKIDOLD" : "AKIDNEW");
  }
  std::string Source() const override { return "rotating test keys"; }
  void Invalidate() override { ++invalidations_; }
  int invalidations() const { return invalidations_.load(); }

 private:
  std::atomic<int> invalidations_{0};
};

// Keeps every ended call; sends a trace header when the request has none.
class RecordingObserver : public AwsCallObserver {
 public:
  class Recorded : public Call {
   public:
    Recorded(RecordingObserver* owner, AwsCallRecord begun)
        : owner_(owner), begun_(std::move(begun)) {}
    void End(const AwsCallRecord& call) override {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      owner_->begun_.push_back(begun_);
      owner_->ended_.push_back(call);
    }

   private:
    RecordingObserver* owner_;
    AwsCallRecord begun_;
  };
  std::unique_ptr<Call> Begin(const AwsCallRecord& call,
                              std::string* trace_header) override {
    if (trace_header->empty() && !inject_.empty()) *trace_header = inject_;
    return std::make_unique<Recorded>(this, call);
  }
  std::vector<AwsCallRecord> ended() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_;
  }
  std::vector<AwsCallRecord> begun() {
    std::lock_guard<std::mutex> lock(mu_);
    return begun_;
  }
  std::string inject_;

 private:
  std::mutex mu_;
  std::vector<AwsCallRecord> begun_;
  std::vector<AwsCallRecord> ended_;
};

class FailingCredentials : public AwsCredentialsProvider {
 public:
  StatusOr<AwsCredentials> Get() override {
    return UnauthenticatedError("no credentials in the environment");
  }
  std::string Source() const override { return "environment"; }
};

std::string S3Error(const std::string& code, const std::string& message,
                    const std::string& request_id = "REQ123") {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code +
         "</Code><Message>" + message + "</Message><RequestId>" + request_id +
         "</RequestId></Error>";
}

class AwsClientTest : public ::testing::Test {
 protected:
  void Serve(std::vector<HttpStep> script) {
    server_ = std::make_unique<HttpFaultServer>(std::move(script));
    ASSERT_TRUE(server_->Start().ok());
  }
  std::unique_ptr<AwsClient> Client(
      std::shared_ptr<AwsCredentialsProvider> creds = nullptr) {
    AwsClientOptions options;
    options.region = "us-east-1";
    for (const char* service : {"s3", "sqs", "sns", "dynamodb"}) {
      options.endpoints[service] = server_->endpoint();
    }
    options.env = &env_;
    options.connect_timeout_seconds = 2;
    options.request_timeout_seconds = request_timeout_;
    options.observer = observer_;
    if (!creds) creds = std::make_shared<AwsStaticCredentials>(Creds());
    auto client = AwsClient::Create(options, std::move(creds));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }
  // A client of S3 at `endpoint` with the fixture's clock and keys.
  std::unique_ptr<AwsClient> ClientAt(const std::string& endpoint) {
    AwsClientOptions options;
    options.region = "us-east-1";
    options.endpoints["s3"] = endpoint;
    options.env = &env_;
    auto c = AwsClient::Create(options,
                               std::make_shared<AwsStaticCredentials>(Creds()));
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }
  static AwsRequest GetObject(std::string key = "/dir/my key.csv") {
    AwsRequest r;
    r.service = "s3";
    r.operation = "GetObject";
    r.resource = "s3://bucket/" + key.substr(1);
    r.bucket = "bucket";
    r.path = std::move(key);
    return r;
  }
  void ExpectNoSecret(const std::string& text) {
    EXPECT_EQ(text.find(kSecret), std::string::npos) << text;
    EXPECT_EQ(text.find(kToken), std::string::npos) << text;
    // A signature is 64 hex digits; the echoed one must be scrubbed.
    EXPECT_FALSE(std::regex_search(text, std::regex("[0-9a-f]{64}"))) << text;
  }

  FakeEnv env_;
  double request_timeout_ = 0;
  std::unique_ptr<HttpFaultServer> server_;
  std::shared_ptr<RecordingObserver> observer_ =
      std::make_shared<RecordingObserver>();
};

TEST_F(AwsClientTest, SignsAnS3RequestPathStyleWithContentSha256) {
  Serve({HttpStep::Answer(200, "hello", {{"x-amz-request-id", "R1"}})});
  auto client = Client();
  AwsRequest get = GetObject();
  get.query = {{"versionId", "v 1"}};
  auto response = client->Send(get);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "hello");
  EXPECT_EQ(response->request_id, "R1");
  auto requests = server_->requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/bucket/dir/my%20key.csv?versionId=v%201");
  EXPECT_EQ(requests[0].Header("x-amz-content-sha256"), kAwsEmptyPayloadHash);
  EXPECT_EQ(requests[0].Header("x-amz-security-token"), kToken);
  std::string auth = requests[0].Header("authorization");
  EXPECT_TRUE(
      auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/"
                       "20231114/us-east-1/s3/aws4_request, "
                       "SignedHeaders=host;x-amz-content-sha256;"
                       "x-amz-date;x-amz-security-token, Signature="))
      << auth;
  EXPECT_EQ(requests[0].Header("x-amz-date"), "20231114T221320Z");
}

TEST_F(AwsClientTest, TheSignatureIsTheSignersOverWhatWasSent) {
  Serve({HttpStep::Answer(200)});
  auto client = Client();
  AwsRequest put = GetObject("/k");
  put.method = "PUT";
  put.body = "data";
  put.headers = {{"Content-Type", "text/csv"}};
  ASSERT_TRUE(client->Send(put).ok());
  HttpRecordedRequest sent = server_->requests().at(0);
  EXPECT_EQ(sent.body, "data");
  AwsSigningRequest again;
  again.method = "PUT";
  again.path = "/bucket/k";
  again.headers = {{"Content-Type", sent.Header("content-type")},
                   {"Host", sent.Header("host")}};
  AwsSigningOptions options;
  options.region = "us-east-1";
  options.service = "s3";
  options.time_s = env_.NowSeconds();
  options.normalize_path = options.double_encode_path = false;
  options.sign_body = true;
  options.payload_hash = AwsPayloadHash("data");
  auto sig = AwsSignHeaders(again, Creds(), options);
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(sent.Header("authorization"), sig->authorization);
}

TEST_F(AwsClientTest, RetriesSlowDownAnd503WithBackoffAndFullJitter) {
  Serve({HttpStep::Answer(503, S3Error("SlowDown", "Please reduce")),
         HttpStep::Answer(503), HttpStep::Answer(200, "ok")});
  env_.SetRandom({0.25, 0.75});
  auto client = Client();
  auto response = client->Send(GetObject());
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "ok");
  EXPECT_EQ(server_->requests().size(), 3u);
  RetryPolicy policy = client->options().retry;
  std::vector<double> sleeps = env_.sleeps();
  ASSERT_EQ(sleeps.size(), 2u);
  EXPECT_DOUBLE_EQ(sleeps[0], RetryDelaySeconds(policy, 1, 0.25));
  EXPECT_DOUBLE_EQ(sleeps[1], RetryDelaySeconds(policy, 2, 0.75));
  EXPECT_DOUBLE_EQ(sleeps[1], 0.1 * 2 * 0.75);
  auto records = observer_->ended();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].attempts, 3);
  EXPECT_EQ(records[0].code, StatusCode::kOk);
  EXPECT_EQ(records[0].http_status, 200);
  EXPECT_EQ(records[0].operation, "GetObject");
  EXPECT_EQ(records[0].region, "us-east-1");
  EXPECT_EQ(records[0].method, "GET");
  EXPECT_EQ(records[0].url, server_->endpoint() + "/bucket/dir/my%20key.csv");
  EXPECT_EQ(records[0].end_ms - records[0].start_ms, 25 + 150);  // waits
}

TEST_F(AwsClientTest, RetriesThrottlingJson400And429And500) {
  Serve(
      {HttpStep::Answer(
           400,
           R"({"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow"})"),
       HttpStep::Answer(429), HttpStep::Answer(500),
       HttpStep::Answer(200, "{}")});
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["dynamodb"] = server_->endpoint();
  options.env = &env_;
  options.retry.max_attempts = 5;
  auto c = AwsClient::Create(options,
                             std::make_shared<AwsStaticCredentials>(Creds()));
  ASSERT_TRUE(c.ok());
  auto out = (*c)->CallJson("dynamodb", "DynamoDB_20120810.GetItem", "{}");
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(server_->requests().size(), 4u);
  EXPECT_EQ(env_.sleeps().size(), 3u);
}

TEST_F(AwsClientTest, GivesUpAfterMaxAttemptsAsUnavailable) {
  Serve({HttpStep::Answer(503), HttpStep::Answer(503), HttpStep::Answer(503),
         HttpStep::Answer(503), HttpStep::Answer(200)});
  auto client = Client();
  AwsError error;
  auto response = client->Send(GetObject(), &error);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(
      response.status().message(),
      "S3 GetObject s3://bucket/dir/my key.csv: HTTP 503 after 4 attempts");
  EXPECT_EQ(server_->requests().size(), 4u);
  EXPECT_EQ(error.http_status, 503);
}

TEST_F(AwsClientTest, NeverRetriesAccessDeniedOrNoSuchKey) {
  Serve({HttpStep::Answer(
             404, S3Error("NoSuchKey", "The specified key does not exist.",
                          "4442587FB7D0A2F9")),
         HttpStep::Answer(403, S3Error("AccessDenied", "Access Denied")),
         HttpStep::Answer(200)});
  auto client = Client();
  AwsError error;
  auto missing = client->Send(GetObject("/b/k"), &error);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(),
            "S3 GetObject s3://bucket/b/k: NoSuchKey: The specified key does "
            "not exist. (request id 4442587FB7D0A2F9)");
  EXPECT_EQ(error.code, "NoSuchKey");
  EXPECT_EQ(error.request_id, "4442587FB7D0A2F9");
  EXPECT_EQ(error.http_status, 404);
  auto denied = client->Send(GetObject());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(server_->requests().size(), 2u);
  EXPECT_TRUE(env_.sleeps().empty());
}

TEST_F(AwsClientTest, JsonErrorsMapCodeMessageAndRequestIdHeader) {
  Serve({HttpStep::Answer(
      400,
      R"({"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"})",
      {{"x-amzn-RequestId", "JSONREQ1"},
       {"Content-Type", "application/x-amz-json-1.0"}})});
  auto client = Client();
  AwsError error;
  auto out = client->CallJson("dynamodb", "DynamoDB_20120810.PutItem", "{}",
                              "dynamodb://ledger", "", &error);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.status().message(),
            "DynamoDB PutItem dynamodb://ledger: "
            "ConditionalCheckFailedException: The conditional request failed "
            "(request id JSONREQ1)");
  auto sent = server_->requests().at(0);
  EXPECT_EQ(sent.Header("x-amz-target"), "DynamoDB_20120810.PutItem");
  EXPECT_EQ(sent.Header("content-type"), "application/x-amz-json-1.0");
  EXPECT_EQ(sent.Header("x-amz-content-sha256"), "");  // only S3 wants it
}

TEST_F(AwsClientTest, QueryProtocolFormEncodesActionVersionAndParams) {
  Serve({HttpStep::Answer(
      200,
      "<CreateTopicResponse><CreateTopicResult><TopicArn>arn:aws:sns:us-east-1:"
      "1:t</TopicArn></CreateTopicResult></CreateTopicResponse>")});
  auto client = Client();
  auto xml = client->CallQuery("sns", "CreateTopic", "2010-03-31",
                               {{"Name", "a b&c"}});
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  EXPECT_EQ(AwsXmlText(*xml, "TopicArn"), "arn:aws:sns:us-east-1:1:t");
  auto sent = server_->requests().at(0);
  EXPECT_EQ(sent.body, "Action=CreateTopic&Version=2010-03-31&Name=a%20b%26c");
  EXPECT_EQ(sent.Header("content-type"),
            "application/x-www-form-urlencoded; charset=utf-8");
}

TEST_F(AwsClientTest, ExpiredTokenInvalidatesAndRetriesOnceWithFreshKeys) {
  Serve({HttpStep::Answer(403, S3Error("ExpiredToken", "expired")),
         HttpStep::Answer(200, "fresh"),
         HttpStep::Answer(400, S3Error("ExpiredToken", "expired")),
         HttpStep::Answer(400, S3Error("ExpiredToken", "expired again")),
         HttpStep::Answer(200)});
  auto creds = std::make_shared<RotatingCredentials>();
  auto client = Client(creds);
  auto first = client->Send(GetObject());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(creds->invalidations(), 1);
  auto requests = server_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].Header("authorization").find("AKIDOLD/"),
            std::string::npos);
  EXPECT_NE(requests[1].Header("authorization").find("AKIDNEW/"),
            std::string::npos);
  EXPECT_TRUE(env_.sleeps().empty());
  // Refreshed once per call only: a second ExpiredToken is the answer.
  auto second = client->Send(GetObject());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(server_->requests().size(), 4u);
  EXPECT_EQ(creds->invalidations(), 2);
}

TEST_F(AwsClientTest, MissingCredentialsNameTheirSource) {
  Serve({});
  auto client = Client(std::make_shared<FailingCredentials>());
  auto out = client->Send(GetObject());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(out.status().message(),
            "S3 GetObject s3://bucket/dir/my key.csv: AWS credentials "
            "(environment): no credentials in the environment");
  EXPECT_TRUE(server_->requests().empty());
  EXPECT_EQ(client->credentials_source(), "environment");
}

TEST_F(AwsClientTest, NoSecretTokenOrSignatureInAnyErrorText) {
  // The server echoes what it got, secrets included (as a broken proxy or
  // a verbose server may); the client scrubs them.
  std::string echo = std::string("got secret ") + kSecret + " token " + kToken +
                     " auth $AUTHORIZATION";
  Serve({HttpStep::Answer(403, S3Error("SignatureDoesNotMatch", echo)),
         HttpStep::Answer(
             400, R"({"__type":"UnrecognizedClientException","message":")" +
                      echo + R"("})"),
         HttpStep::Answer(
             400, R"({"__type":"UnrecognizedClientException","message":")" +
                      echo + R"("})"),
         HttpStep::Answer(500, S3Error("InternalError", echo)),
         HttpStep::Answer(500, S3Error("InternalError", echo)),
         HttpStep::Answer(500, S3Error("InternalError", echo)),
         HttpStep::Answer(500, S3Error("InternalError", echo))});
  auto client = Client();
  std::vector<std::pair<Status, AwsError>> seen;
  for (int i = 0; i < 3; ++i) {
    AwsError error;
    Status s = client->Send(GetObject(), &error).status();
    seen.emplace_back(s, error);
  }
  // And errors without an answer: refused connection, bad endpoint.
  auto refusing = ClientAt("http://127.0.0.1:1");
  ASSERT_NE(refusing, nullptr);
  AwsError error;
  seen.emplace_back(refusing->Send(GetObject(), &error).status(), error);
  AwsClientOptions refused;
  refused.region = "us-east-1";
  refused.endpoints["s3"] = std::string("http://user:") + kSecret + "@host";
  seen.emplace_back(
      AwsClient::Create(refused,
                        std::make_shared<AwsStaticCredentials>(Creds()))
          .status(),
      AwsError{});

  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0].first.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(seen[1].first.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(seen[2].first.code(), StatusCode::kUnavailable);
  EXPECT_EQ(seen[3].first.code(), StatusCode::kUnavailable);
  EXPECT_EQ(seen[4].first.code(), StatusCode::kInvalidArgument);
  for (const auto& [status, err] : seen) {
    EXPECT_FALSE(status.ok());
    ExpectNoSecret(status.ToString());
    ExpectNoSecret(err.message);
  }
  // The echo did reach the client: scrubbed, not lost.
  EXPECT_NE(seen[0].first.message().find("got secret [redacted] token "
                                         "[redacted] auth AWS4-HMAC-SHA256 "
                                         "Credential=AKIDTEST/"),
            std::string::npos)
      << seen[0].first.message();
  EXPECT_NE(seen[0].first.message().find("Signature=[redacted]"),
            std::string::npos);
}

TEST_F(AwsClientTest, ATimeoutIsRetriedThenDeadlineExceeded) {
  Serve({HttpStep::Hang(), HttpStep::Hang()});
  request_timeout_ = 0.3;
  auto client = Client();
  AwsClientOptions options = client->options();
  options.retry.max_attempts = 2;
  auto c = AwsClient::Create(options,
                             std::make_shared<AwsStaticCredentials>(Creds()));
  ASSERT_TRUE(c.ok());
  auto out = (*c)->Send(GetObject());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded)
      << out.status().ToString();
  EXPECT_EQ(server_->requests().size(), 2u);
  EXPECT_NE(out.status().message().find("after 2 attempts"), std::string::npos);
}

TEST_F(AwsClientTest, ADroppedConnectionIsRetried) {
  Serve({HttpStep::Close(), HttpStep::Answer(200, "ok")});
  auto client = Client();
  auto out = client->Send(GetObject());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->body, "ok");
  EXPECT_EQ(server_->requests().size(), 2u);
}

// A body of `size` bytes produced in pieces; counts rewinds.
struct PatternBody {
  size_t size;
  size_t offset = 0;
  int rewinds = 0;
  AwsRequestBody Make(bool can_rewind) {
    AwsRequestBody body;
    body.length = static_cast<int64_t>(size);
    body.read = [this](char* buf, size_t room) -> StatusOr<size_t> {
      size_t n = std::min(room, size - offset);
      for (size_t i = 0; i < n; ++i)
        buf[i] = static_cast<char>('a' + (offset + i) % 26);
      offset += n;
      return n;
    };
    if (can_rewind) {
      body.rewind = [this] {
        offset = 0;
        ++rewinds;
        return true;
      };
    }
    return body;
  }
  std::string Expected() const {
    std::string s(size, '\0');
    for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  }
};

TEST_F(AwsClientTest, ABodyIsSentAgainWhenAReusedConnectionWasDropped) {
  Serve({HttpStep::Answer(200), HttpStep::Close(), HttpStep::Answer(200),
         HttpStep::Answer(200), HttpStep::Close()});
  auto client = Client();
  AwsRequest put = GetObject("/k");
  put.method = "PUT";
  put.body = "small body";
  ASSERT_TRUE(client->Send(put).ok());
  ASSERT_TRUE(client->Send(put).ok());  // Close, then sent again: 200
  auto requests = server_->requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].body, "small body");

  // A stream that cannot rewind is not sent twice.
  ASSERT_TRUE(client->Send(GetObject()).ok());  // keeps a live connection
  PatternBody once{5000};
  put.body_stream = once.Make(false);
  auto failed = client->Send(put);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable)
      << failed.status().ToString();
  EXPECT_EQ(server_->requests().size(), 5u);
}

TEST_F(AwsClientTest, ConnectionRefusedIsUnavailable) {
  auto client = ClientAt("http://127.0.0.1:1");
  ASSERT_NE(client, nullptr);
  auto out = client->Send(GetObject());
  EXPECT_EQ(out.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(env_.sleeps().size(), 3u);  // 4 attempts
}

TEST_F(AwsClientTest, StreamedBodyIsUnsignedAndRetriedOnlyWhenItRewinds) {
  Serve({HttpStep::Answer(503), HttpStep::Answer(200), HttpStep::Answer(503),
         HttpStep::Answer(200)});
  auto client = Client();
  PatternBody rewindable{300000};
  AwsRequest put = GetObject("/big");
  put.method = "PUT";
  put.body_stream = rewindable.Make(true);
  auto out = client->Send(put);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(rewindable.rewinds, 1);
  auto requests = server_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].body, rewindable.Expected());
  EXPECT_EQ(requests[1].Header("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
  EXPECT_EQ(requests[1].Header("content-length"), "300000");

  PatternBody once{1000};
  put.body_stream = once.Make(false);
  auto failed = client->Send(put);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("cannot be sent again"),
            std::string::npos);
  EXPECT_EQ(server_->requests().size(), 3u);
}

TEST_F(AwsClientTest, ReaderAndWriterErrorsEndTheCallAsTheyAre) {
  Serve(
      {HttpStep::Answer(200, std::string(100000, 'x')), HttpStep::Answer(200)});
  auto client = Client();
  AwsRequest get = GetObject();
  size_t got = 0;
  get.on_data = [&](std::string_view chunk) -> Status {
    got += chunk.size();
    return got > 50000 ? DataLossError("disk full") : OkStatus();
  };
  auto out = client->Send(get);
  EXPECT_EQ(out.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(out.status().message().find("disk full"), std::string::npos);

  AwsRequest put = GetObject();
  put.method = "PUT";
  AwsRequestBody body;
  body.length = 10;
  body.read = [](char*, size_t) -> StatusOr<size_t> {
    return InternalError("read failed");
  };
  body.rewind = [] { return true; };
  put.body_stream = body;
  auto failed = client->Send(put);
  EXPECT_EQ(failed.status().code(), StatusCode::kInternal);
  EXPECT_NE(failed.status().message().find("read failed"), std::string::npos);
}

TEST_F(AwsClientTest, StreamsTheResponseBodyToOnData) {
  std::string big(2 << 20, 'z');
  Serve({HttpStep::Answer(200, big)});
  auto client = Client();
  AwsRequest get = GetObject();
  std::string received;
  int chunks = 0;
  get.on_data = [&](std::string_view chunk) {
    received += chunk;
    ++chunks;
    return OkStatus();
  };
  auto out = client->Send(get);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->body.empty());
  EXPECT_EQ(received, big);
  EXPECT_GT(chunks, 1);
}

TEST_F(AwsClientTest, TraceHeaderGoesOutUnsigned) {
  Serve({HttpStep::Answer(200)});
  auto client = Client();
  AwsRequest get = GetObject();
  get.trace_header = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
  ASSERT_TRUE(client->Send(get).ok());
  auto sent = server_->requests().at(0);
  EXPECT_EQ(sent.Header("x-amzn-trace-id"), get.trace_header);
  EXPECT_EQ(sent.Header("authorization").find("trace"), std::string::npos);
  auto records = observer_->ended();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].trace_header, get.trace_header);
}

TEST_F(AwsClientTest, TheObserverMaySupplyTheTraceHeader) {
  Serve({HttpStep::Answer(404, S3Error("NoSuchKey", "gone", "RID9"))});
  observer_->inject_ =
      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
      "Sampled=1";
  auto client = Client();
  EXPECT_FALSE(client->Send(GetObject()).ok());
  EXPECT_EQ(server_->requests().at(0).Header("x-amzn-trace-id"),
            observer_->inject_);
  auto begun = observer_->begun();
  auto ended = observer_->ended();
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(begun[0].operation, "GetObject");
  EXPECT_EQ(begun[0].trace_header, "");
  EXPECT_EQ(ended[0].trace_header, observer_->inject_);
  EXPECT_EQ(ended[0].code, StatusCode::kNotFound);
  EXPECT_EQ(ended[0].error_code, "NoSuchKey");
  EXPECT_EQ(ended[0].request_id, "RID9");
  EXPECT_EQ(ended[0].http_status, 404);
}

TEST_F(AwsClientTest, ReusesOneConnectionForSequentialCalls) {
  Serve({HttpStep::Answer(200), HttpStep::Answer(200), HttpStep::Answer(200)});
  auto client = Client();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client->Send(GetObject()).ok());
  EXPECT_EQ(server_->connections(), 1);
  auto records = observer_->ended();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].new_connections, 1);
  EXPECT_EQ(records[1].new_connections, 0);
  EXPECT_EQ(records[2].new_connections, 0);
}

TEST_F(AwsClientTest, ManyThreadsShareOneClient) {
  Serve({});  // 200 for everything
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["s3"] = server_->endpoint();
  options.max_idle_connections = 4;
  auto c = AwsClient::Create(options,
                             std::make_shared<AwsStaticCredentials>(Creds()));
  ASSERT_TRUE(c.ok());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) ok += (*c)->Send(GetObject()).ok() ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_EQ(server_->requests().size(), 160u);
  EXPECT_LE(server_->connections(), 8 + 160 / 2);  // reuse happened
}

TEST_F(AwsClientTest, HeadErrorsWithoutBodyUseTheHttpStatus) {
  Serve({HttpStep::Answer(404, "", {{"x-amz-request-id", "HEADREQ"}})});
  auto client = Client();
  AwsRequest head = GetObject();
  head.method = "HEAD";
  head.operation = "HeadObject";
  auto out = client->Send(head);
  EXPECT_EQ(out.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(out.status().message(),
            "S3 HeadObject s3://bucket/dir/my key.csv: HTTP 404 (request id "
            "HEADREQ)");
}

TEST_F(AwsClientTest, VirtualHostedAddressingAndDefaultEndpoints) {
  AwsClientOptions options;
  options.region = "eu-west-1";
  auto c = AwsClient::Create(options,
                             std::make_shared<AwsStaticCredentials>(Creds()));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->EndpointUrl("sqs"), "https://sqs.eu-west-1.amazonaws.com");
  EXPECT_EQ((*c)->EndpointUrl("s3"), "https://s3.eu-west-1.amazonaws.com");
  AwsRequest get = GetObject("/k");
  get.method = "GET";
  auto url = (*c)->Presign(get, 600);
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_TRUE(url->starts_with("https://bucket.s3.eu-west-1.amazonaws.com/k?"))
      << *url;
  EXPECT_NE(url->find("X-Amz-Expires=600"), std::string::npos);
  EXPECT_NE(url->find("X-Amz-Signature="), std::string::npos);
  EXPECT_NE(url->find("X-Amz-Security-Token="), std::string::npos);
  get.bucket = "with.dots";
  url = (*c)->Presign(get, 600);
  ASSERT_TRUE(url.ok());
  EXPECT_TRUE(
      url->starts_with("https://s3.eu-west-1.amazonaws.com/with.dots/k?"))
      << *url;
}

TEST_F(AwsClientTest, CreateRejectsBadOptions) {
  AwsClientOptions options;
  auto creds = std::make_shared<AwsStaticCredentials>(Creds());
  EXPECT_EQ(AwsClient::Create(options, creds).status().code(),
            StatusCode::kInvalidArgument);
  options.region = "us-east-1";
  options.endpoints["s3"] = "ftp://host";
  EXPECT_EQ(AwsClient::Create(options, creds).status().code(),
            StatusCode::kInvalidArgument);
  options.endpoints["s3"] = "http://host:9000/";
  EXPECT_TRUE(AwsClient::Create(options, creds).ok());
  EXPECT_EQ(AwsClient::Create(options, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(AwsErrorTest, CodesMapToStatusCodes) {
  EXPECT_EQ(AwsErrorStatusCode("NoSuchKey", 404), StatusCode::kNotFound);
  EXPECT_EQ(AwsErrorStatusCode("NoSuchBucket", 404), StatusCode::kNotFound);
  EXPECT_EQ(AwsErrorStatusCode("ResourceNotFoundException", 400),
            StatusCode::kNotFound);
  EXPECT_EQ(AwsErrorStatusCode("QueueDoesNotExist", 400),
            StatusCode::kNotFound);
  EXPECT_EQ(AwsErrorStatusCode("AccessDenied", 403),
            StatusCode::kPermissionDenied);
  EXPECT_EQ(AwsErrorStatusCode("ExpiredToken", 400),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(AwsErrorStatusCode("InvalidClientTokenId", 403),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(AwsErrorStatusCode("UnrecognizedClientException", 400),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(AwsErrorStatusCode("SignatureDoesNotMatch", 403),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(AwsErrorStatusCode("ConditionalCheckFailedException", 400),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(AwsErrorStatusCode("PreconditionFailed", 412),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(AwsErrorStatusCode("SlowDown", 503), StatusCode::kUnavailable);
  EXPECT_EQ(AwsErrorStatusCode("ThrottlingException", 400),
            StatusCode::kUnavailable);
  EXPECT_EQ(AwsErrorStatusCode("Throttling", 400), StatusCode::kUnavailable);
  EXPECT_EQ(AwsErrorStatusCode("RequestLimitExceeded", 503),
            StatusCode::kUnavailable);
  EXPECT_EQ(AwsErrorStatusCode("BucketAlreadyOwnedByYou", 409),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(AwsErrorStatusCode("ValidationException", 400),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(AwsErrorStatusCode("", 404), StatusCode::kNotFound);
  EXPECT_EQ(AwsErrorStatusCode("", 502), StatusCode::kUnavailable);
  EXPECT_EQ(AwsErrorStatusCode("", 301), StatusCode::kInternal);
  EXPECT_TRUE(AwsErrorIsRetryable("SlowDown", 503));
  EXPECT_TRUE(AwsErrorIsRetryable("", 504));
  EXPECT_TRUE(
      AwsErrorIsRetryable("ProvisionedThroughputExceededException", 400));
  EXPECT_FALSE(AwsErrorIsRetryable("AccessDenied", 403));
  EXPECT_FALSE(AwsErrorIsRetryable("NoSuchKey", 404));
  EXPECT_FALSE(AwsErrorIsRetryable("ValidationException", 400));
}

TEST(AwsErrorTest, ParsesS3QueryAndJsonBodies) {
  AwsError s3 = ParseAwsErrorBody(
      404, {{"x-amz-request-id", "HDR"}},
      "<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message>"
      "<RequestId>BODY</RequestId></Error>");
  EXPECT_EQ(s3.code, "NoSuchKey");
  EXPECT_EQ(s3.message, "a & b");
  EXPECT_EQ(s3.request_id, "HDR");  // the header wins
  AwsError sns = ParseAwsErrorBody(
      404, {},
      "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"
      "<Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does "
      "not exist</Message></Error><RequestId>Q1</RequestId></ErrorResponse>");
  EXPECT_EQ(sns.code, "NotFound");
  EXPECT_EQ(sns.request_id, "Q1");
  AwsError json = ParseAwsErrorBody(
      400, {{"x-amzn-requestid", "J1"}},
      R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"m","Message":"M"})");
  EXPECT_EQ(json.code, "QueueDoesNotExist");
  EXPECT_EQ(json.message, "m");
  EXPECT_EQ(json.request_id, "J1");
  AwsError typed = ParseAwsErrorBody(
      400, {{"x-amzn-ErrorType", "ValidationException:http://internal/"}}, "");
  EXPECT_EQ(typed.code, "ValidationException");
  AwsError garbage = ParseAwsErrorBody(500, {}, "{not json");
  EXPECT_EQ(garbage.code, "");
}

TEST(AwsXmlTest, FindsDecodesAndIterates) {
  std::string xml =
      "<R><Contents><Key>a&lt;1&gt;</Key><Size>3</Size></Contents>"
      "<Contents ><Key>b&#233;&#x41;</Key></Contents><Empty/>"
      "<KeyCount>2</KeyCount></R>";
  EXPECT_EQ(AwsXmlText(xml, "Key"), "a<1>");
  EXPECT_EQ(AwsXmlText(xml, "KeyCount"), "2");
  EXPECT_EQ(AwsXmlText(xml, "Empty"), "");
  EXPECT_EQ(AwsXmlText(xml, "Missing"), "");
  auto items = AwsXmlElements(xml, "Contents");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(AwsXmlText(items[1], "Key"),
            "b\xc3\xa9"
            "A");
  EXPECT_EQ(AwsXmlDecode("&amp;amp; &bogus; &#xZZ;"), "&amp; &bogus; &#xZZ;");
}

}  // namespace
}  // namespace cbpipe
