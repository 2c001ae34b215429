// A tiny scripted HTTP/1.1 server on 127.0.0.1 for testing HTTP clients'
// failure handling (the AWS client's retries, timeouts, error parsing): each
// request gets the next scripted step — a canned answer, silence, a closed
// connection — or is forwarded to an upstream server (moto) once the script
// runs out. Every request is recorded.
//
//   HttpFaultServer server({HttpStep::Answer(503, "<Error><Code>SlowDown..."),
//                           HttpStep::Answer(503, "..."),
//                           HttpStep::Forward()}, moto->port());
//   ASSERT_TRUE(server.Start().ok());
//   options.endpoints["s3"] = server.endpoint();
//   ... server.requests().size() == 3, server.connections() ...
//
// "$AUTHORIZATION" in a canned body is replaced by the request's
// Authorization header (to test that clients scrub what servers echo).
// Keep-alive is honoured for canned answers (so connection reuse can be
// counted); forwarded and failed exchanges close the connection. One thread
// accepts, one thread per connection; all joined by the destructor (which
// also releases hanging steps). Thread-safe accessors.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"

namespace cbpipe::testing {

struct HttpStep {
  enum class Kind { kAnswer, kHang, kClose, kForward };
  Kind kind = Kind::kAnswer;
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  static HttpStep Answer(
      int status, std::string body = "",
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpStep s;
    s.status = status;
    s.body = std::move(body);
    s.headers = std::move(headers);
    return s;
  }
  // Reads the request, never answers (until the server is destroyed).
  static HttpStep Hang() {
    HttpStep s;
    s.kind = Kind::kHang;
    return s;
  }
  // Reads the request and closes the connection without a word.
  static HttpStep Close() {
    HttpStep s;
    s.kind = Kind::kClose;
    return s;
  }
  static HttpStep Forward() {
    HttpStep s;
    s.kind = Kind::kForward;
    return s;
  }
};

struct HttpRecordedRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case
  std::string body;
  std::string Header(const std::string& lower_name) const;
};

class HttpFaultServer {
 public:
  // upstream_port: where kForward steps (and requests after the script)
  // go; 0 = answer 200 with an empty body instead.
  explicit HttpFaultServer(std::vector<HttpStep> script, int upstream_port = 0);
  ~HttpFaultServer();
  HttpFaultServer(const HttpFaultServer&) = delete;
  HttpFaultServer& operator=(const HttpFaultServer&) = delete;

  Status Start();
  // Before Start: forward one request at a time (the others wait), for an
  // upstream that is not atomic under concurrent requests (moto's DynamoDB
  // evaluates a ConditionExpression and writes without a lock; DynamoDB
  // itself applies each item's conditional write atomically).
  void SerializeForwarding() { serialize_forwarding_ = true; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT"
  int port() const { return port_; }
  std::vector<HttpRecordedRequest> requests();
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);
  HttpStep NextStep();
  bool Forward(int client_fd, const std::string& raw_request);

  std::vector<HttpStep> script_;
  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  bool serialize_forwarding_ = false;
  std::mutex forward_mu_;             // held around Forward when serializing
  std::condition_variable released_;  // wakes hanging steps at shutdown
  size_t next_step_ = 0;              // guarded by mu_
  std::vector<HttpRecordedRequest> requests_;  // guarded by mu_
  std::vector<std::thread> workers_;           // guarded by mu_
};

}  // namespace cbpipe::testing
