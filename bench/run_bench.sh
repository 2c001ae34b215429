#!/usr/bin/env bash
# End-to-end benchmark of `cbpipe run` (file:// destinations) against `cat`
# and a Python reference.
#
#   bench/run_bench.sh                      # 1M records, median of 3 runs
#   RUNS=5 bench/run_bench.sh
#   RECORDS=100000 PY_RUNS=1 SKIP_10X=1 bench/run_bench.sh   # quick look
#
# Generates the samples with `cbpipe gen-sample` into bench/data/ (ignored by
# git), then measures wall time and peak RSS of `cbpipe run --json --work-dir
# DIR FILE` (a fresh, empty work dir for every run, deleted afterwards, so
# each run really validates, generates, verifies and delivers), of `cat FILE
# > /dev/null` and of bench/py_run.py, and prints one table, the ratios
# against the targets, and whether cbpipe and the Python reference accepted
# the same records and wrote the same files. A copy of the report goes to
# bench/results/. Exit status: 0 when the results agree and every target is
# met, 1 otherwise, 2 on a setup error.
#
# Settings (environment):
#   CBPIPE_BIN     cbpipe binary (default build/src/app/cbpipe)
#   RUNS           runs per measurement, median reported (default 3)
#   PY_RUNS        runs of the Python reference (default RUNS; it is slow)
#   RECORDS        records in the 1x sample (default 1000000); 10x is 10 times
#   INVALID_RATIO  share of invalid records (default 0.02)
#   SEED           generator seed of the 1x samples (default 1; 10x: SEED+1)
#   SKIP_10X=1     skip the 10x memory measurement
#   CBPIPE_NOW     the present for date rules (default: now, fixed for the run)
#   PYTHON         Python 3 interpreter (default python3)
#   BENCH_DATA_DIR where samples and the work dirs go (default bench/data)
#   BASELINE_BIN   another cbpipe binary (say, the last release's) measured
#                  side by side: its runs alternate with CBPIPE_BIN's on the
#                  same samples, the report gives the speed ratio (target:
#                  CBPIPE_BIN no more than 5% slower) and checks that both
#                  wrote the same files and the same --json summaries
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CBPIPE_BIN:-$ROOT/build/src/app/cbpipe}
BASELINE=${BASELINE_BIN:-}
RUNS=${RUNS:-3}
PY_RUNS=${PY_RUNS:-$RUNS}
RECORDS=${RECORDS:-1000000}
INVALID_RATIO=${INVALID_RATIO:-0.02}
SEED=${SEED:-1}
SKIP_10X=${SKIP_10X:-0}
PYTHON=${PYTHON:-python3}
DATA=${BENCH_DATA_DIR:-$ROOT/bench/data}
RESULTS=$ROOT/bench/results
GNU_TIME=/usr/bin/time
# One fixed present for the generator, cbpipe and Python: records generated
# as "in the future" must still be in the future when they are validated.
export CBPIPE_NOW=${CBPIPE_NOW:-$(date +%s)}

die() {
  echo "run_bench: $*" >&2
  exit 2
}

[[ -x $BIN ]] || die "no cbpipe binary at $BIN (build it, or set CBPIPE_BIN)"
"$BIN" gen-sample --help >/dev/null 2>&1 ||
  die "$BIN has no gen-sample command"
"$BIN" run --help >/dev/null 2>&1 || die "$BIN has no run command"
if [[ -n $BASELINE ]]; then
  [[ -x $BASELINE ]] || die "no baseline binary at $BASELINE"
  "$BASELINE" run --help >/dev/null 2>&1 || die "$BASELINE has no run command"
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON"
[[ $RUNS =~ ^[1-9][0-9]*$ && $PY_RUNS =~ ^[1-9][0-9]*$ ]] ||
  die "RUNS and PY_RUNS must be positive integers"
[[ $RECORDS =~ ^[1-9][0-9]*$ ]] || die "RECORDS must be a positive integer"
if ! "$GNU_TIME" -f '%e' true >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing GNU time (package 'time') for peak RSS figures" >&2
    apt-get install -y -qq time >/dev/null || die "could not install 'time'"
  else
    die "GNU time is missing: install the 'time' package (apt-get install time)"
  fi
