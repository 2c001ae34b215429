// The safe-upload protocol (FileDeliverer + ledger + retries) against real
// servers on 127.0.0.1: OpenSSH sshd (SFTP) and vsftpd (FTP, FTPS), started
// per test by tests/servers. Needs root (CI runs as root); skipped otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "deliver/curl_transport.h"
#include "deliver/deliverer.h"
#include "deliver/local_transport.h"
#include "ledger/sqlite_ledger.h"
#include "servers/server_fixture.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::cbpipe::testing::CuttingProxy;
using ::cbpipe::testing::Kind;
using ::cbpipe::testing::KindName;
using ::cbpipe::testing::ReadAll;
using ::cbpipe::testing::ServerTest;
using ::cbpipe::testing::WriteRandomFile;

// Counts uploads on the way to a real transport.
class CountingTransport : public Transport {
 public:
  explicit CountingTransport(std::unique_ptr<Transport> real)
      : real_(std::move(real)) {}
  Status Upload(const std::string& l, const std::string& r) override {
    ++uploads;
    return real_->Upload(l, r);
  }
  Status Rename(const std::string& a, const std::string& b,
                bool replace) override {
    return real_->Rename(a, b, replace);
  }
  StatusOr<std::optional<uint64_t>> RemoteSize(const std::string& r) override {
    return real_->RemoteSize(r);
  }
  Status Remove(const std::string& r) override { return real_->Remove(r); }
  std::string Describe() const override { return real_->Describe(); }
  int uploads = 0;

 private:
  std::unique_ptr<Transport> real_;
};

class DeliveryTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    auto ledger = SqliteDeliveryLedger::Open(dir_ + "/ledger.db", &env_);
    ASSERT_TRUE(ledger.ok());
    ledger_ = std::move(*ledger);
    env_.SetRandom({1.0});
    env_.SetOnSleep([this](double) {
      if (on_sleep_) on_sleep_();
    });
    dest_.retry.interval_seconds = 0.01;
    dest_.retry.backoff_rate = 2;
    dest_.retry.max_attempts = 4;
    dest_.retry.full_jitter = false;
  }

  FileToDeliver Local(const std::string& name, size_t size) {
    const std::string path = local_ + "/" + name;
    WriteRandomFile(path, size, static_cast<unsigned>(size));
    return {path, name, size, *Sha256File(path), "in1-b001"};
  }

  DeliveryResult Deliver(const FileToDeliver& f) {
    auto t = MakeNetworkTransport(dest_);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return {};
    transport_ = std::make_unique<CountingTransport>(std::move(*t));
    FileDeliverer d(dest_, transport_.get(), ledger_.get(), &env_);
    return d.Deliver(f);
  }

  FakeEnv env_{1'700'000'000'000};  // sleeps are recorded, not slept
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<CountingTransport> transport_;
  std::function<void()> on_sleep_;
};

class DeliveryAllProtocols : public DeliveryTest,
                             public ::testing::WithParamInterface<Kind> {
 protected:
  // Temporary upload files (".<name>.<random>.part") left in the remote
  // folder.
  int Temporaries() {
    int n = 0;
    for (const auto& e : fs::directory_iterator(Remote("in")))
      n += e.path().filename().string().ends_with(".part");
    return n;
  }
};

TEST_P(DeliveryAllProtocols, DeliversIntactOnceAndNeverTwice) {
  StartServer(GetParam());
  FileToDeliver f = Local("visa_001.csv", 3 << 20);
  DeliveryResult r = Deliver(f);
  ASSERT_EQ(r.outcome, DeliveryOutcome::kDelivered) << r.error.ToString();
  EXPECT_EQ(ReadAll(Remote("in/visa_001.csv")), ReadAll(f.local_path));
  EXPECT_EQ(Temporaries(), 0);
  // A re-run sends nothing, even after the receiver removed the file.
  fs::remove(Remote("in/visa_001.csv"));
  DeliveryResult again = Deliver(f);
  EXPECT_EQ(again.outcome, DeliveryOutcome::kAlreadyDelivered);
  EXPECT_EQ(transport_->uploads, 0);
  EXPECT_FALSE(fs::exists(Remote("in/visa_001.csv")));
}

