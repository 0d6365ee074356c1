#!/usr/bin/env bash
# S3 requests per blob upload: Berth (layout metadata, then PostgreSQL
# metadata) and registry:2's s3 driver each store one BLOB_BYTES blob the
# way docker pushes it (POST, one PATCH, PUT ?digest=) through a counting
# proxy in front of one SeaweedFS (bench/s3_count_proxy.py); the requests
# each server sent to S3 for it are printed by method. Run as root:
#   bash bench/s3-requests.sh
# Knobs: BLOB_BYTES=5242880 BERTH=target/release/berth
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
BLOB_BYTES=${BLOB_BYTES:-5242880}
[[ -x $BERTH ]] || { echo "no berth at $BERTH (cargo build --release -p berth)" >&2; exit 1; }
[[ -x /usr/bin/docker-registry ]] || { echo "docker-registry is missing (apt-get install docker-registry)" >&2; exit 1; }
# shellcheck source=bench/s3-stage.sh
source "$BENCH_DIR/s3-stage.sh" s3-requests

PROXY_PORT=$(free_port)
python3 "$BENCH_DIR/s3_count_proxy.py" "$PROXY_PORT" "${S3_ENDPOINT#http://}" &
SRV_PIDS[$!]=1
PROXY="http://127.0.0.1:$PROXY_PORT"
for _ in $(seq 100); do curl -sf "$PROXY/__count" >/dev/null && break; sleep 0.1; done
head -c "$BLOB_BYTES" /dev/urandom >"$WORK/blob"
DIGEST="sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)"

# serve NAME: starts the named server on a fresh prefix; sets PORT and PID.
serve() {
    local name=$1
    PORT=$(free_port)
    local common=(BERTH_STORAGE_KIND=s3 BERTH_STORAGE_S3_BUCKET=$S3_BUCKET BERTH_STORAGE_S3_ENDPOINT=$PROXY
        BERTH_STORAGE_S3_REGION=$S3_REGION BERTH_STORAGE_S3_PREFIX=$name
        BERTH_STORAGE_S3_ACCESS_KEY_ID=$S3_KEY BERTH_STORAGE_S3_SECRET_ACCESS_KEY=$S3_SECRET
        BERTH_STORAGE_S3_ALLOW_HTTP=true RUST_LOG=warn)
    case $name in
    berth-layout)
        env "${common[@]}" BERTH_METADATA_KIND=layout \
            "$BERTH" serve --addr "127.0.0.1:$PORT" --root "$WORK/$name" >"$WORK/$name.log" 2>&1 &
        ;;
    berth-postgres)
        create_database requests
        env "${common[@]}" BERTH_METADATA_KIND=postgres BERTH_METADATA_POSTGRES_URL="$(postgres_url requests)" \
            "$BERTH" serve --addr "127.0.0.1:$PORT" --root "$WORK/$name" >"$WORK/$name.log" 2>&1 &
        ;;
    registry)
        cat >"$WORK/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$(registry_s3_storage "$PROXY" /registry)
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$PORT
EOF
        /usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/$name.log" 2>&1 &
        ;;
    esac
    PID=$!
    SRV_PIDS[$PID]=1
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && return 0; sleep 0.1; done
    die "$name did not come up: $(tail -5 "$WORK/$name.log")"
}

# upload: POST, one PATCH with the whole blob, PUT ?digest= (as docker does).
upload() {
    local base="http://127.0.0.1:$PORT" location
    location=$(curl -sf -X POST -D - -o /dev/null "$base/v2/requests/blobs/uploads/" |
        tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ $location == /* ]] && location="$base$location"
    location=$(curl -sf -X PATCH -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/blob" \
        -D - -o /dev/null "$location" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [[ $location == /* ]] && location="$base$location"
    [[ $location == *\?* ]] && sep='&' || sep='?'
    curl -sf -X PUT -o /dev/null "$location${sep}digest=$DIGEST" || die "PUT failed"
    curl -sf -I "$base/v2/requests/blobs/$DIGEST" >/dev/null || die "blob not served after upload"
}

printf '| server | S3 requests for one %s-byte upload |\n| --- | --- |\n' "$BLOB_BYTES"
for name in berth-layout berth-postgres registry; do
    serve "$name"
    sleep 1 # start-up probes done
    curl -sf -X POST "$PROXY/__reset" >/dev/null
    upload
    counts=$(curl -sf "$PROXY/__count")
    total=$(python3 -c "import json,sys; print(sum(json.loads(sys.argv[1]).values()))" "$counts")
    printf '| %s | %s %s |\n' "$name" "$total" "$counts"
    kill -TERM "$PID" && wait "$PID" 2>/dev/null || true
    unset "SRV_PIDS[$PID]"
done
