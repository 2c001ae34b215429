// The interop matrix (docs/interop.md): the safe-upload protocol against the
// servers card companies run, started per test on 127.0.0.1 by
// tests/servers:
//  - OpenSSH's sftp-server and vsftpd (explicit FTPS) as configured by
//    default;
//  - OpenSSH as a chrooted write-only drop box (internal-sftp -P opendir,
//    readdir,read,stat,lstat,fstat), declared write_only and not declared;
//  - ProFTPD 1.3.8 mod_sftp (public key auth), which refuses an OPEN for
//    reading where OpenSSH allows it;
//  - ProFTPD mod_tls (explicit FTPS, session reuse required; TLS 1.2, and
//    TLS 1.3 only), pure-ftpd with TLS required, vsftpd as a write-only
//    drop box (download_enable=NO, dirlist_enable=NO).
// Each: a batch delivered, a second run sending nothing, a connection cut
// mid-upload recovered, and the ledger agreeing with the server's folder.
// Needs root (CI runs as root); skipped otherwise.
//
// With CBPIPE_INTEROP_RESULTS=FILE every case appends one JSON line per
// server and check to FILE: what passed, and what the server was observed to
// allow (STAT, fsync@openssh.com, posix-rename@openssh.com, whether a rename
// overwrites). scripts/interop_matrix.py turns FILE into docs/interop.md's
// matrix; the CTest interop_matrix_matches_docs fails when they differ.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "deliver/deliverer.h"
#include "deliver/local_transport.h"
#include "deliver/sftp_transport.h"
#include "ledger/sqlite_ledger.h"
#include "servers/server_fixture.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::cbpipe::testing::CuttingProxy;
using ::cbpipe::testing::ProFtpdServer;
using ::cbpipe::testing::ReadAll;
using ::cbpipe::testing::SshServer;
using ::cbpipe::testing::WriteRandomFile;
using ::testing::HasSubstr;

enum class Peer {
  kOpenSsh,
  kOpenSshDropBox,
  kOpenSshDropBoxUndeclared,
  kProFtpdSftp,
  kVsftpdFtpsDropBox,
  kProFtpdFtpsTls12,
  kProFtpdFtpsTls13,
  kPureFtpdTls,
  kVsftpdFtps,
};

constexpr Peer kAllPeers[] = {
    Peer::kOpenSsh,
    Peer::kOpenSshDropBox,
    Peer::kOpenSshDropBoxUndeclared,
    Peer::kProFtpdSftp,
    Peer::kVsftpdFtps,
    Peer::kVsftpdFtpsDropBox,
    Peer::kProFtpdFtpsTls12,
    Peer::kProFtpdFtpsTls13,
    Peer::kPureFtpdTls,
};

std::string PeerName(Peer p) {
  switch (p) {
    case Peer::kOpenSsh: return "OpenSsh";
    case Peer::kOpenSshDropBox: return "OpenSshWriteOnlyDropBox";
    case Peer::kOpenSshDropBoxUndeclared: return "OpenSshDropBoxUndeclared";
    case Peer::kProFtpdSftp: return "ProFtpdModSftp";
    case Peer::kVsftpdFtpsDropBox: return "VsftpdFtpsWriteOnlyDropBox";
    case Peer::kProFtpdFtpsTls12: return "ProFtpdModTlsSessionReuseTls12";
    case Peer::kProFtpdFtpsTls13: return "ProFtpdModTlsSessionReuseTls13Only";
    case Peer::kPureFtpdTls: return "PureFtpdTlsRequired";
    case Peer::kVsftpdFtps: return "VsftpdFtps";
  }
  return "?";
}

std::string PeerProtocol(Peer p) {
  switch (p) {
    case Peer::kOpenSsh:
    case Peer::kOpenSshDropBox:
    case Peer::kOpenSshDropBoxUndeclared:
    case Peer::kProFtpdSftp: return "SFTP";
    default: return "FTPS";
  }
}

