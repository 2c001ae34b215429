// Durable workflow state (SQLite): one run per input, one checkpoint per
// step. A restarted process reads the checkpoints and resumes each
// unfinished run after its last completed step.
//
//   auto store = RunStore::Open(work_dir + "/state.db");
//   (*store)->CreateIfAbsent({.run_id = id, .input_key = key, ...});
//   (*store)->SaveStep(id, {.name = "validate", .state = "succeeded",
//                           .output_json = out.dump()});
//
// Thread safety: every method may be called from several threads; several
// processes may share the file (WAL, busy timeout).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace cbpipe {

// Run states: "queued" (created, not started), "running", "succeeded",
// "failed" (a step failed; the run is a dead letter until redriven),
// "rejected" (the input cannot be read or is over one of its limits:
// quarantined, not redrivable).
struct StepRecord {
  std::string name;
  std::string state;  // "succeeded" or "failed"
  int attempts = 0;
  std::string output_json;  // the step's output (ids, keys, counts)
  std::string error;        // the last error when failed
  int64_t started_ms = 0, finished_ms = 0;
};

struct RunRecord {
  std::string run_id;     // the input id: first 16 hex of its SHA-256
  std::string input_key;  // object store key of the raw input
  std::string input_name; // file name as it arrived
  std::string trace_id;   // W3C trace id (32 hex)
  std::string state = "queued";
  std::string current_step;  // the next step to run ("" when finished)
  std::string error;
  int64_t created_ms = 0, updated_ms = 0;
  std::vector<StepRecord> steps;  // filled by Get(), in execution order
};

class RunStore {
 public:
  static StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path);
  ~RunStore();

  // Inserts `run` unless a run with its id exists. Returns true when
  // inserted.
  StatusOr<bool> CreateIfAbsent(const RunRecord& run);
  // The run with its steps; kNotFound when unknown.
  StatusOr<RunRecord> Get(const std::string& run_id);
  // Runs newest first, optionally only those in `state`; without steps.
  StatusOr<std::vector<RunRecord>> List(const std::string& state, int limit,
                                        int offset);
  StatusOr<int64_t> Count(const std::string& state);
  // Checkpoints one step (replacing an earlier record of the same step).
  Status SaveStep(const std::string& run_id, const StepRecord& step);
  // Moves a run to `state` with `current_step` next and `error`.
  Status SetState(const std::string& run_id, const std::string& state,
                  const std::string& current_step, const std::string& error);

  // Execution claims: a run is executed by at most one worker at a time.
  // Claim takes the run for `owner` (unique per worker and attempt) until
  // now + lease_ms when nobody holds it or the holder's lease ran out; it
  // is one conditional UPDATE, so of two workers (or processes) racing for
  // a run exactly one gets true. kNotFound for an unknown run.
  StatusOr<bool> Claim(const std::string& run_id, const std::string& owner,
                       int64_t lease_ms);
  // Extends `owner`'s claim to now + lease_ms. False when `owner` does not
  // hold the run any more (another worker claimed it after the lease ran
  // out): the caller must stop working on it.
  StatusOr<bool> RenewClaim(const std::string& run_id, const std::string& owner,
                            int64_t lease_ms);
  // Gives the claim up (a no-op when `owner` does not hold it).
  Status ReleaseClaim(const std::string& run_id, const std::string& owner);

 private:
  explicit RunStore(sqlite3* db) : db_(db) {}
  Status Exec(const char* sql);
  std::mutex mu_;
  sqlite3* db_;
};

int64_t NowMs();

}  // namespace cbpipe
