// The admin HTTP API of `cbpipe serve` (docs/service.md, "Admin API"):
//
//   GET  /healthz                          the process answers
//   GET  /readyz                           200 when Hooks::ready(), else 503
//   GET  /metrics                          Prometheus text format 0.0.4
//   GET  /api/runs?state=&limit=&offset=   runs, newest first
//   GET  /api/runs/{id}                    one run: steps, files, deliveries
//   GET  /api/deadletters?limit=&after=    dead letters of the inputs queue
//   GET  /api/deadletters/{id}             one dead letter
//   POST /api/deadletters/{id}/redrive     back to the queue (bearer token)
//
//   AdminServer::Hooks hooks;
//   hooks.runs = run_store.get();
//   hooks.queue = inputs_queue.get();
//   hooks.render_metrics = [] { return DefaultMetricsRegistry()
//                                          .RenderPrometheus(); };
//   hooks.ready = [&] { return workers_started.load(); };
//   hooks.token = *ResolveSecret(config.service.admin_token_ref);
//   CBPIPE_ASSIGN_OR_RETURN(auto admin, AdminServer::Start(
//       config.service.admin_listen, std::move(hooks)));
//   ...
//   admin->Stop();  // or let it go out of scope
//
// Every response is JSON except /metrics; every error is
// {"error": {"code": "not_found", "message": "..."}} with a 4xx or 5xx
// status. Limits (a misbehaving client gets an error or a closed
// connection, never a stuck or crashed service): request bodies up to
// kAdminMaxBodyBytes (413 beyond); a request line up to 8 KiB (414) and
// header lines up to 8 KiB each (400; cpp-httplib's compiled-in limits);
// request line and headers together up to kAdminMaxHeadBytes (the
// connection is closed); kAdminIoTimeoutSeconds per socket wait and
// kAdminRequestDeadlineSeconds per request and response (then the
// connection is closed); kAdminWorkers connections served at once with up to
// kAdminMaxQueuedConnections waiting (then the kernel's backlog), keep-alive
// limited to kAdminKeepAliveMaxRequests requests or
// kAdminKeepAliveIdleSeconds idle. A handler that throws gives a 500.
//
// Thread safety: Start/Stop/port from one thread; the hooks are called from
// the server's worker threads, several at once, and must be thread-safe
// (RunStore and SqliteQueue are).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"
#include "config/config.h"
#include "queue/queue.h"
#include "workflow/run_store.h"

namespace httplib {
class Server;
}

namespace cbpipe {

inline constexpr size_t kAdminMaxBodyBytes = 64 * 1024;
// Request line and headers together.
inline constexpr size_t kAdminMaxHeadBytes = 64 * 1024;
// One socket wait (read or write).
inline constexpr int kAdminIoTimeoutSeconds = 5;
// One request, from its first byte to the end of its response.
inline constexpr int kAdminRequestDeadlineSeconds = 30;
inline constexpr int kAdminWorkers = 8;
inline constexpr int kAdminMaxQueuedConnections = 64;
inline constexpr int kAdminKeepAliveMaxRequests = 20;
inline constexpr int kAdminKeepAliveIdleSeconds = 2;
// Paging of /api/runs and /api/deadletters (and the CLI).
inline constexpr int kAdminDefaultPageSize = 50;
inline constexpr int kAdminMaxPageSize = 500;

class AdminServer {
 public:
  struct Hooks {
    RunStore* runs = nullptr;  // null: /api/runs answers 503
    Queue* queue = nullptr;    // null: /api/deadletters answers 503
    std::function<std::string()> render_metrics;  // empty: empty /metrics
    std::function<bool()> ready;                  // empty: always ready
    // The resolved bearer token for mutating endpoints. Empty: they always
    // answer 403 saying that admin_token is not configured.
    std::string token;
    // Listening on anything but a loopback address (127.0.0.0/8, ::1,
    // localhost) is refused unless this is set; when set, a warning is
    // logged. For tests only: the config has no such option, and `config
    // check` applies the same rule (ParseAdminListenAddress). The API has
    // no TLS: put a TLS proxy in front of it.
    bool allow_non_loopback = false;
    // Warnings and handler failures (never a token). Empty: stderr.
    std::function<void(std::string_view message)> log;
  };

  // Listens on `listen` ("host:port"; "[::1]:port" for IPv6; port 0 picks a
  // free port, see port()) and serves on its own threads until Stop().
  // kInvalidArgument for a malformed `listen`; kFailedPrecondition for a
  // non-loopback host without allow_non_loopback; kUnavailable when the
  // address cannot be bound (in use, not local).
  static StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen,
                                                      Hooks hooks);

  ~AdminServer();  // Stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // Stops accepting, lets the requests in progress finish (each is bounded
  // by the timeouts above) and joins the threads. Idempotent.
  void Stop();

 private:
  explicit AdminServer(Hooks hooks);
  void InstallRoutes();

  Hooks hooks_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// For `cbpipe serve`: starts the API from config.service (admin_listen,
// admin_token resolved with ResolveSecret). Returns null when admin_listen
// is "" (the API is disabled). An admin_token that cannot be resolved is an
// error (kNotFound, kPermissionDenied, ...) naming the reference.
StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const Config& config, RunStore* runs, Queue* queue,
    std::function<std::string()> render_metrics, std::function<bool()> ready);

// The documents the API serves; the operator CLI prints the same.

// The run states RunStore knows; /api/runs?state= and `cbpipe runs list
// --state` accept these only.
bool IsKnownRunState(std::string_view state);
// A run id: 16 lower-case hex digits (the start of the input's SHA-256).
bool IsValidRunId(std::string_view id);
// A dead-letter (message) id: 1-64 of [0-9A-Za-z-] (UUIDs).
bool IsValidDeadLetterId(std::string_view id);

// A run without its steps (one row of /api/runs).
nlohmann::json RunSummaryJson(const RunRecord& run);
// A run with its steps (outputs parsed back to JSON), "files" (generated,
// from the generate step), "deliveries" (from the deliver step: per batch,
// per file), "rejects_file" (from the validate step, or null) and "errors"
// (each step's and the run's).
nlohmann::json RunDetailJson(const RunRecord& run);
nlohmann::json DeadLetterJson(const DeadLetter& dead_letter);
// {"error": {"code": <code>, "message": <message>}}.
nlohmann::json ErrorJson(std::string_view code, std::string_view message);
// Serialises `j`; bytes that are not UTF-8 (a message body may hold any)
// become U+FFFD instead of throwing.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace cbpipe
