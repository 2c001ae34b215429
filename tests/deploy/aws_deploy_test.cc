// The AWS deployment artifacts (issue 12), checked by independent tools:
// - deploy/aws/cbpipe.asl.json (cbpipe export-asl): asl-validator accepts
//   it, moto's CreateStateMachine takes it, and aws-local-stepfunctions
//   executes it (tools/stepfunctions/execute.mjs, Task states overridden by
//   canned handlers, the SQS/SNS integrations going to moto).
// - deploy/aws/cbpipe.yaml: cfn-lint reports no error, and moto's
//   CreateStack creates it with the settings moto models.
// Runs from the source tree (CTest's working directory). The npm tools are
// installed by scripts/bootstrap (npm ci in tools/stepfunctions).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "aws/client.h"
#include "aws/credentials.h"
#include "aws/xml.h"
#include "deploy/shell.h"
#include "servers/moto_environment.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::Command;
using testing::MotoEnvironment;
using testing::RunShell;

const auto* const kMoto =
    ::testing::AddGlobalTestEnvironment(new MotoEnvironment);

constexpr char kAsl[] = "deploy/aws/cbpipe.asl.json";
constexpr char kTemplate[] = "deploy/aws/cbpipe.yaml";
constexpr char kTools[] = "tools/stepfunctions";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void RequireNpmTools() {
  ASSERT_TRUE(fs::exists(std::string(kTools) +
                         "/node_modules/aws-local-stepfunctions"))
      << "npm tools missing: run scripts/bootstrap (npm ci in " << kTools
      << ")";
}

// ${Name} -> subs[Name] (CloudFormation's DefinitionSubstitutions).
std::string Substitute(std::string text,
                       const std::map<std::string, std::string>& subs) {
  for (const auto& [name, value] : subs) {
    const std::string key = "${" + name + "}";
    for (size_t at = text.find(key); at != std::string::npos;
         at = text.find(key, at + value.size())) {
      text.replace(at, key.size(), value);
    }
  }
  return text;
}

class AwsDeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    moto_ = MotoEnvironment::server();
    ASSERT_NE(moto_, nullptr) << MotoEnvironment::error();
    ASSERT_TRUE(moto_->Reset().ok());
    AwsClientOptions options;
    options.region = "us-east-1";
    for (const char* s : {"s3", "sqs", "sns", "states", "cloudformation",
                          "dynamodb", "lambda", "secretsmanager", "logs"}) {
      options.endpoints[s] = moto_->endpoint();
    }
    AwsCredentials keys;
    keys.access_key_id = "testing";
    keys.secret_access_key = "testing";
    auto client = AwsClient::Create(
        options, std::make_shared<AwsStaticCredentials>(keys));
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    aws_ = std::move(*client);
  }

  json CallJson(const std::string& service, const std::string& target,
                const json& body) {
    StatusOr<std::string> out = aws_->CallJson(service, target, body.dump());
    EXPECT_TRUE(out.ok()) << target << ": " << out.status().ToString();
    return out.ok() && !out->empty() ? json::parse(*out) : json::object();
  }

  std::string Query(const std::string& service, const std::string& action,
                    const std::string& version, const AwsHeaderList& params) {
    StatusOr<std::string> out =
        aws_->CallQuery(service, action, version, params);
    EXPECT_TRUE(out.ok()) << action << ": " << out.status().ToString();
    return out.ok() ? *out : "";
  }

  std::string CreateQueue(const std::string& name) {
    return CallJson("sqs", "AmazonSQS.CreateQueue", {{"QueueName", name}})
        .value("QueueUrl", "");
  }

  std::string QueueArn(const std::string& url) {
    json a = CallJson("sqs", "AmazonSQS.GetQueueAttributes",
                      {{"QueueUrl", url}, {"AttributeNames", {"All"}}});
    return a["Attributes"].value("QueueArn", "");
  }

  std::vector<std::string> Receive(const std::string& url) {
    json r = CallJson("sqs", "AmazonSQS.ReceiveMessage",
                      {{"QueueUrl", url},
                       {"MaxNumberOfMessages", 10},
                       {"WaitTimeSeconds", 0}});
    std::vector<std::string> bodies;
    for (const json& m : r.value("Messages", json::array()))
      bodies.push_back(m["Body"]);
    return bodies;
  }

  StatusOr<std::string> S3(const std::string& method,
                           const std::string& bucket, const std::string& key,
                           AwsHeaderList query = {}, std::string body = "") {
    AwsRequest r;
    r.service = "s3";
    r.operation = method + " " + key;
    r.method = method;
    r.bucket = bucket;
    r.path = "/" + key;
    r.query = std::move(query);
    r.body = std::move(body);
    CBPIPE_ASSIGN_OR_RETURN(AwsResponse response, aws_->Send(r));
    return response.body;
  }

  testing::MotoServer* moto_ = nullptr;
  std::unique_ptr<AwsClient> aws_;
};

