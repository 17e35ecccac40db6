# Shared helpers for scripts/*.sh. Source it; do not run it.
# Sets REPO_ROOT, cds there, puts cargo's bin dir on PATH and disables wrangler telemetry.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ -d "$CARGO_BIN_DIR" ]; then
  case ":$PATH:" in
    *":$CARGO_BIN_DIR:"*) ;;
    *) export PATH="$CARGO_BIN_DIR:$PATH" ;;
  esac
fi

export WRANGLER_SEND_METRICS=false

# Versions pinned by this repository.
WORKER_BUILD_VERSION="0.8.7"
NODE_BIN_DIR="$REPO_ROOT/node_modules/.bin"

log()  { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# The wasm-bindgen version Cargo.lock pins (the CLI must match it exactly).
lockfile_wasm_bindgen_version() {
  [ -f Cargo.lock ] || die "Cargo.lock is missing in $REPO_ROOT (run: cargo generate-lockfile)"
  local v
  v="$(awk '
    /^\[\[package\]\]/ { name = "" }
    /^name = /         { name = $3 }
    /^version = / && name == "\"wasm-bindgen\"" { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.lock)"
  [ -n "$v" ] || die "no wasm-bindgen package entry in Cargo.lock"
  printf '%s\n' "$v"
}

# Version of an installed wasm-bindgen CLI ("" when absent). Arg: path to the binary.
installed_wasm_bindgen_version() {
  local bin="$1"
  [ -x "$bin" ] || { printf '\n'; return 0; }
  "$bin" --version 2>/dev/null | awk '{print $2; exit}'
}

# Version of an installed worker-build ("" when absent).
installed_worker_build_version() {
  local bin="$CARGO_BIN_DIR/worker-build"
  [ -x "$bin" ] || { printf '\n'; return 0; }
  "$bin" --version 2>/dev/null | awk '{print $NF; exit}'
}

# 32 bytes of randomness as 64 lowercase hex chars (arg: number of bytes).
random_hex() {
  local bytes="${1:-32}"
  if [ -r /dev/urandom ]; then
    od -An -tx1 -N"$bytes" /dev/urandom | tr -d ' \n'
  else
    openssl rand -hex "$bytes"
  fi
}
