#!/usr/bin/env bash
# Time and peak memory of `berth gc` and `berth fsck` over a store of
# COUNT (default 10,000) blobs, half of them garbage (plus one config and one
# manifest per 50 kept blobs).
#   bash bench/gc-scale.sh            (after cargo build --release)
# Knobs: COUNT=10000 SIZE=4096 BERTH=target/release/berth
#   METADATA=sqlite|postgres (postgres: a private PostgreSQL, bench/postgres.sh)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BERTH=${BERTH:-$BENCH_DIR/../target/release/berth}
COUNT=${COUNT:-10000}
METADATA=${METADATA:-sqlite}
SIZE=${SIZE:-4096}
[[ -x $BERTH ]] || { echo "no berth at $BERTH (cargo build --release)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
WORK=$(mktemp -d /tmp/berth-gc-scale.XXXXXX)
log() { echo "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
# shellcheck source=bench/postgres.sh
source "$BENCH_DIR/postgres.sh"
trap 'kill $PID 2>/dev/null || true; stop_postgres; rm -rf "$WORK"' EXIT
PID=
if [[ $METADATA == postgres ]]; then
    start_postgres "$WORK"
    create_database gc_scale
    export BERTH_METADATA_KIND=postgres BERTH_METADATA_POSTGRES_URL
    BERTH_METADATA_POSTGRES_URL=$(postgres_url gc_scale)
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn "$BERTH" serve --addr "127.0.0.1:$PORT" --root "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
python3 "$BENCH_DIR/gc_fill.py" "127.0.0.1:$PORT" scale "$COUNT" "$SIZE"

measure() { # measure LABEL ARGS...: wall time and max RSS of one berth command
    local label=$1
    shift
    /usr/bin/time -f "$label: %e s wall, %M KiB max RSS" "$BERTH" "$@" --root "$WORK/data" \
        >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/out" "$WORK/err" >&2; exit 1; }
    grep -E '^(checked|removed [0-9]+ blobs|would remove [0-9]+ blobs)' "$WORK/out" || tail -1 "$WORK/out"
    tail -1 "$WORK/err"
}
echo "store: $COUNT blobs of $SIZE bytes, half unlinked, $METADATA metadata; server running during the commands"
measure "fsck (re-hash all $COUNT)" fsck
measure "gc --dry-run" gc --dry-run --grace 0s --upload-grace 0s
measure "gc (removes half)" gc --grace 0s --upload-grace 0s
measure "gc (nothing left to remove)" gc --grace 0s --upload-grace 0s
