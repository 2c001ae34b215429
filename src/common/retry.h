// The retry policy every retry loop follows: deliveries, workflow steps and
// notifications. Step Functions semantics, so the same policy can be handed
// to an AWS Step Functions Retry rule.
//
//   RetryPolicy policy;  // 5 attempts, 1 s doubling, capped at 60 s, jitter
//   for (int attempt = 1;; ++attempt) {
//     Status s = TryOnce();
//     if (s.ok() || attempt >= policy.max_attempts) return s;
//     if (!env->SleepFor(RetryDelaySeconds(policy, attempt, env->Random01()),
//                      &stop))
//       return s;  // stopped
//   }
#pragma once

namespace cbpipe {

struct RetryPolicy {
  // Step Functions semantics: attempt n (1-based) waits
  // min(interval * rate^(n-1), max_delay) before the next, scaled by a random
  // factor in [0, 1) when jitter is FULL.
  double interval_seconds = 1.0;
  double backoff_rate = 2.0;
  int max_attempts = 5;  // total attempts, including the first
  double max_delay_seconds = 60.0;
  bool full_jitter = true;
};

// The wait before attempt `attempt + 1` after `attempt` (1-based) failed:
// min(interval * rate^(attempt-1), max_delay), times `random01` (in [0, 1))
// under FULL jitter. Never negative.
double RetryDelaySeconds(const RetryPolicy& policy, int attempt,
                         double random01);

}  // namespace cbpipe
