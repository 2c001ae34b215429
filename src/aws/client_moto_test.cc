// AwsClient against a real moto server: S3 (REST, streamed bodies), SQS
// (JSON protocol), SNS (Query protocol), and retries through a fault
// injecting proxy in front of moto.
#include <cstdlib>
#include <memory>
#include <regex>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "aws/xml.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "servers/http_fault_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

using testing::HttpFaultServer;
using testing::HttpStep;
using testing::MotoServer;

// One moto for the whole binary (servers/moto_environment.h); each test
// starts from a reset one.
MotoServer* Moto() { return testing::MotoEnvironment::server(); }

// A deterministic pseudo-random byte at `i` (no 8 MB buffer needed).
char ByteAt(size_t i) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull;
  x ^= x >> 29;
  return static_cast<char>(x & 0xff);
}

class AwsClientMotoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(Moto(), nullptr)
        << "moto did not start: " << testing::MotoEnvironment::error();
    ASSERT_TRUE(Moto()->Reset().ok());
    client_ = MakeClient(Moto()->endpoint());
  }

  std::unique_ptr<AwsClient> MakeClient(const std::string& endpoint) {
    AwsClientOptions options;
    options.region = "us-east-1";
    for (const char* service : {"s3", "sqs", "sns"}) {
      options.endpoints[service] = endpoint;
    }
    options.env = &env_;  // retry waits pass at once
    options.request_timeout_seconds = 60;
    // The real chain, finding moto's keys in the environment.
    auto client = AwsClient::Create(
        options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(*client) : nullptr;
  }

  AwsRequest S3(std::string method, std::string operation, std::string bucket,
                std::string key = "") {
    AwsRequest r;
    r.service = "s3";
    r.method = std::move(method);
    r.operation = std::move(operation);
    r.resource = "s3://" + bucket + "/" + key;
    r.bucket = std::move(bucket);
    r.path = "/" + key;
    return r;
  }

  Status CreateBucket(AwsClient& client, const std::string& bucket) {
    return client.Send(S3("PUT", "CreateBucket", bucket)).status();
  }

  FakeEnv env_{Env::Default()->NowMs()};
  std::unique_ptr<AwsClient> client_;
};

TEST_F(AwsClientMotoTest, S3StreamedPutAndGetOfSeveralMegabytes) {
  ASSERT_TRUE(CreateBucket(*client_, "chargebacks").ok());
  constexpr size_t kSize = 9 * 1024 * 1024 + 123;
  Sha256 sent_sha;
  size_t offset = 0;
  AwsRequest put = S3("PUT", "PutObject", "chargebacks", "in/visa file+1.csv");
  put.headers = {{"Content-Type", "text/csv"}};
  AwsRequestBody body;
  body.length = kSize;
  body.read = [&](char* buf, size_t room) -> StatusOr<size_t> {
    size_t n = std::min(room, kSize - offset);
    for (size_t i = 0; i < n; ++i) buf[i] = ByteAt(offset + i);
    sent_sha.Update(buf, n);
    offset += n;
    return n;
  };
  put.body_stream = body;
  auto put_result = client_->Send(put);
  ASSERT_TRUE(put_result.ok()) << put_result.status().ToString();
  EXPECT_EQ(offset, kSize);
  EXPECT_EQ(client_->credentials_source(), "environment");

  AwsRequest get = S3("GET", "GetObject", "chargebacks", "in/visa file+1.csv");
  Sha256 got_sha;
  size_t got = 0;
  size_t largest_chunk = 0;
  get.on_data = [&](std::string_view chunk) {
    got_sha.Update(chunk.data(), chunk.size());
    got += chunk.size();
    largest_chunk = std::max(largest_chunk, chunk.size());
    return OkStatus();
  };
  auto get_result = client_->Send(get);
  ASSERT_TRUE(get_result.ok()) << get_result.status().ToString();
  EXPECT_TRUE(get_result->body.empty());
  EXPECT_EQ(got, kSize);
  EXPECT_LT(largest_chunk, kSize / 4);  // it came in pieces
  EXPECT_EQ(*got_sha.FinishHex(), *sent_sha.FinishHex());
  EXPECT_EQ(get_result->Header("content-type"), "text/csv");
}

