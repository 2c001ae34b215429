#include "common/env.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace cbpipe {
namespace {

TEST(FakeEnvTest, SleepAdvancesTheClockAndIsRecorded) {
  FakeEnv env(1'000);
  EXPECT_TRUE(env.SleepFor(2.5, nullptr));
  EXPECT_EQ(env.NowMs(), 3'500);
  EXPECT_EQ(env.NowSeconds(), 3);
  EXPECT_EQ(env.sleeps(), std::vector<double>({2.5}));
}

TEST(FakeEnvTest, TheSleepHookRunsAfterTheClockMoved) {
  FakeEnv env(0);
  std::vector<int64_t> seen;
  env.SetOnSleep([&](double s) {
    EXPECT_EQ(s, 1.5);
    seen.push_back(env.NowMs());
  });
  env.SleepFor(1.5, nullptr);
  EXPECT_EQ(seen, std::vector<int64_t>({1'500}));
}

TEST(FakeEnvTest, StopSetBeforeTheWaitReturnsFalseWithoutWaiting) {
  FakeEnv env(1'000);
  std::atomic<bool> stop{true};
  EXPECT_FALSE(env.SleepFor(10, &stop));
  EXPECT_EQ(env.NowMs(), 1'000);
}

TEST(FakeEnvTest, RandomValuesComeInTurn) {
  FakeEnv env;
  EXPECT_EQ(env.Random01(), 0.5);
  env.SetRandom({0.25, 0.75});
  EXPECT_EQ(env.Random01(), 0.25);
  EXPECT_EQ(env.Random01(), 0.75);
  EXPECT_EQ(env.Random01(), 0.25);
}

TEST(EnvTest, NowSecondsRoundsDownBefore1970) {
  FakeEnv env(-1);
  EXPECT_EQ(env.NowSeconds(), -1);
  env.SetNowMs(-1000);
  EXPECT_EQ(env.NowSeconds(), -1);
  env.SetNowMs(-1001);
  EXPECT_EQ(env.NowSeconds(), -2);
}

TEST(EnvTest, RealSleepEndsSoonAfterStop) {
  std::atomic<bool> stop{false};
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  const auto start = std::chrono::steady_clock::now();
  const bool slept = Env::Default()->SleepFor(30, &stop);
  const auto waited = std::chrono::steady_clock::now() - start;
  setter.join();
  EXPECT_FALSE(slept);
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST(EnvTest, RealRandomIsInRange) {
  for (int i = 0; i < 1000; ++i) {
    const double v = Env::Default()->Random01();
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
}

}  // namespace
}  // namespace cbpipe