TEST_P(DeliveryAllProtocols, CrashBetweenUploadAndLedgerWriteIsNoDuplicate) {
  StartServer(GetParam());
  FileToDeliver f = Local("mc_001.csv", 100000);
  // What a crash after the rename and before the ledger write leaves: an
  // intent in the ledger and the complete file under its final name.
  LedgerEntry intent{dest_.name, f.name, f.size, f.sha256, f.batch_id, "",
                     0,          false};
  ASSERT_TRUE(ledger_->RecordIntent(intent).ok());
  fs::copy_file(f.local_path, Remote("in/mc_001.csv"));
  fs::permissions(Remote("in/mc_001.csv"), fs::perms::all,
                  fs::perm_options::add);
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kAlreadyDelivered)
      << r.error.ToString();
  EXPECT_EQ(transport_->uploads, 0);
  EXPECT_EQ((*ledger_->Find(dest_.name, f.name))->state, "delivered");
  EXPECT_EQ(ReadAll(Remote("in/mc_001.csv")), ReadAll(f.local_path));
}

TEST_P(DeliveryAllProtocols, ForeignFileUnderTheNameIsNotOverwritten) {
  StartServer(GetParam());
  FileToDeliver f = Local("amex_001.csv", 5000);
  testing::WriteFileAs(Remote("in/amex_001.csv"), "someone else's file");
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.error.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(r.attempts.size(), 1u);
  EXPECT_EQ(ReadAll(Remote("in/amex_001.csv")), "someone else's file");
}

TEST_P(DeliveryAllProtocols, WrongPasswordIsPermanentAndNotRetried) {
  StartServer(GetParam());
  ::setenv("CBPIPE_WRONG_PASSWORD", "not-the-password", 1);
  dest_.password_ref = "env:CBPIPE_WRONG_PASSWORD";
  dest_.private_key_ref.clear();
  FileToDeliver f = Local("d_001.csv", 1000);
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r.error.code(), StatusCode::kUnauthenticated)
      << r.error.ToString();
  EXPECT_EQ(r.attempts.size(), 1u);
  EXPECT_TRUE(env_.sleeps().empty());
  EXPECT_THAT(r.error.message(), ::testing::Not(::testing::HasSubstr(
                                     "not-the-password")));
}

TEST_P(DeliveryAllProtocols, MissingRemoteFolderIsPermanent) {
  StartServer(GetParam());
  dest_.url = UrlOf("no-such-folder");
  DeliveryResult r = Deliver(Local("x_001.csv", 1000));
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  EXPECT_FALSE(r.error.IsTransient()) << r.error.ToString();
  EXPECT_EQ(r.attempts.size(), 1u);
  dest_.url = UrlOf("readonly");
  DeliveryResult ro = Deliver(Local("y_001.csv", 1000));
  EXPECT_EQ(ro.outcome, DeliveryOutcome::kFailed);
  EXPECT_FALSE(ro.error.IsTransient()) << ro.error.ToString();
  EXPECT_EQ(ro.attempts.size(), 1u);
}

TEST_P(DeliveryAllProtocols, ServerDownThenUpDuringBackoffDeliversOnce) {
  StartServer(GetParam());
  // The client reaches the server only through a port where nothing listens
  // yet; during the first backoff the "server comes up" there.
  auto port = testing::FindFreePort();
  ASSERT_TRUE(port.ok());
  const int server_port = sftp_ ? sftp_->port() : ftp_->port();
  dest_.url = UrlOf("in", "127.0.0.1", *port);
  if (sftp_) {
    dest_.known_hosts.clear();
    dest_.host_key_sha256 = sftp_->host_key_sha256();
  }
  on_sleep_ = [&] {
    if (!proxies_.empty()) return;
    auto proxy = CuttingProxy::Start(
        {.listen_port = *port, .target_port = server_port});
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxies_.push_back(std::move(*proxy));
  };
  FileToDeliver f = Local("v_001.csv", 200000);
  DeliveryResult r = Deliver(f);
  ASSERT_EQ(r.outcome, DeliveryOutcome::kDelivered) << r.error.ToString();
  ASSERT_GE(r.attempts.size(), 1u);
  EXPECT_EQ(r.attempts[0].error_class, "transient");
  EXPECT_EQ(ReadAll(Remote("in/v_001.csv")), ReadAll(f.local_path));
  EXPECT_EQ(*ledger_->CountDelivered(), 1);
}

