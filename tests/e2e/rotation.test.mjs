// Rotation and upkeep: signing-key rotation (on demand and by the scheduled handler) with both
// example consumers running; tokens signed before a rotation keep verifying; a key past its overlap
// (ACCESS_TOKEN_TTL + leeway) leaves the JWKS and D1, and a far-future token forged with it is then
// refused by both consumers; the JWKS never carries private material; the scheduled handler (run
// through wrangler's /__scheduled test route) deletes exactly what upkeep should, checked in D1.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { d1Query, startConsumer, startServer } from './harness.mjs';
import { claimsOf, forger, headerOf, signingRoot } from './forge.mjs';
import { assertStatus, auditAll, bootstrap, loginToken, request, show, sleep, verify } from './client.mjs';

const TTL = 60; // ACCESS_TOKEN_TTL (the minimum): a retired key's overlap is TTL + 10 s = 70 s
const LEEWAY = 10;
const OVERLAP = TTL + LEEWAY;
const JWKS_MAX_AGE = Math.min(300, OVERLAP);
const KINDS = ['js', 'rs'];
const JWK_MEMBERS = ['alg', 'crv', 'kid', 'kty', 'use', 'x'];

const nowSec = () => Math.floor(Date.now() / 1000);
const sec = (rfc3339) => Date.parse(rfc3339) / 1000;

/**
 * Polls `probe()` (returns { done, detail }) until done or `deadlineMs` has passed since `t0`
 * (performance.now() time). Returns { ms: since t0, attempts, detail }; ms is null if never done.
 */
async function until(t0, deadlineMs, probe, intervalMs = 200) {
  let attempts = 0;
  for (;;) {
    attempts++;
    const { done, detail } = await probe();
    const ms = performance.now() - t0;
    if (done) return { ms, attempts, detail };
    if (ms > deadlineMs) return { ms: null, attempts, detail };
    await sleep(intervalMs);
  }
}

