#include "deliver/deliverer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "common/env.h"
#include "deliver/local_transport.h"
#include "deliver/transport.h"
#include "ledger/sqlite_ledger.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A real local folder whose operations can be made to fail, to drive the
// protocol through each failure point.
class FlakyFolder : public Transport {
 public:
  explicit FlakyFolder(std::string folder) : real_(std::move(folder)) {}
  Status Upload(const std::string& l, const std::string& r) override {
    ++uploads;
    if (during_upload) during_upload();
    if (upload_failures > 0) {
      --upload_failures;
      // Leave a partial temporary file behind, as a cut connection does.
      WriteAll(real_folder() + "/" + r, "partial");
      return upload_error;
    }
    return real_.Upload(l, r);
  }
  Status Rename(const std::string& a, const std::string& b,
                bool replace) override {
    return real_.Rename(a, b, replace);
  }
  StatusOr<std::optional<uint64_t>> RemoteSize(const std::string& r) override {
    return real_.RemoteSize(r);
  }
  Status Remove(const std::string& r) override { return real_.Remove(r); }
  StatusOr<std::optional<std::string>> RemoteSha256(
      const std::string& r) override {
    return real_.RemoteSha256(r);
  }
  std::string Describe() const override { return real_.Describe(); }
  std::string real_folder() const {
    return real_.Describe().substr(std::string("file://").size());
  }

  int uploads = 0;
  int upload_failures = 0;
  std::function<void()> during_upload;
  Status upload_error = UnavailableError("connection reset by peer");

 private:
  LocalFolderTransport real_;
};

class DelivererTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("deliverer_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "local");
    fs::create_directories(root_ / "remote");
    auto ledger =
        SqliteDeliveryLedger::Open((root_ / "ledger.db").string(), &env_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    dest_.name = "visa";
    dest_.url = "file://" + (root_ / "remote").string();
    dest_.retry.max_attempts = 4;
    dest_.retry.interval_seconds = 2;
    dest_.retry.backoff_rate = 3;
    dest_.retry.max_delay_seconds = 10;
    dest_.retry.full_jitter = false;
    transport_ = std::make_unique<FlakyFolder>((root_ / "remote").string());
  }
  void TearDown() override { fs::remove_all(root_); }

  FileToDeliver MakeFile(const std::string& name, const std::string& body) {
    const std::string path = (root_ / "local" / name).string();
    WriteAll(path, body);
    return {path, name, body.size(), *Sha256File(path), "in1-b001"};
  }
  DeliveryResult Deliver(const FileToDeliver& f) {
    FileDeliverer d(dest_, transport_.get(), ledger_.get(), &env_);
    return d.Deliver(f);
  }
  std::string Remote(const std::string& name) {
    return (root_ / "remote" / name).string();
  }
  // Every name in the remote folder.
  std::set<std::string> RemoteNames() {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(root_ / "remote"))
      names.insert(e.path().filename().string());
    return names;
  }

  fs::path root_;
  FakeEnv env_{1'700'000'000'000};  // random01 0.5; sleeps are recorded
  std::unique_ptr<DeliveryLedger> ledger_;
  DestinationConfig dest_;
  std::unique_ptr<FlakyFolder> transport_;
};

TEST_F(DelivererTest, DeliversUnderFinalNameAndRecordsIt) {
  FileToDeliver f = MakeFile("a.csv", "x,y\r\n1,2\r\n");
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(ReadAll(Remote("a.csv")), "x,y\r\n1,2\r\n");
  EXPECT_EQ(RemoteNames(), std::set<std::string>{"a.csv"});
  auto entry = ledger_->Find("visa", "a.csv");
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ((*entry)->state, "delivered");
  EXPECT_EQ((*entry)->sha256, f.sha256);
}

