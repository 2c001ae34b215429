#include "notify/async_sender.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace cbpipe {
namespace {

using std::chrono::milliseconds;

RetryPolicy FastRetry(int max_attempts) {
  RetryPolicy p;
  p.interval_seconds = 0.001;
  p.backoff_rate = 2.0;
  p.max_attempts = max_attempts;
  p.max_delay_seconds = 0.01;
  p.full_jitter = false;
  return p;
}

Event Named(const std::string& run_id) {
  Event e;
  e.type = "batch.failed";
  e.run_id = run_id;
  return e;
}

// Records every attempt; answers from a script of Statuses (then OK).
class ScriptedSend {
 public:
  explicit ScriptedSend(std::vector<Status> script = {})
      : script_(std::move(script)) {}
  AsyncSender::SendFn Fn() {
    return [this](const Event& e, std::string_view id, const CancelFlag&) {
      std::lock_guard<std::mutex> lock(mu_);
      runs_.push_back(e.run_id);
      ids_.emplace_back(id);
      size_t n = runs_.size() - 1;
      return n < script_.size() ? script_[n] : OkStatus();
    };
  }
  std::vector<std::string> runs() {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }
  std::vector<std::string> ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return ids_;
  }

 private:
  std::mutex mu_;
  std::vector<Status> script_;
  std::vector<std::string> runs_, ids_;
};

AsyncSenderOptions Options(int max_attempts, std::vector<std::string>* log) {
  AsyncSenderOptions o;
  o.name = "test";
  o.retry = FastRetry(max_attempts);
  o.queue_capacity = 10;
  if (log != nullptr) {
    o.log = [log](std::string_view l) { log->emplace_back(l); };
  }
  return o;
}

TEST(RetryDelayTest, StepFunctionsSemantics) {
  RetryPolicy p;
  p.interval_seconds = 1.0;
  p.backoff_rate = 2.0;
  p.max_delay_seconds = 5.0;
  p.full_jitter = false;
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 1, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 2, 0.5), 2.0);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 3, 0.5), 4.0);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 4, 0.5), 5.0);  // capped
  p.full_jitter = true;
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 3, 0.25), 1.0);
}

TEST(AsyncSenderTest, RetriesTransientErrorsWithTheSameDeliveryId) {
  ScriptedSend send({UnavailableError("503"), DeadlineExceededError("slow")});
  AsyncSender sender(Options(5, nullptr), send.Fn());
  sender.Enqueue(Named("r1"));
  ASSERT_TRUE(sender.Flush(milliseconds(2000)).ok());
  EXPECT_EQ(send.runs(), (std::vector<std::string>{"r1", "r1", "r1"}));
  auto ids = send.ids();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0].size(), 32u);
  EXPECT_EQ(ids[1], ids[0]);
  EXPECT_EQ(ids[2], ids[0]);
  NotifierStats s = sender.stats();
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(s.attempts, 3u);
  EXPECT_EQ(s.failed, 0u);
}

TEST(AsyncSenderTest, PermanentErrorIsNotRetried) {
  std::vector<std::string> log;
  ScriptedSend send({FailedPreconditionError("HTTP 400")});
  AsyncSender sender(Options(5, &log), send.Fn());
  sender.Enqueue(Named("r1"));
  sender.Enqueue(Named("r2"));
  ASSERT_TRUE(sender.Flush(milliseconds(2000)).ok());
  EXPECT_EQ(send.runs(), (std::vector<std::string>{"r1", "r2"}));
  NotifierStats s = sender.stats();
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.delivered, 1u);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0],
            "test: gave up on batch.failed (run r1) after 1 attempt(s): "
            "FAILED_PRECONDITION: HTTP 400");
}

TEST(AsyncSenderTest, GivesUpAfterMaxAttempts) {
  ScriptedSend send(std::vector<Status>(10, UnavailableError("down")));
  AsyncSender sender(Options(3, nullptr), send.Fn());
  sender.Enqueue(Named("r1"));
  ASSERT_TRUE(sender.Flush(milliseconds(2000)).ok());
  EXPECT_EQ(send.runs().size(), 3u);
  EXPECT_EQ(sender.stats().failed, 1u);
}

TEST(AsyncSenderTest, AThrowingSendIsAPermanentFailure) {
  AsyncSender sender(
      Options(3, nullptr),
      [](const Event&, std::string_view, const CancelFlag&) -> Status {
        throw std::runtime_error("boom");
      });
  sender.Enqueue(Named("r1"));
  ASSERT_TRUE(sender.Flush(milliseconds(2000)).ok());
  EXPECT_EQ(sender.stats().failed, 1u);
  EXPECT_EQ(sender.stats().attempts, 1u);
}

// A send that blocks until released (or stopped).
class GatedSend {
 public:
  AsyncSender::SendFn Fn() {
    return [this](const Event& e, std::string_view, const CancelFlag& stop) {
      std::unique_lock<std::mutex> lock(mu_);
      runs_.push_back(e.run_id);
      cv_.notify_all();
      while (!open_ && !stop) cv_.wait_for(lock, milliseconds(5));
      return stop ? AbortedError("stopped") : OkStatus();
    };
  }
  void WaitForCalls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, milliseconds(2000), [&] { return runs_.size() >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
  }
  std::vector<std::string> runs() {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::vector<std::string> runs_;
};

TEST(AsyncSenderTest, AFullQueueDropsTheOldest) {
  std::vector<std::string> log;
  GatedSend send;
  AsyncSenderOptions o = Options(3, &log);
  o.queue_capacity = 2;
  AsyncSender sender(o, send.Fn());
  sender.Enqueue(Named("e1"));
  send.WaitForCalls(1);  // e1 is in flight, out of the queue
  for (const char* r : {"e2", "e3", "e4", "e5"}) sender.Enqueue(Named(r));
  NotifierStats s = sender.stats();
  EXPECT_EQ(s.accepted, 5u);
  EXPECT_EQ(s.dropped, 2u);
  EXPECT_EQ(s.queued, 2u);

  EXPECT_EQ(sender.Flush(milliseconds(50)).code(),
            StatusCode::kDeadlineExceeded);
  send.Open();
  ASSERT_TRUE(sender.Flush(milliseconds(2000)).ok());
  EXPECT_EQ(send.runs(), (std::vector<std::string>{"e1", "e4", "e5"}));
  EXPECT_EQ(sender.stats().delivered, 3u);
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log[0], "test: queue full (2): dropped 2 oldest event(s)");
}

TEST(AsyncSenderTest, DestructionCancelsTheSendInFlightAndDropsTheQueue) {
  GatedSend send;
  auto sender = std::make_unique<AsyncSender>(Options(3, nullptr), send.Fn());
  sender->Enqueue(Named("e1"));
  send.WaitForCalls(1);
  sender->Enqueue(Named("e2"));
  auto start = std::chrono::steady_clock::now();
  sender.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
  EXPECT_EQ(send.runs(), std::vector<std::string>{"e1"});
}

TEST(AsyncSenderTest, EnqueueNeverWaitsForTheSend) {
  GatedSend send;
  AsyncSender sender(Options(3, nullptr), send.Fn());
  sender.Enqueue(Named("e1"));
  send.WaitForCalls(1);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) sender.Enqueue(Named("x"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(10));
  send.Open();
}

}  // namespace
}  // namespace cbpipe
