// `cbpipe serve`: the embedded single-machine service.
//
//   inbox/ ──watcher──▶ object store (inputs/<sha256>) ──▶ queue "inputs"
//                                                            │
//        workers (N threads): receive ─▶ WorkflowEngine::Resume ─▶ delete
//                                         │ failed: dead letter + alert
//
// A file is picked up when it has been renamed in (dot-names and .part/.tmp
// are ignored) and is unchanged for settle_ms; it is copied into the object
// store under its content hash, queued, and moved to <work_dir>/archive/.
// Nothing is deleted. The same content dropped twice is processed once (the
// run id is the content hash).
//
// Workers hold a message with a visibility lease they renew while a run is
// in progress; a crashed process's runs become visible again when the lease
// runs out and are resumed from their last checkpoint by any worker.
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

#include "config/config.h"
#include "deliver/ledger.h"
#include "notify/notifier.h"
#include "queue/sqlite_queue.h"
#include "store/object_store.h"
#include "workflow/engine.h"
#include "workflow/pipeline.h"
#include "workflow/run_store.h"
#include "workflow/steps.h"

namespace cbpipe {

inline constexpr char kInputsQueueName[] = "inputs";

// Resolved service paths (defaults under work_dir).
struct ServicePaths {
  std::string inbox, archive, objects, state_db, ledger_db;
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
  Status Ingest(const std::string& path, const std::string& name);
  void WatchLoop();
  void WorkLoop(int index);
  void Handle(const Message& message);

  Config config_;
  ServicePaths paths_;
  std::unique_ptr<Notifier> notifier_;
  std::unique_ptr<RunStore> runs_;
  std::unique_ptr<SqliteQueue> queue_;
  std::unique_ptr<DeliveryLedger> ledger_;
  std::unique_ptr<LocalFolderStore> store_;
  // Shared by the workers; a worker with nothing to do closes connections
  // unused for kIdleConnectionSeconds (see WorkLoop).
  TransportPool transports_;
  StepServices services_;
  WorkflowDefinition workflow_;
  std::unique_ptr<WorkflowEngine> engine_;

  struct Seen {
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    int64_t stable_since_ms = 0;
  };
  std::map<std::string, Seen> seen_;  // watcher thread only

  std::atomic<bool> stop_{false};
  bool started_ = false;
  std::vector<std::thread> threads_;
  std::atomic<int> live_threads_{0};
};

}  // namespace cbpipe
