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
// in the run store (owner + expiry), both renewed while the run is in
// progress: a run is executed by one worker at a time, and a worker whose
// claim renewal fails stops the run at the next step boundary. A crashed
// process's runs become visible again when the lease runs out and are
// resumed from their last checkpoint by any worker.
//
// Shutdown (RequestStop): the watcher stops, workers take no new message
// and stop at the next step boundary; an interrupted run's message is made
// visible again at once so the next start resumes it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "config/config.h"
#include "ledger/ledger.h"
#include "notify/notifier.h"
#include "queue/sqlite_queue.h"
#include "runs/run_store.h"
#include "store/object_store.h"
#include "workflow/engine.h"
#include "workflow/pipeline.h"
#include "workflow/steps.h"

namespace cbpipe {

inline constexpr char kInputsQueueName[] = "inputs";

// Resolved service paths (defaults under work_dir).
struct ServicePaths {
  std::string inbox, pickup, archive, quarantine, objects, state_db, ledger_db;
};
ServicePaths ResolveServicePaths(const Config& config);

class Service {
 public:
  // Opens the stores. `notifier` may be null (log only).
  static StatusOr<std::unique_ptr<Service>> Create(
      const Config& config, std::unique_ptr<Notifier> notifier);
  ~Service();

  // Starts the inbox watcher and the workers.
  Status Start();
  // Asks every thread to stop (safe from a signal-watching thread).
  void RequestStop();
  // Waits for the threads; true when they ended within `timeout_ms`.
  bool Join(int64_t timeout_ms);
  bool running() const { return started_ && !stop_.load(); }

  // One pass of the inbox watcher (for tests): picks up settled files.
  Status ScanInboxOnce();

  RunStore* runs() { return runs_.get(); }
  Queue* queue() { return queue_.get(); }
  const ServicePaths& paths() const { return paths_; }

 private:
  Service(const Config& config, std::unique_ptr<Notifier> notifier);
  // Takes pickup/<name> when it is complete; OK when it was left for a
  // later scan.
  Status TakeFromPickup(const std::string& name, int64_t now_ms);
  // Moves an inbox entry that must not be read to quarantine/inbox/.
  void QuarantineEntry(const std::string& path, const std::string& name,
                       const std::string& why);
  void WatchLoop();
  void WorkLoop(int index);
  void Handle(const Message& message);

  Config config_;
  ServicePaths paths_;
  Env* env_ = Env::Default();  // the clock of the stores, steps and engine
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<SqliteQueue> queue_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<ObjectStore> store_;
  // The work dir as a store: batches, rejects, quarantine.
  std::unique_ptr<LocalFolderStore> work_store_;
  // Shared by the workers; a worker with nothing to do closes connections
  // unused for kIdleConnectionSeconds (see WorkLoop).
  TransportPool transports_;
  Ports ports_;
  WorkflowDefinition workflow_;  // cbpipe_workflow.json
  std::unique_ptr<WorkflowEngine> engine_;

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

  std::atomic<bool> stop_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
  std::atomic<int> live_threads_{0};
};

}  // namespace cbpipe
