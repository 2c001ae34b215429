// AWS resources the serve tests set up on moto, as a deployment would:
// the [aws] options of the binary's moto, a bucket, a queue's ARN, the
// bucket's notification of created objects to a queue, an object put.
//
//   StatusOr<AwsOptions> options = testing::MotoAwsOptions();
//   auto aws = AwsClientFor(*options);                  // workflow/registry.h
//   ASSERT_TRUE(testing::CreateBucket(**aws, "raw").ok());
//   auto arn = testing::SqsQueueArn(*aws, queue->url());
//   ASSERT_TRUE(testing::NotifyQueueOfCreatedObjects(*aws, "raw", *arn).ok());
//   ASSERT_TRUE(testing::PutObject(*aws, "raw", "in/a.csv", "...").ok());
//   ASSERT_TRUE(testing::CreateSecret(*aws, "cbpipe/ftps", R"({...})").ok());
//   auto runs = testing::StepFunctionsExecutions(*aws, state_machine_arn);
//
// Header-only: the test links cbpipe_aws (through what it tests).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "aws/client.h"
#include "aws/dynamodb_test_util.h"
#include "aws/options.h"
#include "common/status.h"

namespace cbpipe::testing {

// [aws] on SharedMoto (aws/dynamodb_test_util.h): region us-east-1, every
// service at moto, DynamoDB behind the proxy that makes conditional writes
// atomic (workers race for claims; moto alone does not promise it).
// kUnavailable when moto cannot start.
inline StatusOr<AwsOptions> MotoAwsOptions() {
  std::string error;
  MotoServer* moto = SharedMoto(&error);
  const std::string dynamodb = moto ? AtomicMotoEndpoint(&error) : "";
  if (dynamodb.empty()) return UnavailableError("moto: " + error);
  AwsOptions options;
  options.region = "us-east-1";
  for (const char* service : {"s3", "sqs", "sns", "secretsmanager"})
    options.endpoints[service] = moto->endpoint();
  options.endpoints["dynamodb"] = dynamodb;
  return options;
}

inline Status CreateBucket(AwsClient& aws, const std::string& bucket) {
  AwsRequest request;
  request.service = "s3";
  request.operation = "CreateBucket";
  request.method = "PUT";
  request.bucket = bucket;
  return aws.Send(request).status();
}

inline Status PutObject(AwsClient& aws, const std::string& bucket,
                        const std::string& key, std::string body) {
  AwsRequest request;
  request.service = "s3";
  request.operation = "PutObject";
  request.method = "PUT";
  request.bucket = bucket;
  request.path = "/" + key;
  request.body = std::move(body);
  return aws.Send(request).status();
}

inline StatusOr<std::string> SqsQueueArn(AwsClient& aws,
                                         const std::string& queue_url) {
  CBPIPE_ASSIGN_OR_RETURN(
      std::string answer,
      aws.CallJson("sqs", "AmazonSQS.GetQueueAttributes",
                   nlohmann::json{{"QueueUrl", queue_url},
                                  {"AttributeNames", {"QueueArn"}}}
                       .dump()));
  return nlohmann::json::parse(answer)["Attributes"]["QueueArn"]
      .get<std::string>();
}

// s3:ObjectCreated:* of `bucket` to the queue `queue_arn` (S3 sends an
// s3:TestEvent there first).
inline Status NotifyQueueOfCreatedObjects(AwsClient& aws,
                                          const std::string& bucket,
                                          const std::string& queue_arn) {
  AwsRequest request;
  request.service = "s3";
  request.operation = "PutBucketNotificationConfiguration";
  request.method = "PUT";
  request.bucket = bucket;
  request.query = {{"notification", ""}};
  request.body =
      "<NotificationConfiguration><QueueConfiguration><Id>" + bucket +
      "</Id><Queue>" + queue_arn +
      "</Queue><Event>s3:ObjectCreated:*</Event></QueueConfiguration>"
      "</NotificationConfiguration>";
  return aws.Send(request).status();
}

inline Status CreateSecret(AwsClient& aws, const std::string& name,
                           const std::string& secret_string) {
  return aws
      .CallJson("secretsmanager", "secretsmanager.CreateSecret",
                nlohmann::json{{"Name", name}, {"SecretString", secret_string}}
                    .dump())
      .status();
}

// The executions of `state_machine_arn` (ListExecutions' entries), each
// with "input": its input parsed (DescribeExecution).
inline StatusOr<nlohmann::json> StepFunctionsExecutions(
    AwsClient& aws, const std::string& state_machine_arn) {
  CBPIPE_ASSIGN_OR_RETURN(
      std::string listed,
      aws.CallJson("states", "AWSStepFunctions.ListExecutions",
                   nlohmann::json{{"stateMachineArn", state_machine_arn}}
                       .dump()));
  nlohmann::json executions = nlohmann::json::parse(listed)["executions"];
  for (nlohmann::json& e : executions) {
    CBPIPE_ASSIGN_OR_RETURN(
        std::string described,
        aws.CallJson("states", "AWSStepFunctions.DescribeExecution",
                     nlohmann::json{{"executionArn", e["executionArn"]}}
                         .dump()));
    e["input"] = nlohmann::json::parse(
        nlohmann::json::parse(described)["input"].get<std::string>());
  }
  return executions;
}

}  // namespace cbpipe::testing
