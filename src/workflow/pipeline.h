// The whole pipeline for one input on one machine: ingest and validate ->
// plan and generate -> verify -> deliver (destinations in parallel).
//
//   Pipeline pipeline(config, ledger.get(), Env::Default(), now);
//   InputResult r = pipeline.Process("/in/chargebacks.csv");
//
// Each step's result is data (ids, paths, counts), never the records
// themselves. Rejected records go to <work_dir>/runs/<input_id>/rejects.csv;
// an input that cannot be read at all is copied to
// <work_dir>/quarantine/<input_id>/ with its reason, the original kept.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/env.h"
#include "config/config.h"
#include "deliver/deliverer.h"
#include "ledger/ledger.h"
#include "output/batch_planner.h"
#include "workflow/input_scan.h"

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
  std::string input;
  std::string input_id;  // first 16 hex digits of the input's SHA-256
  InputScan scan;
  std::string rejects_file;
  std::string quarantine_dir;  // set when the input was unreadable
  Status error;                // unreadable input, or I/O failure
  std::vector<BatchResult> batches;
  bool ok() const;
};

// Reads and validates `input_path`. Rejects go to `rejects_path` (skipped
// when empty); accepted records to `planner` (when null, only checked for a
// destination). Returns the input's error when it cannot be read.
// `observe` sees the input's bytes as read (see OpenReader).
Status ScanAndPlan(const Config& config, const std::string& input_path,
                   const std::string& rejects_path, BatchPlanner* planner,
                   int64_t now_epoch_seconds, InputScan* scan,
                   RawBytesObserver observe = nullptr);

// Scans `input_path` like ScanAndPlan and names what it writes by the
// input's content, as `cbpipe run` always has: the input is hashed while it
// is read, the rejects and the staged batch files wait under a pending name
// made from the path, and are renamed once the id (first 16 hex digits of
// the SHA-256) is known. Sets *input_id ("" when the input could not be
// hashed; *scan is then empty with that error), *rejects_file and, on
// success, *batches. On an error, nothing staged is left behind.
Status ScanNamedByContent(const Config& config, const std::string& input_path,
                          int64_t now_epoch_seconds, InputScan* scan,
                          std::string* input_id, std::string* rejects_file,
                          std::vector<Batch>* batches);

// Transports kept open from one batch to the next, so a run with many
// batches, or a service with many inputs, logs in to each server once
// instead of once per batch (some card-company servers limit logins). A
// transport is taken for the caller alone and given back after the batch;
// several threads may use the pool at once, each with transports of its
// own. One left unused for `max_idle` is closed when met again, or by
// CloseIdle.
class TransportPool {
 public:
  explicit TransportPool(
      std::chrono::seconds max_idle = std::chrono::seconds(60))
      : max_idle_(max_idle) {}

  // A transport to `destination`: an idle one, or a new one.
  StatusOr<std::unique_ptr<Transport>> Take(
      const DestinationConfig& destination);
  // Gives a transport back; `healthy` false (a delivery over it failed)
  // closes it, so the next batch starts on a fresh connection.
  void Give(const std::string& destination,
            std::unique_ptr<Transport> transport, bool healthy);
  // Closes the transports unused for `max_idle` or longer (all of them
  // with zero).
  void CloseIdle(std::chrono::seconds max_idle);
  size_t idle_count();

 private:
  struct Idle {
    std::string destination;
    std::unique_ptr<Transport> transport;
    std::chrono::steady_clock::time_point since;
  };
  // Moves the transports idle for `max_idle` or longer to `stale` (mu_
  // held).
  void MoveStale(std::chrono::seconds max_idle, std::vector<Idle>* stale);

  const std::chrono::seconds max_idle_;
  std::mutex mu_;
  std::vector<Idle> idle_;
};

// Delivers a verified batch: destinations in parallel, files of one
// destination in order over one connection. `replay` sends files again even
// when the ledger has them (a card company lost them).
//
// With `transports`, a destination's transport (and so its connection, for
// SFTP/FTPS/FTP) is taken from there and given back for the next batch;
// without, each batch opens its own.
std::vector<DeliveredFile> DeliverBatch(
    const Config& config, const Batch& batch, DeliveryLedger* ledger, Env* env,
    bool replay, TransportPool* transports = nullptr,
    int64_t claim_lease_ms = kDeliveryClaimLeaseMs);

// Copies an unreadable input to <work_dir>/quarantine/<input_id>/ with a
// reason.txt; the original is left in place. Returns the folder ("" when it
// could not be made). reason.txt names the input as `shown` (masked; the
// path itself when empty).
std::string QuarantineInput(const std::string& work_dir,
                            const std::string& input,
                            const std::string& input_id, const Status& reason,
                            const std::string& shown = "");

class Pipeline {
 public:
  // `env` (not owned) waits between delivery retries.
  Pipeline(const Config& config, DeliveryLedger* ledger, Env* env,
           int64_t now_epoch_seconds);
  InputResult Process(const std::string& input_path);

  // Called with each batch after generation, before verification: the
  // tests' way to corrupt a file in between.
  void SetBeforeVerifyHook(std::function<void(const Batch&)> hook) {
    before_verify_ = std::move(hook);
  }

 private:
  Status Verify(const Batch& batch) const;
  BatchResult Deliver(Batch batch, Status verified);

  const Config& config_;
  DeliveryLedger* ledger_;
  TransportPool transports_;
  Env* env_;
  int64_t now_;
  std::function<void(const Batch&)> before_verify_;
};

}  // namespace cbpipe
