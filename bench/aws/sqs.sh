#!/usr/bin/env bash
# SQS messages per second: SqsQueue (bench_sqs) vs the `aws sqs` CLI in a
# loop, against one moto server started here. No root needed.
#   bench/aws/sqs.sh [BUILD_DIR] [N] [CLI_N]
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000}
CLI_N=${3:-20}
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
LOG=$(mktemp)
moto_server -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; wait $MOTO 2>/dev/null; rm -f "$LOG"' EXIT
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
EP=http://127.0.0.1:$PORT
for _ in $(seq 100); do
  curl -s -o /dev/null "$EP/moto-api/" && break
  sleep 0.1
done

"$BUILD/src/queue/bench_sqs" "$EP" "$N" | tee /tmp/bench_sqs.$$
ours=$(awk '/^sqs single/ {print $6, $8}' /tmp/bench_sqs.$$)
rm -f /tmp/bench_sqs.$$

aws="aws --endpoint-url $EP --output text"
URL=$($aws sqs create-queue --queue-name cli-bench --query QueueUrl)
start=$(date +%s.%N)
for i in $(seq "$CLI_N"); do
  $aws sqs send-message --queue-url "$URL" --message-body "m$i" >/dev/null
done
mid=$(date +%s.%N)
for i in $(seq "$CLI_N"); do
  r=$($aws sqs receive-message --queue-url "$URL" --visibility-timeout 60 \
      --query 'Messages[0].ReceiptHandle')
  $aws sqs delete-message --queue-url "$URL" --receipt-handle "$r"
done
end=$(date +%s.%N)
python3 - "$CLI_N" "$start" "$mid" "$end" $ours <<'PY'
import sys
n, start, mid, end, send, recv = int(sys.argv[1]), *map(float, sys.argv[2:])
cli_send = n / (mid - start)
cli_recv = n / (end - mid)
print(f"aws-cli messages {n} send/s {cli_send:.1f} receive+delete/s {cli_recv:.1f}")
print(f"ratio (cbpipe single / aws-cli): send {send / cli_send:.1f}x "
      f"receive+delete {recv / cli_recv:.1f}x")
PY
