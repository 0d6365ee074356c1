#!/usr/bin/env bash
# The garbage-collection race test, long: 4 pushers x ITERATIONS (default
# 150) images against a collector that never stops (tests/gc.rs runs a
# short version in CI). Prints the iteration count and the outcome.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BERTH_TEST_GC_RACE_ITERATIONS=${ITERATIONS:-150} \
    cargo test --release -p berth --test gc gc_races_concurrent_pushes -- --nocapture 2>&1 |
    grep -E "gc race:|test result|panicked|assert"
