// MakeNetworkTransport against real servers on 127.0.0.1: OpenSSH sshd
// (SFTP) and vsftpd (FTP, explicit and implicit FTPS), started per test by
// tests/servers. Needs root (CI runs as root); skipped otherwise.
#include "deliver/curl_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "servers/server_fixture.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using ::cbpipe::testing::CuttingProxy;
using ::cbpipe::testing::FtpServer;
using ::cbpipe::testing::FtpServerOptions;
using ::cbpipe::testing::FtpTls;
using ::cbpipe::testing::MakeRemoteDir;
using ::cbpipe::testing::SshServer;
using ::cbpipe::testing::Kind;
using ::cbpipe::testing::KindName;
using ::cbpipe::testing::ReadAll;
using ::cbpipe::testing::WriteRandomFile;
using ::cbpipe::testing::kPasswordEnv;

// Parameterised by protocol.
class ServerTest : public ::cbpipe::testing::ServerTest,
                   public ::testing::WithParamInterface<Kind> {};
using ::testing::HasSubstr;
using ::testing::Not;

class TransportTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    StartServer(GetParam());
  }
};

TEST_P(TransportTest, UploadRenameAndSizeOnOneConnection) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::string data = WriteRandomFile(local_ + "/a.csv", 3 * 1024 * 1024 + 7);
  std::string small = WriteRandomFile(local_ + "/b.csv", 10, 2);
  std::string empty = WriteRandomFile(local_ + "/c.csv", 0);

  Status s = t->Upload(local_ + "/a.csv", "a.csv.part");
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = t->Rename("a.csv.part", "a.csv", false);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(fs::exists(Remote("in/a.csv.part")));
  EXPECT_TRUE(ReadAll(Remote("in/a.csv")) == data) << "content differs";
  auto size = t->RemoteSize("a.csv");
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  ASSERT_TRUE(size->has_value());
  EXPECT_EQ(**size, data.size());

  // More files over the same transport (and connection).
  for (const char* name : {"b.csv", "c.csv"}) {
    s = t->Upload(local_ + "/" + name, std::string(name) + ".part");
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = t->Rename(std::string(name) + ".part", name, false);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_EQ(ReadAll(Remote("in/b.csv")), small);
  EXPECT_TRUE(fs::exists(Remote("in/c.csv")));
  EXPECT_EQ(fs::file_size(Remote("in/c.csv")), 0u);
  size = t->RemoteSize("c.csv");
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, std::optional<uint64_t>(0));
}

// Sizes around the SFTP write chunk (32 KiB) and the 64 WRITEs in flight,
// where the last WRITE, fsync@openssh.com and CLOSE go out together: each
// file is whole on the server the moment Upload returns (every reply is in),
// over one connection that stays in step from file to file.
TEST_P(TransportTest, UploadsEverySizeAroundTheWriteChunkByteForByte) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  constexpr size_t kChunk = 32 * 1024;
  const size_t sizes[] = {0,          1,           kChunk - 1,      kChunk,
                          kChunk + 1, 64 * kChunk, 64 * kChunk + 1, 10240};
  int seed = 10;
  for (size_t size : sizes) {
    const std::string name = "s" + std::to_string(size);
    std::string data = WriteRandomFile(local_ + "/" + name, size, ++seed);
    Status s = t->Upload(local_ + "/" + name, name + ".part");
    ASSERT_TRUE(s.ok()) << size << ": " << s.ToString();
    EXPECT_TRUE(ReadAll(Remote("in/" + name + ".part")) == data)
        << size << ": content differs right after Upload";
  }
}

TEST_P(TransportTest, UploadTruncatesAnExistingFile) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/long", 100000);
  std::string data = WriteRandomFile(local_ + "/short", 1000, 3);
  ASSERT_TRUE(t->Upload(local_ + "/long", "x.part").ok());
  ASSERT_TRUE(t->Upload(local_ + "/short", "x.part").ok());
  EXPECT_EQ(ReadAll(Remote("in/x.part")), data);
}

TEST_P(TransportTest, RemoteSizeOfAMissingFileIsNullopt) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  auto size = t->RemoteSize("nothing-here.csv");
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_FALSE(size->has_value());
}

