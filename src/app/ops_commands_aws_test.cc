// The operator commands and `cbpipe run` against the AWS adapters on moto:
// dead letters that SQS moved through a queue's RedrivePolicy are listed,
// shown and redriven; runs are listed and shown from DynamoDB; `cbpipe run`
// delivers to real SFTP and FTPS servers with the key and the password
// read from Secrets Manager. Nothing here touches the SQLite files: the
// work dir has no state database.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/ops_commands.h"
#include "aws/dynamodb.h"
#include "e2e/cli.h"
#include "queue/sqs_queue.h"
#include "servers/moto_environment.h"
#include "servers/test_servers.h"
#include "workflow/in_process_run.h"
#include "workflow/registry.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::cbpipe::testing::CliResult;
using ::cbpipe::testing::FtpServer;
using ::cbpipe::testing::FtpServerOptions;
using ::cbpipe::testing::FtpTls;
using ::cbpipe::testing::MotoEnvironment;
using ::cbpipe::testing::RunCli;
using ::cbpipe::testing::ShellQuote;
using ::cbpipe::testing::SshServer;
using ::cbpipe::testing::TempDir;

const auto* const kMoto =
    ::testing::AddGlobalTestEnvironment(new MotoEnvironment);

template <typename Fn>
std::string Stdout(Fn fn, int* rc) {
  ::testing::internal::CaptureStdout();
  *rc = fn();
  return ::testing::internal::GetCapturedStdout();
}

template <typename Fn>
std::string Stderr(Fn fn, int* rc) {
  ::testing::internal::CaptureStderr();
  *rc = fn();
  return ::testing::internal::GetCapturedStderr();
}

class OpsOnAwsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(MotoEnvironment::server(), nullptr) << MotoEnvironment::error();
    ASSERT_TRUE(MotoEnvironment::server()->Reset().ok());
    dir_ = std::make_unique<TempDir>(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    config_ = DefaultConfig(*dir_ / "work");
    AwsOptions aws;
    aws.region = "us-east-1";
    for (const char* service : {"sqs", "dynamodb", "secretsmanager"})
      aws.endpoints[service] = MotoEnvironment::server()->endpoint();
    config_.aws = aws;
    auto client = AwsClientFor(aws);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = *client;
  }
  void TearDown() override {
    // Everything went to AWS: the SQLite state was never made.
    EXPECT_FALSE(fs::exists(ResolveServicePaths(config_).state_db));
  }

  std::unique_ptr<TempDir> dir_;
  Config config_;
  std::shared_ptr<AwsClient> client_;
};

// A message the service would have sent for run `run_id`.
std::string RunMessage(const std::string& run_id) {
  return json{{"run_id", run_id},
              {"input_key", "inputs/" + run_id},
              {"input_name", "visa-" + run_id + ".csv"}}
      .dump();
}

