#include "common/env.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace cbpipe {
namespace {

// The contract, for every Env.
void CheckContract(Env* env) {
  const int64_t before = env->NowMs();
  EXPECT_GT(before, 1'600'000'000'000);  // after 2020
  EXPECT_EQ(env->NowSeconds(), env->NowMs() / 1000);
  for (int i = 0; i < 1000; ++i) {
    const double r = env->Random01();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
  }
  EXPECT_TRUE(env->SleepFor(0, nullptr));
  EXPECT_TRUE(env->SleepFor(-1, nullptr));
  std::atomic<bool> stop{true};
  EXPECT_FALSE(env->SleepFor(10, &stop));
  EXPECT_TRUE(env->SleepFor(0.01, nullptr));
  EXPECT_GE(env->NowMs(), before);
}

TEST(EnvTest, DefaultMeetsTheContract) { CheckContract(Env::Default()); }
TEST(EnvTest, FakeMeetsTheContract) {
  FakeEnv fake;
  fake.SetRandom({0.0, 0.25, 0.999});
  CheckContract(&fake);
}

TEST(EnvTest, DefaultSleepEndsSoonAfterStop) {
  std::atomic<bool> stop{false};
  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  EXPECT_FALSE(Env::Default()->SleepFor(30, &stop));
  stopper.join();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(2));
  EXPECT_GE(waited, std::chrono::milliseconds(90));
}

TEST(EnvTest, DefaultSleepWaitsTheWholeTime) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Env::Default()->SleepFor(0.12, nullptr));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(120));
}

TEST(EnvTest, FakeClockMovesOnlyWhenTold) {
  FakeEnv fake(5'000);
  EXPECT_EQ(fake.NowMs(), 5'000);
  EXPECT_TRUE(fake.SleepFor(1.5, nullptr));
  EXPECT_EQ(fake.NowMs(), 6'500);
  fake.AdvanceMs(-7'000);
  EXPECT_EQ(fake.NowMs(), -500);
  EXPECT_EQ(fake.NowSeconds(), -1);  // rounded down before 1970
  fake.SetNowMs(42);
  EXPECT_EQ(fake.NowMs(), 42);
  EXPECT_EQ(fake.sleeps(), std::vector<double>{1.5});
  EXPECT_EQ(fake.Random01(), 0.5);
  fake.SetRandom({0.1, 0.2});
  EXPECT_EQ(fake.Random01(), 0.1);
  EXPECT_EQ(fake.Random01(), 0.2);
  EXPECT_EQ(fake.Random01(), 0.1);
}

}  // namespace
}  // namespace cbpipe
