#include "app/admin_api.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <vector>

#include "app/query_params.h"
#include "common/listen_address.h"
#include "secrets/secrets.h"

namespace cbpipe {
namespace {

using json = nlohmann::json;

constexpr char kJsonType[] = "application/json";
constexpr char kMetricsType[] = "text/plain; version=0.0.4; charset=utf-8";
// Longer paths are no route of ours: answered before any regex sees them.
constexpr size_t kMaxPathBytes = 512;

// A fixed set of workers with a bounded queue of accepted connections.
// httplib's own ThreadPool queues without limit; here, when the queue is
// full, the accepting thread waits, so further connections wait in the
// kernel's backlog instead of in memory.
class BoundedPool final : public httplib::TaskQueue {
 public:
  BoundedPool(int workers, size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~BoundedPool() override = default;

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return jobs_.size() < max_queued_ || shutdown_; });
    jobs_.push_back(std::move(fn));
    lock.unlock();
    ready_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
    }
    ready_.notify_all();
    room_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shut down, nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      room_.notify_one();
      fn();  // serves one connection and closes it; never throws
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable ready_, room_;
  std::deque<std::function<void()>> jobs_;
  bool shutdown_ = false;
  std::vector<std::thread> threads_;
};

// One client connection, read and written under the limits httplib 0.11
// lacks: the request head (request line and headers) is capped at
// kAdminMaxHeadBytes (httplib caps each line, not their number, so a
// client could otherwise fill the memory with headers), and each request,
// from its first byte to the end of its response, must finish within
// kAdminRequestDeadlineSeconds (a client trickling bytes cannot hold a
// worker for longer). Either limit makes read/write fail, which ends the
// connection.
class GuardedStream final : public httplib::Stream {
 public:
  explicit GuardedStream(int sock) : sock_(sock) {}

  // Starts the budget and the clock of the next request.
  void StartRequest() {
    head_bytes_ = 0;
    head_done_ = false;
    matched_ = 0;
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::seconds(kAdminRequestDeadlineSeconds);
  }

  // Waits up to `ms` for the next request's first byte.
  bool WaitForRequest(int ms) { return off_ < len_ || Wait(POLLIN, ms); }

  bool is_readable() const override {
    return off_ < len_ || Wait(POLLIN, RemainingMs());
  }
  bool is_writable() const override { return Wait(POLLOUT, RemainingMs()); }

