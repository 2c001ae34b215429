#include "app/admin_api.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "app/audit.h"
#include "app/console_assets.h"
#include "common/sha256.h"
#include "queue/sqlite_queue.h"
#include "runs/sqlite_run_store.h"
#include "telemetry/log.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

StepRecord Step(std::string name, std::string output, int attempts = 1,
                std::string error = "") {
  StepRecord s;
  s.name = std::move(name);
  s.state = "succeeded";
  s.attempts = attempts;
  s.output_json = std::move(output);
  s.error = std::move(error);
  return s;
}

constexpr char kToken[] = "s3cret-token";
constexpr char kRunOk[] = "00000000000000a1";
constexpr char kRunFailed[] = "00000000000000b2";
constexpr char kRunQueued[] = "00000000000000c3";

// A raw TCP connection to the server, for what httplib::Client cannot send.
class RawSocket {
 public:
  explicit RawSocket(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawSocket() { Close(); }
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // True once the server has closed the connection (end of stream or
  // reset), waiting up to `timeout_ms` for it; what arrived before is
  // appended to `*got`.
  bool ClosedByServer(int timeout_ms, std::string* got = nullptr) {
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(timeout_ms);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                            until - std::chrono::steady_clock::now())
                            .count();
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0)
        return false;
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) return n == 0 || errno != EAGAIN;
      if (got) got->append(buf, static_cast<size_t>(n));
    }
  }
  // Sends what the peer takes; false once it stops taking (closed).
  bool TrySend(std::string_view data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(data.size());
  }
  void Send(std::string_view data) {
    ASSERT_EQ(::send(fd_, data.data(), data.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(data.size()));
  }
  // One response (head and Content-Length body), or what came before the
  // server closed (or 10 s passed).
  std::string ReadResponse() {
    std::string out;
    char buf[4096];
    for (;;) {
      const size_t head_end = out.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const size_t cl = out.find("Content-Length: ");
        const size_t body = cl == std::string::npos || cl > head_end
                                ? 0
                                : std::stoul(out.substr(cl + 16));
        if (out.size() >= head_end + 4 + body) return out;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // Everything until the server closes (or 10 s pass).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// Log() writes to memory while this lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<MemoryLogSink>()) {
    Log().SetSink(sink_);
  }
  ~LogCapture() { Log().SetSink(StderrLogSink()); }
  // The lines of `event`, parsed.
  std::vector<json> Events(std::string_view event) const {
    std::vector<json> out;
    for (const std::string& line : sink_->Lines()) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }
  // Waits up to `timeout_ms` for `count` lines of `event`.
  std::vector<json> WaitFor(std::string_view event, size_t count,
                            int timeout_ms) const {
    for (int waited = 0;; waited += 10) {
      std::vector<json> got = Events(event);
      if (got.size() >= count || waited >= timeout_ms) return got;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::string All() const {
    std::string out;
    for (const std::string& line : sink_->Lines()) out += line + "\n";
    return out;
  }

 private:
  std::shared_ptr<MemoryLogSink> sink_;
};

// Holds the threads that Wait() until Open().
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until `n` threads are in Wait().
  bool AwaitWaiting(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5),
                        [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

std::string Sha256Hex(std::string_view text) {
  Sha256 sha;
  sha.Update(text.data(), text.size());
  return *sha.FinishHex();
}

// Runs a shell command; its standard output.
std::string Shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

int64_t MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now() - start)
      .count();
}

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cbpipe-admin-XXXXXX")
            .string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto runs = SqliteRunStore::Open(dir_ + "/state.db", Env::Default());
    ASSERT_TRUE(runs.ok()) << runs.status().ToString();
    runs_ = std::move(*runs);
    QueueOptions options;
    options.max_receive_count = 1;
    auto queue = SqliteQueue::Open(dir_ + "/state.db", "inputs", options);
    ASSERT_TRUE(queue.ok()) << queue.status().ToString();
    queue_ = std::move(*queue);
    SeedRuns();
    StartServer(kToken);
  }

  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    queue_.reset();
    runs_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartServer(const std::string& token, AdminLimits limits = {},
                   std::function<std::string()> metrics = {}) {
    if (server_) server_->Stop();
    AdminServer::Hooks hooks;
    hooks.runs = runs_.get();
    hooks.queue = queue_.get();
    hooks.render_metrics = [] {
      return std::string(
          "# HELP cbpipe_up Up.\n# TYPE cbpipe_up gauge\ncbpipe_up 1\n");
    };
    if (metrics) hooks.render_metrics = std::move(metrics);
    hooks.ready = [this] { return ready_.load(); };
    hooks.token = token;
    hooks.log = [](std::string_view) {};
    auto server = AdminServer::Start("127.0.0.1:0", std::move(hooks), limits);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    ASSERT_GT(server_->port(), 0);
  }

  void SeedRuns() {
    RunRecord ok;
    ok.run_id = kRunOk;
    ok.input_key = "inputs/ok";
    ok.input_name = "ok.csv";
    ok.state = "queued";
    ok.created_ms = 1000;
    ASSERT_TRUE(runs_->CreateIfAbsent(ok).ok());
    json validate = {{"input_key", "inputs/ok"},
                     {"accepted", 2},
                     {"rejects_file", "/w/runs/00000000000000a1/rejects.csv"}};
    json generate = validate;
    generate["batches"] = json::array(
        {{{"id", "00000000000000a1-b001"},
          {"manifest", "/w/batches/00000000000000a1-b001/manifest.json"},
          {"files", json::array({{{"destination", "visa"},
                                  {"name", "visa_1.csv"},
                                  {"records", 2},
                                  {"bytes", 100}}})}}});
    json deliver = generate;
    deliver["deliveries"] =
        json::array({{{"id", "00000000000000a1-b001"},
                      {"files", json::array({{{"destination", "visa"},
                                              {"name", "visa_1.csv"},
                                              {"status", "delivered"}}})}}});
    ASSERT_TRUE(
        runs_->SaveStep(kRunOk, Step("validate", validate.dump())).ok());
    ASSERT_TRUE(
        runs_->SaveStep(kRunOk, Step("generate", generate.dump())).ok());
    ASSERT_TRUE(runs_
                    ->SaveStep(kRunOk, Step("deliver", deliver.dump(), 2,
                                            "first try timed out"))
                    .ok());
    ASSERT_TRUE(runs_->SetState(kRunOk, "succeeded", "", "").ok());

    RunRecord failed = ok;
    failed.run_id = kRunFailed;
    failed.input_name = "bad.csv";
    failed.created_ms = 2000;
    ASSERT_TRUE(runs_->CreateIfAbsent(failed).ok());
    ASSERT_TRUE(
        runs_->SetState(kRunFailed, "failed", "deliver", "sftp refused").ok());

    RunRecord queued = ok;
    queued.run_id = kRunQueued;
    queued.created_ms = 3000;
    ASSERT_TRUE(runs_->CreateIfAbsent(queued).ok());
  }

  // A dead letter in the inputs queue; returns its id.
  std::string AddDeadLetter(const std::string& body) {
    auto id = queue_->Send(body);
    EXPECT_TRUE(id.ok());
    auto got = queue_->Receive(1, 60'000);
    EXPECT_TRUE(got.ok() && got->size() == 1);
    EXPECT_TRUE(queue_->MoveToDeadLetter((*got)[0].receipt, "boom").ok());
    return *id;
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_connection_timeout(2, 0);
    c.set_read_timeout(10, 0);
    return c;
  }

  static json Body(const httplib::Result& r) {
    return json::parse(r->body, nullptr, false);
  }

  static std::string ErrorCode(const httplib::Result& r) {
    json j = Body(r);
    if (!j.is_object() || !j.contains("error")) return "(not an error)";
    return j["error"].value("code", "");
  }

  std::string dir_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<SqliteQueue> queue_;
  std::unique_ptr<AdminServer> server_;
  std::atomic<bool> ready_{true};
};

TEST_F(AdminApiTest, HealthReadyMetrics) {
  auto c = Client();
  auto r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Body(r)["status"], "ok");
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");

  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  ready_ = false;
  r = c.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(ErrorCode(r), "not_ready");

  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(r->body.find("cbpipe_up 1"), std::string::npos);
}

