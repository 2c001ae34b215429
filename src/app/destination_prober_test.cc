// The prober against real servers: sshd and vsftpd up, then stopped; a
// port that answers with something else; no server at all.
#include "app/destination_prober.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <thread>

#include "servers/test_servers.h"
#include "telemetry/in_memory_metrics.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;

// A listening socket that accepts and says `hello`, on its own thread.
class FakeGreeter {
 public:
  explicit FakeGreeter(std::string hello) : hello_(std::move(hello)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ::send(c, hello_.data(), hello_.size(), MSG_NOSIGNAL);
      char buf[16];
      ::recv(c, buf, sizeof buf, 0);  // until the prober closes
      ::close(c);
    });
  }
  ~FakeGreeter() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  std::string hello_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(DestinationProber, RealServersUpThenStopped) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to start sshd/vsftpd";
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "cbpipe-prober-XXXXXX")
          .string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  auto ssh = cbpipe::testing::SshServer::Start(dir + "/sftp");
  ASSERT_TRUE(ssh.ok()) << ssh.status().ToString();
  auto ftp = cbpipe::testing::FtpServer::Start(dir + "/ftps");
  ASSERT_TRUE(ftp.ok()) << ftp.status().ToString();
  const std::vector<ConsoleDestination> dests = {
      {"visa", "visa", "sftp", "127.0.0.1", ssh->port(), "/"},
      {"amex", "amex", "ftps", "127.0.0.1", ftp->port(), "/"},
      {"local", "discover", "file", "", 0, "/tmp/"}};
  InMemoryMetrics metrics(PipelineMetricSpecs());
  DestinationProber prober(dests, {}, &metrics);
  prober.ProbeAll();
  auto up = prober.Results();
  ASSERT_EQ(up.size(), 2u);  // file:// is not probed
  EXPECT_TRUE(up["visa"].up) << up["visa"].error;
  EXPECT_TRUE(up["amex"].up) << up["amex"].error;
  EXPECT_GT(up["visa"].checked_ms, 0);
  EXPECT_EQ(metrics.Value(kDestinationUp, {"visa"}), 1);
  EXPECT_EQ(metrics.Value(kDestinationUp, {"amex"}), 1);

  ssh->Stop();
  ftp->Stop();
  prober.ProbeAll();
  auto down = prober.Results();
  EXPECT_FALSE(down["visa"].up);
  EXPECT_NE(down["visa"].error.find("connect to 127.0.0.1:" +
                                    std::to_string(ssh->port())),
            std::string::npos)
      << down["visa"].error;
  EXPECT_FALSE(down["amex"].up);
  EXPECT_EQ(metrics.Value(kDestinationUp, {"visa"}), 0);
  EXPECT_EQ(metrics.Value(kDestinationUp, {"amex"}), 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(DestinationProber, WrongOrMissingGreetingIsDown) {
  FakeGreeter http("HTTP/1.1 400 Bad Request\r\n\r\n");
  Reachability r =
      ProbeDestination({"visa", "visa", "sftp", "127.0.0.1", http.port(), "/"},
                       false, std::chrono::milliseconds(2000), 42);
  EXPECT_FALSE(r.up);
  EXPECT_EQ(r.checked_ms, 42);
  EXPECT_NE(r.error.find("unexpected greeting"), std::string::npos) << r.error;

  FakeGreeter silent("");
  const auto start = std::chrono::steady_clock::now();
  r = ProbeDestination({"amex", "amex", "ftp", "127.0.0.1", silent.port(), "/"},
                       false, std::chrono::milliseconds(300), 0);
  EXPECT_FALSE(r.up);
  EXPECT_NE(r.error.find("no greeting"), std::string::npos) << r.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  // Implicit TLS: the connect is enough.
  FakeGreeter tls("");
  r = ProbeDestination({"amex", "amex", "ftps", "127.0.0.1", tls.port(), "/"},
                       true, std::chrono::milliseconds(300), 0);
  EXPECT_TRUE(r.up) << r.error;

  r = ProbeDestination(
      {"mc", "mastercard", "sftp", "127.0.0.1", FreePort(), "/"}, false,
      std::chrono::milliseconds(2000), 0);
  EXPECT_FALSE(r.up);
  EXPECT_NE(r.error.find("refused"), std::string::npos) << r.error;
}

TEST(DestinationProber, StartProbesAtOnceAndStopJoinsPromptly) {
  FakeGreeter ssh("SSH-2.0-Fake\r\n");
  DestinationProber prober(
      {{"visa", "visa", "sftp", "127.0.0.1", ssh.port(), "/"}}, {}, nullptr);
  prober.Start(std::chrono::hours(1));
  for (int i = 0; i < 200 && prober.Results().empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(prober.Results().size(), 1u);
  EXPECT_TRUE(prober.Results()["visa"].up);
  const auto start = std::chrono::steady_clock::now();
  prober.Stop();
  prober.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

}  // namespace
}  // namespace cbpipe
