// The serverless deployment end to end without AWS (issue 12): the
// COMMITTED state machine (deploy/aws/cbpipe.asl.json) executed by
// aws-local-stepfunctions (tools/stepfunctions/execute.mjs, scenario
// "lambda"), every Task state that calls a Lambda running the PACKAGED
// function (scripts/package-lambda, unpacked once per process): each
// handler is a `bootstrap` process (env -i + the Lambda variables) behind a
// Lambda runtime API server of this test, and execute.mjs POSTs each
// Task's input to this test's invoke endpoint, which hands it to the
// function and answers its response or its {errorType, errorMessage}
// (thrown as that States error, so Retry and Catch match as on AWS).
// The functions read and write moto (S3 raw and processed, DynamoDB
// ledger, SNS notifications, Secrets Manager for the FTPS password) and
// deliver to a real SFTP server (sshd: visa through a TCP proxy the test
// stops and starts, mastercard) and FTPS server (vsftpd: amex, discover).
// The failure path's SQS SendMessage and SNS Publish go to moto too.
// Needs root (sshd, vsftpd), moto_server and the npm tools; skipped
// without root.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws/xml.h"
#include "e2e/cli.h"
#include "e2e/destinations.h"
#include "lambda/function.h"
#include "lambda/package_test_util.h"
#include "lambda/runtime_api_test_server.h"
#include "servers/moto_resources.h"
#include "servers/test_servers.h"
#include "workflow/registry.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;

constexpr int kRetryMs = 100;  // every Retry's wait, shortened, not skipped
constexpr char kTraceHeader[] =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";

const LambdaPackage& Package() {
  return LambdaPackage::Get({.source_dir = CBPIPE_SOURCE_DIR,
                             .binary = CBPIPE_BINARY,
                             .cache_dir = CBPIPE_PACKAGE_DIR});
}

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One packaged function (one _HANDLER): its runtime API and its warm
// processes (several take events from the one API at once, as Lambda
// scales a function out).
struct Function {
  LambdaRuntimeApiServer api;
  std::vector<std::unique_ptr<LambdaBootstrap>> processes;
};

// What the invoke endpoint saw: each call's handler, input and answer.
struct Invocation {
  std::string handler;
  json input;
  LambdaApiOutcome outcome;
};

class StepFunctionsLambdaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
    ASSERT_EQ(Package().error(), "");
    ASSERT_TRUE(fs::exists(std::string(CBPIPE_SOURCE_DIR) +
                           "/tools/stepfunctions/node_modules/"
                           "aws-local-stepfunctions"))
        << "npm tools missing: run scripts/bootstrap (npm ci in "
           "tools/stepfunctions)";
    std::string error;
    moto_ = SharedMoto(&error);
    ASSERT_NE(moto_, nullptr) << error;
    ASSERT_TRUE(moto_->Reset().ok());
    StatusOr<AwsOptions> aws = MotoAwsOptions();
    ASSERT_TRUE(aws.ok()) << aws.status().ToString();
    aws_ = *aws;
    aws_.endpoints["states"] = moto_->endpoint();
    dir_ = std::make_unique<TempDir>("sfn_lambda");
    Status started = StartCardServers(dir_->path(), &sftp_, &ftps_);
    ASSERT_TRUE(started.ok()) << started.ToString();
    // visa's server is reached through a proxy on this port. Until
    // VisaUp() a socket holds the port without listening: connections are
    // refused (the server is down) and nobody else can take it (the
    // functions' processes do not inherit it: they would keep it bound).
    visa_reserved_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(visa_reserved_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(visa_reserved_, reinterpret_cast<sockaddr*>(&addr),
                     sizeof addr),
              0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(visa_reserved_, reinterpret_cast<sockaddr*>(&addr),
                            &len),
              0);
    visa_port_ = ntohs(addr.sin_port);
    auto client = AwsClientFor(aws_);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    aws_client_ = *client;
    CreateResources();
    if (HasFatalFailure()) return;
    WriteFile(*dir_ / "cbpipe.toml", Config());
    StartInvokeServer();
  }

  void TearDown() override {
    if (visa_reserved_ >= 0) ::close(visa_reserved_);
    invoke_.stop();
    if (invoke_thread_.joinable()) invoke_thread_.join();
    functions_.clear();  // stops the processes, then their APIs
  }

  void CreateResources() {
    AwsClient& aws = *aws_client_;
    ASSERT_TRUE(CreateBucket(aws, "raw").ok());
    ASSERT_TRUE(CreateDynamoDbTable(aws, "ledger").ok());
    for (const char* name : {"runs-dlq", "notes", "alerts", "events"}) {
      StatusOr<std::string> made = aws.CallJson(
          "sqs", "AmazonSQS.CreateQueue", json{{"QueueName", name}}.dump());
      ASSERT_TRUE(made.ok()) << made.status().ToString();
      queues_[name] = json::parse(*made)["QueueUrl"];
    }
    for (const char* topic : {"notes", "alerts"}) {
      auto made = aws.CallQuery("sns", "CreateTopic", "2010-03-31",
                                {{"Name", std::string("cbpipe-") + topic}});
      ASSERT_TRUE(made.ok()) << made.status().ToString();
      topics_[topic] = AwsXmlText(*made, "TopicArn");
      auto queue_arn = SqsQueueArn(aws, queues_[topic]);
      ASSERT_TRUE(queue_arn.ok()) << queue_arn.status().ToString();
      auto sub = aws.CallQuery("sns", "Subscribe", "2010-03-31",
                               {{"TopicArn", topics_[topic]},
                                {"Protocol", "sqs"},
                                {"Endpoint", *queue_arn}});
      ASSERT_TRUE(sub.ok()) << sub.status().ToString();
    }
    // The FTPS password lives in Secrets Manager only.
    ASSERT_TRUE(CreateSecret(aws, "cbpipe/ftps",
                             json{{"password", ftps_->password()}}.dump())
                    .ok());
  }

  // The functions' CBPIPE_CONFIG: everything they share is in AWS; the
  // work dir is relative, so each function's is under its own TMPDIR.
  std::string Config() const {
    std::string endpoints;
    for (const auto& [service, url] : aws_.endpoints)
      endpoints += (endpoints.empty() ? "" : ", ") + service + " = \"" + url +
                   "\"";
    std::string c =
        "[output]\nwork_dir = \"work\"\nmax_records_per_file = 100\n\n"
        "[service]\nobject_store = \"s3://raw/in\"\n"
        "work_store = \"s3://raw/processed\"\n"
        "ledger = \"dynamodb://ledger\"\n\n"
        "[aws]\nregion = \"us-east-1\"\nendpoints = { " +
        endpoints + " }\n\n[notify.sns]\ntopic_arn = \"" + topics_.at("notes") +
        "\"\n";
    const std::string retry = FastRetry(3);
    c += SftpDestination(*sftp_, "visa", retry, visa_port_);
    c += SftpDestination(*sftp_, "mastercard", retry);
    for (const char* net : {"amex", "discover"})
      c += FtpsDestination(*ftps_, net, "aws-sm:cbpipe/ftps#password", retry);
    return c;
  }

  // The variables Lambda sets for process `i` of `handler`, and ours.
  // Each process has its own /tmp, as each Lambda sandbox does.
  std::vector<std::string> Env(const std::string& handler, const Function& f,
                               int i) const {
    const fs::path tmp = fs::path(dir_->path()) /
                         ("tmp-" + handler + "-" + std::to_string(i));
    fs::create_directories(tmp);
    std::vector<std::string> env = {
        "AWS_LAMBDA_RUNTIME_API=" + f.api.host_port(),
        "_HANDLER=" + handler,
        "LAMBDA_TASK_ROOT=" + Package().dir().string(),
        "AWS_LAMBDA_FUNCTION_NAME=cbpipe-" + handler,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
        "AWS_REGION=us-east-1",
        "AWS_ACCESS_KEY_ID=testing",
        "AWS_SECRET_ACCESS_KEY=testing",
        "TZ=:UTC",
        "TMPDIR=" + tmp.string(),
        "CBPIPE_CONFIG=" + (*dir_ / "cbpipe.toml")};
    if (!state_machine_arn_.empty())
      env.push_back("CBPIPE_STATE_MACHINE_ARN=" + state_machine_arn_);
    return env;
  }

  // Starts `handler`'s function with `processes` warm processes.
  void StartFunction(const std::string& handler, int processes = 1) {
    auto f = std::make_unique<Function>();
    ASSERT_TRUE(f->api.Start().ok());
    for (int i = 0; i < processes; ++i) {
      f->processes.push_back(std::make_unique<LambdaBootstrap>(
          Env(handler, *f, i),
          fs::path(dir_->path()) / (handler + "-" + std::to_string(i) + ".log"),
          Package().dir()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    functions_[handler] = std::move(f);
  }

  void StartStepFunctions() {
    for (const std::string& handler : LambdaHandlerNames()) {
      if (handler == "start") continue;
      StartFunction(handler, handler == "deliver" ? 2 : 1);
    }
  }

  // Runs `handler` on `event` as Lambda would invoke it.
  std::optional<LambdaApiOutcome> Invoke(const std::string& handler,
                                         const std::string& event) {
    Function* f = nullptr;
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = functions_.find(handler);
      if (it == functions_.end()) return std::nullopt;
      f = it->second.get();
      id = handler + "-" + std::to_string(++request_serial_);
    }
    f->api.Push({.request_id = id,
                 .body = event,
                 .deadline_ms = NowMs() + 60000,
                 .trace_id = kTraceHeader,
                 .function_arn = "arn:aws:lambda:us-east-1:123456789012:"
                                 "function:cbpipe-" +
                                 handler});
    return f->api.WaitOutcome(id, milliseconds(60000));
  }

  // POST /invoke/HANDLER: the Task's input to the function; 200 with its
  // response, or 500 with {errorType, errorMessage}.
  void StartInvokeServer() {
    invoke_.Post(R"(/invoke/([a-z_]+))", [this](const httplib::Request& req,
                                                httplib::Response& res) {
      const std::string handler = req.matches[1];
      std::optional<LambdaApiOutcome> out = Invoke(handler, req.body);
      if (!out) {
        res.status = 504;
        res.set_content(json{{"errorType", "Lambda.ServiceException"},
                             {"errorMessage", "no answer from " + handler}}
                            .dump(),
                        "application/json");
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        invocations_.push_back(
            {handler, json::parse(req.body, nullptr, false), *out});
        if (on_outcome_) on_outcome_(invocations_.back());
      }
      if (out->kind == "response") {
        res.set_content(out->body, "application/json");
        return;
      }
      json error = json::parse(out->body, nullptr, false);
      if (!error.is_object()) error = json::object();
      if (!error.contains("errorType")) error["errorType"] = out->error_type;
      if (!error.contains("errorMessage")) error["errorMessage"] = out->body;
      res.status = 500;
      res.set_content(error.dump(), "application/json");
    });
    invoke_port_ = invoke_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(invoke_port_, 0);
    invoke_thread_ = std::thread([this] { invoke_.listen_after_bind(); });
    while (!invoke_.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }

  // visa's server comes up (the proxy to sshd listens on its port).
  void VisaUp() {
    if (visa_reserved_ >= 0) ::close(visa_reserved_);
    visa_reserved_ = -1;
    CuttingProxy::Options o;
    o.listen_port = visa_port_;
    o.target_port = sftp_->port();
    auto proxy = CuttingProxy::Start(o);
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    visa_proxy_ = std::move(*proxy);
  }

  // The DefinitionSubstitutions of the failure path.
  json Substitutions() const {
    return {{"DeadLetterQueueUrl", queues_.at("runs-dlq")},
            {"AlertTopicArn", topics_.at("alerts")}};
  }

  // One execution of the committed definition; execute.mjs's report.
  json Execute(const json& input, const std::string& name) {
    const std::string src = CBPIPE_SOURCE_DIR;
    const std::string err = *dir_ / ("execute-" + name + ".err");
    const std::string cmd =
        "node " + ShellQuote(src + "/tools/stepfunctions/execute.mjs") +
        " --definition " + ShellQuote(src + "/deploy/aws/cbpipe.asl.json") +
        " --scenario lambda --invoke http://127.0.0.1:" +
        std::to_string(invoke_port_) + "/invoke --moto " + moto_->endpoint() +
        " --substitutions " + ShellQuote(Substitutions().dump()) +
        " --retry-ms " + std::to_string(kRetryMs) + " --input " +
        ShellQuote(input.dump()) + " --name " + ShellQuote(name) + " 2>" +
        ShellQuote(err);
    std::string out;
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return json::object();
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << out << ReadFile(err);
    json report = json::parse(out, nullptr, false);
    EXPECT_TRUE(report.is_object()) << out << ReadFile(err);
    return report.is_object() ? report : json::object();
  }

  // A run header and scan's input for the object in/NAME.
  static json Input(const std::string& run_id, const std::string& name) {
    return {{"run_id", run_id},
            {"trace_id", "5759e988bd862e3fe1be46a994272793"},
            {"now_ms", NowMs()},
            {"input_key", name},
            {"input_name", name}};
  }

  // Generates a sample input, puts it in s3://raw/in/NAME and returns
  // what a clean `cbpipe run` of it delivers.
  CardFiles PutSample(const std::string& name) {
    const std::string local = *dir_ / name;
    EXPECT_EQ(RunCli("gen-sample --records 600 --invalid-ratio 0.02 --seed 11 "
                     "--output " +
                     ShellQuote(local))
                  .exit_code,
              0);
    EXPECT_TRUE(
        PutObject(*aws_client_, "raw", "in/" + name, ReadFile(local)).ok());
    return CleanRunFiles(*dir_ / "clean", local, /*max_records_per_file=*/100);
  }

  // Every file on the servers: its inode.
  std::map<std::string, ino_t> Inodes() const {
    std::map<std::string, ino_t> out;
    for (const std::string& root : {sftp_->root_dir(), ftps_->root_dir()}) {
      for (const auto& e : fs::recursive_directory_iterator(root)) {
        struct stat st {};
        if (e.is_regular_file() && ::stat(e.path().c_str(), &st) == 0)
          out[e.path().string()] = st.st_ino;
      }
    }
    return out;
  }

  int64_t LedgerDelivered() {
    auto ledger = OpenDeliveryLedger("dynamodb://ledger", Env::Default(), aws_);
    EXPECT_TRUE(ledger.ok()) << ledger.status().ToString();
    if (!ledger.ok()) return -1;
    StatusOr<int64_t> n = (*ledger)->CountDelivered();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }

  // Every message of the queue `name` (received and deleted), its body
  // parsed; an SNS envelope's Message too, as "message".
  std::vector<json> Drain(const std::string& name) {
    std::vector<json> got;
    for (int round = 0; round < 10; ++round) {
      StatusOr<std::string> r = aws_client_->CallJson(
          "sqs", "AmazonSQS.ReceiveMessage",
          json{{"QueueUrl", queues_[name]},
               {"MaxNumberOfMessages", 10},
               {"WaitTimeSeconds", 0}}
              .dump());
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) break;
      const json messages = json::parse(*r).value("Messages", json::array());
      if (messages.empty()) break;
      for (const json& m : messages) {
        json body = json::parse(m["Body"].get<std::string>(), nullptr, false);
        if (body.is_object() && body.contains("Message") &&
            body["Message"].is_string()) {
          body["message"] = json::parse(body["Message"].get<std::string>(),
                                        nullptr, false);
        }
        got.push_back(body);
        EXPECT_TRUE(aws_client_
                        ->CallJson("sqs", "AmazonSQS.DeleteMessage",
                                   json{{"QueueUrl", queues_[name]},
                                        {"ReceiptHandle", m["ReceiptHandle"]}}
                                       .dump())
                        .ok());
      }
    }
    return got;
  }

  // The event types of cbpipe's notifications (SNS -> the notes queue).
  std::multiset<std::string> NotificationTypes() {
    std::multiset<std::string> types;
    for (const json& n : Drain("notes"))
      types.insert(n["message"].value("type", "?"));
    return types;
  }

  int Calls(const json& report, const std::string& state) const {
    return report["calls"].value(state, 0);
  }

  std::vector<Invocation> Invocations() {
    std::lock_guard<std::mutex> lock(mu_);
    return invocations_;
  }

  // The deliveries (batch, destination) verify handed out, of
  // `destination` only when given.
  int Deliveries(const std::string& destination = "") {
    int n = 0;
    for (const Invocation& i : Invocations()) {
      if (i.handler != "verify" || i.outcome.kind != "response") continue;
      const json out = json::parse(i.outcome.body, nullptr, false);
      if (!out.is_object()) continue;
      for (const json& d : out.value("deliveries", json::array()))
        n += destination.empty() || d.value("destination", "") == destination;
    }
    return n;
  }

  // The deliver invocations to `destination` that failed.
  int FailedDeliveries(const std::string& destination) {
    int n = 0;
    for (const Invocation& i : Invocations()) {
      n += i.handler == "deliver" && i.outcome.kind == "error" &&
           i.input.is_object() &&
           i.input.value("destination", "") == destination;
    }
    return n;
  }

  std::string Logs() const {
    std::string all;
    for (const auto& e : fs::directory_iterator(dir_->path())) {
      if (e.path().extension() == ".log" || e.path().extension() == ".err")
        all += "--- " + e.path().filename().string() + "\n" +
               ReadFile(e.path().string()).substr(0, 4000);
    }
    return all;
  }

  MotoServer* moto_ = nullptr;
  AwsOptions aws_;
  std::shared_ptr<AwsClient> aws_client_;
  std::unique_ptr<TempDir> dir_;
  std::optional<SshServer> sftp_;
  std::optional<FtpServer> ftps_;
  int visa_port_ = 0;
  int visa_reserved_ = -1;  // the port's socket while visa is down
  int visa_failures_ = 0;  // under mu_
  std::unique_ptr<CuttingProxy> visa_proxy_;
  std::map<std::string, std::string> queues_, topics_;
  std::string state_machine_arn_;

  std::mutex mu_;  // guards what the invoke server's threads touch
  std::map<std::string, std::unique_ptr<Function>> functions_;
  std::vector<Invocation> invocations_;
  std::function<void(const Invocation&)> on_outcome_;
  int request_serial_ = 0;

  httplib::Server invoke_;
  int invoke_port_ = 0;
  std::thread invoke_thread_;
};

TEST_F(StepFunctionsLambdaTest, ACleanInputIsDeliveredToFourCardCompanies) {
  VisaUp();
  StartStepFunctions();
  const CardFiles expected = PutSample("clean.csv");
  ASSERT_GE(expected.files, 8);

  const json report = Execute(Input("run-clean", "clean.csv"), "run-clean");
  ASSERT_EQ(report.value("status", ""), "SUCCEEDED")
      << report.dump() << Logs();
  const int batches = Calls(report, "verify");
  ASSERT_GE(batches, 2) << report.dump();
  EXPECT_EQ(Calls(report, "scan"), 1);
  EXPECT_EQ(Calls(report, "deliver"), Deliveries());
  EXPECT_GE(Deliveries(), 4);
  EXPECT_EQ(Calls(report, "settle"), 1);
  EXPECT_EQ(Calls(report, "record_failure"), 0);

  // Every file once on its server, as a clean `cbpipe run` makes it.
  const CardFiles got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents, expected.contents);
  EXPECT_EQ(got.files, expected.files);
  EXPECT_FALSE(got.leftovers);
  EXPECT_EQ(LedgerDelivered(), expected.files);
  EXPECT_EQ(NotificationTypes().count("batch.delivered"),
            static_cast<size_t>(batches));
  EXPECT_TRUE(Drain("alerts").empty());
  EXPECT_TRUE(Drain("runs-dlq").empty());
}

