#!/usr/bin/env bash
# Runs every check edgeauth has: `bash scripts/test.sh` (also what .ci/run executes).
#   setup -> cargo fmt --check -> clippy (host, all targets) -> clippy (wasm32 lib)
#   -> clippy of the verifier alone (host) and with the service-binding helper (wasm32)
#   -> fmt + clippy of examples/consumer-rs -> clippy of crates/pbkdf2
#   -> cargo test (host; includes tests/ over SQLite)
#   -> release build -> consumer-rs build -> e2e (node --test)
# Independent steps all run even if one fails; the e2e tests need a successful build.
# Exits non-zero if any step failed, and prints a summary at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

total_start=$(date +%s)
results=()
failed=0

# run_step NAME CMD...: runs CMD, records PASS/FAIL and its duration, never aborts the script.
run_step() {
  local name="$1"; shift
  local t0 rc
  t0=$(date +%s)
  printf '\n======== %s: %s\n' "$name" "$*"
  set +e
  "$@"
  rc=$?
  set -e
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" -eq 0 ]; then
    results+=("PASS  ${name} (${dt}s)")
  else
    results+=("FAIL  ${name} (${dt}s, exit ${rc})")
    failed=$((failed + 1))
  fi
  return "$rc"
}

skip_step() {
  results+=("SKIP  $1 ($2)")
}

summary() {
  printf '\n======== summary (%ss total)\n' "$(( $(date +%s) - total_start ))"
  printf '  %s\n' "${results[@]}"
  if [ "$failed" -eq 0 ]; then
    printf 'ALL CHECKS PASSED\n'
  else
    printf '%d CHECK(S) FAILED\n' "$failed"
  fi
}

if ! run_step setup bash scripts/setup.sh; then
  summary
  exit 1
fi

run_step "cargo fmt --check" cargo fmt --all -- --check || true
run_step "clippy (host, all targets)" cargo clippy --all-targets -- -D warnings || true
run_step "clippy (wasm32 lib)" cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings || true
# What consumers build: the verifier without the server, and with the binding helper on wasm.
run_step "clippy (verifier only, host)" cargo clippy --no-default-features -- -D warnings || true
run_step "clippy (verifier + binding, wasm32)" \
  cargo clippy --no-default-features --features binding --target wasm32-unknown-unknown -- -D warnings || true
consumer_rs="examples/consumer-rs/Cargo.toml"
run_step "consumer-rs fmt --check" cargo fmt --manifest-path "$consumer_rs" -- --check || true
run_step "consumer-rs clippy (wasm32)" \
  cargo clippy --manifest-path "$consumer_rs" --target wasm32-unknown-unknown -- -D warnings || true
# The PBKDF2 loop's own package (crates/pbkdf2: not a workspace member, so not linted above).
pbkdf2_crate="crates/pbkdf2/Cargo.toml"
run_step "edgeauth-pbkdf2 clippy (host, all targets)" \
  cargo clippy --manifest-path "$pbkdf2_crate" --all-targets -- -D warnings || true
run_step "edgeauth-pbkdf2 clippy (wasm32)" \
  cargo clippy --manifest-path "$pbkdf2_crate" --target wasm32-unknown-unknown -- -D warnings || true
run_step "cargo test (host)" cargo test || true

e2e_files=()
for f in tests/e2e/*.test.mjs; do
  [ -e "$f" ] && e2e_files+=("$f")
done

if run_step "release build" env EDGEAUTH_PROFILE=release EDGEAUTH_SKIP_BUILD=0 bash scripts/build.sh; then
  # The Rust consumer Worker the e2e tests start next to edgeauth (its output: examples/consumer-rs/build/).
  run_step "consumer-rs build" env EDGEAUTH_CRATE_DIR=examples/consumer-rs EDGEAUTH_PROFILE=release \
    EDGEAUTH_SKIP_BUILD=0 bash scripts/build.sh || true
  if [ "${#e2e_files[@]}" -gt 0 ]; then
    # Build once above; every server the harness starts reuses it.
    export EDGEAUTH_SKIP_BUILD=1
    run_step "e2e (${#e2e_files[@]} files)" \
      timeout --kill-after=30 "${EDGEAUTH_E2E_TIMEOUT:-2700}" \
      node --test --test-concurrency=1 --test-reporter=spec "${e2e_files[@]}" || true
  else
    skip_step "e2e" "no tests/e2e/*.test.mjs"
  fi
else
  skip_step "e2e" "release build failed"
fi

summary
[ "$failed" -eq 0 ]
