// The deployment package (scripts/package-lambda), unpacked into an empty
// folder and run as Lambda runs it: `bootstrap` with an empty environment
// plus the variables Lambda sets, against a runtime API server in the test
// and moto (S3, Step Functions). Every handler, init errors, handler errors
// and deadline expiry. Each test runs twice: on the package made once from
// this build's binary ("native"), and on the arm64 zip cross-built by
// `scripts/package-lambda --arch arm64` ("arm64", under qemu user-mode
// emulation on an x86_64 machine), which CMake makes with
// -DCBPIPE_LAMBDA_ARM64=ON (scripts/test-arm64); skipped without it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "aws/client.h"
#include "aws/dynamodb.h"
#include "aws/make_client.h"
#include "aws/xml.h"
#include "lambda/function.h"
#include "lambda/package_test_util.h"
#include "lambda/runtime_api_test_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_resources.h"
#include "telemetry/xray_test_daemon.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using testing::LambdaApiOutcome;
using testing::LambdaRuntimeApiServer;
using testing::MotoEnvironment;

const auto* const kMoto =
    ::testing::AddGlobalTestEnvironment(new MotoEnvironment);

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Shell(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A package under test: this build's binary packaged ("native"), or a zip
// made by the build ("arm64": CBPIPE_ARM64_ZIP, "" when not configured).
struct PackageKind {
  std::string name;
  std::string zip;
};
void PrintTo(const PackageKind& kind, std::ostream* os) { *os << kind.name; }
const PackageKind kNative{"native", ""};
const PackageKind kArm64{"arm64", CBPIPE_ARM64_ZIP};

// The package, made once for the build and unpacked once per process.
const testing::LambdaPackage& PackageGet(const PackageKind& kind) {
  return testing::LambdaPackage::Get({.source_dir = CBPIPE_SOURCE_DIR,
                                      .binary = CBPIPE_BINARY,
                                      .cache_dir = CBPIPE_PACKAGE_DIR,
                                      .zip = kind.zip});
}

// `bootstrap` of `package` started as Lambda starts it (on this machine:
// under qemu for an arm64 package on x86_64).
class Bootstrap : public testing::LambdaBootstrap {
 public:
  Bootstrap(const testing::LambdaPackage& package,
            const std::vector<std::string>& env, const fs::path& log)
      : LambdaBootstrap(env, log, package.dir(), package.command()) {}
};

class LambdaPackageTest : public ::testing::TestWithParam<PackageKind> {
 protected:
  const testing::LambdaPackage& Package() const {
    return PackageGet(GetParam());
  }

  void SetUp() override {
    if (GetParam().name == "arm64" && GetParam().zip.empty()) {
      GTEST_SKIP() << "the arm64 Lambda zip was not built: configure with "
                      "-DCBPIPE_LAMBDA_ARM64=ON (scripts/test-arm64)";
    }
    ASSERT_EQ(Package().error(), "");
    if (GetParam().name == "arm64") {
      ASSERT_EQ(Package().arch(), "arm64");
    }
    moto_ = MotoEnvironment::server();
    ASSERT_NE(moto_, nullptr) << MotoEnvironment::error();
    ASSERT_TRUE(api_.Start().ok());
    work_ = Package().root() /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(work_);
    fs::create_directories(work_ / "outbox");
    fs::create_directories(work_ / "tmp");
    AwsOptions aws;
    aws.endpoints["s3"] = moto_->endpoint();
    aws.endpoints["states"] = moto_->endpoint();
    auto client = MakeAwsClient(aws);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    aws_ = *client;
    bucket_ = "cbpipe-lambda-" + std::to_string(::getpid()) + "-" +
              std::to_string(serial_++);
    ASSERT_TRUE(S3Put("CreateBucket", "", "").ok());
    const std::string config = R"([aws]
region = "us-east-1"
endpoints = { s3 = ")" + moto_->endpoint() + R"(", states = ")" +
                               moto_->endpoint() + R"(" }

[output]
work_dir = ")" + (work_ / "work").string() + R"("

[service]
object_store = "s3://)" + bucket_ + R"(/raw"
work_store = "file://)" + (work_ / "work").string() + R"("
ledger = "memory://"

[[destination]]
name = "visa"
networks = ["visa", "mastercard", "amex", "discover"]
url = "file://)" + (work_ / "outbox").string() + R"("
)";
    std::ofstream(work_ / "cbpipe.toml") << config;
  }

  // The variables Lambda sets, and ours: CBPIPE_CONFIG, or the template's
  // variables when a test set template_env_.
  std::vector<std::string> LambdaEnv(const std::string& handler) const {
    return {"AWS_LAMBDA_RUNTIME_API=" + api_.host_port(),
            "_HANDLER=" + handler,
            "LAMBDA_TASK_ROOT=" + Package().dir().string(),
            "AWS_LAMBDA_FUNCTION_NAME=cbpipe-" + handler,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
            "AWS_REGION=us-east-1",
            "AWS_ACCESS_KEY_ID=testing",
            "AWS_SECRET_ACCESS_KEY=testing",
            "AWS_SESSION_TOKEN=testing-token",
            "TZ=:UTC",
            "TMPDIR=" + (work_ / "tmp").string(),
            "CBPIPE_CONFIG=" + (work_ / "cbpipe.toml").string()};
  }
  std::vector<std::string> Env(const std::string& handler) const {
    std::vector<std::string> env = LambdaEnv(handler);
    if (template_env_.empty()) return env;
    std::erase_if(env, [](const std::string& e) {
      return e.starts_with("CBPIPE_CONFIG=");
    });
    env.insert(env.end(), template_env_.begin(), template_env_.end());
    return env;
  }

  // Runs `handler` on `event` in a fresh process; its answer.
  std::optional<LambdaApiOutcome> Invoke(const std::string& handler,
                                         const std::string& event,
                                         int64_t deadline_in_ms = 60000,
                                         std::vector<std::string> extra = {}) {
    const std::string id = "req-" + std::to_string(serial_++);
    api_.Push({.request_id = id,
               .body = event,
               .deadline_ms = NowMs() + deadline_in_ms,
               .trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"});
    std::vector<std::string> env = Env(handler);
    for (const std::string& e : extra) {  // replaces a variable of Env's
      const std::string name = e.substr(0, e.find('=') + 1);
      std::erase_if(env, [&](const std::string& v) { return v.starts_with(name); });
      env.push_back(e);
    }
    const int calls = api_.next_calls();
    std::optional<LambdaApiOutcome> out;
    {
      Bootstrap process(Package(), env, work_ / (handler + ".log"));
      for (int i = 0; i < 600 && !out; ++i) {
        out = api_.WaitOutcome(id, milliseconds(100));
        if (!out) out = api_.WaitOutcome("", milliseconds(0));  // init failed
      }
      // Answered: the function asks for its next event, then is stopped
      // (after a deadline it first waits for the stopped step, which a
      // silent server keeps).
      const bool past_deadline =
          out && out->body.find("deadline") != std::string::npos;
      if (out && out->kind != "init_error" && !past_deadline) {
        EXPECT_TRUE(api_.WaitNextCalls(calls + 2, milliseconds(10000)));
      }
      last_output_ = process.output();
    }
    api_.ReleaseWaiting();
    return out;
  }

  Status PutInput(const std::string& key, const std::string& content) {
    return S3Put("PutObject", key, content);
  }

  // PUT on the test's bucket ("" key: the bucket itself).
  Status S3Put(const char* operation, const std::string& key,
               const std::string& body) {
    AwsRequest put;
    put.service = "s3";
    put.method = "PUT";
    put.operation = operation;
    put.bucket = bucket_;
    put.path = "/" + key;
    put.resource = "s3://" + bucket_ + "/" + key;
    put.body = body;
    return aws_->Send(put).status();
  }

  json Header() const {
    return {{"run_id", "run-1"},
            {"trace_id", "5759e988bd862e3fe1be46a994272793"},
            {"now_ms", int64_t{1767225600000}}};
  }

  testing::MotoServer* moto_ = nullptr;
  LambdaRuntimeApiServer api_;
  fs::path work_;
  std::shared_ptr<AwsClient> aws_;
  std::string bucket_;
  std::string last_output_;
  std::vector<std::string> template_env_;
  static inline int serial_ = 0;
};

TEST_P(LambdaPackageTest, TheZipHoldsBootstrapCbpipeAndItsLoader) {
  const fs::path dir = Package().dir();
  EXPECT_TRUE(fs::exists(dir / "bootstrap"));
  EXPECT_TRUE(fs::exists(dir / "cbpipe"));
  EXPECT_TRUE(fs::exists(dir / "lib" / Package().loader()));
  EXPECT_TRUE(fs::exists(dir / "lib" / "libc.so.6"));
  EXPECT_TRUE(fs::exists(dir / "lib" / "libcurl.so.4"));
  EXPECT_NE(fs::status(dir / "bootstrap").permissions() & fs::perms::owner_exec,
            fs::perms::none);
}

TEST_P(LambdaPackageTest, ScanReadsItsInputFromS3AndWritesBatchesThere) {
  const std::string sample = (work_ / "in.csv").string();
  ASSERT_EQ(Shell("CBPIPE_NOW=2026-01-01T00:00:00Z " + std::string(CBPIPE_BINARY) +
                  " gen-sample --records 40 --invalid-ratio 0.1 --seed 7 --output " +
                  sample + " 2>/dev/null"),
            0);
  ASSERT_TRUE(PutInput("raw/in.csv", ReadFile(sample)).ok());
  json event = Header();
  event["input_key"] = "in.csv";
  event["input_name"] = "in.csv";
  std::optional<LambdaApiOutcome> out = Invoke("scan", event.dump());
  ASSERT_TRUE(out.has_value()) << last_output_;
  ASSERT_EQ(out->kind, "response") << out->body << "\n" << last_output_;
  const json scanned = json::parse(out->body);
  EXPECT_EQ(scanned["records"], 40);
  EXPECT_GT(scanned["accepted"].get<int>(), 0);
  EXPECT_GT(scanned["rejected"].get<int>(), 0);
  ASSERT_FALSE(scanned["batches"].empty());
  // The batch files and manifests are in the work store (the folder that
  // is the work dir: scan writes there, verify reads the store).
  const std::string manifest = scanned["batches"][0]["manifest"];
  EXPECT_TRUE(fs::exists(work_ / "work" / manifest)) << manifest;
  EXPECT_FALSE(fs::exists(Package().dir() / "cbpipe-out"));
  // Logs are JSON lines with the X-Ray trace id.
  EXPECT_NE(last_output_.find(R"("trace_id":"5759e988bd862e3fe1be46a994272793")"),
            std::string::npos)
      << last_output_;

  // verify, then deliver to the file:// destination, each its own function.
  json verify = Header();
  verify["batch"] = {{"id", scanned["batches"][0]["id"]}, {"manifest", manifest}};
  out = Invoke("verify", verify.dump());
  ASSERT_TRUE(out.has_value()) << last_output_;
  ASSERT_EQ(out->kind, "response") << out->body << "\n" << last_output_;
  const json verified = json::parse(out->body);
  ASSERT_EQ(verified["deliveries"].size(), 1u);
  out = Invoke("deliver", verified["deliveries"][0].dump());
  ASSERT_TRUE(out.has_value()) << last_output_;
  ASSERT_EQ(out->kind, "response") << out->body << "\n" << last_output_;
  const json delivered = json::parse(out->body);
  ASSERT_FALSE(delivered["files"].empty());
  for (const json& f : delivered["files"]) {
    EXPECT_EQ(f["status"], "delivered") << f.dump();
    EXPECT_TRUE(fs::exists(work_ / "outbox" / f["name"].get<std::string>()));
  }

  // The same delivery to a server that never answers: stopped before the
  // deadline and reported transient (the state machine retries it).
  const int silent = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(silent, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(silent, 8), 0);  // connects, never greets
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(silent, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string config = ReadFile(work_ / "cbpipe.toml");
  const std::string outbox = "url = \"file://" + (work_ / "outbox").string() + "\"";
  config.replace(config.find(outbox), outbox.size(),
                 "url = \"ftp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                     "/in\"\nallow_insecure = true\nusername = \"u\"\n"
                     "password = \"env:FTP_PASSWORD\"");
  std::ofstream(work_ / "silent.toml") << config;
  const int64_t before = NowMs();
  out = Invoke("deliver", verified["deliveries"][0].dump(), 2500,
               {"CBPIPE_CONFIG=" + (work_ / "silent.toml").string(),
                "FTP_PASSWORD=p", "CBPIPE_LAMBDA_DEADLINE_MARGIN_MS=800"});
  ::close(silent);
  ASSERT_TRUE(out.has_value()) << last_output_;
  EXPECT_EQ(out->kind, "error") << out->body;
  EXPECT_EQ(out->error_type, "Cbpipe.Transient") << out->body << last_output_;
  EXPECT_NE(out->body.find("deadline"), std::string::npos) << out->body;
  EXPECT_LT(out->at_ms, before + 2500);
  EXPECT_GE(out->at_ms, before + 2500 - 800 - 200);
}

TEST_P(LambdaPackageTest, EveryHandlerAnswersABadInputWithItsErrorType) {
  for (const std::string& handler : LambdaHandlerNames()) {
    std::optional<LambdaApiOutcome> out =
        Invoke(handler, R"({"run_id":7})", 60000,
               {"CBPIPE_STATE_MACHINE_ARN=arn:aws:states:us-east-1:"
                "123456789012:stateMachine:cbpipe"});
    ASSERT_TRUE(out.has_value()) << handler << "\n" << last_output_;
    EXPECT_EQ(out->kind, "error") << handler << ": " << out->body;
    EXPECT_EQ(out->error_type, "Cbpipe.InvalidInput")
        << handler << ": " << out->body << "\n" << last_output_;
    const json body = json::parse(out->body);
    EXPECT_EQ(body["errorType"], "Cbpipe.InvalidInput");
    EXPECT_TRUE(body["errorMessage"].get<std::string>().starts_with(
        "INVALID_ARGUMENT: "))
        << body.dump();
  }
  // A missing input is not the input's fault: another code, another type.
  json event = Header();
  event["input_key"] = "absent.csv";
  event["input_name"] = "absent.csv";
  std::optional<LambdaApiOutcome> out = Invoke("scan", event.dump());
  ASSERT_TRUE(out.has_value()) << last_output_;
  EXPECT_EQ(out->kind, "error");
  EXPECT_NE(out->error_type, "Cbpipe.Transient") << out->body;
}

TEST_P(LambdaPackageTest, InitErrorsArePostedAndTheProcessExits) {
  struct Case {
    std::string handler, config, expect;
  } cases[] = {
      {"scan", (work_ / "missing.toml").string(), "missing.toml"},
      {"scna", (work_ / "cbpipe.toml").string(), "_HANDLER"},
      {"start", (work_ / "cbpipe.toml").string(), "CBPIPE_STATE_MACHINE_ARN"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> env = Env(c.handler);
    std::erase_if(env, [](const std::string& e) {
      return e.starts_with("CBPIPE_CONFIG=");
    });
    env.push_back("CBPIPE_CONFIG=" + c.config);
    LambdaRuntimeApiServer api;
    ASSERT_TRUE(api.Start().ok());
    env[0] = "AWS_LAMBDA_RUNTIME_API=" + api.host_port();
    Bootstrap process(Package(), env, work_ / "init.log");
    std::optional<LambdaApiOutcome> init = api.WaitOutcome("", milliseconds(30000));
    ASSERT_TRUE(init.has_value()) << c.handler << "\n" << process.output();
    EXPECT_EQ(init->kind, "init_error");
    EXPECT_EQ(init->error_type, "Cbpipe.Init");
    const json body = json::parse(init->body);
    EXPECT_EQ(body["errorType"], "Cbpipe.Init");
    EXPECT_NE(body["errorMessage"].get<std::string>().find(c.expect),
              std::string::npos)
        << body.dump();
    EXPECT_NE(process.WaitExit(milliseconds(10000)), 0);
    EXPECT_EQ(api.next_calls(), 0);
  }
}

TEST_P(LambdaPackageTest, AnInvocationPastItsDeadlineIsTransient) {
  json event = Header();
  event["input_key"] = "in.csv";
  event["input_name"] = "in.csv";
  const int64_t before = NowMs();
  std::optional<LambdaApiOutcome> out =
      Invoke("scan", event.dump(), /*deadline_in_ms=*/1500,
             {"CBPIPE_LAMBDA_DEADLINE_MARGIN_MS=2000"});
  ASSERT_TRUE(out.has_value()) << last_output_;
  EXPECT_EQ(out->kind, "error");
  EXPECT_EQ(out->error_type, "Cbpipe.Transient");
  EXPECT_LT(out->at_ms, before + 1500);
  EXPECT_NE(out->body.find("deadline"), std::string::npos) << out->body;
}

TEST_P(LambdaPackageTest, StartStartsOneExecutionPerObject) {
  // A state machine in moto to start.
  AwsError error;
  const json create = {
      {"name", "cbpipe-" + bucket_},
      {"definition", R"({"StartAt":"s","States":{"s":{"Type":"Pass","End":true}}})"},
      {"roleArn", "arn:aws:iam::123456789012:role/cbpipe"}};
  StatusOr<std::string> made = aws_->CallJson(
      "states", "AWSStepFunctions.CreateStateMachine", create.dump(), "", "",
      &error);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const std::string arn = json::parse(*made)["stateMachineArn"];
  ASSERT_TRUE(PutInput("raw/in 1.csv", "a,b\n").ok());
  auto s3_event = [&](const std::string& key, const std::string& bucket) {
    return json{{"Records",
                 {{{"eventSource", "aws:s3"},
                   {"eventName", "ObjectCreated:Put"},
                   {"s3",
                    {{"bucket", {{"name", bucket}}},
                     {"object",
                      {{"key", key}, {"size", 4}, {"eTag", "0123abcd"}}}}}}}}}
        .dump();
  };
  const json sqs = {
      {"Records",
       {{{"messageId", "m1"}, {"eventSource", "aws:sqs"},
         {"body", s3_event("raw/in+1.csv", bucket_)}},
        {{"messageId", "m2"}, {"eventSource", "aws:sqs"},  // S3 said it twice
         {"body", s3_event("raw/in+1.csv", bucket_)}},
        {{"messageId", "m3"}, {"eventSource", "aws:sqs"}, {"body", "not json"}},
        {{"messageId", "m4"}, {"eventSource", "aws:sqs"},
         {"body", s3_event("raw/x.csv", "another-bucket")}},
        {{"messageId", "m5"}, {"eventSource", "aws:sqs"},  // a card number
         {"body", s3_event("raw/4111111111111111.csv", bucket_)}}}}};
  std::optional<LambdaApiOutcome> out = Invoke(
      "start", sqs.dump(), 60000, {"CBPIPE_STATE_MACHINE_ARN=" + arn});
  ASSERT_TRUE(out.has_value()) << last_output_;
  ASSERT_EQ(out->kind, "response") << out->body << "\n" << last_output_;
  EXPECT_EQ(json::parse(out->body),
            json::parse(R"({"batchItemFailures":[{"itemIdentifier":"m3"},)"
                        R"({"itemIdentifier":"m4"},{"itemIdentifier":"m5"}]})"));
  EXPECT_EQ(last_output_.find("4111111111111111"), std::string::npos)
      << last_output_;
  StatusOr<json> executions = testing::StepFunctionsExecutions(*aws_, arn);
  ASSERT_TRUE(executions.ok()) << executions.status().ToString();
  ASSERT_EQ(executions->size(), 1u) << executions->dump();
  const json& input = (*executions)[0]["input"];
  EXPECT_EQ(input["input_key"], "in 1.csv");
  EXPECT_EQ(input["run_id"], (*executions)[0]["name"]);
  EXPECT_EQ(input["name_by_content"], true);
  EXPECT_EQ(input["trace_id"].get<std::string>().size(), 32u);
}

std::string KindName(const ::testing::TestParamInfo<PackageKind>& info) {
  return info.param.name;
}
INSTANTIATE_TEST_SUITE_P(Package, LambdaPackageTest,
                         ::testing::Values(kNative, kArm64), KindName);

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// The functions as deploy/aws/cbpipe.yaml configures them: no CBPIPE_CONFIG,
// the template's CBPIPE_* variables naming resources made on moto (the
// SDKs' AWS_ENDPOINT_URL points the calls there), and Lambda's X-Ray
// daemon address.
class LambdaTemplatePackageTest : public LambdaPackageTest {
 protected:
  void SetUp() override {
    LambdaPackageTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    AwsOptions options;
    options.endpoints = {{"s3", moto_->endpoint()},
                         {"dynamodb", moto_->endpoint()},
                         {"sns", moto_->endpoint()},
                         {"secretsmanager", moto_->endpoint()}};
    auto client = MakeAwsClient(options);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    processed_ = bucket_ + "-processed";
    AwsRequest create;
    create.service = "s3";
    create.method = "PUT";
    create.operation = "CreateBucket";
    create.bucket = processed_;
    create.path = "/";
    create.resource = "s3://" + processed_;
    ASSERT_TRUE((*client)->Send(create).ok());
    table_ = "cbpipe-state-" + bucket_;
    ASSERT_TRUE(CreateDynamoDbTable(**client, table_, 30).ok());
    auto topic = (*client)->CallQuery("sns", "CreateTopic", "2010-03-31",
                                      {{"Name", table_ + "-notifications"}});
    ASSERT_TRUE(topic.ok()) << topic.status().ToString();
    const std::string topic_arn = AwsXmlText(*topic, "TopicArn");
    auto secret = (*client)->CallJson(
        "secretsmanager", "secretsmanager.CreateSecret",
        json{{"Name", table_ + "/destinations/visa"},
             {"SecretString", R"({"username":"cbpipe","password":"pw"})"}}
            .dump());
    ASSERT_TRUE(secret.ok()) << secret.status().ToString();
    const std::string secret_arn = json::parse(*secret)["ARN"];
    template_env_ = {
        "CBPIPE_RAW_BUCKET=" + bucket_,
        "CBPIPE_PROCESSED_BUCKET=" + processed_,
        "CBPIPE_STATE_TABLE=" + table_,
        "CBPIPE_NOTIFICATION_TOPIC_ARN=" + topic_arn,
        "CBPIPE_MAX_FILES_PER_BATCH=4",
        "CBPIPE_MAX_FILE_BYTES=104857600",
        "CBPIPE_MAX_INPUT_BYTES=1073741824",
        "CBPIPE_DESTINATION_VISA_URL=sftp://127.0.0.1:1/inbox",
        "CBPIPE_DESTINATION_VISA_SECRET=" + secret_arn,
        "CBPIPE_DESTINATION_MASTERCARD_URL=",
        "CBPIPE_DESTINATION_MASTERCARD_SECRET=",
        "CBPIPE_DESTINATION_AMEX_URL=",
        "CBPIPE_DESTINATION_AMEX_SECRET=",
        "CBPIPE_DESTINATION_DISCOVER_URL=",
        "CBPIPE_DESTINATION_DISCOVER_SECRET=",
        "AWS_ENDPOINT_URL=" + moto_->endpoint(),
        "AWS_XRAY_DAEMON_ADDRESS=" + xray_.address(),
    };
  }

  // A scan event for 40 generated records put at `key` in the raw bucket
  // (the object store, without a prefix).
  json ScanEvent(const std::string& key) {
    const std::string sample = (work_ / "in.csv").string();
    EXPECT_EQ(Shell("CBPIPE_NOW=2026-01-01T00:00:00Z " +
                    std::string(CBPIPE_BINARY) +
                    " gen-sample --records 40 --seed 7 --output " + sample +
                    " 2>/dev/null"),
              0);
    EXPECT_TRUE(PutInput(key, ReadFile(sample)).ok());
    json event = Header();
    event["input_key"] = key;
    event["input_name"] = key;
    return event;
  }

  std::string processed_, table_;
  XRayTestDaemon xray_;
};

constexpr char kTraceHeader[] =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
    "Sampled=1";

TEST_P(LambdaTemplatePackageTest, ScanRunsWithTheTemplatesVariables) {
  const json event = ScanEvent("in.csv");
  const std::string id = "req-template";
  api_.Push({.request_id = id,
             .body = event.dump(),
             .deadline_ms = NowMs() + 60000,
             .trace_id = kTraceHeader});
  std::optional<LambdaApiOutcome> out;
  {
    Bootstrap process(Package(), Env("scan"), work_ / "scan.log");
    for (int i = 0; i < 600 && !out; ++i) {
      out = api_.WaitOutcome(id, milliseconds(100));
      if (!out) out = api_.WaitOutcome("", milliseconds(0));
    }
    last_output_ = process.output();
  }
  api_.ReleaseWaiting();
  ASSERT_TRUE(out.has_value()) << last_output_;
  ASSERT_EQ(out->kind, "response") << out->body << "\n" << last_output_;
  const json scanned = json::parse(out->body);
  EXPECT_EQ(scanned["records"], 40);
  ASSERT_FALSE(scanned["batches"].empty()) << scanned.dump();
  // The batch's manifest is in the processed bucket (the work store).
  AwsRequest head;
  head.service = "s3";
  head.method = "HEAD";
  head.operation = "HeadObject";
  head.bucket = processed_;
  head.path = "/" + scanned["batches"][0]["manifest"].get<std::string>();
  head.resource = "s3://" + processed_ + head.path;
  EXPECT_TRUE(aws_->Send(head).ok()) << head.path;

  // X-Ray: the step is a subsegment of Lambda's segment (the header's
  // Parent), and the S3 calls it made are its subsegments.
  std::vector<json> docs = xray_.Documents();
  const json* step = nullptr;
  for (const json& d : docs)
    if (d.value("name", "") == "scan") step = &d;
  ASSERT_NE(step, nullptr) << docs.size() << " documents\n" << last_output_;
  EXPECT_EQ((*step)["type"], "subsegment");
  EXPECT_EQ((*step)["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
  EXPECT_EQ((*step)["parent_id"], "53995c3f42cd8ad8");
  EXPECT_EQ((*step)["annotations"]["request_id"], id);
  EXPECT_FALSE(step->contains("fault"));
  int s3_calls = 0;
  for (const json& d : docs) {
    if (d.value("parent_id", "") != (*step)["id"]) continue;
    EXPECT_EQ(d["namespace"], "aws") << d.dump();
    EXPECT_EQ(d["trace_id"], (*step)["trace_id"]);
    if (d["name"] == "S3") ++s3_calls;
  }
  EXPECT_GE(s3_calls, 2) << "the input's GET and the batches' PUTs";
}

TEST_P(LambdaTemplatePackageTest, UnsampledInvocationsSendNothing) {
  const json event = ScanEvent("quiet.csv");
  api_.Push({.request_id = "req-unsampled",
             .body = event.dump(),
             .deadline_ms = NowMs() + 60000,
             .trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793;"
                         "Parent=53995c3f42cd8ad8;Sampled=0"});
  std::optional<LambdaApiOutcome> out;
  {
    Bootstrap process(Package(), Env("scan"), work_ / "quiet.log");
    for (int i = 0; i < 600 && !out; ++i)
      out = api_.WaitOutcome("req-unsampled", milliseconds(100));
    last_output_ = process.output();
  }
  api_.ReleaseWaiting();
  ASSERT_TRUE(out.has_value()) << last_output_;
  EXPECT_EQ(out->kind, "response") << out->body;
  EXPECT_TRUE(xray_.Documents().empty());
}

TEST_P(LambdaTemplatePackageTest, AMissingOrMixedVariableIsAnInitError) {
  struct Case {
    std::string handler, drop, add, expect;
  } cases[] = {
      {"scan", "CBPIPE_STATE_TABLE=", "", "CBPIPE_STATE_TABLE is not set"},
      {"deliver", "CBPIPE_PROCESSED_BUCKET=", "",
       "CBPIPE_PROCESSED_BUCKET is not set"},
      {"verify", "", "CBPIPE_CONFIG=" + (work_ / "cbpipe.toml").string(),
       "CBPIPE_CONFIG is set together with CBPIPE_RAW_BUCKET"},
      {"scan", "CBPIPE_DESTINATION_VISA_SECRET=", "",
       "CBPIPE_DESTINATION_VISA_SECRET is not set"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> env = Env(c.handler);
    if (!c.drop.empty())
      std::erase_if(env, [&](const std::string& e) { return e.starts_with(c.drop); });
    if (!c.add.empty()) env.push_back(c.add);
    LambdaRuntimeApiServer api;
    ASSERT_TRUE(api.Start().ok());
    env[0] = "AWS_LAMBDA_RUNTIME_API=" + api.host_port();
    Bootstrap process(Package(), env, work_ / "init.log");
    std::optional<LambdaApiOutcome> init =
        api.WaitOutcome("", milliseconds(30000));
    ASSERT_TRUE(init.has_value()) << c.expect << "\n" << process.output();
    EXPECT_EQ(init->kind, "init_error");
    EXPECT_EQ(init->error_type, "Cbpipe.Init");
    EXPECT_NE(init->body.find(c.expect), std::string::npos) << init->body;
    EXPECT_NE(process.WaitExit(milliseconds(10000)), 0);
  }
}

TEST_P(LambdaTemplatePackageTest, DeliverReadsTheLoginFromTheSecretAtInit) {
  // The secret lacks host_key_sha256, which an sftp:// destination needs:
  // deliver (only it connects) says so at init, naming the key, never
  // the password.
  LambdaRuntimeApiServer api;
  ASSERT_TRUE(api.Start().ok());
  std::vector<std::string> env = Env("deliver");
  env[0] = "AWS_LAMBDA_RUNTIME_API=" + api.host_port();
  Bootstrap process(Package(), env, work_ / "deliver-init.log");
  std::optional<LambdaApiOutcome> init = api.WaitOutcome("", milliseconds(30000));
  ASSERT_TRUE(init.has_value()) << process.output();
  EXPECT_EQ(init->error_type, "Cbpipe.Init");
  EXPECT_NE(init->body.find("destination visa"), std::string::npos) << init->body;
  EXPECT_NE(init->body.find("host_key_sha256"), std::string::npos) << init->body;
  EXPECT_EQ(init->body.find("\"pw\""), std::string::npos) << init->body;
}

TEST_P(LambdaTemplatePackageTest, DeliverStartsWithACompleteSecret) {
  AwsOptions options;
  options.endpoints = {{"secretsmanager", moto_->endpoint()}};
  auto client = MakeAwsClient(options);
  ASSERT_TRUE(client.ok());
  auto secret = (*client)->CallJson(
      "secretsmanager", "secretsmanager.CreateSecret",
      json{{"Name", table_ + "/destinations/visa-complete"},
           {"SecretString",
            json{{"username", "cbpipe"},
                 {"password", "pw"},
                 {"host_key_sha256",
                  "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}}
                .dump()}}
          .dump());
  ASSERT_TRUE(secret.ok()) << secret.status().ToString();
  std::erase_if(template_env_, [](const std::string& e) {
    return e.starts_with("CBPIPE_DESTINATION_VISA_SECRET=");
  });
  template_env_.push_back("CBPIPE_DESTINATION_VISA_SECRET=" +
                          json::parse(*secret)["ARN"].get<std::string>());
  // Init passes; the bad event is the handler's error, not an init error.
  std::optional<LambdaApiOutcome> out = Invoke("deliver", "{}");
  ASSERT_TRUE(out.has_value()) << last_output_;
  EXPECT_EQ(out->kind, "error") << out->body << "\n" << last_output_;
  EXPECT_EQ(out->error_type, "Cbpipe.InvalidInput") << out->body;
}

INSTANTIATE_TEST_SUITE_P(Package, LambdaTemplatePackageTest,
                         ::testing::Values(kNative, kArm64), KindName);

}  // namespace
}  // namespace cbpipe
