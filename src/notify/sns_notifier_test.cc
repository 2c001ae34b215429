// SnsNotifier against moto: SQS queues subscribed to the events topic (with
// a filter policy on a message attribute) and to the alert topic receive
// what they should, the webhook's JSON as the message; a missing topic is
// given up, throttling is retried by the client.
#include "notify/sns_notifier.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "aws/xml.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "servers/http_fault_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HttpFaultServer;
using testing::HttpStep;
using testing::MotoServer;
using json = nlohmann::json;

const auto* const kMotoEnvironment = ::testing::AddGlobalTestEnvironment(
    new testing::MotoEnvironment);


std::shared_ptr<AwsClient> MakeClient(const std::string& sns_endpoint) {
  static FakeEnv retry_env;  // retry waits pass at once
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["sns"] = sns_endpoint;
  options.endpoints["sqs"] = testing::MotoEnvironment::server()->endpoint();
  options.env = &retry_env;
  options.request_timeout_seconds = 30;
  auto client = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client))
                     : nullptr;
}

Event MakeEvent(std::string_view type, std::string destination) {
  Event e;
  e.type = std::string(type);
  e.run_id = "run-1";
  e.batch_id = "b1";
  e.destination = std::move(destination);
  e.time_ms = 1'714'564'800'000;
  e.counts = {{"records", 12}};
  e.totals = {{"EUR", 1234}};
  e.message = "card 4111111111111111 done";  // masked by EventJson
  return e;
}

class SnsNotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(testing::MotoEnvironment::server(), nullptr) << "moto did not start: " << testing::MotoEnvironment::error();
    ASSERT_TRUE(testing::MotoEnvironment::server()->Reset().ok());
    aws_ = MakeClient(testing::MotoEnvironment::server()->endpoint());
    ASSERT_NE(aws_, nullptr);
  }

  std::string CreateTopic(const std::string& name) {
    auto xml = aws_->CallQuery("sns", "CreateTopic", "2010-03-31",
                               {{"Name", name}});
    EXPECT_TRUE(xml.ok()) << xml.status().ToString();
    return xml.ok() ? AwsXmlText(*xml, "TopicArn") : "";
  }
  // A queue subscribed to `topic`, with `filter_policy` when not empty;
  // returns its URL.
  std::string SubscribedQueue(const std::string& name,
                              const std::string& topic,
                              const std::string& filter_policy = "") {
    auto created = aws_->CallJson("sqs", "AmazonSQS.CreateQueue",
                                  json({{"QueueName", name}}).dump());
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    const std::string url = json::parse(*created)["QueueUrl"];
    auto attrs = aws_->CallJson(
        "sqs", "AmazonSQS.GetQueueAttributes",
        json({{"QueueUrl", url}, {"AttributeNames", {"QueueArn"}}}).dump());
    EXPECT_TRUE(attrs.ok()) << attrs.status().ToString();
    const std::string arn = json::parse(*attrs)["Attributes"]["QueueArn"];
    AwsHeaderList params = {
        {"TopicArn", topic}, {"Protocol", "sqs"}, {"Endpoint", arn}};
    if (!filter_policy.empty()) {
      params.emplace_back("Attributes.entry.1.key", "FilterPolicy");
      params.emplace_back("Attributes.entry.1.value", filter_policy);
    }
    auto sub = aws_->CallQuery("sns", "Subscribe", "2010-03-31", params);
    EXPECT_TRUE(sub.ok()) << sub.status().ToString();
    return url;
  }
  // Every SNS envelope waiting in the queue.
  std::vector<json> Drain(const std::string& url) {
    std::vector<json> out;
    for (int round = 0; round < 3; ++round) {
      auto got = aws_->CallJson(
          "sqs", "AmazonSQS.ReceiveMessage",
          json({{"QueueUrl", url}, {"MaxNumberOfMessages", 10},
                {"WaitTimeSeconds", 0}})
              .dump());
      EXPECT_TRUE(got.ok()) << got.status().ToString();
      if (!got.ok()) break;
      json answer = json::parse(*got);
      if (!answer.contains("Messages") || answer["Messages"].empty()) break;
      for (const json& m : answer["Messages"]) {
        out.push_back(json::parse(m["Body"].get<std::string>()));
        aws_->CallJson("sqs", "AmazonSQS.DeleteMessage",
                       json({{"QueueUrl", url},
                             {"ReceiptHandle", m["ReceiptHandle"]}})
                           .dump())
            .status()
            .IgnoreError();
      }
    }
    return out;
  }
  static std::vector<std::string> Types(const std::vector<json>& envelopes) {
    std::vector<std::string> types;
    for (const json& e : envelopes) {
      types.push_back(json::parse(e["Message"].get<std::string>())["type"]);
    }
    std::sort(types.begin(), types.end());
    return types;
  }

  std::shared_ptr<AwsClient> aws_;
};

