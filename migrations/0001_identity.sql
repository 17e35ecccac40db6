-- 0001: the whole identity model of design.md section 2.
-- Conventions: ids are TEXT (UUIDv7), timestamps are INTEGER unix seconds (well below 2^53, so D1's
-- JavaScript doubles carry them exactly), booleans are INTEGER 0/1. Every core table carries org_id so
-- a multi-tenant deployment needs no migration.

CREATE TABLE schema_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT INTO schema_meta (key, value) VALUES ('schema_version', '1');

-- One organisation per deployment, created here so every later row can reference it.
CREATE TABLE organisations (
  id         TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
INSERT INTO organisations (id, name, created_at) VALUES ('default', 'Default organisation', unixepoch());

CREATE TABLE users (
  id                   TEXT PRIMARY KEY,
  org_id               TEXT NOT NULL REFERENCES organisations(id),
  email                TEXT NOT NULL,              -- normalised: trimmed, lower-case
  username             TEXT,                       -- normalised like email; optional
  name                 TEXT NOT NULL DEFAULT '',
  status               TEXT NOT NULL CHECK (status IN ('active', 'pending', 'disabled')),
  org_admin            INTEGER NOT NULL DEFAULT 0 CHECK (org_admin IN (0, 1)),
  must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
  created_by           TEXT,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_org_email ON users (org_id, email);
CREATE UNIQUE INDEX users_org_username ON users (org_id, username) WHERE username IS NOT NULL;

-- A PHC string carries algorithm, iterations, salt and hash, so the cost can be raised later and old
-- records upgraded at the next login.
CREATE TABLE password_credentials (
  user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
  org_id     TEXT NOT NULL REFERENCES organisations(id),
  phc        TEXT NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE workspaces (
  id         TEXT PRIMARY KEY,
  org_id     TEXT NOT NULL REFERENCES organisations(id),
  name       TEXT NOT NULL,
  status     TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX workspaces_org ON workspaces (org_id, id);

CREATE TABLE memberships (
  org_id       TEXT NOT NULL REFERENCES organisations(id),
  workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
  user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role         TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
  created_at   INTEGER NOT NULL,
  PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Capabilities per role, editable by org admins; seeded with the defaults of design.md.
CREATE TABLE role_capabilities (
  org_id     TEXT NOT NULL REFERENCES organisations(id),
  role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
  capability TEXT NOT NULL,
  PRIMARY KEY (org_id, role, capability)
);
INSERT INTO role_capabilities (org_id, role, capability) VALUES
  ('default', 'viewer', '*:read'),
  ('default', 'editor', '*:read'),
  ('default', 'editor', '*:write'),
  ('default', 'admin', '*');

-- One row per login. The refresh token is never stored: it is HMAC(refresh key, id, generation,
-- refresh_nonce), and only its SHA-256 (and the previous generation's) is kept, for lineage and audit.
CREATE TABLE sessions (
  id                  TEXT PRIMARY KEY,
  org_id              TEXT NOT NULL REFERENCES organisations(id),
  user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  workspace_id        TEXT,
  auth_method         TEXT NOT NULL CHECK (auth_method IN ('pwd', 'email')),
  device_label        TEXT,
  ip                  TEXT,
  user_agent          TEXT,
  created_at          INTEGER NOT NULL,
  last_active_at      INTEGER NOT NULL,
  expires_at          INTEGER NOT NULL,  -- idle expiry, never later than absolute_expires_at
  absolute_expires_at INTEGER NOT NULL,
  refresh_nonce       TEXT NOT NULL,
  generation          INTEGER NOT NULL DEFAULT 0,
  refresh_hash        TEXT NOT NULL,
  prev_refresh_hash   TEXT,
  rotated_at          INTEGER,
  revoked_at          INTEGER,
  revoked_reason      TEXT CHECK (revoked_reason IS NULL OR revoked_reason IN (
                        'logout', 'user_terminated', 'admin_revoked', 'password_changed',
                        'reuse_detected', 'user_disabled', 'expired', 'session_cap_eviction'))
);
CREATE INDEX sessions_user_live ON sessions (user_id, revoked_at, last_active_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  org_id       TEXT NOT NULL REFERENCES organisations(id),
  user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  workspace_id TEXT REFERENCES workspaces(id) ON DELETE CASCADE,
  name         TEXT NOT NULL,
  prefix       TEXT NOT NULL,                 -- first characters, for display only
  key_hash     TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the whole key
  role         TEXT CHECK (role IS NULL OR role IN ('viewer', 'editor', 'admin')),  -- ceiling
  expires_at   INTEGER,
  created_at   INTEGER NOT NULL,
  last_used_at INTEGER,
  revoked_at   INTEGER
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- Magic-link and email-verification attempts: token, code and browser binding are stored hashed.
CREATE TABLE magic_link_attempts (
  id            TEXT PRIMARY KEY,
  org_id        TEXT NOT NULL REFERENCES organisations(id),
  email         TEXT NOT NULL,
  user_id       TEXT REFERENCES users(id) ON DELETE CASCADE,
  purpose       TEXT NOT NULL CHECK (purpose IN ('login', 'verify_email')),
  token_hash    TEXT NOT NULL UNIQUE,
  code_hash     TEXT NOT NULL,
  binding_hash  TEXT NOT NULL,
  redirect_to   TEXT,
  session_mode  TEXT NOT NULL CHECK (session_mode IN ('cookie', 'token')),
  code_failures INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  expires_at    INTEGER NOT NULL,
  consumed_at   INTEGER
);
CREATE INDEX magic_link_email ON magic_link_attempts (org_id, email, created_at);
CREATE INDEX magic_link_expiry ON magic_link_attempts (expires_at);

-- Public halves only. A private key is derived from the SIGNING_SECRET Worker secret and seed_salt,
-- so nothing here can sign.
CREATE TABLE signing_keys (
  kid           TEXT PRIMARY KEY,
  org_id        TEXT NOT NULL REFERENCES organisations(id),
  public_key    TEXT NOT NULL,                -- base64url, 32 bytes
  seed_salt     TEXT NOT NULL,                -- base64url, 32 random bytes
  status        TEXT NOT NULL CHECK (status IN ('current', 'retired')),
  created_at    INTEGER NOT NULL,
  retired_at    INTEGER,
  publish_until INTEGER                       -- a retired key stays in the JWKS until then
);
-- At most one current key per organisation: concurrent first requests cannot create two.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (org_id) WHERE status = 'current';

-- Who did what to whom, when, from where, with what outcome. Never a password, token or key.
CREATE TABLE audit_events (
  id          TEXT PRIMARY KEY,               -- UUIDv7: time-ordered, used as the paging cursor
  org_id      TEXT NOT NULL REFERENCES organisations(id),
  occurred_at INTEGER NOT NULL,
  actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'anonymous', 'system')),
  actor_id    TEXT,
  action      TEXT NOT NULL,
  target_kind TEXT,
  target_id   TEXT,
  outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
  ip          TEXT,
  user_agent  TEXT,
  detail      TEXT                            -- JSON object, free of secrets
);
CREATE INDEX audit_org_id ON audit_events (org_id, id);
CREATE INDEX audit_actor ON audit_events (org_id, actor_id, id);
CREATE INDEX audit_action ON audit_events (org_id, action, id);

-- Fixed-window counters for rate limits and account lockout, keyed by purpose and subject.
CREATE TABLE rate_limits (
  key          TEXT PRIMARY KEY,              -- e.g. 'login:user:<id>', 'login:ip:<ip>'
  org_id       TEXT NOT NULL REFERENCES organisations(id),
  window_start INTEGER NOT NULL,
  count        INTEGER NOT NULL,
  locked_until INTEGER,
  expires_at   INTEGER NOT NULL
);
CREATE INDEX rate_limits_expiry ON rate_limits (expires_at);