TEST_P(TransportTest, RenameOntoAnExistingNameFailsUnlessReplace) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  std::string old_data = WriteRandomFile(local_ + "/old", 5000, 4);
  std::string new_data = WriteRandomFile(local_ + "/new", 6000, 5);
  ASSERT_TRUE(t->Upload(local_ + "/old", "f.csv").ok());
  ASSERT_TRUE(t->Upload(local_ + "/new", "f.csv.part").ok());

  Status s = t->Rename("f.csv.part", "f.csv", false);
  EXPECT_EQ(s.code(), StatusCode::kAlreadyExists) << s.ToString();
  EXPECT_EQ(ReadAll(Remote("in/f.csv")), old_data);
  EXPECT_EQ(ReadAll(Remote("in/f.csv.part")), new_data);

  s = t->Rename("f.csv.part", "f.csv", true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(Remote("in/f.csv")), new_data);
  EXPECT_FALSE(fs::exists(Remote("in/f.csv.part")));
}

TEST_P(TransportTest, RenameOfAMissingFileIsNotFound) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  Status s = t->Rename("ghost.part", "ghost", false);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
}

TEST_P(TransportTest, RemoveExistingAndMissing) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/r", 10);
  ASSERT_TRUE(t->Upload(local_ + "/r", "r.part").ok());
  ASSERT_TRUE(fs::exists(Remote("in/r.part")));
  Status s = t->Remove("r.part");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(fs::exists(Remote("in/r.part")));
  s = t->Remove("r.part");
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_P(TransportTest, MissingRemoteDirectoryIsPermanent) {
  dest_.url = UrlOf("no-such-dir");
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/m", 100);
  Status s = t->Upload(local_ + "/m", "m.part");
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(s.IsTransient()) << s.ToString();
  EXPECT_THAT(s.code(), ::testing::AnyOf(StatusCode::kNotFound,
                                         StatusCode::kPermissionDenied))
      << s.ToString();
  auto size = t->RemoteSize("m.part");
  EXPECT_EQ(size.status().code(), StatusCode::kNotFound)
      << size.status().ToString();
  EXPECT_FALSE(fs::exists(Remote("no-such-dir")));
}

TEST_P(TransportTest, NotWritableDirectoryIsPermissionDenied) {
  dest_.url = UrlOf("readonly");
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/w", 100);
  Status s = t->Upload(local_ + "/w", "w.part");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
}

TEST_P(TransportTest, WrongPasswordIsUnauthenticatedAndFast) {
  ::setenv("CBPIPE_TEST_WRONG_PASSWORD", "not-the-password", 1);
  dest_.password_ref = "env:CBPIPE_TEST_WRONG_PASSWORD";
  dest_.private_key_ref.clear();
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/p", 100);
  auto start = std::chrono::steady_clock::now();
  Status s = t->Upload(local_ + "/p", "p.part");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_THAT(s.message(), Not(HasSubstr("not-the-password")));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_P(TransportTest, CorrectPasswordWorks) {
  dest_.password_ref = std::string("env:") + kPasswordEnv;
  dest_.private_key_ref.clear();
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/p", 100);
  Status s = t->Upload(local_ + "/p", "p.part");
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_THAT(s.message(), Not(HasSubstr(::getenv(kPasswordEnv))));
}

TEST_P(TransportTest, ServerDownIsUnavailable) {
  auto port = testing::FindFreePort();
  ASSERT_TRUE(port.ok());
  dest_.url = UrlOf("in", "127.0.0.1", *port);
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/d", 100);
  Status s = t->Upload(local_ + "/d", "d.part");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_TRUE(s.IsTransient());
}

TEST_P(TransportTest, ServerStoppedBetweenCallsIsTransient) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/s", 100);
  ASSERT_TRUE(t->Upload(local_ + "/s", "s.part").ok());
  if (sftp_) sftp_->Stop();
  if (ftp_) ftp_->Stop();
  Status s = t->Upload(local_ + "/s", "s2.part");
  EXPECT_TRUE(s.IsTransient()) << s.ToString();
}

