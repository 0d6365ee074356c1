# The stage of the several-host benchmarks (bench/hosts.sh,
# bench/s3-requests.sh), sourced as `source bench/s3-stage.sh NAME`: log and
# die prefixed with NAME, free_port, a work directory WORK removed on exit
# with every server in SRV_PIDS, and one SeaweedFS (S3_ENDPOINT) and one
# PostgreSQL (bench/postgres.sh) running for the whole script.
STAGE_NAME=$1
SEAWEED_VENV=${SEAWEED_VENV:-/opt/berth-test/seaweedfs}
S3_KEY=bench S3_SECRET=benchbenchbench S3_BUCKET=bench S3_REGION=us-east-1 S3_ENDPOINT=

log() { printf '[%s %s] %s\n' "$STAGE_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
[[ -x $SEAWEED_VENV/bin/weed ]] ||
    die "SeaweedFS is missing: run bash tests/run.sh or BACKEND=s3 bash bench/run.sh once"

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/berth-$STAGE_NAME.XXXXXX")
declare -A SRV_PIDS=()
# shellcheck source=bench/postgres.sh
source "$BENCH_DIR/postgres.sh"
# shellcheck source=bench/seaweed.sh
source "$BENCH_DIR/seaweed.sh"
stage_cleanup() {
    local rc=$? pid
    for pid in "${!SRV_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${!SRV_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_postgres
    rm -rf "$WORK"
    exit "$rc"
}
trap stage_cleanup EXIT
unset AWS_CA_BUNDLE # breaks plain-HTTP S3 clients
start_seaweed
start_postgres "$WORK"