TEST_F(OpsOnAwsTest, DeadLettersSqsMovedAreListedShownAndRedriven) {
  SqsQueueOptions o;
  o.create_if_missing = true;  // cbpipe-inputs and cbpipe-inputs-dlq
  o.max_receive_count = 2;
  auto queue = SqsQueue::Open(client_, "cbpipe-inputs", o);
  ASSERT_TRUE(queue.ok()) << queue.status().ToString();
  const std::string run_id = "00000000000000a1";
  auto sent = (*queue)->Send(RunMessage(run_id));
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  // Received maxReceiveCount times and never deleted: SQS itself moves it
  // to the dead-letter queue on the next receive.
  int received = 0;
  for (int i = 0; i < 10; ++i) {
    auto got = (*queue)->Receive(1, /*visibility_ms=*/0, /*wait_ms=*/0);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (got->empty() && received >= 2) break;
    received += static_cast<int>(got->size());
  }
  ASSERT_EQ(received, 2);

  config_.service.queue = "sqs://cbpipe-inputs";
  int rc = -1;
  json list = json::parse(Stdout([&] { return DlqList(config_, true); }, &rc));
  ASSERT_EQ(rc, kExitOk);
  ASSERT_EQ(list["total"], 1) << list.dump();
  const json& d = list["dead_letters"][0];
  const std::string id = d["id"].get<std::string>();
  EXPECT_EQ(id, *sent);
  EXPECT_EQ(d["run_id"], run_id);
  EXPECT_EQ(d["input_name"], "visa-" + run_id + ".csv");
  EXPECT_EQ(d["reason"], "max_receive_count 2 exceeded");

  // Listing receives and releases: the dead letter is still there, and the
  // table has the SQLite queue's columns.
  std::string out = Stdout([&] { return DlqList(config_, false); }, &rc);
  ASSERT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("ID "), std::string::npos) << out;
  EXPECT_NE(out.find(id), std::string::npos) << out;
  EXPECT_NE(out.find(run_id), std::string::npos) << out;
  EXPECT_NE(out.find("(1 dead letter(s))"), std::string::npos) << out;

  json shown =
      json::parse(Stdout([&] { return DlqShow(config_, id, true); }, &rc));
  ASSERT_EQ(rc, kExitOk);
  EXPECT_EQ(shown["body"], RunMessage(run_id));
  EXPECT_EQ(DlqShow(config_, "no-such-id", true), kExitUsage);

  out = Stdout([&] { return DlqRedrive(config_, id, false); }, &rc);
  ASSERT_EQ(rc, kExitOk);
  EXPECT_EQ(out, "redrove " + id + " to the cbpipe-inputs queue\n");
  // Back in the queue, same id and body; the dead-letter queue is empty.
  auto back = (*queue)->Receive(10, 30'000, 1000);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].id, id);
  EXPECT_EQ((*back)[0].body, RunMessage(run_id));
  list = json::parse(Stdout([&] { return DlqList(config_, true); }, &rc));
  EXPECT_EQ(list["total"], 0) << list.dump();
  EXPECT_EQ(DlqRedrive(config_, id, false), kExitUsage);  // not one now

  // Into the dead letters again (by the service's MoveToDeadLetter), then
  // redrive --all and purge.
  ASSERT_TRUE((*queue)->MoveToDeadLetter((*back)[0].receipt, "550 denied").ok());
  out = Stdout([&] { return DlqRedrive(config_, "", true); }, &rc);
  ASSERT_EQ(rc, kExitOk);
  EXPECT_EQ(out, "redrove 1 dead letter(s) to the cbpipe-inputs queue\n");
  back = (*queue)->Receive(10, 30'000, 1000);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 1u);
  ASSERT_TRUE((*back)[0].id == id);
  ASSERT_TRUE((*queue)->MoveToDeadLetter((*back)[0].receipt, "again").ok());
  EXPECT_EQ(DlqPurge(config_, false), kExitUsage);
  out = Stdout([&] { return DlqPurge(config_, true); }, &rc);
  ASSERT_EQ(rc, kExitOk);
  list = json::parse(Stdout([&] { return DlqList(config_, true); }, &rc));
  EXPECT_EQ(list["total"], 0) << list.dump();
}

TEST_F(OpsOnAwsTest, MissingQueueOrDeadLetterQueueIsAUsageError) {
  config_.service.queue = "sqs://no-such-queue";
  int rc = -1;
  std::string err = Stderr([&] { return DlqList(config_, false); }, &rc);
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_NE(err.find("no-such-queue"), std::string::npos) << err;

  SqsQueueOptions o;
  o.create_if_missing = true;
  o.max_receive_count = 0;  // no RedrivePolicy
  ASSERT_TRUE(SqsQueue::Open(client_, "plain", o).ok());
  config_.service.queue = "sqs://plain";
  err = Stderr([&] { return DlqList(config_, false); }, &rc);
  EXPECT_EQ(rc, kExitUsage) << err;
  EXPECT_NE(err.find("RedrivePolicy"), std::string::npos) << err;
  EXPECT_EQ(DlqRedrive(config_, "", true), kExitUsage);
  EXPECT_EQ(DlqPurge(config_, true), kExitUsage);
}

TEST_F(OpsOnAwsTest, RunsListAndShowFromDynamoDb) {
  ASSERT_TRUE(CreateDynamoDbTable(*client_, "cbpipe-state").ok());
  auto runs = OpenRunStore("dynamodb://cbpipe-state", Env::Default(),
                           *config_.aws);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  for (int i = 0; i < 3; ++i) {
    RunRecord r;
    r.run_id = "000000000000000" + std::to_string(i);
    r.input_name = "in" + std::to_string(i) + ".csv";
    r.input_key = "inputs/" + r.run_id;
    ASSERT_TRUE((*runs)->CreateIfAbsent(r).ok());
    ::usleep(5000);  // distinct created times: newest first is defined
  }
  ASSERT_TRUE((*runs)
                  ->SetState("0000000000000001", "failed", "deliver",
                             "550 permission denied")
                  .ok());

  config_.service.run_store = "dynamodb://cbpipe-state";
  int rc = -1;
  std::string out = Stdout([&] { return RunsList(config_, "", 50, false); }, &rc);
  ASSERT_EQ(rc, kExitOk);
  EXPECT_NE(out.find("(3 of 3 run(s))"), std::string::npos) << out;
  EXPECT_LT(out.find("0000000000000002"), out.find("0000000000000000")) << out;

  json j = json::parse(
      Stdout([&] { return RunsList(config_, "failed", 10, true); }, &rc));
  ASSERT_EQ(rc, kExitOk);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["run_id"], "0000000000000001");
  EXPECT_EQ(j["total"], 1);

  j = json::parse(
      Stdout([&] { return RunsShow(config_, "0000000000000001", true); }, &rc));
  ASSERT_EQ(rc, kExitOk);
  EXPECT_EQ(j["state"], "failed");
  EXPECT_EQ(j["input_name"], "in1.csv");
  out = Stdout([&] { return RunsShow(config_, "0000000000000001", false); },
               &rc);
  EXPECT_NE(out.find("run 0000000000000001  failed"), std::string::npos)
      << out;
  EXPECT_EQ(RunsShow(config_, "00000000000000ff", false), kExitUsage);
  // Replay reads the same store: an unknown run is refused as in SQLite.
  EXPECT_EQ(Replay(config_, "00000000000000ff", false), kExitUsage);

  config_.service.run_store = "dynamodb://no-such-table";
  EXPECT_EQ(RunsList(config_, "", 50, false), kExitUsage);
}