TEST_F(StepFunctionsLambdaTest, AServerDownThenUpIsRiddenOutByRetry) {
  StartStepFunctions();
  // visa's server comes back after its second refused delivery, while
  // the state machine is between retries.
  on_outcome_ = [this](const Invocation& i) {
    if (i.handler == "deliver" && i.outcome.kind == "error" &&
        i.input.value("destination", "") == "visa" && ++visa_failures_ == 2)
      VisaUp();
  };
  const CardFiles expected = PutSample("flaky.csv");

  const json report = Execute(Input("run-flaky", "flaky.csv"), "run-flaky");
  ASSERT_EQ(report.value("status", ""), "SUCCEEDED")
      << report.dump() << Logs();
  EXPECT_EQ(FailedDeliveries("visa"), 2);
  for (const Invocation& i : Invocations()) {
    if (i.outcome.kind == "error") {
      EXPECT_EQ(i.outcome.error_type, "Cbpipe.Transient") << i.outcome.body;
    }
  }
  EXPECT_EQ(Calls(report, "deliver"), Deliveries() + 2);
  // The waits were shortened, not skipped.
  const json gaps = report["retry_gaps_ms"].value("deliver", json::array());
  ASSERT_EQ(gaps.size(), 2u) << report.dump();
  for (const json& gap : gaps) EXPECT_GE(gap.get<int>(), kRetryMs - 5);

  const CardFiles got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents, expected.contents);
  EXPECT_EQ(got.files, expected.files);
  EXPECT_EQ(LedgerDelivered(), expected.files);
  EXPECT_TRUE(Drain("runs-dlq").empty());
}