TEST_P(TransportTest, LocalFileMissingIsNotFound) {
  auto t = Make();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Upload(local_ + "/absent", "x.part").code(),
            StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(AllProtocols, TransportTest,
                         ::testing::Values(Kind::kSftp, Kind::kFtp,
                                           Kind::kFtpsExplicit,
                                           Kind::kFtpsImplicit),
                         [](const auto& info) { return KindName(info.param); });

// ---- A connection cut in the middle of an upload ----

class CutTransferTest : public ServerTest {};

TEST_P(CutTransferTest, CutMidUploadIsTransientAndLeavesNoFinalFile) {
  const uint64_t kCutAfter = 1 << 20;
  if (GetParam() == Kind::kSftp) {
    // One connection: a proxy in front of sshd.
    StartServer(Kind::kSftp);
    auto proxy = CuttingProxy::Start(
        {.target_port = sftp_->port(), .cut_after_bytes = kCutAfter});
    ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
    dest_.url = UrlOf("in", "127.0.0.1", (*proxy)->port());
    dest_.known_hosts.clear();  // its line names the real port
    dest_.host_key_sha256 = sftp_->host_key_sha256();
    proxies_.push_back(std::move(*proxy));
  } else {
    // vsftpd announces 127.0.0.2:data_port; proxies on 127.0.0.2 forward
    // the control connection untouched and cut the data connection.
    StartServer(GetParam(), "127.0.0.2", /*pasv_port_count=*/1);
    auto control = CuttingProxy::Start({.listen_host = "127.0.0.2",
                                        .listen_port = ftp_->port(),
                                        .target_port = ftp_->port()});
    ASSERT_TRUE(control.ok()) << control.status().ToString();
    auto data = CuttingProxy::Start({.listen_host = "127.0.0.2",
                                     .listen_port = ftp_->data_port(),
                                     .target_port = ftp_->data_port(),
                                     .cut_after_bytes = kCutAfter});
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    dest_.url = UrlOf("in", "127.0.0.2");
    proxies_.push_back(std::move(*control));
    proxies_.push_back(std::move(*data));
  }
  auto t = Make();
  ASSERT_NE(t, nullptr);
  WriteRandomFile(local_ + "/big.csv", 16 << 20);
  // Under parallel tests a data connection can also fail for other
  // reasons (a port another server just took); try again until the proxy
  // has really cut one, and check every failure is transient.
  Status s;
  for (int attempt = 0; attempt < 3 && proxies_.back()->cuts() == 0;
       ++attempt) {
    s = t->Upload(local_ + "/big.csv", "big.csv.part");
    EXPECT_TRUE(s.IsTransient()) << s.ToString();
  }
  RecordProperty("outcome", s.ToString());
  EXPECT_EQ(proxies_.back()->cuts(), 1);
  EXPECT_FALSE(fs::exists(Remote("in/big.csv")));
  if (fs::exists(Remote("in/big.csv.part"))) {
    EXPECT_LT(fs::file_size(Remote("in/big.csv.part")), 16u << 20);
  }
}

INSTANTIATE_TEST_SUITE_P(AllProtocols, CutTransferTest,
                         ::testing::Values(Kind::kSftp, Kind::kFtp,
                                           Kind::kFtpsExplicit,
                                           Kind::kFtpsImplicit),
                         [](const auto& info) { return KindName(info.param); });

// ---- SFTP host keys ----

class SftpHostKeyTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    StartServer(Kind::kSftp);
    WriteRandomFile(local_ + "/h", 100);
  }
  Status TryUpload() {
    auto t = MakeNetworkTransport(dest_);
    if (!t.ok()) return t.status();
    return (*t)->Upload(local_ + "/h", "h.part");
  }
};

TEST_F(SftpHostKeyTest, PinnedFingerprintWithOrWithoutPrefix) {
  dest_.known_hosts.clear();
  dest_.host_key_sha256 = sftp_->host_key_sha256();
  EXPECT_TRUE(TryUpload().ok());
  dest_.host_key_sha256 = "SHA256:" + sftp_->host_key_sha256();
  EXPECT_TRUE(TryUpload().ok());
}

TEST_F(SftpHostKeyTest, WrongFingerprintIsFailedPrecondition) {
  dest_.known_hosts.clear();
  std::string wrong = sftp_->host_key_sha256();
  wrong[5] = wrong[5] == 'A' ? 'B' : 'A';
  dest_.host_key_sha256 = wrong;
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_FALSE(fs::exists(Remote("in/h.part")));
}

TEST_F(SftpHostKeyTest, KnownHostsWithAnotherKeyIsFailedPrecondition) {
  dest_.known_hosts = sftp_->wrong_known_hosts_path();
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
}