fi

mkdir -p "$DATA" "$RESULTS"
WORK=$(mktemp -d)
# Work dirs of the measured runs live next to the data (same file system as
# a real deployment's work dir, not a tmpfs where fsync is free).
RUN_DIRS=$(mktemp -d "$DATA/run-work.XXXXXX")
trap 'rm -rf "$WORK" "$RUN_DIRS"' EXIT
MEASUREMENTS=$WORK/measurements.tsv
: >"$MEASUREMENTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# measure LABEL RUNS STDOUT_FILE OK_EXIT_CODES FRESH_DIR CMD...
# Runs CMD RUNS times under GNU time, appending "LABEL seconds max_rss_kib
# user_s sys_s" per run to $MEASUREMENTS. The last run's stdout is kept in STDOUT_FILE.
# FRESH_DIR (or "-") is removed before each run, outside the timed region,
# so every run starts from an empty work dir. An exit code not in
# OK_EXIT_CODES (e.g. "0 1") aborts the benchmark.
measure() {
  local label=$1 runs=$2 stdout=$3 ok_codes=$4 fresh=$5
  shift 5
  local i rc start end seconds
  for ((i = 1; i <= runs; i++)); do
    [[ $fresh == - ]] || rm -rf "$fresh"
    sync  # the previous run's dirty pages must not be flushed during this one
    rc=0
    # Wall time from the shell (ns), as GNU time's %e has 10 ms steps; %M is
    # the "Maximum resident set size" of `time -v`, in KiB; %U %S the CPU
    # time, which a busy shared machine distorts less than the wall time.
    start=$(date +%s%N)
    "$GNU_TIME" -f '%M %U %S' -o "$WORK/time" "$@" >"$stdout" || rc=$?
    end=$(date +%s%N)
    if [[ " $ok_codes " != *" $rc "* ]]; then
      echo "run_bench: '$*' exited with $rc" >&2
      [[ -s $stdout ]] && head -c 2000 "$stdout" >&2
      exit 2
    fi
    seconds=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.4f", ns / 1e9 }')
    echo "$label $seconds $(tail -n 1 "$WORK/time")" >>"$MEASUREMENTS"
    printf '  %-28s run %d/%d: %s s\n' "$label" "$i" "$runs" "$seconds" >&2
  done
}

generate() {  # FORMAT RECORDS SEED FILE
  echo "generating $2 records ($1, seed $3) -> $4" >&2
  "$BIN" gen-sample --records "$2" --invalid-ratio "$INVALID_RATIO" \
    --format "$1" --seed "$3" --output "$4" 2>"$WORK/gen.log" ||
    die "gen-sample failed: $(cat "$WORK/gen.log")"
}

# Names of their own: validate_bench.sh regenerates sample_N.* with its own
# CBPIPE_NOW, possibly while this benchmark runs.
CSV=$DATA/run_${RECORDS}.csv
JSONL=$DATA/run_${RECORDS}.jsonl
BIG_RECORDS=$((RECORDS * 10))
BIG_CSV=$DATA/run_${BIG_RECORDS}.csv

# Always regenerated: cheap, and the data must match CBPIPE_NOW.
generate csv "$RECORDS" "$SEED" "$CSV"
generate jsonl "$RECORDS" "$SEED" "$JSONL"
if [[ $SKIP_10X != 1 ]]; then
  # Generated directly (not concatenated): concatenation would repeat every
  # case id and turn the whole second copy into DUPLICATE_CASE rejects.
  generate csv "$BIG_RECORDS" "$((SEED + 1))" "$BIG_CSV"
fi

echo "warming the page cache" >&2
for f in "$CSV" "$JSONL"; do cat "$f" >/dev/null; done

