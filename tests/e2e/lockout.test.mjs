// Per-account lockout and per-IP limits against wrangler dev (issue 6): 100 wrong passwords from
// rotating X-Forwarded-For (and CF-Connecting-IP) values get only 5 passwords checked (counted in the
// audit log, since every answer is the same 401); the right password is refused while locked and
// works once the 15 s lock ends; an unknown address locks alike; the per-IP 429 with Retry-After,
// through the Workers Rate Limiting binding as local wrangler dev runs it (fixed 60 s windows).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  AUTH_FAILURE,
  assertAuthFailure,
  assertError,
  assertStatus,
  bootstrap,
  loginRaw,
  request,
  show,
  sleep,
} from './client.mjs';

const WRONG = 'definitely not the password';

/** Login failures in the audit log for `identifier`: { checked, locked }. */
async function failures(srv, bearer, identifier) {
  let checked = 0;
  let locked = 0;
  let cursor;
  for (let page = 0; page < 50; page++) {
    const params = new URLSearchParams({ action: 'login', limit: '200' });
    if (cursor) params.set('cursor', cursor);
    const res = await request(srv, 'GET', `/v1/audit?${params}`, { bearer });
    assertStatus(res, 200);
    for (const e of res.body.events) {
      if (e.outcome !== 'failure' || e.detail?.identifier !== identifier) continue;
      if (e.detail.locked === true) locked++;
      else checked++;
    }
    cursor = res.body.next_cursor;
    if (!cursor) break;
  }
  return { checked, locked };
}

/** Waits, if needed, until the current minute has at least `need` seconds left (local windows are
 * aligned to the minute, so a burst must not straddle a boundary). */
async function roomInMinute(need) {
  const left = 60 - (Date.now() / 1000) % 60;
  if (left < need) await sleep(left * 1000 + 200);
}

describe('lockout and per-IP limits', () => {
  let srv;
  let boot;

  before(async () => {
    // Cheap hashes: the test is about counts, not cost (cost equality is a host test).
    srv = await startServer({ name: 'lockout', vars: { PBKDF2_ITERATIONS: '1000' } });
    boot = await bootstrap(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  it('100 wrong passwords from rotating X-Forwarded-For and client IPs: 5 checked, the right one refused while locked, accepted after 15 s', async () => {
    const started = Date.now();
    const answers = [];
    for (let batch = 0; batch < 10; batch++) {
      answers.push(
        ...(await Promise.all(
          Array.from({ length: 10 }, (_, i) => {
            const n = batch * 10 + i;
            return loginRaw(srv, {
              password: WRONG,
              session: 'token',
              headers: {
                'x-forwarded-for': `10.${n}.0.1, 192.0.2.${n}`,
                'cf-connecting-ip': `198.51.100.${n + 1}`,
              },
            });
          }),
        )),
      );
    }
    const elapsed = Date.now() - started;
    for (const res of answers) assertAuthFailure(res);
    const lockedAt = Date.now();
    // Within the first 15 s lock (the burst took `elapsed`), the right password is refused alike.
    const refused = await loginRaw(srv, { session: 'token', headers: { 'cf-connecting-ip': '198.51.100.200' } });
    assertAuthFailure(refused);
    const counted = await failures(srv, boot.key, ADMIN_EMAIL);
    assert.ok(elapsed < 14_000, `burst took ${elapsed} ms; the count below assumes one lock period`);
    assert.deepEqual(counted, { checked: 5, locked: 96 }, `only 5 passwords may be checked (burst ${elapsed} ms)`);

    // The lock ends 15 s after the 5th failure (at most lockedAt); then the right password works.
    await sleep(Math.max(0, lockedAt + 15_500 - Date.now()));
    const ok = await loginRaw(srv, { session: 'token', headers: { 'cf-connecting-ip': '198.51.100.201' } });
    assertStatus(ok, 200);
    // And success reset the count: four wrong passwords later the right one still works.
    for (let i = 0; i < 4; i++) {
      assertAuthFailure(await loginRaw(srv, { password: WRONG, session: 'token' }));
    }
    assertStatus(await loginRaw(srv, { session: 'token' }), 200);
  });

  it('an unknown address locks exactly like a known one: same answer, same headers', async () => {
    const known = 'ada@lockout.example';
    const create = await request(srv, 'POST', '/v1/users', {
      bearer: boot.key,
      json: { email: known, name: 'Ada', password: 'ada has a password' },
    });
    assertStatus(create, 201);
    const shapes = [];
    for (const email of [known, 'nobody@lockout.example']) {
      for (let i = 0; i < 5; i++) assertAuthFailure(await loginRaw(srv, { email, password: WRONG, session: 'token' }));
      const locked = await loginRaw(srv, { email, password: WRONG, session: 'token' });
      assertAuthFailure(locked);
      const headers = [...locked.headers].filter(([k]) => k !== 'date' && k !== 'cf-ray').sort();
      shapes.push({ status: locked.status, body: locked.body, headers });
      assert.deepEqual(await failures(srv, boot.key, email), { checked: 5, locked: 1 });
    }
    assert.deepEqual(shapes[0], shapes[1]);
    assert.deepEqual(shapes[0].body, AUTH_FAILURE);
  });

  it('per IP: the 61st login in a minute is 429 rate_limited with Retry-After, whatever X-Forwarded-For says; other IPs go on', async () => {
    await roomInMinute(40);
    const ip = '203.0.113.50';
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        // Malformed bodies cost nothing, yet count: the check comes before any work.
        request(srv, 'POST', '/v1/auth/login', {
          json: { nonsense: true },
          headers: { 'cf-connecting-ip': ip, 'x-forwarded-for': `10.1.1.${i}` },
        }),
      ),
    );
    for (const res of answers) assertError(res, 400, 'invalid_request');
    for (const xff of ['10.9.9.9', '192.0.2.77']) {
      const res = await loginRaw(srv, {
        session: 'token',
        headers: { 'cf-connecting-ip': ip, 'x-forwarded-for': xff },
      });
      assertError(res, 429, 'rate_limited');
      assert.equal(res.headers.get('retry-after'), '60', show(res));
    }
    // The right password from another address is unaffected.
    assertStatus(await loginRaw(srv, { session: 'token', headers: { 'cf-connecting-ip': '203.0.113.51' } }), 200);
  });

  it('per IP: magic-link requests are limited the same way, counted apart from logins', async () => {
    await roomInMinute(40);
    const ip = '203.0.113.60';
    // Use up this IP's login budget first: magic-link requests have their own.
    await Promise.all(
      Array.from({ length: 61 }, () =>
        request(srv, 'POST', '/v1/auth/login', { json: {}, headers: { 'cf-connecting-ip': ip } }),
      ),
    );
    const answers = await Promise.all(
      Array.from({ length: 60 }, () =>
        request(srv, 'POST', '/v1/auth/magic-link', { json: {}, headers: { 'cf-connecting-ip': ip } }),
      ),
    );
    for (const res of answers) assertError(res, 400, 'invalid_request');
    const res = await request(srv, 'POST', '/v1/auth/magic-link', {
      json: { email: 'someone@lockout.example', session: 'token' },
      headers: { 'cf-connecting-ip': ip },
    });
    assertError(res, 429, 'rate_limited');
    assert.equal(res.headers.get('retry-after'), '60', show(res));
  });
});
