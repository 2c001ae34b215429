#include "servers/http_fault_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

namespace cbpipe::testing {
namespace {

std::string Lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ReasonPhrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n =
        ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads one request from `fd` (buffer `pending` keeps what follows it).
// False when the peer closed or the server stops.
bool ReadRequest(int fd, const std::atomic<bool>& stop, std::string* pending,
                 std::string* raw, HttpRecordedRequest* out) {
  size_t need = std::string::npos;
  size_t head_end = std::string::npos;
  char buf[65536];
  while (true) {
    if (head_end == std::string::npos) {
      head_end = pending->find("\r\n\r\n");
      if (head_end != std::string::npos) {
        need = head_end + 4;
        std::string head = pending->substr(0, head_end);
        size_t line_end = head.find("\r\n");
        std::string request_line = head.substr(0, line_end);
        size_t sp1 = request_line.find(' ');
        size_t sp2 = request_line.rfind(' ');
        out->method = request_line.substr(0, sp1);
        out->target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
        size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
          size_t end = head.find("\r\n", pos);
          if (end == std::string::npos) end = head.size();
          std::string line = head.substr(pos, end - pos);
          size_t colon = line.find(':');
          if (colon != std::string::npos) {
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            out->headers.emplace_back(Lower(line.substr(0, colon)), value);
          }
          pos = end + 2;
        }
        std::string length = out->Header("content-length");
        if (!length.empty()) need += std::stoul(length);
      }
    }
    if (need != std::string::npos && pending->size() >= need) {
      *raw = pending->substr(0, need);
      out->body = raw->substr(head_end + 4);
      pending->erase(0, need);
      return true;
    }
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, 50);
    if (stop.load()) return false;
    if (ready <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    pending->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

std::string HttpRecordedRequest::Header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

HttpFaultServer::HttpFaultServer(std::vector<HttpStep> script,
                                 int upstream_port)
    : script_(std::move(script)), upstream_port_(upstream_port) {}

HttpFaultServer::~HttpFaultServer() {
  stop_ = true;
  released_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

Status HttpFaultServer::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return UnavailableError(std::string("fault server listen: ") +
                            std::strerror(errno));
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return OkStatus();
}

std::string HttpFaultServer::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::vector<HttpRecordedRequest> HttpFaultServer::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

HttpStep HttpFaultServer::NextStep() {
  std::lock_guard<std::mutex> lock(mu_);
  if (next_step_ < script_.size()) return script_[next_step_++];
  return upstream_port_ ? HttpStep::Forward() : HttpStep::Answer(200);
}

void HttpFaultServer::AcceptLoop() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void HttpFaultServer::Serve(int fd) {
  std::string pending;
  while (!stop_.load()) {
    std::string raw;
    HttpRecordedRequest request;
    if (!ReadRequest(fd, stop_, &pending, &raw, &request)) break;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    HttpStep step = NextStep();
    if (step.kind == HttpStep::Kind::kHang) {
      std::unique_lock<std::mutex> lock(mu_);
      released_.wait(lock, [this] { return stop_.load(); });
      break;
    }
    if (step.kind == HttpStep::Kind::kClose) break;
    if (step.kind == HttpStep::Kind::kForward) {
      if (serialize_forwarding_) {
        std::lock_guard<std::mutex> one_at_a_time(forward_mu_);
        Forward(fd, raw);
      } else {
        Forward(fd, raw);
      }
      break;
    }
    std::string answer = "HTTP/1.1 " + std::to_string(step.status) + " " +
                         ReasonPhrase(step.status) + "\r\n";
    for (const auto& [name, value] : step.headers) {
      answer += name + ": " + value + "\r\n";
    }
    // An echo of what the client sent, for tests that a client never
    // repeats its own secrets in errors.
    for (size_t at = step.body.find("$AUTHORIZATION"); at != std::string::npos;
         at = step.body.find("$AUTHORIZATION")) {
      step.body.replace(at, 14, request.Header("authorization"));
    }
    answer +=
        "Content-Length: " + std::to_string(step.body.size()) + "\r\n\r\n";
    if (request.method != "HEAD") answer += step.body;
    if (!SendAll(fd, answer)) break;
  }
  ::close(fd);
}

bool HttpFaultServer::Forward(int client_fd, const std::string& raw_request) {
  int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (up < 0 ||
      ::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      !SendAll(up, raw_request)) {
    if (up >= 0) ::close(up);
    return false;
  }
  // The upstream (moto) closes after its answer: relay until then.
  char buf[65536];
  while (!stop_.load()) {
    pollfd p{up, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(up, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (!SendAll(client_fd, std::string(buf, static_cast<size_t>(n)))) break;
  }
  ::close(up);
  return true;
}

}  // namespace cbpipe::testing
