#include "notify/test_receivers.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace cbpipe::testing {

std::string RecordedRequest::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

// --- HttpReceiver -----------------------------------------------------------

HttpReceiver::HttpReceiver(Script script) : script_(std::move(script)) {}

HttpReceiver::~HttpReceiver() { Stop(); }

bool HttpReceiver::Start(int port, const std::string& cert_file,
                         const std::string& key_file) {
  try {
    if (cert_file.empty()) {
      server_ = std::make_unique<httplib::Server>();
    } else {
      auto ssl = std::make_unique<httplib::SSLServer>(cert_file.c_str(),
                                                      key_file.c_str());
      if (!ssl->is_valid()) return false;
      server_ = std::move(ssl);
    }
    server_->Post(R"(/.*)", [this](const httplib::Request& req,
                                   httplib::Response& res) {
      RecordedRequest r;
      r.method = req.method;
      r.path = req.path;
      r.body = req.body;
      for (const auto& [name, value] : req.headers) {
        std::string lower = name;
        for (char& c : lower) c = static_cast<char>(std::tolower(c));
        r.headers[lower] = value;
      }
      int n = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(std::move(r));
        n = static_cast<int>(requests_.size());
      }
      cv_.notify_all();
      Reply reply = script_ ? script_(n) : Reply{};
      if (reply.hang) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(10), [&] { return released_; });
      }
      res.status = reply.status;
      res.set_content("ok", "text/plain");
    });
    if (port == 0) {
      port_ = server_->bind_to_any_port("127.0.0.1");
      if (port_ <= 0) return false;
    } else {
      if (!server_->bind_to_port("127.0.0.1", port)) return false;
      port_ = port;
    }
    thread_ = std::thread([this] {
      try {
        server_->listen_after_bind();
      } catch (...) {
      }
    });
    // stop() is a no-op until the server runs: wait for that.
    for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return server_->is_running();
  } catch (...) {
    return false;
  }
}

void HttpReceiver::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

void HttpReceiver::Stop() {
  Release();
  try {
    if (server_) server_->stop();
  } catch (...) {
  }
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

std::vector<RecordedRequest> HttpReceiver::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

bool HttpReceiver::WaitForRequests(size_t n,
                                   std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

// --- SmtpSink ---------------------------------------------------------------

namespace {

bool SendAll(int fd, const std::string& s) {
  size_t sent = 0;
  while (sent < s.size()) {
    ssize_t n = ::send(fd, s.data() + sent, s.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// Reads one line (without CRLF) into *line. False on EOF, error or stop.
bool ReadLine(int fd, std::string& buffer, std::string* line,
              const std::atomic<bool>& stop) {
  while (true) {
    size_t eol = buffer.find("\r\n");
    if (eol != std::string::npos) {
      *line = buffer.substr(0, eol);
      buffer.erase(0, eol + 2);
      return true;
    }
    if (stop) return false;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, 50);
    if (ready < 0) return false;
    if (ready == 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(c));
  return s;
}

std::string Between(const std::string& s, char open, char close) {
  size_t a = s.find(open);
  size_t b = s.find(close, a == std::string::npos ? 0 : a);
  if (a == std::string::npos || b == std::string::npos) return "";
  return s.substr(a + 1, b - a - 1);
}

}  // namespace

SmtpSink::SmtpSink() : SmtpSink(Options{}) {}
SmtpSink::SmtpSink(Options options) : options_(options) {}
SmtpSink::~SmtpSink() { Stop(); }

bool SmtpSink::Start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listen_fd_ < 0) return false;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
          0 ||
      ::listen(listen_fd_, 8) != 0) {
    return false;
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void SmtpSink::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

void SmtpSink::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++connections_;
    Session(fd);
    ::close(fd);
  }
}

void SmtpSink::Session(int fd) {
  std::string buffer, line;
  if (!SendAll(fd, "220 sink ESMTP test\r\n")) return;
  SmtpMessage current;
  while (ReadLine(fd, buffer, &line, stop_)) {
    std::string verb = Upper(line.substr(0, line.find(' ')));
    std::string reply;
    if (verb == "EHLO") {
      reply = options_.advertise_auth ? "250-sink\r\n250 AUTH PLAIN\r\n"
                                      : "250 sink\r\n";
    } else if (verb == "HELO" || verb == "RSET" || verb == "NOOP") {
      reply = "250 ok\r\n";
    } else if (verb == "AUTH") {
      std::string auth = line;
      if (Upper(line) == "AUTH PLAIN") {  // no initial response
        if (!SendAll(fd, "334 \r\n")) return;
        std::string response;
        if (!ReadLine(fd, buffer, &response, stop_)) return;
        auth += " " + response;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        auth_lines_.push_back(auth);
      }
      reply = "235 authenticated\r\n";
    } else if (verb == "MAIL") {
      bool fail = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (mail_from_failures_ < options_.fail_mail_from_times) {
          ++mail_from_failures_;
          fail = true;
        }
      }
      if (fail) {
        reply = std::to_string(options_.fail_code) + " try again later\r\n";
      } else {
        current = SmtpMessage{};
        current.mail_from = Between(line, '<', '>');
        reply = "250 ok\r\n";
      }
    } else if (verb == "RCPT") {
      if (options_.rcpt_reject_code != 0) {
        reply = std::to_string(options_.rcpt_reject_code) + " no such user\r\n";
      } else {
        current.rcpt_to.push_back(Between(line, '<', '>'));
        reply = "250 ok\r\n";
      }
    } else if (verb == "DATA") {
      if (!SendAll(fd, "354 go ahead\r\n")) return;
      std::string data_line;
      while (true) {
        if (!ReadLine(fd, buffer, &data_line, stop_)) return;
        if (data_line == ".") break;
        if (!data_line.empty() && data_line[0] == '.') data_line.erase(0, 1);
        current.data += data_line + "\r\n";
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        messages_.push_back(current);
      }
      cv_.notify_all();
      reply = "250 queued\r\n";
    } else if (verb == "QUIT") {
      SendAll(fd, "221 bye\r\n");
      return;
    } else {
      reply = "502 not implemented\r\n";
    }
    if (!SendAll(fd, reply)) return;
  }
}

std::vector<SmtpMessage> SmtpSink::messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

std::vector<std::string> SmtpSink::auth_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return auth_lines_;
}

bool SmtpSink::WaitForMessages(size_t n,
                               std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
}

// --- certificate ------------------------------------------------------------

bool WriteSelfSignedCert(const std::string& dir, std::string* cert_file,
                         std::string* key_file) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  bool ok = key != nullptr && x != nullptr;
  if (ok) {
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_ASC,
        reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    const std::pair<int, const char*> exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,digitalSignature,keyCertSign"},
        {NID_subject_key_identifier, "hash"},
        {NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
    };
    for (const auto& [nid, value] : exts) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      ok = ok && ext != nullptr && X509_add_ext(x, ext, -1) == 1;
      X509_EXTENSION_free(ext);
    }
    ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
  }
  *cert_file = dir + "/cert.pem";
  *key_file = dir + "/key.pem";
  if (ok) {
    FILE* f = std::fopen(cert_file->c_str(), "w");
    ok = f != nullptr && PEM_write_X509(f, x) == 1;
    if (f != nullptr) std::fclose(f);
  }
  if (ok) {
    FILE* f = std::fopen(key_file->c_str(), "w");
    ok = f != nullptr && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0,
                                              nullptr, nullptr) == 1;
    if (f != nullptr) std::fclose(f);
  }
  X509_free(x);
  EVP_PKEY_free(key);
  return ok;
}

}  // namespace cbpipe::testing
