// The cbpipe workflow's steps: each one a function from a JSON input to a
// JSON output (ids, object keys, counts — never records), run by whatever
// orchestrates the workflow (the embedded engine running
// cbpipe_workflow.json for `cbpipe serve` and, in-process, `cbpipe run`;
// `replay`; a Lambda handler next):
//
//   scan ──▶ Map over batches: verify ──▶ Map over destinations: deliver
//    │ unreadable or       │ DataLoss: the        (Retry: the destination's
//    ▼ over a limit        ▼ batch's entry          RetryPolicy, in the item)
//   reject_input       record_failure ◀── settle ◀── notify ◀──┘
//
//   StatusOr<nlohmann::json> out = RunStep("scan", input, ports);
//
// Contract of RunStep:
// - Nothing is thrown across it: an exception inside a step becomes
//   kInternal naming the step.
// - Deterministic given its input: the run id, trace id and the run's clock
//   (`now_ms`, fixed when the run was created) are in every input; no step
//   reads the clock to decide anything. Redriving a step gives the same
//   output and the same files as its first attempt.
// - Inputs are checked strictly: a missing or mistyped key is
//   kInvalidArgument naming the key; an unknown step name is kNotFound.
// - Files are object-store keys: raw inputs in Ports::inputs, everything
//   written (batches/<id>/..., runs/<id>/rejects.csv, quarantine/<id>/) in
//   Ports::work, under the names they always had; a batch's manifest is
//   Put after its files. A local copy a step takes (LocalPath) is released
//   when the step ends. rejects_file is shown to operators: the file in
//   the work folder, or the store's URL and key.
// - No step retries or sleeps: retries are the orchestrator's (a failed
//   step returns the error; transient codes are worth another attempt).
//   `deliver` makes one attempt per file, and none once Ports::stop is set
//   (DEADLINE_EXCEEDED: a Lambda invocation near its deadline).
// - Thread safety: steps may run at once on several threads (a Map's
//   branches) when the ports allow it.
//
// Every input carries the run header {"run_id", "trace_id", "now_ms"}; each
// step's own keys:
//   scan           {input_key, input_name, name_by_content?} -> + {records,
//                  accepted, rejected, input_id, undeliverable, by_network,
//                  rejects_key, rejects_file, batches: [{id, manifest,
//                  files}]}; an input that cannot be read or is over a limit
//                  is kInvalidArgument (-> reject_input). Batches and rejects
//                  are named by input_id: the run id, or with
//                  name_by_content the input's content hash, learnt while
//                  reading, as `cbpipe run` names them (ScanNamedByContent)
//   verify         {batch: {id, manifest}} -> {id, manifest, deliveries:
//                  [deliver inputs, one per destination, with `retry`]};
//                  kDataLoss when a file no longer matches its manifest
//   deliver        {batch: {id, manifest}, destination, replay?} ->
//                  {id, destination, files: [{destination, name, records,
//                  bytes, totals, status, attempts}]}; when a file failed
//                  (after the others were tried), the first failed file's
//                  error whose code is transient, else the first one's.
//                  Each failed attempt is kept in the ledger with the run
//                  id; `attempts` counts this run's. A file this run
//                  delivered in an earlier try is "delivered" again (an
//                  earlier run's: "already_delivered"); a file whose last
//                  attempt in this run failed permanently is not tried
//                  again while another file still fails transiently
//                  (unless replay): it stays failed with that error
//   notify         {input_name, deliveries: [{id, files}]} -> its input
//   settle         {deliveries} -> its input, kAborted when a file failed
//                  (both also take cbpipe_workflow.json's Map result:
//                  deliveries: [{id, deliveries: [deliver output, or its
//                  input with error: {Error, Cause}]}, or a batch that
//                  failed verification as {batch: {id, files}, error}])
//   reject_input   {error: {code, message}, input: <scan input>}, or the
//                  scan input with error: {Error, Cause} ->
//                  + {quarantine} (key of the folder)
//   record_failure the same around any step's input -> its input
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "workflow/engine.h"
#include "workflow/ports.h"
#include "runs/run_store.h"

namespace cbpipe {

StatusOr<nlohmann::json> RunStep(std::string_view name,
                                 const nlohmann::json& input,
                                 const Ports& ports);

// "CODE: message" (Status::ToString, as a caught error's Cause keeps a
// step's original error) back into a Status; a text without a known code
// is INVALID_ARGUMENT with the whole text.
Status StatusFromString(const std::string& text);

// RunStep over `ports` (which must outlive the runner).
StepRunner StepsOver(const Ports& ports);

// The first step's input for `run`: its header (now_ms is the run's
// creation time, so every redrive sees the same clock) and its input.
nlohmann::json InitialInput(const RunRecord& run);

// The Map over one batch's deliveries (verify's "deliveries"): every
// destination at once (one owned thread each), each under its Retry (the
// RetryPolicy in its item) and Catch (a delivery that still fails becomes
// its files with status "failed" and the error). Returns the files, in the
// order of the items.
nlohmann::json RunDeliveries(const StepRunner& step,
                             const nlohmann::json& items, Env* env,
                             const std::atomic<bool>* stop);

// One attempt of `name` and then more under `policy` while the error is
// transient (Step Functions semantics). Returns the last result and, in
// *attempts, how many were made.
StatusOr<nlohmann::json> RunWithRetry(const StepRunner& step,
                                      std::string_view name,
                                      const nlohmann::json& input,
                                      const RetryPolicy& policy, Env* env,
                                      const std::atomic<bool>* stop,
                                      int* attempts);

}  // namespace cbpipe
