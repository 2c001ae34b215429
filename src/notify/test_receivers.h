// Test-only servers for notify_test, all on 127.0.0.1: an HTTP(S) receiver
// that records requests (cpp-httplib), a minimal SMTP sink, and a
// self-signed certificate for the HTTPS receiver.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace cbpipe::testing {

struct RecordedRequest {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string Header(const std::string& lowercase_name) const;
};

// What the receiver does with request number `n` (1-based).
struct Reply {
  int status = 200;
  bool hang = false;  // block until Release() or Stop()
};

class HttpReceiver {
 public:
  using Script = std::function<Reply(int n)>;
  explicit HttpReceiver(Script script = {});
  ~HttpReceiver();

  // Binds 127.0.0.1:`port` (0: any free port) and serves on a thread.
  // With cert/key files, serves HTTPS. False when it cannot bind.
  bool Start(int port = 0, const std::string& cert_file = "",
             const std::string& key_file = "");
  void Stop();  // releases hanging handlers first
  void Release();
  int port() const { return port_; }

  std::vector<RecordedRequest> requests() const;
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout) const;

 private:
  Script script_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> requests_;
  bool released_ = false;
};

struct SmtpMessage {
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  std::string data;  // the message, dot-stuffing undone, CRLF kept
};

class SmtpSink {
 public:
  struct Options {
    int fail_mail_from_times = 0;  // answer MAIL FROM with fail_code first
    int fail_code = 451;
    int rcpt_reject_code = 0;     // nonzero: answer every RCPT TO with it
    bool advertise_auth = false;  // "AUTH PLAIN" in the EHLO reply
  };
  SmtpSink();
  explicit SmtpSink(Options options);
  ~SmtpSink();

  bool Start();
  void Stop();
  int port() const { return port_; }

  std::vector<SmtpMessage> messages() const;
  std::vector<std::string> auth_lines() const;  // "AUTH PLAIN <b64>" ...
  int connections() const { return connections_.load(); }
  bool WaitForMessages(size_t n, std::chrono::milliseconds timeout) const;

 private:
  void Serve();
  void Session(int fd);

  Options options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<SmtpMessage> messages_;
  std::vector<std::string> auth_lines_;
  int mail_from_failures_ = 0;
};

// Writes a self-signed EC certificate for 127.0.0.1 and localhost (it is
// its own CA) and its key as PEM into `dir`. False on any OpenSSL failure.
bool WriteSelfSignedCert(const std::string& dir, std::string* cert_file,
                         std::string* key_file);

}  // namespace cbpipe::testing
