#include "notify/async_sender.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

namespace cbpipe {
namespace {

std::mt19937_64& ThreadRng() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

double ThreadLocalRandom01() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(ThreadRng());
}

std::string NewDeliveryId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 2; ++i) {
    uint64_t r = ThreadRng()();
    for (int k = 0; k < 16; ++k, r >>= 4) id.push_back(kHex[r & 0xf]);
  }
  return id;
}

std::string Describe(const Event& e) {
  std::string s = e.type.empty() ? std::string("(untyped event)") : e.type;
  s += " (run " + (e.run_id.empty() ? std::string("-") : e.run_id);
  if (!e.batch_id.empty()) s += ", batch " + e.batch_id;
  s += ")";
  return s;
}

}  // namespace

AsyncSender::AsyncSender(AsyncSenderOptions options, SendFn send)
    : options_(std::move(options)), send_(std::move(send)) {
  thread_ = std::thread([this] { Run(); });
}

AsyncSender::~AsyncSender() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AsyncSender::Enqueue(const Event& event) {
  try {
    Item item{event, NewDeliveryId()};  // allocate outside the lock
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) {
        ++stats_.dropped;
        return;
      }
      size_t capacity = std::max<size_t>(1, options_.queue_capacity);
      while (queue_.size() >= capacity) {
        queue_.pop_front();
        ++stats_.dropped;
      }
      queue_.push_back(std::move(item));
      ++stats_.accepted;
    }
    cv_.notify_all();
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.dropped;
  }
}

Status AsyncSender::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  bool idle =
      cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
  if (idle) return OkStatus();
  return DeadlineExceededError(options_.name + ": " +
                               std::to_string(queue_.size() + (busy_ ? 1 : 0)) +
                               " event(s) not yet delivered after " +
                               std::to_string(timeout.count()) + " ms");
}

NotifierStats AsyncSender::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  NotifierStats s = stats_;
  s.queued = queue_.size();
  return s;
}

void AsyncSender::Log(const std::string& line) {
  if (!options_.log) return;
  try {
    options_.log(line);
  } catch (...) {
    // A broken log sink must not stop delivery.
  }
}

void AsyncSender::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    uint64_t newly_dropped = stats_.dropped - dropped_reported_;
    dropped_reported_ = stats_.dropped;
    lock.unlock();
    if (newly_dropped > 0) {
      Log(options_.name + ": queue full (" +
          std::to_string(options_.queue_capacity) + "): dropped " +
          std::to_string(newly_dropped) + " oldest event(s)");
    }
    Deliver(item);
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
  stats_.dropped += queue_.size();
  queue_.clear();
  cv_.notify_all();
}

void AsyncSender::Deliver(const Item& item) {
  const int max_attempts = std::max(1, options_.retry.max_attempts);
  for (int attempt = 1;; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.attempts;
    }
    Status status;
    try {
      status = send_(item.event, item.delivery_id, stop_);
    } catch (...) {
      status = InternalError("unexpected exception while sending");
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (status.ok()) {
      ++stats_.delivered;
      return;
    }
    if (stop_) {
      ++stats_.dropped;
      return;
    }
    if (!status.IsTransient() || attempt >= max_attempts) {
      ++stats_.failed;
      lock.unlock();
      Log(options_.name + ": gave up on " + Describe(item.event) + " after " +
          std::to_string(attempt) + " attempt(s): " + status.ToString());
      return;
    }
    double r = options_.random01 ? options_.random01() : ThreadLocalRandom01();
    auto delay = std::chrono::duration<double>(
        RetryDelaySeconds(options_.retry, attempt, r));
    if (cv_.wait_for(lock, delay, [&] { return stop_.load(); })) {
      ++stats_.dropped;
      return;
    }
  }
}

}  // namespace cbpipe