std::string PeerDescription(Peer p) {
  switch (p) {
    case Peer::kOpenSsh: return "OpenSSH 9.2 sftp-server, not chrooted";
    case Peer::kOpenSshDropBox:
      return "OpenSSH 9.2, chrooted, `internal-sftp -P opendir,readdir,read,"
             "stat,lstat,fstat`, `write_only = true`";
    case Peer::kOpenSshDropBoxUndeclared:
      return "the same OpenSSH drop box without `write_only`";
    case Peer::kProFtpdSftp: return "ProFTPD 1.3.8 mod_sftp, public key";
    case Peer::kVsftpdFtpsDropBox:
      return "vsftpd 3.0.3 `download_enable=NO`, `dirlist_enable=NO`, "
             "explicit FTPS, `write_only = true`";
    case Peer::kProFtpdFtpsTls12:
      return "ProFTPD 1.3.8 mod_tls, explicit FTPS, TLS 1.2, session reuse "
             "required on data connections";
    case Peer::kProFtpdFtpsTls13:
      return "ProFTPD 1.3.8 mod_tls, explicit FTPS, TLS 1.3 only, session "
             "reuse required on data connections";
    case Peer::kPureFtpdTls:
      return "pure-ftpd 1.0.50, TLS required (`-Y 2`), virtual user";
    case Peer::kVsftpdFtps: return "vsftpd 3.0.3, explicit FTPS";
  }
  return "?";
}

std::string JsonString(const std::string& v) {
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Appends one result line to $CBPIPE_INTEROP_RESULTS (nothing when unset):
// `result` is pass, fail or skip; `observed` what the server did, or why
// the check was skipped. One write() with O_APPEND: ctest may run cases in
// parallel.
void RecordResult(const std::string& server, const std::string& check,
                  const std::string& result, const std::string& observed) {
  const char* file = std::getenv("CBPIPE_INTEROP_RESULTS");
  if (file == nullptr || *file == '\0') return;
  const std::string line = "{\"server\": " + JsonString(server) +
                           ", \"check\": " + JsonString(check) +
                           ", \"result\": " + JsonString(result) +
                           ", \"observed\": " + JsonString(observed) + "}\n";
  int fd = ::open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << "cannot open " << file;
  EXPECT_EQ(::write(fd, line.data(), line.size()),
            static_cast<ssize_t>(line.size()));
  ::close(fd);
}

// Failures recorded so far in the running test.
int FailureCount() {
  const ::testing::TestResult* r =
      ::testing::UnitTest::GetInstance()->current_test_info()->result();
  int n = 0;
  for (int i = 0; i < r->total_part_count(); ++i) {
    n += r->GetTestPartResult(i).failed() ? 1 : 0;
  }
  return n;
}

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
    ++size_checks;
    return real_->RemoteSize(r);
  }
  Status Remove(const std::string& r) override { return real_->Remove(r); }
  std::string Describe() const override { return real_->Describe(); }
  int uploads = 0;
  int size_checks = 0;

 private:
  std::unique_ptr<Transport> real_;
};

