// The RunStore adapter in memory (runs/run_store.h has the contract): for
// `cbpipe run`, which needs no state across processes, and for tests. It
// keeps nothing when destroyed.
//
//   InMemoryRunStore runs(Env::Default());
//   CBPIPE_ASSIGN_OR_RETURN(bool created, runs.CreateIfAbsent(run));
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/lease.h"
#include "runs/run_store.h"

namespace cbpipe {

class InMemoryRunStore : public RunStore {
 public:
  // `env` (not owned) is the clock.
  explicit InMemoryRunStore(Env* env) : env_(env) {}

  StatusOr<bool> CreateIfAbsent(const RunRecord& run) override;
  StatusOr<RunRecord> Get(const std::string& run_id) override;
  StatusOr<std::vector<RunRecord>> List(const RunFilter& filter, int limit,
                                        int offset) override;
  StatusOr<int64_t> Count(const RunFilter& filter) override;
  Status SaveStep(const std::string& run_id, const StepRecord& step) override;
  Status SetState(const std::string& run_id, const std::string& state,
                  const std::string& current_step,
                  const std::string& error) override;
  StatusOr<bool> Claim(const std::string& run_id, const std::string& owner,
                       int64_t lease_ms) override;
  StatusOr<bool> RenewClaim(const std::string& run_id, const std::string& owner,
                            int64_t lease_ms) override;
  Status ReleaseClaim(const std::string& run_id,
                      const std::string& owner) override;

 private:
  struct Entry {
    RunRecord run;  // without steps
    Lease claim;
  };

  std::mutex mu_;
  Env* env_;
  std::map<std::string, Entry> runs_;  // by run id
  // By run id, in the order they first ran; apart from runs_ because a step
  // may be saved before its run is created (as in SQLite).
  std::map<std::string, std::vector<StepRecord>> steps_;
};

}  // namespace cbpipe
