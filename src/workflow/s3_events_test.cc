#include "workflow/s3_events.h"

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "queue/sqs_queue.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

using testing::MotoServer;

TEST(S3EventsTest, ReadsAnS3NotificationAndDecodesItsKeys) {
  const std::string body = R"({"Records":[
    {"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
     "s3":{"bucket":{"name":"raw"},
           "object":{"key":"in/visa+file+%C3%A9t%C3%A9%2B1.csv","size":1024,
                     "eTag":"0123abc"}}},
    {"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete",
     "s3":{"bucket":{"name":"raw"},"object":{"key":"in/old.csv"}}},
    {"eventSource":"aws:s3","eventName":"ObjectCreated:CompleteMultipartUpload",
     "s3":{"bucket":{"name":"raw"},"object":{"key":"in/big.csv"}}}]})";
  auto batch = ParseS3Events(body);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  EXPECT_FALSE(batch->test_event);
  ASSERT_EQ(batch->created.size(), 2u);
  EXPECT_EQ(batch->created[0].bucket, "raw");
  EXPECT_EQ(batch->created[0].key, "in/visa file été+1.csv");
  EXPECT_EQ(batch->created[0].size, 1024);
  EXPECT_EQ(batch->created[0].etag, "0123abc");
  EXPECT_EQ(batch->created[0].event_name, "s3:ObjectCreated:Put");
  EXPECT_EQ(batch->created[1].key, "in/big.csv");
  EXPECT_EQ(batch->created[1].size, -1);
  ASSERT_EQ(batch->ignored.size(), 1u);
  EXPECT_EQ(batch->ignored[0],
            "s3:ObjectRemoved:Delete raw/in/old.csv ignored: not an "
            "ObjectCreated event");
}

TEST(S3EventsTest, ReadsTheEventBridgeAndSnsForms) {
  auto bridge = ParseS3Events(R"({"version":"0","detail-type":"Object Created",
    "source":"aws.s3","detail":{"bucket":{"name":"raw"},
    "object":{"key":"in/mc+x.csv","size":7,"etag":"e1"}}})");
  ASSERT_TRUE(bridge.ok()) << bridge.status().ToString();
  ASSERT_EQ(bridge->created.size(), 1u);
  EXPECT_EQ(bridge->created[0].key, "in/mc x.csv");
  EXPECT_EQ(bridge->created[0].etag, "e1");
  EXPECT_EQ(bridge->created[0].event_name, "Object Created");

  auto deleted = ParseS3Events(R"({"detail-type":"Object Deleted",
    "source":"aws.s3","detail":{"bucket":{"name":"raw"},
    "object":{"key":"in/a.csv"}}})");
  ASSERT_TRUE(deleted.ok());
  EXPECT_TRUE(deleted->created.empty());
  EXPECT_EQ(deleted->ignored.size(), 1u);

  const std::string inner = R"({"Records":[{"eventSource":"aws:s3",
    "eventName":"ObjectCreated:Copy","s3":{"bucket":{"name":"raw"},
    "object":{"key":"in/b.csv"}}}]})";
  nlohmann::json sns = {{"Type", "Notification"}, {"Message", inner}};
  auto wrapped = ParseS3Events(sns.dump());
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  ASSERT_EQ(wrapped->created.size(), 1u);
  EXPECT_EQ(wrapped->created[0].key, "in/b.csv");
}

TEST(S3EventsTest, TestEventIsNothingAndGarbageIsAnError) {
  auto test = ParseS3Events(R"({"Service":"Amazon S3","Event":"s3:TestEvent",
    "Time":"2026-12-05T20:00:00.000Z","Bucket":"raw"})");
  ASSERT_TRUE(test.ok());
  EXPECT_TRUE(test->test_event);
  EXPECT_TRUE(test->created.empty());
  EXPECT_TRUE(test->ignored.empty());

  for (const char* bad :
       {"not json", "[]", R"({"hello":1})", R"({"Records":{}})",
        R"({"Records":[{"eventSource":"aws:sqs"}]})",
        R"({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"raw"},"object":{"key":"a%zz"}}}]})",
        R"({"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"raw"},"object":{}}}]})"}) {
    EXPECT_EQ(ParseS3Events(bad).status().code(), StatusCode::kInvalidArgument)
        << bad;
  }
}

// moto delivers S3's notification to the SQS queue; the queue adapter
// receives it and the key comes back as it was put.
TEST(S3EventsMotoTest, PutObjectNotifiesTheQueueWithTheKey) {
  MotoServer::UseTestCredentials();
  auto moto = MotoServer::Start();
  ASSERT_TRUE(moto.ok()) << moto.status().ToString();
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["s3"] = (*moto)->endpoint();
  options.endpoints["sqs"] = (*moto)->endpoint();
  auto made = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<AwsClient> aws(std::move(*made));

  SqsQueueOptions create;
  create.create_if_missing = true;
  auto queue = SqsQueue::Open(aws, "raw-events", create);
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  auto attrs = aws->CallJson("sqs", "AmazonSQS.GetQueueAttributes",
                             nlohmann::json{{"QueueUrl", (*queue)->url()},
                                            {"AttributeNames", {"QueueArn"}}}
                                 .dump());
  ASSERT_TRUE(attrs.ok()) << attrs.status().ToString();
  const std::string arn =
      nlohmann::json::parse(*attrs)["Attributes"]["QueueArn"];

  AwsRequest bucket;
  bucket.service = "s3";
  bucket.operation = "CreateBucket";
  bucket.method = "PUT";
  bucket.bucket = "raw";
  ASSERT_TRUE(aws->Send(bucket).ok());
  AwsRequest notify = bucket;
  notify.operation = "PutBucketNotificationConfiguration";
  notify.query = {{"notification", ""}};
  notify.body =
      "<NotificationConfiguration><QueueConfiguration><Id>raw</Id><Queue>" +
      arn +
      "</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration>"
      "</NotificationConfiguration>";
  auto configured = aws->Send(notify);
  ASSERT_TRUE(configured.ok()) << configured.status().ToString();
  const std::string key = "in/visa file été+1.csv";
  AwsRequest put = bucket;
  put.operation = "PutObject";
  put.path = "/" + key;
  put.body = "header\n";
  ASSERT_TRUE(aws->Send(put).ok());

  std::vector<S3ObjectRef> created;
  for (int round = 0; round < 5 && created.empty(); ++round) {
    auto got = (*queue)->Receive(kMaxReceiveMessages, 30'000, 1000);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    for (const Message& m : *got) {
      auto batch = ParseS3Events(m.body);
      ASSERT_TRUE(batch.ok()) << batch.status().ToString() << "\n" << m.body;
      for (S3ObjectRef& o : batch->created) created.push_back(o);
      ASSERT_TRUE((*queue)->Delete(m.receipt).ok());
    }
  }
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].bucket, "raw");
  EXPECT_EQ(created[0].key, key);
  EXPECT_EQ(created[0].size, 7);
}

}  // namespace
}  // namespace cbpipe
