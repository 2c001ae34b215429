// The admin HTTP API of `cbpipe serve` (docs/service.md, "Admin API"):
//
//   GET  /healthz                          the process answers
//   GET  /readyz                           200 when Hooks::ready(), else 503
//   GET  /metrics                          Prometheus text format 0.0.4
//   GET  /api/runs?state=&input=&from=&to=&limit=&offset=
//                                          runs, newest first
//   GET  /api/runs/{id}                    one run: steps, files, deliveries
//   GET  /api/deadletters?limit=&after=    dead letters of the inputs queue
//   GET  /api/deadletters/{id}             one dead letter
//   POST /api/deadletters/{id}/redrive     back to the queue (bearer token)
//   POST /api/deadletters/redrive          all of them (bearer token)
//   GET  /api/overview                     the console's overview
//   GET  /api/charts?range=24h|14d         the console's charts
//   GET  /api/runs/{id}/rejects            the run's rejects report (CSV)
//   GET  /                                 302 to /console/
//   GET  /console/, /console/<file>        the console (app/console_assets.h)
//
//   AdminServer::Hooks hooks;
//   hooks.runs = run_store.get();
//   hooks.queue = inputs_queue.get();
//   hooks.render_metrics = [&prometheus] { return prometheus.Render(); };
//   hooks.ready = [&] { return workers_started.load(); };
//   hooks.token = secrets->Resolve(config.service.admin_token_ref)->value();
//   CBPIPE_ASSIGN_OR_RETURN(auto admin, AdminServer::Start(
//       config.service.admin_listen, std::move(hooks)));
//   ...
//   admin->Stop();  // or let it go out of scope
//
// Every response is JSON except /metrics and the console; every error is
// {"error": {"code": "not_found", "message": "..."}} with a 4xx or 5xx
// status. HEAD is answered for every GET endpoint. Every response carries
// a strict Content-Security-Policy, X-Content-Type-Options: nosniff,
// Referrer-Policy: no-referrer and X-Frame-Options: DENY; API answers
// Cache-Control: no-store, console files an ETag and no-cache (304 to a
// matching If-None-Match). A POST whose Content-Type an HTML form can send
// (application/x-www-form-urlencoded, multipart/form-data, text/plain) is
// refused with 415 before any handler or token check.
//
// Serving model (Boost.Beast over one Asio event-loop thread; why in
// docs/service.md): the loop thread only reads, parses and writes, never
// blocking, so idle, slow or hostile connections cost a socket and a small
// buffer each and delay nobody. /healthz is answered on the loop itself;
// every other endpoint runs on a pool of AdminLimits::workers threads (the
// hooks may wait for SQLite), so a slow redrive or scrape cannot hold up
// /healthz either.
//
// Limits (a misbehaving client gets an error or a closed connection, never
// a stuck or crashed service): the first byte of a request within
// AdminLimits::first_byte and its request line and headers within
// AdminLimits::head, both counted from the connection's start or the end
// of the previous response (else the connection is closed, unanswered);
// the request line up to kAdminMaxLineBytes (414), each header line up to
// kAdminMaxLineBytes (400), request line and headers together up to
// kAdminMaxHeadBytes (431); request bodies up to kAdminMaxBodyBytes (413);
// the body and the response within AdminLimits::request of the end of the
// headers; AdminLimits::max_connections open at once (more are closed at
// once); AdminLimits::max_pending requests queued for or running on the
// workers (more get 503); keep-alive limited to kAdminKeepAliveMaxRequests
// requests and AdminLimits::keep_alive_idle. A POST needs no body and no
// Content-Length. A handler that throws gives a 500.
//
// Mutating endpoints write an audit line (app/audit.h) for every attempt,
// refused or not. Before acting, a worker checks that the client is still
// connected: a client that gave up while its request waited gets no action
// (audit outcome "client_gone").
//
// Thread safety: Start/Stop/port from one thread; the hooks are called from
// the server's worker threads, several at once, and must be thread-safe
// (RunStore and SqliteQueue are).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "app/console_api.h"
#include "common/status.h"
#include "config/config.h"
#include "queue/queue.h"
#include "runs/run_store.h"
#include "secrets/secret_store.h"

