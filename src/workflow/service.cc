#include "workflow/service.h"

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "deliver/local_transport.h"
#include "domain/pan.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/trace.h"

namespace cbpipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool IgnoredInboxName(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* suffix : {".part", ".tmp", ".partial", ".crdownload"}) {
    const std::string s(suffix);
    if (name.size() >= s.size() &&
        name.compare(name.size() - s.size(), s.size(), s) == 0)
      return true;
  }
  return false;
}

void SleepUnlessStopped(const std::atomic<bool>& stop, int64_t ms) {
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!stop.load() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::min<int64_t>(50, std::max<int64_t>(1, ms))));
  }
}

}  // namespace

ServicePaths ResolveServicePaths(const Config& config) {
  const ServiceConfig& s = config.service;
  const std::string& w = config.work_dir;
  ServicePaths p;
  p.inbox = s.inbox_dir.empty() ? w + "/inbox" : s.inbox_dir;
  p.archive = w + "/archive";
  p.objects = s.object_dir.empty() ? w + "/objects" : s.object_dir;
  p.state_db = s.state_db.empty() ? w + "/state.db" : s.state_db;
  p.ledger_db = w + "/ledger.db";
  return p;
}

Service::Service(const Config& config, std::unique_ptr<Notifier> notifier)
    : config_(config),
      paths_(ResolveServicePaths(config_)),
      notifier_(std::move(notifier)) {}

Service::~Service() {
  RequestStop();
  Join(static_cast<int64_t>(config_.service.shutdown_timeout_seconds) *
       1000);
}

StatusOr<std::unique_ptr<Service>> Service::Create(
    const Config& config, std::unique_ptr<Notifier> notifier) {
  std::unique_ptr<Service> s(new Service(config, std::move(notifier)));
  for (const std::string& dir :
       {s->config_.work_dir, s->paths_.inbox, s->paths_.archive,
        s->paths_.objects}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return InvalidArgumentError("cannot create " + dir + ": " +
                                        ec.message());
  }
  CBPIPE_ASSIGN_OR_RETURN(s->runs_, RunStore::Open(s->paths_.state_db));
  QueueOptions qo;
  qo.max_receive_count = s->config_.service.max_receive_count;
  CBPIPE_ASSIGN_OR_RETURN(
      s->queue_, SqliteQueue::Open(s->paths_.state_db, kInputsQueueName, qo));
  CBPIPE_ASSIGN_OR_RETURN(s->ledger_,
                          DeliveryLedger::Open(s->paths_.ledger_db));
  s->store_ = std::make_unique<LocalFolderStore>(s->paths_.objects);

  StepServices& sv = s->services_;
  sv.config = &s->config_;
  sv.store = s->store_.get();
  sv.ledger = s->ledger_.get();
  sv.notifier = s->notifier_.get();
  sv.transports = &s->transports_;
  sv.env = RetryEnv::Real();
  sv.now_ms = NowMs;
  sv.on_scanned = [](const RunRecord& run, const InputScan& scan) {
    PipelineMetrics& m = Metrics();
    for (Network n : kAllNetworks) {
      const uint64_t accepted = scan.by_network[static_cast<int>(n)];
      if (accepted)
        m.records_accepted_total.WithLabels({NetworkName(n)}).Increment(
            accepted);
    }
    // A rejected record's network may be what was wrong with it: counted
    // under "unknown".
    for (Network n : kAllNetworks) {
      const uint64_t accepted = scan.by_network[static_cast<int>(n)];
      if (accepted)
        m.records_read_total.WithLabels({NetworkName(n)}).Increment(accepted);
    }
    if (scan.rejected)
      m.records_read_total.WithLabels({"unknown"}).Increment(scan.rejected);
    for (const RecordError& e : scan.errors)
      m.records_rejected_total.WithLabels({ErrorCodeName(e.code)})
          .Increment();
    Log().Info({.run_id = run.run_id, .trace_id = run.trace_id},
               "input.validated", "input read and validated",
               {{"records", scan.records},
                {"accepted", scan.accepted},
                {"rejected", scan.rejected}});
  };
  sv.on_delivery = [](const RunRecord& run, const std::string& destination,
                      const DeliveryResult& r, uint64_t bytes,
                      double seconds) {
    PipelineMetrics& m = Metrics();
    const std::string_view status = DeliveryOutcomeName(r.outcome);
    m.files_delivered_total.WithLabels({destination, status}).Increment();
    if (r.outcome == DeliveryOutcome::kDelivered) {
      m.bytes_delivered_total.WithLabels({destination}).Increment(bytes);
      m.delivery_latency_seconds.WithLabels({destination}).Observe(seconds);
    }
    if (!r.attempts.empty() && r.outcome != DeliveryOutcome::kFailed)
      m.delivery_retries_total.WithLabels({destination})
          .Increment(r.attempts.size());
    LogContext ctx{.run_id = run.run_id,
                   .trace_id = run.trace_id,
                   .destination = destination};
    if (r.outcome == DeliveryOutcome::kFailed) {
      // The remote name is the program's own (template, ids): never masked.
      Log().Warn(ctx, "delivery.failed", r.error.ToString(),
                 {LogField::Id("file", r.remote_name),
                  {"attempts", static_cast<int64_t>(r.attempts.size())}});
    } else {
      Log().Info(ctx, "delivery.done", std::string(status),
                 {LogField::Id("file", r.remote_name), {"bytes", bytes}});
    }
  };
  s->workflow_ = CbpipeWorkflow(&s->services_);
  s->engine_ = std::make_unique<WorkflowEngine>(s->workflow_, s->runs_.get(),
                                                RetryEnv::Real());
  Queue* q = s->queue_.get();
  Metrics().queue_depth.Set([q] {
    StatusOr<QueueStats> st = q->Stats();
    return st.ok() ? static_cast<double>(st->visible + st->in_flight +
                                         st->delayed)
                   : 0.0;
  });
  Metrics().queue_oldest_message_age_seconds.Set([q] {
    StatusOr<QueueStats> st = q->Stats();
    return st.ok() ? static_cast<double>(st->oldest_age_ms) / 1000.0 : 0.0;
  });
  return s;
}

