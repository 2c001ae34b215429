#include "deliver/ledger.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::path(::testing::TempDir()) /
             ("ledger_" + std::to_string(::getpid()) + ".db"))
                .string();
    Cleanup();
  }
  void TearDown() override { Cleanup(); }
  void Cleanup() {
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(path_ + suffix);
  }
  std::string path_;
};

TEST_F(LedgerTest, IntentThenDeliveredSurvivesReopen) {
  {
    auto ledger = DeliveryLedger::Open(path_);
    ASSERT_TRUE(ledger.ok());
    LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false};
    ASSERT_TRUE((*ledger)->RecordIntent(e).ok());
    EXPECT_EQ((*(*ledger)->Find("visa", "f.csv"))->state, "intent");
    ASSERT_TRUE((*ledger)->MarkDelivered(e).ok());
    // A later intent for the same content keeps it delivered.
    ASSERT_TRUE((*ledger)->RecordIntent(e).ok());
  }
  auto ledger = DeliveryLedger::Open(path_);
  ASSERT_TRUE(ledger.ok());
  auto found = (*ledger)->Find("visa", "f.csv");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->state, "delivered");
  EXPECT_EQ((*found)->size, 10u);
  EXPECT_EQ((*found)->sha256, "abc");
  EXPECT_FALSE((*(*ledger)->Find("visa", "other.csv")).has_value());
  EXPECT_FALSE((*(*ledger)->Find("amex", "f.csv")).has_value());
  EXPECT_EQ(*(*ledger)->CountDelivered(), 1);
}

// The ledger names delivered files (record data): 0640 like the batches,
// its WAL and shared-memory files too, also when an older version left a
// wider mode behind; and opening it twice in one process keeps SQLite's
// locks (a second connection sees the first one's writes).
TEST_F(LedgerTest, FilesAreAsPrivateAsTheBatches) {
  const mode_t old_umask = ::umask(022);
  auto mode = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0u;
  };
  {
    auto ledger = DeliveryLedger::Open(path_);
    ASSERT_TRUE(ledger.ok());
    LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false};
    ASSERT_TRUE((*ledger)->RecordIntent(e).ok());
    auto second = DeliveryLedger::Open(path_);
    ASSERT_TRUE(second.ok());
    ASSERT_TRUE((*(*second)->Find("visa", "f.csv")).has_value());
    for (const char* suffix : {"", "-wal", "-shm"}) {
      EXPECT_EQ(mode(path_ + suffix), 0640u) << suffix;
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(path_ + suffix)) ::chmod((path_ + suffix).c_str(), 0666);
  }
  ASSERT_TRUE(DeliveryLedger::Open(path_).ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(path_ + suffix)) {
      EXPECT_EQ(mode(path_ + suffix), 0640u) << suffix;
    }
  }
  ::umask(old_umask);
}

TEST_F(LedgerTest, FailuresKeepEveryAttempt) {
  auto ledger = DeliveryLedger::Open(path_);
  ASSERT_TRUE(ledger.ok());
  LedgerEntry e{"mc", "f.csv", 1, "x", "b1", "", 0, false};
  std::vector<AttemptRecord> attempts = {
      {1, "transient", "UNAVAILABLE", "connect refused"},
      {2, "transient", "UNAVAILABLE", "connect refused"}};
  EXPECT_TRUE((*ledger)->RecordFailure(e, attempts).ok());
  EXPECT_EQ(*(*ledger)->CountDelivered(), 0);
}

TEST_F(LedgerTest, ConcurrentWritersFromThreads) {
  auto ledger = DeliveryLedger::Open(path_);
  ASSERT_TRUE(ledger.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        LedgerEntry e{"d" + std::to_string(t),
                      std::to_string(i),
                      1,
                      "h",
                      "b",
                      "",
                      0,
                      false};
        EXPECT_TRUE((*ledger)->MarkDelivered(e).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(*(*ledger)->CountDelivered(), 200);
}

TEST_F(LedgerTest, UnopenablePathIsAClearError) {
  auto ledger = DeliveryLedger::Open("/nonexistent-dir/x/ledger.db");
  ASSERT_FALSE(ledger.ok());
  EXPECT_NE(ledger.status().message().find("/nonexistent-dir"),
            std::string::npos);
}

}  // namespace
}  // namespace cbpipe