// --- the state machine ---------------------------------------------------

TEST_F(AwsDeployTest, AslValidatorAcceptsTheCommittedDefinition) {
  RequireNpmTools();
  const std::string validator =
      std::string(kTools) + "/node_modules/.bin/asl-validator --json-path ";
  Command ok = RunShell(validator + kAsl);
  EXPECT_EQ(ok.rc, 0) << ok.out;
  // The same tool refuses a definition whose Catch goes nowhere.
  json broken = json::parse(ReadFile(kAsl));
  broken["States"]["scan"]["Catch"][0]["Next"] = "nowhere";
  const fs::path path = fs::path(::testing::TempDir()) /
                        ("broken_asl_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << broken.dump();
  Command bad = RunShell(validator + path.string());
  EXPECT_NE(bad.rc, 0) << bad.out;
  fs::remove(path);
}

TEST_F(AwsDeployTest, MotoCreateStateMachineTakesTheDefinition) {
  std::map<std::string, std::string> subs = {
      {"DeadLetterQueueUrl",
       "https://sqs.us-east-1.amazonaws.com/123456789012/cbpipe-runs-dlq"},
      {"AlertTopicArn", "arn:aws:sns:us-east-1:123456789012:cbpipe-alerts"}};
  for (const char* f : {"Scan", "Verify", "Deliver", "Notify", "Settle",
                        "RejectInput", "RecordFailure"}) {
    subs[std::string(f) + "FunctionArn"] =
        "arn:aws:lambda:us-east-1:123456789012:function:cbpipe-" +
        std::string(f);
  }
  const std::string definition = Substitute(ReadFile(kAsl), subs);
  ASSERT_EQ(definition.find("${"), std::string::npos)
      << "a placeholder the template does not fill";
  json created = CallJson(
      "states", "AWSStepFunctions.CreateStateMachine",
      {{"name", "cbpipe"},
       {"definition", definition},
       {"roleArn", "arn:aws:iam::123456789012:role/cbpipe-state-machine"},
       {"type", "STANDARD"}});
  ASSERT_TRUE(created.contains("stateMachineArn")) << created.dump();
  json described = CallJson("states", "AWSStepFunctions.DescribeStateMachine",
                            {{"stateMachineArn", created["stateMachineArn"]}});
  EXPECT_EQ(described.value("definition", ""), definition);
  EXPECT_EQ(described.value("type", ""), "STANDARD");
}

// One execution of the committed definition by aws-local-stepfunctions.
class LocalExecutionTest : public AwsDeployTest {
 protected:
  void SetUp() override {
    AwsDeployTest::SetUp();
    if (HasFatalFailure()) return;
    RequireNpmTools();
    dlq_ = CreateQueue("cbpipe-runs-dlq");
    alerts_inbox_ = CreateQueue("cbpipe-alerts-inbox");
    topic_ = AwsXmlText(Query("sns", "CreateTopic", "2010-03-31",
                              {{"Name", "cbpipe-alerts"}}),
                        "TopicArn");
    ASSERT_FALSE(topic_.empty());
    Query("sns", "Subscribe", "2010-03-31",
          {{"TopicArn", topic_},
           {"Protocol", "sqs"},
           {"Endpoint", QueueArn(alerts_inbox_)}});
  }

  json Execute(const std::string& scenario) {
    const json subs = {{"DeadLetterQueueUrl", dlq_},
                       {"AlertTopicArn", topic_}};
    Command c = RunShell("node " + std::string(kTools) +
                    "/execute.mjs --definition " + kAsl + " --scenario " +
                    scenario + " --moto " + moto_->endpoint() +
                    " --retry-ms 20 --substitutions '" + subs.dump() + "'");
    EXPECT_EQ(c.rc, 0) << c.out;
    const size_t line = c.out.rfind("{\"scenario\"");
    if (c.rc != 0 || line == std::string::npos) return json::object();
    return json::parse(c.out.substr(line));
  }

  int Calls(const json& report, const std::string& state) {
    return report["calls"].value(state, 0);
  }

  // The alerts published to the alert topic: SNS envelopes, by Subject.
  std::vector<json> Alerts() {
    std::vector<json> out;
    for (const std::string& body : Receive(alerts_inbox_))
      out.push_back(json::parse(body));
    return out;
  }

  std::string dlq_, alerts_inbox_, topic_;
};

TEST_F(LocalExecutionTest, CleanInputIsDeliveredToFourCardCompanies) {
  json r = Execute("clean");
  ASSERT_EQ(r.value("status", ""), "SUCCEEDED") << r.dump();
  EXPECT_EQ(Calls(r, "scan"), 1);
  EXPECT_EQ(Calls(r, "verify"), 2);
  EXPECT_EQ(Calls(r, "deliver"), 8);
  EXPECT_EQ(Calls(r, "notify"), 1);
  EXPECT_EQ(Calls(r, "settle"), 1);
  EXPECT_EQ(Calls(r, "record_failure"), 0);
  const json& batches = r["output"]["deliveries"];
  ASSERT_EQ(batches.size(), 2u) << r["output"].dump();
  for (const json& b : batches) {
    ASSERT_EQ(b["deliveries"].size(), 4u);
    for (const json& d : b["deliveries"]) {
      EXPECT_FALSE(d.contains("error")) << d.dump();
      EXPECT_EQ(d["files"][0]["status"], "delivered");
    }
  }
  EXPECT_TRUE(r["integrations"].empty());
  EXPECT_TRUE(Receive(dlq_).empty());
  EXPECT_TRUE(Alerts().empty());
}

TEST_F(LocalExecutionTest, RetryRidesOutAServerDownThenUp) {
  json r = Execute("down_then_up");
  ASSERT_EQ(r.value("status", ""), "SUCCEEDED") << r.dump();
  // amex failed twice (Cbpipe.Transient) in each of the two batches.
  EXPECT_EQ(Calls(r, "deliver"), 8 + 2 * 2);
  const json& gaps = r["retry_gaps_ms"]["deliver"];
  ASSERT_EQ(gaps.size(), 4u);
  for (const json& g : gaps) EXPECT_GE(g.get<int>(), 15);  // waited
  for (const json& b : r["output"]["deliveries"]) {
    for (const json& d : b["deliveries"]) {
      EXPECT_EQ(d["files"][0]["attempts"],
                d["destination"] == "amex" ? 3 : 1);
    }
  }
  EXPECT_TRUE(Receive(dlq_).empty());
}

TEST_F(LocalExecutionTest, ServerDownPastItsRetriesDeadLettersAndAlerts) {
  json r = Execute("down");
  ASSERT_EQ(r.value("status", ""), "FAILED") << r.dump();
  // deliver's Retry: MaxAttempts 4 after the first, for amex per batch.
  EXPECT_EQ(Calls(r, "deliver"), 2 * (3 + 5));
  EXPECT_EQ(Calls(r, "settle"), 1);
  EXPECT_EQ(Calls(r, "record_failure"), 1);
  const std::vector<std::string> dead = Receive(dlq_);
  ASSERT_EQ(dead.size(), 1u);
  const json body = json::parse(dead[0]);
  EXPECT_EQ(body["run_id"], "r1");
  EXPECT_EQ(body["input"]["input_key"], "inputs/chargebacks.csv");
  EXPECT_EQ(body["error"]["Error"], "Cbpipe.Transient");
  EXPECT_NE(body["error"]["Cause"].get<std::string>().find("amex"),
            std::string::npos);
  EXPECT_NE(body["execution"].get<std::string>().find(":execution:"),
            std::string::npos);
  const std::vector<json> alerts = Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0]["Subject"], "cbpipe run failed");
  EXPECT_EQ(json::parse(alerts[0]["Message"].get<std::string>())["run_id"],
            "r1");
}

