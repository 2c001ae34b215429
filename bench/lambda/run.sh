#!/usr/bin/env bash
# The packaged Lambda function on 1M records, its cold start, and the cost
# of 1M chargebacks on AWS against the Python reference (bench/README.md,
# "lambda/"). Needs: the build (cbpipe, bench_lambda), moto_server, zip,
# unzip, Python 3 with boto3 (bench/lambda/py_steps.py); root for the
# memory cgroups (without them the runs are unlimited and say so).
#
#   bench/lambda/run.sh              # RECORDS=1000000 RUNS=3 COLD_STARTS=20
#   RECORDS=100000 RUNS=1 bench/lambda/run.sh      # a quick look
#   bench/lambda/run.sh --smoke      # 300 records, 1 run: the CTest smoke test
#
# Settings: CBPIPE_BIN, BENCH_LAMBDA, RECORDS, RUNS (executions on the
# function, and of the Python steps), COLD_STARTS (per handler), MEMORY_MB (the
# ladder each invocation climbs, default 128,256,512), PY_MEMORY_MB (the
# Python steps' one, default 128,256,512,1024,1536,2048,3008), CBPIPE_NOW,
# BENCH_DATA_DIR, PYTHON.
# Exit status: 0 when every run completed and every target is met, 1
# otherwise (--smoke: when every run completed), 2 on a setup error.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${CBPIPE_BIN:-build/src/app/cbpipe}
BENCH=${BENCH_LAMBDA:-build/bench/lambda/bench_lambda}
# The interpreter itself, not a pyenv shim (a shell script that costs
# hundreds of ms per start and would be counted in the import cost).
PYTHON=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
RECORDS=${RECORDS:-1000000}
RUNS=${RUNS:-3}
COLD=${COLD_STARTS:-20}
MEMORY=${MEMORY_MB:-128,256,512}
PY_MEMORY=${PY_MEMORY_MB:-128,256,512,1024,1536,2048,3008}
SMOKE=0
if [[ ${1:-} == --smoke ]]; then
  SMOKE=1 RECORDS=300 RUNS=1 COLD=2
fi
NOW=${CBPIPE_NOW:-$(date +%s)}
die() { echo "bench/lambda: $*" >&2; exit 2; }
[[ -x $BIN ]] || die "no cbpipe at $BIN (cmake --build build)"
[[ -x $BENCH ]] || die "no bench_lambda at $BENCH (cmake --build build --target bench_lambda)"
"$PYTHON" -c 'import boto3' 2>/dev/null || die "needs boto3 for $PYTHON"
command -v unzip >/dev/null || die "needs unzip"

WORK=$(mktemp -d /tmp/cbpipe-lambda-bench.XXXXXX)
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

# The package, as deployed: the zip unpacked into an empty folder.
scripts/package-lambda --binary "$BIN" --output "$WORK/cbpipe-lambda.zip" \
  >"$WORK/package.log" 2>&1 || die "package-lambda failed: $(cat "$WORK/package.log")"
mkdir "$WORK/task"
(cd "$WORK/task" && unzip -q ../cbpipe-lambda.zip)

# The sample (2% invalid records), dated against NOW for both sides.
if ((SMOKE)); then DATA=$WORK; else DATA=${BENCH_DATA_DIR:-$ROOT/bench/data}/lambda; fi
mkdir -p "$DATA"
CSV=$DATA/lambda_$RECORDS.csv
CBPIPE_NOW=$NOW "$BIN" gen-sample --records "$RECORDS" --invalid-ratio 0.02 \
  --seed 1 --output "$CSV" 2>"$WORK/gen.log" || die "gen-sample failed: $(cat "$WORK/gen.log")"

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=$WORK/results.jsonl
echo "{\"kind\":\"setup\",\"records\":$RECORDS,\"runs\":$RUNS,\"cold_starts\":$COLD,\"load_before\":\"$LOAD_BEFORE\",\"input_bytes\":$(stat -c %s "$CSV"),\"started\":\"$(date -u +%FT%TZ)\"}" >"$OUT"

# 1-3. The function: RUNS executions, each invocation at the smallest size
# of the ladder where it completes; then the Python reference as Lambda
# steps (py_steps.py: boto3 on the same moto, one interpreter per
# invocation), RUNS executions up its own ladder; then the cold starts.
rc=0
"$BENCH" --package "$WORK/task" --input "$CSV" --out "$WORK/lambda" \
  --now-ms "${NOW}000" --executions "$RUNS" --memory-mb "$MEMORY" \
  --python "$PYTHON" --python-steps bench/lambda/py_steps.py \
  --python-executions "$RUNS" --python-memory-mb "$PY_MEMORY" \
  --cold-starts "$COLD" >>"$OUT" 2>"$WORK/bench.log" || rc=$?
((rc == 2)) && die "bench_lambda: $(tail -5 "$WORK/bench.log")"

# The Python side's init alone: the interpreter, and the interpreter with
# py_steps.py's imports (boto3, the reference's modules), as its cold
# start; part of every Python invocation's duration above.
IMPORTS='import sys; sys.path.insert(0, "bench/lambda"); import py_steps'
for i in $(seq "$COLD"); do
  for what in bare imports; do
    code='pass'; [[ $what == imports ]] && code=$IMPORTS
    t0=$(date +%s%N)
    "$PYTHON" -c "$code" || die "python3 -c '$code' failed"
    t1=$(date +%s%N)
    echo "{\"kind\":\"python_cold\",\"what\":\"$what\",\"ms\":$(((t1 - t0) / 1000))e-3}" >>"$OUT"
  done
done
echo "{\"kind\":\"done\",\"load_after\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"finished\":\"$(date -u +%FT%TZ)\"}" >>"$OUT"

# 4-5. The tables, the cost and the targets.
args=(--asl deploy/aws/cbpipe.asl.json)
((SMOKE)) && args+=(--smoke)
report_rc=0
"$PYTHON" bench/lambda/report.py "${args[@]}" "$OUT" >"$WORK/report.txt" || report_rc=$?
cat "$WORK/report.txt"
if ((!SMOKE)); then
  mkdir -p bench/results
  cp "$OUT" "bench/results/lambda-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
  cp "$WORK/report.txt" "bench/results/lambda-$(date -u +%Y%m%dT%H%M%SZ).txt"
fi
((report_rc == 2)) && exit 2
((rc == 0 && report_rc == 0)) || exit 1
