// Internal to notify/: the delivery machinery shared by the webhook and
// email notifiers. A bounded queue, one background thread, and the retry
// loop of deliver/ (RetryPolicy, Step Functions semantics).
//
//   AsyncSender sender(options, [&](const Event& e, std::string_view id,
//                                   const CancelFlag& stop) {
//     return PostOnce(e, id, stop);  // one attempt; Status says what failed
//   });
//   sender.Enqueue(event);       // never blocks on I/O
//   sender.Flush(std::chrono::seconds(5));
//
// Queue full: the OLDEST queued event is dropped (the newest says most
// about the state of the run) and counted in stats().dropped.
// Retries: an attempt whose Status IsTransient() is retried after
// RetryDelaySeconds(policy, attempt, random) until max_attempts attempts
// have been made; any other error gives up at once. Each give-up and each
// batch of drops is reported through `log`.
// Destruction: stops the thread, cancels the attempt in flight (the send
// function sees `stop` set and should return quickly), and counts the events
// still queued as dropped. Flush first to deliver them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/retry.h"
#include "common/status.h"
#include "notify/notifier.h"

namespace cbpipe {

using CancelFlag = std::atomic<bool>;

struct AsyncSenderOptions {
  std::string name;  // for log lines: "webhook https://example.com/hook"
  RetryPolicy retry;
  size_t queue_capacity = 1000;
  // Diagnostics (give-ups, drops); never given a secret. May be empty.
  std::function<void(std::string_view)> log;
  // [0, 1) for jitter; empty: a thread-local PRNG.
  std::function<double()> random01;
};

class AsyncSender {
 public:
  // One attempt. `delivery_id` (32 hex) is fixed per queued event, the same
  // on every retry, for receivers to drop duplicates. `stop` is set when the
  // sender is being destroyed: return soon.
  using SendFn = std::function<Status(
      const Event&, std::string_view delivery_id, const CancelFlag& stop)>;

  AsyncSender(AsyncSenderOptions options, SendFn send);
  ~AsyncSender();
  AsyncSender(const AsyncSender&) = delete;
  AsyncSender& operator=(const AsyncSender&) = delete;

  // Queues a copy of `event`. Takes a mutex held only for queue operations.
  void Enqueue(const Event& event);
  // Waits until the queue is empty and no event is in flight (so every
  // event queued before the call is delivered or given up), or `timeout`:
  // kDeadlineExceeded.
  Status Flush(std::chrono::milliseconds timeout);
  NotifierStats stats() const;

 private:
  void Run();
  // Attempts `event` until delivered, given up, or stopped.
  struct Item {
    Event event;
    std::string delivery_id;
  };
  void Deliver(const Item& item);
  void Log(const std::string& line);

  const AsyncSenderOptions options_;
  const SendFn send_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // queue changed, work done, or stopping
  std::deque<Item> queue_;
  bool busy_ = false;  // an event is out of the queue, being delivered
  uint64_t dropped_reported_ = 0;  // stats_.dropped when last logged
  NotifierStats stats_;
  CancelFlag stop_{false};
  std::thread thread_;
};

}  // namespace cbpipe
