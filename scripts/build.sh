#!/usr/bin/env bash
# Builds the Worker (Rust -> wasm -> JS shim) with worker-build, fully offline.
# This is wrangler.toml's `[build] command`; it can also be run by hand.
#
# Environment:
#   EDGEAUTH_PROFILE=release  (default) cargo release profile + wasm-opt, name section stripped
#                             (kept in target/index_bg.names.wasm) -> smallest/fastest .wasm
#   EDGEAUTH_PROFILE=dev      cargo release profile, wasm-opt skipped (--no-opt) -> fast rebuilds
#   EDGEAUTH_SKIP_BUILD=1     do nothing if a build already exists (tests build once, then start
#                             many `wrangler dev` servers, each of which runs this command twice)
#   EDGEAUTH_CRATE_DIR=DIR    build the Worker crate in DIR (relative to the repository root, or
#                             absolute) instead of edgeauth itself, e.g. examples/consumer-rs; its
#                             output lands in DIR/build/ (default: the repository root, build/)
# Extra arguments are passed on to worker-build.
#
# worker-build would download wasm-bindgen, wasm-opt and esbuild from the internet; we point it at
# local copies instead (WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

crate_dir="${EDGEAUTH_CRATE_DIR:-.}"
[ -f "$crate_dir/Cargo.toml" ] || die "EDGEAUTH_CRATE_DIR=$crate_dir has no Cargo.toml (relative to $REPO_ROOT)"
cd "$crate_dir"
crate_label="${EDGEAUTH_CRATE_DIR:-edgeauth}"

OUT_ENTRY="build/worker/shim.mjs"   # worker-build's entry (edgeauth's own, src/edge/entry.mjs, wraps build/index.js)
OUT_WASM="build/index_bg.wasm"

if [ "${EDGEAUTH_SKIP_BUILD:-0}" = "1" ] && [ -f "$OUT_ENTRY" ] && [ -f "$OUT_WASM" ]; then
  log "EDGEAUTH_SKIP_BUILD=1 and $OUT_ENTRY exists in $crate_label: skipping build"
  exit 0
fi

profile="${EDGEAUTH_PROFILE:-release}"
case "$profile" in
  release) wb_args=(--release) ;;
  dev)     wb_args=(--release --no-opt) ;;
  *) die "EDGEAUTH_PROFILE must be 'release' or 'dev' (got '$profile')" ;;
esac

# Tools: all must be present locally, or worker-build would try (and fail) to download them.
command -v worker-build >/dev/null \
  || die "worker-build not found (expected in $CARGO_BIN_DIR). Run: bash scripts/setup.sh"
wasm_bindgen_bin="$CARGO_BIN_DIR/wasm-bindgen"
[ -x "$wasm_bindgen_bin" ] || wasm_bindgen_bin="$(command -v wasm-bindgen || true)"
[ -n "$wasm_bindgen_bin" ] && [ -x "$wasm_bindgen_bin" ] \
  || die "wasm-bindgen CLI not found. Run: bash scripts/setup.sh"
[ -x "$NODE_BIN_DIR/wasm-opt" ] || die "node_modules/.bin/wasm-opt not found. Run: bash scripts/setup.sh"
[ -x "$NODE_BIN_DIR/esbuild" ]  || die "node_modules/.bin/esbuild not found. Run: bash scripts/setup.sh"

want_wbg="$(lockfile_wasm_bindgen_version)"
have_wbg="$(installed_wasm_bindgen_version "$wasm_bindgen_bin")"
if [ "$have_wbg" != "$want_wbg" ]; then
  die "wasm-bindgen CLI version mismatch: $wasm_bindgen_bin is ${have_wbg:-unknown}, Cargo.lock pins $want_wbg.
       The CLI must equal the library exactly. Run: bash scripts/setup.sh
       (or: cargo install wasm-bindgen-cli --version $want_wbg --force)"
fi

export WASM_BINDGEN_BIN="$wasm_bindgen_bin"
export WASM_OPT_BIN="$NODE_BIN_DIR/wasm-opt"
export ESBUILD_BIN="$NODE_BIN_DIR/esbuild"

log "worker-build ${wb_args[*]} $* in $crate_label (EDGEAUTH_PROFILE=$profile, wasm-bindgen $have_wbg)"
start=$(date +%s)
worker-build "${wb_args[@]}" "$@"
elapsed=$(( $(date +%s) - start ))

[ -f "$OUT_ENTRY" ] || die "worker-build finished but $OUT_ENTRY is missing (wrangler.toml's main)"
[ -f "$OUT_WASM" ]  || die "worker-build finished but $OUT_WASM is missing"

# worker-build keeps the wasm name section (it passes --debuginfo to wasm-opt): ~10% of the gzipped
# release .wasm that nothing at runtime reads. Ship without it; keep the named copy out of build/ for
# reading `wasm-function[N]` in a stack trace (see scripts/strip-names.mjs).
OUT_NAMES="target/index_bg.names.wasm"
if [ "$profile" = "release" ]; then
  mkdir -p "$(dirname "$OUT_NAMES")"
  node "$REPO_ROOT/scripts/strip-names.mjs" "$OUT_WASM" "$OUT_NAMES" >/dev/null \
    || die "could not strip the name section from $OUT_WASM"
fi

raw=$(wc -c <"$OUT_WASM")
if [ "$profile" = "release" ]; then
  gz=$(gzip -9 -c "$OUT_WASM" | wc -c)
  log "release build done in ${elapsed}s: $OUT_WASM $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip -9 ($gz bytes)"
else
  log "$profile build done in ${elapsed}s: $OUT_WASM $((raw / 1024)) KiB raw (not optimised)"
fi
