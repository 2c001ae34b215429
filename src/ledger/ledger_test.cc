// The DeliveryLedger contract (ledger/ledger.h), one suite run against
// every adapter; SQLite-only behaviour (files, schema upgrades) at the end.
#include "ledger/ledger.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "aws/dynamodb_test_util.h"
#include "common/env.h"
#include "common/port_test_util.h"
#include "ledger/dynamodb_ledger.h"
#include "ledger/in_memory_ledger.h"
#include "ledger/sqlite_ledger.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kStart = 1'700'000'000'000;

template <typename Adapter>
class LedgerContract : public ::testing::Test {
 protected:
  void SetUp() override { ledger_ = adapter_.Open(&env_); }

  std::optional<LedgerEntry> Find(const std::string& dest,
                                  const std::string& name) {
    auto found = ledger_->Find(dest, name);
    EXPECT_TRUE(found.ok()) << found.status().ToString();
    return found.ok() ? *found : std::nullopt;
  }
  // CountDelivered, or -1 (a failed check, not a crash) when it errs: a
  // loaded DynamoDB on moto may answer an error after its retries.
  int64_t Delivered() {
    auto n = ledger_->CountDelivered();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }
  bool Claim(const std::string& name, const std::string& owner, int64_t lease) {
    auto got = ledger_->ClaimDelivery("visa", name, owner, lease);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() && *got;
  }
  bool Renew(const std::string& name, const std::string& owner, int64_t lease) {
    auto got = ledger_->RenewDeliveryClaim("visa", name, owner, lease);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    return got.ok() && *got;
  }

  FakeEnv env_{kStart};
  Adapter adapter_;
  std::unique_ptr<DeliveryLedger> ledger_;
};

// The embedded adapters here (ledger_test); DynamoDB on moto in
// ledger_dynamodb_test, the same file built with CBPIPE_CONTRACT_DYNAMODB.
#ifdef CBPIPE_CONTRACT_DYNAMODB
using Adapters = ::testing::Types<
    DynamoDbAdapterFor<DeliveryLedger, DynamoDbDeliveryLedger>>;
#else
using Adapters = ::testing::Types<
    SqliteAdapterFor<DeliveryLedger, SqliteDeliveryLedger>,
    InMemoryAdapterFor<DeliveryLedger, InMemoryDeliveryLedger>>;
#endif
TYPED_TEST_SUITE(LedgerContract, Adapters, AdapterName);

TYPED_TEST(LedgerContract, IntentThenDeliveredKeepsEveryField) {
  DeliveryLedger& l = *this->ledger_;
  LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false, ".f.tmp"};
  ASSERT_TRUE(l.RecordIntent(e).ok());
  auto intent = this->Find("visa", "f.csv");
  ASSERT_TRUE(intent.has_value());
  EXPECT_EQ(intent->state, "intent");
  EXPECT_EQ(intent->temp_name, ".f.tmp");
  EXPECT_EQ(intent->size, 10u);
  EXPECT_EQ(intent->sha256, "abc");
  EXPECT_EQ(intent->batch_id, "b1");
  EXPECT_EQ(intent->updated_at, 5);
  EXPECT_FALSE(intent->replay);
  EXPECT_EQ(this->Delivered(), 0);

  e.replay = true;
  e.updated_at = 0;  // now
  ASSERT_TRUE(l.MarkDelivered(e).ok());
  auto delivered = this->Find("visa", "f.csv");
  ASSERT_TRUE(delivered.has_value());
  EXPECT_EQ(delivered->state, "delivered");
  EXPECT_EQ(delivered->temp_name, "");  // nothing left to clean up
  EXPECT_TRUE(delivered->replay);
  EXPECT_EQ(delivered->updated_at, kStart / 1000);
  EXPECT_EQ(this->Delivered(), 1);
  // Keyed by destination and name.
  EXPECT_FALSE(this->Find("visa", "other.csv").has_value());
  EXPECT_FALSE(this->Find("amex", "f.csv").has_value());
}

TYPED_TEST(LedgerContract, AnIntentNeverDowngradesTheSameContent) {
  DeliveryLedger& l = *this->ledger_;
  LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false};
  ASSERT_TRUE(l.MarkDelivered(e).ok());
  ASSERT_TRUE(l.RecordIntent(e).ok());
  EXPECT_EQ(this->Find("visa", "f.csv")->state, "delivered");
  // Other content under the same name: the intent is recorded.
  e.sha256 = "def";
  e.size = 11;
  ASSERT_TRUE(l.RecordIntent(e).ok());
  auto found = this->Find("visa", "f.csv");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state, "intent");
  EXPECT_EQ(found->sha256, "def");
  EXPECT_EQ(found->size, 11u);
  EXPECT_EQ(this->Delivered(), 0);
}

