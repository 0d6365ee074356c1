#!/usr/bin/env bash
# The garbage-collection race across hosts, long: PUSHERS (default 8)
# clients pushing for SECONDS_TO_RUN (default 120) through three Berth hosts
# over one SeaweedFS bucket and one PostgreSQL, each host collecting every
# second with every grace period at zero (tests/postgres.rs runs a short
# version in CI). Prints the pushes, retries, deletes and fsck's result.
# Needs what tests/run.sh installs (SeaweedFS in BERTH_TEST_WEED, postgresql).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BERTH_TEST_WEED=${BERTH_TEST_WEED:-/opt/berth-test/seaweedfs/bin/weed}
BERTH_TEST_GC_RACE_PUSHERS=${PUSHERS:-8} \
BERTH_TEST_GC_RACE_SECONDS=${SECONDS_TO_RUN:-120} \
    cargo test --release -p berth --test postgres three_hosts_collect_at_zero_grace -- --nocapture 2>&1 |
    grep -E "^postgres gc race:|test result|panicked|assert"
