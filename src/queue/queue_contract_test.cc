// The queue port's contract on the real clock, run against every adapter:
// SqliteQueue and SqsQueue on moto (one moto per test binary, a fresh
// queue per test). The clock-driven cases (timeouts to the millisecond,
// delays, kill -9, processes) stay in sqlite_queue_test.cc on a FakeEnv:
// moto has no clock to advance.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aws/client.h"
#include "aws/credentials_chain.h"
#include "queue/queue.h"
#include "queue/sqlite_queue.h"
#include "queue/sqs_queue.h"
#include "servers/http_fault_server.h"
#include "servers/moto_environment.h"
#include "servers/moto_server.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;
using testing::HttpFaultServer;
using testing::HttpStep;
using testing::MotoServer;

// One moto for the whole binary (servers/moto_environment.h); each test
// starts from a reset one.
MotoServer* Moto() { return testing::MotoEnvironment::server(); }
const auto* const kMoto =
    ::testing::AddGlobalTestEnvironment(new testing::MotoEnvironment);

std::shared_ptr<AwsClient> MotoClient(const std::string& endpoint,
                                      Env* env = nullptr) {
  AwsClientOptions options;
  options.region = "us-east-1";
  options.endpoints["sqs"] = endpoint;
  options.request_timeout_seconds = 60;
  options.env = env;
  auto client = AwsClient::Create(
      options, MakeDefaultAwsCredentialsChain(AwsOptions(), AwsHost()));
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  return client.ok() ? std::shared_ptr<AwsClient>(std::move(*client)) : nullptr;
}

// Each adapter's factory: Open(max_receive_count) gives a fresh queue.
struct SqliteAdapter {
  static constexpr bool kExactStats = true;
  std::string path = (fs::path(::testing::TempDir()) /
                      ("contract_" + std::to_string(::getpid()) + ".db"))
                         .string();
  SqliteAdapter() { Cleanup(); }
  ~SqliteAdapter() { Cleanup(); }
  void Cleanup() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path + suffix);
  }
  std::unique_ptr<Queue> Open(int max_receive_count) {
    QueueOptions options;
    options.max_receive_count = max_receive_count;
    auto q = SqliteQueue::Open(path, "inputs", options);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(*q) : nullptr;
  }
};

struct SqsAdapter {
  static constexpr bool kExactStats = false;
  SqsAdapter() {
    if (Moto() == nullptr) return;
    EXPECT_TRUE(Moto()->Reset().ok());
    client = MotoClient(Moto()->endpoint());
  }
  std::unique_ptr<Queue> Open(int max_receive_count) {
    if (client == nullptr) {
      ADD_FAILURE() << "moto did not start: "
                    << testing::MotoEnvironment::error();
      return nullptr;
    }
    SqsQueueOptions options;
    options.create_if_missing = true;
    options.max_receive_count = max_receive_count;
    auto q = SqsQueue::Open(client, "inputs", options);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(*q) : nullptr;
  }
  std::shared_ptr<AwsClient> client;
};

template <typename Adapter>
class QueueContractTest : public ::testing::Test {
 protected:
  std::unique_ptr<Queue> OpenQueue(int max_receive_count = 5) {
    return adapter_.Open(max_receive_count);
  }
  static std::vector<Message> ReceiveAll(Queue& q, int64_t visibility_ms) {
    auto got = q.Receive(kMaxReceiveMessages, visibility_ms);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? std::move(got).value() : std::vector<Message>();
  }
  Adapter adapter_;
};

using Adapters = ::testing::Types<SqliteAdapter, SqsAdapter>;
class AdapterNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, SqliteAdapter> ? "Sqlite" : "Sqs";
  }
};
TYPED_TEST_SUITE(QueueContractTest, Adapters, AdapterNames);

TYPED_TEST(QueueContractTest, SendReceiveDeleteCarriesBodyAndAttributes) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  const std::string body("raw/a.csv\0\xff", 11);  // bodies are bytes
  const int64_t before = Env::Default()->NowMs();
  auto id = q->Send(body, {{"traceparent", "00-abc-01"}, {"kind", "ünï"}});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_FALSE(id->empty());
  auto got = q->Receive(1, 30'000);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  const Message& m = (*got)[0];
  EXPECT_EQ(m.id, *id);
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.attributes.size(), 2u);
  EXPECT_EQ(m.attributes.at("traceparent"), "00-abc-01");
  EXPECT_EQ(m.attributes.at("kind"), "ünï");
  EXPECT_EQ(m.receive_count, 1);
  EXPECT_GE(m.sent_at_ms, before - 1000);
  EXPECT_LE(m.sent_at_ms, Env::Default()->NowMs() + 1000);
  EXPECT_GE(m.first_received_at_ms, m.sent_at_ms);
  EXPECT_FALSE(m.receipt.empty());
  EXPECT_TRUE(q->Delete(m.receipt).ok());
  EXPECT_TRUE(this->ReceiveAll(*q, 1000).empty());
}