TEST_F(StepFunctionsLambdaTest,
       AServerDownPastItsRetriesIsADeadLetterThatRedrivesOnce) {
  StartStepFunctions();
  const CardFiles expected = PutSample("down.csv");
  const json input = Input("run-down", "down.csv");

  const json report = Execute(input, "run-down");
  ASSERT_EQ(report.value("status", ""), "FAILED") << report.dump() << Logs();
  const int batches = Calls(report, "verify");
  ASSERT_GE(batches, 1);
  // deliver's Retry: 1 attempt + MaxAttempts 4 per batch, then its Catch.
  ASSERT_GE(Deliveries("visa"), 1);
  EXPECT_EQ(FailedDeliveries("visa"), 5 * Deliveries("visa"));
  EXPECT_EQ(Calls(report, "record_failure"), 1);
  EXPECT_EQ(Calls(report, "dead_letter"), 1);
  EXPECT_EQ(Calls(report, "alert"), 1);

  // The run is in the dead-letter queue, with what redrives it.
  const std::vector<json> dead = Drain("runs-dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0]["run_id"], "run-down");
  EXPECT_EQ(dead[0]["input"], input);
  EXPECT_NE(dead[0]["execution"].get<std::string>().find("run-down"),
            std::string::npos);
  EXPECT_EQ(dead[0]["error"].value("Cause", "").rfind("ABORTED: ", 0), 0u)
      << dead[0].dump();
  // ... and someone is told.
  const std::vector<json> alerts = Drain("alerts");
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].value("Subject", ""), "cbpipe run failed");
  EXPECT_EQ(alerts[0]["message"]["run_id"], "run-down");
  // The other three card companies have their files; visa none.
  CardFiles got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents.count("visa"), 0u);
  for (const char* net : {"mastercard", "amex", "discover"})
    EXPECT_EQ(got.contents[net], expected.contents.at(net)) << net;
  const std::multiset<std::string> types = NotificationTypes();
  EXPECT_EQ(types.count("delivery.failed"), expected.contents.at("visa").size())
      << ::testing::PrintToString(types);

  // The operator fixes the server and starts the dead letter's input
  // again under a new name (docs/aws.md "Operate"): each file once. What
  // was delivered is not sent again (an upload would be a new file: it is
  // written under a temporary name and renamed).
  const std::map<std::string, ino_t> before = Inodes();
  VisaUp();
  const json again = Execute(dead[0]["input"], "run-down-redrive");
  ASSERT_EQ(again.value("status", ""), "SUCCEEDED") << again.dump() << Logs();
  got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents, expected.contents);
  EXPECT_EQ(got.files, expected.files);
  EXPECT_FALSE(got.leftovers);
  EXPECT_EQ(LedgerDelivered(), expected.files);
  EXPECT_TRUE(Drain("runs-dlq").empty());
  const std::map<std::string, ino_t> after = Inodes();
  ASSERT_FALSE(before.empty());
  for (const auto& [path, inode] : before) {
    ASSERT_EQ(after.count(path), 1u) << path;
    EXPECT_EQ(after.at(path), inode) << path << " was sent again";
  }
  EXPECT_EQ(after.size(), before.size() + expected.contents.at("visa").size());
}

