// `cbpipe serve`: the embedded single-machine service.
//
//   inbox/ ──watcher──▶ object store (inputs/<sha256>) ──▶ queue "inputs"
//                                                            │
//        workers (N threads): receive ─▶ WorkflowEngine::Resume ─▶ delete
//                                         │ failed: dead letter + alert
//
// Pickup (docs/service.md): an inbox entry that is not a regular file with
// one link (symlink, FIFO, socket, device, directory, hard link) is moved to
// <work_dir>/quarantine/inbox/ unread. A regular file (dot-names and
// .part/.tmp are ignored) unchanged for settle_ms is renamed into the
// private <work_dir>/pickup/, where no writer can open it by name any more;
// it is taken only when no process holds it open for writing (a read lease
// can be had) and it did not change while it was copied: one pass reads it,
// hashes it and copies it into the object store (inputs/<sha256>). Then it
// is queued (idempotent: the message's dedup id is the run id), its run is
// created, and it is moved to <work_dir>/archive/. A file still being
// written stays in pickup/ until it is complete. Every step is idempotent,
// so a crash anywhere in it is finished by the next scan. Nothing is
// deleted. The same content dropped twice is processed once (the run id is
// the content hash).
//
// Workers hold a message with a visibility lease and the run with a claim
// in the run store (owner + expiry), both renewed every third of the lease
// by the service's claim keeper while the run is in progress: a run is
// executed by one worker at a time, and a run whose renewal fails (the
// claim was taken over, the store or queue answered an error) is stopped
// at the next step boundary. A crashed process's runs become visible again
// when the lease runs out and are resumed from their last checkpoint by
// any worker. A step that throws or returns garbage fails its run (the
// engine's CallStepGuarded), which goes to the dead letters; the worker
// goes on with the next message.
//
// Threads: the service owns all of them (the inbox watcher, `workers`
// workers and the claim keeper) and joins them; none is detached. Every
// wait of the service (polls, retry waits of the engine) ends early on
// RequestStop.
//
// Where things live ([service] keys, docs/service.md): each of the object
// store, the work store, the queue, the run store and the ledger is the
// local default (a folder, SQLite under work_dir) or the adapter its URL
// names (workflow/registry.h: s3://, sqs://, dynamodb://), all AWS ones on
// the one AwsClient of the [aws] table. Two serve processes on two
// machines sharing those resources share the work as two on one machine
// sharing the work dir do.
//
// Inputs from S3 events (service.events_queue set; docs/aws.md "Inputs
// from S3 events"): the events thread replaces the inbox watcher. It
// long-polls the events queue for S3 ObjectCreated notifications
// (ParseS3Events: the direct S3, SNS-wrapped and EventBridge forms;
// s3:TestEvent ignored). Each object created under the object store's
// s3://bucket/prefix becomes one run whose input is that object, read from
// the object store by its key (nothing is copied). The run id is derived
// from the object's identity, S3ObjectRunId(bucket, key, etag): the same
// object reported twice (S3 notifies at least once) is the same run, queued
// once (the run store already holds it) or, when two reports race, run
// once (the run store's claim; a finished run is not run again). The event
// message is deleted only once every run it names is durably queued and
// created; an error leaves it to come back after its visibility timeout.
// An event for another bucket or outside the prefix, or for a key the
// object store cannot name (keys are [A-Za-z0-9._/-], no card number), is
// logged with the reason and dropped; a body that is not an S3 event is
// moved to the events queue's dead letters (deleted, with an error logged,
// when the queue has none), never received in a loop.
//
// Shutdown (RequestStop): the watcher (or the events thread) stops, workers take no new message
// and stop at the next step boundary (the keeper renews their claims until
// they have); an interrupted run's message is made visible again at once
// so the next start resumes it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "config/config.h"
#include "ledger/ledger.h"
#include "notify/notifier.h"
#include "queue/queue.h"
#include "runs/run_store.h"
#include "store/object_store.h"
#include "telemetry/metrics.h"
#include "telemetry/xray.h"
#include "workflow/engine.h"
#include "workflow/pipeline.h"
#include "workflow/s3_events.h"
#include "workflow/steps.h"

