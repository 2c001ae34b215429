#!/usr/bin/env bash
# Benchmarks cbpipe's sftp/ftps/ftp transports against the curl CLI on the
# local servers of the interop matrix: OpenSSH, vsftpd, ProFTPD, pure-ftpd,
# drop boxes (started by the program itself; needs root).
#   bench/transport/run.sh                  # 4 x 100 MB and 1000 x 10 KB, 5 runs
#   bench/transport/run.sh --runs 1 --big-mb 20 --small-count 200   # quick
#   bench/transport/run.sh --protocols ftps-proftpd,ftps-pureftpd   # some rows
# Builds in build-bench (Release). Data goes to bench/data/transport
# (git-ignored) and is reused between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${CBPIPE_BENCH_BUILD:-build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target bench_transport -j2 >/dev/null
mkdir -p bench/data/transport
exec "$build/src/deliver/bench_transport" --dir "$PWD/bench/data/transport" "$@"