echo "measuring (median of $RUNS runs; Python: $PY_RUNS)" >&2
measure cat_csv "$RUNS" /dev/null "0" - cat "$CSV"
measure cat_jsonl "$RUNS" /dev/null "0" - cat "$JSONL"
# run_cbpipe LABEL BINARY FORMAT FILE: one measured run; its work dir stays
# until the next run of LABEL (the baseline comparison reads it).
run_cbpipe() {
  measure "$1" 1 "$WORK/$1.json" "0" "$RUN_DIRS/$1" \
    "$2" run --json --work-dir "$RUN_DIRS/$1" "$4"
}
for ((i = 1; i <= RUNS; i++)); do
  for fmt in csv jsonl; do
    file=$CSV
    [[ $fmt == jsonl ]] && file=$JSONL
    if [[ -z $BASELINE ]]; then
      run_cbpipe "cbpipe_$fmt" "$BIN" "$fmt" "$file"
    elif ((i % 2)); then  # alternate which goes first
      run_cbpipe "cbpipe_$fmt" "$BIN" "$fmt" "$file"
      run_cbpipe "baseline_$fmt" "$BASELINE" "$fmt" "$file"
    else
      run_cbpipe "baseline_$fmt" "$BASELINE" "$fmt" "$file"
      run_cbpipe "cbpipe_$fmt" "$BIN" "$fmt" "$file"
    fi
  done
done
SAME_OUTPUT=-
if [[ -n $BASELINE ]]; then
  # Same files, names, manifests and rejects (the ledger's timestamps and
  # the work dir's own path aside), and the same --json once the work dir
  # path is taken out.
  SAME_OUTPUT=1
  for fmt in csv jsonl; do
    if ! diff -r -q -x 'ledger.db*' "$RUN_DIRS/cbpipe_$fmt" \
        "$RUN_DIRS/baseline_$fmt" >"$WORK/diff_$fmt" 2>&1; then
      SAME_OUTPUT=0
      head -5 "$WORK/diff_$fmt" >&2
    fi
    if ! diff -q <(sed "s#$RUN_DIRS/cbpipe_$fmt#WORK#g" "$WORK/cbpipe_$fmt.json") \
        <(sed "s#$RUN_DIRS/baseline_$fmt#WORK#g" "$WORK/baseline_$fmt.json") \
        >/dev/null; then
      SAME_OUTPUT=0
      echo "run_bench: --json of $fmt differs from the baseline's" >&2
    fi
  done
fi
measure python_csv "$PY_RUNS" "$WORK/python_csv.json" "0 1" \
  "$RUN_DIRS/python_csv" \
  "$PYTHON" "$ROOT/bench/py_run.py" --json "$CSV" "$RUN_DIRS/python_csv"
measure python_jsonl "$PY_RUNS" "$WORK/python_jsonl.json" "0 1" \
  "$RUN_DIRS/python_jsonl" \
  "$PYTHON" "$ROOT/bench/py_run.py" --json "$JSONL" "$RUN_DIRS/python_jsonl"
