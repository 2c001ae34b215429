#include "queue/sqlite_queue.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

class SqliteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::path(::testing::TempDir()) /
             ("queue_" + std::to_string(::getpid()) + ".db"))
                .string();
    Cleanup();
  }
  void TearDown() override { Cleanup(); }
  void Cleanup() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }

  // A queue on the fake clock.
  std::unique_ptr<SqliteQueue> OpenQueue(std::string_view name = "inputs",
                                         int max_receive_count = 5) {
    QueueOptions options;
    options.max_receive_count = max_receive_count;
    options.env = &env_;
    auto q = SqliteQueue::Open(path_, name, options);
    EXPECT_TRUE(q.ok()) << q.status().ToString();
    return q.ok() ? std::move(q).value() : nullptr;
  }

  std::vector<Message> ReceiveAll(Queue& q, int64_t visibility_ms) {
    auto got = q.Receive(kMaxReceiveMessages, visibility_ms);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() ? std::move(got).value() : std::vector<Message>();
  }

  // Sends n messages "0".."n-1" in batches; returns their ids.
  static std::set<std::string> SendMany(Queue& q, int n) {
    std::set<std::string> ids;
    for (int i = 0; i < n; i += kMaxBatchEntries) {
      std::vector<OutgoingMessage> batch;
      for (int k = i; k < std::min(n, i + kMaxBatchEntries); ++k) {
        batch.push_back({std::to_string(k), {}, 0});
      }
      auto sent = q.SendBatch(batch);
      EXPECT_TRUE(sent.ok()) << sent.status().ToString();
      if (sent.ok()) ids.insert(sent->begin(), sent->end());
    }
    return ids;
  }

  std::string path_;
  FakeEnv env_{1'700'000'000'000};
};

TEST_F(SqliteQueueTest, SendWithTheSameDedupIdQueuesOneMessage) {
  // The service sends one message per input, keyed by its run id; a restart
  // that picks the same input up again must not queue it twice, whether the
  // second send comes from this instance or another process's.
  auto q = OpenQueue();
  auto other = OpenQueue();
  auto first = q->Send("run a", {}, 0, "run-a");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = other->Send("run a, again", {}, 0, "run-a");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *first);
  std::vector<OutgoingMessage> batch(3);
  batch[0].body = "b";
  batch[0].dedup_id = "run-b";
  batch[1].body = "b twice in one batch";
  batch[1].dedup_id = "run-b";
  batch[2].body = "no dedup id";
  auto sent = q->SendBatch(batch);
  ASSERT_TRUE(sent.ok()) << sent.status().ToString();
  EXPECT_EQ((*sent)[0], (*sent)[1]);
  EXPECT_EQ(q->Stats()->visible, 3);
  std::vector<Message> got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 3u);
  std::set<std::string> bodies;
  for (const Message& m : got) bodies.insert(m.body);
  EXPECT_EQ(bodies, (std::set<std::string>{"run a", "b", "no dedup id"}));
  // Once the message is deleted the id may be used again (the run store,
  // not the queue, remembers finished inputs).
  for (const Message& m : got) {
    if (m.body == "run a") {
      ASSERT_TRUE(q->Delete(m.receipt).ok());
    }
  }
  auto later = q->Send("run a, later", {}, 0, "run-a");
  ASSERT_TRUE(later.ok());
  EXPECT_NE(*later, *first);
  EXPECT_FALSE(q->Send("x", {}, 0, std::string(129, 'd')).ok());  // too long
}

TEST_F(SqliteQueueTest, SendReceiveDeleteCarriesBodyAndAttributes) {
  auto q = OpenQueue();
  const std::string body("raw/a.csv\0\xff", 11);  // bodies are bytes
  auto id = q->Send(body, {{"traceparent", "00-abc-01"}, {"kind", "ünï"}});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->size(), 36u);  // a UUID
  ASSERT_TRUE(q->Send("").ok());

  env_.AdvanceMs(7);
  auto got = q->Receive(1, 30'000);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  const Message& m = (*got)[0];
  EXPECT_EQ(m.id, *id);
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.attributes.at("traceparent"), "00-abc-01");
  EXPECT_EQ(m.attributes.at("kind"), "ünï");
  EXPECT_EQ(m.receive_count, 1);
  EXPECT_EQ(m.sent_at_ms, env_.NowMs() - 7);
  EXPECT_EQ(m.first_received_at_ms, env_.NowMs());
  EXPECT_EQ(m.receipt.size(), 32u);
  EXPECT_TRUE(q->Delete(m.receipt).ok());

  auto empty = q->Receive(1, 30'000);
  ASSERT_TRUE(empty.ok());
  ASSERT_EQ(empty->size(), 1u);
  EXPECT_EQ((*empty)[0].body, "");
  EXPECT_TRUE(q->Delete((*empty)[0].receipt).ok());
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());
}

