// Password change: validation, CSRF, API-key refusal, and signing out the other sessions.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  ACCESS_COOKIE,
  ADMIN_PASSWORD,
  REFRESH_COOKIE,
  assertActive,
  assertAuthFailure,
  assertError,
  assertInactive,
  assertStatus,
  bootstrap,
  loginCookie,
  loginRaw,
  loginToken,
  refreshToken,
  request,
} from './client.mjs';

const P1 = ADMIN_PASSWORD;
const P2 = 'second password, longer';
const P3 = 'third password 3333';
const P4 = '  spaced pw  '; // compared exactly as received: no trimming
const P5 = 'abcdefgh'; // exactly 8 characters: the minimum

describe('password change', () => {
  let srv;
  let boot;
  const changePassword = (auth, json) => request(srv, 'POST', '/v1/auth/password', { ...auth, json });

  before(async () => {
    srv = await startServer();
    boot = await bootstrap(srv, { password: P1 });
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  it('a wrong current_password is the auth_failure 401 and changes nothing', async () => {
    const s = await loginToken(srv, { password: P1 });
    const res = await changePassword({ bearer: s.access }, { current_password: 'not my password', new_password: P2 });
    assertAuthFailure(res);
    await assertActive(srv, s.access, 'the calling session');
    assertAuthFailure(await loginRaw(srv, { password: P2, session: 'token' }));
  });

  it('a new password shorter than 8 or longer than 1024 characters is 400 invalid_request on new_password', async () => {
    const s = await loginToken(srv, { password: P1 });
    const short = await changePassword({ bearer: s.access }, { current_password: P1, new_password: 'short7!' });
    assertError(short, 400, 'invalid_request', 'new_password');
    const long = await changePassword({ bearer: s.access }, { current_password: P1, new_password: 'x'.repeat(1025) });
    assertError(long, 400, 'invalid_request', 'new_password');
    await assertActive(srv, s.access, 'the calling session');
    // Still the old password.
    await loginToken(srv, { password: P1 });
  });

  it('through the access cookie it needs our Origin (403 csrf otherwise)', async () => {
    const c = await loginCookie(srv, { password: P1 });
    for (const origin of [undefined, 'https://evil.example']) {
      const res = await changePassword({ jar: c.jar, origin, keepJar: true }, { current_password: P1, new_password: P2 });
      assertError(res, 403, 'csrf');
    }
    // Nothing changed: P2 does not log in (P1 still does; checked by the next test's logins).
    assertAuthFailure(await loginRaw(srv, { password: P2, session: 'token' }));
  });

  it('an API key is 403 forbidden', async () => {
    const res = await changePassword({ bearer: boot.key }, { current_password: P1, new_password: P2 });
    assertError(res, 403, 'forbidden');
  });

  it('signs out every other session by default; the calling session survives', async () => {
    const s1 = await loginToken(srv, { password: P1 });
    const s2 = await loginToken(srv, { password: P1 });
    const s3 = await loginCookie(srv, { password: P1 });
    await assertActive(srv, s2.access, 's2 before');
    await assertActive(srv, s3.access, 's3 before');

    const res = await changePassword({ bearer: s1.access }, { current_password: P1, new_password: P2 });
    assertStatus(res, 204);
    assert.equal(res.text, '');

    await assertInactive(srv, s2.access, 's2 access after the change');
    await assertInactive(srv, s3.access, 's3 access after the change');
    assertAuthFailure(await refreshToken(srv, s2.refresh));
    assertAuthFailure(await request(srv, 'POST', '/v1/auth/refresh', { jar: s3.jar.only(REFRESH_COOKIE), origin: srv.url }));

    await assertActive(srv, s1.access, 's1 (the caller) access after the change');
    const me = await request(srv, 'GET', '/v1/me', { bearer: s1.access });
    assertStatus(me, 200);
    assert.equal(me.body.session_id, s1.sessionId);
    const r = await refreshToken(srv, s1.refresh);
    assertStatus(r, 200);
    assert.equal(r.body.session_id, s1.sessionId);

    const list = await request(srv, 'GET', '/v1/auth/sessions', { bearer: r.body.access_token });
    assertStatus(list, 200);
    assert.deepEqual(list.body.sessions.map((s) => s.id), [s1.sessionId], 'only the calling session is left');

    assertAuthFailure(await loginRaw(srv, { password: P1, session: 'token' }));
    const fresh = await loginToken(srv, { password: P2 });
    assert.equal(fresh.body.user.id, boot.user.id);
  });

  it('sign_out_other_sessions: false keeps the other sessions', async () => {
    const s4 = await loginToken(srv, { password: P2 });
    const s5 = await loginToken(srv, { password: P2 });
    const res = await changePassword(
      { bearer: s4.access },
      { current_password: P2, new_password: P3, sign_out_other_sessions: false },
    );
    assertStatus(res, 204);
    await assertActive(srv, s5.access, 's5 after a change that keeps other sessions');
    const r = await refreshToken(srv, s5.refresh);
    assertStatus(r, 200);
    await assertActive(srv, s4.access, 's4 (caller)');
    assertAuthFailure(await loginRaw(srv, { password: P2, session: 'token' }));
    await loginToken(srv, { password: P3 });
  });

  it('through the access cookie with our Origin: 204; the password is compared exactly as received', async () => {
    const c = await loginCookie(srv, { password: P3 });
    const res = await changePassword(
      { jar: c.jar.only(ACCESS_COOKIE), origin: srv.url, keepJar: true },
      { current_password: P3, new_password: P4 },
    );
    assertStatus(res, 204);
    await assertActive(srv, c.access, 'the calling cookie session');
    assertAuthFailure(await loginRaw(srv, { password: P4.trim(), session: 'token' }));
    await loginToken(srv, { password: P4 });
  });

  it('an 8-character password is accepted', async () => {
    const s = await loginToken(srv, { password: P4 });
    const res = await changePassword({ bearer: s.access }, { current_password: P4, new_password: P5 });
    assertStatus(res, 204);
    await loginToken(srv, { password: P5 });
  });
});
