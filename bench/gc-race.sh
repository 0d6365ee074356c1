#!/usr/bin/env bash
# The garbage-collection race, long: PUSHERS (default 8) clients pushing
# for SECONDS (default 120) against the server's collector and COLLECTORS
# (default 2) `berth gc` processes looping, every grace period at zero
# (tests/gc.rs runs a short version in CI). Prints the pushes, retries,
# deletes, the collector passes and fsck's dangling count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BERTH_TEST_GC_RACE_PUSHERS=${PUSHERS:-8} \
BERTH_TEST_GC_RACE_COLLECTORS=${COLLECTORS:-2} \
BERTH_TEST_GC_RACE_SECONDS=${SECONDS_TO_RUN:-120} \
    cargo test --release -p berth --test gc gc_races_concurrent_pushes -- --nocapture 2>&1 |
    grep -E "gc race:|test result|panicked|assert|dangling"