TEST_P(DeliveryAllProtocols, CutMidTransferThenDeliveredOnRetry) {
  const uint64_t kCutAfter = 512 << 10;
  std::string listen_host = "127.0.0.1";
  int cut_port = 0, cut_target = 0;
  if (GetParam() == Kind::kSftp) {
    StartServer(Kind::kSftp);
    auto port = testing::FindFreePort();
    ASSERT_TRUE(port.ok());
    cut_port = *port;
    cut_target = sftp_->port();
    dest_.url = UrlOf("in", "127.0.0.1", cut_port);
    dest_.known_hosts.clear();
    dest_.host_key_sha256 = sftp_->host_key_sha256();
  } else {
    // Data connections go through 127.0.0.2 (see tests/servers).
    StartServer(GetParam(), "127.0.0.2", /*pasv_port_count=*/1);
    auto control = CuttingProxy::Start({.listen_host = "127.0.0.2",
                                        .listen_port = ftp_->port(),
                                        .target_port = ftp_->port()});
    ASSERT_TRUE(control.ok());
    proxies_.push_back(std::move(*control));
    listen_host = "127.0.0.2";
    cut_port = cut_target = ftp_->data_port();
    dest_.url = UrlOf("in", "127.0.0.2");
  }
  auto cutting = CuttingProxy::Start({.listen_host = listen_host,
                                      .listen_port = cut_port,
                                      .target_port = cut_target,
                                      .cut_after_bytes = kCutAfter});
  ASSERT_TRUE(cutting.ok()) << cutting.status().ToString();
  std::unique_ptr<CuttingProxy> cut = std::move(*cutting);
  // After the cut, the network heals: the next attempt goes through.
  on_sleep_ = [&] {
    // Heal only after a real cut (another transient failure first, e.g. a
    // port race under parallel tests, goes through the cutting proxy again).
    if (!cut || cut->cuts() == 0) return;
    cut.reset();
    auto healed = CuttingProxy::Start({.listen_host = listen_host,
                                       .listen_port = cut_port,
                                       .target_port = cut_target});
    ASSERT_TRUE(healed.ok()) << healed.status().ToString();
    proxies_.push_back(std::move(*healed));
  };
  FileToDeliver f = Local("big_001.csv", 8 << 20);
  DeliveryResult r = Deliver(f);
  EXPECT_EQ(cut, nullptr) << "no connection was cut";
  ASSERT_EQ(r.outcome, DeliveryOutcome::kDelivered) << r.error.ToString();
  ASSERT_GE(r.attempts.size(), 1u);
  EXPECT_EQ(r.attempts[0].error_class, "transient");
  EXPECT_EQ(ReadAll(Remote("in/big_001.csv")), ReadAll(f.local_path));
  // The cut upload's temporary file is gone too (the retry removes it: the
  // ledger's intent names it).
  EXPECT_EQ(Temporaries(), 0);
}

TEST_P(DeliveryAllProtocols, ServerDownPastTheLastAttemptFailsWithHistory) {
  StartServer(GetParam());
  auto port = testing::FindFreePort();
  ASSERT_TRUE(port.ok());
  dest_.url = UrlOf("in", "127.0.0.1", *port);
  if (sftp_) {
    dest_.known_hosts.clear();
    dest_.host_key_sha256 = sftp_->host_key_sha256();
  }
  DeliveryResult r = Deliver(Local("z_001.csv", 1000));
  EXPECT_EQ(r.outcome, DeliveryOutcome::kFailed);
  ASSERT_EQ(r.attempts.size(), 4u);
  for (const AttemptRecord& a : r.attempts) {
    EXPECT_EQ(a.error_class, "transient");
    EXPECT_EQ(a.code, "UNAVAILABLE");
  }
  EXPECT_EQ(env_.sleeps(), (std::vector<double>{0.01, 0.02, 0.04}));
}

INSTANTIATE_TEST_SUITE_P(AllProtocols, DeliveryAllProtocols,
                         ::testing::Values(Kind::kSftp, Kind::kFtp,
                                           Kind::kFtpsExplicit,
                                           Kind::kFtpsImplicit),
                         [](const auto& info) { return KindName(info.param); });

}  // namespace
}  // namespace cbpipe
