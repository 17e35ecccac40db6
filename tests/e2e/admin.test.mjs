// Administration rules end to end (one server for the file): workspace boundaries, mass assignment
// on self-service updates, what disabling a user ends, API-key revocation and expiry and the secrecy
// of the plaintext, /v1/authorize decisions and their audit trail, and the last org admin.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  ADMIN_EMAIL,
  absentId,
  assertActive,
  assertAuthFailure,
  assertError,
  assertInactive,
  assertStatus,
  assertUser,
  auditAll,
  bootstrap,
  createApiKey,
  createUser,
  createWorkspace,
  loginRaw,
  loginToken,
  refreshToken,
  request,
  show,
  sleep,
  verify,
} from './client.mjs';

const PASSWORD = 'admin suite password 1234';

describe('administration', () => {
  let srv;
  let boot;
  let W; // bootstrap workspace
  let X; // second workspace
  let admin; // admin session (token mode)
  const u = {}; // name -> user
  const s = {}; // name -> token-mode session
  const plaintexts = []; // every API key secret handed out in this file

  const login = (name) => loginToken(srv, { email: `${name}@admin.example`, password: PASSWORD });
  const as = (bearer, method, path, json) => request(srv, method, path, { bearer, json });

  before(async () => {
    srv = await startServer({ name: 'admin' });
    boot = await bootstrap(srv);
    plaintexts.push(boot.key);
    W = boot.workspace.id;
    admin = await loginToken(srv);
    X = (await createWorkspace(srv, admin.access, 'Admin X')).id;
    for (const [name, workspace, role] of [
      ['wsadmin', W, 'admin'],
      ['editor', W, 'editor'],
      ['outsider', X, 'viewer'],
      ['victim', W, 'editor'],
    ]) {
      u[name] = await createUser(srv, admin.access, { email: `${name}@admin.example`, name, password: PASSWORD, workspace, role });
      assert.equal(u[name].org_admin, false);
    }
    for (const name of ['wsadmin', 'editor', 'outsider']) s[name] = await login(name);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  describe('last org admin', () => {
    it('PATCH {"org_admin": false} on the only org admin is 409 and changes nothing', async () => {
      const users = await as(admin.access, 'GET', '/v1/users?limit=200');
      assertStatus(users, 200);
      assert.deepEqual(users.body.users.filter((x) => x.org_admin).map((x) => x.id), [boot.user.id], 'precondition: one org admin');

      const res = await as(admin.access, 'PATCH', `/v1/users/${boot.user.id}`, { org_admin: false });
      assertError(res, 409, 'conflict');
      // Through the org-admin API key as well.
      assertError(await as(boot.key, 'PATCH', `/v1/users/${boot.user.id}`, { org_admin: false }), 409, 'conflict');

      const me = await as(admin.access, 'GET', '/v1/me');
      assertStatus(me, 200);
      assert.equal(me.body.org_admin, true);
      assert.equal(me.body.user.org_admin, true);
      assertStatus(await as(admin.access, 'GET', '/v1/users'), 200);
    });
  });

  describe('workspace boundaries', () => {
    it('the admin of W manages W members but gets 403 on every member route of X, and X is unchanged', async () => {
      const own = await as(s.wsadmin.access, 'GET', `/v1/workspaces/${W}/members`);
      assertStatus(own, 200);
      assert.ok(own.body.members.some((m) => m.user_id === u.editor.id), show(own));

      assertError(await as(s.wsadmin.access, 'GET', `/v1/workspaces/${X}/members`), 403, 'forbidden');
      assertError(await as(s.wsadmin.access, 'PUT', `/v1/workspaces/${X}/members/${u.outsider.id}`, { role: 'admin' }), 403, 'forbidden');
      assertError(await as(s.wsadmin.access, 'PUT', `/v1/workspaces/${X}/members/${u.wsadmin.id}`, { role: 'admin' }), 403, 'forbidden');
      assertError(await as(s.wsadmin.access, 'DELETE', `/v1/workspaces/${X}/members/${u.outsider.id}`), 403, 'forbidden');
      assertError(await as(s.wsadmin.access, 'GET', `/v1/workspaces/${X}`), 403, 'forbidden');

      const x = await as(admin.access, 'GET', `/v1/workspaces/${X}/members`);
      assertStatus(x, 200);
      const members = x.body.members.map((m) => [m.user_id, m.role]);
      assert.deepEqual(members, [[u.outsider.id, 'viewer']], `X members changed: ${show(x)}`);
    });

    it('the outsider (member of X only) gets 403 on W and lists only X', async () => {
      assertError(await as(s.outsider.access, 'GET', `/v1/workspaces/${W}`), 403, 'forbidden');
      assertError(await as(s.outsider.access, 'GET', `/v1/workspaces/${W}/members`), 403, 'forbidden');
      const list = await as(s.outsider.access, 'GET', '/v1/workspaces');
      assertStatus(list, 200);
      assert.deepEqual(list.body.workspaces.map((w) => w.id), [X], show(list));
      const own = await as(s.outsider.access, 'GET', `/v1/workspaces/${X}`);
      assertStatus(own, 200);
      assert.equal(own.body.workspace.id, X);
    });
  });

  describe('mass assignment on self-service', () => {
    it('a non-admin cannot make themself org admin; their name change works', async () => {
      const self = `/v1/users/${u.editor.id}`;
      for (const body of [{ org_admin: true }, { name: 'Eve Editor', org_admin: true }]) {
        const res = await as(s.editor.access, 'PATCH', self, body);
        if (res.status === 200) {
          assert.equal(res.body.user.org_admin, false, `PATCH ${JSON.stringify(body)} was accepted and applied: ${show(res)}`);
        } else {
          assertError(res, 403, 'forbidden');
        }
      }
      // Other fields an admin would set are not self-service either.
      for (const body of [{ email: 'boss@admin.example' }, { org_admin: false, name: 'x' }]) {
        const res = await as(s.editor.access, 'PATCH', self, body);
        if (res.status !== 403) assert.ok(res.status === 200 && res.body.user.email === u.editor.email, `PATCH ${JSON.stringify(body)}: ${show(res)}`);
      }

      const me = await as(s.editor.access, 'GET', '/v1/me');
      assertStatus(me, 200);
      assert.equal(me.body.org_admin, false, show(me));
      assert.equal(me.body.user.org_admin, false, show(me));
      assertError(await as(s.editor.access, 'GET', '/v1/users'), 403, 'forbidden');
      const seen = await as(admin.access, 'GET', self);
      assertStatus(seen, 200);
      assert.equal(seen.body.user.org_admin, false, show(seen));

      const ok = await as(s.editor.access, 'PATCH', self, { name: 'x' });
      assertStatus(ok, 200);
      assertUser(ok.body.user, { id: u.editor.id, name: 'x', org_admin: false });
      const again = await as(s.editor.access, 'GET', self);
      assertStatus(again, 200);
      assert.equal(again.body.user.name, 'x');

      // Someone else's record stays out of reach.
      assertError(await as(s.editor.access, 'PATCH', `/v1/users/${u.outsider.id}`, { name: 'y' }), 403, 'forbidden');
      assertError(await as(s.editor.access, 'GET', `/v1/users/${u.outsider.id}`), 403, 'forbidden');
    });
  });

  describe('disabling a user', () => {
    it('ends password login, refresh, their API keys and access tokens; enable restores login', async () => {
      const victim = await login('victim');
      const created = await createApiKey(srv, victim.access, { name: 'victim key' });
      plaintexts.push(created.key);
      // Before: everything works.
      assertStatus(await as(created.key, 'GET', '/v1/me'), 200);
      await assertActive(srv, created.key, 'victim API key before disable');
      await assertActive(srv, victim.access, 'victim access token before disable');

      const off = await as(admin.access, 'POST', `/v1/users/${u.victim.id}/disable`, {});
      assertStatus(off, 200);
      assertUser(off.body.user, { id: u.victim.id, status: 'disabled' });

      assertAuthFailure(await loginRaw(srv, { email: 'victim@admin.example', password: PASSWORD, session: 'token' }));
      assertAuthFailure(await refreshToken(srv, victim.refresh));
      assertAuthFailure(await as(created.key, 'GET', '/v1/me'));
      await assertInactive(srv, created.key, 'victim API key after disable');
      await assertInactive(srv, victim.access, 'victim access token after disable');
      assertAuthFailure(await as(victim.access, 'GET', '/v1/me'));
      const seen = await as(admin.access, 'GET', `/v1/users/${u.victim.id}`);
      assert.equal(seen.body.user.status, 'disabled', show(seen));

      const on = await as(admin.access, 'POST', `/v1/users/${u.victim.id}/enable`, {});
      assertStatus(on, 200);
      assertUser(on.body.user, { id: u.victim.id, status: 'active' });
      const back = await loginToken(srv, { email: 'victim@admin.example', password: PASSWORD });
      await assertActive(srv, back.access, 'a new session after enable');
      // What was ended stays ended.
      assertAuthFailure(await refreshToken(srv, victim.refresh));
      await assertInactive(srv, victim.access, 'the pre-disable access token after enable');
    });
  });

  describe('API keys', () => {
    it('a revoked key is inactive and refused', async () => {
      const k = await createApiKey(srv, admin.access, { name: 'to revoke' });
      plaintexts.push(k.key);
      const v = await assertActive(srv, k.key, 'fresh key');
      assert.equal(v.kind, 'api_key');
      assert.equal(v.key_id, k.api_key.id);
      assertStatus(await as(admin.access, 'DELETE', `/v1/api-keys/${k.api_key.id}`), 204);
      await assertInactive(srv, k.key, 'revoked key');
      assertAuthFailure(await as(k.key, 'GET', '/v1/me'));
      // Gone from the list, and a second revoke finds nothing.
      const list = await as(admin.access, 'GET', '/v1/api-keys');
      assertStatus(list, 200);
      assert.ok(!list.body.api_keys.some((x) => x.id === k.api_key.id), `revoked key still listed: ${show(list)}`);
      assertError(await as(admin.access, 'DELETE', `/v1/api-keys/${k.api_key.id}`), 404, 'not_found');
    });

    it('another user cannot revoke someone else\'s key (404, key stays active)', async () => {
      const k = await createApiKey(srv, admin.access, { name: 'not yours' });
      plaintexts.push(k.key);
      assertError(await as(s.editor.access, 'DELETE', `/v1/api-keys/${k.api_key.id}`), 404, 'not_found');
      await assertActive(srv, k.key, 'key after a foreign revoke attempt');
    });

    it('an expired key is inactive and refused', async () => {
      const expiresAt = new Date(Date.now() + 3000).toISOString();
      const k = await createApiKey(srv, admin.access, { name: 'short lived', expires_at: expiresAt });
      plaintexts.push(k.key);
      assert.ok(Math.abs(Date.parse(k.api_key.expires_at) - Date.parse(expiresAt)) < 1000, `expires_at echoed: ${k.api_key.expires_at}`);
      const early = await verify(srv, k.key);
      // (Normally still active; a very slow first request may already be past the expiry.)
      if (Date.now() < Date.parse(expiresAt) - 500) assert.equal(early.active, true, JSON.stringify(early));
      const wait = Date.parse(expiresAt) + 1500 - Date.now();
      if (wait > 0) await sleep(wait);
      await assertInactive(srv, k.key, 'expired key');
      assertAuthFailure(await as(k.key, 'GET', '/v1/me'));
    });

    it('a key with a viewer ceiling cannot mint a stronger key', async () => {
      const k = await createApiKey(srv, admin.access, { name: 'viewer ceiling', role: 'viewer' });
      plaintexts.push(k.key);
      assertError(await as(k.key, 'POST', '/v1/api-keys', { name: 'escalate', role: 'admin' }), 403, 'forbidden');
      assertError(await as(k.key, 'POST', '/v1/api-keys', { name: 'escalate' }), 403, 'forbidden');
      const child = await createApiKey(srv, k.key, { name: 'child', role: 'viewer' });
      plaintexts.push(child.key);
    });

    it('the plaintext of a key never appears after creation: /v1/api-keys, every /v1/audit page, /v1/me', async () => {
      const responses = [];
      responses.push(await as(admin.access, 'GET', '/v1/api-keys'));
      responses.push(await as(boot.key, 'GET', '/v1/api-keys'));
      responses.push(await as(admin.access, 'GET', '/v1/me'));
      responses.push(await as(boot.key, 'GET', '/v1/me'));
      for (const r of responses) assertStatus(r, 200);
      const listed = responses[0].body.api_keys;
      assert.ok(listed.length >= 2, show(responses[0]));
      for (const k of listed) {
        for (const f of ['key', 'secret', 'hash', 'key_hash']) assert.ok(!(f in k), `api key exposes ${f}: ${JSON.stringify(k)}`);
      }
      const audit = await auditAll(srv, admin.access);
      assert.ok(audit.events.length > 10, 'the audit log should hold this file\'s events');
      responses.push(...audit.responses);
      assert.ok(plaintexts.length >= 5);
      for (const key of plaintexts) {
        // The whole key, and its secret tail (the display prefix may legitimately be shown).
        const tail = key.slice(-20);
        for (const r of responses) {
          assert.ok(!r.text.includes(key), `plaintext key in ${r.method} ${r.path}`);
          assert.ok(!r.text.includes(tail), `secret part of a key in ${r.method} ${r.path}`);
        }
      }
    });
  });

  describe('/v1/authorize', () => {
    const decide = (bearer, json) => request(srv, 'POST', '/v1/authorize', { bearer, json });

    it('an editor of W: docs:write in W yes; docs:delete in W no; nothing in X', async () => {
      const cases = [
        [{ capability: 'docs:write', workspace: W }, true],
        [{ capability: 'docs:read', workspace: W }, true],
        [{ capability: 'docs:delete', workspace: W }, false],
        [{ capability: 'docs:read', workspace: X }, false],
        [{ capability: 'docs:write', workspace: X }, false],
        [{ capability: 'docs:read', workspace: absentId() }, false],
      ];
      for (const [json, allow] of cases) {
        const res = await decide(s.editor.access, json);
        assertStatus(res, 200);
        assert.equal(res.body.allow, allow, `${JSON.stringify(json)}: ${show(res)}`);
        assert.equal(typeof res.body.ttl, 'number');
        if (!allow) assert.equal(res.body.ttl >= 0, true);
      }
      const batch = await request(srv, 'POST', '/v1/authorize/batch', {
        bearer: s.editor.access,
        json: { checks: cases.map(([json]) => json) },
      });
      assertStatus(batch, 200);
      assert.deepEqual(batch.body.decisions.map((d) => d.allow), cases.map(([, allow]) => allow), show(batch));
    });

    it('a token in the body is judged with no caller credential, and it is the token that is judged', async () => {
      const anon = await decide(undefined, { token: s.editor.access, capability: 'docs:write', workspace: W });
      assertStatus(anon, 200);
      assert.equal(anon.body.allow, true, show(anon));
      const anonX = await decide(undefined, { token: s.editor.access, capability: 'docs:read', workspace: X });
      assertStatus(anonX, 200);
      assert.equal(anonX.body.allow, false, show(anonX));
      // The caller is an org admin, but the subject is the editor's token: its rights decide.
      const asAdmin = await decide(admin.access, { token: s.editor.access, capability: 'docs:delete', workspace: W });
      assertStatus(asAdmin, 200);
      assert.equal(asAdmin.body.allow, false, show(asAdmin));
      // And the other way round: a viewer-capped key in the body, an outsider calling.
      const k = await createApiKey(srv, admin.access, { name: 'authz subject', role: 'viewer' });
      plaintexts.push(k.key);
      const keyRead = await decide(s.outsider.access, { token: k.key, capability: 'docs:read', workspace: W });
      assert.equal(keyRead.body.allow, true, show(keyRead));
      const keyWrite = await decide(s.outsider.access, { token: k.key, capability: 'docs:write', workspace: W });
      assert.equal(keyWrite.body.allow, false, show(keyWrite));
      // A dead or bogus token is a "no", not an error; no token and no caller is 401.
      const bogus = await decide(undefined, { token: 'not-a-token', capability: 'docs:read', workspace: W });
      assertStatus(bogus, 200);
      assert.equal(bogus.body.allow, false, show(bogus));
      assertAuthFailure(await decide(undefined, { capability: 'docs:read', workspace: W }));
    });

    it('denied decisions are in GET /v1/audit?action=authorize with outcome "denied"', async () => {
      const marker = 'docs:delete';
      const res = await decide(s.editor.access, { capability: marker, workspace: W, resource: 'doc-audit-1' });
      assert.equal(res.body.allow, false, show(res));
      const { events } = await auditAll(srv, admin.access, { action: 'authorize' });
      assert.ok(events.length > 0, 'no authorize events');
      for (const e of events) assert.equal(e.action, 'authorize', JSON.stringify(e));
      const mine = events.filter((e) => e.detail?.resource === 'doc-audit-1');
      assert.equal(mine.length, 1, `exactly one event for the marked denial: ${JSON.stringify(events.slice(0, 5))}`);
      assert.equal(mine[0].outcome, 'denied', JSON.stringify(mine[0]));
      assert.equal(mine[0].actor.id, u.editor.id, JSON.stringify(mine[0]));
      assert.equal(mine[0].detail.capability, marker, JSON.stringify(mine[0]));
      assert.equal(mine[0].target?.id, W, JSON.stringify(mine[0]));
      // The denials of the earlier tests too: in X, by the editor.
      assert.ok(
        events.some((e) => e.outcome === 'denied' && e.actor.id === u.editor.id && e.target?.id === X),
        'denials in X by the editor missing from the audit log',
      );
      // The audit log is org-admin only.
      assertError(await as(s.editor.access, 'GET', '/v1/audit?action=authorize'), 403, 'forbidden');
    });
  });

  describe('last org admin, destructive forms (run last)', () => {
    it('disabling or deleting the only org admin is 409', async () => {
      const users = await as(admin.access, 'GET', '/v1/users?limit=200');
      assertStatus(users, 200);
      const admins = users.body.users.filter((x) => x.org_admin).map((x) => x.id);
      assert.deepEqual(admins, [boot.user.id], 'precondition: still exactly one org admin');
      assertError(await as(admin.access, 'POST', `/v1/users/${boot.user.id}/disable`, {}), 409, 'conflict');
      assertError(await as(admin.access, 'DELETE', `/v1/users/${boot.user.id}`), 409, 'conflict');
      const me = await as(admin.access, 'GET', '/v1/me');
      assertStatus(me, 200);
      assert.equal(me.body.user.status, 'active');
      assert.equal(me.body.user.email, ADMIN_EMAIL);
    });
  });
});
