#!/usr/bin/env bash
# Peak RSS of a 1 GiB monolithic push into S3 (layout metadata, fresh root
# each run), measured as bench/run.sh measures it (VmHWM after clear_refs),
# without the rest of that run: a quick check of issue 16's memory target.
#   bash bench/s3-push-rss.sh [BERTH]   (default target/release/berth)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BERTH=${1:-$(dirname "$BENCH_DIR")/target/release/berth}
WORK=$(mktemp -d ${BENCH_TMPDIR:-/var/tmp}/s3-push-rss.XXXX)
declare -A SRV_PIDS=()
trap 'for p in "${!SRV_PIDS[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf $WORK' EXIT
log() { echo "[s3-push-rss] $*" >&2; }
die() { log "$*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SEAWEED_VENV=${SEAWEED_VENV:-/opt/berth-test/seaweedfs} S3_KEY=bench S3_SECRET=benchbenchbench S3_BUCKET=bench S3_REGION=us-east-1
unset AWS_CA_BUNDLE
source "$BENCH_DIR/seaweed.sh"
start_seaweed
head -c 1073741824 /dev/urandom > $WORK/blob; hex=$(sha256sum $WORK/blob | cut -d' ' -f1)
for i in 1 2; do
  port=$(free_port)
  env RUST_LOG=warn BERTH_STORAGE_KIND=s3 BERTH_STORAGE_S3_BUCKET=$S3_BUCKET BERTH_STORAGE_S3_ENDPOINT=$S3_ENDPOINT \
    BERTH_STORAGE_S3_REGION=$S3_REGION BERTH_STORAGE_S3_PREFIX=p$i BERTH_STORAGE_S3_ACCESS_KEY_ID=$S3_KEY \
    BERTH_STORAGE_S3_SECRET_ACCESS_KEY=$S3_SECRET BERTH_STORAGE_S3_ALLOW_HTTP=true BERTH_METADATA_KIND=layout \
    $BERTH serve --addr 127.0.0.1:$port --root $WORK/root$i &
  pid=$!; SRV_PIDS[$pid]=1
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/v2/ >/dev/null && break; sleep 0.2; done
  sleep 1
  start=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
  echo 5 > /proc/$pid/clear_refs
  loc=$(curl -sS -o /dev/null -D - -X POST http://127.0.0.1:$port/v2/bench/blobs/uploads/ | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  [[ $loc == http* ]] || loc=http://127.0.0.1:$port$loc
  [[ $loc == *\?* ]] && sep='&' || sep='?'
  out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' -T $WORK/blob -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' "$loc${sep}digest=sha256:$hex")
  echo "run $i: $out start_rss=${start}kB peak=$(grep VmHWM /proc/$pid/status)"
  kill $pid; wait $pid 2>/dev/null || true; unset "SRV_PIDS[$pid]"
done