TEST_F(AdminApiTest, ListsRunsWithPagingAndFilter) {
  auto c = Client();
  auto r = c.Get("/api/runs");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Body(r);
  EXPECT_EQ(j["total"], 3);
  EXPECT_EQ(j["limit"], 50);
  ASSERT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][0]["run_id"], kRunQueued);  // newest first
  EXPECT_FALSE(j["runs"][0].contains("steps"));

  r = c.Get("/api/runs?limit=1&offset=1");
  ASSERT_TRUE(r);
  j = Body(r);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["run_id"], kRunFailed);
  EXPECT_EQ(j["total"], 3);

  r = c.Get("/api/runs?state=failed");
  ASSERT_TRUE(r);
  j = Body(r);
  ASSERT_EQ(j["runs"].size(), 1u);
  EXPECT_EQ(j["runs"][0]["run_id"], kRunFailed);
  EXPECT_EQ(j["runs"][0]["error"], "sftp refused");
  EXPECT_EQ(j["total"], 1);
  EXPECT_EQ(j["state"], "failed");

  for (const char* bad :
       {"/api/runs?limit=0", "/api/runs?limit=501", "/api/runs?limit=abc",
        "/api/runs?limit=-1", "/api/runs?offset=-3", "/api/runs?offset=1e3",
        "/api/runs?limit=99999999999999999999", "/api/runs?state=done",
        "/api/runs?state=", "/api/runs?colour=red", "/api/runs?limit=1&limit=2",
        "/api/runs?limit=1=1", "/api/runs?limit=3&=", "/api/runs?limit=3&",
        "/api/runs?&limit=3", "/api/runs?limit", "/api/runs?limit=%3",
        "/api/runs?=3"}) {
    r = c.Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << bad;
  }
}

