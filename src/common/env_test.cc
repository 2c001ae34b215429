#include "common/env.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace cbpipe {
namespace {

TEST(EnvTest, DefaultSleepReturnsEarlyWhenStopped) {
  std::atomic<bool> stop{false};
  const auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  EXPECT_FALSE(Env::Default()->SleepFor(30, &stop));
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(Env::Default()->SleepFor(1, &stop));  // already stopped
}

TEST(EnvTest, DefaultSleepWaitsTheWholeTime) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Env::Default()->SleepFor(0.12, nullptr));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(120));
  EXPECT_TRUE(Env::Default()->SleepFor(-1, nullptr));
  const double r = Env::Default()->Random01();
  EXPECT_GE(r, 0.0);
  EXPECT_LT(r, 1.0);
}

TEST(EnvTest, FakeEnvAdvancesOnlyWhenTold) {
  FakeEnv env(1'000);
  EXPECT_EQ(env.NowMs(), 1'000);
  EXPECT_TRUE(env.SleepFor(2.5, nullptr));
  EXPECT_EQ(env.NowMs(), 3'500);
  env.AdvanceMs(500);
  EXPECT_EQ(env.NowSeconds(), 4);
  std::atomic<bool> stop{true};
  EXPECT_FALSE(env.SleepFor(10, &stop));
  EXPECT_EQ(env.NowMs(), 4'000);
  EXPECT_EQ(env.sleeps(), std::vector<double>{2.5});
  env.SetRandom({0.25, 0.75});
  EXPECT_EQ(env.Random01(), 0.25);
  EXPECT_EQ(env.Random01(), 0.75);
  EXPECT_EQ(env.Random01(), 0.25);
}

}  // namespace
}  // namespace cbpipe
