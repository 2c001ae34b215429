#include "app/destination_prober.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cbpipe {
namespace {

constexpr auto kProbeTimeout = std::chrono::milliseconds(2000);

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Closes the fd when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

using Clock = std::chrono::steady_clock;

int MsLeft(Clock::time_point deadline) {
  return static_cast<int>(std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               Clock::now())
             .count()));
}

// Connects to one address before `deadline`: "" or why not.
std::string ConnectTo(const addrinfo& ai, Clock::time_point deadline, Fd* out) {
  Fd fd{::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai.ai_protocol)};
  if (fd.fd < 0) return std::string("socket: ") + std::strerror(errno);
  if (::connect(fd.fd, ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return std::strerror(errno);
    pollfd p{fd.fd, POLLOUT, 0};
    const int n = ::poll(&p, 1, MsLeft(deadline));
    if (n == 0) return "connect timed out";
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n < 0 || err != 0) return std::strerror(err ? err : errno);
  }
  std::swap(out->fd, fd.fd);
  return "";
}

}  // namespace

Reachability ProbeDestination(const ConsoleDestination& d, bool implicit_tls,
                              std::chrono::milliseconds timeout,
                              int64_t now_ms) {
  Reachability r;
  r.checked_ms = now_ms;
  const auto deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(d.port);
  if (const int rc =
          ::getaddrinfo(d.host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    r.error = "cannot resolve " + d.host + ": " + ::gai_strerror(rc);
    return r;
  }
  Fd fd;
  std::string error = "no address";
  for (addrinfo* ai = found; ai && fd.fd < 0; ai = ai->ai_next)
    error = ConnectTo(*ai, deadline, &fd);
  ::freeaddrinfo(found);
  if (fd.fd < 0) {
    r.error = "connect to " + d.host + ":" + port + ": " + error;
    return r;
  }
  if (implicit_tls) {  // the server waits for our TLS hello
    r.up = true;
    return r;
  }
  // The greeting's first line.
  std::string greeting;
  while (greeting.find('\n') == std::string::npos && greeting.size() < 256) {
    pollfd p{fd.fd, POLLIN, 0};
    if (::poll(&p, 1, MsLeft(deadline)) <= 0) break;
    char buf[256];
    const ssize_t n = ::recv(fd.fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    greeting.append(buf, static_cast<size_t>(n));
  }
  const std::string expected = d.protocol == "sftp" ? "SSH-" : "220";
  if (greeting.rfind(expected, 0) == 0) {
    r.up = true;
    return r;
  }
  r.error = greeting.empty()
                ? "no greeting from " + d.host + ":" + port + " within " +
                      std::to_string(timeout.count()) + " ms"
                : "unexpected greeting from " + d.host + ":" + port +
                      " (expected " + expected + "...)";
  return r;
}

DestinationProber::DestinationProber(
    std::vector<ConsoleDestination> destinations,
    std::vector<std::string> implicit_tls, Metrics* metrics)
    : destinations_(std::move(destinations)),
      implicit_tls_(std::move(implicit_tls)),
      metrics_(metrics) {}

DestinationProber::~DestinationProber() { Stop(); }

void DestinationProber::Start(std::chrono::milliseconds interval) {
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      ProbeAll();
      lock.lock();
      wake_.wait_for(lock, interval, [this] { return stop_; });
    }
  });
}

void DestinationProber::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, Reachability> DestinationProber::Results() const {
  std::lock_guard<std::mutex> lock(mu_);
  return results_;
}

void DestinationProber::ProbeAll() {
  for (const ConsoleDestination& d : destinations_) {
    if (d.protocol == "file" || d.host.empty()) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    const bool implicit = std::find(implicit_tls_.begin(), implicit_tls_.end(),
                                    d.name) != implicit_tls_.end();
    Reachability r = ProbeDestination(d, implicit, kProbeTimeout, WallMs());
    if (metrics_) metrics_->Set(kDestinationUp, {d.name}, r.up ? 1 : 0);
    std::lock_guard<std::mutex> lock(mu_);
    results_[d.name] = std::move(r);
  }
}

}  // namespace cbpipe
