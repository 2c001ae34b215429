#include "workflow/service.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sys/syscall.h>

#include "common/crash_point.h"
#include "common/sha256.h"
#include "common/url.h"
#include "deliver/local_transport.h"
#include "domain/pan.h"
#include "ledger/sqlite_ledger.h"
#include "queue/sqlite_queue.h"
#include "runs/sqlite_run_store.h"
#include "store/s3_store.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/trace.h"
#include "workflow/registry.h"
#include "workflow/timed_steps.h"
#include "workflow/xray_steps.h"

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

int64_t Nanos(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// What an inbox entry is, for the quarantine log line.
std::string KindOf(const struct stat& st) {
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
  if (S_ISREG(st.st_mode) && st.st_nlink > 1)
    return "a hard link (" + std::to_string(st.st_nlink) +
           " names for one file)";
  return "not a regular file";
}

bool Takeable(const struct stat& st) {
  return S_ISREG(st.st_mode) && st.st_nlink == 1;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || ::fsync(fd.get()) != 0)
    return UnavailableError("fsync " + dir + ": " + std::strerror(errno));
  return OkStatus();
}

// Whether some process holds the file open for writing: the kernel then
// refuses a read lease (fcntl F_SETLEASE). The lease is released at once.
// kUnknown where leases are not allowed (the file belongs to another user
// and the process lacks CAP_LEASE, or the file system has none).
enum class Writers { kNone, kBusy, kUnknown };
Writers WritersOf(int fd) {
  // A lease break is signalled, by default with SIGIO, which would end the
  // process; SIGURG is ignored unless handled.
  if (::fcntl(fd, F_SETSIG, SIGURG) != 0) return Writers::kUnknown;
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
    return errno == EAGAIN ? Writers::kBusy : Writers::kUnknown;
  ::fcntl(fd, F_SETLEASE, F_UNLCK);
  return Writers::kNone;
}

// How long a worker's claim of a run (and of each of its deliveries) lasts:
// a little less than the message stays hidden, so the worker that receives
// it after a crash finds the claims free.
std::string RandomHex16() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

ServicePaths ResolveServicePaths(const Config& config) {
  const ServiceConfig& s = config.service;
  const std::string& w = config.work_dir;
  ServicePaths p;
  p.inbox = s.inbox_dir.empty() ? w + "/inbox" : s.inbox_dir;
  p.pickup = w + "/pickup";
  p.archive = w + "/archive";
  p.quarantine = w + "/quarantine";
  p.objects = s.object_dir.empty() ? w + "/objects" : s.object_dir;
  p.state_db = s.state_db.empty() ? w + "/state.db" : s.state_db;
  p.ledger_db = w + "/ledger.db";
  return p;
}

std::function<void(const TaskRetry&)> CountDeliveryRetries(Metrics* metrics) {
  return [metrics](const TaskRetry& retry) {
    if (retry.state != "deliver" || !retry.input.is_object()) return;
    auto it = retry.input.find("destination");
    if (it == retry.input.end() || !it->is_string()) return;
    metrics->Increment(kDeliveryRetriesTotal, {it->get<std::string>()});
  };
}

Service::Service(const Config& config, std::unique_ptr<Notifier> notifier)
    : config_(config),
      paths_(ResolveServicePaths(config_)),
      notifier_(std::move(notifier)) {}

Service::~Service() {
  RequestStop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Nothing reads the queue through the metrics any more.
  queue_depth_gauge_.Reset();
  queue_age_gauge_.Reset();
  queue_dead_letters_gauge_.Reset();
  up_gauge_.Reset();
}

int64_t Service::visibility_ms() const {
  return static_cast<int64_t>(config_.service.visibility_seconds) * 1000;
}

// The claim ends a little before the message is visible again, so the
// worker that receives it after a crash finds the claim free.
int64_t Service::claim_ms() const { return visibility_ms() - 250; }