TEST_F(DelivererTest, TemporaryNamesAreUniquePerAttempt) {
  // Two uploaders of the same file never share a temporary file: one could
  // otherwise truncate, rename or remove the other's upload.
  std::set<std::string> names;
  for (int i = 0; i < 1000; ++i)
    names.insert(TemporaryUploadName("visa_001.csv", ".part"));
  EXPECT_EQ(names.size(), 1000u);
  const std::string one = *names.begin();
  EXPECT_EQ(one.front(), '.');
  EXPECT_EQ(one.rfind(".visa_001.csv.", 0), 0u);
  EXPECT_EQ(one.size(), std::string(".visa_001.csv.").size() + 16 + 5);
  EXPECT_EQ(one.substr(one.size() - 5), ".part");
}

TEST_F(DelivererTest, NextAttemptRemovesTheTemporaryFileACrashLeft) {
  // A process killed after its upload, before the rename: the intent in the
  // ledger names the temporary file it left, and the next attempt (in a
  // restarted process) removes it before uploading under a new name.
  FileToDeliver f = MakeFile("a.csv", "x,y\r\n1,2\r\n");
  const std::string crashed = TemporaryUploadName("a.csv", ".part");
  WriteAll(Remote(crashed), "x,y\r\n1,");
  LedgerEntry intent{"visa",     "a.csv", f.size, f.sha256,
                     f.batch_id, "",      0,      false};
  intent.temp_name = crashed;
  ASSERT_TRUE(ledger_->RecordIntent(intent).ok());
  auto found = ledger_->Find("visa", "a.csv");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->temp_name, crashed);

  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(RemoteNames(), std::set<std::string>{"a.csv"});
  EXPECT_EQ(ReadAll(Remote("a.csv")), "x,y\r\n1,2\r\n");
  found = ledger_->Find("visa", "a.csv");
  EXPECT_EQ((*found)->state, "delivered");
  EXPECT_EQ((*found)->temp_name, "");
}