Status Service::Start() {
  if (started_) return FailedPreconditionError("service already started");
  started_ = true;
  live_threads_ = 1 + config_.service.workers;
  threads_.emplace_back([this] {
    WatchLoop();
    --live_threads_;
  });
  for (int i = 0; i < config_.service.workers; ++i) {
    threads_.emplace_back([this, i] {
      WorkLoop(i);
      --live_threads_;
    });
  }
  Log().Info({}, "service.started", "cbpipe serve started",
             {{"inbox", paths_.inbox},
              {"workers", static_cast<int64_t>(config_.service.workers)}});
  return OkStatus();
}

void Service::RequestStop() { stop_ = true; }

bool Service::Join(int64_t timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (live_threads_.load() > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool done = live_threads_.load() == 0;
  for (std::thread& t : threads_) {
    if (done) {
      t.join();
    } else {
      t.detach();  // past the deadline: the process exits anyway
    }
  }
  threads_.clear();
  return done;
}

Status Service::Ingest(const std::string& path, const std::string& file_name) {
  // A file name is input too: one named after a card number is known by
  // its masked name from here on (state, API, archive, logs, events).
  const std::string name = MaskCardNumbers(file_name);
  CBPIPE_ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
  const std::string key = "inputs/" + sha;
  const std::string run_id = sha.substr(0, 16);
  CBPIPE_ASSIGN_OR_RETURN(bool stored, store_->Exists(key));
  if (!stored) CBPIPE_RETURN_IF_ERROR(store_->PutFile(key, path));
  StatusOr<RunRecord> existing = runs_->Get(run_id);
  if (existing.ok()) {
    Log().Info({.run_id = run_id, .trace_id = existing->trace_id},
               "input.duplicate",
               "same content as an earlier input; not processed again",
               {{"file", name}});
    Metrics().inputs_total.WithLabels({"duplicate"}).Increment();
  } else {
    const TraceContext trace = NewTraceContext();
    json body = {{"run_id", run_id},
                 {"input_key", key},
                 {"input_name", name},
                 {"trace_id", trace.trace_id.ToHex()}};
    // The message first: a worker creates the run from it if the process
    // dies before the run record is written.
    CBPIPE_RETURN_IF_ERROR(
        queue_->Send(body.dump(), {{"traceparent", trace.ToTraceparent()}})
            .status());
    RunRecord run;
    run.run_id = run_id;
    run.input_key = key;
    run.input_name = name;
    run.trace_id = trace.trace_id.ToHex();
    CBPIPE_RETURN_IF_ERROR(runs_->CreateIfAbsent(run).status());
    Log().Info({.run_id = run_id, .trace_id = run.trace_id}, "input.queued",
               "input picked up from the inbox", {{"file", name}});
  }
  // Keep the original: archived, never deleted.
  const std::string archived = paths_.archive + "/" + run_id + "-" + name;
  std::error_code ec;
  fs::rename(path, archived, ec);
  if (ec) {
    return InternalError("cannot archive " + path + ": " + ec.message());
  }
  return OkStatus();
}

Status Service::ScanInboxOnce() {
  const int64_t now = NowMs();
  std::error_code ec;
  std::map<std::string, Seen> still_there;
  for (auto it = fs::directory_iterator(paths_.inbox, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (IgnoredInboxName(name)) continue;
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    Seen seen{static_cast<uint64_t>(st.st_size),
              static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                  st.st_mtim.tv_nsec,
              now};
    auto prev = seen_.find(name);
    if (prev != seen_.end() && prev->second.size == seen.size &&
        prev->second.mtime_ns == seen.mtime_ns) {
      seen.stable_since_ms = prev->second.stable_since_ms;
    } else if (prev == seen_.end()) {
      // A file renamed in keeps the time it was last written: when that is
      // already settle_ms ago, it is complete now (no wait for a 2nd scan).
      seen.stable_since_ms = std::min<int64_t>(now, seen.mtime_ns / 1000000);
    }
    if (now - seen.stable_since_ms >= config_.service.settle_ms) {
      Status ingested = Ingest(it->path().string(), name);
      if (!ingested.ok()) {
        Log().Error({}, "inbox.error", ingested.ToString(), {{"file", name}});
        still_there[name] = seen;  // try again on a later pass
      }
      continue;
    }
    still_there[name] = seen;
  }
  seen_.swap(still_there);
  if (ec) return InternalError("cannot list " + paths_.inbox);
  return OkStatus();
}

void Service::WatchLoop() {
  while (!stop_.load()) {
    Status st = ScanInboxOnce();
    if (!st.ok()) Log().Error({}, "inbox.error", st.ToString());
    SleepUnlessStopped(stop_, config_.service.poll_interval_ms);
  }
}

// A card-company server should not see a login held open for long with
// nothing to send.
constexpr int kIdleConnectionSeconds = 10;

void Service::WorkLoop(int) {
  const int64_t visibility_ms =
      static_cast<int64_t>(config_.service.visibility_seconds) * 1000;
  while (!stop_.load()) {
    StatusOr<std::vector<Message>> got = queue_->Receive(1, visibility_ms,
                                                         /*wait_ms=*/500);
    if (!got.ok()) {
      Log().Error({}, "queue.error", got.status().ToString());
      SleepUnlessStopped(stop_, 500);
      continue;
    }
    for (const Message& m : *got) Handle(m);
    // Connections stay open across a burst of inputs, not for long after.
    if (got->empty()) {
      transports_.CloseIdle(std::chrono::seconds(kIdleConnectionSeconds));
    }
  }
}

void Service::Handle(const Message& message) {
  json body = json::parse(message.body, nullptr, false);
  if (body.is_discarded() || !body.contains("run_id") ||
      !body.contains("input_key")) {
    queue_->MoveToDeadLetter(message.receipt, "malformed message body")
        .IgnoreError();
    return;
  }
  RunRecord run;
  run.run_id = body.value("run_id", "");
  run.input_key = body.value("input_key", "");
  run.input_name = body.value("input_name", "");
  run.trace_id = body.value("trace_id", "");
  StatusOr<bool> created = runs_->CreateIfAbsent(run);
  if (!created.ok()) {
    Log().Error({.run_id = run.run_id}, "run.error",
                created.status().ToString());
    return;  // the lease runs out; another attempt later
  }
  const LogContext ctx{.run_id = run.run_id, .trace_id = run.trace_id};

  // Renew the lease while the run is in progress.
  const int64_t visibility_ms =
      static_cast<int64_t>(config_.service.visibility_seconds) * 1000;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(visibility_ms / 3),
                        [&] { return done; })) {
      queue_->ChangeVisibility(message.receipt, visibility_ms).IgnoreError();
    }
  });
  const auto start = std::chrono::steady_clock::now();
  RunOutcome outcome = engine_->Resume(
      run.run_id, InitialInput(run.input_key, run.input_name), &stop_);
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  heartbeat.join();
  const int64_t elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start)
          .count();

  if (outcome.state == "succeeded" || outcome.state == "rejected") {
    queue_->Delete(message.receipt).IgnoreError();
    Metrics()
        .inputs_total
        .WithLabels({outcome.state == "succeeded" ? "accepted" : "quarantined"})
        .Increment();
    Log().Info(ctx, "run.finished", outcome.state,
               {{"elapsed_ms", elapsed_ms}});
  } else if (outcome.state == "failed") {
    queue_->MoveToDeadLetter(message.receipt, outcome.error).IgnoreError();
    Metrics().dead_letters_total.Increment();
    Metrics().inputs_total.WithLabels({"failed"}).Increment();
    Log().Error(ctx, "deadletter.added", outcome.error,
                {{"elapsed_ms", elapsed_ms}});
  } else {
    // Interrupted (shutdown or a store error): visible again at once, so
    // the next start (or another worker) resumes from the checkpoint.
    queue_->ChangeVisibility(message.receipt, stop_.load() ? 0 : 5000)
        .IgnoreError();
    Log().Warn(ctx, "run.interrupted",
               outcome.error.empty() ? "shutting down" : outcome.error);
  }
}

}  // namespace cbpipe