TYPED_TEST(LedgerContract, FailuresKeepEveryAttemptInOrder) {
  DeliveryLedger& l = *this->ledger_;
  LedgerEntry e{"mc", "f.csv", 1, "x", "b1", "", 0, false};
  ASSERT_TRUE(l.RecordFailure(e, {{1, "transient", "UNAVAILABLE", "refused"},
                                  {2, "permanent", "NOT_FOUND", "no dir"}})
                  .ok());
  ASSERT_TRUE(
      l.RecordFailure(e, {{3, "transient", "UNAVAILABLE", "again"}}).ok());
  auto attempts = l.FailedAttempts("mc", "f.csv");
  ASSERT_TRUE(attempts.ok()) << attempts.status().ToString();
  ASSERT_EQ(attempts->size(), 3u);
  EXPECT_EQ((*attempts)[0].at, 1);
  EXPECT_EQ((*attempts)[0].error_class, "transient");
  EXPECT_EQ((*attempts)[0].code, "UNAVAILABLE");
  EXPECT_EQ((*attempts)[0].message, "refused");
  EXPECT_EQ((*attempts)[1].code, "NOT_FOUND");
  EXPECT_EQ((*attempts)[2].message, "again");
  EXPECT_TRUE(l.FailedAttempts("mc", "g.csv")->empty());
  // A failure is not an entry.
  EXPECT_FALSE(this->Find("mc", "f.csv").has_value());
  EXPECT_EQ(this->Delivered(), 0);
}

// Each attempt keeps the run that made it, and an entry the run that wrote
// it: how a run tells its own attempts and deliveries from earlier runs'.
TYPED_TEST(LedgerContract, AttemptsAndEntriesKeepTheirRunId) {
  DeliveryLedger& l = *this->ledger_;
  LedgerEntry e{"mc", "f.csv", 1, "x", "b1", "", 0, false};
  AttemptRecord first{1, "transient", "UNAVAILABLE", "refused"};
  first.run_id = "run-a";
  AttemptRecord second{2, "permanent", "NOT_FOUND", "no dir"};
  second.run_id = "run-b";
  ASSERT_TRUE(l.RecordFailure(e, {first}).ok());
  ASSERT_TRUE(l.RecordFailure(e, {second}).ok());
  ASSERT_TRUE(l.RecordFailure(e, {{3, "transient", "UNAVAILABLE", "x"}}).ok());
  auto attempts = l.FailedAttempts("mc", "f.csv");
  ASSERT_TRUE(attempts.ok()) << attempts.status().ToString();
  ASSERT_EQ(attempts->size(), 3u);
  EXPECT_EQ((*attempts)[0].run_id, "run-a");
  EXPECT_EQ((*attempts)[1].run_id, "run-b");
  EXPECT_EQ((*attempts)[1].code, "NOT_FOUND");
  EXPECT_EQ((*attempts)[2].run_id, "");

  e.run_id = "run-b";
  ASSERT_TRUE(l.MarkDelivered(e).ok());
  auto found = this->Find("mc", "f.csv");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->run_id, "run-b");
  e.run_id = "run-c";  // a later run's intent replaces it
  ASSERT_TRUE(l.RecordIntent(e).ok());
  EXPECT_EQ(this->Find("mc", "f.csv")->run_id, "run-c");
  EXPECT_EQ(this->Find("mc", "f.csv")->state, "delivered");
}