namespace cbpipe {

inline constexpr char kInputsQueueName[] = "inputs";

// Resolved service paths (defaults under work_dir).
struct ServicePaths {
  std::string inbox, pickup, archive, quarantine, objects, state_db, ledger_db;
};
ServicePaths ResolveServicePaths(const Config& config);

// The engine's retry observer (EngineOptions::on_retry) of serve: each
// retry of a "deliver" Task (attempt 2, 3, ... of one batch's files to one
// destination) adds one to cbpipe_delivery_retries_total{destination}.
// `metrics` must outlive the function.
std::function<void(const TaskRetry&)> CountDeliveryRetries(Metrics* metrics);

// The run id of an S3 object reported by an event: 16 lower-case hex of the
// SHA-256 of bucket, key and ETag (the size when the event has no ETag).
// The same object reported twice gives the same id; the object replaced
// under the same key (a new ETag) gives a new run. An error only when
// OpenSSL fails.
StatusOr<std::string> S3ObjectRunId(const S3ObjectRef& object);

class Service {
 public:
  // Opens the stores. `notifier` may be null (log only). `metrics` records
  // what the service does (never null; must outlive the service); the
  // queue gauges are bound to it until the service is destroyed.
  // `secrets` (may be null: env:/file:; must outlive the service) resolves
  // the destinations' credentials (OpenSecretStoreFor in serve).
  static StatusOr<std::unique_ptr<Service>> Create(
      const Config& config, std::unique_ptr<Notifier> notifier,
      Metrics* metrics, SecretStore* secrets = nullptr);
  // Stops and joins every thread, however long that takes.
  ~Service();

  // Starts the inbox watcher (or the events thread), the workers and the
  // claim keeper.
  Status Start();
  // Asks every thread to stop (safe from a signal-watching thread).
  void RequestStop();
  // Waits for the threads and joins them; true when they ended within
  // `timeout_ms`. False leaves them running (a step may be in a long
  // upload); a later Join or the destructor joins them.
  bool Join(int64_t timeout_ms);
  bool running() const { return started_ && !stop_.load(); }

  // One pass of the inbox watcher (for tests): picks up settled files.
  Status ScanInboxOnce();
  // One receive of the events queue (for tests; the events thread's loop):
  // waits up to `wait_ms` for event messages and takes what they report.
  // kFailedPrecondition without service.events_queue; the queue's error
  // when the receive fails. An error with one message is logged, and that
  // message left to its visibility timeout.
  Status TakeEventsOnce(int64_t wait_ms);

  RunStore* runs() { return runs_.get(); }
  Queue* queue() { return queue_.get(); }
  // Null without service.events_queue.
  Queue* events_queue() { return events_.get(); }
  const ServicePaths& paths() const { return paths_; }
  // Batches and rejects reports (the admin API reads rejects from it).
  ObjectStore* work_store() { return work_store_.get(); }

 private:
  Service(const Config& config, std::unique_ptr<Notifier> notifier);
  // Takes pickup/<name> when it is complete; OK when it was left for a
  // later scan.
  Status TakeFromPickup(const std::string& name, int64_t now_ms);
  // Moves an inbox entry that must not be read to quarantine/inbox/.
  void QuarantineEntry(const std::string& path, const std::string& name,
                       const std::string& why);
  // Queues a new run of the input stored under `key`: its message first (a
  // worker creates the run from it if the process dies before the record
  // is written), then its record; both idempotent per run id. Returns the
  // run's trace id.
  StatusOr<std::string> QueueRun(const std::string& run_id,
                                 const std::string& key,
                                 const std::string& name);
  // What to do with one S3 object an event reported: OK when it was queued
  // or dropped (logged); an error leaves the event for a later receive.
  Status TakeS3Object(const S3ObjectRef& object);
  // One event message: OK when it is done with (deleted or dead-lettered).
  Status TakeEventMessage(const Message& message);
  void WatchLoop();
  void EventsLoop();
  void WorkLoop(int index);
  void Handle(const Message& message);

