#!/usr/bin/env bash
# Fuzzes the berth-oci parsers (oci/fuzz: targets `manifest`, `reference`,
# `range`) for FUZZ_SECONDS each (default 60), failing on any crash, panic,
# timeout or out-of-memory. Run after the unit tests by tests/run.sh; alone:
#   bash tests/fuzz.sh                   FUZZ_SECONDS=600 bash tests/fuzz.sh
#
# Built with the pinned stable toolchain and no sanitizer (`-s none`): the
# crate is safe Rust, so what finds bugs is libFuzzer's coverage guidance
# plus the targets' own property checks, debug assertions and overflow
# checks (cargo fuzz's default profile). AddressSanitizer would need nightly.
# Crash inputs land in oci/fuzz/artifacts/<target>/; replay one with
#   (cd oci && cargo fuzz run -s none --target-dir ../target/fuzz <target> <file>)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${FUZZ_SECONDS:-60}
targets=(manifest reference range)

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "tests/fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# A target directory of its own: fuzz builds use different flags and would
# otherwise invalidate the main build's artifacts.
target_dir="$PWD/target/fuzz"
cd oci
cargo fuzz build -s none --target-dir "$target_dir"

for target in "${targets[@]}"; do
  # New inputs go to a scratch corpus; the committed seeds are read-only.
  # The dictionaries hold each format's keywords and the numbers where u64
  # arithmetic turns over (with them, reverting the chunk_fits overflow fix
  # is found in seconds without its seed; without them, not in minutes).
  scratch="$target_dir/corpus/$target"
  mkdir -p "$scratch"
  echo "tests/fuzz.sh: fuzzing $target for ${seconds}s" >&2
  log="$target_dir/$target.log"
  if cargo fuzz run -s none --target-dir "$target_dir" "$target" \
    "$scratch" "fuzz/corpus/$target" -- \
    -dict="fuzz/dict/$target.dict" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
  else
    status=$?
    tail -n 60 "$log" >&2
    echo "tests/fuzz.sh: $target failed (exit $status); inputs in oci/fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
echo "fuzz: ${#targets[@]} passed, 0 failed"
