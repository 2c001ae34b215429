// The RunStore port: durable workflow state, one run per input and one
// checkpoint per step, plus the execution claim that lets at most one worker
// (thread or process, on one machine or many) execute a run at a time.
// Adapters: SqliteRunStore (sqlite_run_store.h: `serve`, several processes
// on one file) and InMemoryRunStore (in_memory_run_store.h: `run`, tests);
// a DynamoDB adapter will implement the same interface.
//
//   auto store = SqliteRunStore::Open(work_dir + "/state.db", Env::Default());
//   CBPIPE_ASSIGN_OR_RETURN(bool created, (*store)->CreateIfAbsent(
//       {.run_id = id, .input_key = key, .current_step = "scan"}));
//   CBPIPE_ASSIGN_OR_RETURN(bool mine, (*store)->Claim(id, owner, 60'000));
//   if (!mine) return OkStatus();             // another worker has it
//   ... run a step; before the lease runs out:
//   CBPIPE_ASSIGN_OR_RETURN(bool still, (*store)->RenewClaim(id, owner,
//   60'000)); if (!still) return AbortedError("claim lost");   // stop at once
//   CBPIPE_RETURN_IF_ERROR((*store)->SaveStep(id, {.name = "scan",
//       .state = "succeeded", .output_json = out.dump()}));
//   CBPIPE_RETURN_IF_ERROR((*store)->ReleaseClaim(id, owner));
//
// Run states: "queued" (created, not started), "running", "succeeded",
// "failed" (a step failed; a dead letter until redriven), "rejected" (the
// input cannot be read or is over one of its limits: quarantined, not
// redrivable). The store keeps whatever state string it is given.
//
// Checkpoints: SaveStep keeps one record per (run, step name); saving a
// step again replaces its record but keeps its place in the order, so Get
// returns the steps in the order they first ran.
//
// The claim (a conditional write, atomic in every adapter):
// - Claim(run, owner, lease) succeeds when nobody holds the run, `owner`
//   holds it already (the lease is extended), or the holder's lease has run
//   out: claim_until <= now. Of several owners racing, exactly one wins.
// - A claim lasts until now + lease_ms by the adapter's Env clock: it
//   expires exactly then and never sooner, even when its holder died.
// - RenewClaim extends the lease only while `owner` still holds the run
//   (also after its lease ran out, as long as nobody else claimed it since);
//   false means someone else holds it: the caller must stop working on it.
// - ReleaseClaim frees the run at once; a no-op when `owner` does not hold
//   it. Claims do not change the run's state or steps.
// Owners are opaque strings, unique per worker and attempt (never empty).
//
// Errors (every method): kNotFound for an unknown run where stated;
// kUnavailable when the store is busy (retry); kInternal otherwise.
// Thread safety: every method may be called from several threads at once.
// Ownership: results are plain values owned by the caller; the store does
// not own its Env, which must outlive it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace cbpipe {

struct StepRecord {
  std::string name;
  std::string state;  // "succeeded" or "failed"
  int attempts = 0;
  std::string output_json;  // the step's output (ids, keys, counts)
  std::string error;        // the last error when failed
  int64_t started_ms = 0, finished_ms = 0;
};

struct RunRecord {
  std::string run_id;      // the input id: first 16 hex of its SHA-256
  std::string input_key;   // object store key of the raw input
  std::string input_name;  // file name as it arrived
  std::string trace_id;    // W3C trace id (32 hex)
  std::string state = "queued";
  std::string current_step;  // the next step to run ("" when finished)
  std::string error;
  int64_t created_ms = 0, updated_ms = 0;
  std::vector<StepRecord> steps;  // filled by Get(), in execution order
};

// Which runs List and Count see; every field optional (empty: all runs).
struct RunFilter {
  // (The {} initializers let `{.state = "failed"}` name only some fields.)
  std::string state{};  // exactly this state ("" for any)
  // A substring of input_name, ASCII case-insensitive ("" for any).
  std::string input_contains{};
  std::optional<int64_t> from_ms{};  // created_ms >= from_ms
  std::optional<int64_t> to_ms{};    // created_ms < to_ms

  // What every adapter applies (the SQLite one in SQL, to the same effect).
  bool Matches(const RunRecord& run) const {
    if (!state.empty() && run.state != state) return false;
    if (from_ms && run.created_ms < *from_ms) return false;
    if (to_ms && run.created_ms >= *to_ms) return false;
    if (input_contains.empty()) return true;
    auto lower = [](char c) {
      return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    };
    const std::string_view name = run.input_name;
    return std::search(name.begin(), name.end(), input_contains.begin(),
                       input_contains.end(), [&](char a, char b) {
                         return lower(a) == lower(b);
                       }) != name.end();
  }
};

class RunStore {
 public:
  virtual ~RunStore() = default;

  // Inserts `run` (without its steps; created_ms 0 means now, updated_ms is
  // set to created_ms) unless a run with its id exists. True when inserted.
  virtual StatusOr<bool> CreateIfAbsent(const RunRecord& run) = 0;
  // The run with its steps; kNotFound when unknown.
  virtual StatusOr<RunRecord> Get(const std::string& run_id) = 0;
  // The runs `filter` matches, newest first (created_ms descending, then
  // run_id ascending), `limit` of them (negative: all) after skipping
  // `offset`; without steps. The SQLite adapter answers a state and/or
  // created_ms range from indexes (docs/service.md has the figures for
  // 100,000 runs) and input_contains from a trigram index where few runs
  // match (sqlite_run_store.cc).
  virtual StatusOr<std::vector<RunRecord>> List(const RunFilter& filter,
                                                int limit, int offset) = 0;
  // How many runs `filter` matches.
  virtual StatusOr<int64_t> Count(const RunFilter& filter) = 0;
  // Checkpoints one step (replacing an earlier record of the same step).
  // Does not check that the run exists.
  virtual Status SaveStep(const std::string& run_id,
                          const StepRecord& step) = 0;
  // Moves a run to `state` with `current_step` next and `error`; sets
  // updated_ms to now. kNotFound for an unknown run.
  virtual Status SetState(const std::string& run_id, const std::string& state,
                          const std::string& current_step,
                          const std::string& error) = 0;

  // The claim, as described above. Claim: kNotFound for an unknown run.
  virtual StatusOr<bool> Claim(const std::string& run_id,
                               const std::string& owner, int64_t lease_ms) = 0;
  virtual StatusOr<bool> RenewClaim(const std::string& run_id,
                                    const std::string& owner,
                                    int64_t lease_ms) = 0;
  virtual Status ReleaseClaim(const std::string& run_id,
                              const std::string& owner) = 0;
};

}  // namespace cbpipe
