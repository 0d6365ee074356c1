#!/usr/bin/env bash
# What metrics and access logs cost: manifest GET req/s (wrk) and a 1 GiB
# monolithic blob push, Berth with `/metrics` and one access-log line per
# request (written to a file, JSON) against Berth with both off, and
# registry:2 (docker-registry) for reference, in one run. Rounds alternate
# the servers so drift hits both.
#   bash bench/observe.sh   (knobs: ROUNDS=3 WRK_DURATION=10s BLOB_BYTES=1073741824
#                            OUT=bench/results/observe.md)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
ROUNDS=${ROUNDS:-3}
WRK_DURATION=${WRK_DURATION:-10s}
BLOB_BYTES=${BLOB_BYTES:-1073741824}
OUT=${OUT:-$BENCH_DIR/results/observe.md}
[[ -x $BERTH ]] || (cd "$REPO_DIR" && cargo build --release -p berth)
need=()
[[ -x /usr/bin/docker-registry ]] || need+=(docker-registry)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
((${#need[@]} == 0)) || apt-get install -y -qq "${need[@]}" >/dev/null
tmp=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/observe-XXXX")
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
log() { printf '[observe %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

printf '[gc]\nenabled = false\n[log]\nformat = "json"\naccess = true\n' >"$tmp/on.toml"
printf '[gc]\nenabled = false\n[log]\naccess = false\n[server.observe]\nmetrics = false\n' >"$tmp/off.toml"
cat >"$tmp/registry.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $tmp/registry2}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5802}
YML
wait_up() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }
# "On" logs at INFO into a file, as an operator shipping access logs would.
RUST_LOG=info "$BERTH" serve --addr 127.0.0.1:5800 --root "$tmp/on" --config "$tmp/on.toml" 2>"$tmp/on.log" &
RUST_LOG=info "$BERTH" serve --addr 127.0.0.1:5801 --root "$tmp/off" --config "$tmp/off.toml" 2>"$tmp/off.log" &
/usr/bin/docker-registry serve "$tmp/registry.yml" >/dev/null 2>&1 &
for p in 5800 5801 5802; do wait_up $p; done

upload_location() { # upload_location PORT REPO -> the session's URL
  local loc
  loc=$(curl -sS -o /dev/null -D - -X POST "http://127.0.0.1:$1/v2/$2/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" { print $2; exit }')
  [[ $loc == http* ]] || loc="http://127.0.0.1:$1$loc"
  echo "$loc"
}
with_digest() { [[ $1 == *\?* ]] && echo "$1&digest=$2" || echo "$1?digest=$2"; }

# One small image per server, for the manifest GETs (registry:2 takes no
# single-POST uploads: POST, then PUT with the digest).
push_image() {
  local port=$1 cfg='{"architecture":"amd64","os":"linux"}' cdigest manifest loc
  cdigest=sha256:$(printf %s "$cfg" | sha256sum | cut -d' ' -f1)
  loc=$(upload_location "$port" bench/app)
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "$cfg" \
    "$(with_digest "$loc" "$cdigest")" >/dev/null
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}' "$cdigest" "${#cfg}")
  curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$manifest" \
    "http://127.0.0.1:$port/v2/bench/app/manifests/v1" >/dev/null
}
for p in 5800 5801 5802; do push_image $p; done

log "making a $BLOB_BYTES-byte blob"
head -c "$BLOB_BYTES" /dev/urandom >"$tmp/blob"
hex=$(sha256sum "$tmp/blob" | cut -d' ' -f1)

push_secs() { # push_secs PORT REPO -> seconds of the monolithic PUT
  local port=$1 repo=$2 loc out
  loc=$(upload_location "$port" "$repo")
  out=$(curl -sS -o /dev/null -w '%{http_code} %{time_total}' -T "$tmp/blob" -X PUT \
    -H 'Content-Type: application/octet-stream' -H 'Expect:' "$(with_digest "$loc" "sha256:$hex")")
  [[ ${out% *} == 201 ]] || { echo "push to :$port answered ${out% *}" >&2; exit 1; }
  echo "${out#* }"
}
rps() { # rps PORT -> manifest GET requests/s
  wrk -t2 -c32 "-d$WRK_DURATION" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$1/v2/bench/app/manifests/v1" | awk '/Requests\/sec/ { print $2 }'
}

declare -A get push
for round in $(seq "$ROUNDS"); do
  for entry in on:5800 off:5801 registry2:5802; do
    name=${entry%%:*} port=${entry##*:}
    r=$(rps "$port")
    # The previous push's dirty pages written out first, so that one
    # server's writeback does not land in another's timing.
    sync
    s=$(push_secs "$port" "bench/push$round")
    log "round $round $name: manifest GET $r req/s, 1 GiB push $s s"
    get[$name]+="$r " push[$name]+="$s "
  done
done
median() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" $1; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.3f}')" "$1" "$2"; }
for name in on off registry2; do
  declare "get_$name=$(median "${get[$name]}")" "push_$name=$(median "${push[$name]}")"
done
lines=$(grep -c '"berth::access"' "$tmp/on.log" || true)
{
  echo "# Metrics and access logs: what they cost ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "\`bash bench/observe.sh\`: medians of $ROUNDS alternating rounds; manifest GET by"
  echo "tag with \`wrk -t2 -c32 -d$WRK_DURATION\`, a $((BLOB_BYTES >> 20)) MiB monolithic blob PUT"
  echo "with curl. \"On\": \`/metrics\` plus one JSON access line per request written to a"
  echo "file at INFO ($lines lines in this run); \"off\": \`server.observe.metrics = false\`,"
  echo "\`log.access = false\`."
  echo
  echo "| | Berth on | Berth off | on / off | registry:2 | Berth on vs registry:2 |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| manifest GET, req/s (higher is better) | ${get_on} | ${get_off} | $(ratio "$get_on" "$get_off") | ${get_registry2} | $(ratio "$get_on" "$get_registry2")× |"
  echo "| $((BLOB_BYTES >> 20)) MiB push, s (lower is better) | ${push_on} | ${push_off} | $(ratio "$push_on" "$push_off") | ${push_registry2} | $(ratio "$push_registry2" "$push_on")× faster |"
  echo
  echo "Cost under 5% means on/off ≥ 0.95 for req/s and ≤ 1.05 for push time."
  echo
  echo "Per round: on ${get[on]}/ ${push[on]}; off ${get[off]}/ ${push[off]}; registry:2 ${get[registry2]}/ ${push[registry2]}."
} | tee "$OUT"