describe('rotation', () => {
  let srv;
  let boot;
  let forge;
  const consumers = {};

  const get = (kind, path, bearer) => request(consumers[kind], 'GET', path, { bearer });
  const why = (kind, res) =>
    res.status >= 500
      ? `${show(res)}\n--- consumer-${kind} log ---\n${consumers[kind].logTail(20)}\n--- edgeauth log ---\n${srv.logTail(20)}`
      : show(res);

  async function assertConsumersAccept(token, what, paths = ['/offline', '/checked']) {
    for (const kind of KINDS) {
      for (const path of paths) {
        const res = await get(kind, path, token);
        assert.equal(res.status, 200, `consumer-${kind} ${path} should accept ${what}: ${why(kind, res)}`);
        assert.equal(res.body.kid, headerOf(token).kid, show(res));
        assert.equal(res.body.sid, claimsOf(token).sid, show(res));
      }
    }
  }

  const jwks = async () => {
    const res = await request(srv, 'GET', '/.well-known/jwks.json');
    assertStatus(res, 200);
    return res;
  };
  const signingKeys = async () => {
    const res = await request(srv, 'GET', '/v1/signing-keys', { bearer: boot.key });
    assertStatus(res, 200);
    assert.ok(Array.isArray(res.body.signing_keys), show(res));
    return res;
  };
  const runScheduled = async () => {
    const res = await fetch(`${srv.url}/__scheduled?cron=${encodeURIComponent('*/30 * * * *')}`);
    const text = await res.text();
    assert.equal(res.status, 200, `/__scheduled -> ${res.status} ${text}\n--- edgeauth log ---\n${srv.logTail(30)}`);
    return text;
  };
  const upkeepEvents = async () => (await auditAll(srv, boot.key, { action: 'upkeep' })).events;
  const d1Kids = async () => (await d1Query(srv, 'SELECT kid, status FROM signing_keys')).map((r) => `${r.kid}:${r.status}`).sort();

  /**
   * Private material is nowhere in a public document: each JWK has exactly the public members, and
   * no key's seed, salt or the signing root appears in the text in any encoding.
   */
  function assertNoPrivateMaterial(res, what) {
    const secrets = [signingRoot(srv.signingSecret)];
    for (const row of forge.rows) secrets.push(Buffer.from(row.seed_salt, 'base64url'));
    for (const key of forge.keys.values()) secrets.push(key.seed);
    for (const secret of secrets) {
      for (const enc of [secret.toString('base64url'), secret.toString('hex'), secret.toString('base64')]) {
        assert.ok(!res.text.includes(enc), `${what} contains private material (${enc.slice(0, 8)}...)`);
      }
    }
    assert.ok(!res.text.includes(srv.signingSecret), `${what} contains SIGNING_SECRET`);
    for (const bad of ['"d"', 'seed_salt']) assert.ok(!res.text.includes(bad), `${what} has ${bad}: ${res.text}`);
  }

  function assertJwks(res, forgeKeys) {
    const cc = res.headers.get('cache-control') ?? '';
    assert.match(cc, /(^|[ ,])public([ ,]|$)/, `JWKS Cache-Control: ${cc}`);
    assert.equal(Number(/max-age=(\d+)/.exec(cc)?.[1]), JWKS_MAX_AGE, `JWKS max-age must be min(300, TTL + leeway): ${cc}`);
    for (const k of res.body.keys) {
      assert.deepEqual(Object.keys(k).sort(), JWK_MEMBERS, `JWK members: ${JSON.stringify(k)}`);
      assert.equal(k.kty, 'OKP');
      assert.equal(k.crv, 'Ed25519');
      assert.equal(k.alg, 'EdDSA');
      // The published x is the public half of the key edgeauth derives (and signs with).
      if (forgeKeys.has(k.kid)) assert.equal(k.x, forgeKeys.get(k.kid).x, `x of ${k.kid}`);
    }
    assertNoPrivateMaterial(res, 'JWKS');
  }

  before(async () => {
    srv = await startServer({
      name: 'rotation',
      testScheduled: true,
      vars: { ACCESS_TOKEN_TTL: String(TTL), AUDIT_RETENTION_DAYS: '1', PBKDF2_ITERATIONS: '1000', MAX_SESSIONS_PER_USER: '100' },
    });
    boot = await bootstrap(srv);
    const started = await Promise.allSettled(KINDS.map((k) => startConsumer(k, srv)));
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') consumers[KINDS[i]] = r.value;
    });
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await loginToken(srv); // the first token makes the first signing key
    forge = await forger(srv);
  });

  after(async () => {
    await Promise.all(Object.values(consumers).map((c) => c.stop()));
    if (srv) await srv.stop();
  });

  it('the JWKS and /v1/signing-keys publish public halves only, with max-age = min(300, TTL + leeway)', async () => {
    const res = await jwks();
    assert.equal(res.body.keys.length, 1);
    assert.equal(res.body.keys[0].kid, forge.current);
    assertJwks(res, forge.keys);
    const list = await signingKeys();
    assert.equal(list.body.signing_keys.length, 1, show(list));
    const [k] = list.body.signing_keys;
    assert.equal(k.kid, forge.current);
    assert.equal(k.status, 'current');
    assert.equal(k.retired_at, null);
    assert.equal(k.publish_until, null);
    assert.ok(Math.abs(sec(k.created_at) - nowSec()) < 300, `created_at ${k.created_at}`);
    assertNoPrivateMaterial(list, '/v1/signing-keys');
    // Org admins only.
    const s = await loginToken(srv);
    assertStatus(await request(srv, 'GET', '/v1/signing-keys', {}), 401);
    assertStatus(await request(srv, 'GET', '/v1/signing-keys', { bearer: s.access }), 200);
  });

  it('rotation: old tokens keep verifying in both consumers, new ones verify after the unknown-kid refetch; past its overlap the old key leaves the JWKS and D1, and a far-future token forged with it is refused', async (t) => {
    // Before: a real token T1 and a far-future token forged with the same key K1 (same session).
    const t1 = await loginToken(srv);
    const k1 = headerOf(t1.access).kid;
    assert.equal(k1, forge.current);
    const now = nowSec();
    const farFuture = forge.sign({ ...claimsOf(t1.access), jti: 'forged-far-future', iat: now, nbf: now, exp: now + 10 * 365 * 86400 }, { kid: k1 });
    assert.equal((await verify(srv, farFuture)).active, true, 'edgeauth accepts the forged token while K1 is published');
    await assertConsumersAccept(t1.access, 'T1 before the rotation');
    await assertConsumersAccept(farFuture, 'the far-future token while K1 is published', ['/offline']);

    // Make both consumers fetch the JWKS now (an unknown kid does that), so right after the
    // rotation their copy lacks the new key and a refetch is not yet allowed: the moment where a
    // consumer must not turn away a token edgeauth just signed.
    const strayKid = forge.sign({ ...claimsOf(t1.access), jti: 'stray-kid' }, { header: { kid: 'not-a-key-of-ours' } });
    for (const kind of KINDS) {
      const res = await get(kind, '/offline', strayKid);
      assert.equal(res.status, 401, `a token with a kid edgeauth never had is refused: ${why(kind, res)}`);
    }

    // Rotate.
    const rot = await request(srv, 'POST', '/v1/signing-keys/rotate', { bearer: boot.key });
    assertStatus(rot, 200);
    const k2 = rot.body.signing_key?.kid;
    assert.equal(typeof k2, 'string', show(rot));
    assert.notEqual(k2, k1);
    assert.equal(rot.body.signing_key.status, 'current', show(rot));
    assertNoPrivateMaterial(rot, 'rotate answer');
    const rotatedAt = performance.now();
    const rotateAudit = (await auditAll(srv, boot.key, { action: 'signing_key_rotate' })).events;
    assert.equal(rotateAudit.length, 1, 'the rotation is audited once');
    assert.equal(rotateAudit[0].outcome, 'success');

    await forge.reload();
    assert.equal(forge.current, k2);
    const list = (await signingKeys()).body.signing_keys;
    const old = list.find((k) => k.kid === k1);
    assert.deepEqual(list.map((k) => [k.kid, k.status]).sort(), [[k1, 'retired'], [k2, 'current']].sort(), JSON.stringify(list));
    const retiredAt = sec(old.retired_at);
    const publishUntil = sec(old.publish_until);
    assert.ok(Math.abs(retiredAt - nowSec()) <= 5, `retired_at ${old.retired_at} is now`);
    assert.equal(publishUntil - retiredAt, OVERLAP, `publish_until = retired_at + ACCESS_TOKEN_TTL + leeway: ${JSON.stringify(old)}`);
    const both = await jwks();
    assert.deepEqual(both.body.keys.map((k) => k.kid).sort(), [k1, k2].sort(), 'both keys published during the overlap');
    assertJwks(both, forge.keys);

    // Tokens issued before the rotation still verify: edgeauth and both consumers, both paths.
    assert.equal((await verify(srv, t1.access)).active, true);
    await assertConsumersAccept(t1.access, 'T1 after the rotation');

    // A token of the new key is accepted at once: the consumers fetched the JWKS moments before the
    // rotation, so the unknown-kid refetch is not allowed yet (once per 10 s), and they ask edgeauth
    // instead of refusing a token it just signed.
    const t2 = await loginToken(srv);
    assert.equal(headerOf(t2.access).kid, k2, 'new tokens are signed by the new key');
    assert.equal((await verify(srv, t2.access)).active, true);
    for (const kind of KINDS) {
      const res = await get(kind, '/offline', t2.access);
      assert.equal(res.status, 200, `consumer-${kind} refused a token of the new key right after the rotation: ${why(kind, res)}`);
      t.diagnostic(`consumer-${kind}: K2 token accepted ${((performance.now() - rotatedAt) / 1000).toFixed(1)} s after the rotation`);
    }
    await assertConsumersAccept(t2.access, 'T2 (new key)');

    // Until publish_until the old key is published; after it, edgeauth stops publishing it even
    // before upkeep runs. Waiting for that moment is the point of the test (no SQL shortcut).
    const waitMs = publishUntil * 1000 - Date.now() + 1500;
    t.diagnostic(`waiting ${(waitMs / 1000).toFixed(1)} s for K1's publish_until`);
    if (waitMs > 0) await sleep(waitMs);
    const afterOverlap = await jwks();
    assert.deepEqual(afterOverlap.body.keys.map((k) => k.kid), [k2], 'K1 left the JWKS at publish_until');
    assertJwks(afterOverlap, forge.keys);
    assert.deepEqual(await d1Kids(), [`${k1}:retired`, `${k2}:current`].sort(), 'the row stays until upkeep runs');
    assert.deepEqual(await verify(srv, farFuture), { active: false }, 'edgeauth refuses K1 tokens after the overlap');
    assert.deepEqual(await verify(srv, t1.access), { active: false }, 'T1 has expired by now anyway');

    // The scheduled run deletes the row.
    const runsBefore = (await upkeepEvents()).length;
    await runScheduled();
    assert.deepEqual(await d1Kids(), [`${k2}:current`], 'upkeep deleted K1 past its overlap, nothing else');
    const events = await upkeepEvents();
    assert.equal(events.length, runsBefore + 1, 'one upkeep audit event per run');
    assert.equal(events[0].actor.kind, 'system');
    assert.equal(events[0].outcome, 'success');
    assert.equal(events[0].detail.signing_keys_deleted, 1, JSON.stringify(events[0]));
    assert.equal(events[0].detail.rotated_to, null, 'K2 is fresh: no rotation due');

    // The consumers refuse the far-future K1 token once their cached JWKS has expired: at most its
    // max-age after they fetched it, and they fetched it no earlier than the rotation.
    const pruned = performance.now();
    for (const kind of KINDS) {
      const r = await until(pruned, (JWKS_MAX_AGE + 5) * 1000, async () => {
        const res = await get(kind, '/offline', farFuture);
        assert.ok([200, 401].includes(res.status), why(kind, res));
        return { done: res.status === 401, detail: show(res) };
      });
      assert.ok(r.ms !== null, `consumer-${kind} still accepts a far-future token of the pruned key K1: ${r.detail}`);
      t.diagnostic(`consumer-${kind}: K1 forgery refused ${(r.ms / 1000).toFixed(1)} s after the prune (JWKS max-age ${JWKS_MAX_AGE} s)`);
      const checked = await get(kind, '/checked', farFuture);
      assert.equal(checked.status, 401, why(kind, checked));
    }
    // The same forgery under the current key is accepted: the refusal is about K1, not the forge.
    const n2 = nowSec();
    const control = forge.sign({ ...claimsOf(t2.access), jti: 'forged-control', iat: n2, nbf: n2, exp: n2 + 120 }, { kid: k2 });
    await assertConsumersAccept(control, 'a K2 forgery (control)', ['/offline']);
  });

  it('the scheduled handler rotates a due key and prunes expired rows, keeping the rest (checked in D1)', async (t) => {
    const users = await d1Query(srv, 'SELECT id FROM users');
    const uid = users[0].id;
    const now = nowSec();
    const rnd = () => crypto.randomBytes(16).toString('hex');
    const session = (id, { expires = now + 86400, absolute = now + 86400, revoked = null } = {}) =>
      `('${id}', 'default', '${uid}', 'pwd', ${now - 7200}, ${now - 7200}, ${expires}, ${absolute}, '${rnd()}', '${rnd()}', ` +
      `${revoked ?? 'NULL'}, ${revoked === null ? 'NULL' : "'logout'"})`;
    const sessions = {
      'upkeep-s-idle-expired': session('upkeep-s-idle-expired', { expires: now - 3600 }), // gone
      'upkeep-s-absolute-expired': session('upkeep-s-absolute-expired', { expires: now - 3600, absolute: now - 3600 }), // gone
      'upkeep-s-revoked-long-ago': session('upkeep-s-revoked-long-ago', { revoked: now - 3600 }), // gone
      'upkeep-s-revoked-just-now': session('upkeep-s-revoked-just-now', { revoked: now - 5 }), // kept: its tokens may be valid
      'upkeep-s-expired-just-now': session('upkeep-s-expired-just-now', { expires: now - 5 }), // kept
      'upkeep-s-live': session('upkeep-s-live'), // kept
    };
    const sessionsGone = ['upkeep-s-idle-expired', 'upkeep-s-absolute-expired', 'upkeep-s-revoked-long-ago'];
    const attempt = (id, expires) =>
      `('${id}', 'default', 'x@example.com', NULL, 'login', '${rnd()}', '${rnd()}', '${rnd()}', NULL, 'token', 0, ${now - 900}, ${expires}, NULL)`;
    const rateLimit = (key, expires, locked) => `('${key}', 'default', ${now - 900}, 3, ${locked ?? 'NULL'}, ${expires})`;
    const auditRow = (id, at) => `('${id}', 'default', ${at}, 'system', NULL, 'upkeep_test', 'success')`;

    await d1Query(
      srv,
      'INSERT INTO sessions (id, org_id, user_id, auth_method, created_at, last_active_at, expires_at, ' +
        `absolute_expires_at, refresh_nonce, refresh_hash, revoked_at, revoked_reason) VALUES ${Object.values(sessions).join(', ')}`,
    );
    await d1Query(
      srv,
      'INSERT INTO magic_link_attempts (id, org_id, email, user_id, purpose, token_hash, code_hash, binding_hash, ' +
        'redirect_to, session_mode, code_failures, created_at, expires_at, consumed_at) VALUES ' +
        `${attempt('upkeep-m-expired', now - 60)}, ${attempt('upkeep-m-live', now + 600)}`,
    );
    await d1Query(
      srv,
      'INSERT INTO rate_limits (key, org_id, window_start, count, locked_until, expires_at) VALUES ' +
        [
          rateLimit('upkeep-r-expired', now - 60, null), // gone
          rateLimit('upkeep-r-expired-lock-over', now - 60, now - 30), // gone
          rateLimit('upkeep-r-locked', now - 60, now + 600), // kept: the lockout is in force
          rateLimit('upkeep-r-live', now + 600, null), // kept
        ].join(', '),
    );
    await d1Query(
      srv,
      'INSERT INTO audit_events (id, org_id, occurred_at, actor_kind, actor_id, action, outcome) VALUES ' +
        `${auditRow('00000000-0000-7000-8000-00000000000a', now - 2 * 86400)}, ${auditRow('00000000-0000-7000-8000-00000000000b', now - 12 * 3600)}`,
    );

    // A token of the current key, then make that key due for rotation (30 days is the default
    // SIGNING_KEY_ROTATION_SECONDS): the scheduled run must rotate it.
    const preRotation = await loginToken(srv);
    const kOld = headerOf(preRotation.access).kid;
    await d1Query(srv, `UPDATE signing_keys SET created_at = created_at - ${31 * 86400} WHERE kid = '${kOld}'`);

    await runScheduled();
    const ranAt = nowSec();

    const ids = async (table, col, like) =>
      (await d1Query(srv, `SELECT ${col} AS id FROM ${table} WHERE ${col} LIKE '${like}' ORDER BY ${col}`)).map((r) => r.id);
    assert.deepEqual(
      await ids('sessions', 'id', 'upkeep-s-%'),
      Object.keys(sessions).filter((id) => !sessionsGone.includes(id)).sort(),
      'sessions: ended more than TTL + leeway ago are gone, the rest kept',
    );
    assert.deepEqual(await ids('magic_link_attempts', 'id', 'upkeep-m-%'), ['upkeep-m-live']);
    assert.deepEqual(await ids('rate_limits', 'key', 'upkeep-r-%'), ['upkeep-r-live', 'upkeep-r-locked']);
    assert.deepEqual(await ids('audit_events', 'id', '00000000-0000-7000-8000-00000000000%'), ['00000000-0000-7000-8000-00000000000b']);
    // Real sessions (logins of this file) are untouched.
    assert.equal((await verify(srv, preRotation.access)).active, true);

    // Rotation: one current key, the old one retired with its overlap.
    const rows = await d1Query(srv, 'SELECT kid, status, retired_at, publish_until FROM signing_keys ORDER BY created_at');
    const current = rows.filter((r) => r.status === 'current');
    assert.equal(current.length, 1, JSON.stringify(rows));
    const kNew = current[0].kid;
    assert.notEqual(kNew, kOld, 'the scheduled run rotated the due key');
    const oldRow = rows.find((r) => r.kid === kOld);
    assert.equal(oldRow.status, 'retired');
    assert.ok(Math.abs(oldRow.retired_at - ranAt) <= 5, JSON.stringify(oldRow));
    assert.equal(oldRow.publish_until - oldRow.retired_at, OVERLAP, JSON.stringify(oldRow));

    const [event] = await upkeepEvents();
    t.diagnostic(`upkeep detail: ${JSON.stringify(event.detail)}`);
    assert.equal(event.actor.kind, 'system');
    assert.equal(event.outcome, 'success');
    assert.equal(event.detail.rotated_to, kNew);
    assert.ok(event.detail.sessions_deleted >= sessionsGone.length, JSON.stringify(event.detail));
    assert.ok(event.detail.magic_link_attempts_deleted >= 1, JSON.stringify(event.detail));
    assert.ok(event.detail.rate_limits_deleted >= 2, JSON.stringify(event.detail));
    assert.ok(event.detail.audit_events_deleted >= 1, JSON.stringify(event.detail));

    // The token signed before this rotation still verifies in both consumers; new tokens carry the
    // new key and verify too, at once.
    await forge.reload();
    const j = await jwks();
    assert.deepEqual(j.body.keys.map((k) => k.kid).sort(), [kOld, kNew].sort());
    assertJwks(j, forge.keys);
    await assertConsumersAccept(preRotation.access, 'a token of the key the scheduled run retired');
    const fresh = await loginToken(srv);
    assert.equal(headerOf(fresh.access).kid, kNew);
    await assertConsumersAccept(fresh.access, 'a token of the new key');

    // A second run right away: nothing due, nothing rotated, still one current key.
    await runScheduled();
    const [again] = await upkeepEvents();
    assert.notEqual(again.id, event.id);
    assert.equal(again.detail.rotated_to, null, JSON.stringify(again.detail));
    assert.equal((await d1Query(srv, "SELECT kid FROM signing_keys WHERE status = 'current'")).map((r) => r.kid).join(), kNew);
  });

  it('concurrent rotations (on demand and scheduled) leave exactly one current key', async () => {
    const [cur] = await d1Query(srv, "SELECT kid FROM signing_keys WHERE status = 'current'");
    await d1Query(srv, `UPDATE signing_keys SET created_at = created_at - ${31 * 86400} WHERE kid = '${cur.kid}'`);
    const results = await Promise.all([
      ...Array.from({ length: 4 }, () => request(srv, 'POST', '/v1/signing-keys/rotate', { bearer: boot.key })),
      ...Array.from({ length: 3 }, () => fetch(`${srv.url}/__scheduled?cron=${encodeURIComponent('*/30 * * * *')}`)),
    ]);
    for (const r of results.slice(0, 4)) assertStatus(r, 200);
    for (const r of results.slice(4)) assert.equal(r.status, 200, `/__scheduled -> ${r.status} ${await r.text()}`);
    const rows = await d1Query(srv, 'SELECT kid, status, retired_at, publish_until FROM signing_keys');
    const current = rows.filter((r) => r.status === 'current');
    assert.equal(current.length, 1, `exactly one current key: ${JSON.stringify(rows)}`);
    assert.ok(current[0].kid !== cur.kid, 'the due key was rotated');
    for (const r of rows.filter((x) => x.status === 'retired')) {
      assert.equal(r.publish_until - r.retired_at, OVERLAP, JSON.stringify(r));
    }
    // Every rotate answer names a key that was current at some point and exists now.
    const kids = new Set(rows.map((r) => r.kid));
    for (const r of results.slice(0, 4)) assert.ok(kids.has(r.body.signing_key.kid), show(r));
    // The JWKS lists exactly the current key and the retired ones still in their overlap.
    const j = await jwks();
    assert.deepEqual(j.body.keys.map((k) => k.kid).sort(), rows.filter((r) => r.status === 'current' || r.publish_until > nowSec()).map((r) => r.kid).sort());
  });
});