TYPED_TEST(LedgerContract, ConcurrentWritersFromThreads) {
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
        EXPECT_TRUE(this->ledger_->MarkDelivered(e).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(this->Delivered(), 200);
}

TYPED_TEST(LedgerContract, OneClaimantPerFileAndTheHolderMayClaimAgain) {
  EXPECT_TRUE(this->Claim("f.csv", "w1", 60'000));
  EXPECT_FALSE(this->Claim("f.csv", "w2", 60'000));
  EXPECT_TRUE(this->Claim("f.csv", "w1", 60'000));
  // Per destination and name.
  EXPECT_TRUE(this->Claim("g.csv", "w2", 60'000));
  auto other_dest = this->ledger_->ClaimDelivery("amex", "f.csv", "w2", 1);
  ASSERT_TRUE(other_dest.ok());
  EXPECT_TRUE(*other_dest);
  // Claims are not entries.
  EXPECT_FALSE(this->Find("visa", "f.csv").has_value());
}

TYPED_TEST(LedgerContract, AClaimExpiresExactlyAtItsLeaseNeverSooner) {
  ASSERT_TRUE(this->Claim("f.csv", "w1", 30'000));
  this->env_.AdvanceMs(29'999);
  EXPECT_FALSE(this->Claim("f.csv", "w2", 30'000));
  this->env_.AdvanceMs(1);
  EXPECT_TRUE(this->Claim("f.csv", "w2", 30'000));
  // The first holder lost it: renewing fails, releasing changes nothing.
  EXPECT_FALSE(this->Renew("f.csv", "w1", 30'000));
  ASSERT_TRUE(this->ledger_->ReleaseDeliveryClaim("visa", "f.csv", "w1").ok());
  EXPECT_FALSE(this->Claim("f.csv", "w3", 30'000));
}

TYPED_TEST(LedgerContract, RenewExtendsTheLeaseFromNow) {
  ASSERT_TRUE(this->Claim("f.csv", "w1", 10'000));
  this->env_.AdvanceMs(9'000);
  ASSERT_TRUE(this->Renew("f.csv", "w1", 10'000));
  this->env_.AdvanceMs(9'999);
  EXPECT_FALSE(this->Claim("f.csv", "w2", 10'000));
  this->env_.AdvanceMs(1);
  EXPECT_TRUE(this->Claim("f.csv", "w2", 10'000));
  EXPECT_FALSE(this->Renew("never.csv", "w1", 10'000));
}

TYPED_TEST(LedgerContract, ReleaseFreesTheFileAtOnceOnlyForItsHolder) {
  ASSERT_TRUE(this->Claim("f.csv", "w1", 60'000));
  ASSERT_TRUE(this->ledger_->ReleaseDeliveryClaim("visa", "f.csv", "w2").ok());
  EXPECT_FALSE(this->Claim("f.csv", "w2", 60'000));
  ASSERT_TRUE(this->ledger_->ReleaseDeliveryClaim("visa", "f.csv", "w1").ok());
  EXPECT_FALSE(this->Renew("f.csv", "w1", 60'000));
  EXPECT_TRUE(this->Claim("f.csv", "w2", 60'000));
}

// Many workers race for each file, half of them through a second handle on
// the same data: exactly one wins every file.
TYPED_TEST(LedgerContract, RacingClaimantsExactlyOneWins) {
  constexpr int kFiles = 20, kWorkers = 8;
  std::shared_ptr<DeliveryLedger> other =
      this->adapter_.Connect(&this->env_, this->ledger_.get());
  std::vector<std::atomic<int>> wins(kFiles);
  std::atomic<int> errors{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    DeliveryLedger* ledger = w % 2 == 0 ? this->ledger_.get() : other.get();
    workers.emplace_back([&, ledger, w] {
      for (int f = 0; f < kFiles; ++f) {
        auto got = ledger->ClaimDelivery("visa", std::to_string(f),
                                         "worker-" + std::to_string(w), 60'000);
        if (!got.ok()) {
          ++errors;
        } else if (*got) {
          ++wins[f];
        }
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (int f = 0; f < kFiles; ++f) EXPECT_EQ(wins[f].load(), 1) << "file " << f;
}

#ifndef CBPIPE_CONTRACT_DYNAMODB
// SQLite only: what lives in the file.

class SqliteLedgerTest : public ::testing::Test {
 protected:
  TestSqliteFile db_{"sqlite_ledger"};
  const std::string& path_ = db_.path();
  FakeEnv env_{kStart};
};

TEST_F(SqliteLedgerTest, EntriesAndClaimsSurviveReopen) {
  {
    auto ledger = SqliteDeliveryLedger::Open(path_, &env_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false};
    ASSERT_TRUE((*ledger)->MarkDelivered(e).ok());
    ASSERT_TRUE(*(*ledger)->ClaimDelivery("visa", "g.csv", "w1", 60'000));
  }
  // A process that died holding a claim: it holds until the lease ends.
  auto ledger = SqliteDeliveryLedger::Open(path_, &env_);
  ASSERT_TRUE(ledger.ok());
  EXPECT_EQ((*(*ledger)->Find("visa", "f.csv"))->state, "delivered");
  EXPECT_FALSE(*(*ledger)->ClaimDelivery("visa", "g.csv", "w2", 60'000));
  env_.AdvanceMs(60'000);
  EXPECT_TRUE(*(*ledger)->ClaimDelivery("visa", "g.csv", "w2", 60'000));
}

// A ledger.db written before temp names and claims existed opens, keeps its
// deliveries and gets the new column and table.
TEST_F(SqliteLedgerTest, AnOlderFileIsUpgradedInPlace) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "CREATE TABLE deliveries (destination TEXT NOT NULL,"
                   " remote_name TEXT NOT NULL, size INTEGER NOT NULL,"
                   " sha256 TEXT NOT NULL, batch_id TEXT NOT NULL,"
                   " state TEXT NOT NULL CHECK (state IN"
                   " ('intent','delivered')), updated_at INTEGER NOT NULL,"
                   " replay INTEGER NOT NULL DEFAULT 0,"
                   " PRIMARY KEY (destination, remote_name));"
                   "INSERT INTO deliveries VALUES ('visa', 'old.csv', 3,"
                   " 'abc', 'b0', 'delivered', 9, 0);",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto ledger = SqliteDeliveryLedger::Open(path_, &env_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  auto found = (*ledger)->Find("visa", "old.csv");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->state, "delivered");
  EXPECT_EQ((*found)->updated_at, 9);
  EXPECT_EQ((*found)->temp_name, "");
  EXPECT_EQ((*found)->run_id, "");
  EXPECT_TRUE(*(*ledger)->ClaimDelivery("visa", "old.csv", "w1", 1000));
}

// A ledger.db whose failure history predates run ids keeps it, read with
// no run, and records new attempts with theirs.
TEST_F(SqliteLedgerTest, AnOlderFailureHistoryGetsRunIds) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db,
                   "CREATE TABLE delivery_failures ("
                   " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " destination TEXT NOT NULL, remote_name TEXT NOT NULL,"
                   " batch_id TEXT NOT NULL, failed_at INTEGER NOT NULL,"
                   " attempt INTEGER NOT NULL, attempt_at INTEGER NOT NULL,"
                   " error_class TEXT NOT NULL, code TEXT NOT NULL,"
                   " message TEXT NOT NULL);"
                   "INSERT INTO delivery_failures (destination, remote_name,"
                   " batch_id, failed_at, attempt, attempt_at, error_class,"
                   " code, message) VALUES ('visa', 'old.csv', 'b0', 5, 1, 4,"
                   " 'transient', 'UNAVAILABLE', 'refused');",
                   nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto ledger = SqliteDeliveryLedger::Open(path_, &env_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  AttemptRecord next{6, "permanent", "NOT_FOUND", "gone"};
  next.run_id = "r2";
  ASSERT_TRUE((*ledger)
                  ->RecordFailure({"visa", "old.csv", 1, "a", "b0", "", 0,
                                   false},
                                  {next})
                  .ok());
  auto attempts = (*ledger)->FailedAttempts("visa", "old.csv");
  ASSERT_TRUE(attempts.ok()) << attempts.status().ToString();
  ASSERT_EQ(attempts->size(), 2u);
  EXPECT_EQ((*attempts)[0].message, "refused");
  EXPECT_EQ((*attempts)[0].run_id, "");
  EXPECT_EQ((*attempts)[1].run_id, "r2");
}

// The ledger names delivered files (record data): 0640 like the batches,
// its WAL and shared-memory files too, also when an older version left a
// wider mode behind; and opening it twice in one process keeps SQLite's
// locks (a second connection sees the first one's writes).
TEST_F(SqliteLedgerTest, FilesAreAsPrivateAsTheBatches) {
  const mode_t old_umask = ::umask(022);
  auto mode = [](const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0u;
  };
  {
    auto ledger = SqliteDeliveryLedger::Open(path_, &env_);
    ASSERT_TRUE(ledger.ok());
    LedgerEntry e{"visa", "f.csv", 10, "abc", "b1", "", 5, false};
    ASSERT_TRUE((*ledger)->RecordIntent(e).ok());
    auto second = SqliteDeliveryLedger::Open(path_, &env_);
    ASSERT_TRUE(second.ok());
    ASSERT_TRUE((*(*second)->Find("visa", "f.csv")).has_value());
    for (const char* suffix : {"", "-wal", "-shm"}) {
      EXPECT_EQ(mode(path_ + suffix), 0640u) << suffix;
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(path_ + suffix)) ::chmod((path_ + suffix).c_str(), 0666);
  }
  ASSERT_TRUE(SqliteDeliveryLedger::Open(path_, &env_).ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    if (fs::exists(path_ + suffix)) {
      EXPECT_EQ(mode(path_ + suffix), 0640u) << suffix;
    }
  }
  ::umask(old_umask);
}

TEST_F(SqliteLedgerTest, UnopenablePathIsAClearError) {
  auto ledger =
      SqliteDeliveryLedger::Open("/nonexistent-dir/x/ledger.db", &env_);
  ASSERT_FALSE(ledger.ok());
  EXPECT_NE(ledger.status().message().find("/nonexistent-dir"),
            std::string::npos);
}

#endif  // CBPIPE_CONTRACT_DYNAMODB

}  // namespace
}  // namespace cbpipe
