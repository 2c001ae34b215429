// The end-to-end run of `cbpipe serve` on AWS (moto) with real card-company
// servers: a raw file put into the S3 bucket is reported by S3's
// notification to an SQS queue; two serve processes (the built binary) on
// the same config share the work through SQS and DynamoDB; the one that
// holds the run is killed with SIGKILL in the middle of its deliveries
// (crash point deliver.after_upload); the other finishes it. The CSVs are
// kept in the bucket's processed prefix, every file is on the SFTP (sshd)
// and FTPS (vsftpd, its password from Secrets Manager) servers exactly
// once with the bytes a clean `cbpipe run` makes, the DynamoDB ledger
// agrees, and the notification comes back from an SQS queue subscribed to
// the SNS topic. Needs root (sshd, vsftpd) and moto_server; skipped
// without root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "aws/dynamodb.h"
#include "aws/dynamodb_test_util.h"
#include "aws/xml.h"
#include "e2e/cli.h"
#include "e2e/destinations.h"
#include "e2e/serve_process.h"
#include "queue/sqs_queue.h"
#include "servers/moto_resources.h"
#include "servers/test_servers.h"
#include "workflow/registry.h"

namespace cbpipe::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class ServeAwsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
    StatusOr<AwsOptions> aws = MotoAwsOptions();
    ASSERT_TRUE(aws.ok()) << aws.status().ToString();
    aws_ = *aws;
    dir_ = std::make_unique<TempDir>("serve_aws");
    Status started = StartCardServers(dir_->path(), &sftp_, &ftps_);
    ASSERT_TRUE(started.ok()) << started.ToString();

    auto client = AwsClientFor(aws_);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    aws_client_ = *client;
    CreateResources();
  }

  void CreateResources() {
    AwsClient& aws = *aws_client_;
    ASSERT_TRUE(CreateBucket(aws, "raw").ok());
    SqsQueueOptions create;
    create.create_if_missing = true;
    create.max_receive_count = 5;
    for (const char* name : {"work", "events", "notes"}) {
      auto queue = SqsQueue::Open(aws_client_, name, create);
      ASSERT_TRUE(queue.ok()) << queue.status().ToString();
      queues_[name] = std::move(*queue);
    }
    // S3 -> events: moto delivers the notification itself.
    auto events_arn = SqsQueueArn(aws, queues_["events"]->url());
    ASSERT_TRUE(events_arn.ok()) << events_arn.status().ToString();
    ASSERT_TRUE(NotifyQueueOfCreatedObjects(aws, "raw", *events_arn).ok());
    // The topic, and the queue subscribed to it that the test reads.
    auto topic = aws.CallQuery("sns", "CreateTopic", "2010-03-31",
                               {{"Name", "cbpipe-events"}});
    ASSERT_TRUE(topic.ok()) << topic.status().ToString();
    topic_arn_ = AwsXmlText(*topic, "TopicArn");
    auto notes_arn = SqsQueueArn(aws, queues_["notes"]->url());
    ASSERT_TRUE(notes_arn.ok()) << notes_arn.status().ToString();
    auto sub = aws.CallQuery("sns", "Subscribe", "2010-03-31",
                             {{"TopicArn", topic_arn_},
                              {"Protocol", "sqs"},
                              {"Endpoint", *notes_arn}});
    ASSERT_TRUE(sub.ok()) << sub.status().ToString();
    for (const char* table : {"runs", "ledger"})
      ASSERT_TRUE(CreateDynamoDbTable(aws, table).ok());
    // The FTPS password lives in Secrets Manager only.
    ASSERT_TRUE(CreateSecret(aws, "cbpipe/ftps",
                             json{{"password", ftps_->password()}}.dump())
                    .ok());
  }

  // One process's config: its own work dir (as on its own machine),
  // everything else, the generated files included, shared in AWS.
  std::string Config(const std::string& work_dir) {
    std::string endpoints;
    for (const auto& [service, url] : aws_.endpoints)
      endpoints += (endpoints.empty() ? "" : ", ") + service + " = \"" + url +
                   "\"";
    std::string c =
        "[output]\nwork_dir = \"" + work_dir +
        "\"\nmax_records_per_file = 150\n\n"
        "[service]\nobject_store = \"s3://raw/in\"\n"
        "work_store = \"s3://raw/processed\"\n"
        "queue = \"sqs://work\"\nrun_store = \"dynamodb://runs\"\n"
        "ledger = \"dynamodb://ledger\"\nevents_queue = \"sqs://events\"\n"
        "workers = 2\nvisibility_seconds = 3\npoll_interval_ms = 50\n"
        "admin_listen = \"\"\nshutdown_timeout_seconds = 10\n\n"
        "[aws]\nregion = \"us-east-1\"\nendpoints = { " +
        endpoints + " }\n\n[notify.sns]\ntopic_arn = \"" + topic_arn_ + "\"\n";
    const std::string retry = FastRetry(5);
    for (const char* net : {"visa", "mastercard"})
      c += SftpDestination(*sftp_, net, retry);
    for (const char* net : {"amex", "discover"})
      c += FtpsDestination(*ftps_, net, "aws-sm:cbpipe/ftps#password", retry);
    return c;
  }

  bool WaitFor(const std::function<bool()>& done, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::unique_ptr<TempDir> dir_;
  std::optional<SshServer> sftp_;
  std::optional<FtpServer> ftps_;
  AwsOptions aws_;
  std::shared_ptr<AwsClient> aws_client_;
  std::map<std::string, std::unique_ptr<SqsQueue>> queues_;
  std::string topic_arn_;
};