TYPED_TEST(QueueContractTest, InFlightMessageIsHiddenUntilReleased) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  ASSERT_TRUE(q->Send("a").ok());
  auto first = this->ReceiveAll(*q, 30'000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(this->ReceiveAll(*q, 30'000).empty());
  ASSERT_TRUE(q->ChangeVisibility(first[0].receipt, 0).ok());
  auto second = this->ReceiveAll(*q, 30'000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_NE(second[0].receipt, first[0].receipt);
  ASSERT_TRUE(q->ChangeVisibility(second[0].receipt, 60'000).ok());
  EXPECT_TRUE(this->ReceiveAll(*q, 30'000).empty());
  EXPECT_TRUE(q->Delete(second[0].receipt).ok());
}

TYPED_TEST(QueueContractTest, BatchesSendAndDeleteEveryMessage) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  std::vector<OutgoingMessage> batch(kMaxBatchEntries);
  for (int i = 0; i < kMaxBatchEntries; ++i) {
    batch[i].body = "m" + std::to_string(i);
  }
  auto ids = q->SendBatch(batch);
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  ASSERT_EQ(ids->size(), batch.size());
  EXPECT_EQ(std::set<std::string>(ids->begin(), ids->end()).size(),
            batch.size());
  std::vector<Message> got;
  for (int round = 0; round < 5 && got.size() < batch.size(); ++round) {
    for (Message& m : this->ReceiveAll(*q, 30'000)) got.push_back(m);
  }
  ASSERT_EQ(got.size(), batch.size());
  std::vector<std::string> receipts;
  std::set<std::string> bodies;
  for (const Message& m : got) {
    receipts.push_back(m.receipt);
    bodies.insert(m.body);
  }
  EXPECT_EQ(bodies.size(), batch.size());
  auto deleted = q->DeleteBatch(receipts);
  ASSERT_TRUE(deleted.ok()) << deleted.status().ToString();
  for (const Status& st : *deleted) EXPECT_TRUE(st.ok()) << st.ToString();
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->visible + stats->in_flight + stats->delayed, 0);
}

TYPED_TEST(QueueContractTest, MovesToDeadLettersAfterMaxReceiveCount) {
  auto q = this->OpenQueue(/*max_receive_count=*/2);
  ASSERT_NE(q, nullptr);
  auto poison = q->Send("poison", {{"n", "1"}});
  ASSERT_TRUE(poison.ok()) << poison.status().ToString();
  for (int i = 1; i <= 2; ++i) {
    auto got = this->ReceiveAll(*q, 0);  // visible again at once
    ASSERT_EQ(got.size(), 1u) << "receive " << i;
    EXPECT_EQ(got[0].receive_count, i);
  }
  // The third receive would exceed 2: the message moves instead.
  EXPECT_TRUE(this->ReceiveAll(*q, 0).empty());
  auto dead = q->GetDeadLetter(*poison);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  EXPECT_EQ(dead->message.body, "poison");
  EXPECT_EQ(dead->message.attributes.at("n"), "1");
  EXPECT_EQ(dead->message.receipt, "");
  EXPECT_NE(dead->reason.find("max_receive_count 2"), std::string::npos)
      << dead->reason;
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->visible, 0);
}

TYPED_TEST(QueueContractTest, WorkerMovesAMessageToDeadLettersWithItsError) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  auto id = q->Send("bad", {{"traceparent", "t1"}});
  ASSERT_TRUE(id.ok());
  auto got = this->ReceiveAll(*q, 30'000);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(
      q->MoveToDeadLetter(got[0].receipt, "PERMISSION_DENIED: 550").ok());
  EXPECT_TRUE(this->ReceiveAll(*q, 0).empty());
  auto dead = q->GetDeadLetter(*id);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  EXPECT_EQ(dead->reason, "PERMISSION_DENIED: 550");
  EXPECT_EQ(dead->message.receive_count, 1);
  EXPECT_EQ(dead->message.body, "bad");
  EXPECT_EQ(dead->message.attributes.at("traceparent"), "t1");
  EXPECT_EQ(q->GetDeadLetter("no-such-id").status().code(),
            StatusCode::kNotFound);
}

TYPED_TEST(QueueContractTest, ListRedriveAndPurgeDeadLetters) {
  auto q = this->OpenQueue(/*max_receive_count=*/1);
  ASSERT_NE(q, nullptr);
  std::set<std::string> sent;
  for (int i = 0; i < 3; ++i) {
    auto id = q->Send("m" + std::to_string(i), {{"n", std::to_string(i)}});
    ASSERT_TRUE(id.ok());
    sent.insert(*id);
  }
  ASSERT_EQ(this->ReceiveAll(*q, 0).size(), 3u);
  EXPECT_TRUE(this->ReceiveAll(*q, 0).empty());  // all three moved

  auto all = q->ListDeadLetters(10);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 3u);
  std::vector<std::string> ids;
  for (const DeadLetter& d : *all) ids.push_back(d.message.id);
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), sent);
  auto page = q->ListDeadLetters(1, ids[0]);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].message.id, ids[1]);
  EXPECT_EQ(q->ListDeadLetters(0).status().code(),
            StatusCode::kInvalidArgument);

  // Redriven: back with its id and attributes, receive count from 0.
  ASSERT_TRUE(q->Redrive(ids[1]).ok());
  EXPECT_EQ(q->Redrive(ids[1]).code(), StatusCode::kNotFound);
  auto back = this->ReceiveAll(*q, 30'000);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].id, ids[1]);
  EXPECT_EQ(back[0].receive_count, 1);
  EXPECT_EQ(back[0].attributes.at("n"), (*all)[1].message.attributes.at("n"));
  EXPECT_TRUE(q->Delete(back[0].receipt).ok());

  auto redriven = q->RedriveAll();
  ASSERT_TRUE(redriven.ok()) << redriven.status().ToString();
  EXPECT_EQ(*redriven, 2);
  auto again = this->ReceiveAll(*q, 0);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(std::set<std::string>({again[0].id, again[1].id}),
            std::set<std::string>({ids[0], ids[2]}));
  EXPECT_TRUE(this->ReceiveAll(*q, 0).empty());  // dead again
  auto purged = q->PurgeDeadLetters();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 2);
  EXPECT_TRUE(q->ListDeadLetters(10)->empty());
}