TEST_F(SqliteQueueTest, ReceivedMessageIsInvisibleUntilItsTimeout) {
  auto q = OpenQueue();
  ASSERT_TRUE(q->Send("a").ok());
  const int64_t first_receive = env_.NowMs();
  auto first = ReceiveAll(*q, 30'000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(ReceiveAll(*q, 30'000).empty());
  env_.AdvanceMs(29'999);
  EXPECT_TRUE(ReceiveAll(*q, 30'000).empty());
  env_.AdvanceMs(1);
  auto second = ReceiveAll(*q, 30'000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, first[0].id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_NE(second[0].receipt, first[0].receipt);
  EXPECT_EQ(second[0].first_received_at_ms, first_receive);
}

TEST_F(SqliteQueueTest, StaleReceiptCannotDelete) {
  auto q = OpenQueue();
  ASSERT_TRUE(q->Send("a").ok());
  auto first = ReceiveAll(*q, 1000);
  env_.AdvanceMs(1000);
  auto second = ReceiveAll(*q, 1000);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(q->Delete(first[0].receipt).code(), StatusCode::kNotFound);
  EXPECT_EQ(q->MoveToDeadLetter(first[0].receipt, "x").code(),
            StatusCode::kNotFound);
  // The latest receipt still deletes after its timeout, as in SQS: nobody
  // else has received the message.
  env_.AdvanceMs(5000);
  EXPECT_TRUE(q->Delete(second[0].receipt).ok());
  EXPECT_EQ(q->Delete(second[0].receipt).code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Delete("").code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteQueueTest, DeleteBatchReportsEachReceipt) {
  auto q = OpenQueue();
  SendMany(*q, 3);
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 3u);
  ASSERT_TRUE(q->Delete(got[1].receipt).ok());
  auto results =
      q->DeleteBatch({got[0].receipt, got[1].receipt, got[2].receipt});
  ASSERT_TRUE(results.ok());
  ASSERT_EQ(results->size(), 3u);
  EXPECT_TRUE((*results)[0].ok());
  EXPECT_EQ((*results)[1].code(), StatusCode::kNotFound);
  EXPECT_TRUE((*results)[2].ok());
  EXPECT_EQ(q->DeleteBatch({}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(q->DeleteBatch({"a", ""}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SqliteQueueTest, ChangeVisibilityExtendsShortensAndReleases) {
  auto q = OpenQueue();
  ASSERT_TRUE(q->Send("a").ok());
  auto got = ReceiveAll(*q, 10'000);
  ASSERT_EQ(got.size(), 1u);
  const std::string receipt = got[0].receipt;

  env_.AdvanceMs(5'000);
  ASSERT_TRUE(q->ChangeVisibility(receipt, 60'000).ok());  // extend
  env_.AdvanceMs(20'000);
  EXPECT_TRUE(ReceiveAll(*q, 10'000).empty());
  ASSERT_TRUE(q->ChangeVisibility(receipt, 1'000).ok());  // shorten
  env_.AdvanceMs(999);
  EXPECT_TRUE(ReceiveAll(*q, 10'000).empty());
  ASSERT_TRUE(q->ChangeVisibility(receipt, 0).ok());  // release now
  auto again = ReceiveAll(*q, 10'000);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 2);

  EXPECT_EQ(q->ChangeVisibility(receipt, 1000).code(), StatusCode::kNotFound);
  EXPECT_EQ(q->ChangeVisibility(again[0].receipt, -1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(q->ChangeVisibility(again[0].receipt, kMaxVisibilityMs + 1).code(),
            StatusCode::kInvalidArgument);
  env_.AdvanceMs(10'000);  // timed out: no longer in flight
  EXPECT_EQ(q->ChangeVisibility(again[0].receipt, 1000).code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(SqliteQueueTest, ZeroVisibilityReturnsAMessageOncePerCall) {
  auto q = OpenQueue();
  SendMany(*q, 3);
  auto got = ReceiveAll(*q, 0);
  EXPECT_EQ(got.size(), 3u);
  auto again = ReceiveAll(*q, 0);
  ASSERT_EQ(again.size(), 3u);
  EXPECT_EQ(again[0].receive_count, 2);
}

TEST_F(SqliteQueueTest, DelayedMessageAppearsAfterItsDelay) {
  auto q = OpenQueue();
  ASSERT_TRUE(q->Send("later", {}, 5'000).ok());
  EXPECT_EQ(q->Stats()->delayed, 1);
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());
  env_.AdvanceMs(4'999);
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());
  env_.AdvanceMs(1);
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "later");
  EXPECT_EQ(q->Send("x", {}, kMaxDelayMs + 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SqliteQueueTest, MovesToDeadLettersAfterMaxReceiveCount) {
  auto q = OpenQueue("inputs", /*max_receive_count=*/3);
  auto poison = q->Send("poison");
  ASSERT_TRUE(poison.ok());
  for (int i = 1; i <= 3; ++i) {
    auto got = ReceiveAll(*q, 1000);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].receive_count, i);
    env_.AdvanceMs(1000);
  }
  // The 4th receive would exceed 3: the message goes to the dead letters and
  // the receive returns the next message instead.
  ASSERT_TRUE(q->Send("good").ok());
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "good");

  auto dead = q->GetDeadLetter(*poison);
  ASSERT_TRUE(dead.ok()) << dead.status().ToString();
  EXPECT_EQ(dead->message.body, "poison");
  EXPECT_EQ(dead->message.receive_count, 3);
  EXPECT_EQ(dead->message.receipt, "");
  EXPECT_EQ(dead->moved_at_ms, env_.NowMs());
  EXPECT_NE(dead->reason.find("max_receive_count 3"), std::string::npos);
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->in_flight, 1);
}

TEST_F(SqliteQueueTest, ZeroMaxReceiveCountNeverDeadLetters) {
  auto q = OpenQueue("inputs", 0);
  ASSERT_TRUE(q->Send("a").ok());
  for (int i = 1; i <= 20; ++i) ASSERT_EQ(ReceiveAll(*q, 0).size(), 1u);
  EXPECT_EQ(q->Stats()->dead_letters, 0);
}

TEST_F(SqliteQueueTest, WorkerMovesAMessageToDeadLettersWithItsError) {
  auto q = OpenQueue();
  auto id = q->Send("bad", {{"traceparent", "t1"}});
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(
      q->MoveToDeadLetter(got[0].receipt, "PERMISSION_DENIED: 550").ok());
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());
  EXPECT_EQ(q->Delete(got[0].receipt).code(), StatusCode::kNotFound);
  auto dead = q->GetDeadLetter(*id);
  ASSERT_TRUE(dead.ok());
  EXPECT_EQ(dead->reason, "PERMISSION_DENIED: 550");
  EXPECT_EQ(dead->message.receive_count, 1);
  EXPECT_EQ(dead->message.attributes.at("traceparent"), "t1");
}

TEST_F(SqliteQueueTest, ListGetRedriveAndPurgeDeadLetters) {
  auto q = OpenQueue("inputs", 1);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(
        *q->Send("m" + std::to_string(i), {{"n", std::to_string(i)}}));
    env_.AdvanceMs(1);  // ids sort by send time
  }
  ASSERT_EQ(ReceiveAll(*q, 1000).size(), 5u);
  env_.AdvanceMs(1000);
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());  // all five dead-lettered

  auto page1 = q->ListDeadLetters(2);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->size(), 2u);
  EXPECT_EQ((*page1)[0].message.id, ids[0]);
  EXPECT_EQ((*page1)[1].message.id, ids[1]);
  // Redriving the last one seen does not break the next page.
  ASSERT_TRUE(q->Redrive(ids[1]).ok());
  auto page2 = q->ListDeadLetters(10, ids[1]);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->size(), 3u);
  EXPECT_EQ((*page2)[0].message.id, ids[2]);
  EXPECT_EQ((*page2)[2].message.body, "m4");

  EXPECT_EQ(q->GetDeadLetter(ids[1]).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(q->Redrive(ids[1]).code(), StatusCode::kNotFound);
  EXPECT_EQ(q->ListDeadLetters(0).status().code(),
            StatusCode::kInvalidArgument);

  // The redriven message is back with its id and attributes and a fresh
  // receive count: max_receive_count 1 lets it be received once more.
  auto back = ReceiveAll(*q, 1000);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].id, ids[1]);
  EXPECT_EQ(back[0].attributes.at("n"), "1");
  EXPECT_EQ(back[0].receive_count, 1);
  EXPECT_TRUE(q->Delete(back[0].receipt).ok());

  auto all = q->RedriveAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 4);
  EXPECT_EQ(q->Stats()->dead_letters, 0);
  auto again = ReceiveAll(*q, 1000);
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[0].id, ids[0]);  // send order kept
  EXPECT_EQ(again[3].id, ids[4]);

  env_.AdvanceMs(1000);
  EXPECT_TRUE(ReceiveAll(*q, 1000).empty());
  EXPECT_EQ(*q->PurgeDeadLetters(), 4);
  EXPECT_EQ(*q->PurgeDeadLetters(), 0);
  EXPECT_TRUE(q->ListDeadLetters(10)->empty());
}

TEST_F(SqliteQueueTest, PurgeDeletesInFlightMessagesButNotDeadLetters) {
  auto q = OpenQueue();
  SendMany(*q, 4);
  auto got = q->Receive(2, 10'000);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(q->MoveToDeadLetter((*got)[0].receipt, "x").ok());
  ASSERT_TRUE(q->Send("later", {}, 1000).ok());
  EXPECT_EQ(*q->Purge(), 4);  // 2 visible, 1 in flight, 1 delayed
  EXPECT_EQ(q->Delete((*got)[1].receipt).code(), StatusCode::kNotFound);
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight + stats->delayed, 0);
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->oldest_age_ms, 0);
}

TEST_F(SqliteQueueTest, StatsCountEachStateAndTheOldestAge) {
  auto q = OpenQueue();
  EXPECT_EQ(q->Stats()->oldest_age_ms, 0);
  SendMany(*q, 3);
  env_.AdvanceMs(2'000);
  ASSERT_TRUE(q->Send("delayed", {}, 60'000).ok());
  ASSERT_EQ(q->Receive(1, 10'000)->size(), 1u);
  env_.AdvanceMs(500);
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 2);
  EXPECT_EQ(stats->in_flight, 1);
  EXPECT_EQ(stats->delayed, 1);
  EXPECT_EQ(stats->dead_letters, 0);
  EXPECT_EQ(stats->oldest_age_ms, 2'500);
}

TEST_F(SqliteQueueTest, StateSurvivesReopen) {
  std::string in_flight_receipt;
  {
    auto q = OpenQueue("inputs", 1);
    ASSERT_TRUE(q->Send("dead").ok());
    ASSERT_EQ(ReceiveAll(*q, 1000).size(), 1u);
    env_.AdvanceMs(1000);
    EXPECT_TRUE(ReceiveAll(*q, 1000).empty());  // dead-lettered
    ASSERT_TRUE(q->Send("in flight").ok());
    in_flight_receipt = ReceiveAll(*q, 60'000).at(0).receipt;
    ASSERT_TRUE(q->Send("waiting", {{"a", "b"}}).ok());
  }
  auto q = OpenQueue("inputs", 1);
  auto stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible, 1);
  EXPECT_EQ(stats->in_flight, 1);
  EXPECT_EQ(stats->dead_letters, 1);
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "waiting");
  EXPECT_EQ(got[0].attributes.at("a"), "b");
  EXPECT_TRUE(q->Delete(in_flight_receipt).ok());
  EXPECT_EQ((*q->ListDeadLetters(10))[0].message.body, "dead");
}

TEST_F(SqliteQueueTest, SentMessageSurvivesKill9) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto q = OpenQueue();  // the fake clock: the message is visible to us
    if (q == nullptr || !q->Send("durable").ok()) _exit(1);
    raise(SIGKILL);  // no destructor, no close, no checkpoint
    _exit(2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto q = OpenQueue();
  auto got = ReceiveAll(*q, 1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "durable");
}

TEST_F(SqliteQueueTest, QueuesInOneFileAreSeparate) {
  auto inputs = OpenQueue("inputs", 1);
  auto deliveries = OpenQueue("deliveries", 1);
  ASSERT_TRUE(inputs->Send("i").ok());
  ASSERT_TRUE(deliveries->Send("d").ok());
  auto i = ReceiveAll(*inputs, 1000);
  ASSERT_EQ(i.size(), 1u);
  EXPECT_EQ(i[0].body, "i");
  EXPECT_EQ(deliveries->Delete(i[0].receipt).code(), StatusCode::kNotFound);
  env_.AdvanceMs(1000);
  EXPECT_TRUE(ReceiveAll(*inputs, 1000).empty());  // dead-lettered
  EXPECT_EQ(deliveries->Stats()->dead_letters, 0);
  EXPECT_EQ(*deliveries->Purge(), 1);
  EXPECT_EQ(*inputs->RedriveAll(), 1);
  EXPECT_EQ(inputs->Stats()->visible, 1);
}

TEST_F(SqliteQueueTest, RejectsArgumentsOutsideTheLimits) {
  EXPECT_EQ(SqliteQueue::Open(path_, "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteQueue::Open(path_, "bad name").status().code(),
            StatusCode::kInvalidArgument);
  QueueOptions too_many;
  too_many.max_receive_count = kMaxReceiveCountLimit + 1;
  EXPECT_EQ(SqliteQueue::Open(path_, "q", too_many).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SqliteQueue::Open("/nonexistent/dir/q.db", "q").status().code(),
            StatusCode::kFailedPrecondition);

  auto q = OpenQueue();
  const auto invalid = StatusCode::kInvalidArgument;
  EXPECT_EQ(q->Receive(0, 1000).status().code(), invalid);
  EXPECT_EQ(q->Receive(kMaxReceiveMessages + 1, 1000).status().code(), invalid);
  EXPECT_EQ(q->Receive(1, -1).status().code(), invalid);
  EXPECT_EQ(q->Receive(1, 1000, kMaxWaitMs + 1).status().code(), invalid);
  EXPECT_EQ(q->SendBatch({}).status().code(), invalid);
  EXPECT_EQ(q->SendBatch(std::vector<OutgoingMessage>(kMaxBatchEntries + 1))
                .status()
                .code(),
            invalid);
  EXPECT_EQ(q->Send("x", {{"bad name", "v"}}).status().code(), invalid);
  EXPECT_EQ(q->Send("x", {{"a", "\xc3"}}).status().code(), invalid);
  EXPECT_EQ(q->Send("x", {{"a", "\xed\xa0\x80"}}).status().code(), invalid);
  EXPECT_EQ(q->Send(std::string(kMaxMessageBytes + 1, 'x')).status().code(),
            invalid);
  // A batch with one bad message stores none of them.
  std::vector<OutgoingMessage> mixed(2);
  mixed[1].delay_ms = -1;
  EXPECT_EQ(q->SendBatch(mixed).status().code(), invalid);
  EXPECT_EQ(q->Stats()->visible, 0);
}

TEST_F(SqliteQueueTest, LongPollWakesForASendFromAnyInstance) {
  auto receiver = SqliteQueue::Open(path_, "inputs");  // real clock
  auto sender = SqliteQueue::Open(path_, "inputs");
  ASSERT_TRUE(receiver.ok() && sender.ok());
  for (SqliteQueue* via : {receiver->get(), sender->get()}) {
    const auto start = steady_clock::now();
    std::thread later([via] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      EXPECT_TRUE(via->Send("wake").ok());
    });
    auto got = (*receiver)->Receive(1, 10'000, 10'000);
    later.join();
    ASSERT_TRUE(got.ok());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_TRUE((*receiver)->Delete((*got)[0].receipt).ok());
  }
  const auto start = steady_clock::now();
  auto none = (*receiver)->Receive(1, 1000, 200);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_GE(steady_clock::now() - start, std::chrono::milliseconds(200));
}

// A long visibility means no legitimate redelivery: every message must be
// received exactly once, and never by two receivers at the same time.
constexpr int64_t kLongVisibilityMs = 10 * 60 * 1000;

TEST_F(SqliteQueueTest, ThreadsWithTheirOwnInstancesTakeEachMessageOnce) {
  constexpr int kMessages = 2000;
  std::set<std::string> sent;
  {
    auto q = SqliteQueue::Open(path_, "inputs");
    ASSERT_TRUE(q.ok());
    sent = SendMany(**q, kMessages);
  }
  ASSERT_EQ(sent.size(), static_cast<size_t>(kMessages));

  std::mutex mu;
  std::map<std::string, int> received;  // id -> times received
  std::set<std::string> held;           // received, not yet deleted
  std::atomic<int> errors{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      auto q = SqliteQueue::Open(path_, "inputs");
      if (!q.ok()) {
        ++errors;
        return;
      }
      for (;;) {
        auto got = (*q)->Receive(kMaxReceiveMessages, kLongVisibilityMs);
        if (!got.ok()) {
          ADD_FAILURE() << got.status().ToString();
          ++errors;
          return;
        }
        if (got->empty()) return;  // the rest are held by other threads
        std::vector<std::string> receipts;
        {
          std::lock_guard<std::mutex> lock(mu);
          for (const Message& m : *got) {
            ++received[m.id];
            if (!held.insert(m.id).second) ++errors;  // held twice
            receipts.push_back(m.receipt);
          }
        }
        // One commit (one fsync) per batch keeps 2000 messages fast.
        auto deleted = (*q)->DeleteBatch(receipts);
        if (!deleted.ok()) {
          ADD_FAILURE() << deleted.status().ToString();
          ++errors;
          return;
        }
        for (const Status& st : *deleted) {
          if (!st.ok()) {
            ADD_FAILURE() << st.ToString();
            ++errors;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        for (const Message& m : *got) held.erase(m.id);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(received.size(), sent.size());
  for (const auto& [id, times] : received) {
    EXPECT_EQ(times, 1) << id;
    EXPECT_EQ(sent.count(id), 1u) << id;
  }
  auto q = SqliteQueue::Open(path_, "inputs");
  auto stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->visible + stats->in_flight + stats->delayed, 0);
}

TEST_F(SqliteQueueTest, TwoProcessesTakeEachMessageOnce) {
  constexpr int kMessages = 1000;
  std::set<std::string> sent;
  {
    auto q = SqliteQueue::Open(path_, "inputs");
    ASSERT_TRUE(q.ok());
    sent = SendMany(**q, kMessages);
  }  // closed: a connection must not cross fork()

  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> children;
  for (int c = 0; c < 2; ++c) {
    const std::string out = path_ + ".child" + std::to_string(c);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Both children start together so their receives interleave.
      close(go[1]);
      char byte;
      if (read(go[0], &byte, 1) != 0) _exit(10);
      auto q = SqliteQueue::Open(path_, "inputs");
      if (!q.ok()) _exit(11);
      FILE* f = std::fopen(out.c_str(), "w");
      if (f == nullptr) _exit(12);
      for (;;) {
        auto got = (*q)->Receive(kMaxReceiveMessages, kLongVisibilityMs);
        if (!got.ok()) _exit(13);
        if (got->empty()) break;
        std::vector<std::string> receipts;
        for (const Message& m : *got) {
          std::fprintf(f, "%s\n", m.id.c_str());
          receipts.push_back(m.receipt);
        }
        auto deleted = (*q)->DeleteBatch(receipts);
        if (!deleted.ok()) _exit(14);
        for (const Status& st : *deleted) {
          // kNotFound would mean the other process took it meanwhile.
          if (!st.ok()) _exit(15);
        }
      }
      _exit(std::fclose(f) == 0 ? 0 : 16);
    }
    children.push_back(pid);
  }
  close(go[0]);
  close(go[1]);  // go

  std::map<std::string, int> received;
  std::vector<size_t> per_child;
  for (int c = 0; c < 2; ++c) {
    int status = 0;
    ASSERT_EQ(waitpid(children[c], &status, 0), children[c]);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "child " << c;
    const std::string out = path_ + ".child" + std::to_string(c);
    std::ifstream in(out);
    std::string id;
    size_t n = 0;
    while (std::getline(in, id)) {
      ++received[id];
      ++n;
    }
    per_child.push_back(n);
    fs::remove(out);
  }
  EXPECT_EQ(received.size(), sent.size());
  for (const auto& [id, times] : received) {
    EXPECT_EQ(times, 1) << id;
    EXPECT_EQ(sent.count(id), 1u) << id;
  }
  // Not a correctness requirement, but both must have taken part for the
  // test to mean anything.
  std::printf("messages per process: %zu, %zu\n", per_child[0], per_child[1]);
}

}  // namespace
}  // namespace cbpipe
