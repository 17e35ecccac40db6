// Consumers: edgeauth and both example consumer Workers (examples/consumer-js, examples/consumer-rs)
// under `wrangler dev`, talking over service bindings. A token edgeauth issued opens /offline,
// /checked and /authorized; tampered, expired, wrong-audience (and otherwise malformed) tokens are
// refused by both; after logout /checked refuses, /offline keeps accepting until the token expires
// (the stated bound), and both times are measured.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import { startConsumer, startServer } from './harness.mjs';
import { forger, claimsOf, headerOf } from './forge.mjs';
import {
  ADMIN_PASSWORD,
  assertStatus,
  bootstrap,
  createUser,
  createWorkspace,
  loginToken,
  request,
  show,
  sleep,
  verify,
} from './client.mjs';

const TTL = 60; // ACCESS_TOKEN_TTL (the minimum), so the offline bound is observable in a test
const LEEWAY = 10; // clock tolerance of edgeauth and both consumers
const CHECKED_LOCAL_BOUND_MS = 2_000; // logout -> refusal on /checked, locally
const KINDS = ['js', 'rs'];
const VIEWER_EMAIL = 'viewer@example.com';

const nowSec = () => Math.floor(Date.now() / 1000);

/** Flip one character in the middle of segment `seg` (0 header, 1 payload, 2 signature). */
function flipChar(token, seg = 1) {
  const parts = token.split('.');
  const s = parts[seg];
  const i = Math.floor(s.length / 2);
  parts[seg] = `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
  return parts.join('.');
}

/** Re-encode the payload with `changes`, keeping the original header and signature. */
function withClaims(token, changes) {
  const [h, , s] = token.split('.');
  return `${h}.${jose.base64url.encode(JSON.stringify({ ...claimsOf(token), ...changes }))}.${s}`;
}

const get = (consumer, path, bearer) => request(consumer, 'GET', path, bearer === undefined ? {} : { bearer });

/** 200 with the identity of `token` on route `path` ('offline' | 'checked' | 'authorized'). */
// /offline and /checked answer {"sub","sid","kid","path"}; /authorized {"allow":true,"ttl","path"}.
function assertAccepted(res, token, path) {
  assertStatus(res, 200);
  assert.equal(res.body?.path, path, show(res));
  if (path === 'authorized') {
    assert.equal(res.body.allow, true, show(res));
    assert.ok(Number.isInteger(res.body.ttl) && res.body.ttl >= 0 && res.body.ttl <= 30, `ttl: ${show(res)}`);
  } else {
    const claims = claimsOf(token);
    assert.equal(res.body.sub, claims.sub, show(res));
    assert.equal(res.body.sid, claims.sid, show(res));
    assert.equal(res.body.kid, headerOf(token).kid, show(res));
  }
}

/** 401 {"error": "..."}. */
function assertUnauthorized(res) {
  assert.equal(res.status, 401, show(res));
  assert.equal(typeof res.body?.error, 'string', `401 without an error string: ${show(res)}`);
  assert.ok(!('sub' in res.body), show(res));
}

describe('consumers', () => {
  let srv;
  let boot;
  let forge;
  let workspace; // a second workspace the viewer is no member of
  const consumers = {};

  // Every route of a consumer, with what "accepted" looks like.
  const routes = () => ['/offline', '/checked', `/authorized?capability=docs:read&workspace=${boot.workspace.id}`];

  /** show(res), plus the consumer's and edgeauth's log tails when the consumer failed (5xx). */
  const why = (kind, res) =>
    res.status >= 500
      ? `${show(res)}\n--- consumer-${kind} log ---\n${consumers[kind].logTail(20)}\n--- edgeauth log ---\n${srv.logTail(20)}`
      : show(res);

  /** The token is refused on every route of consumer `kind` (/authorized: 401 or 403, never 200). */
  async function assertRefusedEverywhere(kind, token, what) {
    const c = consumers[kind];
    for (const path of routes()) {
      const res = await get(c, path, token);
      if (path.startsWith('/authorized')) {
        assert.ok([401, 403].includes(res.status), `consumer-${kind} ${what}: ${why(kind, res)}`);
        assert.notEqual(res.body?.allow, true, `consumer-${kind} ${what}: ${show(res)}`);
      } else {
        assert.equal(res.status, 401, `consumer-${kind} ${what}: ${why(kind, res)}`);
        assertUnauthorized(res);
      }
    }
  }

  /** The token opens every route of consumer `kind`. */
  async function assertAcceptedEverywhere(kind, token, what) {
    const c = consumers[kind];
    for (const path of routes()) {
      const res = await get(c, path, token);
      assert.equal(res.status, 200, `consumer-${kind} ${what}: ${why(kind, res)}`);
      assertAccepted(res, token, path.slice(1).split('?')[0]);
    }
  }

  before(async () => {
    srv = await startServer({ name: 'consumers', vars: { ACCESS_TOKEN_TTL: String(TTL), PBKDF2_ITERATIONS: '1000', MAX_SESSIONS_PER_USER: '100' } });
    boot = await bootstrap(srv);
    // Both consumers at once: each is its own `wrangler dev`, registered in srv's dev registry.
    const started = await Promise.allSettled(KINDS.map((k) => startConsumer(k, srv)));
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') consumers[KINDS[i]] = r.value;
    });
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await loginToken(srv); // the first token makes the first signing key
    forge = await forger(srv);
    assert.ok(forge.current, 'a current signing key in D1');
    workspace = await createWorkspace(srv, boot.key, 'Elsewhere');
    await createUser(srv, boot.key, {
      email: VIEWER_EMAIL,
      name: 'Vic Viewer',
      password: ADMIN_PASSWORD,
      workspace: boot.workspace.id,
      role: 'viewer',
    });
  });

  after(async () => {
    await Promise.all(Object.values(consumers).map((c) => c.stop()));
    if (srv) await srv.stop();
  });

  for (const kind of KINDS) {
    describe(`consumer-${kind}`, () => {
      it('a token issued by edgeauth opens /offline, /checked and /authorized', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        await assertAcceptedEverywhere(kind, s.access, 'fresh login');
        // /authorized without a workspace falls back to the token's ws claim.
        const viaWs = await get(consumers[kind], '/authorized?capability=docs:write', s.access);
        assertAccepted(viaWs, s.access, 'authorized');
      });

      it('no token, an empty or foreign scheme, and garbage are 401', async () => {
        const c = consumers[kind];
        for (const path of ['/offline', '/checked']) {
          assertUnauthorized(await get(c, path));
          assertUnauthorized(await request(c, 'GET', path, { headers: { authorization: 'Bearer ' } }));
          assertUnauthorized(await request(c, 'GET', path, { headers: { authorization: 'Basic YWRtaW46cGFzc3dvcmQ=' } }));
          for (const junk of ['garbage', 'a.b.c', boot.key]) assertUnauthorized(await get(c, path, junk));
        }
      });

      it('a tampered token is refused on every route (payload, header and signature changes)', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        await assertAcceptedEverywhere(kind, s.access, 'the untampered original');
        await assertRefusedEverywhere(kind, flipChar(s.access, 1), 'payload character flipped');
        await assertRefusedEverywhere(kind, flipChar(s.access, 2), 'signature character flipped');
        await assertRefusedEverywhere(kind, withClaims(s.access, { sub: 'someone-else' }), 'sub changed');
        await assertRefusedEverywhere(kind, withClaims(s.access, { exp: s.body.expires_in + nowSec() + 86400 }), 'exp extended');
        await assertRefusedEverywhere(kind, `${s.access.split('.').slice(0, 2).join('.')}.`, 'signature stripped');
        // The original still works: the refusals above are not a broken consumer.
        await assertAcceptedEverywhere(kind, s.access, 'the untampered original, again');
      });

      it('a token forged with the real key and the right claims is accepted (the forge is sound)', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        const now = nowSec();
        const token = forge.sign({ ...claimsOf(s.access), jti: `forged-${kind}`, iat: now, nbf: now, exp: now + 120 });
        assert.equal((await verify(srv, token)).active, true, 'edgeauth itself accepts the forged token');
        await assertAcceptedEverywhere(kind, token, 'forged with the right claims');
      });

      it('an expired token is refused (beyond the 10 s leeway); one within the leeway is accepted', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        const base = claimsOf(s.access);
        const now = nowSec();
        const expired = forge.sign({ ...base, iat: now - TTL - 40, nbf: now - TTL - 40, exp: now - 40 });
        assert.deepEqual(await verify(srv, expired), { active: false });
        await assertRefusedEverywhere(kind, expired, 'expired 40 s ago');
        const justExpired = forge.sign({ ...base, iat: now - TTL - 2, nbf: now - TTL - 2, exp: now - 2 });
        assert.equal((await verify(srv, justExpired)).active, true, 'edgeauth accepts within its leeway');
        await assertAcceptedEverywhere(kind, justExpired, 'expired 2 s ago, within the leeway');
      });

      it('a wrong audience, a wrong issuer, or a token not yet valid / issued in the future is refused', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        const base = claimsOf(s.access);
        const now = nowSec();
        const fresh = { ...base, iat: now, nbf: now, exp: now + 120 };
        const cases = {
          'wrong audience': { ...fresh, aud: 'https://other.example' },
          'audience list with ours and another': { ...fresh, aud: [srv.url, 'https://other.example'] },
          'wrong issuer': { ...fresh, iss: 'https://evil.example' },
          'nbf in 60 s': { ...fresh, nbf: now + 60 },
          'iat in 60 s': { ...fresh, iat: now + 60, nbf: now },
          'no sid': { ...fresh, sid: undefined },
          'no exp': { ...fresh, exp: undefined },
        };
        for (const [what, claims] of Object.entries(cases)) {
          const token = forge.sign(JSON.parse(JSON.stringify(claims)));
          assert.deepEqual(await verify(srv, token), { active: false }, `edgeauth should refuse: ${what}`);
          await assertRefusedEverywhere(kind, token, what);
        }
      });

      it('pinned header: typ JWT, alg none / HS256, a foreign key with our kid, an unknown or missing kid, jku, and > 8 KiB are refused', async () => {
        const s = await loginToken(srv, { workspace: boot.workspace.id });
        const { kid } = headerOf(s.access);
        const now = nowSec();
        const claims = { ...claimsOf(s.access), iat: now, nbf: now, exp: now + 120 };
        const cases = {};
        cases['typ JWT'] = forge.sign(claims, { header: { typ: 'JWT' } });
        cases['no typ'] = forge.sign(claims, { header: { typ: undefined } });
        cases['unknown kid'] = forge.sign(claims, { header: { kid: 'not-a-published-kid' } });
        cases['no kid'] = forge.sign(claims, { header: { kid: undefined } });
        cases['jku header'] = forge.sign(claims, { header: { jku: 'https://evil.example/jwks.json' } });
        cases['crit header'] = forge.sign(claims, { header: { crit: ['exp'] } });
        const { privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
        cases['foreign key, our kid'] = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid }).sign(privateKey);
        cases['alg none'] = `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid }))}.${jose.base64url.encode(JSON.stringify(claims))}.`;
        const x = forge.key(kid).x;
        cases['HS256 keyed with the public key'] = await new jose.SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid })
          .sign(jose.base64url.decode(x));
        cases['over 8 KiB'] = forge.sign({ ...claims, pad: 'x'.repeat(9000) });
        assert.ok(cases['over 8 KiB'].length > 8192);
        // Control: the same claims and header, signed properly, are accepted.
        await assertAcceptedEverywhere(kind, forge.sign(claims), 'control');
        for (const [what, token] of Object.entries(cases)) {
          assert.deepEqual(await verify(srv, token), { active: false }, `edgeauth should refuse: ${what}`);
          await assertRefusedEverywhere(kind, token, what);
        }
      });

      it('/authorized asks edgeauth: viewer may read, not write, and nothing in a workspace it is not in', async () => {
        const c = consumers[kind];
        const v = await loginToken(srv, { email: VIEWER_EMAIL, workspace: boot.workspace.id });
        const ask = (capability, ws) =>
          get(c, `/authorized?capability=${encodeURIComponent(capability)}${ws ? `&workspace=${ws}` : ''}`, v.access);
        assertAccepted(await ask('docs:read', boot.workspace.id), v.access, 'authorized');
        assertAccepted(await ask('docs:read'), v.access, 'authorized'); // the token's ws
        assertStatus(await ask('docs:write', boot.workspace.id), 403);
        assertStatus(await ask('docs:read', workspace.id), 403);
        // The admin is an org admin: allowed in the other workspace too.
        const a = await loginToken(srv, { workspace: boot.workspace.id });
        assertAccepted(await get(c, `/authorized?capability=docs:write&workspace=${workspace.id}`, a.access), a.access, 'authorized');
        // /offline and /checked carry no roles: the viewer's token opens them.
        assertAccepted(await get(c, '/offline', v.access), v.access, 'offline');
        assertAccepted(await get(c, '/checked', v.access), v.access, 'checked');
      });
    });
  }

  describe('after logout', () => {
    it('/checked refuses at once on both consumers; /offline accepts until exp (+ leeway), then refuses', async (t) => {
      const s = await loginToken(srv, { workspace: boot.workspace.id });
      const { exp } = claimsOf(s.access);
      for (const kind of KINDS) {
        assertAccepted(await get(consumers[kind], '/checked', s.access), s.access, 'checked');
        assertAccepted(await get(consumers[kind], '/offline', s.access), s.access, 'offline');
      }

      const out = await request(srv, 'POST', '/v1/auth/logout', { bearer: s.access });
      assertStatus(out, 204);
      const loggedOutAt = performance.now();
      const loggedOutWall = Date.now();

      // /checked: time from the logout answer to the first refusal, per consumer (in parallel).
      const timeToRefusal = async (kind, path, deadlineMs) => {
        let attempts = 0;
        for (;;) {
          attempts++;
          const res = await get(consumers[kind], path, s.access);
          const ms = performance.now() - loggedOutAt;
          if (res.status === 401) return { ms, attempts, at: Date.now() };
          assert.equal(res.status, 200, `consumer-${kind} ${path}: ${show(res)}`);
          if (ms > deadlineMs) return { ms, attempts, at: Date.now(), never: true };
          await sleep(path === '/checked' ? 5 : 250);
        }
      };
      // Locally KV is read-your-writes (README, Revocation bound): the refusal is immediate, so
      // allow a couple of seconds of slack, not the ~60 s of KV propagation in production.
      const checked = await Promise.all(KINDS.map((k) => timeToRefusal(k, '/checked', CHECKED_LOCAL_BOUND_MS)));
      KINDS.forEach((kind, i) => {
        const r = checked[i];
        t.diagnostic(
          `consumer-${kind} /checked: refused ${r.ms.toFixed(1)} ms after logout answered ` +
            `(${r.attempts === 1 ? 'the first check after logout' : `check #${r.attempts}`})`,
        );
        assert.ok(!r.never, `consumer-${kind} /checked still accepts ${r.ms.toFixed(0)} ms after logout (${r.attempts} checks)`);
      });
      assert.deepEqual(await verify(srv, s.access), { active: false });

      // /offline cannot see the logout: it keeps accepting the token until it expires.
      for (const kind of KINDS) {
        assertAccepted(await get(consumers[kind], '/offline', s.access), s.access, 'offline');
      }
      const deadlineMs = (exp + LEEWAY + 5) * 1000 - loggedOutWall;
      const offline = await Promise.all(KINDS.map((k) => timeToRefusal(k, '/offline', deadlineMs)));
      KINDS.forEach((kind, i) => {
        const r = offline[i];
        t.diagnostic(
          `consumer-${kind} /offline: accepted for ${(r.ms / 1000).toFixed(1)} s after logout; refused ` +
            `${((r.at - exp * 1000) / 1000).toFixed(1)} s after exp (stated bound: remaining lifetime + ${LEEWAY} s leeway, ` +
            `here ${exp + LEEWAY - Math.floor(loggedOutWall / 1000)} s)`,
        );
        assert.ok(!r.never, `consumer-${kind} /offline still accepts ${((r.at - exp * 1000) / 1000).toFixed(1)} s after exp`);
        // It accepted until exp at least (a consumer that refused earlier would be checking
        // revocation, which /offline does not do), and refused once past the leeway (+ 3 s slack:
        // whole-second clocks, and edgeauth's rule refuses only when now > exp + leeway).
        assert.ok(r.at >= exp * 1000, `consumer-${kind} /offline refused before exp (${r.at} < ${exp * 1000})`);
        assert.ok(r.at <= (exp + LEEWAY + 3) * 1000, `consumer-${kind} /offline refused late: ${r.at} > ${(exp + LEEWAY + 3) * 1000}`);
      });
    });
  });
});