class InteropTest : public ::testing::TestWithParam<Peer> {
 protected:
  void SetUp() override {
    Status root = testing::RequireRoot();
    if (!root.ok()) GTEST_SKIP() << root.message();
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-interop-test-XXXXXX")
            .string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    local_ = dir_ + "/local";
    fs::create_directories(local_);
    int server_port = 0;
    if (GetParam() == Peer::kVsftpdFtpsDropBox ||
        GetParam() == Peer::kVsftpdFtps) {
      const bool write_only = GetParam() == Peer::kVsftpdFtpsDropBox;
      auto s = testing::FtpServer::Start(dir_ + "/server",
                                         {.tls = testing::FtpTls::kExplicit,
                                          .pasv_port_count = kDataPorts,
                                          .write_only = write_only});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      vsftpd_.emplace(std::move(*s));
      root_ = vsftpd_->root_dir();
      server_port = vsftpd_->port();
      data_port_ = vsftpd_->data_port();
      ::setenv("CBPIPE_INTEROP_PASSWORD", vsftpd_->password().c_str(), 1);
      dest_.username = vsftpd_->user();
      dest_.password_ref = "env:CBPIPE_INTEROP_PASSWORD";
      dest_.ca_file = vsftpd_->ca_cert_path();
      dest_.write_only = write_only;
      ftp_ = true;
    } else if (GetParam() == Peer::kPureFtpdTls) {
      auto s = testing::PureFtpdServer::Start(dir_ + "/server");
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      pureftpd_.emplace(std::move(*s));
      root_ = pureftpd_->root_dir();
      server_port = pureftpd_->port();
      data_port_ = pureftpd_->data_port();
      ::setenv("CBPIPE_INTEROP_PASSWORD", pureftpd_->password().c_str(), 1);
      dest_.username = pureftpd_->user();
      dest_.password_ref = "env:CBPIPE_INTEROP_PASSWORD";
      dest_.ca_file = pureftpd_->ca_cert_path();
      ftp_ = true;
    } else if (GetParam() == Peer::kProFtpdFtpsTls12 ||
               GetParam() == Peer::kProFtpdFtpsTls13) {
      auto s = ProFtpdServer::Start(dir_ + "/server",
                                    GetParam() == Peer::kProFtpdFtpsTls12
                                        ? testing::ProFtpdMode::kFtpsTls12
                                        : testing::ProFtpdMode::kFtpsTls13Only);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      proftpd_.emplace(std::move(*s));
      root_ = proftpd_->root_dir();
      server_port = proftpd_->port();
      data_port_ = proftpd_->data_port();
      ::setenv("CBPIPE_INTEROP_PASSWORD", proftpd_->password().c_str(), 1);
      dest_.username = proftpd_->user();
      dest_.password_ref = "env:CBPIPE_INTEROP_PASSWORD";
      dest_.ca_file = proftpd_->ca_cert_path();
      ftp_ = true;
    } else if (GetParam() == Peer::kProFtpdSftp) {
      auto s = ProFtpdServer::Start(dir_ + "/server");
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      proftpd_.emplace(std::move(*s));
      root_ = proftpd_->root_dir();
      server_port = proftpd_->port();
      dest_.username = proftpd_->user();
      dest_.private_key_ref = "file:" + proftpd_->client_key_path();
      host_key_sha256_ = proftpd_->host_key_sha256();
    } else {
      const bool drop_box = GetParam() != Peer::kOpenSsh;
      auto s = SshServer::Start(dir_ + "/server",
                                {.write_only = drop_box, .chroot = drop_box});
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      sshd_.emplace(std::move(*s));
      root_ = sshd_->root_dir();
      server_port = sshd_->port();
      dest_.username = sshd_->user();
      dest_.private_key_ref = "file:" + sshd_->client_key_path();
      host_key_sha256_ = sshd_->host_key_sha256();
      dest_.write_only = GetParam() == Peer::kOpenSshDropBox;
    }
    ASSERT_TRUE(testing::MakeRemoteDir(root_, "in", true).ok());
    // Every connection goes through a proxy: it counts them, and a test
    // can swap it for one that cuts.
    auto proxy = CuttingProxy::Start({.target_port = server_port});
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    proxy_ = std::move(*proxy);
    server_port_ = server_port;
    proxy_port_ = proxy_->port();
    dest_.name = "visa";
    dest_.url = sshd_ ? sshd_->url("in", proxy_port_)
                      : (ftp_ ? "ftps://" : "sftp://") +
                            std::string("127.0.0.1:") +
                            std::to_string(proxy_port_) + "/in";
    dest_.host_key_sha256 = host_key_sha256_;  // known_hosts names the port
    dest_.connect_timeout_seconds = 5;
    dest_.transfer_timeout_seconds = 30;
    dest_.stall_timeout_seconds = 5;
    if (pureftpd_) {
      // pure-pw hashes with a memory-hard function: a login takes seconds
      // on a busy test machine.
      dest_.connect_timeout_seconds = dest_.stall_timeout_seconds = 30;
    }
    dest_.retry.interval_seconds = 0.01;
    dest_.retry.max_attempts = 4;
    dest_.retry.full_jitter = false;
    auto ledger = SqliteDeliveryLedger::Open(dir_ + "/ledger.db", &env_);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    ledger_ = std::move(*ledger);
    env_.SetRandom({1.0});
    env_.SetOnSleep([this](double) {
      if (on_sleep_) on_sleep_();
    });
  }

