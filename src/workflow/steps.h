// The cbpipe workflow for one input, as steps with JSON inputs and outputs
// (ids, object keys, counts), so the same steps can run in the embedded
// engine or as Lambda tasks in a Step Functions state machine:
//
//   validate ──▶ generate ──▶ verify ──▶ deliver ──▶ notify ──▶ settle
//      │ unreadable or          │ DataLoss      (one branch    │ any file
//      ▼ over a limit           ▼               per dest.)     ▼ failed
//   reject_input            record_failure ◀────────────────────┘
//   (quarantine,            (dead letter + deadletter.added; the run fails
//    input.rejected)         and is redriven from generate or deliver)
//
// Every step is idempotent: generation is deterministic, delivery consults
// the ledger, so re-running a step after a crash delivers nothing twice.
// Notifications are at least once.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "deliver/deliverer.h"
#include "deliver/ledger.h"
#include "notify/notifier.h"
#include "store/object_store.h"
#include "telemetry/metrics.h"
#include "workflow/legacy_engine.h"
#include "workflow/input_scan.h"

namespace cbpipe {

class TransportPool;  // workflow/pipeline.h

struct StepServices {
  const Config* config = nullptr;
  ObjectStore* store = nullptr;
  DeliveryLedger* ledger = nullptr;
  Notifier* notifier = nullptr;  // may be null
  Metrics* metrics = nullptr;    // may be null (nothing recorded)
  // Connections kept between deliveries (may be null: one per batch).
  TransportPool* transports = nullptr;
  RetryEnv env;
  // The clock (Unix epoch milliseconds): events are stamped with it, and
  // its seconds are the "now" of the date rules.
  std::function<int64_t()> now_ms;
  // Observers for metrics and logs (may be empty).
  std::function<void(const RunRecord&, const InputScan&)> on_scanned;
  std::function<void(const RunRecord&, const std::string& destination,
                     const DeliveryResult&, uint64_t bytes, double seconds)>
      on_delivery;
};

// The first step's input for a run of `input_key`.
nlohmann::json InitialInput(const std::string& input_key,
                            const std::string& input_name);

// Builds the workflow above. `services` must outlive the definition.
LegacyWorkflowDefinition CbpipeWorkflow(StepServices* services);

}  // namespace cbpipe
