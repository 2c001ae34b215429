#include "common/env.h"

#include <gtest/gtest.h>

#include <atomic>

namespace cbpipe {
namespace {

TEST(EnvTest, FakeSleepAdvancesTheClockAndKeepsTheWaits) {
  FakeEnv env(1000);
  EXPECT_TRUE(env.SleepFor(2.5, nullptr));
  EXPECT_EQ(env.NowMs(), 3500);
  EXPECT_EQ(env.sleeps(), std::vector<double>{2.5});
}

TEST(EnvTest, FakeSleepReturnsFalseWhenStopped) {
  FakeEnv env(0);
  std::atomic<bool> stop{true};
  EXPECT_FALSE(env.SleepFor(1, &stop));
}

TEST(EnvTest, FakeRandomReturnsTheGivenValues) {
  FakeEnv env;
  EXPECT_EQ(env.Random01(), 0.5);
  env.SetRandom({0.1, 0.9});
  EXPECT_EQ(env.Random01(), 0.1);
  EXPECT_EQ(env.Random01(), 0.9);
}

TEST(EnvTest, NowSecondsRoundsDown) {
  FakeEnv env(-1);
  EXPECT_EQ(env.NowSeconds(), -1);
  env.SetNowMs(1999);
  EXPECT_EQ(env.NowSeconds(), 1);
}

TEST(EnvTest, DefaultSleepStopsEarly) {
  std::atomic<bool> stop{true};
  EXPECT_FALSE(Env::Default()->SleepFor(10, &stop));
  const double r = Env::Default()->Random01();
  EXPECT_GE(r, 0.0);
  EXPECT_LT(r, 1.0);
}

}  // namespace
}  // namespace cbpipe