TYPED_TEST(QueueContractTest, PurgeDeletesTheQueuedMessages) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->Send("x").ok());
  auto got = q->Receive(1, 30'000);
  ASSERT_TRUE(got.ok());
  auto purged = q->Purge();
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(*purged, 3);
  EXPECT_TRUE(this->ReceiveAll(*q, 0).empty());
}

TYPED_TEST(QueueContractTest, LongPollReturnsWhenAMessageArrives) {
  auto receiver = this->OpenQueue();
  auto sender = this->OpenQueue();
  ASSERT_NE(receiver, nullptr);
  ASSERT_NE(sender, nullptr);
  const auto start = steady_clock::now();
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(sender->Send("wake").ok());
  });
  auto got = receiver->Receive(1, 30'000, 10'000);
  later.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "wake");
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  const auto empty_start = steady_clock::now();
  auto none = receiver->Receive(1, 1000, 1000);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_GE(steady_clock::now() - empty_start, std::chrono::milliseconds(900));
}

TYPED_TEST(QueueContractTest, RejectsArgumentsOutsideTheLimits) {
  auto q = this->OpenQueue();
  ASSERT_NE(q, nullptr);
  const auto invalid = StatusCode::kInvalidArgument;
  EXPECT_EQ(q->Receive(0, 1000).status().code(), invalid);
  EXPECT_EQ(q->Receive(kMaxReceiveMessages + 1, 1000).status().code(), invalid);
  EXPECT_EQ(q->Receive(1, -1).status().code(), invalid);
  EXPECT_EQ(q->Receive(1, 1000, kMaxWaitMs + 1).status().code(), invalid);
  EXPECT_EQ(q->SendBatch({}).status().code(), invalid);
  EXPECT_EQ(q->Send("x", {{"bad name", "v"}}).status().code(), invalid);
  EXPECT_EQ(q->Send("x", {{"a", "\xc3"}}).status().code(), invalid);
  EXPECT_EQ(q->Send(std::string(kMaxMessageBytes + 1, 'x')).status().code(),
            invalid);
  EXPECT_EQ(q->DeleteBatch({}).status().code(), invalid);
  EXPECT_EQ(q->Delete("").code(), invalid);
  EXPECT_EQ(q->ChangeVisibility("r", kMaxVisibilityMs + 1).code(), invalid);
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 0);
}