TEST_F(StepFunctionsLambdaTest, AnInvalidInputIsRejectedWithAnAlert) {
  VisaUp();
  StartStepFunctions();
  ASSERT_TRUE(PutObject(*aws_client_, "raw", "in/broken.csv",
                        std::string("Dispute Ref\n\0\0\0", 15))
                  .ok());

  const json report = Execute(Input("run-broken", "broken.csv"), "run-broken");
  // reject_input then alert_rejected, the end of the execution.
  ASSERT_EQ(report.value("status", ""), "SUCCEEDED")
      << report.dump() << Logs();
  EXPECT_EQ(Calls(report, "reject_input"), 1);
  EXPECT_EQ(Calls(report, "alert_rejected"), 1);
  EXPECT_EQ(Calls(report, "deliver"), 0);
  ASSERT_EQ(Invocations().front().handler, "scan");
  EXPECT_EQ(Invocations().front().outcome.error_type, "Cbpipe.InvalidInput");

  const std::vector<json> alerts = Drain("alerts");
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].value("Subject", ""), "cbpipe input rejected");
  EXPECT_EQ(alerts[0]["message"]["run_id"], "run-broken");
  // Nothing delivered; the input is in quarantine.
  EXPECT_EQ(ReceivedFiles(*sftp_, *ftps_).files, 0);
  EXPECT_EQ(LedgerDelivered(), 0);
  EXPECT_TRUE(Drain("runs-dlq").empty());
  auto processed = OpenObjectStore("s3://raw/processed", aws_);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  auto quarantined = (*processed)->List("quarantine/");
  ASSERT_TRUE(quarantined.ok()) << quarantined.status().ToString();
  EXPECT_FALSE(quarantined->empty());
}