TEST_F(AwsClientMotoTest,
       S3MissingKeyAndBucketAreNotFoundWithCodeAndRequestId) {
  ASSERT_TRUE(CreateBucket(*client_, "bkt").ok());
  AwsError error;
  auto missing =
      client_->Send(S3("GET", "GetObject", "bkt", "no/such key"), &error);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(error.code, "NoSuchKey");
  EXPECT_FALSE(error.request_id.empty());
  EXPECT_TRUE(std::regex_match(
      missing.status().message(),
      std::regex("S3 GetObject s3://bkt/no/such key: NoSuchKey: .+ \\(request "
                 "id [A-Za-z0-9]+\\)")))
      << missing.status().message();

  auto no_bucket =
      client_->Send(S3("GET", "GetObject", "nobucket", "k"), &error);
  EXPECT_EQ(no_bucket.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(error.code, "NoSuchBucket");

  auto head = client_->Send(S3("HEAD", "HeadObject", "bkt", "k"), &error);
  EXPECT_EQ(head.status().code(), StatusCode::kNotFound);
  for (const Status& s :
       {missing.status(), no_bucket.status(), head.status()}) {
    EXPECT_EQ(s.message().find("testing"), std::string::npos);  // the secret
    EXPECT_FALSE(std::regex_search(s.message(), std::regex("[0-9a-f]{64}")))
        << s.message();
  }
}

TEST_F(AwsClientMotoTest, SqsCreateQueueAndGetQueueUrlOverTheJsonProtocol) {
  auto created = client_->CallJson("sqs", "AmazonSQS.CreateQueue",
                                   R"({"QueueName":"work"})");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::string url = nlohmann::json::parse(*created).value("QueueUrl", "");
  EXPECT_TRUE(url.ends_with("/work")) << *created;

  auto got = client_->CallJson("sqs", "AmazonSQS.GetQueueUrl",
                               R"({"QueueName":"work"})");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(nlohmann::json::parse(*got).value("QueueUrl", ""), url);

  AwsError error;
  auto missing = client_->CallJson("sqs", "AmazonSQS.GetQueueUrl",
                                   R"({"QueueName":"nope"})", "sqs queue nope",
                                   "", &error);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(error.code, "QueueDoesNotExist");
  EXPECT_FALSE(error.request_id.empty());
  EXPECT_TRUE(missing.status().message().starts_with(
      "SQS GetQueueUrl sqs queue nope: QueueDoesNotExist: "))
      << missing.status().message();
}

TEST_F(AwsClientMotoTest, SnsCreateTopicOverTheQueryProtocol) {
  auto xml = client_->CallQuery("sns", "CreateTopic", "2010-03-31",
                                {{"Name", "cbpipe-alerts"}});
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  std::string arn = AwsXmlText(*xml, "TopicArn");
  EXPECT_TRUE(arn.starts_with("arn:aws:sns:us-east-1:")) << *xml;
  EXPECT_TRUE(arn.ends_with(":cbpipe-alerts")) << arn;

  auto listed = client_->CallQuery("sns", "ListTopics", "2010-03-31", {});
  ASSERT_TRUE(listed.ok());
  auto members = AwsXmlElements(*listed, "member");
  ASSERT_EQ(members.size(), 1u) << *listed;
  EXPECT_EQ(AwsXmlText(members[0], "TopicArn"), arn);

  AwsError error;
  auto missing = client_->CallQuery(
      "sns", "GetTopicAttributes", "2010-03-31",
      {{"TopicArn", "arn:aws:sns:us-east-1:123456789012:none"}}, "", "",
      &error);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound)
      << missing.status().ToString();
  EXPECT_EQ(error.code, "NotFound");
}

TEST_F(AwsClientMotoTest, RetriesInjected503SlowDownAnd500ThenReachesMoto) {
  ASSERT_TRUE(CreateBucket(*client_, "bkt").ok());
  HttpFaultServer proxy(
      {HttpStep::Answer(503,
                        "<Error><Code>SlowDown</Code><Message>Please "
                        "reduce your request rate.</Message></Error>"),
       HttpStep::Answer(500, "<Error><Code>InternalError</Code></Error>"),
       HttpStep::Close()},
      Moto()->port());
  ASSERT_TRUE(proxy.Start().ok());
  auto client = MakeClient(proxy.endpoint());
  AwsRequest put = S3("PUT", "PutObject", "bkt", "k");
  put.body = "payload";
  auto result = client->Send(put);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(proxy.requests().size(), 4u);
  // Two backoff waits; the dropped keep-alive connection is sent again by
  // libcurl at once (rewinding the body), as a stale connection should be.
  EXPECT_EQ(env_.sleeps().size(), 2u);

  // It really landed in moto.
  auto get = client_->Send(S3("GET", "GetObject", "bkt", "k"));
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->body, "payload");
}

TEST_F(AwsClientMotoTest, AnUnansweredRequestTimesOut) {
  HttpFaultServer silent({HttpStep::Hang(), HttpStep::Hang()});
  ASSERT_TRUE(silent.Start().ok());
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["sqs"] = silent.endpoint();
  options.env = &env_;
  options.request_timeout_seconds = 0.5;
  options.retry.max_attempts = 2;
  AwsCredentials creds;
  creds.access_key_id = "testing";
  creds.secret_access_key = "testing";
  auto client =
      AwsClient::Create(options, std::make_shared<AwsStaticCredentials>(creds));
  ASSERT_TRUE(client.ok());
  auto out = (*client)->CallJson("sqs", "AmazonSQS.ListQueues", "{}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDeadlineExceeded)
      << out.status().ToString();
  EXPECT_EQ(silent.requests().size(), 2u);
}

// The fixture's own contract: a second server on its own port, answering
// until destroyed, then gone (killed and reaped).
TEST(MotoServerTest, AnswersUntilDestroyed) {
  auto moto = MotoServer::Start();
  ASSERT_TRUE(moto.ok()) << moto.status().ToString();
  int port = (*moto)->port();
  ASSERT_NE(Moto(), nullptr);
  EXPECT_NE(port, Moto()->port());
  EXPECT_EQ((*moto)->endpoint(), "http://127.0.0.1:" + std::to_string(port));
  auto status = testing::LoopbackHttpStatus(port, "GET", "/moto-api/");
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(*status, 200);
  moto->reset();
  EXPECT_FALSE(testing::LoopbackHttpStatus(port, "GET", "/moto-api/").ok());
}

}  // namespace
}  // namespace cbpipe

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new cbpipe::testing::MotoEnvironment());
  return RUN_ALL_TESTS();
}
