#include "workflow/service.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "common/crash_point.h"
#include "deliver/local_transport.h"
#include "domain/pan.h"
#include "ledger/sqlite_ledger.h"
#include "runs/sqlite_run_store.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/trace.h"
#include "workflow/registry.h"

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
int64_t ClaimLeaseMs(const Config& config) {
  return static_cast<int64_t>(config.service.visibility_seconds) * 1000 - 250;
}

std::string RandomHex16() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(rng()));
  return buf;
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
  p.pickup = w + "/pickup";
  p.archive = w + "/archive";
  p.quarantine = w + "/quarantine";
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
       {s->config_.work_dir, s->paths_.inbox, s->paths_.pickup,
        s->paths_.archive, s->paths_.objects}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return InvalidArgumentError("cannot create " + dir + ": " +
                                        ec.message());
  }
  CBPIPE_ASSIGN_OR_RETURN(s->runs_,
                          SqliteRunStore::Open(s->paths_.state_db, s->env_));
  QueueOptions qo;
  qo.max_receive_count = s->config_.service.max_receive_count;
  qo.env = s->env_;
  CBPIPE_ASSIGN_OR_RETURN(
      s->queue_, SqliteQueue::Open(s->paths_.state_db, kInputsQueueName, qo));
  CBPIPE_ASSIGN_OR_RETURN(
      s->ledger_, SqliteDeliveryLedger::Open(s->paths_.ledger_db, s->env_));
  {
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

  s->work_store_ = std::make_unique<LocalFolderStore>(s->config_.work_dir);
  Ports& sv = s->ports_;
  sv.config = &s->config_;
  sv.work = s->work_store_.get();
  sv.inputs = s->store_.get();
  sv.ledger = s->ledger_.get();
  sv.notifier = s->notifier_.get();
  sv.transports = &s->transports_;
  sv.env = s->env_;
  sv.delivery_claim_ms = ClaimLeaseMs(s->config_);
  sv.on_scanned = [](const StepContext& run, const InputScan& scan) {
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
  sv.on_delivery = [](const StepContext& run, const std::string& destination,
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
  CBPIPE_ASSIGN_OR_RETURN(s->workflow_, CbpipeWorkflowDefinition());
  s->engine_ = std::make_unique<WorkflowEngine>(
      &s->workflow_, s->runs_.get(), s->env_, StepsOver(s->ports_));
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
  Metrics().inputs_total.WithLabels({"quarantined"}).Increment();
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
      Metrics().inputs_total.WithLabels({"duplicate"}).Increment();
    }  // else: this pickup, finished after a restart
  } else {
    const TraceContext trace = NewTraceContext();
    json body = {{"run_id", run_id},
                 {"input_key", key},
                 {"input_name", name},
                 {"trace_id", trace.trace_id.ToHex()}};
    // The message first: a worker creates the run from it if the process
    // dies before the run record is written. Idempotent per run id: a
    // pickup finished again after a crash does not queue the input twice.
    CBPIPE_RETURN_IF_ERROR(queue_
                               ->Send(body.dump(),
                                      {{"traceparent", trace.ToTraceparent()}},
                                      0, run_id)
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
  const int64_t visibility_ms =
      static_cast<int64_t>(config_.service.visibility_seconds) * 1000;

  // One worker at a time, in this process or another sharing the state
  // file: the run is claimed in the run store for as long as the message
  // is hidden, and both are renewed together.
  const std::string owner =
      "pid" + std::to_string(::getpid()) + "-" + RandomHex16();
  const int64_t claim_ms = ClaimLeaseMs(config_);
  StatusOr<bool> claimed = runs_->Claim(run.run_id, owner, claim_ms);
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
    queue_->ChangeVisibility(message.receipt, visibility_ms).IgnoreError();
    return;
  }

  // Renew lease and claim while the run is in progress; a renewal that
  // finds the claim taken over stops the run at the next step boundary.
  std::atomic<bool> run_stop{false};
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    auto next_renewal = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(visibility_ms / 3);
    while (!cv.wait_for(lock, std::chrono::milliseconds(50),
                        [&] { return done; })) {
      if (stop_.load()) run_stop = true;
      if (std::chrono::steady_clock::now() < next_renewal) continue;
      next_renewal += std::chrono::milliseconds(visibility_ms / 3);
      StatusOr<bool> renewed = runs_->RenewClaim(run.run_id, owner, claim_ms);
      queue_->ChangeVisibility(message.receipt, visibility_ms).IgnoreError();
      if (renewed.ok() && !*renewed && !run_stop.load()) {
        run_stop = true;
        Log().Error(ctx, "run.claim_lost",
                    "another worker took the run over; stopping at the next "
                    "step");
      }
    }
  });
  const auto start = std::chrono::steady_clock::now();
  RunOutcome outcome =
      engine_->Resume(run.run_id, InitialInput(run), &run_stop);
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
  runs_->ReleaseClaim(run.run_id, owner).IgnoreError();
}

}  // namespace cbpipe