TEST_F(StepFunctionsLambdaTest, TheSameInputTwiceStartsOneExecution) {
  VisaUp();
  // The committed definition in moto's Step Functions, for `start`.
  std::string definition =
      ReadFile(std::string(CBPIPE_SOURCE_DIR) + "/deploy/aws/cbpipe.asl.json");
  json subs = Substitutions();
  for (const char* fn : {"Scan", "Verify", "Deliver", "Notify", "Settle",
                         "RejectInput", "RecordFailure"}) {
    subs[std::string(fn) + "FunctionArn"] =
        std::string("arn:aws:lambda:us-east-1:123456789012:function:cbpipe-") +
        fn;
  }
  for (const auto& [name, value] : subs.items()) {
    const std::string key = "${" + name + "}";
    for (size_t at = definition.find(key); at != std::string::npos;
         at = definition.find(key))
      definition.replace(at, key.size(), value.get<std::string>());
  }
  StatusOr<std::string> made = aws_client_->CallJson(
      "states", "AWSStepFunctions.CreateStateMachine",
      json{{"name", "cbpipe"},
           {"definition", definition},
           {"roleArn", "arn:aws:iam::123456789012:role/cbpipe-states"}}
          .dump());
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  state_machine_arn_ = json::parse(*made)["stateMachineArn"];
  StartFunction("start");
  StartStepFunctions();

  // S3 reports the object to the events queue; it is put twice with the
  // same bytes (as an at-least-once notification says it twice).
  auto events_arn = SqsQueueArn(*aws_client_, queues_["events"]);
  ASSERT_TRUE(events_arn.ok());
  ASSERT_TRUE(
      NotifyQueueOfCreatedObjects(*aws_client_, "raw", *events_arn).ok());
  const CardFiles expected = PutSample("twice.csv");
  const std::string local = *dir_ / "twice.csv";
  ASSERT_TRUE(
      PutObject(*aws_client_, "raw", "in/twice.csv", ReadFile(local)).ok());
  json records = json::array();
  for (const json& body : Drain("events")) {
    if (!body.contains("Records")) continue;  // s3:TestEvent
    records.push_back({{"messageId", "m" + std::to_string(records.size() + 1)},
                       {"eventSource", "aws:sqs"},
                       {"body", body.dump()}});
  }
  ASSERT_EQ(records.size(), 2u);
  // One SQS batch with both, to the packaged `start`.
  std::optional<LambdaApiOutcome> started =
      Invoke("start", json{{"Records", records}}.dump());
  ASSERT_TRUE(started.has_value()) << Logs();
  ASSERT_EQ(started->kind, "response") << started->body << Logs();
  EXPECT_EQ(json::parse(started->body),
            json::parse(R"({"batchItemFailures":[]})"));

  StatusOr<json> executions =
      StepFunctionsExecutions(*aws_client_, state_machine_arn_);
  ASSERT_TRUE(executions.ok()) << executions.status().ToString();
  ASSERT_EQ(executions->size(), 1u) << executions->dump();
  const json& execution = (*executions)[0];
  const json input = execution["input"];
  EXPECT_EQ(input["input_key"], "twice.csv");
  EXPECT_EQ(input["run_id"], execution["name"]);

  // That one execution, run locally: delivered once.
  const json report =
      Execute(input, execution["name"].get<std::string>());
  ASSERT_EQ(report.value("status", ""), "SUCCEEDED")
      << report.dump() << Logs();
  const CardFiles got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents, expected.contents);
  EXPECT_EQ(got.files, expected.files);
  EXPECT_EQ(LedgerDelivered(), expected.files);
}

}  // namespace
}  // namespace cbpipe::testing