TEST_F(LocalExecutionTest, InvalidInputIsRejectedWithAnAlert) {
  json r = Execute("invalid");
  ASSERT_EQ(r.value("status", ""), "SUCCEEDED") << r.dump();
  EXPECT_EQ(Calls(r, "reject_input"), 1);
  EXPECT_EQ(Calls(r, "verify"), 0);
  EXPECT_EQ(Calls(r, "deliver"), 0);
  EXPECT_EQ(r["output"]["quarantine"], "quarantine/r1");
  EXPECT_EQ(r["output"]["error"]["Error"], "Cbpipe.InvalidInput");
  EXPECT_TRUE(Receive(dlq_).empty());
  const std::vector<json> alerts = Alerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0]["Subject"], "cbpipe input rejected");
}

TEST_F(LocalExecutionTest, MapToleratesABatchThatFailsVerification) {
  json r = Execute("verify_fails");
  ASSERT_EQ(r.value("status", ""), "FAILED") << r.dump();
  EXPECT_EQ(Calls(r, "verify"), 2);
  EXPECT_EQ(Calls(r, "deliver"), 4);  // b1 still delivered
  EXPECT_EQ(Calls(r, "settle"), 1);
  const std::vector<std::string> dead = Receive(dlq_);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_NE(json::parse(dead[0])["error"]["Cause"].get<std::string>().find(
                "b2"),
            std::string::npos);
}