TEST_F(AdminApiTest, ShowsOneRun) {
  auto c = Client();
  auto r = c.Get(std::string("/api/runs/") + kRunOk);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Body(r);
  EXPECT_EQ(j["run_id"], kRunOk);
  EXPECT_EQ(j["state"], "succeeded");
  ASSERT_EQ(j["steps"].size(), 3u);
  EXPECT_EQ(j["steps"][0]["name"], "validate");
  EXPECT_EQ(j["steps"][0]["output"]["accepted"], 2);  // parsed, not a string
  EXPECT_EQ(j["steps"][2]["attempts"], 2);
  ASSERT_EQ(j["files"].size(), 1u);
  EXPECT_EQ(j["files"][0]["name"], "visa_1.csv");
  EXPECT_EQ(j["files"][0]["batch_id"], "00000000000000a1-b001");
  ASSERT_EQ(j["deliveries"].size(), 1u);
  // One entry per file and destination (issue 13 flattened the per-batch
  // shape `cbpipe runs show --json` keeps).
  EXPECT_EQ(j["deliveries"][0]["status"], "delivered");
  EXPECT_EQ(j["deliveries"][0]["file"], "visa_1.csv");
  EXPECT_EQ(j["deliveries"][0]["destination"], "visa");
  EXPECT_EQ(j["rejects_file"], "/w/runs/00000000000000a1/rejects.csv");
  ASSERT_EQ(j["errors"].size(), 1u);
  EXPECT_EQ(j["errors"][0]["step"], "deliver");

  r = c.Get("/api/runs/0000000000000fff");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");

  for (const char* bad : {"/api/runs/XYZ", "/api/runs/00000000000000A1",
                          "/api/runs/00000000000000a1a",
                          "/api/runs/%27%3B%20DROP%20TABLE%20runs"}) {
    r = c.Get(bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
  }
}

TEST_F(AdminApiTest, UnknownPathsAndMethods) {
  auto c = Client();
  auto r = c.Get("/nope");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");

  r = c.Delete("/api/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  EXPECT_EQ(r->get_header_value("Allow"), "GET, HEAD");

  r = c.Post("/api/runs", "{}", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);

  r = c.Get("/api/deadletters/abc/redrive");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "POST");

  r = c.Get("/" + std::string(4000, 'a'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(ErrorCode(r), "not_found");
}

TEST_F(AdminApiTest, DeadLettersListShowAndRedriveWithAuth) {
  const std::string a =
      AddDeadLetter(R"({"run_id":"00000000000000b2","input_name":"bad.csv"})");
  const std::string b = AddDeadLetter(std::string("\xff\xfe binary", 9));
  auto c = Client();

  auto r = c.Get("/api/deadletters");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = Body(r);
  ASSERT_EQ(j["dead_letters"].size(), 2u);
  EXPECT_EQ(j["total"], 2);
  EXPECT_EQ(j["dead_letters"][0]["id"], a);
  EXPECT_EQ(j["dead_letters"][0]["run_id"], "00000000000000b2");
  EXPECT_EQ(j["dead_letters"][0]["reason"], "boom");
  EXPECT_TRUE(j["next_after"].is_null());

  r = c.Get("/api/deadletters?limit=1");
  ASSERT_TRUE(r);
  j = Body(r);
  ASSERT_EQ(j["dead_letters"].size(), 1u);
  ASSERT_EQ(j["next_after"], a);
  r = c.Get("/api/deadletters?limit=1&after=" + a);
  ASSERT_TRUE(r);
  j = Body(r);
  ASSERT_EQ(j["dead_letters"].size(), 1u);
  EXPECT_EQ(j["dead_letters"][0]["id"], b);

  r = c.Get("/api/deadletters/" + b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(Body(r)["id"], b);
  r = c.Get("/api/deadletters?limit=0");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = c.Get("/api/deadletters?after=%3Cscript%3E");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);

  const std::string redrive = "/api/deadletters/" + a + "/redrive";
  // No header: 401.
  r = c.Post(redrive, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(ErrorCode(r), "unauthenticated");
  EXPECT_FALSE(r->get_header_value("WWW-Authenticate").empty());
  // Malformed: 401.
  for (const char* h : {"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b",
                        "s3cret-token"}) {
    r = c.Post(redrive, {{"Authorization", h}}, "", "application/json");
    ASSERT_TRUE(r) << h;
    EXPECT_EQ(r->status, 401) << h;
  }
  // Wrong token: 403.
  r = c.Post(redrive, {{"Authorization", "Bearer s3cret-tokeN"}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(ErrorCode(r), "forbidden");
  r = c.Post(redrive, {{"Authorization", "Bearer s3cret-token-longer"}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  // Nothing was redriven so far.
  EXPECT_EQ(queue_->Stats()->dead_letters, 2);

  // Right token (scheme is case-insensitive).
  r = c.Post(redrive, {{"Authorization", "bearer s3cret-token"}}, "",
             "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r)["redriven"], a);
  EXPECT_EQ(queue_->Stats()->dead_letters, 1);
  EXPECT_EQ(queue_->Stats()->visible, 1);

  // Again: it is no dead letter any more.
  r = c.Post(redrive, {{"Authorization", "Bearer s3cret-token"}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = c.Post("/api/deadletters/not_an_id!/redrive",
             {{"Authorization", "Bearer s3cret-token"}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST_F(AdminApiTest, MutatingEndpointsForbiddenWithoutConfiguredToken) {
  StartServer("");
  const std::string id = AddDeadLetter("{}");
  auto c = Client();
  auto r =
      c.Post("/api/deadletters/" + id + "/redrive",
             {{"Authorization", "Bearer anything"}}, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(Body(r)["error"]["message"].get<std::string>().find(
                "admin_token is not configured"),
            std::string::npos);
  EXPECT_EQ(queue_->Stats()->dead_letters, 1);
}

TEST_F(AdminApiTest, BodyOverLimitIs413) {
  auto c = Client();
  const std::string big(1 << 20, 'x');
  auto r = c.Post("/api/deadletters/abc/redrive",
                  {{"Authorization", std::string("Bearer ") + kToken}}, big,
                  "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(ErrorCode(r), "payload_too_large");
  // Still serving.
  r = Client().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminApiTest, MalformedRequestIs400AndServerKeepsServing) {
  for (std::string_view garbage :
       {std::string_view("GARBAGE\r\n\r\n"),
        std::string_view("GET /healthz HTTP/9.9\r\n\r\n"),
        std::string_view("GET\r\n\r\n"),
        // A TLS ClientHello's first bytes (15 of them, NULs included).
        std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                         15)}) {
    RawSocket s(server_->port());
    ASSERT_TRUE(s.connected());
    s.Send(garbage);
    const std::string reply = s.ReadResponse();
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
    EXPECT_NE(reply.find("\"error\""), std::string::npos) << reply;
  }
  {
    // A request line over 8 KiB.
    RawSocket s(server_->port());
    s.Send("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n");
    const std::string reply = s.ReadResponse();
    EXPECT_EQ(reply.rfind("HTTP/1.1 414", 0), 0u) << reply.substr(0, 100);
    EXPECT_NE(reply.find("uri_too_long"), std::string::npos);
  }
  {
    // Request line and headers over 64 KiB, each line under 8 KiB.
    RawSocket s(server_->port());
    std::string head = "GET /healthz HTTP/1.1\r\n";
    for (int i = 0; i < 20; ++i)
      head += "X-Filler-" + std::to_string(i) + ": " + std::string(4000, 'a') +
              "\r\n";
    s.Send(head + "\r\n");
    const std::string reply = s.ReadResponse();
    EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 100);
    EXPECT_NE(reply.find("header_too_large"), std::string::npos);
  }
  {
    // A header line over 8 KiB.
    RawSocket s(server_->port());
    s.Send("GET /healthz HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') +
           "\r\n\r\n");
    const std::string reply = s.ReadResponse();
    EXPECT_EQ(reply.rfind("HTTP/1.1 4", 0), 0u) << reply.substr(0, 100);
  }
  auto r = Client().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminApiTest, EndlessHeadersAreCutOff) {
  RawSocket s(server_->port());
  ASSERT_TRUE(s.connected());
  ASSERT_TRUE(s.TrySend("GET /healthz HTTP/1.1\r\n"));
  const std::string line = "X-Filler: " + std::string(1000, 'a') + "\r\n";
  size_t sent = 0;
  while (sent < (64u << 20) && s.TrySend(line)) sent += line.size();
  // The server closed the connection long before 64 MiB.
  EXPECT_LT(sent, 8u << 20);
  EXPECT_EQ(s.ReadAll().find("200 OK"), std::string::npos);
  auto r = Client().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(AdminApiTest, SilentClientDoesNotBlockOthers) {
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawSocket>(server_->port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  RawSocket partial(server_->port());
  partial.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // never finished
  const auto start = std::chrono::steady_clock::now();
  auto r = Client().Get("/healthz");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_LT(took, std::chrono::seconds(1));
}

TEST_F(AdminApiTest, ManyConcurrentRequests) {
  constexpr int kThreads = 16, kEach = 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_keep_alive(t % 2 == 0);
      for (int i = 0; i < kEach; ++i) {
        auto r = (i % 2) ? c.Get("/api/runs?limit=2")
                         : c.Get(std::string("/api/runs/") + kRunOk);
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
}

TEST_F(AdminApiTest, StopIsPromptAndIdempotent) {
  RawSocket idle(server_->port());
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  server_->Stop();
  // Idle clients are not waited for.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_TRUE(idle.ClosedByServer(1000));
  auto r = Client().Get("/healthz");
  EXPECT_FALSE(r);
}

// Issue 9: 200 silent connections and 20 that trickle a header line now
// and then must not delay /healthz, and are closed after the first-byte and
// head timeouts (shortened here so the test is quick).
TEST_F(AdminApiTest, IdleAndTricklingClientsDoNotDelayHealthz) {
  AdminLimits limits;
  limits.first_byte = std::chrono::milliseconds(1000);
  limits.head = std::chrono::milliseconds(2000);
  StartServer(kToken, limits);
  const auto opened = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<RawSocket>> idle, trickling;
  for (int i = 0; i < 200; ++i) {
    idle.push_back(std::make_unique<RawSocket>(server_->port()));
    ASSERT_TRUE(idle.back()->connected()) << i;
  }
  for (int i = 0; i < 20; ++i) {
    trickling.push_back(std::make_unique<RawSocket>(server_->port()));
    ASSERT_TRUE(trickling.back()->connected()) << i;
  }
  // One header line from each trickler every 150 ms, until the server
  // hangs up on it.
  std::atomic<bool> stop{false};
  std::vector<int64_t> refused_after_ms(trickling.size(), -1);
  std::thread trickler([&] {
    for (int round = 0; !stop; ++round) {
      for (size_t i = 0; i < trickling.size(); ++i) {
        if (refused_after_ms[i] >= 0) continue;
        const std::string line =
            round == 0 ? "GET /healthz HTTP/1.1\r\n"
                       : "X-Slow-" + std::to_string(round) + ": x\r\n";
        if (!trickling[i]->TrySend(line)) refused_after_ms[i] = MsSince(opened);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t slowest_ms = 0;
  for (int i = 0; i < 20; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = Client().Get("/healthz");
    const int64_t took = MsSince(start);
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    slowest_ms = std::max(slowest_ms, took);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_LT(slowest_ms, 100);

  // The silent ones are closed after the first-byte timeout, without an
  // answer.
  for (auto& s : idle) {
    std::string got;
    EXPECT_TRUE(s->ClosedByServer(3000, &got));
    EXPECT_EQ(got, "");
  }
  EXPECT_LT(MsSince(opened), 2500);
  // The trickling ones, sending all along, after the head timeout.
  for (auto& s : trickling) {
    std::string got;
    EXPECT_TRUE(s->ClosedByServer(3000, &got));
    EXPECT_EQ(got.find("200 OK"), std::string::npos) << got;
  }
  EXPECT_LT(MsSince(opened), 3500);
  stop = true;
  trickler.join();
  // Fresh clients are still served.
  auto r = Client().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(AdminLimitsTest, DocumentedDefaults) {
  const AdminLimits limits;
  EXPECT_EQ(limits.first_byte, std::chrono::seconds(5));
  EXPECT_EQ(limits.head, std::chrono::seconds(10));
}

// Handlers that wait (a scrape, a redrive on a busy database) hold workers,
// never the loop that answers /healthz.
TEST_F(AdminApiTest, BusyWorkersDoNotDelayHealthz) {
  Gate gate;
  AdminLimits limits;
  limits.workers = 2;
  StartServer(kToken, limits, [&gate] {
    gate.Wait();
    return std::string("cbpipe_up 1\n");
  });
  std::vector<std::thread> scrapes;
  std::atomic<int> scraped{0};
  for (int i = 0; i < 4; ++i) {
    scrapes.emplace_back([&] {
      auto r = Client().Get("/metrics");
      if (r && r->status == 200) ++scraped;
    });
  }
  ASSERT_TRUE(gate.AwaitWaiting(2));
  for (int i = 0; i < 10; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = Client().Get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_LT(MsSince(start), 100);
  }
  gate.Open();
  for (std::thread& t : scrapes) t.join();
  EXPECT_EQ(scraped.load(), 4);
}

// Issue 9, point 10: the documented command — POST, no body, no
// Content-Length — is answered at once.
TEST_F(AdminApiTest, RedriveWithoutBodyOrContentLengthAnswersAtOnce) {
  const std::string a = AddDeadLetter(R"({"run_id":"00000000000000b2"})");
  const std::string b = AddDeadLetter("{}");
  {
    RawSocket s(server_->port());
    const auto start = std::chrono::steady_clock::now();
    s.Send("POST /api/deadletters/" + a +
           "/redrive HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
           kToken + "\r\n\r\n");
    const std::string reply = s.ReadResponse();
    EXPECT_LT(MsSince(start), 1000);
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
    EXPECT_NE(reply.find("\"redriven\":\"" + a + "\""), std::string::npos);
  }
  // And the very command of docs/service.md.
  const auto start = std::chrono::steady_clock::now();
  const std::string out = Shell(
      "curl -s -X POST -H \"Authorization: Bearer " + std::string(kToken) +
      "\" http://127.0.0.1:" + std::to_string(server_->port()) +
      "/api/deadletters/" + b + "/redrive");
  EXPECT_LT(MsSince(start), 1000);
  EXPECT_EQ(json::parse(out, nullptr, false)["redriven"], b) << out;
  EXPECT_EQ(queue_->Stats()->dead_letters, 0);
}

TEST_F(AdminApiTest, HeadAndExpectContinue) {
  RawSocket s(server_->port());
  s.Send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string reply;
  s.ClosedByServer(500, &reply);  // keep-alive: it stays open
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find("Content-Length: 15"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("{"), std::string::npos) << reply;  // no body

  const std::string id = AddDeadLetter("{}");
  RawSocket c(server_->port());
  c.Send("POST /api/deadletters/" + id +
         "/redrive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
         "\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  std::string interim;
  c.ClosedByServer(500, &interim);
  EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
  c.Send("{}");
  EXPECT_EQ(c.ReadResponse().rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(AdminApiTest, RedrivesAreAuditedWithoutTheToken) {
  LogCapture log;
  const std::string a = AddDeadLetter(R"({"run_id":"00000000000000b2"})");
  auto c = Client();
  const std::string path = "/api/deadletters/" + a + "/redrive";
  auto r = c.Post(path, {{"Authorization", "Bearer wrong-token"}}, "",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  r = c.Post(path, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = c.Post(path, {{"Authorization", std::string("Bearer ") + kToken}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  r = c.Post(path, {{"Authorization", std::string("Bearer ") + kToken}}, "",
             "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  const std::vector<json> lines = log.WaitFor("audit.redrive", 4, 2000);
  ASSERT_EQ(lines.size(), 4u) << log.All();
  EXPECT_EQ(lines[0]["outcome"], "forbidden");
  EXPECT_EQ(lines[0]["actor"],
            "token:" + Sha256Hex("wrong-token").substr(0, 8));
  EXPECT_EQ(lines[1]["outcome"], "unauthenticated");
  EXPECT_EQ(lines[1]["actor"], "anonymous");
  const json& ok = lines[2];
  EXPECT_EQ(ok["outcome"], "ok");
  EXPECT_EQ(ok["level"], "info");
  EXPECT_EQ(ok["actor"], "token:" + Sha256Hex(kToken).substr(0, 8));
  EXPECT_EQ(ok["via"], "api");
  EXPECT_EQ(ok["dead_letter_id"], a);
  EXPECT_EQ(ok["run_id"], "00000000000000b2");
  EXPECT_EQ(ok["count"], 1);
  EXPECT_EQ(ok["origin"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
  EXPECT_FALSE(ok["time"].get<std::string>().empty());
  EXPECT_EQ(lines[3]["outcome"], "not_found");
  EXPECT_EQ(lines[3]["level"], "warn");
  EXPECT_EQ(log.All().find(kToken), std::string::npos);
}

// Audit lines are kept whatever the log level.
TEST_F(AdminApiTest, AuditLinesIgnoreTheLogLevel) {
  LogCapture log;
  Log().SetMinLevel(LogLevel::kError);
  const std::string a = AddDeadLetter("{}");
  auto r = Client().Post("/api/deadletters/" + a + "/redrive",
                         {{"Authorization", std::string("Bearer ") + kToken}},
                         "", "application/json");
  Log().SetMinLevel(LogLevel::kInfo);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(log.WaitFor("audit.redrive", 1, 2000).size(), 1u) << log.All();
}

// A client that hangs up while its redrive waits for a worker gets nothing
// done, and the audit log says so.
TEST_F(AdminApiTest, ClientGoneBeforeTheAnswerGetsNoRedrive) {
  LogCapture log;
  Gate gate;
  AdminLimits limits;
  limits.workers = 1;
  StartServer(kToken, limits, [&gate] {
    gate.Wait();
    return std::string();
  });
  const std::string a = AddDeadLetter(R"({"run_id":"00000000000000b2"})");
  // The only worker is busy.
  std::thread scrape([&] { Client().Get("/metrics"); });
  ASSERT_TRUE(gate.AwaitWaiting(1));
  {
    RawSocket s(server_->port());
    s.Send("POST /api/deadletters/" + a +
           "/redrive HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + kToken +
           "\r\n\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // gives up
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  gate.Open();
  scrape.join();
  const std::vector<json> lines = log.WaitFor("audit.redrive", 1, 3000);
  ASSERT_EQ(lines.size(), 1u) << log.All();
  EXPECT_EQ(lines[0]["outcome"], "client_gone");
  EXPECT_EQ(lines[0]["dead_letter_id"], a);
  EXPECT_EQ(queue_->Stats()->dead_letters, 1);  // still a dead letter

  // The same request from a client that waits is done.
  auto r = Client().Post("/api/deadletters/" + a + "/redrive",
                         {{"Authorization", std::string("Bearer ") + kToken}},
                         "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(queue_->Stats()->dead_letters, 0);
}

TEST_F(AdminApiTest, TooManyPendingRequestsAre503) {
  Gate gate;
  AdminLimits limits;
  limits.workers = 1;
  limits.max_pending = 2;
  StartServer(kToken, limits, [&gate] {
    gate.Wait();
    return std::string();
  });
  std::vector<std::thread> scrapes;
  for (int i = 0; i < 2; ++i)
    scrapes.emplace_back([&] { Client().Get("/metrics"); });
  ASSERT_TRUE(gate.AwaitWaiting(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto r = Client().Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(ErrorCode(r), "unavailable");
  r = Client().Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  gate.Open();
  for (std::thread& t : scrapes) t.join();
}

TEST(AdminServerStart, RefusesBadAndNonLoopbackAddresses) {
  AdminServer::Hooks hooks;
  hooks.log = [](std::string_view) {};
  for (const char* bad : {"", "8787", ":8787", "127.0.0.1:", "127.0.0.1:x",
                          "127.0.0.1:65536", "::1:8787"}) {
    auto s = AdminServer::Start(bad, hooks);
    EXPECT_FALSE(s.ok()) << bad;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    }
  }
  auto s = AdminServer::Start("0.0.0.0:0", hooks);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  // It names the way out that exists (a proxy), not an option that does not.
  EXPECT_NE(s.status().message().find("proxy"), std::string::npos);
  EXPECT_EQ(s.status().message().find("explicitly"), std::string::npos);

  std::string warned;
  hooks.allow_non_loopback = true;
  hooks.log = [&](std::string_view m) { warned = std::string(m); };
  s = AdminServer::Start("0.0.0.0:0", hooks);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_NE(warned.find("non-loopback"), std::string::npos);
  (*s)->Stop();

  s = AdminServer::Start("[::1]:0", AdminServer::Hooks{});
  if (s.ok()) {  // hosts without IPv6 cannot bind ::1
    httplib::Client c("::1", (*s)->port());
    auto r = c.Get("/healthz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

TEST(AdminServerStart, BusyPortIsUnavailable) {
  auto a = AdminServer::Start("127.0.0.1:0", AdminServer::Hooks{});
  ASSERT_TRUE(a.ok());
  auto b = AdminServer::Start("127.0.0.1:" + std::to_string((*a)->port()),
                              AdminServer::Hooks{});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kUnavailable);
}

TEST(AdminServerStart, WithoutStoresAnswers503) {
  auto s = AdminServer::Start("127.0.0.1:0", AdminServer::Hooks{});
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", (*s)->port());
  auto r = c.Get("/api/runs");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
}

TEST(AdminServerStart, HandlerExceptionIs500) {
  AdminServer::Hooks hooks;
  hooks.log = [](std::string_view) {};
  hooks.render_metrics = []() -> std::string {
    throw std::runtime_error("registry exploded");
  };
  auto s = AdminServer::Start("127.0.0.1:0", std::move(hooks));
  ASSERT_TRUE(s.ok());
  httplib::Client c("127.0.0.1", (*s)->port());
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->body;
  EXPECT_EQ(j["error"]["code"], "internal");
  r = c.Get("/healthz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(AdminDocuments, ValidatesIdsAndStates) {
  EXPECT_TRUE(IsValidRunId("0123456789abcdef"));
  EXPECT_FALSE(IsValidRunId("0123456789ABCDEF"));
  EXPECT_FALSE(IsValidRunId("0123456789abcde"));
  EXPECT_TRUE(IsKnownRunState("rejected"));
  EXPECT_FALSE(IsKnownRunState(""));
  EXPECT_TRUE(IsValidDeadLetterId("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
  EXPECT_FALSE(IsValidDeadLetterId("../x"));
  EXPECT_EQ(DumpJson(json(std::string("a\xff"))), "\"a\xEF\xBF\xBD\"");
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// The headers every answer carries, console or API.
void ExpectSecurityHeaders(const httplib::Result& r) {
  EXPECT_EQ(r->get_header_value("Content-Security-Policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
  EXPECT_EQ(r->get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r->get_header_value("Referrer-Policy"), "no-referrer");
  EXPECT_EQ(r->get_header_value("X-Frame-Options"), "DENY");
}

TEST_F(AdminApiTest, ServesTheEmbeddedConsoleWithSecurityHeaders) {
  const std::span<const EmbeddedAsset> assets = ConsoleAssets();
  ASSERT_FALSE(assets.empty());
  const EmbeddedAsset* index = nullptr;
  for (const EmbeddedAsset& a : assets) {
    if (a.path == "index.html") index = &a;
  }
  ASSERT_NE(index, nullptr) << "the console has no index.html";

  auto c = Client();
  for (const char* path : {"/", "/console"}) {
    auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 302) << path;
    EXPECT_EQ(r->get_header_value("Location"), "/console/") << path;
    ExpectSecurityHeaders(r);
  }

  auto r = c.Get("/console/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, index->body);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache");
  ExpectSecurityHeaders(r);
  const std::string etag = r->get_header_value("ETag");
  EXPECT_EQ(etag, "\"" + Sha256Hex(index->body).substr(0, 32) + "\"");

  // Every file, byte for byte, with its type and its own ETag.
  for (const EmbeddedAsset& a : assets) {
    const std::string path = "/console/" + std::string(a.path);
    r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 200) << path;
    EXPECT_EQ(r->body, a.body) << path;
    EXPECT_EQ(r->get_header_value("Content-Type"), a.content_type) << path;
    EXPECT_EQ(r->get_header_value("ETag"),
              "\"" + Sha256Hex(a.body).substr(0, 32) + "\"")
        << path;
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-cache") << path;
    ExpectSecurityHeaders(r);
  }

  // Revalidation: the same ETag is 304 without a body; another is 200.
  r = c.Get("/console/", {{"If-None-Match", etag}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);
  EXPECT_TRUE(r->body.empty());
  r = c.Get("/console/", {{"If-None-Match", "\"other\", W/" + etag}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 304);
  r = c.Get("/console/", {{"If-None-Match", "\"other\""}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  // HEAD: the length, not the body.
  r = c.Head("/console/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Length"),
            std::to_string(index->body.size()));
  EXPECT_TRUE(r->body.empty());

  // A page of the console's own routing is index.html; a missing file 404.
  r = c.Get("/console/runs/00000000000000a1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, index->body);
  r = c.Get("/console/no-such-file.js");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  ExpectSecurityHeaders(r);
  r = c.Post("/console/", "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);

  // The API: the same headers, and never cached.
  for (const char* path : {"/healthz", "/api/runs", "/metrics", "/nope"}) {
    r = c.Get(path);
    ASSERT_TRUE(r) << path;
    ExpectSecurityHeaders(r);
    EXPECT_EQ(r->get_header_value("Cache-Control"), "no-store") << path;
  }
}

TEST_F(AdminApiTest, PostWithAFormContentTypeIs415AndDoesNothing) {
  const std::string id = AddDeadLetter(R"({"run_id":"00000000000000a1"})");
  auto c = Client();
  const httplib::Headers auth = {
      {"Authorization", std::string("Bearer ") + kToken}};
  for (const char* type :
       {"application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "text/plain;charset=UTF-8", "Text/Plain"}) {
    auto r = c.Post("/api/deadletters/" + id + "/redrive", auth, "a=b", type);
    ASSERT_TRUE(r) << type;
    EXPECT_EQ(r->status, 415) << type;
    EXPECT_EQ(ErrorCode(r), "unsupported_media_type") << type;
  }
  auto stats = queue_->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dead_letters, 1) << "a form POST reached the handler";
  auto r = c.Post("/api/deadletters/" + id + "/redrive", auth, "{}",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

TEST_F(AdminApiTest, ListsRunsByInputNameAndTimeRange) {
  auto c = Client();
  auto ids = [&](const std::string& query, int64_t* total) {
    std::vector<std::string> out;
    auto r = c.Get("/api/runs?" + query);
    EXPECT_TRUE(r && r->status == 200) << query << (r ? r->body : "");
    if (!r || r->status != 200) return out;
    json j = Body(r);
    for (const json& run : j["runs"]) out.push_back(run["run_id"]);
    *total = j["total"];
    return out;
  };
  using V = std::vector<std::string>;
  int64_t total = 0;
  EXPECT_EQ(ids("input=OK.CSV", &total), (V{kRunQueued, kRunOk}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids("input=bad", &total), (V{kRunFailed}));
  EXPECT_EQ(ids("from=2000", &total), (V{kRunQueued, kRunFailed}));
  EXPECT_EQ(ids("to=2000", &total), (V{kRunOk}));
  EXPECT_EQ(ids("from=1000&to=3000&input=.csv", &total),
            (V{kRunFailed, kRunOk}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids("from=1000&to=3000&input=.csv&limit=1&offset=1", &total),
            (V{kRunOk}));
  EXPECT_EQ(total, 2);
  EXPECT_EQ(ids("state=succeeded&input=ok", &total), (V{kRunOk}));
  EXPECT_EQ(total, 1);
  EXPECT_TRUE(ids("input=%3Cimg%20src%3Dx%3E", &total).empty());
  EXPECT_EQ(total, 0);

  for (const std::string& bad : std::vector<std::string>{
           "from=-1", "to=abc", "from=1e3", "to=1234567890123456",
        "input=" + std::string(201, 'a'), "from=1&from=2"}) {
    auto r = c.Get("/api/runs?" + bad);
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(ErrorCode(r), "invalid_argument") << bad;
  }
  auto r = c.Get("/api/runs?input=" + std::string(200, 'a'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

TEST_F(AdminApiTest, RedriveAllNeedsTheTokenIsAuditedAndMovesEveryOne) {
  LogCapture log;
  AddDeadLetter(R"({"run_id":"00000000000000b2"})");
  AddDeadLetter(R"({"run_id":"00000000000000c3"})");
  auto c = Client();
  const std::string path = "/api/deadletters/redrive";
  auto r = c.Post(path, {{"Authorization", "Bearer wrong-token"}}, "",
                  "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(Body(r)["error"]["message"], "wrong bearer token");
  r = c.Post(path, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(queue_->Stats()->dead_letters, 2) << "refused, yet redriven";
  r = c.Post(path, {{"Authorization", std::string("Bearer ") + kToken}}, "",
             "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Body(r), json({{"redriven", 2}, {"failed", json::array()}}));
  EXPECT_EQ(queue_->Stats()->dead_letters, 0);
  EXPECT_EQ(queue_->Stats()->visible, 2);
  // Nothing left: 0, not an error.
  r = c.Post(path, httplib::Headers{{"Authorization", std::string("Bearer ") + kToken}}, "", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(Body(r)["redriven"], 0);
  r = c.Get(path);  // the GET of a dead letter named "redrive"
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  const std::vector<json> lines = log.WaitFor("audit.redrive_all", 4, 2000);
  ASSERT_EQ(lines.size(), 4u) << log.All();
  EXPECT_EQ(lines[0]["outcome"], "forbidden");
  EXPECT_EQ(lines[1]["outcome"], "unauthenticated");
  EXPECT_EQ(lines[2]["outcome"], "ok");
  EXPECT_EQ(lines[2]["count"], 2);
  EXPECT_EQ(lines[2]["actor"], "token:" + Sha256Hex(kToken).substr(0, 8));
  EXPECT_EQ(lines[3]["outcome"], "ok");
  EXPECT_EQ(lines[3]["count"], 0);
  EXPECT_EQ(log.All().find(kToken), std::string::npos);
}

TEST_F(AdminApiTest, OverviewCountsRunsQueueAndDestinations) {
  AddDeadLetter(R"({"run_id":"00000000000000b2"})");
  ASSERT_TRUE(queue_->Send("{}").ok());
  // A run delivered "today" (by the injected clock) to visa, with the shape
  // of the deliver step's output.
  constexpr int64_t kNow = 1'765'000'000'000;
  RunRecord run;
  run.run_id = "00000000000000d4";
  run.input_name = "today.csv";
  run.created_ms = kNow - 60'000;
  ASSERT_TRUE(runs_->CreateIfAbsent(run).ok());
  StepRecord deliver = Step(
      "deliver",
      json({{"id", "b1"},
            {"destination", "visa"},
            {"files",
             json::array({{{"destination", "visa"},
                           {"name", "v1.csv"},
                           {"records", 7},
                           {"status", "delivered"},
                           {"attempts", 1}},
                          {{"destination", "visa"},
                           {"name", "v2.csv"},
                           {"records", 3},
                           {"status", "failed"},
                           {"attempts", 3},
                           {"error", "unavailable: refused"}}})}})
          .dump());
  deliver.finished_ms = kNow - 30'000;
  ASSERT_TRUE(runs_->SaveStep(run.run_id, deliver).ok());
  ASSERT_TRUE(runs_->SetState(run.run_id, "running", "deliver", "").ok());

  AdminServer::Hooks hooks;
  hooks.runs = runs_.get();
  hooks.queue = queue_.get();
  hooks.log = [](std::string_view) {};
  hooks.destinations = {
      {"visa", "visa", "sftp", "127.0.0.1", 2222, "/in/"},
      {"amex", "amex", "ftps", "127.0.0.1", 2121, "/"}};
  hooks.reachability = [] {
    return std::map<std::string, Reachability>{
        {"amex", {false, kNow - 5000, "connection refused"}}};
  };
  hooks.version = "9.9.9";
  hooks.workers = 3;
  hooks.started_ms = kNow - 3'600'000;
  hooks.now_ms = [] { return kNow; };
  server_->Stop();
  auto server = AdminServer::Start("127.0.0.1:0", std::move(hooks));
  ASSERT_TRUE(server.ok());
  server_ = std::move(*server);

  auto c = Client();
  auto r = c.Get("/api/overview");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json o = Body(r);
  EXPECT_EQ(o["generated_ms"], kNow);
  EXPECT_EQ(o["service"],
            json({{"ready", true},
                  {"version", "9.9.9"},
                  {"started_ms", kNow - 3'600'000},
                  {"workers", 3}}));
  EXPECT_EQ(o["queue"]["depth"], 1);
  EXPECT_EQ(o["queue"]["dead_letters"], 1);
  EXPECT_EQ(o["runs"],
            json({{"queued", 1},
                  {"running", 1},
                  {"failed", 1},
                  {"rejected", 0},
                  {"succeeded", 1}}));
  ASSERT_EQ(o["destinations"].size(), 2u);
  const json& visa = o["destinations"][0];
  EXPECT_EQ(visa["name"], "visa");
  EXPECT_EQ(visa["port"], 2222);
  EXPECT_EQ(visa["last_delivery_ms"], kNow - 30'000);
  EXPECT_DOUBLE_EQ(visa["last_delivery_age_seconds"].get<double>(), 30.0);
  EXPECT_EQ(visa["files_today"], 1);
  EXPECT_EQ(visa["records_today"], 7);
  EXPECT_EQ(visa["retries_waiting"], 1);
  EXPECT_TRUE(visa["reachable"].is_null());
  EXPECT_EQ(visa["attention"], json({"retry waiting", "failures today"}));
  const json& amex = o["destinations"][1];
  EXPECT_EQ(amex["files_today"], 0);
  EXPECT_TRUE(amex["last_delivery_ms"].is_null());
  EXPECT_EQ(amex["reachable"], false);
  EXPECT_EQ(amex["reachable_checked_ms"], kNow - 5000);
  EXPECT_EQ(amex["reachable_error"], "connection refused");
  EXPECT_EQ(amex["attention"], json({"unreachable"}));
  EXPECT_EQ(o["attention"],
            json({"dead letters present", "failed runs",
                  "visa: retry waiting", "visa: failures today",
                  "amex: unreachable"}));

  // The run's page: the flattened deliveries with their remote paths.
  r = c.Get("/api/runs/00000000000000d4");
  ASSERT_TRUE(r);
  const json detail = Body(r);
  ASSERT_EQ(detail["deliveries"].size(), 2u) << detail.dump();
  EXPECT_EQ(detail["deliveries"][0]["remote_path"], "/in/v1.csv");
  EXPECT_EQ(detail["deliveries"][0]["network"], "visa");
  EXPECT_EQ(detail["deliveries"][0]["delivered_ms"], kNow - 30'000);
  EXPECT_EQ(detail["deliveries"][1]["status"], "failed");
  EXPECT_EQ(detail["deliveries"][1]["error"], "unavailable: refused");
  EXPECT_EQ(detail["deliveries"][1]["attempts"], 3);
  EXPECT_TRUE(detail["deliveries"][1]["delivered_ms"].is_null());
  EXPECT_EQ(detail["rejects"]["total"], 0);
  r = c.Get("/api/runs/00000000000000d4/rejects");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);  // no work store hook
}

TEST(ConsoleApi, SummarizesRejectsWithQuotedFields) {
  const RejectsSummary s = SummarizeRejects(
      "position,case_id,field,code,message\r\n"
      "1,\"C1\",pan,E_LUHN,\"card 411111******1111, \"\"bad\"\"\"\r\n"
      "2,\"C2\",pan,E_LUHN,\"two\r\nlines\"\r\n"
      "\r\n"
      "3,C3,amount,AMOUNT_INVALID,x\n");
  EXPECT_EQ(s.total, 3);
  EXPECT_EQ(s.by_code,
            (std::map<std::string, int64_t>{{"AMOUNT_INVALID", 1},
                                            {"E_LUHN", 2}}));
  EXPECT_EQ(SummarizeRejects("position,case_id,field,code,message\n").total,
            0);
  EXPECT_EQ(UtcDayStartMs(1'765'000'000'000), 1'764'979'200'000);
}

}  // namespace
}  // namespace cbpipe

namespace cbpipe {
namespace {

// Charts come from the run store: the same after a restart of the server
// and a reopening of the store.
TEST_F(AdminApiTest, ChartsFromTheRunStoreSurviveARestart) {
  constexpr int64_t kHour = 3'600'000;
  constexpr int64_t kNow = 1'765'000'000'000;  // 05:46:40 UTC
  const int64_t this_hour = kNow - kNow % kHour;
  auto add_run = [&](const std::string& id, int64_t created, int64_t delivered,
                     const char* status, int64_t records) {
    RunRecord run;
    run.run_id = id;
    run.input_name = id + ".csv";
    run.created_ms = created;
    ASSERT_TRUE(runs_->CreateIfAbsent(run).ok());
    StepRecord deliver = Step(
        "deliver", json({{"files", json::array({{{"destination", "visa"},
                                                 {"name", id + ".csv"},
                                                 {"records", records},
                                                 {"status", status},
                                                 {"attempts", 1}}})}})
                       .dump());
    deliver.finished_ms = delivered;
    ASSERT_TRUE(runs_->SaveStep(id, deliver).ok());
  };
  add_run("00000000000000e1", this_hour + 1000, this_hour + 3000, "delivered",
          10);
  add_run("00000000000000e2", this_hour + 2000, this_hour + 12000,
          "delivered", 5);
  add_run("00000000000000e3", this_hour - kHour, this_hour - kHour + 1000,
          "delivered", 4);
  // A failure counts at the run's last update: the store's clock, after
  // kNow, so outside the range here.
  add_run("00000000000000e4", this_hour - kHour, 0, "failed", 1);
  auto start = [&] {
    AdminServer::Hooks hooks;
    hooks.runs = runs_.get();
    hooks.queue = queue_.get();
    hooks.log = [](std::string_view) {};
    hooks.destinations = {{"visa", "visa", "sftp", "h", 22, "/"}};
    hooks.now_ms = [] { return kNow; };
    server_->Stop();
    auto server = AdminServer::Start("127.0.0.1:0", std::move(hooks));
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
  };
  start();
  auto c = Client();
  auto r = c.Get("/api/charts?range=24h");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json day = Body(r);
  EXPECT_EQ(day["range"], "24h");
  EXPECT_EQ(day["bucket_seconds"], 3600);
  ASSERT_EQ(day["buckets_ms"].size(), 24u);
  EXPECT_EQ(day["buckets_ms"][23], this_hour);
  EXPECT_EQ(day["buckets_ms"][0], this_hour - 23 * kHour);
  EXPECT_EQ(day["records_per_network"]["visa"][23], 15);
  EXPECT_EQ(day["records_per_network"]["visa"][22], 4);
  EXPECT_EQ(day["records_per_network"]["amex"][23], 0);
  // Latencies 2 s and 10 s: nearest-rank p50 2, p95 10.
  EXPECT_EQ(day["delivery_latency_seconds"]["visa"]["p50"][23], 2.0);
  EXPECT_EQ(day["delivery_latency_seconds"]["visa"]["p95"][23], 10.0);
  EXPECT_TRUE(day["delivery_latency_seconds"]["visa"]["p50"][0].is_null());
  EXPECT_EQ(day["failure_rate"]["visa"][23], 0.0);
  EXPECT_TRUE(day["failure_rate"]["mastercard"][23].is_null());
  for (const char* n : {"visa", "mastercard", "amex", "discover"})
    EXPECT_EQ(day["records_per_network"][n].size(), 24u) << n;

  r = c.Get("/api/charts?range=14d");
  ASSERT_TRUE(r);
  const json fortnight = Body(r);
  EXPECT_EQ(fortnight["bucket_seconds"], 86400);
  ASSERT_EQ(fortnight["buckets_ms"].size(), 14u);
  EXPECT_EQ(fortnight["records_per_network"]["visa"][13], 19);

  r = c.Get("/api/charts?range=7d");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);

  // A restart: the store reopened, a new server.
  server_->Stop();
  runs_.reset();
  auto reopened = SqliteRunStore::Open(dir_ + "/state.db", Env::Default());
  ASSERT_TRUE(reopened.ok());
  runs_ = std::move(*reopened);
  start();
  auto c2 = Client();
  r = c2.Get("/api/charts?range=24h");
  ASSERT_TRUE(r);
  EXPECT_EQ(Body(r), day);
}

}  // namespace
}  // namespace cbpipe