TEST_F(SftpHostKeyTest, KnownHostsWithoutTheHostIsFailedPrecondition) {
  std::string empty = dir_ + "/empty_known_hosts";
  std::ofstream(empty)
      << "[127.0.0.1]:1 ssh-ed25519 "
         "AAAAC3NzaC1lZDI1NTE5AAAAIFVxbm93bmtleXVua25vd25rZXl1bmtub3du\n";
  dest_.known_hosts = empty;
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
}

TEST_F(SftpHostKeyTest, InsecureSkipAcceptsAnyKey) {
  dest_.known_hosts.clear();
  dest_.insecure_skip_host_key = true;
  EXPECT_TRUE(TryUpload().ok());
}

TEST_F(SftpHostKeyTest, PrivateKeyTextFromAnEnvironmentVariable) {
  ::setenv("CBPIPE_TEST_SFTP_KEY", ReadAll(sftp_->client_key_path()).c_str(),
           1);
  dest_.private_key_ref = "env:CBPIPE_TEST_SFTP_KEY";
  Status s = TryUpload();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(fs::exists(Remote("in/h.part")));
  ::unsetenv("CBPIPE_TEST_SFTP_KEY");
}

TEST_F(SftpHostKeyTest, UnknownClientKeyIsUnauthenticated) {
  dest_.private_key_ref = "file:" + sftp_->unknown_key_path();
  auto start = std::chrono::steady_clock::now();
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// ---- FTPS certificates and plain FTP ----

class FtpsCertificateTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (IsSkipped()) return;
    StartServer(Kind::kFtpsExplicit);
    WriteRandomFile(local_ + "/c", 100);
  }
  Status TryUpload() {
    auto t = MakeNetworkTransport(dest_);
    if (!t.ok()) return t.status();
    return (*t)->Upload(local_ + "/c", "c.part");
  }
};

TEST_F(FtpsCertificateTest, UntrustedCertificateIsFailedPrecondition) {
  dest_.ca_file.clear();  // system store: the self-signed cert is unknown
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_THAT(s.message(), Not(HasSubstr(::getenv(kPasswordEnv))));
  EXPECT_FALSE(fs::exists(Remote("in/c.part")));
}

TEST_F(FtpsCertificateTest, TrustedThroughCaFile) {
  Status s = TryUpload();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(FtpsCertificateTest, HostNameMustMatchTheCertificate) {
  // The certificate names 127.0.0.1, 127.0.0.2 and localhost, not 127.0.0.3.
  auto proxy = CuttingProxy::Start(
      {.listen_host = "127.0.0.3", .target_port = ftp_->port()});
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  dest_.url = ftp_->url("in", "127.0.0.3", (*proxy)->port());
  proxies_.push_back(std::move(*proxy));
  Status s = TryUpload();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
}

TEST_F(FtpsCertificateTest, PlainFtpWithoutAllowInsecureIsRefused) {
  DestinationConfig d = dest_;
  d.url = "ftp://127.0.0.1:" + std::to_string(ftp_->port()) + "/in";
  d.allow_insecure = false;
  auto t = MakeNetworkTransport(d);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("allow_insecure"));
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// A server that accepts the TCP connection and then says nothing (no SSH
// banner): the SFTP transport gives up after connect_timeout_seconds.
TEST(SftpTimeoutTest, SilentServerTimesOutInsteadOfHanging) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);  // the kernel accepts; nobody answers
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  DestinationConfig d;
  d.name = "silent";
  d.url = "sftp://u@127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/in";
  d.password_ref = "env:CBPIPE_TEST_SILENT_PASSWORD";
  ::setenv("CBPIPE_TEST_SILENT_PASSWORD", "x", 1);
  d.host_key_sha256 = std::string(43, 'A');
  d.connect_timeout_seconds = 1;
  d.stall_timeout_seconds = 30;
  auto t = MakeNetworkTransport(d);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const auto start = std::chrono::steady_clock::now();
  auto size = (*t)->RemoteSize("x.csv");
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(size.status().code(), StatusCode::kDeadlineExceeded)
      << size.status().ToString();
  EXPECT_TRUE(size.status().IsTransient());
  EXPECT_LT(took, std::chrono::seconds(3));
}

}  // namespace
}  // namespace cbpipe