namespace cbpipe {

inline constexpr size_t kAdminMaxBodyBytes = 64 * 1024;
// The request line; each header line.
inline constexpr size_t kAdminMaxLineBytes = 8 * 1024;
// Request line and headers together.
inline constexpr size_t kAdminMaxHeadBytes = 64 * 1024;
// The defaults of AdminLimits.
inline constexpr int kAdminFirstByteTimeoutSeconds = 5;
inline constexpr int kAdminHeadTimeoutSeconds = 10;
inline constexpr int kAdminRequestDeadlineSeconds = 30;
inline constexpr int kAdminKeepAliveIdleSeconds = 2;
inline constexpr int kAdminWorkers = 4;
inline constexpr int kAdminMaxConnections = 512;
inline constexpr int kAdminMaxPendingRequests = 64;
inline constexpr int kAdminKeepAliveMaxRequests = 20;
// Paging of /api/runs and /api/deadletters (and the CLI).
inline constexpr int kAdminDefaultPageSize = 50;
inline constexpr int kAdminMaxPageSize = 500;
// /api/runs?input=: the longest substring accepted.
inline constexpr size_t kAdminMaxInputFilterBytes = 200;
// /api/runs/{id}/rejects: larger reports are refused (413).
inline constexpr size_t kAdminMaxRejectsBytes = 64 * 1024 * 1024;
// /api/overview reads the runs created within this window (at most
// kAdminOverviewMaxRuns of them) for the per-destination figures.
inline constexpr int64_t kAdminOverviewWindowMs = 48 * 3600 * 1000;
inline constexpr int kAdminOverviewMaxRuns = 5000;
// /api/charts reads at most this many runs of its range (newest first).
inline constexpr int kAdminChartsMaxRuns = 20000;

// Timeouts and sizes of the server; the defaults are the documented ones
// (tests shorten the timeouts).
struct AdminLimits {
  // From a connection's start (or the end of the previous response) to the
  // first byte of its next request.
  std::chrono::milliseconds first_byte{kAdminFirstByteTimeoutSeconds * 1000};
  // From the same start to the end of the request's headers.
  std::chrono::milliseconds head{kAdminHeadTimeoutSeconds * 1000};
  // From the end of the headers to the end of the response.
  std::chrono::milliseconds request{kAdminRequestDeadlineSeconds * 1000};
  // Between requests on a kept-alive connection (instead of first_byte).
  std::chrono::milliseconds keep_alive_idle{kAdminKeepAliveIdleSeconds * 1000};
  int workers = kAdminWorkers;
  int max_connections = kAdminMaxConnections;
  int max_pending = kAdminMaxPendingRequests;
};

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

    // For the console (app/console_api.h).
    std::vector<ConsoleDestination> destinations;
    // The work store's object `key` (a run's rejects report); over
    // kAdminMaxRejectsBytes it may answer kResourceExhausted instead of
    // reading it all. Empty: rejects are not summarised and not
    // downloadable (503).
    std::function<StatusOr<std::string>(const std::string& key)> read_work;
    // The prober's latest results by destination. Empty: reachable null.
    std::function<std::map<std::string, Reachability>()> reachability;
    std::string version;     // "0.1.0"
    int64_t started_ms = 0;  // when serve started
    int workers = 0;         // [service] workers
    // The wall clock in epoch ms. Empty: the system clock.
    std::function<int64_t()> now_ms;
  };

  // Listens on `listen` ("host:port"; "[::1]:port" for IPv6; port 0 picks a
  // free port, see port()) and serves on its own threads until Stop().
  // kInvalidArgument for a malformed `listen`; kFailedPrecondition for a
  // non-loopback host without allow_non_loopback; kUnavailable when the
  // address cannot be bound (in use, not local).
  static StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& listen,
                                                      Hooks hooks,
                                                      AdminLimits limits = {});

  ~AdminServer();  // Stop()s
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // Stops accepting, lets the handlers already running finish, closes
  // every connection and joins the threads. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// For `cbpipe serve`: starts the API from config.service (admin_listen,
// admin_token resolved from `secrets`, null: the env:/file: store).
// Returns null when admin_listen
// is "" (the API is disabled). An admin_token that cannot be resolved is an
// error (kNotFound, kPermissionDenied, ...) naming the reference.
StatusOr<std::unique_ptr<AdminServer>> StartAdminServer(
    const Config& config, RunStore* runs, Queue* queue,
    std::function<std::string()> render_metrics, std::function<bool()> ready,
    SecretStore* secrets = nullptr);

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
// from the scan step), "deliveries" (from the batches step: per batch,
// per file), "rejects_file" (from the scan step, or null) and "errors"
// (each step's and the run's).
nlohmann::json RunDetailJson(const RunRecord& run);
nlohmann::json DeadLetterJson(const DeadLetter& dead_letter);
// {"error": {"code": <code>, "message": <message>}}.
nlohmann::json ErrorJson(std::string_view code, std::string_view message);
// Serialises `j`; bytes that are not UTF-8 (a message body may hold any)
// become U+FFFD instead of throwing.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace cbpipe
