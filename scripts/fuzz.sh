#!/usr/bin/env bash
# Fuzzes edgeauth's input parsers with cargo-fuzz (libFuzzer): `bash scripts/fuzz.sh [SECONDS] [TARGET...]`.
# Not part of scripts/test.sh. Runs every target in fuzz/ (or the ones named) for SECONDS each
# (default 300), prints per target the executions run and whether it crashed, and exits non-zero if
# any target crashed, leaked, timed out or failed to build. A crash input is kept in
# fuzz/artifacts/TARGET/; reproduce it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none TARGET artifacts/TARGET/crash-...)
#
# Toolchain: the stable one. cargo-fuzz assumes nightly; RUSTC_BOOTSTRAP=1 lets stable rustc take
# the few unstable flags it may pass (-Zsanitizer when a sanitizer is on). With the default
# FUZZ_SANITIZER=none no unstable flag is passed at all: edgeauth has no unsafe code, so the bugs
# to find are panics, overflows, hangs and wrong answers (the targets assert the parsers' rules),
# and without AddressSanitizer a core runs about 3.5 times as many inputs (FUZZ_SANITIZER=address
# also builds and runs on stable with RUSTC_BOOTSTRAP=1, for the unsafe code in dependencies).
#
# Environment:
#   FUZZ_SANITIZER=none|address   sanitizer (default none)
#   FUZZ_PARALLEL=N               targets run at once (default 1; each takes one core: on a quiet
#                                 2-core machine, FUZZ_PARALLEL=2 halves the wall time)
#
# The corpus grows in fuzz/corpus/TARGET (not committed); fuzz/seeds/TARGET holds the committed
# seeds, read on every run (a seed that once crashed stays there as a regression input).
# cargo-fuzz is installed (pinned) by `cargo install` when missing. `cd fuzz && cargo test --lib`
# checks that the fixed key and the valid seeds still verify.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CARGO_FUZZ_VERSION="0.13.2"
SECONDS_PER_TARGET="${1:-300}"
shift || true
SANITIZER="${FUZZ_SANITIZER:-none}"
PARALLEL="${FUZZ_PARALLEL:-1}"
ALL_TARGETS=(verify_token verify_signed jwks cookies json_body form_body redirect)
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")

[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer (got '$SECONDS_PER_TARGET')"
[[ "$PARALLEL" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_PARALLEL must be a positive integer"
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target '$t' (known: ${ALL_TARGETS[*]})"
done
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup first"
command -v c++ >/dev/null || command -v g++ >/dev/null \
  || die "no C++ compiler: libfuzzer-sys builds libFuzzer from source (apt-get install g++)"

# 1. cargo-fuzz, pinned.
have="$(cargo fuzz --version 2>/dev/null | awk '{print $2; exit}' || true)"
if [ "$have" != "$CARGO_FUZZ_VERSION" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION (found: ${have:-none}; takes a few minutes)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --force
fi

export RUSTC_BOOTSTRAP=1
cd "$REPO_ROOT/fuzz"

# 2. Build every target once (the first build compiles edgeauth's dependencies: a few minutes).
log "building fuzz targets (sanitizer: $SANITIZER)"
build_log="$(mktemp)"
for t in "${TARGETS[@]}"; do
  cargo fuzz build --sanitizer "$SANITIZER" "$t" >"$build_log" 2>&1 || {
    cat "$build_log" >&2; rm -f "$build_log"; die "cargo fuzz build $t failed"; }
done
rm -f "$build_log"

# libFuzzer options of one target.
target_options() {
  local max_len=4096 dict=""
  case "$1" in
    verify_token) max_len=9000; dict=jose.dict ;;  # past verifier::MAX_TOKEN_BYTES (8 KiB)
    verify_signed|jwks) dict=jose.dict ;;
    cookies|json_body|form_body) dict=http.dict ;;
    redirect) dict=url.dict ;;
  esac
  printf '%s\n' "-max_total_time=$SECONDS_PER_TARGET" "-max_len=$max_len" "-timeout=10" \
    "-rss_limit_mb=2048" "-print_final_stats=1" "-dict=dicts/$dict"
}

logs_dir="$(mktemp -d)"
trap 'rm -rf "$logs_dir"' EXIT

# run_target TARGET: fuzzes TARGET, its output in $logs_dir/TARGET.log and exit code in .rc.
run_target() {
  local t="$1" rc=0
  mkdir -p "corpus/$t"
  local opts
  mapfile -t opts < <(target_options "$t")
  cargo fuzz run --sanitizer "$SANITIZER" "$t" "corpus/$t" "seeds/$t" -- "${opts[@]}" \
    >"$logs_dir/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$logs_dir/$t.rc"
}

log "fuzzing ${#TARGETS[@]} target(s), ${SECONDS_PER_TARGET}s each, $PARALLEL at a time"
running=0
for t in "${TARGETS[@]}"; do
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  log "start $t"
  run_target "$t" &
  running=$((running + 1))
done
wait || true

# 3. Report.
failed=0
printf '\n%-14s %14s %8s  %s\n' TARGET EXECUTIONS CORPUS RESULT
for t in "${TARGETS[@]}"; do
  log_file="$logs_dir/$t.log"
  rc="$(cat "$logs_dir/$t.rc" 2>/dev/null || echo 1)"
  # "Done N runs" on a clean finish; otherwise the last "#N" status line or stat::number_of_executed_units.
  execs="$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log_file" | tail -n1)"
  [ -n "$execs" ] || execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log_file" | tail -n1)"
  [ -n "$execs" ] || execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log_file" | tail -n1)"
  corpus="$(find "corpus/$t" -type f | wc -l)"
  if [ "$rc" -eq 0 ]; then
    result="ok (no crash)"
  else
    failed=$((failed + 1))
    kind="$(grep -m1 -A1 'panicked at' "$log_file" | tail -n1 | cut -c1-160 || true)"
    [ -n "$kind" ] || kind="$(grep -o -m1 -E 'ERROR: libFuzzer: [a-z-]+' "$log_file" || true)"
    artifact="$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log_file" | head -n1)"
    case "$artifact" in ""|/*) ;; *) artifact="$REPO_ROOT/fuzz/${artifact#./}" ;; esac
    result="CRASH (exit $rc) ${kind}"
  fi
  printf '%-14s %14s %8s  %s\n' "$t" "${execs:-?}" "$corpus" "$result"
  if [ "$rc" -ne 0 ]; then
    if [ -n "$artifact" ]; then
      printf '    input: %s\n    bytes (cat -v, first 300): %s\n' "${artifact#"$REPO_ROOT/"}" \
        "$(head -c 300 "$artifact" | cat -v | sed ':a;N;$!ba;s/\n/\\n/g')"
      printf '    reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer %s %s %s)\n' \
        "$SANITIZER" "$t" "${artifact#"$REPO_ROOT/fuzz/"}"
    else
      printf -- '---- %s: end of its output ----\n' "$t"
      grep -v -E '^#[0-9]+' "$log_file" | tail -n 30
      printf -- '----\n'
    fi
  fi
done

if [ "$failed" -gt 0 ]; then
  printf '\n%d target(s) crashed\n' "$failed"
  exit 1
fi
printf '\nno crash in %d target(s)\n' "${#TARGETS[@]}"
