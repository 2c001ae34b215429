// What the workflow's steps (workflow/steps.h) share for one input on one
// machine: scanning and planning it (named by the run or by the input's
// content), the transports kept between deliveries, and the quarantine of
// an input that cannot be read. `cbpipe run` runs them through the workflow
// engine (workflow/in_process_run.h), `serve` too (workflow/service.h).
//
//   InputScan scan;
//   std::string input_id, rejects;
//   std::vector<Batch> batches;
//   Status st = ScanNamedByContent(config, "/in/cb.csv", now, &scan,
//                                  &input_id, &rejects, &batches);
//
// Rejected records go to <work_dir>/runs/<input_id>/rejects.csv; an input
// that cannot be read at all is copied to <work_dir>/quarantine/<input_id>/
// with its reason, the original kept. A step whose work store is not the
// work folder passes a ScratchFolder as work_dir and Puts what was written.
// Also here: reading a batch's manifest from a store (ReadBatchManifest).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/env.h"
#include "config/config.h"
#include "deliver/deliverer.h"
#include "deliver/transport.h"
#include "ledger/ledger.h"
#include "output/batch_planner.h"
#include "store/object_store.h"
#include "workflow/input_scan.h"

namespace cbpipe {

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
  // Makes a transport when none is idle (MakeTransport by default; tests
  // give scripted ones).
  using Factory = std::function<StatusOr<std::unique_ptr<Transport>>(
      const DestinationConfig&)>;
  explicit TransportPool(
      std::chrono::seconds max_idle = std::chrono::seconds(60),
      Factory make = nullptr)
      : max_idle_(max_idle), make_(std::move(make)) {}

  // A transport to `destination`: an idle one, or a new one (its secrets
  // resolved from `secrets`; null: the env:/file: store).
  StatusOr<std::unique_ptr<Transport>> Take(
      const DestinationConfig& destination, SecretStore* secrets = nullptr);
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
  const Factory make_;
  std::mutex mu_;
  std::vector<Idle> idle_;
};

// Copies an unreadable input to <work_dir>/quarantine/<input_id>/ with a
// reason.txt; the original is left in place. Returns the folder ("" when it
// could not be made). reason.txt names the input as `shown` (masked; the
// path itself when empty).
std::string QuarantineInput(const std::string& work_dir,
                            const std::string& input,
                            const std::string& input_id, const Status& reason,
                            const std::string& shown = "");

// Where an operator finds the object under `key`: its file for a local
// folder (<root>/<key>), else the store's URL and the key
// ("s3://bucket/prefix/batches/b1/manifest.json").
std::string ObjectLocation(const ObjectStore& store, const std::string& key);

// The manifest under `key` in `work`, with the batch's and its files' paths
// as ObjectLocation gives them (for a local folder, as ReadManifest of the
// file: no copy; for another store, read with Get: LocalPath gives a file
// to read). kNotFound when there is no manifest, kDataLoss when it does not
// parse (the message names its location).
StatusOr<Batch> ReadBatchManifest(ObjectStore& work, const std::string& key);

// A private local folder for a step whose work store is not the work
// folder: it writes there as it would in the work folder, Puts what it
// wrote, and the folder goes with this object. <work_dir>/staging/
// pending-store-<name>, emptied when made, so a redrive of the same step
// (same name) starts clean; one a killed process left is cleared by that
// redrive or by RemoveAbandonedPending.
class ScratchFolder {
 public:
  ScratchFolder(const std::string& work_dir, const std::string& name);
  ~ScratchFolder();
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  // Not OK when the folder could not be made (kUnavailable).
  const Status& status() const { return status_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  Status status_;
};

// Removes the pending folders (runs/pending-*, staging/pending-*) that
// scans killed mid-way left in `work_dir` and nobody touched for a day;
// best effort. `cbpipe run` calls it once at its start.
void RemoveAbandonedPending(const std::string& work_dir);

}  // namespace cbpipe
