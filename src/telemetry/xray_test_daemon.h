// For tests: a UDP socket on 127.0.0.1 standing in for the X-Ray daemon,
// which keeps the datagrams XRayTracer sends it (see notify/test_receivers.h
// for the same idea with HTTP and SMTP).
//
//   XRayTestDaemon daemon;
//   options.daemon_address = daemon.address();
//   ... trace something ...
//   std::vector<nlohmann::json> docs = daemon.Documents();  // in order sent
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "telemetry/xray.h"

namespace cbpipe {

class XRayTestDaemon {
 public:
  XRayTestDaemon() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    int big = 1 << 21;  // a whole run's datagrams while nobody reads
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  }
  ~XRayTestDaemon() { ::close(fd_); }
  XRayTestDaemon(const XRayTestDaemon&) = delete;
  XRayTestDaemon& operator=(const XRayTestDaemon&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The datagrams received until none comes for `quiet_ms`.
  std::vector<std::string> Datagrams(int quiet_ms = 300) {
    std::vector<std::string> out;
    std::vector<char> buf(1 << 17);
    pollfd p{fd_, POLLIN, 0};
    while (::poll(&p, 1, quiet_ms) == 1) {
      ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      out.emplace_back(buf.data(), static_cast<size_t>(n));
    }
    return out;
  }

  // Their documents, each checked for the X-Ray header, the size limit and
  // the absence of the test card number 4111111111111111.
  static std::vector<nlohmann::json> Parse(
      const std::vector<std::string>& datagrams) {
    static const std::string kHeader = "{\"format\":\"json\",\"version\":1}\n";
    std::vector<nlohmann::json> out;
    for (const std::string& d : datagrams) {
      EXPECT_LE(d.size(), kXRayMaxDatagramBytes);
      EXPECT_EQ(d.substr(0, kHeader.size()), kHeader);
      EXPECT_EQ(d.find("4111111111111111"), std::string::npos) << d;
      out.push_back(nlohmann::json::parse(d.substr(kHeader.size())));
    }
    return out;
  }
  std::vector<nlohmann::json> Documents(int quiet_ms = 300) {
    return Parse(Datagrams(quiet_ms));
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace cbpipe
