// The service on AWS resources chosen by config alone, against moto: the
// queue on SQS, the run store and the ledger on DynamoDB, inputs in S3 and
// reported by S3 events on an SQS queue. Each report of an object gives one
// run however often it comes; what is not an input is dropped or
// dead-lettered, never received in a loop; a run goes to the end with
// every AWS call an X-Ray subsegment of it.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "aws/dynamodb.h"
#include "aws/dynamodb_test_util.h"
#include "queue/sqs_queue.h"
#include "servers/moto_resources.h"
#include "telemetry/in_memory_metrics.h"
#include "telemetry/xray_test_daemon.h"
#include "workflow/registry.h"
#include "workflow/service.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr char kCsvHeader[] =
    "case_id,network,arn,merchant_id,transaction_date,chargeback_date,amount,"
    "currency,reason_code\n";

class ServiceAwsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<AwsOptions> aws = testing::MotoAwsOptions();
    ASSERT_TRUE(aws.ok()) << aws.status().ToString();
    aws_ = *aws;
    ASSERT_TRUE(SharedMoto(nullptr)->Reset().ok());
    auto client = AwsClientFor(aws_);
    ASSERT_TRUE(client.ok()) << client.status().ToString();
    client_ = *client;

    ASSERT_TRUE(testing::CreateBucket(*client_, "raw").ok());
    SqsQueueOptions create;
    create.create_if_missing = true;
    create.max_receive_count = 3;
    for (const char* name : {"work", "events"}) {
      auto queue = SqsQueue::Open(client_, name, create);
      ASSERT_TRUE(queue.ok()) << queue.status().ToString();
      queues_.push_back(std::move(*queue));
    }
    // S3 -> the events queue, as the deployment configures it.
    auto arn = testing::SqsQueueArn(*client_, events()->url());
    ASSERT_TRUE(arn.ok()) << arn.status().ToString();
    ASSERT_TRUE(
        testing::NotifyQueueOfCreatedObjects(*client_, "raw", *arn).ok());
    for (const char* table : {"runs", "ledger"})
      ASSERT_TRUE(CreateDynamoDbTable(*client_, table).ok());

    root_ = fs::path(::testing::TempDir()) /
            ("service_aws_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    config_ = DefaultConfig((root_ / "work").string());
    config_.service.workers = 2;
    config_.service.poll_interval_ms = 20;
    config_.service.visibility_seconds = 5;
    config_.service.admin_listen = "";
    config_.service.object_store = "s3://raw/in";
    config_.service.queue = "sqs://work";
    config_.service.run_store = "dynamodb://runs";
    config_.service.ledger = "dynamodb://ledger";
    config_.service.events_queue = "sqs://events";
    config_.aws = aws_;
  }
  void TearDown() override { fs::remove_all(root_); }

  SqsQueue* work() { return queues_[0].get(); }
  SqsQueue* events() { return queues_[1].get(); }

  void PutObject(const std::string& key, const std::string& body) {
    ASSERT_TRUE(testing::PutObject(*client_, "raw", key, body).ok());
  }

  // The body of the next event message reporting a created object on the
  // events queue (deleted there, with the s3:TestEvent S3 sends first), ""
  // when none came within a few seconds.
  std::string TakeEventBody() {
    for (int round = 0; round < 10; ++round) {
      auto got = events()->Receive(1, 30'000, 500);
      if (!got.ok() || got->empty()) continue;
      EXPECT_TRUE(events()->Delete((*got)[0].receipt).ok());
      auto batch = ParseS3Events((*got)[0].body);
      if (batch.ok() && !batch->created.empty()) return (*got)[0].body;
    }
    return "";
  }

  // Work messages now on the work queue (received, then released).
  std::vector<Message> WorkMessages() {
    std::vector<Message> all;
    for (int round = 0; round < 3; ++round) {
      auto got = work()->Receive(kMaxReceiveMessages, 30'000, 200);
      if (!got.ok()) break;
      for (Message& m : *got) all.push_back(std::move(m));
    }
    for (const Message& m : all)
      EXPECT_TRUE(work()->ChangeVisibility(m.receipt, 0).ok());
    return all;
  }

  static std::string Csv(int records) {
    std::string csv = kCsvHeader;
    for (int i = 0; i < records; ++i)
      csv += "S3" + std::to_string(i) +
             ",amex,,M,2025-03-01,2025-04-01,1.00,USD,C08\n";
    return csv;
  }

  AwsOptions aws_;
  std::shared_ptr<AwsClient> client_;
  std::vector<std::unique_ptr<SqsQueue>> queues_;
  fs::path root_;
  Config config_;
  InMemoryMetrics metrics_{PipelineMetricSpecs()};
};

S3ObjectRef Object(std::string bucket, std::string key, int64_t size,
                   std::string etag) {
  S3ObjectRef o;
  o.bucket = std::move(bucket);
  o.key = std::move(key);
  o.size = size;
  o.etag = std::move(etag);
  o.event_name = "ObjectCreated:Put";
  return o;
}

TEST(S3ObjectRunIdTest, OneIdPerObjectVersion) {
  const S3ObjectRef a = Object("raw", "in/a.csv", 10, "e1");
  S3ObjectRef again = a;
  again.event_name = "ObjectCreated:Copy";
  EXPECT_EQ(*S3ObjectRunId(a), *S3ObjectRunId(again));
  EXPECT_EQ(S3ObjectRunId(a)->size(), 16u);
  EXPECT_EQ(S3ObjectRunId(a)->find_first_not_of("0123456789abcdef"),
            std::string::npos);
  std::set<std::string> ids;
  for (const S3ObjectRef& o :
       {a, Object("raw", "in/a.csv", 10, "e2"),
        Object("raw", "in/b.csv", 10, "e1"),
        Object("raw2", "in/a.csv", 10, "e1"), Object("raw", "in/a.csv", 10, ""),
        Object("raw", "in/a.csv", 11, "")})
    ids.insert(*S3ObjectRunId(o));
  EXPECT_EQ(ids.size(), 6u);
}

TEST_F(ServiceAwsTest, EachObjectReportedIsOneRunAndNothingLoops) {
  auto made = Service::Create(config_, nullptr, &metrics_);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Service& service = **made;
  PutObject("in/2025/amex_file-1.csv", Csv(3));
  const std::string body = TakeEventBody();
  ASSERT_NE(body, "") << "moto did not notify the events queue";

  // S3 delivers at least once: the same report three times, plus what is
  // not an input.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(events()->Send(body).ok());
  json elsewhere = json::parse(body);
  elsewhere["Records"][0]["s3"]["object"]["key"] = "out/x.csv";
  ASSERT_TRUE(events()->Send(elsewhere.dump()).ok());
  json other_bucket = json::parse(body);
  other_bucket["Records"][0]["s3"]["bucket"]["name"] = "another";
  ASSERT_TRUE(events()->Send(other_bucket.dump()).ok());
  json spaced = json::parse(body);  // S3 sends a space as '+'
  spaced["Records"][0]["s3"]["object"]["key"] = "in/amex+file.csv";
  ASSERT_TRUE(events()->Send(spaced.dump()).ok());
  json card = json::parse(body);
  card["Records"][0]["s3"]["object"]["key"] = "in/4111111111111111.csv";
  ASSERT_TRUE(events()->Send(card.dump()).ok());
  ASSERT_TRUE(events()
                  ->Send(json{{"Service", "Amazon S3"},
                              {"Event", "s3:TestEvent"},
                              {"Bucket", "raw"}}
                             .dump())
                  .ok());
  ASSERT_TRUE(events()->Send("this is not an event").ok());

  for (int i = 0; i < 8; ++i) ASSERT_TRUE(service.TakeEventsOnce(300).ok());

  // One run, one work message, naming the object by its store key; the
  // queue-depth gauge reads the SQS queue.
  EXPECT_EQ(*service.runs()->Count({}), 1);
  EXPECT_EQ(metrics_.Value(kQueueDepth), 1);
  const std::vector<Message> messages = WorkMessages();
  ASSERT_EQ(messages.size(), 1u);
  const json work_body = json::parse(messages[0].body);
  EXPECT_EQ(work_body["input_key"], "2025/amex_file-1.csv");
  EXPECT_EQ(work_body["input_name"], "amex_file-1.csv");
  const std::string run_id = work_body["run_id"];
  auto run = service.runs()->Get(run_id);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->input_key, "2025/amex_file-1.csv");
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"duplicate"}), 2);
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"dropped"}), 4);

  // Every event message is gone; the garbage is a dead letter.
  auto stats = events()->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight, 0);
  auto dead = events()->ListDeadLetters(10);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].message.body, "this is not an event");
  EXPECT_NE((*dead)[0].reason.find("not an S3 event"), std::string::npos)
      << (*dead)[0].reason;
}