  void TearDown() override {
    // Checks a test declared and did not reach failed (an ASSERT returned),
    // or were skipped.
    for (const std::string& check : pending_) {
      if (IsSkipped()) {
        Record(check, "skip", skip_reason_);
      } else {
        Record(check, "fail", "did not complete");
      }
    }
    pending_.clear();
    proxy_.reset();
    proftpd_.reset();
    vsftpd_.reset();
    pureftpd_.reset();
    if (sshd_) sshd_->RemoveChroot();
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_);
    if (HasFailure()) std::cerr << "kept " << dir_ << " for inspection\n";
  }

  void Record(const std::string& check, const std::string& result,
              const std::string& observed = "") {
    RecordResult(PeerName(GetParam()), check, result, observed);
  }

  // The checks this test will record: each is recorded once, by Done, or
  // as failed or skipped by TearDown.
  void Expect(std::vector<std::string> checks) {
    pending_ = std::move(checks);
    failures_at_ = FailureCount();
  }

  // Records `check` as passed unless something failed since the previous
  // Done (or Expect).
  void Done(const std::string& check, const std::string& observed = "") {
    const int now = FailureCount();
    Record(check, now == failures_at_ ? "pass" : "fail", observed);
    failures_at_ = now;
    std::erase(pending_, check);
  }

  FileToDeliver Local(const std::string& name, size_t size) {
    const std::string path = local_ + "/" + name;
    WriteRandomFile(path, size, static_cast<unsigned>(size + name.size()));
    return {path, name, size, *Sha256File(path), "in1-b001"};
  }

  // One run: a transport and a deliverer for all `files`, as the pipeline
  // does for a batch.
  std::vector<DeliveryResult> Run(const std::vector<FileToDeliver>& files) {
    auto t = MakeTransport(dest_);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return {};
    transport_ = std::make_unique<CountingTransport>(std::move(*t));
    FileDeliverer d(dest_, transport_.get(), ledger_.get(), &env_);
    std::vector<DeliveryResult> out;
    for (const FileToDeliver& f : files) out.push_back(d.Deliver(f));
    return out;
  }

  // The server's folder and the ledger agree: each file delivered is there
  // with its content, recorded as delivered with its hash; nothing else is
  // there (no temporary file left).
  void ExpectLedgerAgreesWithServer(const std::vector<FileToDeliver>& files) {
    std::set<std::string> on_server;
    for (const auto& e : fs::directory_iterator(root_ + "/in")) {
      on_server.insert(e.path().filename().string());
    }
    std::set<std::string> expected;
    for (const FileToDeliver& f : files) {
      expected.insert(f.name);
      EXPECT_TRUE(ReadAll(root_ + "/in/" + f.name) == ReadAll(f.local_path))
          << f.name << " differs on the server";
      auto entry = ledger_->Find(dest_.name, f.name);
      ASSERT_TRUE(entry.ok()) << entry.status().ToString();
      ASSERT_TRUE(entry->has_value()) << f.name << " not in the ledger";
      EXPECT_EQ((*entry)->state, "delivered") << f.name;
      EXPECT_EQ((*entry)->sha256, f.sha256) << f.name;
    }
    EXPECT_EQ(on_server, expected);
    EXPECT_EQ(*ledger_->CountDelivered(), static_cast<int64_t>(files.size()));
  }

  std::string dir_, local_, root_, host_key_sha256_;
  std::optional<SshServer> sshd_;
  std::optional<ProFtpdServer> proftpd_;
  std::optional<testing::FtpServer> vsftpd_;
  std::optional<testing::PureFtpdServer> pureftpd_;
  bool ftp_ = false;  // ftps: data connections bypass the proxy
  std::unique_ptr<CuttingProxy> proxy_;
  int server_port_ = 0, proxy_port_ = 0;
  // FTPS: passive data ports data_port_ .. data_port_ + kDataPorts - 1.
  static constexpr int kDataPorts = 8;
  int data_port_ = 0;
  DestinationConfig dest_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<CountingTransport> transport_;
  FakeEnv env_{1'700'000'000'000};  // waits are not slept
  std::function<void()> on_sleep_;
  std::vector<std::string> pending_;
  int failures_at_ = 0;
  std::string skip_reason_;
};

