#!/usr/bin/env bash
# The benchmark: `bash scripts/bench.sh`. Not part of the test command (it measures; it does not
# pass or fail on figures). Installs what is missing (scripts/setup.sh), builds the `bench` build
# and the release build, runs each under `wrangler dev` on free loopback ports with fresh state,
# and prints one table (see scripts/bench.mjs for what each row means).
# Environment: DURATION (seconds per load run, default 8), RUNS (in-worker runs, default 7).
# Run it on a quiet machine: every figure shares the same cores with the load generator.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash scripts/setup.sh
# The bench builds itself (bench build, then release build: build/ holds the release build after).
export EDGEAUTH_SKIP_BUILD=1
exec node scripts/bench.mjs