StatusOr<std::unique_ptr<Service>> Service::Create(
    const Config& config, std::unique_ptr<Notifier> notifier,
    Metrics* metrics, SecretStore* secrets) {
  if (metrics == nullptr)
    return InvalidArgumentError("the service needs a Metrics adapter");
  std::unique_ptr<Service> s(new Service(config, std::move(notifier)));
  s->metrics_ = metrics;
  for (const std::string& dir :
       {s->config_.work_dir, s->paths_.inbox, s->paths_.pickup,
        s->paths_.archive, s->paths_.objects}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return InvalidArgumentError("cannot create " + dir + ": " +
                                        ec.message());
  }
  const ServiceConfig& sc = s->config_.service;
  const AwsOptions aws = s->config_.aws.value_or(AwsOptions{});
  // Each port from its URL, or the local default; an error names the key.
  auto keyed = [](std::string_view key, const Status& st) {
    return Status(st.code(), "service." + std::string(key) + ": " +
                                 std::string(st.message()));
  };
  StatusOr<std::unique_ptr<RunStore>> runs =
      sc.run_store.empty() ? SqliteRunStore::Open(s->paths_.state_db, s->env_)
                           : OpenRunStore(sc.run_store, s->env_, aws);
  if (!runs.ok()) return keyed("run_store", runs.status());
  s->runs_ = std::move(*runs);
  QueueOptions qo;
  qo.max_receive_count = sc.max_receive_count;
  qo.env = s->env_;
  StatusOr<std::unique_ptr<Queue>> queue =
      [&]() -> StatusOr<std::unique_ptr<Queue>> {
    if (!sc.queue.empty()) return OpenQueue(sc.queue, qo, aws);
    CBPIPE_ASSIGN_OR_RETURN(
        std::unique_ptr<SqliteQueue> local,
        SqliteQueue::Open(s->paths_.state_db, kInputsQueueName, qo));
    return std::unique_ptr<Queue>(std::move(local));
  }();
  if (!queue.ok()) return keyed("queue", queue.status());
  s->queue_ = std::move(*queue);
  StatusOr<std::unique_ptr<DeliveryLedger>> ledger =
      sc.ledger.empty()
          ? SqliteDeliveryLedger::Open(s->paths_.ledger_db, s->env_)
          : OpenDeliveryLedger(sc.ledger, s->env_, aws);
  if (!ledger.ok()) return keyed("ledger", ledger.status());
  s->ledger_ = std::move(*ledger);
  if (!sc.object_store.empty()) {
    StatusOr<std::unique_ptr<ObjectStore>> store =
        OpenObjectStore(sc.object_store, aws);
    if (!store.ok()) return keyed("object_store", store.status());
    s->store_ = std::move(*store);
  } else {
    std::error_code ec;
    const fs::path objects = fs::absolute(s->paths_.objects, ec);
    if (ec) return InvalidArgumentError("cannot resolve " + s->paths_.objects);
    CBPIPE_ASSIGN_OR_RETURN(std::string url, FileUrl(objects.string()));
    CBPIPE_ASSIGN_OR_RETURN(s->store_, OpenObjectStore(url));
  }
  // Copies into the store that a killed process left half-way.
  StatusOr<int> stale = s->store_->RemoveStaleTemporaries();
  if (!stale.ok()) {
    Log().Warn({}, "store.error", stale.status().ToString());
  } else if (*stale > 0) {
    Log().Info({}, "store.cleaned", "removed unfinished copies",
               {{"files", static_cast<int64_t>(*stale)}});
  }

  if (sc.work_store.empty()) {
    s->work_store_ = std::make_unique<LocalFolderStore>(s->config_.work_dir);
  } else {
    StatusOr<std::unique_ptr<ObjectStore>> work =
        OpenObjectStore(sc.work_store, aws);
    if (!work.ok()) return keyed("work_store", work.status());
    s->work_store_ = std::move(*work);
  }
  if (!sc.events_queue.empty()) {
    // Events name a bucket and a key: only an S3 object store can read
    // what they report.
    const std::string store_url = sc.object_store.substr(
        0, std::min(sc.object_store.find('?'), sc.object_store.size()));
    if (store_url.rfind("s3://", 0) != 0 ||
        !ParseS3Url(store_url, &s->events_bucket_, &s->events_prefix_).ok()) {
      return InvalidArgumentError(
          "service.events_queue: S3 events name objects in a bucket; "
          "service.object_store must be the s3://bucket/prefix they are "
          "created in");
    }
    // The events queue's own dead letters hold what cannot be read.
    StatusOr<std::unique_ptr<Queue>> events =
        OpenQueue(sc.events_queue, qo, aws);
    if (!events.ok()) return keyed("events_queue", events.status());
    s->events_ = std::move(*events);
  }
  Ports& sv = s->ports_;
  sv.config = &s->config_;
  sv.work = s->work_store_.get();
  sv.inputs = s->store_.get();
  sv.ledger = s->ledger_.get();
  sv.notifier = s->notifier_.get();
  sv.transports = &s->transports_;
  sv.secrets = secrets;
  sv.metrics = metrics;
  sv.env = s->env_;
  sv.delivery_claim_ms = s->claim_ms();
  sv.on_scanned = [metrics](const StepContext& run, const InputScan& scan) {
    Metrics& m = *metrics;
    for (Network n : kAllNetworks) {
      const uint64_t accepted = scan.by_network[static_cast<int>(n)];
      if (accepted)
        m.Increment(kRecordsAcceptedTotal, {NetworkName(n)}, accepted);
    }
    // A rejected record's network may be what was wrong with it: counted
    // under "unknown".
    for (Network n : kAllNetworks) {
      const uint64_t accepted = scan.by_network[static_cast<int>(n)];
      if (accepted) m.Increment(kRecordsReadTotal, {NetworkName(n)}, accepted);
    }
    if (scan.rejected)
      m.Increment(kRecordsReadTotal, {"unknown"}, scan.rejected);
    for (const RecordError& e : scan.errors)
      m.Increment(kRecordsRejectedTotal, {ErrorCodeName(e.code)});
    Log().Info({.run_id = run.run_id, .trace_id = run.trace_id},
               "input.validated", "input read and validated",
               {{"records", scan.records},
                {"accepted", scan.accepted},
                {"rejected", scan.rejected}});
  };
  sv.on_delivery = [metrics](const StepContext& run,
                             const std::string& destination,
                             const DeliveryResult& r, uint64_t bytes,
                             double seconds) {
    // Delivered by an earlier try of this run: counted and logged then.
    if (r.earlier_try) return;
    Metrics& m = *metrics;
    const std::string_view status = DeliveryOutcomeName(r.outcome);
    m.Increment(kFilesDeliveredTotal, {destination, status});
    if (r.outcome == DeliveryOutcome::kDelivered) {
      m.Increment(kBytesDeliveredTotal, {destination}, bytes);
      m.Observe(kDeliveryLatencySeconds, {destination}, seconds);
    }
    // Retries are the engine's (CountDeliveryRetries): the step makes one
    // attempt.
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
  CBPIPE_ASSIGN_OR_RETURN(s->workflow_, CbpipeWorkflowDefinition());
  StepRunner steps = StepsOver(s->ports_);
  if (TestTraceEnabled()) steps = TracedSteps(std::move(steps));
  CBPIPE_ASSIGN_OR_RETURN(
      s->xray_, XRayTracer::Create(
                    ResolveXRayOptions(config.telemetry.xray, std::getenv)));
  steps = XRayTracedSteps(std::move(steps), s->xray_.get());
  steps = TimedSteps(std::move(steps), metrics);
  // The engine's waits between retries end when the run's stop flag is set
  // (Env::SleepFor), which the claim keeper sets on shutdown.
  EngineOptions engine_options;
  engine_options.on_retry = CountDeliveryRetries(metrics);
  engine_options.checkpoint_retry_waits = true;  // the console shows them
  s->engine_ = std::make_unique<WorkflowEngine>(&s->workflow_, s->runs_.get(),
                                                s->env_, std::move(steps),
                                                std::move(engine_options));
  Queue* q = s->queue_.get();
  s->queue_depth_gauge_ = metrics->WatchGauge(kQueueDepth, [q] {
    StatusOr<QueueStats> st = q->Stats();
    return st.ok() ? static_cast<double>(st->visible + st->in_flight +
                                         st->delayed)
                   : 0.0;
  });
  s->queue_age_gauge_ =
      metrics->WatchGauge(kQueueOldestMessageAgeSeconds, [q] {
        StatusOr<QueueStats> st = q->Stats();
        return st.ok() ? static_cast<double>(st->oldest_age_ms) / 1000.0
                       : 0.0;
      });
  s->queue_dead_letters_gauge_ =
      metrics->WatchGauge(kQueueDeadLetters, [q] {
        StatusOr<QueueStats> st = q->Stats();
        return st.ok() ? static_cast<double>(st->dead_letters) : 0.0;
      });
  Service* self = s.get();
  s->up_gauge_ = metrics->WatchGauge(
      kUp, [self] { return self->running() ? 1.0 : 0.0; });
  RecordBuildInfo(*metrics);
  return s;
}

Status Service::Start() {
  if (started_) return FailedPreconditionError("service already started");
  started_ = true;
  {
    std::lock_guard<std::mutex> lock(live_mu_);
    live_threads_ = 2 + config_.service.workers;
    live_workers_ = config_.service.workers;
  }
  auto ended = [this](bool worker) {
    std::lock_guard<std::mutex> lock(live_mu_);
    --live_threads_;
    // Workers end only once stop_ is set: after the last one no claim is
    // left to renew.
    if (worker && --live_workers_ == 0) keeper_stop_ = true;
    live_cv_.notify_all();
  };
  threads_.emplace_back([this, ended] {
    if (events_) {
      EventsLoop();
    } else {
      WatchLoop();
    }
    ended(false);
  });
  for (int i = 0; i < config_.service.workers; ++i) {
    threads_.emplace_back([this, i, ended] {
      WorkLoop(i);
      ended(true);
    });
  }
  if (config_.service.workers <= 0) keeper_stop_ = true;
  threads_.emplace_back([this, ended] {
    KeepClaims();
    ended(false);
  });
  Log().Info({}, "service.started", "cbpipe serve started",
             {events_ ? LogField("events_queue",
                                 RedactUrl(config_.service.events_queue))
                      : LogField("inbox", paths_.inbox),
              {"workers", static_cast<int64_t>(config_.service.workers)}});
  return OkStatus();
}

void Service::RequestStop() { stop_ = true; }

bool Service::Join(int64_t timeout_ms) {
  {
    std::unique_lock<std::mutex> lock(live_mu_);
    if (!live_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [this] { return live_threads_ == 0; })) {
      return false;  // still running; joined later (see the header)
    }
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  return true;
}

void Service::QuarantineEntry(const std::string& path, const std::string& name,
                              const std::string& why) {
  const std::string dir = paths_.quarantine + "/inbox";
  const std::string target =
      dir + "/" + std::to_string(env_->NowMs()) + "-" + MaskCardNumbers(name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  // rename moves the entry itself: a link is not followed, a FIFO not
  // opened, a directory not read.
  if (ec || ::rename(path.c_str(), target.c_str()) != 0) {
    const std::string error = ec ? ec.message() : std::strerror(errno);
    if (busy_logged_.emplace("quarantine:" + name, 0).second) {
      Log().Error(
          {}, "inbox.error",
          "cannot move an entry that is " + why + " to quarantine: " + error,
          {{"file", name}});
    }
    return;
  }
  busy_logged_.erase("quarantine:" + name);
  Log().Warn({}, "inbox.quarantined",
             "inbox entry is " + why + ": not read, moved to quarantine",
             {{"file", name}, {"moved_to", target}});
  metrics_->Increment(kInputsTotal, {"quarantined"});
}

Status Service::TakeFromPickup(const std::string& name, int64_t now_ms) {
  const std::string path = paths_.pickup + "/" + name;
  // O_NOFOLLOW: a symlink is not followed; O_NONBLOCK: a FIFO swapped in
  // does not block the watcher.
  Fd fd(::open(path.c_str(),
               O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    struct stat st;
    if (err == ENOENT) return OkStatus();
    if (::lstat(path.c_str(), &st) == 0 && !Takeable(st)) {
      QuarantineEntry(path, name, KindOf(st));
      return OkStatus();
    }
    return UnavailableError("open " + path + ": " + std::strerror(err));
  }
  struct stat before;
  if (::fstat(fd.get(), &before) != 0)
    return UnavailableError("stat " + path + ": " + std::strerror(errno));
  if (!Takeable(before)) {
    QuarantineEntry(path, name, KindOf(before));
    return OkStatus();
  }
  switch (WritersOf(fd.get())) {
    case Writers::kBusy: {
      // Still open for writing: it is taken once the writer closes it.
      auto [it, fresh] = busy_logged_.emplace(name, before.st_size);
      if (fresh) {
        Log().Info({}, "inbox.busy",
                   "file still open for writing; taken when complete",
                   {{"file", name}});
      }
      pickup_seen_.erase(name);
      return OkStatus();
    }
    case Writers::kUnknown: {
      // No lease to tell: the file must also stay unchanged for settle_ms
      // here, where no new writer can open it by name.
      const Seen now{static_cast<uint64_t>(before.st_size),
                     Nanos(before.st_mtim), now_ms};
      auto it = pickup_seen_.find(name);
      if (it == pickup_seen_.end() || it->second.size != now.size ||
          it->second.mtime_ns != now.mtime_ns) {
        pickup_seen_[name] = now;
        return OkStatus();
      }
      if (now_ms - it->second.stable_since_ms < config_.service.settle_ms)
        return OkStatus();
      break;
    }
    case Writers::kNone: break;
  }
  // One pass reads, hashes and stores the bytes: the key names exactly
  // what the run will process.
  CBPIPE_ASSIGN_OR_RETURN(StoredObject object,
                          store_->PutContentAddressed("inputs/", fd.get()));
  struct stat after, named;
  const bool unchanged =
      ::fstat(fd.get(), &after) == 0 && ::lstat(path.c_str(), &named) == 0 &&
      named.st_dev == before.st_dev && named.st_ino == before.st_ino &&
      after.st_size == before.st_size &&
      object.size == static_cast<uint64_t>(before.st_size) &&
      Nanos(after.st_mtim) == Nanos(before.st_mtim) &&
      Nanos(after.st_ctim) == Nanos(before.st_ctim);
  pickup_seen_.erase(name);
  if (!unchanged) {
    // Written to while it was copied: the copy may be a mix. The next scan
    // takes it again (the stray object is content-addressed and unused).
    Log().Warn({}, "inbox.changed",
               "file changed while it was taken; left for the next scan",
               {{"file", name}});
    return OkStatus();
  }
  busy_logged_.erase(name);

  const std::string& key = object.key;
  const std::string run_id = object.sha256.substr(0, 16);
  StatusOr<RunRecord> existing = runs_->Get(run_id);
  if (existing.ok()) {
    if (existing->input_name != name) {
      Log().Info({.run_id = run_id, .trace_id = existing->trace_id},
                 "input.duplicate",
                 "same content as an earlier input; not processed again",
                 {{"file", name}});
      metrics_->Increment(kInputsTotal, {"duplicate"});
    }  // else: this pickup, finished after a restart
  } else {
    CBPIPE_ASSIGN_OR_RETURN(std::string trace_id, QueueRun(run_id, key, name));
    Log().Info({.run_id = run_id, .trace_id = trace_id}, "input.queued",
               "input picked up from the inbox", {{"file", name}});
  }
  // Keep the original: archived, never deleted. The bytes archived are the
  // bytes stored: nobody had the file open for writing, and it is the same
  // unchanged inode.
  const std::string archived = paths_.archive + "/" + run_id + "-" + name;
  if (::rename(path.c_str(), archived.c_str()) != 0) {
    // Gone: another serve sharing the work folder finished this pickup.
    if (errno == ENOENT) return OkStatus();
    return InternalError("cannot archive " + path + ": " +
                         std::strerror(errno));
  }
  CBPIPE_RETURN_IF_ERROR(FsyncDir(paths_.archive));
  CBPIPE_RETURN_IF_ERROR(FsyncDir(paths_.pickup));
  DurablePoint("inbox.archive");
  return OkStatus();
}

StatusOr<std::string> Service::QueueRun(const std::string& run_id,
                                        const std::string& key,
                                        const std::string& name) {
  TraceContext trace = NewTraceContext();
  // X-Ray drops a trace whose first 8 hex are not a recent epoch time.
  if (xray_->enabled())
    trace.trace_id = NewXRayCompatibleTraceId(std::chrono::system_clock::now());
  json body = {{"run_id", run_id},
               {"input_key", key},
               {"input_name", name},
               {"trace_id", trace.trace_id.ToHex()}};
  // The message first: a worker creates the run from it if the process
  // dies before the run record is written. Idempotent per run id: a pickup
  // finished again after a crash does not queue the input twice.
  CBPIPE_RETURN_IF_ERROR(
      queue_->Send(body.dump(), {{"traceparent", trace.ToTraceparent()}}, 0,
                   run_id)
          .status());
  RunRecord run;
  run.run_id = run_id;
  run.input_key = key;
  run.input_name = name;
  run.trace_id = trace.trace_id.ToHex();
  CBPIPE_RETURN_IF_ERROR(runs_->CreateIfAbsent(run).status());
  return run.trace_id;
}

StatusOr<std::string> S3ObjectRunId(const S3ObjectRef& object) {
  // Fields joined with '\n', which no bucket name holds: no two objects
  // give one text.
  const std::string identity =
      "s3\n" + object.bucket + "\n" + object.key + "\n" +
      (object.etag.empty() ? "size " + std::to_string(object.size)
                           : "etag " + object.etag);
  Sha256 sha;
  sha.Update(identity.data(), identity.size());
  CBPIPE_ASSIGN_OR_RETURN(std::string hex, sha.FinishHex());
  return hex.substr(0, 16);
}

Status Service::TakeS3Object(const S3ObjectRef& object) {
  // Keys may name a card number: only the masked key is ever shown.
  const std::string shown = MaskCardNumbers(object.bucket + "/" + object.key);
  auto drop = [&](const std::string& why) {
    Log().Warn({}, "input.dropped", "S3 object not taken: " + why,
               {{"object", "s3://" + shown}});
    metrics_->Increment(kInputsTotal, {"dropped"});
    return OkStatus();
  };
  if (object.bucket != events_bucket_)
    return drop("the object store is in bucket " + events_bucket_);
  std::string key = object.key;
  if (!events_prefix_.empty()) {
    const std::string prefix = events_prefix_ + "/";
    if (key.rfind(prefix, 0) != 0)
      return drop("not under the object store's prefix " + prefix);
    key.erase(0, prefix.size());
  }
  if (MaskCardNumbers(key) != key)
    return drop("its key holds a card number, which cbpipe never stores");
  if (Status valid = ValidateObjectKey(key); !valid.ok())
    return drop("the object store cannot read its key (" +
                std::string(valid.message()) + ")");
  CBPIPE_ASSIGN_OR_RETURN(const std::string run_id, S3ObjectRunId(object));
  const std::string name = key.substr(key.rfind('/') + 1);
  StatusOr<RunRecord> existing = runs_->Get(run_id);
  if (existing.ok()) {
    Log().Info({.run_id = run_id, .trace_id = existing->trace_id},
               "input.duplicate",
               "S3 object reported again; not processed again",
               {{"object", "s3://" + shown}});
    metrics_->Increment(kInputsTotal, {"duplicate"});
    return OkStatus();
  }
  if (existing.status().code() != StatusCode::kNotFound)
    return existing.status();
  CBPIPE_ASSIGN_OR_RETURN(std::string trace_id, QueueRun(run_id, key, name));
  Log().Info({.run_id = run_id, .trace_id = trace_id}, "input.queued",
             "input reported by an S3 event",
             {{"object", "s3://" + shown}, {"size", object.size}});
  return OkStatus();
}

Status Service::TakeEventMessage(const Message& message) {
  StatusOr<S3EventBatch> batch = ParseS3Events(message.body);
  if (!batch.ok()) {
    // Not an S3 event: it would come back forever. Its body is not logged
    // (it may hold anything).
    const std::string why = "not an S3 event notification: " +
                            MaskCardNumbers(batch.status().message());
    Status moved = events_->MoveToDeadLetter(message.receipt, why);
    if (moved.code() == StatusCode::kFailedPrecondition) {
      Log().Error({}, "events.malformed",
                  why + "; the events queue has no dead-letter queue: "
                        "message deleted",
                  {LogField::Id("message_id", message.id)});
      return events_->Delete(message.receipt);
    }
    CBPIPE_RETURN_IF_ERROR(moved);
    Log().Error({}, "events.malformed",
                why + "; moved to the events queue's dead letters",
                {LogField::Id("message_id", message.id)});
    return OkStatus();
  }
  if (batch->test_event) {
    Log().Info({}, "events.test", "s3:TestEvent ignored");
  }
  for (const std::string& ignored : batch->ignored)
    Log().Info({}, "events.ignored", MaskCardNumbers(ignored));
  // Every object first: the message goes only once all are queued.
  Status all = OkStatus();
  for (const S3ObjectRef& object : batch->created) {
    Status taken = TakeS3Object(object);
    if (!taken.ok()) {
      Log().Error({}, "events.error", taken.ToString(),
                  {{"object", "s3://" + MaskCardNumbers(object.bucket + "/" +
                                                        object.key)}});
      all = taken;
    }
  }
  CBPIPE_RETURN_IF_ERROR(all);
  DurablePoint("events.queued");
  return events_->Delete(message.receipt);
}

Status Service::TakeEventsOnce(int64_t wait_ms) {
  if (!events_)
    return FailedPreconditionError("service.events_queue is not set");
  CBPIPE_ASSIGN_OR_RETURN(
      std::vector<Message> got,
      events_->Receive(kMaxReceiveMessages, visibility_ms(), wait_ms));
  for (const Message& m : got) {
    Status st = TakeEventMessage(m);
    // Left to its visibility timeout: received again, then (SQS's
    // RedrivePolicy) a dead letter if it never succeeds.
    if (!st.ok())
      Log().Error({}, "events.error", st.ToString(),
                  {LogField::Id("message_id", m.id)});
  }
  return OkStatus();
}

Status Service::ScanInboxOnce() {
  const int64_t now = env_->NowMs();
  std::error_code ec;
  // First what was taken already: still being written, or left by a
  // process that stopped half-way through a pickup.
  std::set<std::string> in_pickup;
  for (auto it = fs::directory_iterator(paths_.pickup, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    in_pickup.insert(it->path().filename().string());
  }
  for (const std::string& name : in_pickup) {
    Status taken = TakeFromPickup(name, now);
    if (!taken.ok())
      Log().Error({}, "inbox.error", taken.ToString(), {{"file", name}});
  }
  std::erase_if(pickup_seen_,
                [&](const auto& e) { return in_pickup.count(e.first) == 0; });
  ec.clear();

  std::map<std::string, Seen> still_there;
  next_settle_ms_ = 0;
  for (auto it = fs::directory_iterator(paths_.inbox, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (IgnoredInboxName(name)) continue;
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (!Takeable(st)) {
      QuarantineEntry(it->path().string(), name, KindOf(st));
      continue;
    }
    Seen seen{static_cast<uint64_t>(st.st_size), Nanos(st.st_mtim), now};
    auto prev = seen_.find(name);
    if (prev != seen_.end() && prev->second.size == seen.size &&
        prev->second.mtime_ns == seen.mtime_ns) {
      seen.stable_since_ms = prev->second.stable_since_ms;
    } else if (prev == seen_.end()) {
      // A file renamed in keeps the time it was last written: when that is
      // already settle_ms ago, it is complete now (no wait for a 2nd scan).
      seen.stable_since_ms = std::min<int64_t>(now, seen.mtime_ns / 1000000);
    }
    if (now - seen.stable_since_ms < config_.service.settle_ms) {
      const int64_t due = seen.stable_since_ms + config_.service.settle_ms;
      if (next_settle_ms_ == 0 || due < next_settle_ms_) next_settle_ms_ = due;
      still_there[name] = seen;
      continue;
    }
    // Into the private pickup folder: from here on no writer can open it
    // by its name. A file of that name still in pickup/ waits its turn.
    // A file name is input too: one named after a card number is known by
    // its masked name from here on (pickup, state, API, archive, logs).
    const std::string taken_name = MaskCardNumbers(name);
    const std::string picked = paths_.pickup + "/" + taken_name;
    if (::renameat2(AT_FDCWD, it->path().c_str(), AT_FDCWD, picked.c_str(),
                    RENAME_NOREPLACE) != 0) {
      if (errno != EEXIST)
        Log().Error(
            {}, "inbox.error",
            "cannot move to " + paths_.pickup + ": " + std::strerror(errno),
            {{"file", name}});
      still_there[name] = seen;
      continue;
    }
    Status st_sync = FsyncDir(paths_.pickup);
    if (st_sync.ok()) st_sync = FsyncDir(paths_.inbox);
    if (!st_sync.ok())
      Log().Error({}, "inbox.error", st_sync.ToString(), {{"file", name}});
    DurablePoint("inbox.pickup");
    Status taken = TakeFromPickup(taken_name, now);
    if (!taken.ok())
      Log().Error({}, "inbox.error", taken.ToString(), {{"file", name}});
  }
  seen_.swap(still_there);
  if (ec) return InternalError("cannot list " + paths_.inbox);
  return OkStatus();
}

// How long one receive of the events queue waits: a stop request is seen
// within it.
constexpr int64_t kEventsLongPollMs = 1000;

void Service::EventsLoop() {
  while (!stop_.load()) {
    Status st = TakeEventsOnce(kEventsLongPollMs);
    if (!st.ok()) {
      Log().Error({}, "events.error", st.ToString());
      env_->SleepFor(
          static_cast<double>(config_.service.poll_interval_ms) / 1000.0,
          &stop_);
    }
  }
}

void Service::WatchLoop() {
  while (!stop_.load()) {
    Status st = ScanInboxOnce();
    if (!st.ok()) Log().Error({}, "inbox.error", st.ToString());
    // A file that settles before the next poll is taken when it does, not
    // up to poll_interval_ms later (a lone input's latency); never more
    // often than a file's settle deadlines.
    int64_t wait_ms = config_.service.poll_interval_ms;
    if (next_settle_ms_ > 0)
      wait_ms =
          std::clamp<int64_t>(next_settle_ms_ - env_->NowMs() + 1, 1, wait_ms);
    env_->SleepFor(static_cast<double>(wait_ms) / 1000.0, &stop_);
  }
}

// A card-company server should not see a login held open for long with
// nothing to send.
constexpr int kIdleConnectionSeconds = 10;

void Service::WorkLoop(int) {
  while (!stop_.load()) {
    StatusOr<std::vector<Message>> got = queue_->Receive(1, visibility_ms(),
                                                         /*wait_ms=*/500);
    if (!got.ok()) {
      Log().Error({}, "queue.error", got.status().ToString());
      env_->SleepFor(0.5, &stop_);
      continue;
    }
    for (const Message& m : *got) {
      // Defence in depth: steps are guarded by the engine, and nothing
      // else here should throw; if something does (std::bad_alloc), this
      // message is left to its lease (then max_receive_count) and the
      // worker goes on.
      try {
        Handle(m);
      } catch (const std::exception& e) {
        Log().Error({}, "worker.error",
                    "unexpected exception while handling a message: " +
                        MaskCardNumbers(e.what()));
      } catch (...) {
        Log().Error({}, "worker.error",
                    "unexpected exception while handling a message");
      }
    }
    // Connections stay open across a burst of inputs, not for long after.
    if (got->empty()) {
      transports_.CloseIdle(std::chrono::seconds(kIdleConnectionSeconds));
    }
  }
}

namespace {

// The run a message names; kInvalidArgument when the body is not the
// object TakeFromPickup sends (a JSON object with string fields, run_id
// and input_key not empty). Never throws.
StatusOr<RunRecord> RunOfMessage(const std::string& text) {
  const json body = json::parse(text, nullptr, false);
  if (!body.is_object()) return InvalidArgumentError("not a JSON object");
  RunRecord run;
  for (auto [field, target] :
       {std::pair{"run_id", &run.run_id}, {"input_key", &run.input_key},
        {"input_name", &run.input_name}, {"trace_id", &run.trace_id}}) {
    auto it = body.find(field);
    if (it == body.end()) continue;
    if (!it->is_string())
      return InvalidArgumentError(std::string(field) + " is not a string");
    *target = it->get<std::string>();
  }
  if (run.run_id.empty() || run.input_key.empty())
    return InvalidArgumentError("no run_id or input_key");
  return run;
}

}  // namespace

void Service::Handle(const Message& message) {
  StatusOr<RunRecord> parsed = RunOfMessage(message.body);
  if (!parsed.ok()) {
    queue_->MoveToDeadLetter(message.receipt,
                             "malformed message body: " +
                                 parsed.status().message())
        .IgnoreError();
    metrics_->Increment(kDeadLettersTotal, {});
    return;
  }
  RunRecord run = std::move(*parsed);
  StatusOr<bool> created = runs_->CreateIfAbsent(run);
  if (!created.ok()) {
    Log().Error({.run_id = run.run_id}, "run.error",
                created.status().ToString());
    return;  // the lease runs out; another attempt later
  }
  // The run's clock is the one stored when it was created: every attempt
  // and redrive of it decides by the same `now`.
  StatusOr<RunRecord> stored = runs_->Get(run.run_id);
  if (!stored.ok()) {
    Log().Error({.run_id = run.run_id}, "run.error",
                stored.status().ToString());
    return;  // the lease runs out; another attempt later
  }
  run.created_ms = stored->created_ms;
  const LogContext ctx{.run_id = run.run_id, .trace_id = run.trace_id};

  // One worker at a time, in this process or another sharing the state
  // file: the run is claimed in the run store for as long as the message
  // is hidden, and both are renewed together by KeepClaims.
  const std::string owner =
      "pid" + std::to_string(::getpid()) + "-" + RandomHex16();
  const int64_t claim_for = claim_ms();
  const bool tracing = TestTraceEnabled();
  if (tracing) {
    TestTrace("claiming " + run.run_id + " " + owner + " " +
              std::to_string(claim_for));
  }
  StatusOr<bool> claimed = runs_->Claim(run.run_id, owner, claim_for);
  if (!claimed.ok()) {
    Log().Error(ctx, "run.error", claimed.status().ToString());
    return;  // the lease runs out; another attempt later
  }
  if (!*claimed) {
    // Another worker is executing it (a second message for the same run,
    // e.g. redriven while it runs): look again when that claim may have
    // run out; by then the run is finished or its worker is gone.
    Log().Info(ctx, "run.claimed_elsewhere",
               "run is being executed by another worker; not started twice");
    queue_->ChangeVisibility(message.receipt, visibility_ms()).IgnoreError();
    return;
  }
  if (tracing) TestTrace("claimed " + run.run_id + " " + owner);

  std::shared_ptr<ActiveClaim> claim =
      AddActiveClaim(run.run_id, owner, message.receipt, run.trace_id);
  // However this ends (an exception included), the keeper stops renewing
  // and the claim is given up.
  struct Held {
    Service* service;
    const std::shared_ptr<ActiveClaim>& claim;
    ~Held() {
      service->RemoveActiveClaim(claim);
      // Traced before: a claim that follows is always traced after it.
      if (TestTraceEnabled())
        TestTrace("releasing " + claim->run_id + " " + claim->owner);
      service->runs_->ReleaseClaim(claim->run_id, claim->owner).IgnoreError();
    }
  } held{this, claim};
  const int64_t start_ms = env_->NowMs();
  XRaySpan segment = BeginRunSegment(xray_.get(), run.run_id, run.trace_id);
  RunOutcome outcome =
      engine_->Resume(run.run_id, InitialInput(run), &claim->stop);
  EndRunSegment(&segment, outcome);
  RemoveActiveClaim(claim);  // no renewal from here on (again in ~Held)
  const int64_t elapsed_ms = env_->NowMs() - start_ms;
  bool lost;
  {
    std::lock_guard<std::mutex> lock(claim->mu);
    lost = claim->lost;
  }

  if (outcome.state == "succeeded" || outcome.state == "rejected") {
    queue_->Delete(message.receipt).IgnoreError();
    metrics_->Increment(kInputsTotal, {outcome.state == "succeeded"
                                           ? "accepted"
                                           : "quarantined"});
    Log().Info(ctx, "run.finished", outcome.state,
               {{"elapsed_ms", elapsed_ms}});
  } else if (outcome.state == "failed") {
    queue_->MoveToDeadLetter(message.receipt, outcome.error).IgnoreError();
    metrics_->Increment(kDeadLettersTotal, {});
    metrics_->Increment(kInputsTotal, {"failed"});
    Log().Error(ctx, "deadletter.added", outcome.error,
                {{"elapsed_ms", elapsed_ms}});
  } else if (lost) {
    // Another worker holds the run now: its message is not ours to touch.
    Log().Warn(ctx, "run.interrupted",
               "stopped: the claim on the run was lost");
  } else {
    // Interrupted (shutdown, a failed renewal or a store error): visible
    // again soon (at once on shutdown), so the next start or another
    // worker resumes from the checkpoint.
    queue_->ChangeVisibility(message.receipt, stop_.load() ? 0 : 5000)
        .IgnoreError();
    Log().Warn(ctx, "run.interrupted",
               outcome.error.empty()
                   ? (stop_.load() ? "shutting down"
                                   : "stopped: the claim could not be renewed")
                   : outcome.error);
  }
}

std::shared_ptr<Service::ActiveClaim> Service::AddActiveClaim(
    std::string run_id, std::string owner, std::string receipt,
    std::string trace_id) {
  auto claim = std::make_shared<ActiveClaim>();
  claim->run_id = std::move(run_id);
  claim->owner = std::move(owner);
  claim->receipt = std::move(receipt);
  claim->trace_id = std::move(trace_id);
  claim->next_renewal_ms = env_->NowMs() + visibility_ms() / 3;
  if (stop_.load()) claim->stop = true;
  std::lock_guard<std::mutex> lock(claims_mu_);
  claims_.push_back(claim);
  return claim;
}

void Service::RemoveActiveClaim(const std::shared_ptr<ActiveClaim>& claim) {
  {
    std::lock_guard<std::mutex> lock(claims_mu_);
    std::erase(claims_, claim);
  }
  // Waits for a renewal in progress: none starts after this.
  std::lock_guard<std::mutex> lock(claim->mu);
  claim->done = true;
}

void Service::KeepClaims() {
  // Ticks until the last worker ended (keeper_stop_), not at stop_: while
  // workers finish their step after a stop request their claims must hold.
  while (env_->SleepFor(0.05, &keeper_stop_)) {
    std::vector<std::shared_ptr<ActiveClaim>> claims;
    {
      std::lock_guard<std::mutex> lock(claims_mu_);
      claims = claims_;
    }
    const bool stopping = stop_.load();
    for (const std::shared_ptr<ActiveClaim>& claim : claims) {
      if (stopping) claim->stop = true;
      RenewIfDue(*claim, env_->NowMs());
    }
  }
}

void Service::RenewIfDue(ActiveClaim& claim, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(claim.mu);
  if (claim.done || claim.lost || now_ms < claim.next_renewal_ms) return;
  const LogContext ctx{.run_id = claim.run_id, .trace_id = claim.trace_id};
  const bool tracing = TestTraceEnabled();
  if (tracing) {
    TestTrace("renewing " + claim.run_id + " " + claim.owner + " " +
              std::to_string(claim_ms()));
  }
  StatusOr<bool> renewed = runs_->RenewClaim(claim.run_id, claim.owner,
                                             claim_ms());
  Status leased = queue_->ChangeVisibility(claim.receipt, visibility_ms());
  if (renewed.ok() && *renewed && leased.ok()) {
    if (tracing) TestTrace("renewed " + claim.run_id + " " + claim.owner);
    claim.next_renewal_ms = now_ms + visibility_ms() / 3;
    return;
  }
  // Not renewed: the run must not go on past its current step, which may
  // be the last one while the claim is still ours.
  const bool was_stopping = claim.stop.exchange(true);
  if (renewed.ok() && !*renewed) {
    claim.lost = true;
    Log().Error(ctx, "run.claim_lost",
                "another worker took the run over; stopping at the next "
                "step");
    return;
  }
  // An error: the claim may still be ours until it runs out. Keep trying
  // (soon) so the step in progress keeps it while it finishes.
  claim.next_renewal_ms = now_ms + 1000;
  if (!was_stopping) {
    Log().Error(ctx, "run.renewal_failed",
                "cannot renew the claim on the run (" +
                    (renewed.ok() ? leased.ToString()
                                  : renewed.status().ToString()) +
                    "); stopping at the next step");
  }
}

StepRunner Service::TracedSteps(StepRunner inner) {
  return [inner = std::move(inner)](std::string_view name,
                                    const json& input) {
    std::string run_id = "?";
    if (input.is_object()) {
      auto it = input.find("run_id");
      if (it != input.end() && it->is_string()) run_id = it->get<std::string>();
    }
    const std::string who =
        run_id + " " + std::string(name) + " tid" +
        std::to_string(static_cast<long>(::syscall(SYS_gettid)));
    TestTrace("step_start " + who);
    struct End {
      const std::string& who;
      ~End() { TestTrace("step_end " + who); }
    } end{who};
    return inner(name, input);
  };
}

}  // namespace cbpipe