TEST_P(InteropTest, BatchDeliveredOnceSecondRunSendsNothing) {
  Expect({"delivered", "second_run_sends_nothing", "ledger_agrees"});
  std::vector<FileToDeliver> files = {
      Local("visa_001.csv", 0), Local("visa_002.csv", 1),
      Local("visa_003.csv", 100000), Local("visa_004.csv", 3 << 20)};
  std::vector<DeliveryResult> first = Run(files);
  ASSERT_EQ(first.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(first[i].outcome, DeliveryOutcome::kDelivered)
        << files[i].name << ": " << first[i].error.ToString();
    EXPECT_TRUE(first[i].attempts.empty()) << files[i].name;
  }
  EXPECT_EQ(transport_->uploads, 4);
  const int connections = proxy_->connections();
  if (GetParam() == Peer::kProFtpdFtpsTls13) {
    // TLS 1.3 and session reuse required: a fresh connection per upload
    // (docs/interop.md), after the first one found TLS 1.2 refused.
    EXPECT_GE(connections, 4);
    EXPECT_LE(connections, 6);
  } else {
    EXPECT_EQ(connections, 1) << "one connection for the batch";
  }
  if (dest_.write_only) {
    EXPECT_EQ(transport_->size_checks, 0);
  }
  Done("delivered");
  ExpectLedgerAgreesWithServer(files);

  // A second run sends nothing, and does not even connect.
  std::map<std::string, fs::file_time_type> before;
  for (const auto& f : files) {
    before[f.name] = fs::last_write_time(root_ + "/in/" + f.name);
  }
  std::vector<DeliveryResult> second = Run(files);
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(second[i].outcome, DeliveryOutcome::kAlreadyDelivered)
        << files[i].name;
  }
  EXPECT_EQ(transport_->uploads, 0);
  EXPECT_EQ(proxy_->connections(), connections);
  for (const auto& f : files) {
    EXPECT_EQ(before[f.name], fs::last_write_time(root_ + "/in/" + f.name));
  }
  Done("second_run_sends_nothing");
  ExpectLedgerAgreesWithServer(files);
  Done("ledger_agrees");
}

// FTP's rename (RNFR/RNTO) replaces an existing target, and a write-only
// FTP server cannot be asked whether one is there (docs/interop.md).
#define SKIP_ON_WRITE_ONLY_FTP(why)                       \
  if (ftp_ && dest_.write_only) {                         \
    skip_reason_ = std::string("write-only FTP: ") + why; \
    GTEST_SKIP() << skip_reason_;                         \
  }

