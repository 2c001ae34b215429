#include "servers/moto_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace cbpipe::testing {
namespace {

using Clock = std::chrono::steady_clock;

// `name` on PATH, else in pyenv's shims: the machine image installs moto
// with pyenv, whose shims a non-login shell (a CI runner) may not have on
// its PATH.
StatusOr<std::string> FindOnPath(const std::string& name) {
  const char* path = ::getenv("PATH");
  std::string dirs_list = path ? path : "";
  if (const char* root = ::getenv("PYENV_ROOT"); root && *root)
    dirs_list += std::string(":") + root + "/shims";
  if (const char* home = ::getenv("HOME"); home && *home)
    dirs_list += std::string(":") + home + "/.pyenv/shims";
  std::stringstream dirs(dirs_list);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return NotFoundError(name +
                       " is not on PATH nor in pyenv's shims (pip install "
                       "'moto[server]')");
}

std::string LogTail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

}  // namespace

StatusOr<int> LoopbackHttpStatus(int port, const std::string& method,
                                 const std::string& path,
                                 double timeout_seconds) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return UnavailableError("socket failed");
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_seconds);
  tv.tv_usec = static_cast<suseconds_t>(
      (timeout_seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return UnavailableError("connect 127.0.0.1:" + std::to_string(port) + ": " +
                            std::strerror(errno));
  }
  std::string request = method + " " + path +
                        " HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 0\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return UnavailableError("send failed");
  }
  std::string answer;
  char buf[512];
  while (answer.find("\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK"
  if (answer.size() < 12 || !answer.starts_with("HTTP/")) {
    return UnavailableError("no HTTP answer on 127.0.0.1:" +
                            std::to_string(port));
  }
  return std::atoi(answer.c_str() + answer.find(' ') + 1);
}

StatusOr<std::unique_ptr<MotoServer>> MotoServer::Start() {
  CBPIPE_ASSIGN_OR_RETURN(std::string binary, FindOnPath("moto_server"));
  std::unique_ptr<MotoServer> server(new MotoServer());
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "cbpipe-moto-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return InternalError("mkdtemp failed");
  server->dir_ = tmpl;
  server->log_path_ = server->dir_ + "/moto.log";
  Status last = UnavailableError("moto_server did not start");
  // The port may be taken between FindFreePort and moto's bind: try again.
  for (int round = 0; round < 3; ++round) {
    CBPIPE_ASSIGN_OR_RETURN(server->port_, FindFreePort());
    CBPIPE_ASSIGN_OR_RETURN(
        server->process_, ChildProcess::Spawn({binary, "-H", "127.0.0.1", "-p",
                                               std::to_string(server->port_)},
                                              server->log_path_));
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      if (!server->process_.Running()) {
        last = UnavailableError("moto_server exited at start: " +
                                LogTail(server->log_path_));
        break;
      }
      StatusOr<int> status =
          LoopbackHttpStatus(server->port_, "GET", "/moto-api/");
      if (status.ok() && *status == 200) return server;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      last = UnavailableError("moto_server did not answer on port " +
                              std::to_string(server->port_) +
                              " within 30 s: " + LogTail(server->log_path_));
    }
    server->process_.Kill();
  }
  return last;
}

MotoServer::~MotoServer() {
  process_.Kill();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string MotoServer::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

Status MotoServer::Reset() {
  CBPIPE_ASSIGN_OR_RETURN(
      int status, LoopbackHttpStatus(port_, "POST", "/moto-api/reset", 10));
  if (status != 200) {
    return InternalError("moto reset answered HTTP " + std::to_string(status));
  }
  return OkStatus();
}

void MotoServer::UseTestCredentials() {
  ::setenv("AWS_ACCESS_KEY_ID", "testing", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
  ::setenv("AWS_REGION", "us-east-1", 1);
  ::setenv("AWS_DEFAULT_REGION", "us-east-1", 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  ::unsetenv("AWS_PROFILE");
}

}  // namespace cbpipe::testing
