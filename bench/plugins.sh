#!/usr/bin/env bash
# What an admission plugin call costs per request: manifest PUT latency
# (each PUT moves a tag, so each is judged) against Berth without plugins,
# with the two built-in plugins, and registry:2 (docker-registry) for
# reference, in one run on this machine. Rounds alternate the servers.
#   bash bench/plugins.sh      (knobs: N=2000 ROUNDS=3 OUT=bench/results/plugins.md)
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$BENCH_DIR/results/plugins.md}
[[ -x $BERTH ]] || (cd "$REPO_DIR" && cargo build --release -p berth)
[[ -x /usr/bin/docker-registry ]] || apt-get install -y -qq docker-registry >/dev/null
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT

cat >"$tmp/plugins.toml" <<'TOML'
[gc]
enabled = false
[[plugins]]
path = "builtin:immutable-tags"
[plugins.settings]
patterns = ["v*"]
[[plugins]]
path = "builtin:required-annotations"
[plugins.settings]
keys = ["org.opencontainers.image.source"]
media-types = ["application/vnd.oci.image.manifest.v1+json"]
TOML
printf '[gc]\nenabled = false\n' >"$tmp/none.toml"
cat >"$tmp/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $tmp/registry2}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5702}
YML

wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$1/v2/" >/dev/null && return; sleep 0.1; done; echo "port $1 did not come up" >&2; exit 1; }
RUST_LOG=error "$BERTH" serve --addr 127.0.0.1:5700 --root "$tmp/none" --config "$tmp/none.toml" &
RUST_LOG=error "$BERTH" serve --addr 127.0.0.1:5701 --root "$tmp/plugins" --config "$tmp/plugins.toml" &
/usr/bin/docker-registry serve "$tmp/registry.yml" >/dev/null 2>&1 &
for p in 5700 5701 5702; do wait_up $p; done

declare -A medians
for round in $(seq "$ROUNDS"); do
  for entry in "none:5700" "plugins:5701" "registry2:5702"; do
    name=${entry%%:*} port=${entry##*:}
    result=$(python3 "$BENCH_DIR/plugin_put.py" 127.0.0.1 "$port" "bench/r$round" "$N")
    echo "round $round $name $result" >&2
    medians[$name]+="$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['median_us'])" "$result") "
  done
done
median_of() { python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:]))))" $1; }
none=$(median_of "${medians[none]}") plugins=$(median_of "${medians[plugins]}") r2=$(median_of "${medians[registry2]}")
{
  echo "# Admission plugin cost ($(date -u +%Y-%m-%d), $(nproc) cores)"
  echo
  echo "Manifest PUT moving a tag, $N sequential PUTs on one keep-alive connection,"
  echo "median of the per-round medians over $ROUNDS rounds (\`bash bench/plugins.sh\`)."
  echo
  echo "| server | PUT median | vs Berth without plugins |"
  echo "|---|---:|---:|"
  echo "| Berth, no plugins | ${none} µs | |"
  echo "| Berth, immutable-tags + required-annotations | ${plugins} µs | +$((plugins - none)) µs |"
  echo "| registry:2 (no plugins) | ${r2} µs | |"
  echo
  echo "Per plugin call: about $(((plugins - none) / 2)) µs (two plugins, one call each per PUT)."
} | tee "$OUT"