TEST_P(InteropTest, ConnectionCutMidUploadIsRecovered) {
  Expect({"cut_recovered"});
  static_assert(ProFtpdServer::kDataPorts == kDataPorts &&
                testing::PureFtpdServer::kDataPorts == kDataPorts);
  // Where connections are cut: SFTP's one connection; FTPS's data
  // connections. libcurl connects a data connection to the control
  // connection's address (it ignores the one in the PASV reply), so the
  // control connection goes to 127.0.0.2, where proxies listen on the
  // server's control and passive ports and forward to 127.0.0.1.
  struct Link {
    std::string host;
    int port, target;
  };
  std::vector<Link> links;
  std::vector<std::unique_ptr<CuttingProxy>> kept;
  proxy_.reset();
  // The proxies take the server's port numbers on 127.0.0.2. A socket of an
  // earlier test's server may still hold one for a moment while it closes:
  // try again for a few seconds before calling the port taken.
  auto start_proxy = [](const CuttingProxy::Options& options) {
    auto proxy = CuttingProxy::Start(options);
    for (int i = 0; i < 30 && !proxy.ok(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      proxy = CuttingProxy::Start(options);
    }
    if (!proxy.ok()) {  // say who holds the port
      const std::string command =
          "ss -Htanp 'sport = :" + std::to_string(options.listen_port) +
          "' 2>&1";
      std::string held;
      if (FILE* p = ::popen(command.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) held += buf;
        ::pclose(p);
      }
      ADD_FAILURE() << proxy.status().ToString() << "; held by:\n" << held;
    }
    return proxy;
  };
  if (ftp_) {
    auto control = start_proxy({.listen_host = "127.0.0.2",
                                .listen_port = server_port_,
                                .target_port = server_port_});
    ASSERT_TRUE(control.ok()) << control.status().ToString();
    kept.push_back(std::move(*control));
    for (int p = data_port_; p < data_port_ + kDataPorts; ++p) {
      links.push_back({"127.0.0.2", p, p});
    }
    dest_.url = "ftps://127.0.0.2:" + std::to_string(server_port_) + "/in";
  } else {
    links.push_back({"127.0.0.1", proxy_port_, server_port_});
  }
  // Each connection is cut after 512 KiB; the network heals during the
  // back-off.
  std::vector<std::unique_ptr<CuttingProxy>> cut;
  for (const Link& l : links) {
    auto c = start_proxy({.listen_host = l.host,
                          .listen_port = l.port,
                          .target_port = l.target,
                          .cut_after_bytes = 512 << 10});
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    cut.push_back(std::move(*c));
  }
  on_sleep_ = [&] {
    int cuts = 0;
    for (const auto& c : cut) cuts += c->cuts();
    if (cuts == 0) return;
    cut.clear();
    for (const Link& l : links) {
      auto healed = CuttingProxy::Start({.listen_host = l.host,
                                         .listen_port = l.port,
                                         .target_port = l.target});
      ASSERT_TRUE(healed.ok()) << healed.status().ToString();
      kept.push_back(std::move(*healed));
    }
  };
  std::vector<FileToDeliver> files = {Local("mc_001.csv", 8 << 20),
                                      Local("mc_002.csv", 1000)};
  std::vector<DeliveryResult> r = Run(files);
  EXPECT_TRUE(cut.empty()) << "no connection was cut";
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(r[0].outcome, DeliveryOutcome::kDelivered) << r[0].error.ToString();
  ASSERT_GE(r[0].attempts.size(), 1u);
  EXPECT_EQ(r[0].attempts[0].error_class, "transient")
      << r[0].attempts[0].message;
  EXPECT_EQ(r[1].outcome, DeliveryOutcome::kDelivered) << r[1].error.ToString();
  // The failed attempt's temporary file was removed on the retry (write-only
  // servers allow REMOVE), or overwritten by it: nothing else is left.
  ExpectLedgerAgreesWithServer(files);
  Done("cut_recovered");
}

TEST_P(InteropTest, RenamedButNotRecordedIsNotSentTwice) {
  Expect({"renamed_not_recorded_not_resent"});
  SKIP_ON_WRITE_ONLY_FTP("the file is sent again and RNTO replaces it");
  // What a crash after the rename and before the ledger record leaves: a
  // claim in the ledger and the complete file under its final name.
  FileToDeliver f = Local("amex_001.csv", 200000);
  LedgerEntry intent{dest_.name, f.name, f.size, f.sha256,
                     f.batch_id, "",     0,      false};
  ASSERT_TRUE(ledger_->RecordIntent(intent).ok());
  fs::copy_file(f.local_path, root_ + "/in/" + f.name);
  const auto mtime = fs::last_write_time(root_ + "/in/" + f.name);
  std::vector<DeliveryResult> r = Run({f});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].outcome, DeliveryOutcome::kAlreadyDelivered)
      << r[0].error.ToString();
  EXPECT_EQ(mtime, fs::last_write_time(root_ + "/in/" + f.name));
  ExpectLedgerAgreesWithServer({f});
  Done("renamed_not_recorded_not_resent");
}

