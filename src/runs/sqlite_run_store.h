// The RunStore adapter on SQLite (runs/run_store.h has the contract): the
// `runs` and `steps` tables of the service's state.db. Several processes may
// share the file (WAL, busy timeout); the claim is one conditional UPDATE,
// so it holds across processes.
//
//   CBPIPE_ASSIGN_OR_RETURN(std::unique_ptr<RunStore> runs,
//       SqliteRunStore::Open(work_dir + "/state.db", Env::Default()));
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/env.h"
#include "runs/run_store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cbpipe {

class SqliteRunStore : public RunStore {
 public:
  // Opens (creating) the database at `path`; files written by earlier
  // versions are upgraded in place. `env` (not owned) is the clock.
  static StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path,
                                                  Env* env);
  ~SqliteRunStore() override;

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
  SqliteRunStore(sqlite3* db, Env* env) : db_(db), env_(env) {}
  Status Exec(const char* sql);
  // The trigram index of input names (runs_by_name), made if absent.
  Status CreateNameIndex();
  // Whether `filter`'s input_contains is best answered from runs_by_name:
  // indexable, and held by few enough runs (else the ordered scan is
  // faster). Called under mu_.
  StatusOr<bool> UseNameIndex(const RunFilter& filter);

  std::mutex mu_;  // one connection, one statement at a time
  sqlite3* db_;
  // Get's two statements, prepared once (under mu_): the console's
  // overview and charts read thousands of runs per request.
  sqlite3_stmt* get_run_ = nullptr;
  sqlite3_stmt* get_steps_ = nullptr;
  Env* env_;
  bool has_name_index_ = false;  // runs_by_name exists (FTS5 with trigram)
};

}  // namespace cbpipe