TEST(SnsNotifierUnitTest, TopicArnsAreChecked) {
  EXPECT_TRUE(
      ValidateSnsTopicArn("arn:aws:sns:eu-west-1:123456789012:events").ok());
  for (const char* bad :
       {"", "events", "arn:aws:sqs:eu-west-1:123456789012:q",
        "arn:aws:sns:eu-west-1::events", "arn:aws:sns:eu-west-1:1:a:b",
        "https://sns.eu-west-1.amazonaws.com/events"}) {
    EXPECT_EQ(ValidateSnsTopicArn(bad).code(), StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_TRUE(IsAlertEvent(kEventBatchFailed));
  EXPECT_TRUE(IsAlertEvent(kEventDeliveryFailed));
  EXPECT_TRUE(IsAlertEvent(kEventDeadletterAdded));
  EXPECT_FALSE(IsAlertEvent(kEventBatchDelivered));
  EXPECT_FALSE(IsAlertEvent(kEventInputRejected));
}

TEST(SnsNotifierUnitTest, PublishParamsCarryTheWebhookJsonAndAttributes) {
  const Event e = MakeEvent(kEventBatchDelivered, "visa_sftp");
  AwsHeaderList p =
      SnsPublishParams(e, "arn:aws:sns:us-east-1:1:t", {{"visa_sftp", "visa"}});
  std::map<std::string, std::string> m(p.begin(), p.end());
  EXPECT_EQ(m["Message"], EventJson(e));
  EXPECT_EQ(m["MessageAttributes.entry.1.Name"], "event_type");
  EXPECT_EQ(m["MessageAttributes.entry.1.Value.StringValue"],
            "batch.delivered");
  EXPECT_EQ(m["MessageAttributes.entry.2.Name"], "destination");
  EXPECT_EQ(m["MessageAttributes.entry.3.Name"], "network");
  EXPECT_EQ(m["MessageAttributes.entry.3.Value.StringValue"], "visa");
  // No destination: no empty attribute (SNS would refuse the Publish).
  AwsHeaderList bare =
      SnsPublishParams(MakeEvent(kEventInputRejected, ""), "arn", {});
  for (const auto& [name, value] : bare) {
    EXPECT_THAT(name, ::testing::Not(HasSubstr("entry.2"))) << name;
  }
}

TEST_F(SnsNotifierTest, SubscribedQueuesGetTheEventsTheirFilterAsksFor) {
  const std::string events = CreateTopic("cbpipe-events");
  const std::string alerts = CreateTopic("cbpipe-alerts");
  const std::string all_q = SubscribedQueue("all", events);
  const std::string visa_q = SubscribedQueue(
      "visa-delivered", events,
      R"({"event_type":["batch.delivered"],"network":["visa"]})");
  const std::string alert_q = SubscribedQueue("alerts", alerts);

  SnsOptions o;
  o.topic_arn = events;
  o.alert_topic_arn = alerts;
  o.networks = {{"visa_sftp", "visa"}, {"mc_ftps", "mastercard"}};
  std::vector<std::string> log;
  o.log = [&log](std::string_view line) { log.emplace_back(line); };
  auto n = SnsNotifier::Create(o, aws_);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  const Event delivered = MakeEvent(kEventBatchDelivered, "visa_sftp");
  (*n)->Notify(delivered);
  (*n)->Notify(MakeEvent(kEventBatchDelivered, "mc_ftps"));
  (*n)->Notify(MakeEvent(kEventDeliveryFailed, "visa_sftp"));
  (*n)->Notify(MakeEvent(kEventDeadletterAdded, ""));
  ASSERT_TRUE((*n)->Flush(std::chrono::seconds(30)).ok());
  EXPECT_EQ((*n)->stats().delivered, 6u);  // 4 events + 2 alerts
  EXPECT_EQ((*n)->stats().failed, 0u);
  EXPECT_TRUE(log.empty());

  EXPECT_THAT(Types(Drain(all_q)),
              ElementsAre("batch.delivered", "batch.delivered",
                          "deadletter.added", "delivery.failed"));
  std::vector<json> visa = Drain(visa_q);
  ASSERT_EQ(visa.size(), 1u);
  EXPECT_EQ(visa[0]["Message"], EventJson(delivered));  // the webhook body
  EXPECT_THAT(visa[0]["Message"].get<std::string>(),
              ::testing::Not(HasSubstr("4111111111111111")));
  EXPECT_EQ(visa[0]["MessageAttributes"]["network"]["Value"], "visa");
  EXPECT_EQ(visa[0]["MessageAttributes"]["event_type"]["Value"],
            "batch.delivered");
  EXPECT_EQ(visa[0]["MessageAttributes"]["destination"]["Value"],
            "visa_sftp");
  EXPECT_THAT(Types(Drain(alert_q)),
              ElementsAre("deadletter.added", "delivery.failed"));
}

TEST_F(SnsNotifierTest, AMissingTopicIsGivenUpAndLogged) {
  SnsOptions o;
  o.topic_arn = "arn:aws:sns:us-east-1:123456789012:never-created";
  std::vector<std::string> log;
  o.log = [&log](std::string_view line) { log.emplace_back(line); };
  auto n = SnsNotifier::Create(o, aws_);
  ASSERT_TRUE(n.ok());
  (*n)->Notify(MakeEvent(kEventBatchFailed, "visa_sftp"));
  ASSERT_TRUE((*n)->Flush(std::chrono::seconds(30)).ok());
  EXPECT_EQ((*n)->stats().failed, 1u);
  EXPECT_EQ((*n)->stats().attempts, 1u);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_THAT(log[0], HasSubstr("never-created"));
}

TEST_F(SnsNotifierTest, ThrottlingAndServerErrorsAreRetriedByTheClient) {
  const std::string events = CreateTopic("cbpipe-events");
  const std::string q = SubscribedQueue("all", events);
  HttpFaultServer flaky(
      {HttpStep::Answer(400,
                        "<ErrorResponse><Error><Type>Sender</Type><Code>"
                        "Throttling</Code><Message>Rate exceeded</Message>"
                        "</Error></ErrorResponse>"),
       HttpStep::Answer(503, ""), HttpStep::Forward()},
      testing::MotoEnvironment::server()->port());
  ASSERT_TRUE(flaky.Start().ok());
  SnsOptions o;
  o.topic_arn = events;
  auto n = SnsNotifier::Create(o, MakeClient(flaky.endpoint()));
  ASSERT_TRUE(n.ok());
  (*n)->Notify(MakeEvent(kEventBatchDelivered, "visa_sftp"));
  ASSERT_TRUE((*n)->Flush(std::chrono::seconds(30)).ok());
  EXPECT_EQ((*n)->stats().delivered, 1u);
  EXPECT_EQ(flaky.requests().size(), 3u);
  EXPECT_EQ(Drain(q).size(), 1u);
}

TEST_F(SnsNotifierTest, CreateRefusesBadTopics) {
  SnsOptions o;
  EXPECT_EQ(SnsNotifier::Create(o, aws_).status().code(),
            StatusCode::kInvalidArgument);
  o.topic_arn = "arn:aws:sns:us-east-1:123456789012:events";
  o.alert_topic_arn = "alerts";
  EXPECT_EQ(SnsNotifier::Create(o, aws_).status().code(),
            StatusCode::kInvalidArgument);
  o.alert_topic_arn = "";
  EXPECT_EQ(SnsNotifier::Create(o, nullptr).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cbpipe