// --- the CloudFormation template ----------------------------------------

TEST(CloudFormationTest, CfnLintFindsNoError) {
  Command c = RunShell(std::string("cfn-lint ") + kTemplate);
  // cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8 notices.
  EXPECT_EQ(c.rc & 2, 0) << c.out;
  EXPECT_NE(c.rc, -1) << "cfn-lint did not run: " << c.out;
  // The one expected warning: DefinitionS3Location is a local file for
  // `aws cloudformation package`.
  std::istringstream lines(c.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("W", 0) == 0 || line.rfind("E", 0) == 0) {
      EXPECT_EQ(line.rfind("W3002 ", 0), 0u) << c.out;
    }
  }
}

class CloudFormationStackTest : public AwsDeployTest {
 protected:
  // Creates the stack in moto as `aws cloudformation package` + `deploy`
  // would, the definition inlined (moto reads DefinitionString only), and
  // waits for it; returns the outputs by key.
  std::map<std::string, std::string> CreateStack() {
    EXPECT_TRUE(S3("PUT", "cbpipe-artifacts", "").ok());
    EXPECT_TRUE(
        S3("PUT", "cbpipe-artifacts", "cbpipe-lambda.zip", {}, "zip").ok());
    std::string tpl = ReadFile(kTemplate);
    const std::string from = "DefinitionS3Location: cbpipe.asl.json";
    const size_t at = tpl.find(from);
    EXPECT_NE(at, std::string::npos);
    std::string inline_def = json::parse(ReadFile(kAsl)).dump();
    inline_def = std::regex_replace(inline_def, std::regex("'"), "''");
    tpl.replace(at, from.size(), "DefinitionString: '" + inline_def + "'");
    Query("cloudformation", "CreateStack", "2010-05-15",
          {{"StackName", "cbpipe"},
           {"TemplateBody", tpl},
           {"Capabilities.member.1", "CAPABILITY_IAM"},
           {"Parameters.member.1.ParameterKey", "CodeBucket"},
           {"Parameters.member.1.ParameterValue", "cbpipe-artifacts"},
           {"Parameters.member.2.ParameterKey", "VisaUrl"},
           {"Parameters.member.2.ParameterValue",
            "sftp://sftp.visa.example/inbox"}});
    std::string status, xml;
    for (int i = 0; i < 120; ++i) {
      xml = Query("cloudformation", "DescribeStacks", "2010-05-15",
                  {{"StackName", "cbpipe"}});
      status = AwsXmlText(xml, "StackStatus");
      if (status.find("IN_PROGRESS") == std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    EXPECT_EQ(status, "CREATE_COMPLETE") << xml;
    std::map<std::string, std::string> outputs;
    for (std::string_view o : AwsXmlElements(xml, "member")) {
      const std::string key = AwsXmlText(o, "OutputKey");
      if (!key.empty()) outputs[key] = AwsXmlText(o, "OutputValue");
    }
    return outputs;
  }
};

TEST_F(CloudFormationStackTest, MotoCreatesTheStackWithItsSettings) {
  std::map<std::string, std::string> out = CreateStack();
  ASSERT_FALSE(HasFailure());

  // Buckets: SSE-KMS with the stack's key.
  for (const char* b : {"RawBucketName", "ProcessedBucketName"}) {
    ASSERT_FALSE(out[b].empty()) << b;
    StatusOr<std::string> enc = S3("GET", out[b], "", {{"encryption", ""}});
    ASSERT_TRUE(enc.ok()) << b << ": " << enc.status().ToString();
    EXPECT_EQ(AwsXmlText(*enc, "SSEAlgorithm"), "aws:kms") << *enc;
    EXPECT_NE(AwsXmlText(*enc, "KMSMasterKeyID").find(":key/"),
              std::string::npos)
        << *enc;
  }
  EXPECT_EQ(out["RawBucketName"], "cbpipe-raw-123456789012-us-east-1");

  // The input queue: its dead-letter queue after 5 receives.
  json input = CallJson("sqs", "AmazonSQS.GetQueueAttributes",
                        {{"QueueUrl", out["InputQueueUrl"]},
                         {"AttributeNames", {"All"}}})["Attributes"];
  ASSERT_TRUE(input.contains("RedrivePolicy")) << input.dump();
  const json redrive = json::parse(input["RedrivePolicy"].get<std::string>());
  EXPECT_EQ(redrive["deadLetterTargetArn"],
            QueueArn(out["InputDeadLetterQueueUrl"]));
  EXPECT_EQ(redrive["maxReceiveCount"].dump(), "5");
  EXPECT_EQ(input["VisibilityTimeout"], "180");
  EXPECT_FALSE(QueueArn(out["RunDeadLetterQueueUrl"]).empty());

  // Topics.
  for (const char* t : {"NotificationTopicArn", "AlertTopicArn"}) {
    std::string attrs = Query("sns", "GetTopicAttributes", "2010-03-31",
                              {{"TopicArn", out[t]}});
    EXPECT_NE(attrs.find(out[t]), std::string::npos) << t;
  }

  // The state table: the run store's and ledger's keys and indexes.
  json table = CallJson("dynamodb", "DynamoDB_20120810.DescribeTable",
                        {{"TableName", out["StateTableName"]}})["Table"];
  EXPECT_EQ(table["KeySchema"][0]["AttributeName"], "pk");
  EXPECT_EQ(table["KeySchema"][1]["AttributeName"], "sk");
  std::set<std::string> indexes;
  for (const json& i : table["GlobalSecondaryIndexes"])
    indexes.insert(i["IndexName"]);
  EXPECT_EQ(indexes, (std::set<std::string>{"by_created", "by_state"}));
  EXPECT_EQ(table["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST");

  // The state machine runs the committed definition.
  json machine = CallJson("states", "AWSStepFunctions.DescribeStateMachine",
                          {{"stateMachineArn", out["StateMachineArn"]}});
  EXPECT_EQ(json::parse(machine.value("definition", "{}")),
            json::parse(ReadFile(kAsl)));

  // A step function: the custom runtime, its handler, its limits (moto
  // drops TracingConfig and ReservedConcurrentExecutions: docs/aws.md).
  StatusOr<AwsResponse> fn = aws_->Send([] {
    AwsRequest r;
    r.service = "lambda";
    r.operation = "GetFunction";
    r.path = "/2015-03-31/functions/cbpipe-deliver";
    return r;
  }());
  ASSERT_TRUE(fn.ok()) << fn.status().ToString();
  const json config = json::parse(fn->body)["Configuration"];
  EXPECT_EQ(config["Runtime"], "provided.al2023");
  EXPECT_EQ(config["Handler"], "deliver");
  EXPECT_EQ(config["Timeout"], 900);
  EXPECT_EQ(config["MemorySize"], 256);
  EXPECT_EQ(config["Environment"]["Variables"]["CBPIPE_DESTINATION_VISA_URL"],
            "sftp://sftp.visa.example/inbox");

  // Its log group, with retention.
  json groups = CallJson("logs", "Logs_20140328.DescribeLogGroups",
                         {{"logGroupNamePrefix", "/aws/lambda/cbpipe-"}});
  ASSERT_EQ(groups["logGroups"].size(), 8u) << groups.dump();
  for (const json& g : groups["logGroups"]) EXPECT_EQ(g["retentionInDays"], 90);

  // start reads the input queue.
  StatusOr<AwsResponse> esm = aws_->Send([] {
    AwsRequest r;
    r.service = "lambda";
    r.operation = "ListEventSourceMappings";
    r.path = "/2015-03-31/event-source-mappings/";
    r.query = {{"FunctionName", "cbpipe-start"}};
    return r;
  }());
  ASSERT_TRUE(esm.ok()) << esm.status().ToString();
  const json mappings = json::parse(esm->body)["EventSourceMappings"];
  ASSERT_EQ(mappings.size(), 1u);
  EXPECT_EQ(mappings[0]["EventSourceArn"], QueueArn(out["InputQueueUrl"]));
}

// Least privilege, read from the template itself (moto keeps inline
// policies only as text): no role allows a wildcard action, only X-Ray and
// log delivery (which have no resource ARNs) are granted on "*", and each
// function writes only its own log group.
TEST(CloudFormationTest, RolesAllowNoWildcardActions) {
  Command c = RunShell(
      "python3 -c 'import json, sys, yaml; "
      "print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' " +
      std::string(kTemplate));
  ASSERT_EQ(c.rc, 0) << c.out;
  const json tpl = json::parse(c.out);
  int roles = 0;
  for (const auto& [name, resource] : tpl["Resources"].items()) {
    if (resource["Type"] != "AWS::IAM::Role") continue;
    ++roles;
    ASSERT_EQ(resource["Properties"]["Policies"].size(), 1u) << name;
    const json& policy =
        resource["Properties"]["Policies"][0]["PolicyDocument"];
    for (const json& st : policy["Statement"]) {
      ASSERT_EQ(st["Effect"], "Allow") << name;
      const json actions =
          st["Action"].is_array() ? st["Action"] : json::array({st["Action"]});
      const json targets = st["Resource"].is_array()
                               ? st["Resource"]
                               : json::array({st["Resource"]});
      for (const json& a : actions) {
        const std::string action = a;
        EXPECT_EQ(action.find('*'), std::string::npos) << name << " " << action;
        for (const json& r : targets) {
          if (r == "*") {
            EXPECT_TRUE(action.rfind("xray:", 0) == 0 ||
                        action.rfind("logs:", 0) == 0)
                << name << ": " << action << " on *";
          }
        }
      }
      if (st.value("Sid", "") == "OwnLogs") {
        const std::string prefix = name.substr(0, name.size() - 4);  // Role
        EXPECT_EQ(st["Resource"],
                  json({{"Fn::GetAtt", {prefix + "LogGroup", "Arn"}}}))
            << name;
      }
    }
  }
  EXPECT_EQ(roles, 9);  // start, the seven steps, the state machine
}

}  // namespace
}  // namespace cbpipe
