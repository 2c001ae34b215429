// `cbpipe run`'s runtime: each input is one run of the cbpipe workflow
// (cbpipe_workflow.json) on the WorkflowEngine, in this process, with an
// in-memory run store and the same steps (RunStep over Ports) as `serve`,
// and then read back as an InputResult for the report.
//
//   InProcessRunner runner(config, ledger.get(), Env::Default(), now);
//   InputResult r = runner.Process("/in/chargebacks.csv");  // or "-"
//
// What a run of an input does (all of it the workflow's steps):
// - scan names its batches and rejects by the input's content
//   (name_by_content: ScanNamedByContent), against `now_epoch_seconds`,
//   the clock of every run of the runner; rejected records go to
//   runs/<input_id>/rejects.csv; an input that cannot be read is copied to
//   quarantine/<input_id>/ with its reason.txt: keys of the work store,
//   the work folder itself unless InProcessOptions::work says otherwise.
// - The report reads each batch's manifest back from the work store, by
//   the key scan returned.
// - Batches are verified and delivered one after the other, batch k+1
//   verified while batch k is delivered; a batch that fails verification
//   is not delivered and does not stop the others.
// - Each destination of a batch is delivered at once on its own thread,
//   its files in order over one connection from the runner's TransportPool;
//   the engine retries a destination under its RetryPolicy, each failed
//   attempt of a file kept in the ledger with the run id (read back for
//   the report).
// Inputs are read where they are (GivenPathsStore): nothing is copied.
//
// Threads: the engine's, started and joined inside Process. Process is
// called from one thread at a time. `config`, `ledger` and `env` must
// outlive the runner.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/env.h"
#include "config/config.h"
#include "deliver/deliverer.h"
#include "ledger/ledger.h"
#include "output/batch_planner.h"
#include "runs/in_memory_run_store.h"
#include "store/given_paths_store.h"
#include "store/object_store.h"
#include "workflow/definition.h"
#include "workflow/engine.h"
#include "workflow/input_scan.h"
#include "workflow/pipeline.h"
#include "workflow/ports.h"

namespace cbpipe {

struct DeliveredFile {
  FileSummary file;
  DeliveryResult delivery;
};

struct BatchResult {
  Batch batch;
  Status verify;  // not OK: nothing of the batch was delivered
  std::vector<DeliveredFile> files;
  bool ok() const;
};

struct InputResult {
  std::string input;     // as given, card numbers masked
  std::string input_id;  // first 16 hex digits of the input's SHA-256
  InputScan scan;
  std::string rejects_file;
  std::string quarantine_dir;  // set when the input was unreadable
  Status error;                // unreadable input, or I/O failure
  std::vector<BatchResult> batches;
  bool ok() const;
};

struct InProcessOptions {
  // Makes the destinations' transports (null: MakeTransport).
  TransportPool::Factory make_transport = nullptr;
  // Resolves the destinations' secret references (null: env:/file: only);
  // must outlive the runner. `cbpipe run` gives OpenCommandSecrets' store,
  // so aws-sm: references work as in serve.
  SecretStore* secrets = nullptr;
  // Called before each step with its input (tests: corrupt a batch file
  // between scan and verify). Must not throw.
  std::function<void(std::string_view step, const nlohmann::json& input)>
      before_step = nullptr;
  // Where batches, manifests, rejects and quarantines go (not owned; must
  // outlive the runner). Null: the work folder itself (LocalFolderStore of
  // config.work_dir), written in place. Another store: the steps stage in
  // <work_dir>/staging/ and Put, and the report reads it back; its paths
  // (manifest, rejects_file, quarantine) are then the store's locations.
  ObjectStore* work = nullptr;
};

class InProcessRunner {
 public:
  InProcessRunner(const Config& config, DeliveryLedger* ledger, Env* env,
                  int64_t now_epoch_seconds, InProcessOptions options = {});
  ~InProcessRunner();

  InputResult Process(const std::string& input_path);

 private:
  // The report of run `run_id` of `input_path`, from its checkpoints.
  InputResult Report(const std::string& input_path, const std::string& run_id,
                     const RunOutcome& outcome);
  // Where an operator finds the work object under `key`.
  std::string Shown(const std::string& key) const;
  // The files of one verified batch, from the destinations' results.
  std::vector<DeliveredFile> Files(const Batch& batch,
                                   const nlohmann::json& deliveries,
                                   const std::string& run_id);

  const Config& config_;
  DeliveryLedger* ledger_;
  Env* env_;
  const int64_t now_ms_;
  InProcessOptions options_;
  const std::string run_prefix_;  // unique to this runner
  int runs_made_ = 0;
  GivenPathsStore inputs_;
  LocalFolderStore work_;
  ObjectStore* work_store_;  // work_ or options_.work
  bool work_is_dir_;         // work_store_ is config.work_dir itself
  InMemoryRunStore runs_;
  TransportPool transports_;
  Ports ports_;
  StatusOr<WorkflowDefinition> definition_;
  std::unique_ptr<WorkflowEngine> engine_;
  std::mutex mu_;  // guards scans_ (written by the scan step's thread)
  std::map<std::string, InputScan> scans_;
};

}  // namespace cbpipe