TEST_F(DelivererTest, SecondDeliveryIsANoOp) {
  FileToDeliver f = MakeFile("a.csv", "body");
  ASSERT_EQ(Deliver(f).outcome, DeliveryOutcome::kDelivered);
  // The receiver picked the file up and removed it: still not re-sent.
  fs::remove(Remote("a.csv"));
  EXPECT_EQ(Deliver(f).outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_EQ(transport_->uploads, 1);
  EXPECT_FALSE(fs::exists(Remote("a.csv")));
}

// A later try of the same run finds its own delivery: reported delivered
// (not already_delivered) but marked, so nothing counts it twice; another
// run sees already_delivered.
TEST_F(DelivererTest, ARunsOwnEarlierDeliveryIsMarkedAsAnEarlierTry) {
  FileToDeliver f = MakeFile("a.csv", "body");
  f.run_id = "run-1";
  DeliveryResult first = Deliver(f);
  ASSERT_EQ(first.outcome, DeliveryOutcome::kDelivered);
  EXPECT_FALSE(first.earlier_try);
  DeliveryResult again = Deliver(f);
  EXPECT_EQ(again.outcome, DeliveryOutcome::kDelivered);
  EXPECT_TRUE(again.earlier_try);
  f.run_id = "run-2";
  DeliveryResult other = Deliver(f);
  EXPECT_EQ(other.outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_FALSE(other.earlier_try);
  EXPECT_EQ(transport_->uploads, 1);
}

TEST_F(DelivererTest, CrashBetweenUploadAndLedgerWriteIsNotUploadedTwice) {
  FileToDeliver f = MakeFile("a.csv", "body");
  // What a crash leaves: the intent in the ledger, the file in place.
  LedgerEntry intent{"visa", "a.csv", f.size, f.sha256, f.batch_id, "", 1,
                     false};
  ASSERT_TRUE(ledger_->RecordIntent(intent).ok());
  WriteAll(Remote("a.csv"), "body");
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_EQ(transport_->uploads, 0);
  EXPECT_EQ((*ledger_->Find("visa", "a.csv"))->state, "delivered");
}

TEST_F(DelivererTest, IdenticalLocalFileCountsAsDelivered) {
  FileToDeliver f = MakeFile("a.csv", "same");
  WriteAll(Remote("a.csv"), "same");
  EXPECT_EQ(Deliver(f).outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_EQ(transport_->uploads, 0);
}

TEST_F(DelivererTest, DifferentFileUnderTheNameIsAConflictNotAnOverwrite) {
  FileToDeliver f = MakeFile("a.csv", "ours");
  WriteAll(Remote("a.csv"), "them");
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.error.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(r.attempts.size(), 1u);  // permanent: no retry
  EXPECT_EQ(ReadAll(Remote("a.csv")), "them");
}

TEST_F(DelivererTest, ConflictPoliciesReplaceAndRename) {
  FileToDeliver f = MakeFile("a.csv", "ours");
  WriteAll(Remote("a.csv"), "them");
  dest_.on_conflict = OnConflict::kRename;
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(r.remote_name, "a-2.csv");
  EXPECT_EQ(ReadAll(Remote("a-2.csv")), "ours");
  EXPECT_EQ(ReadAll(Remote("a.csv")), "them");
  // A re-run finds its earlier delivery under the new name.
  DeliveryResult again = Deliver(f);
  EXPECT_EQ(again.outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_FALSE(fs::exists(Remote("a-3.csv")));

  FileToDeliver g = MakeFile("b.csv", "ours");
  WriteAll(Remote("b.csv"), "them");
  dest_.on_conflict = OnConflict::kReplace;
  EXPECT_EQ(Deliver(g).outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(ReadAll(Remote("b.csv")), "ours");
}

TEST_F(DelivererTest, TransientErrorsAreRetriedWithBackoff) {
  FileToDeliver f = MakeFile("a.csv", "body");
  transport_->upload_failures = 2;
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(transport_->uploads, 3);
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{2, 6}));
  EXPECT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(ReadAll(Remote("a.csv")), "body");
  EXPECT_EQ(RemoteNames(), std::set<std::string>{"a.csv"});  // partials removed
}

TEST_F(DelivererTest, ExhaustedRetriesFailWithHistoryAndNoFinalFile) {
  FileToDeliver f = MakeFile("a.csv", "body");
  transport_->upload_failures = 100;
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(transport_->uploads, 4);
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{2, 6, 10}));  // capped at 10
  ASSERT_EQ(r.attempts.size(), 4u);
  EXPECT_EQ(r.attempts[0].error_class, "transient");
  EXPECT_EQ(r.attempts[0].code, "UNAVAILABLE");
  EXPECT_TRUE(RemoteNames().empty());  // no final file, no partial left
  EXPECT_FALSE(fs::exists(Remote("a.csv")));
  auto kept = ledger_->FailedAttempts("visa", "a.csv");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->size(), 4u);
}

TEST_F(DelivererTest, PermanentErrorsAreNotRetried) {
  FileToDeliver f = MakeFile("a.csv", "body");
  transport_->upload_failures = 100;
  transport_->upload_error = UnauthenticatedError("530 login incorrect");
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(transport_->uploads, 1);
  EXPECT_TRUE(env_.sleeps().empty());
  EXPECT_EQ(r.attempts[0].error_class, "permanent");
}

