#include "common/env.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

namespace cbpipe {
namespace {

class RealEnv : public Env {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  bool SleepFor(double seconds, const std::atomic<bool>* stop) override {
    if (stop != nullptr && stop->load()) return false;
    if (!(seconds > 0)) return true;  // also NaN
    using Clock = std::chrono::steady_clock;
    const auto until =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(
                               std::min(seconds, 365.0 * 86400)));
    constexpr auto kSlice = std::chrono::milliseconds(50);
    for (;;) {
      if (stop != nullptr && stop->load()) return false;
      const auto now = Clock::now();
      if (now >= until) return true;
      std::this_thread::sleep_for(
          std::min<Clock::duration>(until - now, kSlice));
    }
  }

  double Random01() override {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(gen);
  }
};

}  // namespace

int64_t Env::NowSeconds() {
  const int64_t ms = NowMs();
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

Env* Env::Default() {
  static RealEnv* env = new RealEnv;  // never destroyed: used until exit
  return env;
}

int64_t FakeEnv::NowMs() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_ms_;
}

bool FakeEnv::SleepFor(double seconds, const std::atomic<bool>* stop) {
  if (stop != nullptr && stop->load()) return false;
  const double s = seconds > 0 ? seconds : 0;
  std::function<void(double)> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sleeps_.push_back(s);
    now_ms_ += static_cast<int64_t>(s * 1000);
    hook = on_sleep_;
  }
  if (hook) hook(s);
  return true;
}

double FakeEnv::Random01() {
  std::lock_guard<std::mutex> lock(mu_);
  if (random_.empty()) return 0.5;
  const double v = random_[next_random_ % random_.size()];
  ++next_random_;
  return v;
}

void FakeEnv::AdvanceMs(int64_t ms) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ms_ += ms;
}

void FakeEnv::SetNowMs(int64_t ms) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ms_ = ms;
}

void FakeEnv::SetRandom(std::vector<double> values) {
  std::lock_guard<std::mutex> lock(mu_);
  random_ = std::move(values);
  next_random_ = 0;
}

void FakeEnv::SetOnSleep(std::function<void(double seconds)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  on_sleep_ = std::move(hook);
}

std::vector<double> FakeEnv::sleeps() {
  std::lock_guard<std::mutex> lock(mu_);
  return sleeps_;
}

}  // namespace cbpipe