TEST_F(ServiceAwsTest, AnErrorLeavesTheEventForALaterReceive) {
  // The work queue is gone: nothing can be queued, so the event stays.
  auto made = Service::Create(config_, nullptr, &metrics_);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_TRUE(client_
                  ->CallJson("sqs", "AmazonSQS.DeleteQueue",
                             json{{"QueueUrl", work()->url()}}.dump())
                  .status()
                  .ok());
  PutObject("in/a.csv", Csv(1));
  ASSERT_TRUE((*made)->TakeEventsOnce(3000).ok());
  EXPECT_EQ(*(*made)->runs()->Count({}), 0);
  auto stats = events()->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight, 1);
}

TEST_F(ServiceAwsTest, CreateNamesTheKeyOfAResourceItCannotOpen) {
  Config bad = config_;
  bad.service.ledger = "dynamodb://no-such-table";
  auto made = Service::Create(bad, nullptr, &metrics_);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("service.ledger: "),
            std::string::npos)
      << made.status().ToString();
  bad = config_;
  bad.service.events_queue = "sqs://no-such-queue";
  made = Service::Create(bad, nullptr, &metrics_);
  ASSERT_FALSE(made.ok());
  EXPECT_NE(made.status().message().find("service.events_queue: "),
            std::string::npos)
      << made.status().ToString();
  // Events name S3 objects: a local object store cannot read them.
  bad = config_;
  bad.service.object_store = "";
  made = Service::Create(bad, nullptr, &metrics_);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(made.status().message().find("service.events_queue"),
            std::string::npos);
}

