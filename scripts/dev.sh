#!/usr/bin/env bash
# Start edgeauth locally: `bash scripts/dev.sh`
#   1. installs/checks the toolchain (scripts/setup.sh),
#   2. on first run writes a git-ignored .dev.vars with random SIGNING_SECRET and BOOTSTRAP_TOKEN
#      (an existing .dev.vars is never overwritten),
#   3. applies the D1 migrations to the local database (.wrangler/state),
#   4. prints how to create the first admin,
#   5. runs `wrangler dev` on http://localhost:${PORT:-8787} with the fast build (no wasm-opt).
# Environment: PORT (default 8787), EDGEAUTH_PROFILE (default dev; release = optimised build).
# Extra arguments are passed on to `wrangler dev`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${PORT:-8787}"
export EDGEAUTH_PROFILE="${EDGEAUTH_PROFILE:-dev}"

bash scripts/setup.sh

# Local secrets.
if [ ! -f .dev.vars ]; then
  log "writing .dev.vars with fresh random SIGNING_SECRET and BOOTSTRAP_TOKEN (git-ignored)"
  (
    umask 077
    {
      echo "# Local secrets for wrangler dev (git-ignored). In production: npx wrangler secret put NAME"
      echo "SIGNING_SECRET=$(random_hex 32)"
      echo "BOOTSTRAP_TOKEN=$(random_hex 16)"
      echo "# MAIL_API_KEY=  (unset: magic-link mail is not sent for real)"
    } >.dev.vars
  )
else
  log "using existing .dev.vars"
fi
bootstrap_token="$(sed -n 's/^[[:space:]]*BOOTSTRAP_TOKEN[[:space:]]*=[[:space:]]*//p' .dev.vars | tail -n 1 | tr -d "\"'\r")"
[ -n "$bootstrap_token" ] || warn ".dev.vars has no BOOTSTRAP_TOKEN: POST /v1/bootstrap will be refused"
grep -q '^[[:space:]]*SIGNING_SECRET[[:space:]]*=' .dev.vars \
  || warn ".dev.vars has no SIGNING_SECRET: add SIGNING_SECRET=<64 hex chars> (or delete .dev.vars to regenerate it)"

# Local D1 migrations (non-interactive: CI=true makes wrangler take the default 'yes').
if compgen -G "migrations/*.sql" >/dev/null; then
  log "applying D1 migrations locally"
  CI=true "$NODE_BIN_DIR/wrangler" d1 migrations apply DB --local </dev/null
else
  warn "no migrations/*.sql yet: skipping D1 migrations"
fi

url="http://localhost:$PORT"
extra_vars=()
if [ "$PORT" != "8787" ]; then
  # wrangler.toml's PUBLIC_URL / ALLOWED_ORIGINS assume :8787.
  extra_vars=(--var "PUBLIC_URL:$url" --var "ALLOWED_ORIGINS:$url")
fi

cat <<MSG

------------------------------------------------------------------------------
edgeauth is starting on $url  (EDGEAUTH_PROFILE=$EDGEAUTH_PROFILE)

Create the first admin (once per local database; choose your own password):

  curl -sS -X POST $url/v1/bootstrap \\
    -H 'content-type: application/json' \\
    -d '{"token":"${bootstrap_token}","email":"admin@example.com","password":"<choose one>"}'

Then sign in at $url/login (or $url/account). Without MAIL_ENDPOINT, magic-link
mails (link and code) are printed in this log.

Health check:  curl -sS $url/health
Local state (D1, KV): .wrangler/state   Secrets: .dev.vars
------------------------------------------------------------------------------

MSG

exec "$NODE_BIN_DIR/wrangler" dev --ip 127.0.0.1 --port "$PORT" "${extra_vars[@]}" "$@"