  // A run being executed by a worker of this process: its claim and its
  // message's lease are renewed by KeepClaims until the worker is done.
  struct ActiveClaim {
    std::string run_id, owner, receipt;
    std::string trace_id;
    // Set to stop the run at the next step boundary (shutdown, a failed
    // renewal); the engine reads it.
    std::atomic<bool> stop{false};
    std::mutex mu;         // serializes a renewal with the worker's end
    bool done = false;     // under mu: the worker released the claim
    bool lost = false;     // under mu: taken over; renew no more
    int64_t next_renewal_ms = 0;  // under mu
  };
  // The claim keeper's thread: renews due claims until every worker ended.
  void KeepClaims();
  void RenewIfDue(ActiveClaim& claim, int64_t now_ms);
  // The run's work is stopped when a renewal fails (see ActiveClaim).
  std::shared_ptr<ActiveClaim> AddActiveClaim(std::string run_id,
                                              std::string owner,
                                              std::string receipt,
                                              std::string trace_id);
  // Idempotent.
  void RemoveActiveClaim(const std::shared_ptr<ActiveClaim>& claim);
  // Steps wrapped so that CBPIPE_TEST_TRACE shows when each one ran.
  static StepRunner TracedSteps(StepRunner inner);
  int64_t claim_ms() const;
  int64_t visibility_ms() const;

  Config config_;
  ServicePaths paths_;
  Env* env_ = Env::Default();  // the clock of the stores, steps and engine
  Metrics* metrics_ = nullptr;
  // [telemetry] xray (or AWS_XRAY_SDK_ENABLED): a segment per run, a
  // subsegment per step; disabled sends nothing. Outlives engine_.
  std::unique_ptr<XRayTracer> xray_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<Queue> queue_;
  // service.events_queue, or null; read by the events thread only.
  std::unique_ptr<Queue> events_;
  // The object store's s3://bucket/prefix, which events must name ("" when
  // it is not an S3 store); the prefix without leading or trailing '/'.
  std::string events_bucket_, events_prefix_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<ObjectStore> store_;
  // Batches, rejects, quarantine: the work dir as a store, or
  // service.work_store.
  std::unique_ptr<ObjectStore> work_store_;
  // Shared by the workers; a worker with nothing to do closes connections
  // unused for kIdleConnectionSeconds (see WorkLoop).
  TransportPool transports_;
  Ports ports_;
  WorkflowDefinition workflow_;  // cbpipe_workflow.json
  std::unique_ptr<WorkflowEngine> engine_;
  // The queue gauges, bound to metrics_ while queue_ lives (declared
  // after it: unbound first).
  GaugeRegistration queue_depth_gauge_;
  GaugeRegistration queue_age_gauge_;

  struct Seen {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t stable_since_ms = 0;
  };
  std::map<std::string, Seen> seen_;  // watcher thread only
  // Files in pickup/ watched for a settle of their own when a read lease
  // cannot tell whether a writer still holds them (watcher thread only).
  std::map<std::string, Seen> pickup_seen_;
  std::map<std::string, int64_t> busy_logged_;  // name -> size logged at
  // When the first inbox file still settling will have settled (epoch ms;
  // 0: none): the watcher wakes for it (watcher thread only).
  int64_t next_settle_ms_ = 0;

  std::atomic<bool> stop_{false};
  // Set when the last worker ended: the claim keeper's stop.
  std::atomic<bool> keeper_stop_{false};
  bool started_ = false;
  // watcher or events thread, workers, claim keeper
  std::vector<std::thread> threads_;

  std::mutex claims_mu_;
  std::vector<std::shared_ptr<ActiveClaim>> claims_;  // under claims_mu_

  std::mutex live_mu_;
  std::condition_variable live_cv_;
  int live_threads_ = 0;   // under live_mu_
  int live_workers_ = 0;   // under live_mu_
};

}  // namespace cbpipe