TEST_P(InteropTest, AForeignFileUnderTheNameIsNeverOverwritten) {
  Expect({"foreign_file_kept"});
  SKIP_ON_WRITE_ONLY_FTP("RNTO replaces it; nothing can check first");
  FileToDeliver f = Local("disc_001.csv", 5000);
  testing::WriteFileAs(root_ + "/in/" + f.name, "someone else's file\n");
  std::vector<DeliveryResult> r = Run({f});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].outcome, DeliveryOutcome::kFailed);
  EXPECT_EQ(r[0].error.code(), StatusCode::kAlreadyExists)
      << r[0].error.ToString();
  EXPECT_EQ(ReadAll(root_ + "/in/" + f.name), "someone else's file\n");
  EXPECT_EQ(*ledger_->CountDelivered(), 0);
  Done("foreign_file_kept");
}

// What the server allows, observed with the transport itself (not the
// delivery protocol, which avoids what it cannot rely on): recorded for
// docs/interop.md.
TEST_P(InteropTest, WhatTheServerAllows) {
  Expect({"server", "stat", "fsync", "posix_rename", "rename_overwrite"});
  Done("server", PeerProtocol(GetParam()) + "|" +
                     (dest_.write_only ? "write_only" : "") + "|" +
                     PeerDescription(GetParam()));
  // STAT (SFTP) or SIZE (FTP) of a file that is there, asked without
  // write_only so the request is sent.
  const std::string there = "probe_there.csv";
  testing::WriteFileAs(root_ + "/in/" + there, "12345");
  DestinationConfig asking = dest_;
  asking.write_only = false;
  auto t = MakeTransport(asking);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto size = (*t)->RemoteSize(there);
  std::string stat;
  if (size.ok() && size->has_value() && **size == 5) {
    stat = "allowed";
  } else if (size.ok() && !size->has_value()) {
    stat = "refused: answers as if the file were absent";
  } else if (size.status().code() == StatusCode::kPermissionDenied) {
    stat = "refused";
  } else {
    ADD_FAILURE() << "size of a 5-byte file: "
                  << (size.ok() ? std::to_string(size->value_or(0))
                                : size.status().ToString());
  }
  Done("stat", stat);
  if (ftp_) {
    Done("fsync", "FTP has no such request");
    Done("posix_rename", "FTP has no such request");
  } else {
    auto offers = SftpOffers(t->get());
    ASSERT_TRUE(offers.ok()) << offers.status().ToString();
    Done("fsync", offers->fsync ? "offered" : "not offered");
    Done("posix_rename", offers->posix_rename ? "offered" : "not offered");
  }
  // A plain rename onto a name that is taken, without any check first
  // (write_only): does the server replace the file?
  DestinationConfig blind = dest_;
  blind.write_only = true;
  auto b = MakeTransport(blind);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  WriteRandomFile(local_ + "/probe", 1000);
  ASSERT_TRUE((*b)->Upload(local_ + "/probe", ".probe.part").ok());
  Status renamed = (*b)->Rename(".probe.part", there, false);
  const bool kept = ReadAll(root_ + "/in/" + there) == "12345";
  std::string overwrite;
  if (renamed.ok() && !kept) {
    overwrite = "overwrites";
  } else if (!renamed.ok() && kept) {
    overwrite = "refuses";
  } else {
    ADD_FAILURE() << "rename said " << renamed.ToString()
                  << (kept ? " and kept" : " and replaced") << " the file";
  }
  Done("rename_overwrite", overwrite);
}

