// The AWS client's calls inside a traced step become X-Ray subsegments of
// it, with the trace header sent to the server (a scripted HTTP server
// stands in for AWS).
#include "telemetry/xray_aws_calls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "aws/credentials.h"
#include "common/env.h"
#include "servers/http_fault_server.h"
#include "telemetry/xray_test_daemon.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using testing::HttpFaultServer;
using testing::HttpStep;
using ::testing::Not;

std::unique_ptr<AwsClient> Client(const std::string& endpoint, Env* env) {
  AwsClientOptions options;
  options.region = "eu-west-1";
  options.endpoints["s3"] = endpoint;
  options.env = env;
  options.observer = std::make_shared<XRayAwsCalls>();
  AwsCredentials keys;
  keys.access_key_id = "AKIDEXAMPLE";
  keys.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  auto client =
      AwsClient::Create(options, std::make_shared<AwsStaticCredentials>(keys));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::move(*client) : nullptr;
}

AwsRequest Get(const std::string& key) {
  AwsRequest r;
  r.service = "s3";
  r.operation = "GetObject";
  r.method = "GET";
  r.bucket = "chargebacks";
  r.path = "/" + key;
  r.resource = "s3://chargebacks/" + key;
  r.query = {{"versionId", "v1"}};
  return r;
}

TEST(XRayAwsCallsTest, EachCallIsASubsegmentOfTheCurrentStep) {
  HttpFaultServer server(
      {HttpStep::Answer(200, "data", {{"x-amz-request-id", "REQ-OK"}}),
       HttpStep::Answer(404,
                        "<Error><Code>NoSuchKey</Code><Message>no such key "
                        "4111111111111111</Message><RequestId>REQ-404"
                        "</RequestId></Error>",
                        {{"x-amz-request-id", "REQ-404"}}),
       HttpStep::Answer(503, "<Error><Code>SlowDown</Code></Error>"),
       HttpStep::Answer(503, "<Error><Code>SlowDown</Code></Error>"),
       HttpStep::Answer(503, "<Error><Code>SlowDown</Code></Error>"),
       HttpStep::Answer(503, "<Error><Code>SlowDown</Code></Error>")});
  ASSERT_TRUE(server.Start().ok());
  FakeEnv env(Env::Default()->NowMs());  // retry waits pass at once
  std::unique_ptr<AwsClient> client = Client(server.endpoint(), &env);
  ASSERT_TRUE(client);
  XRayTestDaemon daemon;
  XRayOptions o;
  o.enabled = true;
  o.daemon_address = daemon.address();
  auto tracer = XRayTracer::Create(o);
  ASSERT_TRUE(tracer.ok());
  std::string step_id;
  {
    XRaySpan run = (*tracer)->BeginSegment(NewTraceId(), "cbpipe", "run");
    XRaySpan step = (*tracer)->BeginSubsegmentOf("run", "scan");
    step_id = step.id();
    XRayCurrentScope scope(&step);
    EXPECT_TRUE(client->Send(Get("in/a.csv")).ok());
    EXPECT_EQ(client->Send(Get("in/missing.csv")).status().code(),
              StatusCode::kNotFound);
    EXPECT_FALSE(client->Send(Get("in/busy.csv")).ok());
  }
  // Outside a step: not traced, no header.
  HttpFaultServer plain({HttpStep::Answer(200, "x")});
  ASSERT_TRUE(plain.Start().ok());
  std::unique_ptr<AwsClient> other = Client(plain.endpoint(), &env);
  EXPECT_TRUE(other->Send(Get("in/b.csv")).ok());
  ASSERT_EQ(plain.requests().size(), 1u);
  EXPECT_EQ(plain.requests()[0].Header("x-amzn-trace-id"), "");

  std::vector<std::string> datagrams = daemon.Datagrams();
  for (const std::string& d : datagrams) {
    EXPECT_THAT(d, Not(HasSubstr("versionId")));
    EXPECT_THAT(d, Not(HasSubstr("Signature")));
    EXPECT_THAT(d, Not(HasSubstr("wJalrXUtnFEMI")));
  }
  std::vector<json> docs = XRayTestDaemon::Parse(datagrams);
  // run begin, 3 calls, step, run end.
  ASSERT_EQ(docs.size(), 6u);
  const json& ok = docs[1];
  const json& missing = docs[2];
  const json& busy = docs[3];
  for (const json* d : {&ok, &missing, &busy}) {
    EXPECT_EQ((*d)["name"], "S3");
    EXPECT_EQ((*d)["namespace"], "aws");
    EXPECT_EQ((*d)["parent_id"], step_id);
    EXPECT_EQ((*d)["aws"]["operation"], "GetObject");
    EXPECT_EQ((*d)["aws"]["region"], "eu-west-1");
    EXPECT_EQ((*d)["http"]["request"]["method"], "GET");
    EXPECT_THAT((*d)["http"]["request"]["url"].get<std::string>(),
                HasSubstr("/in/"));
  }
  EXPECT_EQ(ok["http"]["response"]["status"], 200);
  EXPECT_EQ(ok["aws"]["request_id"], "REQ-OK");
  EXPECT_FALSE(ok.contains("error") || ok.contains("fault"));
  EXPECT_EQ(missing["http"]["response"]["status"], 404);
  EXPECT_EQ(missing["error"], true);
  EXPECT_EQ(missing["cause"]["exceptions"][0]["type"], "NOT_FOUND");
  EXPECT_EQ(missing["cause"]["exceptions"][0]["message"], "NoSuchKey");
  EXPECT_EQ(busy["fault"], true);
  EXPECT_EQ(busy["http"]["response"]["status"], 503);
  EXPECT_EQ(busy["annotations"]["attempts"], "4");
  EXPECT_EQ(docs[4]["id"], step_id);

  // Every attempt sent the call's subsegment as its parent.
  std::vector<testing::HttpRecordedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 6u);
  const std::string root = "Root=" + ok["trace_id"].get<std::string>();
  EXPECT_EQ(requests[0].Header("x-amzn-trace-id"),
            root + ";Parent=" + ok["id"].get<std::string>() + ";Sampled=1");
  EXPECT_EQ(
      requests[1].Header("x-amzn-trace-id"),
      root + ";Parent=" + missing["id"].get<std::string>() + ";Sampled=1");
  for (size_t i = 2; i < 6; ++i) {
    EXPECT_EQ(requests[i].Header("x-amzn-trace-id"),
              root + ";Parent=" + busy["id"].get<std::string>() + ";Sampled=1");
  }
}

TEST(XRayAwsCallsTest, ServiceNames) {
  EXPECT_EQ(XRayAwsServiceName("s3"), "S3");
  EXPECT_EQ(XRayAwsServiceName("sqs"), "SQS");
  EXPECT_EQ(XRayAwsServiceName("dynamodb"), "DynamoDB");
  EXPECT_EQ(XRayAwsServiceName("sns"), "SNS");
  EXPECT_EQ(XRayAwsServiceName("secretsmanager"), "SecretsManager");
  EXPECT_EQ(XRayAwsServiceName("kms"), "kms");
}

}  // namespace
}  // namespace cbpipe