  ssize_t read(char* ptr, size_t size) override {
    if (off_ == len_) {
      if (!Wait(POLLIN, RemainingMs())) return -1;
      ssize_t n;
      do {
        n = ::recv(sock_, buf_, sizeof buf_, 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      off_ = 0;
      len_ = static_cast<size_t>(n);
    }
    size_t n = std::min(size, len_ - off_);
    if (!head_done_) {
      // Hand over the head only up to its blank line, counting it.
      static constexpr char kEnd[] = "\r\n\r\n";
      for (size_t i = 0; i < n; ++i) {
        const char c = buf_[off_ + i];
        matched_ = c == kEnd[matched_] ? matched_ + 1 : (c == '\r' ? 1 : 0);
        if (matched_ == 4) {
          head_done_ = true;
          n = i + 1;
          break;
        }
      }
      head_bytes_ += n;
      if (head_bytes_ > kAdminMaxHeadBytes) return -1;
    }
    std::memcpy(ptr, buf_ + off_, n);
    off_ += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!Wait(POLLOUT, RemainingMs())) return -1;
    ssize_t n;
    do {
      n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      Describe(addr, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      Describe(addr, ip, port);
  }
  int socket() const override { return sock_; }

 private:
  static void Describe(const sockaddr_storage& addr, std::string& ip,
                       int& port) {
    char text[INET6_ADDRSTRLEN] = "";
    if (addr.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
      port = ntohs(a->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
      port = ntohs(a->sin6_port);
    }
    ip = text;
  }

  // Milliseconds to wait for the socket: the I/O timeout, cut short by the
  // request's deadline.
  int RemainingMs() const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline_ - std::chrono::steady_clock::now())
                          .count();
    return static_cast<int>(
        std::clamp<int64_t>(left, 0, int64_t{kAdminIoTimeoutSeconds} * 1000));
  }

  bool Wait(short events, int timeout_ms) const {
    if (timeout_ms <= 0) return false;
    pollfd p{sock_, events, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    return rc > 0;
  }

  const int sock_;
  char buf_[4096];
  size_t off_ = 0, len_ = 0;
  size_t head_bytes_ = 0;
  bool head_done_ = false;
  int matched_ = 0;
  std::chrono::steady_clock::time_point deadline_ =
      std::chrono::steady_clock::now();
};

// httplib's server with its per-connection loop replaced by one over a
// GuardedStream; parsing, routing and responses stay httplib's.
class GuardedServer final : public httplib::Server {
 private:
  bool process_and_close_socket(int sock) override {
    // Responses go out as head then body: without this, Nagle's algorithm
    // and the client's delayed ACK add 40 ms to each keep-alive request.
    int yes = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    GuardedStream strm(sock);
    for (int i = 0; i < kAdminKeepAliveMaxRequests && is_running(); ++i) {
      // In short slices, so that Stop() does not wait for idle clients.
      const auto until =
          std::chrono::steady_clock::now() +
          std::chrono::seconds(i == 0 ? kAdminIoTimeoutSeconds
                                      : kAdminKeepAliveIdleSeconds);
      bool ready = false;
      while (!ready && is_running() &&
             std::chrono::steady_clock::now() < until) {
        ready = strm.WaitForRequest(100);
      }
      if (!ready) break;
      strm.StartRequest();
      bool closed = false;
      const bool last = i + 1 == kAdminKeepAliveMaxRequests;
      if (!process_request(strm, last, closed, nullptr) || closed) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return true;
  }
};

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(DumpJson(body), kJsonType);
}

void SendError(httplib::Response& res, int status, std::string_view code,
               std::string_view message) {
  SendJson(res, status, ErrorJson(code, message));
}

// A Status from a port as an HTTP error.
void SendStatus(httplib::Response& res, const Status& st) {
  switch (st.code()) {
    case StatusCode::kNotFound:
      return SendError(res, 404, "not_found", st.message());
    case StatusCode::kInvalidArgument:
      return SendError(res, 400, "invalid_argument", st.message());
    case StatusCode::kUnavailable:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kAborted:
      return SendError(res, 503, "unavailable", st.message());
    default: return SendError(res, 500, "internal", st.message());
  }
}

// The default text for an error httplib produced itself (no body yet).
std::pair<std::string_view, std::string> DefaultError(int status) {
  switch (status) {
    case 400: return {"bad_request", "malformed HTTP request"};
    case 401: return {"unauthenticated", "authentication required"};
    case 403: return {"forbidden", "forbidden"};
    case 404: return {"not_found", "no such endpoint"};
    case 405: return {"method_not_allowed", "method not allowed"};
    case 413:
      return {"payload_too_large", "request body larger than " +
                                       std::to_string(kAdminMaxBodyBytes) +
                                       " bytes"};
    case 414: return {"uri_too_long", "request line too long"};
    case 416: return {"range_not_satisfiable", "range not satisfiable"};
    case 503: return {"unavailable", "service unavailable"};
    default:
      return {status < 500 ? "bad_request" : "internal",
              status < 500 ? "request refused" : "internal error"};
  }
}

// Query parameters: only `allowed` ones, each at most once, parsed strictly
// from the raw target (app/query_params.h), not httplib's lenient guess.
bool CheckParams(const httplib::Request& req,
                 std::initializer_list<std::string_view> allowed,
                 httplib::Response& res) {
  StatusOr<QueryParams> params = ParseQueryParams(QueryOf(req.target), allowed);
  if (!params.ok()) {
    SendError(res, 400, "invalid_argument", params.status().message());
    return false;
  }
  return true;
}

// An integer query parameter in [min, max]; `fallback` when absent.
bool IntParam(const httplib::Request& req, const std::string& name, int min,
              int max, int fallback, int* out, httplib::Response& res) {
  *out = fallback;
  if (!req.has_param(name.c_str())) return true;
  const std::string v = req.get_param_value(name.c_str());
  int64_t n = 0;
  bool ok = !v.empty() && v.size() <= 10;
  for (char c : v) {
    if (c < '0' || c > '9') ok = false;
    if (ok) n = n * 10 + (c - '0');
  }
  if (!ok || n < min || n > max) {
    SendError(res, 400, "invalid_argument",
              name + " must be a whole number from " + std::to_string(min) +
                  " to " + std::to_string(max));
    return false;
  }
  *out = static_cast<int>(n);
  return true;
}

// Compares in time independent of where the strings differ and (by hashing
// first) of their lengths.
bool TokenEquals(std::string_view given, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(given.data()), given.size(), a);
  SHA256(reinterpret_cast<const unsigned char*>(expected.data()),
         expected.size(), b);
  const bool same = CRYPTO_memcmp(a, b, sizeof a) == 0;
  OPENSSL_cleanse(a, sizeof a);
  OPENSSL_cleanse(b, sizeof b);
  return same;
}

// Sends 401/403 and returns false unless the request carries the token.
bool Authorize(const httplib::Request& req, const std::string& token,
               httplib::Response& res) {
  if (token.empty()) {
    SendError(res, 403, "forbidden",
              "admin_token is not configured: set [service] admin_token to "
              "a secret reference (env:NAME or file:/path) to enable this "
              "endpoint");
    return false;
  }
  const size_t count = req.get_header_value_count("Authorization");
  if (count == 0) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"cbpipe\"");
    SendError(res, 401, "unauthenticated",
              "missing Authorization: Bearer <token> header");
    return false;
  }
  const std::string value = req.get_header_value("Authorization");
  constexpr std::string_view kScheme = "bearer ";
  bool well_formed = count == 1 && value.size() > kScheme.size();
  for (size_t i = 0; well_formed && i < kScheme.size(); ++i) {
    const char c = value[i];
    if ((c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c) != kScheme[i])
      well_formed = false;
  }
  std::string_view given;
  if (well_formed) {
    given = std::string_view(value).substr(kScheme.size());
    while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
    while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
    well_formed =
        !given.empty() && given.find_first_of(" \t") == std::string_view::npos;
  }
  if (!well_formed) {
    res.set_header("WWW-Authenticate",
                   "Bearer realm=\"cbpipe\", error=\"invalid_request\"");
    SendError(res, 401, "unauthenticated",
              "malformed Authorization header: expected \"Bearer <token>\"");
    return false;
  }
  if (!TokenEquals(given, token)) {
    SendError(res, 403, "forbidden", "wrong bearer token");
    return false;
  }
  return true;
}