TEST_F(ServiceAwsTest, AReportedObjectRunsToTheEndWithItsAwsCallsTraced) {
  XRayTestDaemon daemon;
  config_.telemetry.xray.enabled = true;
  config_.telemetry.xray.daemon_address = daemon.address();
  auto made = Service::Create(config_, nullptr, &metrics_);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  Service& service = **made;
  ASSERT_TRUE(service.Start().ok());
  PutObject("in/amex.csv", Csv(5));
  bool done = false;
  for (int i = 0; i < 300 && !done; ++i) {
    StatusOr<int64_t> n = service.runs()->Count({.state = "succeeded"});
    done = n.ok() && *n == 1;
    if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  service.RequestStop();
  ASSERT_TRUE(service.Join(15000));
  ASSERT_TRUE(done);
  // The file reached the destination of DefaultConfig (a folder) and the
  // ledger in DynamoDB knows it.
  int delivered = 0;
  for (const auto& e :
       fs::recursive_directory_iterator(root_ / "work/outbox/amex"))
    delivered += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(delivered, 1);
  auto ledger = OpenDeliveryLedger("dynamodb://ledger", Env::Default(), aws_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  EXPECT_EQ(*(*ledger)->CountDelivered(), 1);
  EXPECT_EQ(metrics_.Value(kInputsTotal, {"accepted"}), 1);
  // Nothing left on the queues.
  auto stats = work()->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight, 0);

  // The run's segment, and AWS calls made in its steps as subsegments of
  // them, in the same trace.
  std::string trace_id;
  std::set<std::string> step_ids;
  std::vector<json> aws_calls;
  for (const json& d : daemon.Documents()) {
    if (d.value("type", "") != "subsegment" && d.contains("annotations") &&
        d["annotations"].value("run_id", "") != "")
      trace_id = d["trace_id"];
    if (d.value("namespace", "") == "aws") {
      aws_calls.push_back(d);
    } else if (d.value("type", "") == "subsegment") {
      step_ids.insert(d["id"].get<std::string>());
    }
  }
  ASSERT_NE(trace_id, "");
  ASSERT_FALSE(aws_calls.empty());
  std::set<std::string> services;
  for (const json& call : aws_calls) {
    EXPECT_EQ(call["trace_id"], trace_id);
    EXPECT_EQ(step_ids.count(call["parent_id"]), 1u) << call.dump();
    services.insert(call["name"].get<std::string>());
  }
  EXPECT_EQ(services.count("S3"), 1u);        // the input, read by scan
  EXPECT_EQ(services.count("DynamoDB"), 1u);  // the ledger, by deliver
}

}  // namespace
}  // namespace cbpipe
