// Sessions: login in both modes, cookies, /v1/me, refresh rotation, the grace window, reuse
// detection, logout, logout-all, listing and deleting sessions, CSRF rules, API-key restrictions.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import { startServer } from './harness.mjs';
import {
  ACCESS_COOKIE,
  ADMIN_EMAIL,
  REFRESH_COOKIE,
  assertActive,
  assertAuthFailure,
  assertCookiesCleared,
  assertError,
  assertInactive,
  assertNoStore,
  assertSessionCookies,
  assertStatus,
  assertTimestamp,
  assertUser,
  bootstrap,
  CookieJar,
  loginCookie,
  loginRaw,
  loginToken,
  refreshToken,
  request,
  show,
  sleep,
  verify,
} from './client.mjs';

const GRACE_SECONDS = 2;

describe('sessions', () => {
  let srv;
  let boot;
  let foreign; // an Origin that is not allowed
  const refreshCookie = (jar, origin, keepJar = false) =>
    request(srv, 'POST', '/v1/auth/refresh', { jar: jar.only(REFRESH_COOKIE), origin, keepJar: true }).then((res) => {
      if (!keepJar) jar.update(res.setCookies);
      return res;
    });

  before(async () => {
    srv = await startServer({ vars: { REFRESH_GRACE_SECONDS: String(GRACE_SECONDS) } });
    foreign = 'https://evil.example';
    boot = await bootstrap(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  describe('login', () => {
    it('cookie mode (default): both cookies with the exact attributes, no refresh_token in the body', async () => {
      const jar = new CookieJar();
      // No "session" field: cookie is the default. No Origin: a non-browser client may log in.
      const res = await request(srv, 'POST', '/v1/auth/login', { json: { email: ADMIN_EMAIL, password: 'correct horse battery staple' }, jar });
      assertStatus(res, 200);
      assertNoStore(res);
      const b = res.body;
      assert.equal(typeof b.access_token, 'string');
      assert.equal(b.token_type, 'Bearer');
      assert.equal(b.expires_in, 600);
      assert.equal(typeof b.session_id, 'string');
      assertUser(b.user, { id: boot.user.id, email: ADMIN_EMAIL });
      assert.ok(!('refresh_token' in b), 'cookie mode must keep the refresh token out of the body');
      const { access, refresh } = assertSessionCookies(res);
      assert.ok(!res.text.includes(refresh.value), 'the refresh cookie value appears in the body');
      assert.ok(Number(access.attrs['max-age']) <= 600, `access cookie outlives the token: ${access.raw}`);
      assert.ok(Number(refresh.attrs['max-age']) <= 30 * 86400, `refresh cookie beyond the absolute limit: ${refresh.raw}`);
      assert.ok(Number(refresh.attrs['max-age']) > 600, `refresh cookie no longer than the access token: ${refresh.raw}`);
      assert.equal(res.setCookies.length, 2, `exactly two cookies expected: ${res.setCookies.join(' | ')}`);

      // The access cookie is a working credential for a read (no Origin needed for GET).
      const me = await request(srv, 'GET', '/v1/me', { jar: jar.only(ACCESS_COOKIE) });
      assertStatus(me, 200);
      assert.equal(me.body.session_id, b.session_id);
      const v = await verify(srv, access.value);
      assert.equal(v.active, true, `access cookie value should verify: ${JSON.stringify(v)}`);
      assert.equal(v.sid, b.session_id);
    });

    it('token mode: refresh_token in the body, no cookies at all', async () => {
      const res = await loginRaw(srv, { session: 'token' });
      assertStatus(res, 200);
      assertNoStore(res);
      assert.deepEqual(res.setCookies, [], 'token mode must set no cookies');
      const b = res.body;
      assert.equal(b.token_type, 'Bearer');
      assert.equal(b.expires_in, 600);
      assert.equal(typeof b.refresh_token, 'string');
      // >= 256 bits of randomness: at least 43 base64url / 64 hex characters.
      assert.ok(b.refresh_token.length >= 43, `refresh token too short: ${b.refresh_token.length}`);
      assert.notEqual(b.refresh_token, b.access_token);
      assertUser(b.user, { id: boot.user.id });
      assert.equal(jose.decodeJwt(b.access_token).sid, b.session_id);
    });

    it('cookie mode with a foreign Origin is 403 csrf; with our own Origin it works', async () => {
      const bad = await loginRaw(srv, { session: 'cookie', origin: foreign });
      assertError(bad, 403, 'csrf');
      assert.deepEqual(bad.setCookies, [], 'a refused login must set no cookies');
      const evilSuffix = await loginRaw(srv, { session: 'cookie', origin: `${srv.url}.evil.example` });
      assertError(evilSuffix, 403, 'csrf');
      const ok = await loginRaw(srv, { session: 'cookie', origin: srv.url });
      assertStatus(ok, 200);
      assertSessionCookies(ok);
    });

    it('with the bootstrap workspace: 200 and the ws claim names it; with a non-member workspace: 403 forbidden', async () => {
      const res = await loginRaw(srv, { session: 'token', workspace: boot.workspace.id });
      assertStatus(res, 200);
      assert.equal(jose.decodeJwt(res.body.access_token).ws, boot.workspace.id);
      const v = await verify(srv, res.body.access_token);
      assert.equal(v.ws, boot.workspace.id);

      const other = await loginRaw(srv, { session: 'token', workspace: '00000000-0000-4000-8000-000000000000' });
      assertError(other, 403, 'forbidden');
      assert.ok(!('access_token' in (other.body ?? {})));
    });

    it('unknown user and wrong password are the identical auth_failure 401', async () => {
      assertAuthFailure(await loginRaw(srv, { email: 'nobody@example.com', session: 'token' }));
      assertAuthFailure(await loginRaw(srv, { password: 'wrong password!', session: 'token' }));
      assertAuthFailure(await loginRaw(srv, { password: 'wrong password!', session: 'cookie' }));
    });
  });

  describe('/v1/me', () => {
    it('answers for a Bearer access token with user, memberships, org_admin and session_id', async () => {
      const s = await loginToken(srv);
      const res = await request(srv, 'GET', '/v1/me', { bearer: s.access });
      assertStatus(res, 200);
      assertNoStore(res);
      assertUser(res.body.user, { id: boot.user.id, email: ADMIN_EMAIL, org_admin: true });
      assert.equal(res.body.org_admin, true);
      assert.equal(res.body.session_id, s.sessionId);
      assert.ok(!('api_key_id' in res.body) || res.body.api_key_id == null);
      assert.deepEqual(
        res.body.memberships.find((m) => m.workspace_id === boot.workspace.id),
        { workspace_id: boot.workspace.id, role: 'admin' },
      );
    });

    it('when both a Bearer token and an access cookie are sent, the Bearer header wins', async () => {
      const a = await loginToken(srv);
      const c = await loginCookie(srv);
      assert.notEqual(a.sessionId, c.sessionId);
      const res = await request(srv, 'GET', '/v1/me', { bearer: a.access, jar: c.jar.only(ACCESS_COOKIE) });
      assertStatus(res, 200);
      assert.equal(res.body.session_id, a.sessionId);
      // ...and a bad Bearer is not rescued by a good cookie.
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: 'garbage', jar: c.jar.only(ACCESS_COOKIE) }));
    });

    it('with the API key: same shape with api_key_id', async () => {
      const res = await request(srv, 'GET', '/v1/me', { bearer: boot.key });
      assertStatus(res, 200);
      assert.equal(res.body.api_key_id, boot.api_key.id);
      assert.equal(res.body.user.id, boot.user.id);
      assert.ok(Array.isArray(res.body.memberships));
      assert.equal(typeof res.body.org_admin, 'boolean');
    });
  });

  describe('refresh', () => {
    it('token mode rotates the refresh token and keeps the session', async () => {
      const s = await loginToken(srv);
      const res = await refreshToken(srv, s.refresh);
      assertStatus(res, 200);
      assertNoStore(res);
      const b = res.body;
      assert.deepEqual(res.setCookies, [], 'a token-mode refresh sets no cookies');
      assert.equal(b.token_type, 'Bearer');
      assert.equal(b.expires_in, 600);
      assert.equal(b.session_id, s.sessionId);
      assertUser(b.user, { id: boot.user.id });
      assert.equal(typeof b.refresh_token, 'string');
      assert.notEqual(b.refresh_token, s.refresh, 'the refresh token must rotate');
      assert.equal(typeof b.access_token, 'string');
      const claims = jose.decodeJwt(b.access_token);
      assert.equal(claims.sid, s.sessionId);
      assert.notEqual(claims.jti, jose.decodeJwt(s.access).jti, 'a fresh access token');
      await assertActive(srv, b.access_token, 'refreshed access token');

      // The rotated token works in turn.
      const again = await refreshToken(srv, b.refresh_token);
      assertStatus(again, 200);
      assert.notEqual(again.body.refresh_token, b.refresh_token);
      assert.equal(again.body.session_id, s.sessionId);
    });

    it('cookie mode needs our Origin: none or foreign is 403 csrf and consumes nothing', async () => {
      const c = await loginCookie(srv);
      const before = c.jar.get(REFRESH_COOKIE);
      for (const origin of [undefined, foreign, 'null', `${srv.url}.evil.example`]) {
        const res = await refreshCookie(c.jar, origin, true);
        assertError(res, 403, 'csrf');
        assert.deepEqual(res.setCookies, [], `a refused refresh must set no cookies (Origin ${origin})`);
      }
      // Still the same, unconsumed token: a proper refresh now succeeds and rotates it.
      assert.equal(c.jar.get(REFRESH_COOKIE), before);
      const ok = await refreshCookie(c.jar, srv.url);
      assertStatus(ok, 200);
      assertNoStore(ok);
      assert.ok(!('refresh_token' in ok.body), 'cookie-mode refresh keeps the refresh token out of the body');
      assert.equal(ok.body.session_id, c.sessionId);
      const { refresh, access } = assertSessionCookies(ok);
      assert.notEqual(refresh.value, before, 'the refresh cookie must rotate');
      const v = await assertActive(srv, access.value, 'new access cookie');
      assert.equal(v.sid, c.sessionId);

      // And the rotated cookie refreshes again (lineage continues).
      const ok2 = await refreshCookie(c.jar, srv.url);
      assertStatus(ok2, 200);
      assert.notEqual(c.jar.get(REFRESH_COOKIE), refresh.value);
    });

    it('a retry of the previous token within the grace window gets the SAME token as the winner', async () => {
      const s = await loginToken(srv);
      const first = await refreshToken(srv, s.refresh);
      assertStatus(first, 200);
      const retry = await refreshToken(srv, s.refresh);
      assertStatus(retry, 200);
      assert.equal(retry.body.refresh_token, first.body.refresh_token, 'both tabs must converge on one token');
      assert.equal(retry.body.session_id, s.sessionId);
      await assertActive(srv, retry.body.access_token, 'access token from the retry');
      await assertActive(srv, first.body.access_token, 'access token from the winner');
      // The lineage did not fork: the shared token rotates normally afterwards.
      const next = await refreshToken(srv, first.body.refresh_token);
      assertStatus(next, 200);
      assert.notEqual(next.body.refresh_token, first.body.refresh_token);
    });

    it('two tabs refreshing the same cookie at once both succeed and converge', async () => {
      const c = await loginCookie(srv);
      const jarA = c.jar.clone();
      const jarB = c.jar.clone();
      const [a, b] = await Promise.all([refreshCookie(jarA, srv.url), refreshCookie(jarB, srv.url)]);
      assertStatus(a, 200);
      assertStatus(b, 200);
      assert.equal(jarA.get(REFRESH_COOKIE), jarB.get(REFRESH_COOKIE), 'both tabs must hold the same refresh token');
      assert.notEqual(jarA.get(REFRESH_COOKIE), c.jar.get(REFRESH_COOKIE));
      // The session is intact: the converged token refreshes again.
      const next = await refreshCookie(jarA, srv.url);
      assertStatus(next, 200);
      assert.equal(next.body.session_id, c.sessionId);
    });

    it('five concurrent refreshes of one token all succeed and converge on one token', async () => {
      const s = await loginToken(srv);
      const results = await Promise.all(Array.from({ length: 5 }, () => refreshToken(srv, s.refresh)));
      for (const r of results) assertStatus(r, 200);
      const tokens = new Set(results.map((r) => r.body.refresh_token));
      assert.equal(tokens.size, 1, `the lineage forked into ${tokens.size} tokens`);
      const [winner] = tokens;
      assert.notEqual(winner, s.refresh);
      const next = await refreshToken(srv, winner);
      assertStatus(next, 200);
      assert.equal(next.body.session_id, s.sessionId);
    });

    it('an access token is not a refresh token, and a refresh token is not an access token', async () => {
      const s = await loginToken(srv);
      assertAuthFailure(await refreshToken(srv, s.access));
      assert.deepEqual(await verify(srv, s.refresh), { active: false });
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: s.refresh }));
      // Neither attempt harmed the session.
      assertStatus(await refreshToken(srv, s.refresh), 200);
    });

    it('replaying the previous token after the grace window revokes the whole session', async () => {
      const s = await loginToken(srv);
      const r1 = await refreshToken(srv, s.refresh);
      assertStatus(r1, 200);
      await assertActive(srv, r1.body.access_token, 'current access token before the replay');
      await sleep((GRACE_SECONDS + 2) * 1000);
      assertAuthFailure(await refreshToken(srv, s.refresh));
      // Reuse detected: the current token is dead too, and so is the latest access token.
      assertAuthFailure(await refreshToken(srv, r1.body.refresh_token));
      await assertInactive(srv, r1.body.access_token, 'latest access token after reuse detection');
      await assertInactive(srv, s.access, 'first access token after reuse detection');
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: r1.body.access_token }));
    });

    it('replaying an older-than-parent token, even within the grace window, revokes the session', async () => {
      const s = await loginToken(srv);
      const r1 = await refreshToken(srv, s.refresh);
      assertStatus(r1, 200);
      const r2 = await refreshToken(srv, r1.body.refresh_token);
      assertStatus(r2, 200);
      assertAuthFailure(await refreshToken(srv, s.refresh)); // the grandparent
      assertAuthFailure(await refreshToken(srv, r2.body.refresh_token));
      await assertInactive(srv, r2.body.access_token, 'latest access token');
    });

    it('the grace window does not resurrect a logged-out session', async () => {
      const s = await loginToken(srv);
      const r1 = await refreshToken(srv, s.refresh);
      assertStatus(r1, 200);
      const out = await request(srv, 'POST', '/v1/auth/logout', { bearer: r1.body.access_token });
      assertStatus(out, 204);
      // Within the grace window, the parent token would normally be answered with the current one.
      assertAuthFailure(await refreshToken(srv, s.refresh));
      assertAuthFailure(await refreshToken(srv, r1.body.refresh_token));
      await assertInactive(srv, r1.body.access_token, 'logged-out access token');
    });

    it('an unknown refresh token is the auth_failure 401', async () => {
      assertAuthFailure(await refreshToken(srv, 'A'.repeat(43)));
      assertAuthFailure(await request(srv, 'POST', '/v1/auth/refresh', { jar: new CookieJar([[REFRESH_COOKIE, 'B'.repeat(43)]]), origin: srv.url }));
    });
  });

  describe('logout', () => {
    it('with a Bearer access token: 204, cookies cleared, access inactive, refresh dead', async () => {
      const s = await loginToken(srv);
      const other = await loginToken(srv);
      const res = await request(srv, 'POST', '/v1/auth/logout', { bearer: s.access });
      assertStatus(res, 204);
      assert.equal(res.text, '');
      assertCookiesCleared(res);
      await assertInactive(srv, s.access, 'logged-out access token');
      assertAuthFailure(await refreshToken(srv, s.refresh));
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: s.access }));
      // Only that session.
      await assertActive(srv, other.access, 'another session');
    });

    it('with the refresh cookie: needs our Origin (403 csrf otherwise), then 204 and everything dead', async () => {
      const c = await loginCookie(srv);
      for (const origin of [undefined, foreign]) {
        const res = await request(srv, 'POST', '/v1/auth/logout', { jar: c.jar, origin, keepJar: true });
        assertError(res, 403, 'csrf');
      }
      await assertActive(srv, c.access, 'session after refused logouts');
      const res = await request(srv, 'POST', '/v1/auth/logout', { jar: c.jar.only(REFRESH_COOKIE), origin: srv.url, keepJar: true });
      assertStatus(res, 204);
      assertCookiesCleared(res);
      await assertInactive(srv, c.access, 'access token after cookie logout');
      assertAuthFailure(await refreshCookie(c.jar, srv.url));
    });

    it('with the refresh token in the body: 204 and everything dead', async () => {
      const s = await loginToken(srv);
      const res = await request(srv, 'POST', '/v1/auth/logout', { json: { refresh_token: s.refresh } });
      assertStatus(res, 204);
      await assertInactive(srv, s.access, 'access token after body logout');
      assertAuthFailure(await refreshToken(srv, s.refresh));
    });

    it('the flag cache (FLAG_CACHE_SECONDS, default 10): a token verified just before logout is inactive on the first check after it', async () => {
      // wrangler dev runs one isolate: these verifications leave the token's flags (absent) in its
      // cache, and the logout (by refresh token, so it reads no access-token flag itself) must
      // replace them at once, not after 10 s.
      const s = await loginToken(srv);
      await assertActive(srv, s.access, 'before logout');
      await assertActive(srv, s.access, 'before logout, from the cache');
      const res = await request(srv, 'POST', '/v1/auth/logout', { json: { refresh_token: s.refresh } });
      assertStatus(res, 204);
      await assertInactive(srv, s.access, 'first check after logout');
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: s.access }));
    });

    it('logout-all: 204 and every session of the user is revoked', async () => {
      const a = await loginToken(srv);
      const b = await loginToken(srv);
      const c = await loginCookie(srv);
      for (const [s, what] of [[a, 'a'], [b, 'b'], [c, 'c']]) await assertActive(srv, s.access, `session ${what} before`);
      const res = await request(srv, 'POST', '/v1/auth/logout-all', { bearer: a.access });
      assertStatus(res, 204);
      for (const [s, what] of [[a, 'a'], [b, 'b'], [c, 'c']]) await assertInactive(srv, s.access, `session ${what} after logout-all`);
      assertAuthFailure(await refreshToken(srv, a.refresh));
      assertAuthFailure(await refreshToken(srv, b.refresh));
      assertAuthFailure(await refreshCookie(c.jar, srv.url));
      // The user can log in again afterwards.
      const d = await loginToken(srv);
      await assertActive(srv, d.access, 'a new session after logout-all');
    });

    it('logout-all through the access cookie needs our Origin', async () => {
      const c = await loginCookie(srv);
      const res = await request(srv, 'POST', '/v1/auth/logout-all', { jar: c.jar.only(ACCESS_COOKIE), keepJar: true });
      assertError(res, 403, 'csrf');
      await assertActive(srv, c.access, 'session after a refused logout-all');
      const ok = await request(srv, 'POST', '/v1/auth/logout-all', { jar: c.jar.only(ACCESS_COOKIE), origin: srv.url, keepJar: true });
      assertStatus(ok, 204);
      await assertInactive(srv, c.access, 'session after logout-all');
    });
  });

  describe('session list and delete', () => {
    it('lists sessions with the documented fields and exactly one current', async () => {
      const a = await loginToken(srv, {
        headers: { 'user-agent': 'e2e-agent-A/1.0', 'x-forwarded-for': '198.51.100.99' },
      });
      const b = await loginToken(srv, { headers: { 'user-agent': 'e2e-agent-B/1.0' } });
      const res = await request(srv, 'GET', '/v1/auth/sessions', { bearer: a.access });
      assertStatus(res, 200);
      assertNoStore(res);
      const sessions = res.body.sessions;
      assert.ok(Array.isArray(sessions), show(res));
      for (const s of sessions) {
        for (const k of ['id', 'auth_method', 'device_label', 'ip', 'user_agent', 'created_at', 'last_active_at', 'expires_at', 'current']) {
          assert.ok(k in s, `session.${k} missing: ${JSON.stringify(s)}`);
        }
        assertTimestamp(s.created_at, 'session.created_at');
        assertTimestamp(s.last_active_at, 'session.last_active_at');
        assertTimestamp(s.expires_at, 'session.expires_at');
        assert.ok(Date.parse(s.expires_at) > Date.parse(s.created_at));
        assert.equal(typeof s.current, 'boolean');
        assert.equal(typeof s.auth_method, 'string');
        assert.ok(!JSON.stringify(s).includes(a.refresh), 'a session lists its refresh token');
      }
      const current = sessions.filter((s) => s.current);
      assert.equal(current.length, 1, `exactly one current session: ${JSON.stringify(sessions)}`);
      assert.equal(current[0].id, a.sessionId);
      const sa = sessions.find((s) => s.id === a.sessionId);
      const sb = sessions.find((s) => s.id === b.sessionId);
      assert.ok(sb, 'the other session is listed');
      assert.equal(sa.user_agent, 'e2e-agent-A/1.0');
      assert.equal(sb.user_agent, 'e2e-agent-B/1.0');
      assert.equal(sb.current, false);
      assert.notEqual(sa.ip, '198.51.100.99', 'the IP must never come from X-Forwarded-For');
      assert.ok(Date.parse(sa.expires_at) - Date.now() > 13 * 86400 * 1000, 'idle expiry ~14 days ahead');
    });

    it('DELETE own session: 204, its tokens dead, gone from the list; unknown id: 404', async () => {
      const a = await loginToken(srv);
      const b = await loginToken(srv);
      const res = await request(srv, 'DELETE', `/v1/auth/sessions/${encodeURIComponent(b.sessionId)}`, { bearer: a.access });
      assertStatus(res, 204);
      await assertInactive(srv, b.access, 'deleted session access token');
      assertAuthFailure(await refreshToken(srv, b.refresh));
      await assertActive(srv, a.access, 'the calling session');
      const list = await request(srv, 'GET', '/v1/auth/sessions', { bearer: a.access });
      assertStatus(list, 200);
      assert.ok(!list.body.sessions.some((s) => s.id === b.sessionId), 'a deleted session is not listed');

      const unknown = await request(srv, 'DELETE', '/v1/auth/sessions/00000000-0000-4000-8000-000000000000', { bearer: a.access });
      assertError(unknown, 404, 'not_found');
    });

    it('DELETE through the access cookie needs our Origin', async () => {
      const c = await loginCookie(srv);
      const victim = await loginToken(srv);
      const path = `/v1/auth/sessions/${encodeURIComponent(victim.sessionId)}`;
      for (const origin of [undefined, foreign]) {
        const res = await request(srv, 'DELETE', path, { jar: c.jar.only(ACCESS_COOKIE), origin, keepJar: true });
        assertError(res, 403, 'csrf');
      }
      await assertActive(srv, victim.access, 'session after refused deletes');
      const ok = await request(srv, 'DELETE', path, { jar: c.jar.only(ACCESS_COOKIE), origin: srv.url, keepJar: true });
      assertStatus(ok, 204);
      await assertInactive(srv, victim.access, 'deleted session');
    });

    it("another user's session is 404, and stays alive", async (t) => {
      const email = 'bob@example.com';
      const password = 'bob password 1234';
      const created = await request(srv, 'POST', '/v1/users', {
        bearer: boot.key,
        json: { email, name: 'Bob', password, workspace: boot.workspace.id, role: 'viewer' },
      });
      if (created.status === 404) {
        // A second user can only be made through POST /v1/users (design.md section 3).
        t.skip('POST /v1/users is not implemented yet (404): no second user to test with');
        return;
      }
      assertStatus(created, 201);
      const bob = await loginToken(srv, { email, password });
      const admin = await loginToken(srv);
      const res = await request(srv, 'DELETE', `/v1/auth/sessions/${encodeURIComponent(admin.sessionId)}`, { bearer: bob.access });
      assertError(res, 404, 'not_found');
      await assertActive(srv, admin.access, "admin's session after bob's attempt");
      const list = await request(srv, 'GET', '/v1/auth/sessions', { bearer: bob.access });
      assertStatus(list, 200);
      assert.deepEqual(list.body.sessions.map((s) => s.id), [bob.sessionId], "bob sees only bob's session");
    });
  });

  describe('API keys and session routes', () => {
    it('an API key gets 403 forbidden on logout, logout-all, sessions and password, and changes nothing', async () => {
      const s = await loginToken(srv);
      const calls = [
        ['POST', '/v1/auth/logout', undefined],
        ['POST', '/v1/auth/logout-all', undefined],
        ['GET', '/v1/auth/sessions', undefined],
        ['DELETE', `/v1/auth/sessions/${encodeURIComponent(s.sessionId)}`, undefined],
        ['POST', '/v1/auth/password', { current_password: 'correct horse battery staple', new_password: 'a brand new password' }],
      ];
      for (const [method, path, json] of calls) {
        const res = await request(srv, method, path, { bearer: boot.key, json });
        assertError(res, 403, 'forbidden');
      }
      await assertActive(srv, s.access, 'session after the API key attempts');
      const me = await request(srv, 'GET', '/v1/me', { bearer: boot.key });
      assertStatus(me, 200);
      // The password did not change.
      await loginToken(srv);
    });

    it('Bearer-authenticated state changes need no Origin', async () => {
      const s = await loginToken(srv);
      const other = await loginToken(srv);
      const del = await request(srv, 'DELETE', `/v1/auth/sessions/${encodeURIComponent(other.sessionId)}`, { bearer: s.access });
      assertStatus(del, 204);
      const out = await request(srv, 'POST', '/v1/auth/logout', { bearer: s.access });
      assertStatus(out, 204);
    });
  });
});