// Another worker (or process) holds the ledger's claim of the file: nothing
// is uploaded while it lasts, and the delivery goes through once it ends.
TEST_F(DelivererTest, AFileClaimedElsewhereIsNotUploadedWhileTheClaimLasts) {
  FileToDeliver f = MakeFile("a.csv", "body");
  // Held until start + 5 s; the retries wait 2 s, then 6 s.
  ASSERT_TRUE(*ledger_->ClaimDelivery("visa", "a.csv", "other", 5'000));
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kDelivered);
  EXPECT_EQ(transport_->uploads, 1);
  ASSERT_EQ(r.attempts.size(), 2u);
  EXPECT_EQ(r.attempts[0].error_class, "transient");
  EXPECT_EQ(r.attempts[0].code, "UNAVAILABLE");
  EXPECT_NE(r.attempts[0].message.find("being delivered by another worker"),
            std::string::npos)
      << r.attempts[0].message;
  EXPECT_EQ(ReadAll(Remote("a.csv")), "body");

  // Held for longer than every retry: a transient failure, nothing sent.
  FileToDeliver g = MakeFile("b.csv", "body");
  ASSERT_TRUE(*ledger_->ClaimDelivery("visa", "b.csv", "other", 60'000));
  DeliveryResult held = Deliver(g);
  EXPECT_EQ(held.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(held.error.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(held.error.IsTransient());
  EXPECT_EQ(transport_->uploads, 1);
  EXPECT_FALSE(fs::exists(Remote("b.csv")));
  EXPECT_FALSE((*ledger_->Find("visa", "b.csv")).has_value());
}

// The upload outlasted the lease and another worker took the file over:
// the temporary file is removed and the final name never written.
TEST_F(DelivererTest, AClaimLostDuringTheUploadIsNotRenamed) {
  FileToDeliver f = MakeFile("a.csv", "body");
  dest_.retry.max_attempts = 1;
  transport_->during_upload = [this] {
    env_.AdvanceMs(kDeliveryClaimLeaseMs);
    ASSERT_TRUE(*ledger_->ClaimDelivery("visa", "a.csv", "thief", 60'000));
  };
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.error.code(), StatusCode::kUnavailable);
  EXPECT_NE(r.error.message().find("took the delivery over"), std::string::npos)
      << r.error.ToString();
  EXPECT_EQ(transport_->uploads, 1);
  EXPECT_TRUE(RemoteNames().empty());  // no final file, no temporary one
}

// A finished delivery (or a failed attempt) gives its claim back at once.
TEST_F(DelivererTest, TheClaimIsReleasedAfterEachAttempt) {
  FileToDeliver f = MakeFile("a.csv", "body");
  ASSERT_EQ(Deliver(f).outcome, DeliveryOutcome::kDelivered);
  EXPECT_TRUE(*ledger_->ClaimDelivery("visa", "a.csv", "next", 60'000));

  FileToDeliver g = MakeFile("b.csv", "body");
  dest_.retry.max_attempts = 1;
  transport_->upload_failures = 1;
  ASSERT_EQ(Deliver(g).outcome, DeliveryOutcome::kFailed);
  EXPECT_TRUE(*ledger_->ClaimDelivery("visa", "b.csv", "next", 60'000));
}

TEST(RetryDelayTest, StepFunctionsSemantics) {
  RetryPolicy p;
  p.interval_seconds = 1;
  p.backoff_rate = 2;
  p.max_delay_seconds = 5;
  p.full_jitter = false;
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 1, 0.3), 1);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 2, 0.3), 2);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 3, 0.3), 4);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 4, 0.3), 5);
  p.full_jitter = true;
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 3, 0.25), 1);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 9, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(RetryDelaySeconds(p, 1, 0.0), 0);
}

TEST(LocalFolderTransportTest, RenameNeverOverwritesUnlessAsked) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("lft_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  LocalFolderTransport t(dir.string());
  const std::string src = dir.string() + "_src";
  WriteAll(src, "new");
  ASSERT_TRUE(t.Upload(src, "x.part").ok());  // creates the folder
  WriteAll((dir / "x").string(), "old");
  EXPECT_EQ(t.Rename("x.part", "x", false).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadAll((dir / "x").string()), "old");
  EXPECT_TRUE(t.Rename("x.part", "x", true).ok());
  EXPECT_EQ(ReadAll((dir / "x").string()), "new");
  EXPECT_EQ(**t.RemoteSize("x"), 3u);
  EXPECT_FALSE(t.RemoteSize("missing")->has_value());
  EXPECT_TRUE(t.Remove("missing").ok());
  fs::remove_all(dir);
  fs::remove(src);
}

}  // namespace
}  // namespace cbpipe
