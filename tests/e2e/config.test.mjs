// Configuration: the session cap (MAX_SESSIONS_PER_USER; a new login evicts the least recently
// active session, design.md section 2).
// (A malformed setting cannot be tested here: /health then answers 503, so the harness never sees
// the server come up.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  assertActive,
  assertAuthFailure,
  assertInactive,
  assertStatus,
  bootstrap,
  loginToken,
  refreshToken,
  request,
  sleep,
} from './client.mjs';

const CAP = 3;

describe('session cap', () => {
  let srv;

  before(async () => {
    srv = await startServer({ vars: { MAX_SESSIONS_PER_USER: String(CAP) } });
    await bootstrap(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  it('a login over the cap evicts the least recently active session, not the oldest', async () => {
    const s1 = await loginToken(srv);
    await sleep(1100);
    const s2 = await loginToken(srv);
    await sleep(1100);
    const s3 = await loginToken(srv);
    await sleep(1100);
    // s1 becomes recently active again; s2 is now the least recently active.
    const r1 = await refreshToken(srv, s1.refresh);
    assertStatus(r1, 200);
    await sleep(1100);
    const s4 = await loginToken(srv);

    await assertInactive(srv, s2.access, 'the least recently active session (s2)');
    assertAuthFailure(await refreshToken(srv, s2.refresh));
    await assertActive(srv, r1.body.access_token, 's1 (refreshed)');
    await assertActive(srv, s3.access, 's3');
    await assertActive(srv, s4.access, 's4');

    const list = await request(srv, 'GET', '/v1/auth/sessions', { bearer: s4.access });
    assertStatus(list, 200);
    assert.deepEqual(
      list.body.sessions.map((s) => s.id).sort(),
      [s1.sessionId, s3.sessionId, s4.sessionId].sort(),
      'exactly the cap of live sessions is listed',
    );
  });
});

