#!/usr/bin/env bash
# Idempotent installer for everything edgeauth needs to build, run and test.
# Safe (and fast) to run every time: each step checks first and only installs what is missing
# or at the wrong version.
#   - rustup target wasm32-unknown-unknown, components rustfmt + clippy
#   - worker-build 0.8.7                     (cargo install)
#   - wasm-bindgen-cli = Cargo.lock's wasm-bindgen version (cargo install, no --locked:
#     its lockfile wants a webpki-roots version the index lacks)
#   - npm devDependencies (npm ci) when node_modules is missing or older than package-lock.json
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start=$(date +%s)

command -v cargo  >/dev/null || die "cargo not found: install Rust with rustup first"
command -v rustup >/dev/null || die "rustup not found: the wasm32 target is added with rustup"
command -v node   >/dev/null || die "node not found: install Node.js 20 or later"
command -v npm    >/dev/null || die "npm not found"

# 1. Rust target and components.
installed_targets="$(rustup target list --installed)"
if ! grep -qx 'wasm32-unknown-unknown' <<<"$installed_targets"; then
  log "adding rustup target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
installed_components="$(rustup component list --installed)"
for comp in rustfmt clippy; do
  if ! grep -q "^${comp}" <<<"$installed_components"; then
    log "adding rustup component $comp"
    rustup component add "$comp"
  fi
done

# 2. worker-build.
have_wb="$(installed_worker_build_version)"
if [ "$have_wb" != "$WORKER_BUILD_VERSION" ]; then
  log "installing worker-build $WORKER_BUILD_VERSION (found: ${have_wb:-none}; takes a few minutes)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --force
fi

# 3. wasm-bindgen-cli, exactly the version Cargo.lock pins.
want_wbg="$(lockfile_wasm_bindgen_version)"
have_wbg="$(installed_wasm_bindgen_version "$CARGO_BIN_DIR/wasm-bindgen")"
if [ "$have_wbg" != "$want_wbg" ]; then
  log "installing wasm-bindgen-cli $want_wbg (found: ${have_wbg:-none}; takes a few minutes)"
  cargo install wasm-bindgen-cli --version "$want_wbg" --force
fi

# 4. npm devDependencies (wrangler, esbuild, binaryen/wasm-opt, jose).
stamp="node_modules/.edgeauth-npm-ci.stamp"
if [ ! -d node_modules ] || [ ! -f "$stamp" ] \
   || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
  touch "$stamp"
fi
for bin in wrangler esbuild wasm-opt; do
  [ -x "$NODE_BIN_DIR/$bin" ] || die "node_modules/.bin/$bin missing after npm ci"
done

log "setup complete in $(( $(date +%s) - start ))s (worker-build $(installed_worker_build_version), wasm-bindgen $(installed_wasm_bindgen_version "$CARGO_BIN_DIR/wasm-bindgen"), wrangler $(node -p 'require("./node_modules/wrangler/package.json").version'))"
