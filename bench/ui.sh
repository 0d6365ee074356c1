#!/usr/bin/env bash
# The web UI's repository page with 10,000 repositories of 100 tags each
# (issue 17's target: under 200 ms). Run on Debian 12:
#   bash bench/ui.sh
# Knobs (environment): REPOS=10000 TAGS=100 RUNS=15
#   BERTH=target/release/berth OUT=bench/results/ui.md BENCH_TMPDIR=/tmp
# One image is pushed over the protocol, then its metadata rows are copied
# into REPOS repositories with TAGS tags each, straight into the SQLite
# metadata (a million tags through the protocol would take an hour; the
# page reads the same rows either way). Each page is fetched with curl
# RUNS times after one warm-up; the median and the slowest are reported.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BERTH=${BERTH:-$REPO_DIR/target/release/berth}
REPOS=${REPOS:-10000}
TAGS=${TAGS:-100}
RUNS=${RUNS:-15}
OUT=${OUT:-$BENCH_DIR/results/ui.md}
WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/berth-ui-bench.XXXXXX")
ROOT=$WORK/data
PORT=${PORT:-$((20000 + RANDOM % 20000))}
BASE=http://127.0.0.1:$PORT
PID=

cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$BERTH" ] || cargo build --release -p berth

start() {
  "$BERTH" serve --addr "127.0.0.1:$PORT" --root "$ROOT" "$@" >"$WORK/berth.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    curl -fs "$BASE/health" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "bench/ui.sh: berth did not start" >&2; cat "$WORK/berth.log" >&2; exit 1
}

stop() {
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

# One small image, pushed as a client would.
push_seed() {
  local cfg=$WORK/config.json layer=$WORK/layer.bin manifest=$WORK/manifest.json
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/app"]},"rootfs":{"type":"layers","diff_ids":[]}}' >"$cfg"
  head -c 65536 /dev/urandom >"$layer"
  local cd ld
  cd=sha256:$(sha256sum "$cfg" | cut -d' ' -f1)
  ld=sha256:$(sha256sum "$layer" | cut -d' ' -f1)
  curl -fs -X POST -H 'content-type: application/octet-stream' \
    --data-binary "@$cfg" "$BASE/v2/seed/image/blobs/uploads/?digest=$cd" >/dev/null
  curl -fs -X POST -H 'content-type: application/octet-stream' \
    --data-binary "@$layer" "$BASE/v2/seed/image/blobs/uploads/?digest=$ld" >/dev/null
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
    "$cd" "$(stat -c%s "$cfg")" "$ld" "$(stat -c%s "$layer")" >"$manifest"
  curl -fs -X PUT -H 'content-type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$manifest" "$BASE/v2/seed/image/manifests/t0" >/dev/null
}

# Copies seed/image's rows into bench/rNNNNN, TAGS tags each.
fill() {
  python3 - "$ROOT/metadata.db" "$REPOS" "$TAGS" <<'PY'
import sqlite3, sys
path, repos, tags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
seed = db.execute("SELECT id FROM repositories WHERE name = 'seed/image'").fetchone()[0]
digest = db.execute("SELECT digest FROM tags WHERE repo_id = ?", (seed,)).fetchone()[0]
def columns(table):
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})") if r[1] != "repo_id"]
with db:
    db.executemany("INSERT INTO repositories (name) VALUES (?)",
                   ((f"bench/r{i:05d}",) for i in range(repos)))
    for table in ("blob_links", "manifests", "manifest_refs"):
        cols = ", ".join(columns(table))
        db.execute(f"""INSERT INTO {table} (repo_id, {cols})
                       SELECT r.id, {cols} FROM repositories r, {table} s
                       WHERE s.repo_id = ? AND r.name LIKE 'bench/%'""", (seed,))
    db.execute("""INSERT INTO tags (repo_id, name, digest)
                  WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
                  SELECT r.id, printf('v%03d', n.i), ? FROM repositories r, n
                  WHERE r.name LIKE 'bench/%'""", (tags, digest))
print(db.execute("SELECT COUNT(*) FROM repositories").fetchone()[0], "repositories,",
      db.execute("SELECT COUNT(*) FROM tags").fetchone()[0], "tags")
PY
}

# Median and slowest of RUNS fetches of $1 (curl options after it), in
# milliseconds.
time_page() {
  local path=$1
  shift
  curl -fs -o /dev/null "$@" "$BASE$path"
  local times=()
  for _ in $(seq "$RUNS"); do
    times+=("$(curl -fs -o /dev/null -w '%{time_total}' "$@" "$BASE$path")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1*1000} END {printf "%.1f %.1f\n", a[int((NR+1)/2)], a[NR]}'
}

start
push_seed
stop
echo "bench/ui.sh: filling $REPOS repositories x $TAGS tags" >&2
filled=$(fill)
echo "bench/ui.sh: $filled" >&2
start

declare -A pages=(
  ["repositories, first page"]="/ui/"
  ["repositories, a later page"]="/ui/?after=bench/r05000"
  ["repositories, search (one match)"]="/ui/?q=r04321"
  ["repositories, search (111 matches)"]="/ui/?q=r012"
  ["one repository's 100 tags"]="/ui/repo/bench/r00042"
  ["one manifest"]="/ui/manifest/bench/r00042?ref=v000"
)
order=("repositories, first page" "repositories, a later page" "repositories, search (one match)" "repositories, search (111 matches)" "one repository's 100 tags" "one manifest")
rows=()
for name in "${order[@]}"; do
  read -r median slowest < <(time_page "${pages[$name]}")
  echo "bench/ui.sh: $name: median $median ms, slowest $slowest ms" >&2
  rows+=("| $name | \`${pages[$name]}\` | $median | $slowest |")
done

# Logins on (token mode, Berth's own users, anonymous pulls allowed): a
# logged-in browser gets the catalog's rule filter; an anonymous one, whom
# token mode keeps out of the catalog, is checked per repository.
stop
# bcrypt of bench-Pa55, cost 5 (Python's crypt module, METHOD_BLOWFISH).
hash='$2b$05$G487vMKhcLoM0oTHAd61x.AUBtZOCNGYCdHuIZ.hocLVWdT6bsv86'
printf 'bench:%s\n' "$hash" >"$WORK/htpasswd"
printf '[auth]\nhtpasswd = "%s"\nanonymous_pull = true\n' "$WORK/htpasswd" >"$WORK/berth.toml"
start --config "$WORK/berth.toml"
for name in "repositories, first page" "repositories, search (one match)"; do
  for who in anonymous bench; do
    creds=()
    if [ "$who" = bench ]; then creds=(-u bench:bench-Pa55); fi
    read -r median slowest < <(time_page "${pages[$name]}" "${creds[@]}")
    echo "bench/ui.sh: logins on, $who: $name: median $median ms, slowest $slowest ms" >&2
    rows+=("| $name, logins on, $who | \`${pages[$name]}\` | $median | $slowest |")
  done
done

mkdir -p "$(dirname "$OUT")"
{
  echo "# Web UI: pages over a large store"
  echo
  echo "\`bench/ui.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "$(uname -sr), Berth $(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo "Store: $filled (one shared image, SQLite metadata, filesystem blobs)."
  echo "Each page fetched with curl $RUNS times after one warm-up; times are curl's"
  echo "\`time_total\` over loopback, in milliseconds. Target (issue 17): the"
  echo "repository page under 200 ms."
  echo
  echo "| page | path | median ms | slowest ms |"
  echo "|---|---|---:|---:|"
  printf '%s\n' "${rows[@]}"
} >"$OUT"
cat "$OUT"
