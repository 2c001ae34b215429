#!/usr/bin/env bash
# S3 object store vs `aws s3 cp`, side by side on one moto server
# (bench/README.md, "bench/aws/s3"). Needs: moto_server and aws on PATH,
# GNU time, the build (cmake --build build --target bench_s3). No root.
#
#   bench/aws/s3/run.sh                  # RUNS=3, 200 MB, 1000 x 100 KB, 1 GB RSS
#   RUNS=5 BIG_MB=200 SMALL=1000 RSS_MB=1024 bench/aws/s3/run.sh
#   PARALLEL_PARTS=8 bench/aws/s3/run.sh   # parts of one put sent at once
set -euo pipefail
cd "$(dirname "$0")/../../.."
BENCH=${BENCH_S3:-build/bench/aws/s3/bench_s3}
RUNS=${RUNS:-3}
BIG_MB=${BIG_MB:-200}
SMALL=${SMALL:-1000}
RSS_MB=${RSS_MB:-1024}
THREADS=${THREADS:-10}   # the CLI's default max_concurrent_requests
export PARALLEL_PARTS=${PARALLEL_PARTS:-4}  # bench_s3: S3StoreOptions::parallel_parts
[[ -x $BENCH ]] || { echo "build bench_s3 first: cmake --build build --target bench_s3" >&2; exit 2; }

WORK=$(mktemp -d /tmp/cbpipe-s3-bench.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; wait $MOTO 2>/dev/null; rm -rf "$WORK"' EXIT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
  AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$PORT"
AWS=(aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3)
for _ in $(seq 100); do
  curl -s -o /dev/null "$AWS_ENDPOINT_URL_S3/" && break
  sleep 0.1
done
aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 mb s3://bench >/dev/null

head -c $((BIG_MB << 20)) /dev/urandom >"$WORK/big"
mkdir -p "$WORK/small"
for i in $(seq -w 1 "$SMALL"); do head -c 102400 /dev/urandom >"$WORK/small/f$i"; done

# seconds of one command
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f", m}'; }
reset_bucket() { "${AWS[@]}" rm --recursive --quiet s3://bench/ >/dev/null; }

declare -A T
measure() {  # name command...
  local name=$1; shift
  local all=()
  for _ in $(seq "$RUNS"); do
    [[ $name == put* ]] && reset_bucket
    all+=("$(secs "$@")")
  done
  T[$name]=$(printf '%s\n' "${all[@]}" | median)
}

rm -rf "$WORK/out"; mkdir -p "$WORK/out"
measure put_big_cbpipe "$BENCH" put "$WORK/big" s3://bench/big/big
measure put_big_aws "${AWS[@]}" cp --quiet "$WORK/big" s3://bench/big/big
measure get_big_cbpipe "$BENCH" get s3://bench/big/big "$WORK/out/big"
cmp -s "$WORK/big" "$WORK/out/big" || { echo "get: bytes differ" >&2; exit 1; }
measure get_big_aws "${AWS[@]}" cp --quiet s3://bench/big/big "$WORK/out/big"
measure put_small_cbpipe "$BENCH" put-dir "$WORK/small" s3://bench/small "$THREADS"
measure put_small_aws "${AWS[@]}" cp --quiet --recursive "$WORK/small" s3://bench/small/
measure get_small_cbpipe "$BENCH" get-dir s3://bench/small "$WORK/out/small" "$THREADS"
cmp -s "$WORK/small/f$(printf "%0${#SMALL}d" 1)" "$WORK/out/small/f$(printf "%0${#SMALL}d" 1)" \
  || { echo "get-dir: bytes differ" >&2; exit 1; }
measure get_small_aws "${AWS[@]}" cp --quiet --recursive s3://bench/small/ "$WORK/out/small"

printf '\n%-28s %10s %10s %8s\n' "S3 on moto (median of $RUNS)" "cbpipe s" "aws s" "ratio"
for op in put_big get_big put_small get_small; do
  c=${T[${op}_cbpipe]}; a=${T[${op}_aws]}
  printf '%-28s %10s %10s %7.2fx\n' "$op" "$c" "$a" "$(echo "$a / $c" | bc -l)"
done
echo "(ratio = aws time / cbpipe time; >= 1.0 means cbpipe is as fast or faster)"
echo "big = 1 x ${BIG_MB} MB ($PARALLEL_PARTS parts at once), small = ${SMALL} x 100 KB ($THREADS threads each)"

# Peak RSS while streaming a large object: flat, a few part sizes.
rm -f "$WORK/big" "$WORK/out/big"; reset_bucket
head -c $((RSS_MB << 20)) /dev/zero >"$WORK/huge"
rss() {  # peak KB of a command; its errors on stderr
  /usr/bin/time -o "$WORK/rss" -f %M "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
  cat "$WORK/rss"
}
put_rss=$(rss "$BENCH" put "$WORK/huge" s3://bench/huge/huge)
rm -f "$WORK/huge"
get_rss=$(rss "$BENCH" get s3://bench/huge/huge "$WORK/huge")
printf '\npeak RSS streaming %d MB: put %d MB, get %d MB (part size 8 MiB, %d parts at once)\n' \
  "$RSS_MB" $((put_rss / 1024)) $((get_rss / 1024)) "$PARALLEL_PARTS"
