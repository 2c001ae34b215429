// What the workflow's steps reach the world through: one pointer per port
// and the options the steps read. A step touches nothing else (no clock, no
// globals, no local paths passed between steps), so the same step runs in
// `cbpipe run`, in `cbpipe serve` and, behind the same interfaces, in a
// Lambda handler.
//
//   LocalFolderStore work(config.work_dir), inputs(paths.objects);
//   Ports ports;
//   ports.config = &config;
//   ports.work = &work;          // ports.inputs, .ledger, .notifier, ...
//   ports.env = Env::Default();
//   StatusOr<nlohmann::json> out = RunStep("scan", input, ports);
//
// Ownership: Ports holds borrowed pointers; whoever fills it keeps every
// port alive while steps run. Thread safety: the ports are shared by steps
// running at once (a Map's branches), so each must be thread-safe (each
// port's header says it is).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "common/env.h"
#include "config/config.h"
#include "deliver/deliverer.h"
#include "ledger/ledger.h"
#include "notify/notifier.h"
#include "store/object_store.h"
#include "telemetry/metrics.h"
#include "workflow/input_scan.h"

namespace cbpipe {

class TransportPool;  // workflow/pipeline.h

// Who a step's work belongs to, for observers (logs, metrics).
struct StepContext {
  std::string run_id;
  std::string trace_id;
};

struct Ports {
  // The options the steps read (destinations, layouts, limits, work_dir).
  // Becomes the steps' own options struct once config/ maps into one.
  const Config* config = nullptr;
  // Where batches/, runs/<id>/rejects.csv and quarantine/ are keys, under
  // the same names as ever. When it is the folder config->work_dir
  // (IsLocalFolder) steps write and read its files in place; any other
  // store (S3, memory) is written through a scratch folder under work_dir
  // and Put, and read with Get and LocalPath (released when the step ends).
  ObjectStore* work = nullptr;
  // Where raw inputs live (a step input's "input_key").
  ObjectStore* inputs = nullptr;
  DeliveryLedger* ledger = nullptr;
  Notifier* notifier = nullptr;  // may be null: nobody is told
  Metrics* metrics = nullptr;    // may be null: nothing recorded
  // Stamps events and delivery attempts; never decides what a step does
  // (the run's `now_ms` in the step input does).
  Env* env = nullptr;
  // How long a delivery's claim in the ledger lasts (deliver/deliverer.h):
  // serve gives it its runs' lease.
  int64_t delivery_claim_ms = kDeliveryClaimLeaseMs;
  // Connections kept between deliveries (may be null: one per delivery).
  TransportPool* transports = nullptr;
  // Where destinations' secret references are resolved (may be null: the
  // env:/file: store); a caching one (aws-sm:) is refreshed once when a
  // server refuses the login (MakeTransport, deliver/deliverer.h).
  SecretStore* secrets = nullptr;
  // Set when the step should end early (a Lambda invocation near its
  // deadline): deliver checks it before each file and then fails
  // DEADLINE_EXCEEDED (transient: what it delivered is in the ledger, the
  // retry sends the rest). May be null.
  const std::atomic<bool>* stop = nullptr;
  // Observers for metrics and logs (may be empty). Called on the step's
  // thread; must not throw.
  std::function<void(const StepContext&, const InputScan&)> on_scanned;
  std::function<void(const StepContext&, const std::string& destination,
                     const DeliveryResult&, uint64_t bytes, double seconds)>
      on_delivery;
};

}  // namespace cbpipe