// ------------------------------------------------ SQS-specific behaviour

class SqsQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(Moto(), nullptr)
        << "moto did not start: " << testing::MotoEnvironment::error();
    ASSERT_TRUE(Moto()->Reset().ok());
    client_ = MotoClient(Moto()->endpoint(), &env_);
    ASSERT_NE(client_, nullptr);
  }
  // A fresh queue with a dead-letter queue, through the moto client.
  StatusOr<std::unique_ptr<SqsQueue>> CreateQueue(const std::string& name) {
    SqsQueueOptions create;
    create.create_if_missing = true;
    return SqsQueue::Open(client_, name, create);
  }
  FakeEnv env_{Env::Default()->NowMs()};  // retry waits pass at once
  std::shared_ptr<AwsClient> client_;
};

TEST_F(SqsQueueTest, MissingQueueIsNotFound) {
  auto q = SqsQueue::Open(client_, "nope");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kNotFound);
  EXPECT_NE(q.status().message().find("QueueDoesNotExist"), std::string::npos)
      << q.status().message();
  EXPECT_EQ(SqsQueue::Open(client_, "bad name").status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SqsQueueTest, OpensByUrlAndFindsTheDeadLetterQueue) {
  SqsQueueOptions create;
  create.create_if_missing = true;
  create.max_receive_count = 3;
  auto made = SqsQueue::Open(client_, "raw-events", create);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_TRUE((*made)->dead_letter_url().ends_with("/raw-events-dlq"));
  auto by_url = SqsQueue::Open(client_, (*made)->url());
  ASSERT_TRUE(by_url.ok()) << by_url.status().ToString();
  EXPECT_EQ((*by_url)->name(), "raw-events");
  EXPECT_EQ((*by_url)->dead_letter_url(), (*made)->dead_letter_url());
  EXPECT_EQ((*by_url)->max_receive_count(), 3);

  // Without a RedrivePolicy there are no dead letters to list.
  SqsQueueOptions plain;
  plain.create_if_missing = true;
  plain.max_receive_count = 0;
  auto bare = SqsQueue::Open(client_, "plain", plain);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ((*bare)->ListDeadLetters(10).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ((*bare)->Stats()->dead_letters, 0);
}

TEST_F(SqsQueueTest, ThrottlingAndServerErrorsAreRetried) {
  auto made = CreateQueue("work");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const std::string throttled =
      R"({"__type":"com.amazonaws.sqs#ThrottlingException",)"
      R"("message":"Rate exceeded"})";
  HttpFaultServer faults(
      {HttpStep::Forward(),  // Open: GetQueueAttributes
       HttpStep::Answer(400, throttled,
                        {{"Content-Type", "application/x-amz-json-1.0"}}),
       HttpStep::Answer(500, "")},
      Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  auto client = MotoClient(faults.endpoint(), &env_);
  auto q = SqsQueue::Open(client, (*made)->url());
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  auto id = (*q)->Send("after two failures");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  // Open's call, the two failures, the send (a reused connection the
  // forwarding server closed may add a retry).
  EXPECT_GE(faults.requests().size(), 4u);
  auto got = (*made)->Receive(1, 30'000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "after two failures");
}

TEST_F(SqsQueueTest, UnreachableEndpointIsUnavailable) {
  // Port 1: nobody listens there; connection refused, retried, given up.
  const std::string endpoint = "http://127.0.0.1:1";
  auto client = MotoClient(endpoint, &env_);
  auto q = SqsQueue::Open(client, "work");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kUnavailable)
      << q.status().ToString();
}

TEST_F(SqsQueueTest, ExpiredCredentialsAreUnauthenticated) {
  auto made = CreateQueue("work");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const std::string expired =
      R"({"__type":"com.amazonaws.sqs#ExpiredToken",)"
      R"("message":"The security token included in the request is expired"})";
  std::vector<HttpStep> steps(
      6, HttpStep::Answer(400, expired,
                          {{"Content-Type", "application/x-amz-json-1.0"}}));
  HttpFaultServer faults(steps, Moto()->port());
  ASSERT_TRUE(faults.Start().ok());
  auto q = SqsQueue::Open(MotoClient(faults.endpoint(), &env_), (*made)->url());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kUnauthenticated)
      << q.status().ToString();
}

}  // namespace
}  // namespace cbpipe
