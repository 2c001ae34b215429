// The claim rule both ports with a claim (runs/run_store.h,
// ledger/ledger.h) state, for adapters that keep claims in memory: one
// owner at a time; a claim lasts until now + lease_ms and is free again
// exactly then (until <= now), never sooner; only the holder renews or
// releases it. SQL adapters write the same rule as one conditional UPDATE.
//
//   Lease& lease = claims_[key];                 // a free lease to start
//   if (!lease.Take(owner, env_->NowMs(), lease_ms)) return false;
#pragma once

#include <cstdint>
#include <string>

namespace cbpipe {

struct Lease {
  std::string owner;  // "" when free
  int64_t until_ms = 0;

  // Takes the lease when free, already `owner`'s (extending it) or run out.
  bool Take(const std::string& by, int64_t now_ms, int64_t lease_ms) {
    if (!owner.empty() && owner != by && until_ms > now_ms) return false;
    owner = by;
    until_ms = now_ms + lease_ms;
    return true;
  }
  // Extends it while `by` holds it (also after it ran out, while nobody
  // took it since).
  bool Renew(const std::string& by, int64_t now_ms, int64_t lease_ms) {
    if (owner != by) return false;
    until_ms = now_ms + lease_ms;
    return true;
  }
  // Frees it when `by` holds it.
  void Release(const std::string& by) {
    if (owner != by) return;
    owner.clear();
    until_ms = 0;
  }
};

}  // namespace cbpipe
