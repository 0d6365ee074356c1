#!/usr/bin/env bash
# Several Berth hosts over one S3 bucket (SeaweedFS) and one PostgreSQL:
# aggregate push and pull throughput with 1, 2 and 3 hosts. CLIENTS skopeo
# processes at once push distinct images (LAYERS layers of LAYER_BYTES
# each), client i through host i mod N; then each pulls its image back
# through the next host, so every pull crosses hosts. Each host count gets
# a fresh bucket prefix and a fresh database. Run as root on Debian 12:
#   bash bench/hosts.sh
# Knobs: CLIENTS=6 LAYERS=8 LAYER_BYTES=5242880 HOSTS="1 2 3"
#   BERTH=target/release/berth OUT=bench/results/hosts.md BENCH_TMPDIR=/tmp
# On one machine every host, the S3 server and the database share its
# cores: this shows what spreading clients over hosts costs or gains here,
# not what separate machines would give.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
CLIENTS=${CLIENTS:-6}
LAYERS=${LAYERS:-8}
LAYER_BYTES=${LAYER_BYTES:-5242880}
HOSTS=${HOSTS:-1 2 3}
OUT=${OUT:-$BENCH_DIR/results/hosts.md}
[[ -x $BERTH ]] || (cd "$REPO_DIR" && cargo build --release -p berth)
command -v skopeo >/dev/null || { echo "skopeo is missing (apt-get install skopeo)" >&2; exit 1; }
# shellcheck source=bench/s3-stage.sh
source "$BENCH_DIR/s3-stage.sh" hosts

log "making $CLIENTS images of $LAYERS x $LAYER_BYTES bytes"
for ((i = 0; i < CLIENTS; i++)); do
    python3 "$BENCH_DIR/make_layout.py" "$WORK/img$i" "$LAYERS" "$LAYER_BYTES" "$i" >/dev/null
done
MIB=$(python3 -c "print($CLIENTS * $LAYERS * $LAYER_BYTES / 1048576)")

PORTS=()
HOST_PIDS=()
# start_hosts N: N hosts on a fresh prefix and database; sets PORTS.
start_hosts() {
    local n=$1 h port url
    create_database "hosts_$n"
    url=$(postgres_url "hosts_$n")
    PORTS=() HOST_PIDS=()
    for ((h = 0; h < n; h++)); do
        port=$(free_port)
        BERTH_STORAGE_KIND=s3 BERTH_STORAGE_S3_BUCKET=$S3_BUCKET BERTH_STORAGE_S3_ENDPOINT=$S3_ENDPOINT \
            BERTH_STORAGE_S3_REGION=$S3_REGION BERTH_STORAGE_S3_PREFIX="hosts-$n" \
            BERTH_STORAGE_S3_ACCESS_KEY_ID=$S3_KEY BERTH_STORAGE_S3_SECRET_ACCESS_KEY=$S3_SECRET \
            BERTH_STORAGE_S3_ALLOW_HTTP=true BERTH_METADATA_KIND=postgres BERTH_METADATA_POSTGRES_URL=$url \
            RUST_LOG=warn "$BERTH" serve --addr "127.0.0.1:$port" --root "$WORK/root-$n-$h" \
            >"$WORK/host-$n-$h.log" 2>&1 &
        SRV_PIDS[$!]=1
        HOST_PIDS+=("$!")
        PORTS+=("$port")
    done
    for port in "${PORTS[@]}"; do
        for _ in $(seq 300); do
            curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && continue 2
            sleep 0.1
        done
        die "a host on :$port did not come up: $(tail -5 "$WORK"/host-"$n"-*.log)"
    done
}

stop_hosts() {
    local pid
    for pid in "${HOST_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "SRV_PIDS[$pid]"
    done
}

# clients OP N -> seconds: every client at once, OP push or pull.
clients() {
    local op=$1 n=$2 i port start pids=()
    start=$(date +%s.%N)
    for ((i = 0; i < CLIENTS; i++)); do
        if [[ $op == push ]]; then
            port=${PORTS[i % n]}
            skopeo copy -q --dest-tls-verify=false --preserve-digests \
                "oci:$WORK/img$i:v1" "docker://127.0.0.1:$port/img$i:v1" >"$WORK/c$i.log" 2>&1 &
        else
            port=${PORTS[(i + 1) % n]}
            rm -rf "$WORK/out$i"
            skopeo copy -q --src-tls-verify=false --preserve-digests \
                "docker://127.0.0.1:$port/img$i:v1" "oci:$WORK/out$i:v1" >"$WORK/c$i.log" 2>&1 &
        fi
        pids+=("$!")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[i]}" || die "skopeo $op of img$i failed: $(cat "$WORK/c$i.log")"
    done
    python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')"
}

rows=()
for n in $HOSTS; do
    start_hosts "$n"
    push=$(clients push "$n")
    pull=$(clients pull "$n")
    for ((i = 0; i < CLIENTS; i++)); do
        cmp -s "$WORK/img$i/blobs/sha256/$(jq -r '.manifests[0].digest' "$WORK/img$i/index.json" | cut -d: -f2)" \
            "$WORK/out$i/blobs/sha256/$(jq -r '.manifests[0].digest' "$WORK/out$i/index.json" | cut -d: -f2)" ||
            die "img$i pulled with another manifest"
    done
    stop_hosts
    row=$(python3 -c "print(f'| $n | $push | {$MIB / $push:.0f} | $pull | {$MIB / $pull:.0f} |')")
    log "$row"
    rows+=("$row")
done

{
    echo "# Several hosts over one bucket and one PostgreSQL"
    echo
    echo "\`bash bench/hosts.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores: $CLIENTS skopeo clients at once, each"
    echo "pushing (then pulling back through the next host) an image of $LAYERS x $LAYER_BYTES-byte layers,"
    echo "$MIB MiB in all; SeaweedFS, PostgreSQL and every host on this one machine."
    echo
    echo "| hosts | push, s | push, MiB/s | pull, s | pull, MiB/s |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    printf '%s\n' "${rows[@]}"
} >"$OUT"
log "written to $OUT"
