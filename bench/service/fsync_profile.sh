#!/usr/bin/env bash
# Where the fsyncs go: runs bench_service once (INPUTS burst inputs, then
# PACED one at a time) with strace attached to `cbpipe run` and to
# `cbpipe serve`, and prints fsync/fdatasync counts and times per input, by
# file. strace slows each traced call; compare counts, and times only
# between the two sides. Needs root and strace (apt-get install -y strace).
#   bench/service/fsync_profile.sh          # after run.sh has built the binaries
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD_DIR:-build-svcbench}
INPUTS=${INPUTS:-20}
PACED=${PACED:-40}
RECORDS=${RECORDS:-1000}
DATA=${BENCH_DATA_DIR:-$ROOT/bench/data/service-prof}
OUT=$DATA/strace
mkdir -p "$OUT"
rm -rf "$DATA/trial1" "$OUT"/*.txt

"$BUILD/bench/service/bench_service" --cbpipe "$BUILD/src/app/cbpipe" \
  --dir "$DATA" --inputs "$INPUTS" --records "$RECORDS" --trials 1 \
  --paced "$PACED" >"$OUT/bench.txt" 2>&1 &
bench=$!
# Trial 1 runs the peer first, then the service.
attach() {  # side
  local pid=""
  for _ in $(seq 1 12000); do
    pid=$(pgrep -f "cbpipe $1 --config $DATA/trial1/$1.toml" | head -1 || true)
    [[ -n $pid ]] && break
    sleep 0.01
  done
  [[ -n $pid ]] || { echo "fsync_profile: no cbpipe $1 seen" >&2; return 1; }
  strace -f -y -T -e trace=fsync,fdatasync -p "$pid" -o "$OUT/$1.txt" \
    2>/dev/null &
}
attach run
attach serve
wait "$bench" || { cat "$OUT/bench.txt"; exit 1; }
wait

python3 - "$DATA/trial1" "$OUT" "$INPUTS" "$PACED" <<'PY'
import collections, re, sys
trial, out, inputs, paced = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def category(path, work):
    p = path.replace(work, "")
    if "state.db" in p: return "state.db (queue: FULL; run store: NORMAL)"
    if "ledger.db" in p: return "ledger.db (FULL)"
    if p.startswith("/objects"): return "objects/ (input copy and its folder)"
    if p.startswith("/staging"): return "staging/ (generated files, folders)"
    if p.startswith("/batches"): return "batches/ (files, manifests, folders)"
    if p.startswith("/runs"): return "runs/<id>/rejects.csv"
    return p or "work dir"
for side, n in (("run", inputs), ("serve", inputs + paced)):
    count, secs = collections.Counter(), collections.Counter()
    for line in open(f"{out}/{side}.txt"):
        m = re.search(r"(?:fsync|fdatasync)\(\d+<([^>]*)>\).*<([\d.]+)>$", line)
        if not m: continue
        k = category(m.group(1), f"{trial}/{side}-work")
        count[k] += 1
        secs[k] += float(m.group(2))
    print(f"== cbpipe {side}: {n} inputs (strace attached after start)")
    print(f"| {'file':44s} | {'per input':>9s} | {'ms each':>7s} | {'ms/input':>8s} |")
    print(f"| {'---':44s} | {'---:':>9s} | {'---:':>7s} | {'---:':>8s} |")
    for k, v in count.most_common():
        print(f"| {k:44s} | {v/n:9.2f} | {1000*secs[k]/v:7.2f} | {1000*secs[k]/n:8.2f} |")
    total, t = sum(count.values()), sum(secs.values())
    print(f"| {'total':44s} | {total/n:9.2f} | {1000*t/max(total,1):7.2f} | {1000*t/n:8.2f} |\n")
PY