TEST_F(ServeAwsTest, RawFileInS3IsDeliveredOnceThoughItsWorkerIsKilled) {
  const std::string input = *dir_ / "in1.csv";
  ASSERT_EQ(RunCli("gen-sample --records 1200 --invalid-ratio 0.02 --seed 7 "
                   "--output " +
                   ShellQuote(input))
                .exit_code,
            0);
  const CardFiles expected = CleanRunFiles(*dir_ / "clean", input, 150);
  ASSERT_GE(expected.files, 8);

  WriteFile(*dir_ / "a.toml", Config(*dir_ / "work-a"));
  WriteFile(*dir_ / "b.toml", Config(*dir_ / "work-b"));
  const std::string trace_a = *dir_ / "trace-a";
  // The processes' own temporary folder: their S3 stores' copies go there.
  const std::string tmp = *dir_ / "tmp";
  std::filesystem::create_directories(tmp);
  // A kills itself (SIGKILL) right after its second remote upload, before
  // the rename and the ledger write: the delivery is half done.
  ServeProcess a(*dir_ / "a.toml", *dir_ / "a.log",
                 {"CBPIPE_CRASH_AT=deliver.after_upload:2",
                  "CBPIPE_TEST_TRACE=" + trace_a, "TMPDIR=" + tmp});
  ASSERT_TRUE(WaitForLog(*dir_ / "a.log", "service.started", 1, 20000))
      << ReadFile(*dir_ / "a.log");

  ASSERT_TRUE(PutObject(*aws_client_, "raw", "in/in1.csv", ReadFile(input)).ok());

  // A takes the event and claims the run; then B starts on the same
  // resources.
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFile(trace_a).find(" claimed ") != std::string::npos; },
      20000))
      << ReadFile(*dir_ / "a.log");
  ServeProcess b(*dir_ / "b.toml", *dir_ / "b.log", {"TMPDIR=" + tmp});
  int status = 0;
  ASSERT_TRUE(a.WaitExit(30000, &status)) << ReadFile(*dir_ / "a.log");
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "A was not killed in the middle of the run: " << status << "\n"
      << ReadFile(*dir_ / "a.log");

  // B finishes the run.
  auto runs = OpenRunStore("dynamodb://runs", Env::Default(), aws_);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_TRUE(WaitFor(
      [&] {
        StatusOr<int64_t> n = (*runs)->Count({.state = "succeeded"});
        return n.ok() && *n == 1;
      },
      40000))
      << ReadFile(*dir_ / "b.log");
  EXPECT_EQ(*(*runs)->Count({}), 1);
  EXPECT_TRUE(b.Stop(15000));
  // Neither the killed A's copies of the input and the batch files (card
  // numbers) nor B's stay in the temporary folder.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(tmp))
    left.push_back(e.path().filename().string());
  EXPECT_TRUE(left.empty())
      << left.size() << " left, the first " << (left.empty() ? "" : left[0]);

  // Every file on its server exactly once, as a clean run makes it.
  const CardFiles got = ReceivedFiles(*sftp_, *ftps_);
  EXPECT_EQ(got.contents, expected.contents);
  EXPECT_EQ(got.files, expected.files);
  EXPECT_FALSE(got.leftovers);
  auto ledger = OpenDeliveryLedger("dynamodb://ledger", Env::Default(), aws_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  EXPECT_EQ(*(*ledger)->CountDelivered(), expected.files);


  // The CSVs are kept in the processed prefix of the bucket.
  auto processed = OpenObjectStore("s3://raw/processed", aws_);
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  auto keys = (*processed)->List("batches/");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  int csvs = 0;
  for (const std::string& key : *keys)
    csvs += key.size() > 4 && key.substr(key.size() - 4) == ".csv" ? 1 : 0;
  EXPECT_EQ(csvs, expected.files);

  // The notifications, read back from the queue subscribed to the topic.
  std::set<std::string> types;
  for (int round = 0; round < 10; ++round) {
    auto got = queues_["notes"]->Receive(kMaxReceiveMessages, 30'000, 200);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    if (got->empty()) break;
    for (const Message& m : *got) {
      const json envelope = json::parse(m.body);
      types.insert(
          json::parse(envelope["Message"].get<std::string>())["type"]);
    }
  }
  EXPECT_EQ(types.count("batch.delivered"), 1u);

  // Nothing left to do: the event and the work message are gone.
  for (const char* name : {"work", "events"}) {
    auto stats = queues_[name]->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->visible + stats->in_flight, 0) << name;
  }
}

}  // namespace
}  // namespace cbpipe::testing
