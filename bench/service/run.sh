#!/usr/bin/env bash
# Service-mode benchmark: N inputs of M records dropped into the inbox of
# `cbpipe serve` and delivered to a local SFTP server (OpenSSH sshd), against
# `cbpipe run` on the same inputs (the peer), plus the SQLite queue's
# operations per second (bench_queue). Needs root (it starts sshd).
#
#   bench/service/run.sh                 # 1000 x 1000 records, 3 trials
#   QUICK=1 bench/service/run.sh         # 50 x 200 records, to see it works
#   INPUTS=200 RECORDS=1000 TRIALS=5 bench/service/run.sh
#   CONSOLE=1 bench/service/run.sh       # also serve with the console open
#
# Settings (environment): INPUTS (1000; QUICK 50), RECORDS (1000; QUICK 200),
# TRIALS (3), PACED (inputs timed one at a time after the burst; 20),
# WORKERS (2), SETTLE_MS (20), POLL_MS (20), QUEUE_MESSAGES (2000; QUICK
# 500), BUILD_DIR (build-svcbench), SKIP_BUILD=1 (use the binaries there),
# BENCH_DATA_DIR (bench/data/service: inputs, work dirs, logs; on the disk),
# CONSOLE=1: each trial also runs serve with the operations console open in
# headless chromium (bench/service/console_open.mjs; needs scripts/bootstrap's
# chromium and console/node_modules) and reports the two side by side.
# The report goes to stdout and to bench/results/service-<time>.txt.
# Exit status: 0 when serve and run delivered the same files, 1 if not,
# 2 on a setup error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  INPUTS=${INPUTS:-50}
  RECORDS=${RECORDS:-200}
  QUEUE_MESSAGES=${QUEUE_MESSAGES:-500}
fi
INPUTS=${INPUTS:-1000}
RECORDS=${RECORDS:-1000}
TRIALS=${TRIALS:-3}
PACED=${PACED:-20}
WORKERS=${WORKERS:-2}
SETTLE_MS=${SETTLE_MS:-20}
POLL_MS=${POLL_MS:-20}
QUEUE_MESSAGES=${QUEUE_MESSAGES:-2000}
BUILD=${BUILD_DIR:-build-svcbench}
DATA=${BENCH_DATA_DIR:-$ROOT/bench/data/service}

if [[ $(id -u) != 0 ]]; then
  echo "run.sh: needs root (it starts sshd as a test server)" >&2
  exit 2
fi
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  # bench/service/wire.cmake defines the target when bench/service is not
  # (yet) added by the project's CMakeLists.
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PROJECT_INCLUDE="$ROOT/bench/service/wire.cmake" >/dev/null
  cmake --build "$BUILD" -j2 --target cbpipe bench_service bench_queue \
    >/dev/null
fi
CBPIPE=$BUILD/src/app/cbpipe
BENCH_SERVICE=$BUILD/bench/service/bench_service
BENCH_QUEUE=$BUILD/src/queue/bench_queue
for bin in "$CBPIPE" "$BENCH_SERVICE" "$BENCH_QUEUE"; do
  [[ -x $bin ]] || { echo "run.sh: $bin not built" >&2; exit 2; }
done

mkdir -p "$DATA" bench/results
REPORT=bench/results/service-$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "# bench/service/run.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$REPORT"

console_args=()
if [[ ${CONSOLE:-0} == 1 ]]; then
  [[ -d console/node_modules/playwright-core ]] || {
    echo "run.sh: CONSOLE=1 needs console/node_modules (scripts/bootstrap)" >&2
    exit 2
  }
  console_args=(--console bench/service/console_open.mjs --node "$(command -v node)")
fi
status=0
"$BENCH_SERVICE" "${console_args[@]}" --cbpipe "$CBPIPE" --dir "$DATA" --inputs "$INPUTS" \
  --records "$RECORDS" --trials "$TRIALS" --paced "$PACED" \
  --workers "$WORKERS" --settle-ms "$SETTLE_MS" --poll-ms "$POLL_MS" \
  | tee -a "$REPORT" || status=$?
[[ $status -ne 0 && $status -ne 1 ]] && exit "$status"

{
  echo
  echo "== SQLite queue (bench_queue --messages $QUEUE_MESSAGES, file in $DATA); 3 runs"
  for run in 1 2 3; do
    echo
    "$BENCH_QUEUE" --messages "$QUEUE_MESSAGES" --dir "$DATA"
  done
} | tee -a "$REPORT"
echo
echo "report: $REPORT"
exit "$status"