// A run the service finished, with its checkpoints in DynamoDB and its
// deliveries in the DynamoDB ledger; the card company lost the files:
// replay reads both from the tables and records the replays there.
TEST_F(OpsOnAwsTest, ReplayReadsAndRecordsInDynamoDb) {
  ASSERT_TRUE(CreateDynamoDbTable(*client_, "cbpipe-state").ok());
  config_.service.run_store = "dynamodb://cbpipe-state";
  config_.service.ledger = "dynamodb://cbpipe-state";  // one table for both
  auto ledger = OpenDeliveryLedger(config_.service.ledger, Env::Default(),
                                   *config_.aws);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  const std::string input = *dir_ / "in.csv";
  testing::WriteFile(input,
                     "case_id,network,arn,merchant_id,transaction_date,"
                     "chargeback_date,amount,currency,reason_code\n"
                     "V1,visa,74567890123456789012341,M1,2025-03-01,"
                     "2025-04-01,10.00,USD,10.4\n"
                     "A1,amex,,M2,2025-03-01,2025-04-01,5.00,EUR,C08\n");
  fs::create_directories(config_.work_dir);
  InProcessRunner runner(config_, ledger->get(), Env::Default(),
                         /*now_epoch_seconds=*/1748779200);
  InputResult r = runner.Process(input);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  ASSERT_EQ(r.batches.size(), 1u);
  std::vector<fs::path> delivered;
  for (const DeliveredFile& f : r.batches[0].files) {
    delivered.push_back(fs::path(config_.work_dir) / "outbox" /
                        f.file.destination / f.delivery.remote_name);
    ASSERT_TRUE(fs::exists(delivered.back()));
  }
  ASSERT_EQ(delivered.size(), 2u);
  auto runs = OpenRunStore(config_.service.run_store, Env::Default(),
                           *config_.aws);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  RunRecord run;
  run.run_id = r.input_id;
  run.input_name = "in.csv";
  ASSERT_TRUE((*runs)->CreateIfAbsent(run).ok());
  StepRecord scan;
  scan.name = "scan";
  scan.state = "succeeded";
  scan.attempts = 1;
  scan.output_json =
      json{{"batches", json::array({{{"id", r.batches[0].batch.id},
                                     {"manifest",
                                      r.batches[0].batch.manifest_path}}})}}
          .dump();
  ASSERT_TRUE((*runs)->SaveStep(r.input_id, scan).ok());
  ASSERT_TRUE((*runs)->SetState(r.input_id, "succeeded", "", "").ok());
  for (const fs::path& p : delivered) fs::remove(p);  // lost

  int rc = -1;
  const std::string out =
      Stdout([&] { return Replay(config_, r.input_id, true); }, &rc);
  ASSERT_EQ(rc, kExitOk) << out;
  EXPECT_TRUE(json::parse(out)["ok"].get<bool>()) << out;
  for (size_t i = 0; i < delivered.size(); ++i) {
    EXPECT_TRUE(fs::exists(delivered[i])) << delivered[i];
    const DeliveredFile& f = r.batches[0].files[i];
    auto e = (*ledger)->Find(f.file.destination, f.delivery.remote_name);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    ASSERT_TRUE(e->has_value());
    EXPECT_EQ((*e)->state, "delivered");
    EXPECT_TRUE((*e)->replay);
  }
}

