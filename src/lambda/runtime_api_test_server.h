// For tests: a Lambda runtime API on 127.0.0.1 (cpp-httplib) that hands out
// the events a test pushes and records what the function answers.
//
//   LambdaRuntimeApiServer api;
//   ASSERT_TRUE(api.Start().ok());
//   api.Push({.request_id = "r1", .body = R"({"a":1})",
//             .deadline_ms = NowMs() + 30000, .trace_id = "Root=1-..."});
//   ... run the runtime with AWS_LAMBDA_RUNTIME_API = api.host_port() ...
//   std::optional<LambdaApiOutcome> out = api.WaitOutcome("r1", 30s);
//   // out->kind == "response" | "error", out->body, out->error_type
//
// GET next blocks until an event is pushed (or the server stops, or
// ReleaseWaiting: 503).
// Every method is thread-safe; the destructor stops and joins the server.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"

namespace cbpipe::testing {

struct LambdaApiEvent {
  std::string request_id{};
  std::string body{};
  int64_t deadline_ms = 0;  // 0: no deadline header
  std::string trace_id{};
  std::string client_context{};
  std::string function_arn{
      "arn:aws:lambda:us-east-1:123456789012:function:cbpipe"};
};

struct LambdaApiOutcome {
  std::string kind;        // "response", "error", "init_error"
  std::string body;
  std::string error_type;  // Lambda-Runtime-Function-Error-Type
  int64_t at_ms = 0;       // when it arrived (epoch ms)
};

class LambdaRuntimeApiServer {
 public:
  LambdaRuntimeApiServer() = default;
  ~LambdaRuntimeApiServer() { Stop(); }
  LambdaRuntimeApiServer(const LambdaRuntimeApiServer&) = delete;
  LambdaRuntimeApiServer& operator=(const LambdaRuntimeApiServer&) = delete;

  Status Start() {
    server_.Get("/2018-06-01/runtime/invocation/next",
                [this](const httplib::Request&, httplib::Response& res) {
                  std::unique_lock<std::mutex> lock(mu_);
                  ++next_calls_;
                  const int epoch = epoch_;
                  changed_.notify_all();
                  changed_.wait(lock, [&] {
                    return stopping_ || epoch != epoch_ || !events_.empty();
                  });
                  if (events_.empty() || epoch != epoch_) {
                    res.status = 503;
                    return;
                  }
                  LambdaApiEvent e = std::move(events_.front());
                  events_.pop_front();
                  res.set_header("Lambda-Runtime-Aws-Request-Id", e.request_id);
                  if (e.deadline_ms > 0) {
                    res.set_header("Lambda-Runtime-Deadline-Ms",
                                   std::to_string(e.deadline_ms));
                  }
                  if (!e.trace_id.empty())
                    res.set_header("Lambda-Runtime-Trace-Id", e.trace_id);
                  if (!e.client_context.empty()) {
                    res.set_header("Lambda-Runtime-Client-Context",
                                   e.client_context);
                  }
                  res.set_header("Lambda-Runtime-Invoked-Function-Arn",
                                 e.function_arn);
                  res.set_content(e.body, "application/json");
                });
    server_.Post(R"(/2018-06-01/runtime/invocation/([^/]+)/(response|error))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   Record(req.matches[1], req.matches[2], req);
                   res.status = 202;
                   res.set_content(R"({"status":"OK"})", "application/json");
                 });
    server_.Post("/2018-06-01/runtime/init/error",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   Record("", "init_error", req);
                   res.status = 202;
                   res.set_content(R"({"status":"OK"})", "application/json");
                 });
    server_.set_keep_alive_timeout(1);
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_max_count(1000);  // as Lambda: one connection  // stop() waits for idle ones
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) return UnavailableError("cannot listen on 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return OkStatus();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      changed_.notify_all();
    }
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  std::string host_port() const { return "127.0.0.1:" + std::to_string(port_); }

  void Push(LambdaApiEvent e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
    changed_.notify_all();
  }

  // The answer to `request_id` ("" = the init error), waiting up to
  // `timeout` for it.
  std::optional<LambdaApiOutcome> WaitOutcome(const std::string& request_id,
                                              std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, timeout,
                      [&] { return outcomes_.count(request_id) > 0; });
    auto it = outcomes_.find(request_id);
    if (it == outcomes_.end()) return std::nullopt;
    return it->second;
  }

  // Waits until `next` was called `n` times in all (the function is idle).
  bool WaitNextCalls(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, timeout, [&] { return next_calls_ >= n; });
  }

  // Answers 503 to every `next` waiting now, so that a function process
  // the test killed does not take the next event.
  void ReleaseWaiting() {
    std::lock_guard<std::mutex> lock(mu_);
    ++epoch_;
    changed_.notify_all();
  }

  int next_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return next_calls_;
  }

 private:
  void Record(const std::string& id, const std::string& kind,
              const httplib::Request& req) {
    LambdaApiOutcome o;
    o.kind = kind;
    o.body = req.body;
    o.error_type = req.get_header_value("Lambda-Runtime-Function-Error-Type");
    o.at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    std::lock_guard<std::mutex> lock(mu_);
    outcomes_[id] = std::move(o);
    changed_.notify_all();
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool stopping_ = false;
  int next_calls_ = 0;
  int epoch_ = 0;  // ReleaseWaiting
  std::deque<LambdaApiEvent> events_;
  std::map<std::string, LambdaApiOutcome> outcomes_;
};

}  // namespace cbpipe::testing