json ParseOrString(const std::string& text) {
  if (text.empty()) return nullptr;
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return text;
  return j;
}

const StepRecord* FindStep(const RunRecord& run, std::string_view name) {
  for (const StepRecord& s : run.steps) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// The most recent step output holding `key`, searched from the last step
// back (each step's output carries its input forward).
const json* FindInOutputs(const std::vector<json>& outputs,
                          std::string_view key) {
  for (auto it = outputs.rbegin(); it != outputs.rend(); ++it) {
    if (it->is_object() && it->contains(key)) return &(*it)[std::string(key)];
  }
  return nullptr;
}

}  // namespace

bool IsKnownRunState(std::string_view state) {
  return state == "queued" || state == "running" || state == "succeeded" ||
         state == "failed" || state == "rejected";
}

bool IsValidRunId(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsValidDeadLetterId(std::string_view id) {
  return !id.empty() && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                  (c >= 'A' && c <= 'Z') || c == '-';
         });
}

json ErrorJson(std::string_view code, std::string_view message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

json RunSummaryJson(const RunRecord& run) {
  return {{"run_id", run.run_id},
          {"input_key", run.input_key},
          {"input_name", run.input_name},
          {"trace_id", run.trace_id},
          {"state", run.state},
          {"current_step", run.current_step},
          {"error", run.error.empty() ? json(nullptr) : json(run.error)},
          {"created_ms", run.created_ms},
          {"updated_ms", run.updated_ms}};
}

json RunDetailJson(const RunRecord& run) {
  json out = RunSummaryJson(run);
  json steps = json::array();
  json errors = json::array();
  std::vector<json> outputs;
  for (const StepRecord& s : run.steps) {
    json output = ParseOrString(s.output_json);
    steps.push_back({{"name", s.name},
                     {"state", s.state},
                     {"attempts", s.attempts},
                     {"output", output},
                     {"error", s.error.empty() ? json(nullptr) : json(s.error)},
                     {"started_ms", s.started_ms},
                     {"finished_ms", s.finished_ms}});
    if (!s.error.empty())
      errors.push_back({{"step", s.name}, {"message", s.error}});
    if (s.state == "succeeded") outputs.push_back(std::move(output));
  }
  if (!run.error.empty())
    errors.push_back({{"step", run.current_step}, {"message", run.error}});
  out["steps"] = std::move(steps);
  out["errors"] = std::move(errors);

  // Generated files, flattened, with their batch.
  json files = json::array();
  if (const StepRecord* gen = FindStep(run, "generate")) {
    json g = ParseOrString(gen->output_json);
    if (g.is_object() && g.contains("batches") && g["batches"].is_array()) {
      for (const json& b : g["batches"]) {
        if (!b.is_object() || !b.contains("files") || !b["files"].is_array())
          continue;
        for (const json& f : b["files"]) {
          json file = f;
          if (file.is_object()) {
            file["batch_id"] = b.value("id", "");
            file["manifest"] = b.value("manifest", "");
          }
          files.push_back(std::move(file));
        }
      }
    }
  }
  out["files"] = std::move(files);
  const json* deliveries = FindInOutputs(outputs, "deliveries");
  out["deliveries"] = deliveries ? *deliveries : json::array();
  const json* rejects = FindInOutputs(outputs, "rejects_file");
  out["rejects_file"] = rejects ? *rejects : json(nullptr);
  return out;
}

json DeadLetterJson(const DeadLetter& d) {
  const Message& m = d.message;
  json attributes = json::object();
  for (const auto& [k, v] : m.attributes) attributes[k] = v;
  // The service's messages are {"run_id", "input_key", "input_name", ...}.
  const json body = json::parse(m.body, nullptr, /*allow_exceptions=*/false);
  auto field = [&](const char* key) {
    return body.is_object() && body.contains(key) && body[key].is_string()
               ? body[key]
               : json(nullptr);
  };
  return {{"id", m.id},
          {"run_id", field("run_id")},
          {"input_name", field("input_name")},
          {"body", m.body},
          {"attributes", attributes},
          {"receive_count", m.receive_count},
          {"sent_at_ms", m.sent_at_ms},
          {"first_received_at_ms", m.first_received_at_ms},
          {"reason", d.reason},
          {"moved_at_ms", d.moved_at_ms}};
}

AdminServer::AdminServer(Hooks hooks)
    : hooks_(std::move(hooks)), server_(std::make_unique<GuardedServer>()) {
  if (!hooks_.log) {
    hooks_.log = [](std::string_view m) {
      std::fprintf(stderr, "cbpipe admin: %.*s\n", static_cast<int>(m.size()),
                   m.data());
    };
  }
}

AdminServer::~AdminServer() {
  Stop();
  WipeString(hooks_.token);
}

void AdminServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& listen, Hooks hooks) {
  // The same rule as `config check` (service.admin_listen); only tests
  // set allow_non_loopback.
  StatusOr<ListenAddress> address = hooks.allow_non_loopback
                                        ? ParseListenAddress(listen)
                                        : ParseAdminListenAddress(listen);
  if (!address.ok()) return address.status();
  const std::string host = address->host;
  const int port = address->port;
  std::unique_ptr<AdminServer> s(new AdminServer(std::move(hooks)));
  if (!IsLoopbackHost(host)) {
    s->hooks_.log("warning: admin API listening on non-loopback address " +
                  listen + " over plain HTTP" +
                  (s->hooks_.token.empty() ? ""
                                           : "; the bearer token crosses "
                                             "the network in clear"));
  }

  httplib::Server& svr = *s->server_;
  svr.new_task_queue = [] {
    return new BoundedPool(kAdminWorkers, kAdminMaxQueuedConnections);
  };
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // process bind the same port and take half the requests.
  svr.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr.set_payload_max_length(kAdminMaxBodyBytes);
  svr.set_read_timeout(kAdminIoTimeoutSeconds, 0);
  svr.set_write_timeout(kAdminIoTimeoutSeconds, 0);
  svr.set_keep_alive_max_count(kAdminKeepAliveMaxRequests);
  svr.set_keep_alive_timeout(kAdminKeepAliveIdleSeconds);
  s->InstallRoutes();

  const int bound = port == 0 ? svr.bind_to_any_port(host)
                              : (svr.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return UnavailableError("admin API cannot listen on " + listen +
                            ": address in use or not available");
  }
  s->port_ = bound;
  httplib::Server* raw = s->server_.get();
  s->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // stop() before the loop has started would be lost: wait for it.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!raw->is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return InternalError("admin API on " + listen + " did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return s;
}

