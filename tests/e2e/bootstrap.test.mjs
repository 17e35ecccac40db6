// Bootstrap: the first org admin, the default workspace and the first API key, exactly once.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  assertAuthFailure,
  assertNoStore,
  assertStatus,
  assertTimestamp,
  assertUser,
  loginToken,
  request,
  show,
  verify,
} from './client.mjs';

describe('bootstrap', () => {
  let srv;
  let boot; // body of the successful bootstrap

  before(async () => {
    srv = await startServer();
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  it('GET /health answers ok with a version', async () => {
    const res = await request(srv, 'GET', '/health');
    assertStatus(res, 200);
    assert.equal(res.body.status, 'ok');
    assert.equal(typeof res.body.version, 'string');
    assert.ok(res.body.version.length > 0);
  });

  it('reports bootstrap_available: true on a fresh deployment', async () => {
    const res = await request(srv, 'GET', '/v1/bootstrap');
    assertStatus(res, 200);
    assert.deepEqual(res.body, { bootstrap_available: true });
  });

  it('refuses a wrong bootstrap token with the auth_failure 401 and stays available', async () => {
    const wrong = await request(srv, 'POST', '/v1/bootstrap', {
      json: { token: `${srv.bootstrapToken}x`, email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    assertAuthFailure(wrong);
    const empty = await request(srv, 'POST', '/v1/bootstrap', {
      json: { token: '', email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
    });
    assertAuthFailure(empty);
    const after = await request(srv, 'GET', '/v1/bootstrap');
    assert.deepEqual(after.body, { bootstrap_available: true }, 'a refused bootstrap must not consume it');
  });

  it('three concurrent bootstraps: exactly one wins (201) with the admin, a default workspace and an admin API key', async () => {
    const racers = await Promise.all(
      [0, 1, 2].map((i) =>
        request(srv, 'POST', '/v1/bootstrap', {
          json: { token: srv.bootstrapToken, email: ADMIN_EMAIL, password: ADMIN_PASSWORD, name: `Ada Admin ${i}` },
        }),
      ),
    );
    const winners = racers.filter((r) => r.status === 201);
    assert.equal(winners.length, 1, `exactly one bootstrap must win: ${racers.map((r) => r.status).join(', ')}`);
    for (const loser of racers.filter((r) => r.status !== 201)) assertAuthFailure(loser);
    const res = winners[0];
    assertStatus(res, 201);
    assertNoStore(res);
    boot = res.body;
    for (const k of ['user', 'workspace', 'api_key', 'key']) assert.ok(k in boot, `bootstrap body lacks ${k}: ${show(res)}`);

    assertUser(boot.user, { email: ADMIN_EMAIL, status: 'active', org_admin: true, must_change_password: false });
    assert.match(boot.user.name, /^Ada Admin [012]$/);

    const ws = boot.workspace;
    for (const k of ['id', 'name', 'status', 'created_at']) assert.ok(k in ws, `workspace.${k} missing`);
    assert.equal(typeof ws.id, 'string');
    assertTimestamp(ws.created_at, 'workspace.created_at');

    const key = boot.api_key;
    for (const k of ['id', 'name', 'prefix', 'workspace', 'role', 'expires_at', 'created_at', 'last_used_at']) {
      assert.ok(k in key, `api_key.${k} missing: ${JSON.stringify(key)}`);
    }
    // An org-wide admin key (workspace null) or one bound to the default workspace.
    assert.ok(key.workspace === null || key.workspace === ws.id, `api_key.workspace: ${JSON.stringify(key.workspace)}`);
    assertTimestamp(key.created_at, 'api_key.created_at');
    assert.match(boot.key, /^ea_[A-Za-z0-9_-]+$/, 'key is ea_ + base62/base64url');
    // >= 128 bits: 22 base62 characters carry ~131 bits.
    assert.ok(boot.key.length - 3 >= 22, `key too short for 128 bits: ${boot.key.length}`);
    assert.equal(typeof key.prefix, 'string');
    assert.ok(key.prefix.length > 0 && key.prefix.length < boot.key.length, 'prefix is a short display prefix');
    assert.ok(boot.key.startsWith(key.prefix), `prefix ${key.prefix} is not the key's first characters`);
    assert.ok(!('hash' in key) && !('key_hash' in key) && !('secret' in key), 'api_key object exposes a secret');

    assert.ok(!res.text.includes(ADMIN_PASSWORD), 'response echoes the password');
    assert.ok(!res.text.includes(srv.bootstrapToken), 'response echoes the bootstrap token');
  });

  it('then reports bootstrap_available: false', async () => {
    assert.ok(boot, 'bootstrap must have succeeded');
    const res = await request(srv, 'GET', '/v1/bootstrap');
    assertStatus(res, 200);
    assert.deepEqual(res.body, { bootstrap_available: false });
  });

  it('refuses a second bootstrap, even with the right token, with the auth_failure 401', async () => {
    assert.ok(boot, 'bootstrap must have succeeded');
    const res = await request(srv, 'POST', '/v1/bootstrap', {
      json: { token: srv.bootstrapToken, email: 'second@example.com', password: 'another password 123' },
    });
    assertAuthFailure(res);
    const wrong = await request(srv, 'POST', '/v1/bootstrap', {
      json: { token: 'not-the-token', email: 'third@example.com', password: 'another password 123' },
    });
    assertAuthFailure(wrong);
    // The refused admin does not exist: logging in as them fails too.
    const login = await request(srv, 'POST', '/v1/auth/login', {
      json: { email: 'second@example.com', password: 'another password 123', session: 'token' },
    });
    assertAuthFailure(login);
  });

  it('the bootstrap API key authenticates GET /v1/me as the admin', async () => {
    const res = await request(srv, 'GET', '/v1/me', { bearer: boot.key });
    assertStatus(res, 200);
    assertUser(res.body.user, { id: boot.user.id, email: ADMIN_EMAIL });
    assert.equal(res.body.org_admin, true);
    assert.equal(res.body.api_key_id, boot.api_key.id);
    assert.ok(!('session_id' in res.body) || res.body.session_id == null, 'an API key has no session');
    assert.ok(Array.isArray(res.body.memberships));
    const m = res.body.memberships.find((x) => x.workspace_id === boot.workspace.id);
    assert.ok(m, `no membership in the default workspace: ${JSON.stringify(res.body.memberships)}`);
    assert.equal(m.role, 'admin');
  });

  it('a wrong API key is the auth_failure 401', async () => {
    const mangled = boot.key.slice(0, -1) + (boot.key.endsWith('A') ? 'B' : 'A');
    assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: mangled }));
    assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: 'ea_' + 'x'.repeat(32) }));
    assertAuthFailure(await request(srv, 'GET', '/v1/me'));
  });

  it('POST /v1/verify resolves the API key', async () => {
    const v = await verify(srv, boot.key);
    assert.equal(v.active, true, JSON.stringify(v));
    assert.equal(v.kind, 'api_key');
    assert.equal(v.key_id, boot.api_key.id);
    assert.equal(v.sub, boot.user.id);
    assert.equal(typeof v.org, 'string');
    assert.deepEqual(await verify(srv, boot.key + 'x'), { active: false });
  });

  it('the bootstrap password logs in (email case-insensitively), and only that password', async () => {
    const { body } = await loginToken(srv);
    assert.equal(body.user.id, boot.user.id);
    const upper = await loginToken(srv, { email: ADMIN_EMAIL.toUpperCase() });
    assert.equal(upper.body.user.id, boot.user.id);
    const bad = await request(srv, 'POST', '/v1/auth/login', {
      json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD + '!', session: 'token' },
    });
    assertAuthFailure(bad);
  });
});
