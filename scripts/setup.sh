#!/usr/bin/env bash
# Idempotent installer for everything edgeauth needs to build, run and test.
# Safe (and fast) to run every time: each step checks first and only installs what is missing
# or at the wrong version.
#   - rustup target wasm32-unknown-unknown, components rustfmt + clippy
#   - worker-build 0.8.7                     (cargo install)
#   - wasm-bindgen-cli = Cargo.lock's wasm-bindgen version (cargo install, no --locked:
#     its lockfile wants a webpki-roots version the index lacks)
#   - npm devDependencies (npm ci) when node_modules is missing or older than package-lock.json
#   - Debian's chromium (/usr/bin/chromium, apt-get) for the browser tests driven by playwright-core
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
[ -f node_modules/playwright-core/package.json ] || die "node_modules/playwright-core missing after npm ci"

# 5. Chromium for tests/e2e/browser.test.mjs (playwright-core drives it; it never downloads a
#    browser of its own). Debian's package, through apt-get, as root (or passwordless sudo).
CHROMIUM=/usr/bin/chromium
# Another apt-get/dpkg (an earlier background install, say) holds the dpkg lock: wait for it to
# finish, then look again, instead of starting a second apt next to it.
wait_for_apt() {
  local waited=0
  while pgrep -x 'apt-get|apt|dpkg|unattended-upgr' >/dev/null; do
    [ "$waited" -eq 0 ] && log "waiting for a running apt-get/dpkg to finish"
    [ "$waited" -ge 1800 ] && die "apt-get/dpkg still running after ${waited}s; retry when it has finished"
    sleep 5
    waited=$((waited + 5))
  done
}
if [ ! -x "$CHROMIUM" ]; then
  wait_for_apt
fi
if [ ! -x "$CHROMIUM" ]; then
  command -v apt-get >/dev/null \
    || die "$CHROMIUM not found and apt-get is unavailable: install Chromium so that $CHROMIUM exists"
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    die "$CHROMIUM not found; installing it needs root: sudo apt-get install -y chromium"
  fi
  log "installing Debian's chromium (apt-get; takes a minute or two)"
  "${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq \
    || die "apt-get update failed"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium \
    || die "apt-get install chromium failed"
  [ -x "$CHROMIUM" ] || die "$CHROMIUM missing after apt-get install chromium"
fi

log "setup complete in $(( $(date +%s) - start ))s (worker-build $(installed_worker_build_version), wasm-bindgen $(installed_wasm_bindgen_version "$CARGO_BIN_DIR/wasm-bindgen"), wrangler $(node -p 'require("./node_modules/wrangler/package.json").version'), $("$CHROMIUM" --version 2>/dev/null | head -n1))"
