#include "common/retry.h"

#include <algorithm>
#include <cmath>

namespace cbpipe {

double RetryDelaySeconds(const RetryPolicy& p, int attempt, double random01) {
  double delay =
      p.interval_seconds * std::pow(p.backoff_rate, std::max(0, attempt - 1));
  if (p.max_delay_seconds > 0) delay = std::min(delay, p.max_delay_seconds);
  if (p.full_jitter) delay *= random01;
  return std::max(0.0, delay);
}

}  // namespace cbpipe