if [[ $SKIP_10X != 1 ]]; then
  # The 1x work dirs are no longer needed; the 10x output is ~10 times larger.
  rm -rf "$RUN_DIRS"/*
  cat "$BIG_CSV" >/dev/null
  measure cbpipe_csv_10x "$RUNS" "$WORK/cbpipe_csv_10x.json" "0" \
    "$RUN_DIRS/cbpipe_csv_10x" \
    "$BIN" run --json --work-dir "$RUN_DIRS/cbpipe_csv_10x" "$BIG_CSV"
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

REPORT=$RESULTS/run-$(date -u +%Y%m%dT%H%M%SZ).txt
rc=0
"$PYTHON" - "$WORK" "$MEASUREMENTS" "$CSV" "$JSONL" "$BIG_CSV" \
  "$RECORDS" "$INVALID_RATIO" "$RUNS" "$PY_RUNS" "$SKIP_10X" "$BIN" \
  "$LOAD_BEFORE" "$LOAD_AFTER" "$BASELINE" "$SAME_OUTPUT" \
  <<'PYEOF' | tee "$REPORT" || rc=$?
import json, os, statistics, sys

(work, measurements, csv_path, jsonl_path, big_csv, records, ratio, runs,
 py_runs, skip_10x, binary, load_before, load_after, baseline,
 same_output) = sys.argv[1:]
records = int(records)
big_records = records * 10
with_10x = skip_10x != "1"

runs_by_label = {}
for line in open(measurements):
    label, elapsed, rss, user, system = line.split()
    runs_by_label.setdefault(label, []).append(
        (float(elapsed), int(rss), float(user) + float(system)))

def median(label, index):
    return statistics.median(r[index] for r in runs_by_label[label])

def seconds(label):
    return max(median(label, 0), 1e-4)

def rss_mb(label):
    return median(label, 1) / 1024

size_mb = {p: os.path.getsize(p) / 1e6 for p in (csv_path, jsonl_path)}
if with_10x:
    size_mb[big_csv] = os.path.getsize(big_csv) / 1e6

rows = [  # label, description, file, records (None: reads bytes only)
    ("cat_csv", "cat CSV", csv_path, None),
    ("cat_jsonl", "cat JSONL", jsonl_path, None),
    ("cbpipe_csv", "cbpipe run CSV", csv_path, records),
    ("cbpipe_jsonl", "cbpipe run JSONL", jsonl_path, records),
    ("python_csv", "python reference CSV", csv_path, records),
    ("python_jsonl", "python reference JSONL", jsonl_path, records),
]
if baseline:
    rows[4:4] = [("baseline_csv", "baseline run CSV", csv_path, records),
                 ("baseline_jsonl", "baseline run JSONL", jsonl_path,
                  records)]
if with_10x:
    rows.append(("cbpipe_csv_10x", "cbpipe run CSV 10x", big_csv,
                 big_records))

print(f"cbpipe run benchmark (file:// destinations): {records:,} records "
      f"(10x: {big_records:,}), invalid ratio {ratio}, median of {runs} "
      f"runs (Python: {py_runs})")
print(f"binary {binary}" + (f"; baseline {baseline} (runs alternated)"
                            if baseline else "") + f"; CBPIPE_NOW={os.environ.get('CBPIPE_NOW')}; "
      f"{os.cpu_count()} CPUs; load average before {load_before}, after "
      f"{load_after}")
print()
print(f"{'':24} {'MB':>8} {'seconds':>9} {'records/s':>12} {'MB/s':>9} "
      f"{'vs cat':>8} {'peak RSS MB':>12} {'CPU s':>7}")
rate = {}
mbps = {}
for label, name, path, n in rows:
    s = seconds(label)
    mbps[label] = size_mb[path] / s
    rate[label] = n / s if n else None
    cat = "cat_jsonl" if path == jsonl_path else "cat_csv"
    vs_cat = f"{mbps[label] / mbps[cat]:.3f}" if n else "-"
    print(f"{name:24} {size_mb[path]:8.1f} {s:9.3f} "
          f"{(f'{rate[label]:,.0f}' if n else '-'):>12} {mbps[label]:9.1f} "
          f"{vs_cat:>8} {rss_mb(label):12.1f} {median(label, 2):7.2f}")
print("seconds: median wall time; CPU s: median user+sys time; vs cat: MB/s "
      "relative to cat of the same file")
print()

failures = []

def check(name, value, target, ok, fmt="{:.2f}"):
    verdict = "" if ok is None else ("PASS" if ok else "FAIL")
    if ok is False:
        failures.append(name)
    print(f"{name:44} {fmt.format(value):>12}   {target:22} {verdict}")

print(f"{'ratio':44} {'value':>12}   {'target':22}")
r = rate["cbpipe_csv"]
check("cbpipe run CSV records/s", r, ">= 1,000,000", r >= 1e6, "{:,.0f}")
r = records / max(median("cbpipe_csv", 2), 1e-4)
check("cbpipe run CSV records per CPU second", r, "(info: load-proof)",
      None, "{:,.0f}")
r = rate["cbpipe_jsonl"]
check("cbpipe run JSONL records/s", r, "(info)", None, "{:,.0f}")
r = rate["cbpipe_csv"] / rate["python_csv"]
check("cbpipe / python, CSV records/s", r, ">= 10", r >= 10)
r = rate["cbpipe_jsonl"] / rate["python_jsonl"]
check("cbpipe / python, JSONL records/s", r, "(info)", None)
r = mbps["cbpipe_csv"] / mbps["cat_csv"]
check("cbpipe / cat, CSV MB/s", r, "(info)", None, "{:.3f}")
r = mbps["cbpipe_jsonl"] / mbps["cat_jsonl"]
check("cbpipe / cat, JSONL MB/s", r, "(info)", None, "{:.3f}")
if baseline:
    for fmt in ("csv", "jsonl"):
        r = seconds(f"baseline_{fmt}") / seconds(f"cbpipe_{fmt}")
        check(f"baseline / cbpipe wall time, {fmt.upper()}", r,
              ">= 0.95 (within 5%)", r >= 0.95, "{:.3f}")
        r = median(f"baseline_{fmt}", 2) / max(median(f"cbpipe_{fmt}", 2),
                                                1e-4)
        check(f"baseline / cbpipe CPU time, {fmt.upper()}", r,
              "(info: load-proof)", None, "{:.3f}")
    check("same files and --json as the baseline", int(same_output == "1"),
          "1", same_output == "1", "{}")
if with_10x:
    one, ten = rss_mb("cbpipe_csv"), rss_mb("cbpipe_csv_10x")
    # Flat memory: only the duplicate-case-id set may grow with the input,
    # at most 16 bytes per record (the same bound as validate_bench.sh).
    limit = 1.2 * one + 16 * big_records / 2**20
    check("peak RSS 10x (MB)", ten,
          f"<= 1.2*{one:.0f}+{16 * big_records / 2**20:.0f} = {limit:.0f}",
          ten <= limit, "{:.1f}")
print()

def cbpipe_result(name):
    doc = json.load(open(os.path.join(work, name)))
    i = doc["inputs"][0]
    files = sorted((f["network"], f["records"], f["bytes"], f["sha256"])
                   for b in doc["batches"] for f in b["files"])
    delivered = all(f["status"] == "delivered"
                    for b in doc["batches"] for f in b["files"])
    return ((i["records"], i["accepted"], i["rejected"]), files,
            doc["ok"] and delivered and i["input_error"] is None)

def python_result(name):
    doc = json.load(open(os.path.join(work, name)))
    files = sorted((f["network"], f["records"], f["bytes"], f["sha256"])
                   for f in doc["files"])
    return (doc["records"], doc["accepted"], doc["rejected"]), files

expected_invalid = round(records * float(ratio))
for fmt in ("csv", "jsonl"):
    (c, c_files, ok), (p, p_files) = (cbpipe_result(f"cbpipe_{fmt}.json"),
                                      python_result(f"python_{fmt}.json"))
    agree = c == p
    print(f"{fmt.upper():5} records/accepted/rejected: cbpipe {c[0]}/{c[1]}/"
          f"{c[2]}, python {p[0]}/{p[1]}/{p[2]}, generator made "
          f"{expected_invalid} invalid -> "
          f"{'AGREE' if agree else 'DISAGREE'}")
    if not agree:
        failures.append(f"{fmt} counts disagree")
    elif c[2] != expected_invalid:
        print(f"      note: rejected != generated invalid count")
        failures.append(f"{fmt} rejected count")
    same = c_files == p_files
    print(f"      files: cbpipe {len(c_files)} ({sum(f[1] for f in c_files)} "
          f"rows), python {len(p_files)} ({sum(f[1] for f in p_files)} "
          f"rows) -> {'IDENTICAL (SHA-256)' if same else 'DIFFER'}"
          f"{'' if ok else '; cbpipe run NOT ok (see its --json)'}")
    if not same:
        failures.append(f"{fmt} files differ")
    if not ok:
        failures.append(f"{fmt} cbpipe run not ok")
    if sum(f[1] for f in c_files) != c[1]:
        failures.append(f"{fmt} rows written != accepted")
if with_10x:
    c, c_files, ok = cbpipe_result("cbpipe_csv_10x.json")
    print(f"10x   records/accepted/rejected: cbpipe {c[0]}/{c[1]}/{c[2]} "
          f"(generator made {round(big_records * float(ratio))} invalid), "
          f"{len(c_files)} files, {sum(f[1] for f in c_files)} rows"
          f"{'' if ok else '; cbpipe run NOT ok'}")
    if not ok or sum(f[1] for f in c_files) != c[1]:
        failures.append("10x run")
print()
print("RESULT:", "all targets met, results agree" if not failures
      else "FAILED: " + "; ".join(failures))
sys.exit(1 if failures else 0)
PYEOF
echo "report saved to $REPORT" >&2
exit "$rc"
