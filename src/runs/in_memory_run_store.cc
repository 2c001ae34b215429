#include "runs/in_memory_run_store.h"

#include <algorithm>

namespace cbpipe {

StatusOr<bool> InMemoryRunStore::CreateIfAbsent(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  if (runs_.count(run.run_id) > 0) return false;
  Entry entry;
  entry.run = run;
  entry.run.steps.clear();
  entry.run.error.clear();
  if (entry.run.created_ms == 0) entry.run.created_ms = env_->NowMs();
  entry.run.updated_ms = entry.run.created_ms;
  runs_.emplace(run.run_id, std::move(entry));
  return true;
}

StatusOr<RunRecord> InMemoryRunStore::Get(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return NotFoundError("no run " + run_id);
  RunRecord run = it->second.run;
  auto steps = steps_.find(run_id);
  if (steps != steps_.end()) run.steps = steps->second;
  return run;
}

StatusOr<std::vector<RunRecord>> InMemoryRunStore::List(
    const RunFilter& filter, int limit, int offset) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RunRecord> runs;
  for (const auto& [id, entry] : runs_) {
    if (filter.Matches(entry.run)) runs.push_back(entry.run);
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunRecord& a, const RunRecord& b) {
              if (a.created_ms != b.created_ms)
                return a.created_ms > b.created_ms;
              return a.run_id < b.run_id;
            });
  // SQLite's LIMIT and OFFSET: a negative limit means no limit.
  const size_t begin =
      std::min(runs.size(), static_cast<size_t>(std::max(offset, 0)));
  const size_t end =
      limit < 0 ? runs.size()
                : std::min(runs.size(), begin + static_cast<size_t>(limit));
  return std::vector<RunRecord>(runs.begin() + begin, runs.begin() + end);
}

StatusOr<int64_t> InMemoryRunStore::Count(const RunFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(
      std::count_if(runs_.begin(), runs_.end(), [&](const auto& item) {
        return filter.Matches(item.second.run);
      }));
}

Status InMemoryRunStore::SaveStep(const std::string& run_id,
                                  const StepRecord& step) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StepRecord>& steps = steps_[run_id];
  for (StepRecord& saved : steps) {
    if (saved.name == step.name) {
      saved = step;
      return OkStatus();
    }
  }
  steps.push_back(step);
  return OkStatus();
}

Status InMemoryRunStore::SetState(const std::string& run_id,
                                  const std::string& state,
                                  const std::string& current_step,
                                  const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return NotFoundError("no run " + run_id);
  RunRecord& run = it->second.run;
  run.state = state;
  run.current_step = current_step;
  run.error = error;
  run.updated_ms = env_->NowMs();
  return OkStatus();
}

StatusOr<bool> InMemoryRunStore::Claim(const std::string& run_id,
                                       const std::string& owner,
                                       int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return NotFoundError("no run " + run_id);
  return it->second.claim.Take(owner, env_->NowMs(), lease_ms);
}

StatusOr<bool> InMemoryRunStore::RenewClaim(const std::string& run_id,
                                            const std::string& owner,
                                            int64_t lease_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  return it != runs_.end() &&
         it->second.claim.Renew(owner, env_->NowMs(), lease_ms);
}

Status InMemoryRunStore::ReleaseClaim(const std::string& run_id,
                                      const std::string& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it != runs_.end()) it->second.claim.Release(owner);
  return OkStatus();
}

}  // namespace cbpipe