TEST_F(OpsOnAwsTest, ReplayAndRunRefuseSecretsManagerWithoutAwsTable) {
  config_.aws.reset();
  DestinationConfig d;
  d.name = "visa";
  d.networks = {Network::kVisa};
  d.url = "sftp://127.0.0.1:1/in";
  d.username = "cb";
  d.private_key_ref = "aws-sm:cbpipe/visa#private_key";
  config_.destinations = {d};
  int rc = -1;
  const std::string err =
      Stderr([&] { return Replay(config_, "0000000000000001", false); }, &rc);
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_NE(err.find("destination visa: private_key "
                     "aws-sm:cbpipe/visa#private_key is an AWS Secrets "
                     "Manager reference, but the config has no [aws] table"),
            std::string::npos)
      << err;
  // The store itself says the same for any aws-sm: reference.
  auto secrets = OpenCommandSecrets(config_);
  auto resolved = secrets->Resolve("aws-sm:cbpipe/visa#password");
  EXPECT_EQ(resolved.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(resolved.status().message().find("[aws]"), std::string::npos);
}

// `cbpipe run` (the binary) with a card company's SFTP key and another's
// FTPS password in Secrets Manager.
TEST_F(OpsOnAwsTest, RunDeliversWithCredentialsFromSecretsManager) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
  auto sftp = SshServer::Start(*dir_ / "sftp");
  ASSERT_TRUE(sftp.ok()) << sftp.status().ToString();
  FtpServerOptions fo;
  fo.tls = FtpTls::kExplicit;
  auto ftps = FtpServer::Start(*dir_ / "ftps", fo);
  ASSERT_TRUE(ftps.ok()) << ftps.status().ToString();
  ASSERT_TRUE(testing::MakeRemoteDir(sftp->root_dir(), "in", true).ok());
  ASSERT_TRUE(testing::MakeRemoteDir(ftps->root_dir(), "in", true).ok());
  const json secret = {{"private_key",
                        testing::ReadFile(sftp->client_key_path())},
                       {"password", ftps->password()}};
  auto created = client_->CallJson(
      "secretsmanager", "secretsmanager.CreateSecret",
      json{{"Name", "cbpipe/cards"}, {"SecretString", secret.dump()}}.dump());
  ASSERT_TRUE(created.ok()) << created.status().ToString();

  const std::string endpoint = MotoEnvironment::server()->endpoint();
  const std::string toml =
      "[output]\nwork_dir = \"" + *dir_ / "work" + "\"\n\n[aws]\n" +
      "region = \"us-east-1\"\nendpoints = { secretsmanager = \"" + endpoint +
      "\" }\n\n[[destination]]\nname = \"sftp-co\"\n" +
      "networks = [\"visa\", \"mastercard\"]\nurl = \"" + sftp->url("in") +
      "\"\nusername = \"" + sftp->user() +
      "\"\nprivate_key = \"aws-sm:cbpipe/cards#private_key\"\n" +
      "host_key_sha256 = \"" + sftp->host_key_sha256() +
      "\"\n\n[[destination]]\nname = \"ftps-co\"\n" +
      "networks = [\"amex\", \"discover\"]\nurl = \"" + ftps->url("in") +
      "\"\nusername = \"" + ftps->user() +
      "\"\npassword = \"aws-sm:cbpipe/cards#password\"\nca_file = \"" +
      ftps->ca_cert_path() + "\"\n";
  testing::WriteFile(*dir_ / "run.toml", toml);
  ASSERT_EQ(RunCli("gen-sample --records 200 --seed 3 --output " +
                   ShellQuote(*dir_ / "in.csv"))
                .exit_code,
            0);
  CliResult r = RunCli("run --json --config " + ShellQuote(*dir_ / "run.toml") +
                       " " + ShellQuote(*dir_ / "in.csv"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json doc = json::parse(r.out);
  std::map<std::string, int> delivered;  // destination -> files
  for (const json& b : doc["batches"]) {
    for (const json& f : b["files"]) {
      EXPECT_EQ(f["status"], "delivered") << f.dump();
      const std::string root = f["destination"] == "sftp-co"
                                   ? sftp->root_dir()
                                   : ftps->root_dir();
      EXPECT_TRUE(fs::exists(root + "/in/" + f["name"].get<std::string>()))
          << f.dump();
      ++delivered[f["destination"].get<std::string>()];
    }
  }
  EXPECT_GE(delivered["sftp-co"], 1);  // visa and mastercard
  EXPECT_GE(delivered["ftps-co"], 1);  // amex and discover
  // No secret in anything printed.
  EXPECT_EQ(r.out.find(ftps->password()), std::string::npos);
  EXPECT_EQ(r.err.find(ftps->password()), std::string::npos);
  EXPECT_EQ(r.out.find("PRIVATE KEY"), std::string::npos);

  // Without [aws] the same config is refused before anything runs.
  const size_t aws_at = toml.find("[aws]");
  const size_t aws_end = toml.find("[[destination]]");
  testing::WriteFile(*dir_ / "no-aws.toml",
                     toml.substr(0, aws_at) + toml.substr(aws_end));
  r = RunCli("run --config " + ShellQuote(*dir_ / "no-aws.toml") + " " +
             ShellQuote(*dir_ / "in.csv"));
  EXPECT_EQ(r.exit_code, kExitUsage) << r.out << r.err;
  EXPECT_NE(r.err.find("no [aws] table"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace cbpipe