void AdminServer::InstallRoutes() {
  httplib::Server& svr = *server_;
  const Hooks& h = hooks_;

  svr.set_pre_routing_handler(
      [](const httplib::Request& req, httplib::Response& res) {
        // Keeps absurd paths away from the route regexes.
        if (req.path.size() > kMaxPathBytes) {
          SendError(res, 404, "not_found", "no such endpoint");
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      });
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        auto [code, message] = DefaultError(res.status);
        res.set_content(DumpJson(ErrorJson(code, message)), kJsonType);
        return httplib::Server::HandlerResponse::Handled;
      }));
  svr.set_exception_handler([log = h.log](const httplib::Request& req,
                                          httplib::Response& res,
                                          std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log("error: " + req.method + " " + req.path.substr(0, 128) +
        " failed: " + what);
    SendError(res, 500, "internal", "internal error");
  });

  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });

  svr.Get("/readyz", [&h](const httplib::Request&, httplib::Response& res) {
    if (!h.ready || h.ready()) {
      SendJson(res, 200, {{"status", "ready"}});
    } else {
      SendError(res, 503, "not_ready", "the service is not ready");
    }
  });

  svr.Get("/metrics", [&h](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(h.render_metrics ? h.render_metrics() : std::string(),
                    kMetricsType);
  });

  svr.Get("/api/runs", [&h](const httplib::Request& req,
                            httplib::Response& res) {
    if (!h.runs) return SendError(res, 503, "unavailable", "no run store");
    if (!CheckParams(req, {"state", "limit", "offset"}, res)) return;
    int limit = 0, offset = 0;
    if (!IntParam(req, "limit", 1, kAdminMaxPageSize, kAdminDefaultPageSize,
                  &limit, res) ||
        !IntParam(req, "offset", 0, 1'000'000'000, 0, &offset, res))
      return;
    const std::string state = req.get_param_value("state");
    if (req.has_param("state") && !IsKnownRunState(state)) {
      return SendError(res, 400, "invalid_argument",
                       "state must be one of queued, running, succeeded, "
                       "failed, rejected");
    }
    StatusOr<std::vector<RunRecord>> runs = h.runs->List(state, limit, offset);
    if (!runs.ok()) return SendStatus(res, runs.status());
    StatusOr<int64_t> total = h.runs->Count(state);
    if (!total.ok()) return SendStatus(res, total.status());
    json items = json::array();
    for (const RunRecord& r : *runs) items.push_back(RunSummaryJson(r));
    SendJson(res, 200,
             {{"runs", std::move(items)},
              {"total", *total},
              {"limit", limit},
              {"offset", offset},
              {"state", state.empty() ? json(nullptr) : json(state)}});
  });

  svr.Get("/api/runs/([^/]+)",
          [&h](const httplib::Request& req, httplib::Response& res) {
            if (!h.runs)
              return SendError(res, 503, "unavailable", "no run store");
            if (!CheckParams(req, {}, res)) return;
            const std::string id = req.matches[1];
            if (!IsValidRunId(id)) {
              return SendError(res, 400, "invalid_argument",
                               "a run id is 16 lower-case hex digits");
            }
            StatusOr<RunRecord> run = h.runs->Get(id);
            if (!run.ok()) return SendStatus(res, run.status());
            SendJson(res, 200, RunDetailJson(*run));
          });

  svr.Get("/api/deadletters", [&h](const httplib::Request& req,
                                   httplib::Response& res) {
    if (!h.queue) return SendError(res, 503, "unavailable", "no queue");
    if (!CheckParams(req, {"limit", "after"}, res)) return;
    int limit = 0;
    if (!IntParam(req, "limit", 1, kAdminMaxPageSize, kAdminDefaultPageSize,
                  &limit, res))
      return;
    const std::string after = req.get_param_value("after");
    if (req.has_param("after") && !IsValidDeadLetterId(after)) {
      return SendError(res, 400, "invalid_argument",
                       "after must be a dead-letter id");
    }
    StatusOr<std::vector<DeadLetter>> list =
        h.queue->ListDeadLetters(limit, after);
    if (!list.ok()) return SendStatus(res, list.status());
    StatusOr<QueueStats> stats = h.queue->Stats();
    if (!stats.ok()) return SendStatus(res, stats.status());
    json items = json::array();
    for (const DeadLetter& d : *list) items.push_back(DeadLetterJson(d));
    const bool more = static_cast<int>(list->size()) == limit;
    SendJson(
        res, 200,
        {{"dead_letters", std::move(items)},
         {"total", stats->dead_letters},
         {"limit", limit},
         {"next_after", more ? json(list->back().message.id) : json(nullptr)}});
  });

  svr.Get("/api/deadletters/([^/]+)",
          [&h](const httplib::Request& req, httplib::Response& res) {
            if (!h.queue) return SendError(res, 503, "unavailable", "no queue");
            if (!CheckParams(req, {}, res)) return;
            const std::string id = req.matches[1];
            if (!IsValidDeadLetterId(id)) {
              return SendError(res, 400, "invalid_argument",
                               "malformed dead-letter id");
            }
            StatusOr<DeadLetter> d = h.queue->GetDeadLetter(id);
            if (!d.ok()) return SendStatus(res, d.status());
            SendJson(res, 200, DeadLetterJson(*d));
          });

  svr.Post("/api/deadletters/([^/]+)/redrive",
           [&h](const httplib::Request& req, httplib::Response& res) {
             if (!Authorize(req, h.token, res)) return;
             if (!h.queue)
               return SendError(res, 503, "unavailable", "no queue");
             if (!CheckParams(req, {}, res)) return;
             const std::string id = req.matches[1];
             if (!IsValidDeadLetterId(id)) {
               return SendError(res, 400, "invalid_argument",
                                "malformed dead-letter id");
             }
             Status st = h.queue->Redrive(id);
             if (!st.ok()) return SendStatus(res, st);
             SendJson(res, 200, {{"redriven", id}});
           });

  // Everything else: 405 for a known path with another method, else 404.
  struct Route {
    std::regex path;
    const char* allow;
  };
  auto routes = std::make_shared<std::vector<Route>>();
  for (const char* p :
       {"/healthz", "/readyz", "/metrics", "/api/runs", "/api/runs/[^/]+",
        "/api/deadletters", "/api/deadletters/[^/]+"})
    routes->push_back({std::regex(p), "GET, HEAD"});
  routes->push_back({std::regex("/api/deadletters/[^/]+/redrive"), "POST"});
  auto fallback = [routes](const httplib::Request& req,
                           httplib::Response& res) {
    for (const Route& r : *routes) {
      if (std::regex_match(req.path, r.path)) {
        res.set_header("Allow", r.allow);
        return SendError(
            res, 405, "method_not_allowed",
            req.method + " is not allowed here; allowed: " + r.allow);
      }
    }
    SendError(res, 404, "not_found", "no such endpoint");
  };
  svr.Get(".*", fallback);
  svr.Post(".*", fallback);
  svr.Put(".*", fallback);
  svr.Patch(".*", fallback);
  svr.Delete(".*", fallback);
  svr.Options(".*", fallback);
}

StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const Config& config, RunStore* runs, Queue* queue,
    std::function<std::string()> render_metrics, std::function<bool()> ready) {
  if (config.service.admin_listen.empty())
    return std::unique_ptr<AdminServer>();
  AdminServer::Hooks hooks;
  hooks.runs = runs;
  hooks.queue = queue;
  hooks.render_metrics = std::move(render_metrics);
  hooks.ready = std::move(ready);
  if (!config.service.admin_token_ref.empty()) {
    StatusOr<std::string> token = ResolveSecret(config.service.admin_token_ref);
    if (!token.ok()) {
      return Status(token.status().code(),
                    "service.admin_token: " + token.status().message());
    }
    hooks.token = std::move(*token);
  }
  return AdminServer::Start(config.service.admin_listen, std::move(hooks));
}

}  // namespace cbpipe