INSTANTIATE_TEST_SUITE_P(Servers, InteropTest, ::testing::ValuesIn(kAllPeers),
                         [](const auto& info) { return PeerName(info.param); });

// Every server of the matrix, so scripts/interop_matrix.py can tell a
// complete run (which must match docs/interop.md) from a partial one, and a
// server dropped from the tests from one that did not run.
TEST(InteropMatrix, ListsEveryServer) {
  Status root = testing::RequireRoot();
  if (!root.ok()) GTEST_SKIP() << root.message();
  for (Peer p : kAllPeers) RecordResult(PeerName(p), "listed", "pass", "");
}

// ---- What a drop box refuses, and what cbpipe says about it ----

class DropBoxTest : public InteropTest {};

TEST_P(DropBoxTest, RefusedStatNamesTheRequestThePathAndTheOption) {
  dest_.write_only = false;
  auto t = MakeSftpTransport(dest_);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto size = (*t)->RemoteSize("x.csv");
  EXPECT_EQ(size.status().code(), StatusCode::kPermissionDenied)
      << size.status().ToString();
  EXPECT_THAT(size.status().message(),
              HasSubstr("server refused STAT on /in/x.csv"));
  EXPECT_THAT(size.status().message(),
              HasSubstr("set write_only = true for destination 'visa'"));
  // Upload and rename still work on the same connection.
  WriteRandomFile(local_ + "/x", 70000);
  ASSERT_TRUE((*t)->Upload(local_ + "/x", "x.csv.part").ok());
  ASSERT_TRUE((*t)->Rename("x.csv.part", "x.csv", false).ok());
  EXPECT_EQ(ReadAll(root_ + "/in/x.csv"), ReadAll(local_ + "/x"));
}

INSTANTIATE_TEST_SUITE_P(Servers, DropBoxTest,
                         ::testing::Values(Peer::kOpenSshDropBoxUndeclared),
                         [](const auto& info) { return PeerName(info.param); });

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// A server that speaks only TLS 1.3 (ProFTPD TLSProtocol TLSv1.3) and
// requires TLS session reuse on data connections: the transport switches to
// TLS 1.3 with a fresh connection per upload, and every upload is complete
// (without DrainAndClose in curl_transport.cc some lose their end to a TCP
// reset; without the fresh connection the second one is refused).
TEST(ProFtpdTls13OnlyTest, UploadsCompleteWithSessionReuse) {
  Status root = testing::RequireRoot();
  if (!root.ok()) GTEST_SKIP() << root.message();
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "cbpipe-interop-test-XXXXXX")
          .string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  auto server = ProFtpdServer::Start(dir + "/server",
                                     testing::ProFtpdMode::kFtpsTls13Only);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE(testing::MakeRemoteDir(server->root_dir(), "in", true).ok());
  ::setenv("CBPIPE_INTEROP_PASSWORD", server->password().c_str(), 1);
  DestinationConfig d;
  d.name = "mc";
  d.url = server->url("in");
  d.username = server->user();
  d.password_ref = "env:CBPIPE_INTEROP_PASSWORD";
  d.ca_file = server->ca_cert_path();
  d.connect_timeout_seconds = 5;
  auto t = MakeTransport(d);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::string data = WriteRandomFile(dir + "/f", 3 << 20);
  for (int i = 0; i < 20; ++i) {
    const std::string name = "f" + std::to_string(i) + ".csv";
    Status s = (*t)->Upload(dir + "/f", name + ".part");
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = (*t)->Rename(name + ".part", name, false);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(ReadAll(server->root_dir() + "/in/" + name) == data) << name;
  }
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
}  // namespace cbpipe
