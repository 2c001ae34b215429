// The Env port: the one way code reads the clock, waits and draws random
// numbers, so tests run on a clock they control and a stop request cuts
// every wait short.
//
//   Env* env = Env::Default();                  // the real world
//   int64_t started = env->NowMs();
//   if (!env->SleepFor(2.5, &stop)) return;     // stop was set: give up
//   double jitter = env->Random01();
//
//   FakeEnv fake(1'700'000'000'000);            // tests: a manual clock
//   fake.SleepFor(3, nullptr);                  // returns at once, clock +3 s
//
// Contract (every adapter):
// - NowMs: Unix epoch milliseconds. The real clock may step; nothing may
//   rely on it never going back.
// - SleepFor(seconds, stop): waits `seconds` (<= 0: not at all) unless
//   `stop` (may be null) becomes true first; returns false when it returned
//   because of `stop` (checked at least every 50 ms by the real Env), true
//   when the whole wait passed.
// - Random01: uniform in [0, 1).
// Thread safety: every method may be called from several threads at once.
// Ownership: Env::Default() is never destroyed; other Envs are owned by
// whoever made them and must outlive their users.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

namespace cbpipe {

class Env {
 public:
  virtual ~Env() = default;
  virtual int64_t NowMs() = 0;
  virtual bool SleepFor(double seconds, const std::atomic<bool>* stop) = 0;
  virtual double Random01() = 0;

  // Epoch seconds, rounded down (also before 1970).
  int64_t NowSeconds();

  // The system clock, real sleeps and a per-thread random generator.
  static Env* Default();
};

// A clock that only moves when told. SleepFor returns at once (false when
// `stop` is already set) and advances the clock by the wait; every wait is
// kept in sleeps(), and the hook given to SetOnSleep (if any) runs after
// it, outside the lock (a test's way to act "during" a wait). Random01
// returns the values given to SetRandom in turn (0.5 when none), so jitter
// is predictable.
class FakeEnv : public Env {
 public:
  explicit FakeEnv(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}

  int64_t NowMs() override;
  bool SleepFor(double seconds, const std::atomic<bool>* stop) override;
  double Random01() override;

  void AdvanceMs(int64_t ms);
  void SetNowMs(int64_t ms);
  void SetRandom(std::vector<double> values);
  void SetOnSleep(std::function<void(double seconds)> hook);
  std::vector<double> sleeps();

 private:
  std::mutex mu_;
  int64_t now_ms_;
  std::vector<double> sleeps_;
  std::vector<double> random_;
  std::function<void(double)> on_sleep_;
  size_t next_random_ = 0;
};

}  // namespace cbpipe
