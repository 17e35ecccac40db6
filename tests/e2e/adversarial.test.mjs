// The adversarial suite (issue 6) against `wrangler dev`: the JWT attack set on /v1/verify, /v1/me
// and /v1/authorize (forged with the service's real keys where the attack needs a valid signature,
// so a refusal is the rule at work and not a broken signature); oversized and malformed bodies over
// every POST/PUT/PATCH route of the route table; absurd headers; CORS with a foreign origin; and
// cookie-authenticated state changes without or with a foreign Origin.
//
// Complements input.test.mjs (error shapes on a few routes) and tokens.test.mjs (pinned algorithms
// with jose); this file walks the route table and the whole attack list.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as jose from 'jose';
import { REPO_ROOT, startServer } from './harness.mjs';
import { forger } from './forge.mjs';
import {
  ACCESS_COOKIE,
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  assertAuthFailure,
  assertError,
  assertStatus,
  absentId,
  bootstrap,
  loginCookie,
  loginToken,
  request,
  show,
} from './client.mjs';

const KIB = 1024;
const APP_ORIGIN = 'https://app.example.test';
const EVIL_ORIGIN = 'https://evil.example';

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');


describe('adversarial', () => {
  let srv;
  let boot;
  let routes;
  let W; // the bootstrap workspace
  let adminKey;
  let session; // token-mode admin session
  let forge;
  let claims; // the claims of a real access token

  before(async () => {
    routes = JSON.parse(
      execFileSync('cargo', ['run', '-q', '--example', 'route_table'], {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        maxBuffer: 16 * 1024 * 1024,
        timeout: 15 * 60_000,
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    srv = await startServer({ name: 'adversarial', vars: { ALLOWED_ORIGINS: APP_ORIGIN, ALLOW_SIGNUP: 'true' } });
    boot = await bootstrap(srv);
    W = boot.workspace.id;
    adminKey = boot.key;
    session = await loginToken(srv);
    forge = await forger(srv);
    claims = jose.decodeJwt(session.access);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  // ---- the JWT attack set ---------------------------------------------------------------------

  describe('JWT attacks on /v1/verify, /v1/me and /v1/authorize', () => {
    /** The three judges of a token; each returns true when the token was accepted. */
    const judges = {
      verify: async (token) => {
        const res = await request(srv, 'POST', '/v1/verify', { json: { token } });
        if (res.status === 413) return { accepted: false, res };
        assertStatus(res, 200);
        if (res.body.active !== true) assert.deepEqual(res.body, { active: false }, show(res));
        return { accepted: res.body.active === true, res };
      },
      me: async (token) => {
        const res = await request(srv, 'GET', '/v1/me', { bearer: token });
        if (res.status === 200) return { accepted: true, res };
        if (res.status === 400 || res.status === 431) {
          // Only an absurd Authorization header gets these (our 8 KiB limit, or the runtime's own
          // header limit before the Worker runs), never a parse error.
          assert.ok(token.length > 8 * KIB, show(res));
          if (res.status === 400) assertError(res, 400, 'invalid_request');
        } else {
          assertAuthFailure(res);
        }
        return { accepted: false, res };
      },
      authorize: async (token) => {
        const res = await request(srv, 'POST', '/v1/authorize', { json: { token, capability: 'docs:read', workspace: W } });
        if (res.status === 413) return { accepted: false, res };
        assertStatus(res, 200);
        assert.equal(typeof res.body.allow, 'boolean', show(res));
        return { accepted: res.body.allow === true, res };
      },
    };

    async function assertRefusedEverywhere(name, token) {
      for (const [judge, run] of Object.entries(judges)) {
        const { accepted, res } = await run(token);
        assert.equal(accepted, false, `${name}: accepted by ${judge}: ${show(res)}`);
        assert.ok(res.status < 500, `${name}: ${judge} ${show(res)}`);
      }
    }

    it('control: a token forged with the real key and unchanged claims is accepted by all three', async () => {
      const token = forge.sign({ ...claims });
      for (const [judge, run] of Object.entries(judges)) {
        const { accepted, res } = await run(token);
        assert.equal(accepted, true, `${judge}: ${show(res)}`);
      }
    });

    it('alg none, in any case, with or without a signature', async () => {
      const good = forge.sign({ ...claims });
      const [, p, s] = good.split('.');
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        const h = b64({ alg, typ: 'at+jwt', kid: forge.current });
        await assertRefusedEverywhere(`alg ${alg}, empty signature`, `${h}.${p}.`);
        await assertRefusedEverywhere(`alg ${alg}, real signature`, `${h}.${p}.${s}`);
        await assertRefusedEverywhere(`alg ${alg}, two segments`, `${h}.${p}`);
      }
      // EdDSA spelled otherwise, signed by the real key: the algorithm is pinned exactly.
      for (const alg of ['eddsa', 'Ed25519', 'ES256']) {
        await assertRefusedEverywhere(`alg ${alg}`, forge.sign({ ...claims }, { header: { alg } }));
      }
    });

    it('HS256 keyed with the public key (algorithm confusion)', async () => {
      const jwk = (await request(srv, 'GET', '/.well-known/jwks.json')).body.keys.find((k) => k.kid === forge.current);
      for (const [what, secret] of [
        ['raw public key bytes', Buffer.from(jwk.x, 'base64url')],
        ['base64url text of the key', Buffer.from(jwk.x)],
        ['JWK JSON', Buffer.from(JSON.stringify(jwk))],
        ['PEM', forge.key(forge.current).publicKey.export({ format: 'pem', type: 'spki' })],
      ]) {
        for (const alg of ['HS256', 'HS512']) {
          const input = `${b64({ alg, typ: 'at+jwt', kid: forge.current })}.${b64(claims)}`;
          const mac = crypto.createHmac(alg === 'HS256' ? 'sha256' : 'sha512', secret).update(input).digest('base64url');
          await assertRefusedEverywhere(`${alg} with ${what}`, `${input}.${mac}`);
        }
      }
    });

    it('embedded jwk and jku: an attacker key is never trusted, and the headers are refused even under our signature', async () => {
      const attacker = crypto.generateKeyPairSync('ed25519');
      const attackerJwk = attacker.publicKey.export({ format: 'jwk' });
      const signWith = (privateKey, header) => {
        const input = `${b64(header)}.${b64(claims)}`;
        return `${input}.${crypto.sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
      };
      const base = { alg: 'EdDSA', typ: 'at+jwt' };
      await assertRefusedEverywhere('attacker key, jwk embedded', signWith(attacker.privateKey, { ...base, jwk: attackerJwk }));
      await assertRefusedEverywhere(
        'attacker key, jwk embedded, our kid',
        signWith(attacker.privateKey, { ...base, kid: forge.current, jwk: attackerJwk }),
      );
      await assertRefusedEverywhere('attacker key, jku', signWith(attacker.privateKey, { ...base, jku: `${EVIL_ORIGIN}/jwks.json` }));
      await assertRefusedEverywhere(
        'attacker key, jku, our kid',
        signWith(attacker.privateKey, { ...base, kid: forge.current, jku: `${EVIL_ORIGIN}/jwks.json` }),
      );
      await assertRefusedEverywhere('attacker key, x5u', signWith(attacker.privateKey, { ...base, kid: forge.current, x5u: `${EVIL_ORIGIN}/cert.pem` }));
      // Our own key with those members: refused by rule (we never issue them).
      for (const extra of [{ jwk: attackerJwk }, { jku: `${EVIL_ORIGIN}/jwks.json` }, { x5c: ['MIIB'] }]) {
        await assertRefusedEverywhere(`real key with ${Object.keys(extra)[0]}`, forge.sign({ ...claims }, { header: extra }));
      }
    });

    it('kid with path traversal, SQL, absent or of the wrong type', async () => {
      const attacker = crypto.generateKeyPairSync('ed25519');
      const kids = [
        '../../../../../../dev/null',
        '..%2f..%2fetc%2fpasswd',
        '/etc/passwd',
        "' OR '1'='1",
        "x' UNION SELECT kid, public_key, seed_salt FROM signing_keys --",
        `${forge.current}' --`,
        '',
        'a'.repeat(2000),
      ];
      for (const kid of kids) {
        // Under our real key (the kid names nothing) and under the attacker's.
        const input = `${b64({ alg: 'EdDSA', typ: 'at+jwt', kid })}.${b64(claims)}`;
        const theirs = `${input}.${crypto.sign(null, Buffer.from(input), attacker.privateKey).toString('base64url')}`;
        const ours = `${input}.${crypto.sign(null, Buffer.from(input), forge.key(forge.current).privateKey).toString('base64url')}`;
        await assertRefusedEverywhere(`kid ${JSON.stringify(kid.slice(0, 40))} (attacker key)`, theirs);
        await assertRefusedEverywhere(`kid ${JSON.stringify(kid.slice(0, 40))} (our key)`, ours);
      }
      for (const kid of [undefined, 5, null, [forge.current], { $ne: null }]) {
        await assertRefusedEverywhere(`kid ${JSON.stringify(kid)}`, forge.sign({ ...claims }, { header: { kid } }));
      }
      // The signing keys survived every attempt.
      const after = (await request(srv, 'GET', '/.well-known/jwks.json')).body.keys;
      assert.ok(after.some((k) => k.kid === forge.current));
    });

    it('crit, and a wrong or missing typ', async () => {
      for (const header of [
        { crit: ['exp'] },
        { crit: [] },
        { crit: ['b64'], b64: false },
        { typ: 'JWT' },
        { typ: 'jwt' },
        { typ: 'at+jwt ' },
        { typ: 'application/at+jwt' },
        { typ: undefined },
        { typ: 1 },
      ]) {
        await assertRefusedEverywhere(`header ${JSON.stringify(header)}`, forge.sign({ ...claims }, { header }));
      }
    });

    it('wrong iss or aud, under a valid signature', async () => {
      for (const change of [
        { iss: EVIL_ORIGIN },
        { iss: `${srv.url}/` },
        { iss: srv.url.toUpperCase() },
        { iss: undefined },
        { aud: EVIL_ORIGIN },
        { aud: [EVIL_ORIGIN] },
        { aud: undefined },
        { aud: `${srv.url}/` },
      ]) {
        const payload = { ...claims, ...change };
        for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
        await assertRefusedEverywhere(`claims ${JSON.stringify(change)}`, forge.sign(payload));
      }
    });

    it('exp, nbf and iat outside the tolerated skew (10 s), under a valid signature', async () => {
      const now = Math.floor(Date.now() / 1000);
      for (const change of [
        { exp: now - 60 },
        { exp: now - 3600, iat: now - 4200, nbf: now - 4200 },
        { exp: undefined },
        { exp: String(now + 600) },
        { nbf: now + 120 },
        { nbf: now + 86_400 },
        { nbf: undefined },
        { iat: now + 120 },
        { iat: undefined },
        { exp: 1e300 },
        { exp: -1 },
      ]) {
        const payload = { ...claims, ...change };
        for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
        await assertRefusedEverywhere(`claims ${JSON.stringify(change)}`, forge.sign(payload));
      }
      // Within the skew it is accepted (the refusals above are the rule, not any change of claims).
      const { accepted } = await judges.verify(forge.sign({ ...claims, nbf: now + 5, iat: now + 5 }));
      assert.equal(accepted, true, 'nbf/iat 5 s ahead is within the leeway');
    });

    it('non-base64url characters and broken structure', async () => {
      const good = forge.sign({ ...claims });
      const [h, p, s] = good.split('.');
      const std = (seg) => Buffer.from(seg, 'base64url').toString('base64'); // +, / and = padding
      const variants = {
        'padded signature': `${h}.${p}.${s}==`,
        'standard base64 payload': `${h}.${std(p)}.${s}`,
        'standard base64 signature': `${h}.${p}.${std(s)}`,
        'space inside': `${h}.${p.slice(0, 10)} ${p.slice(10)}.${s}`,
        'percent-encoded': `${h}.${p}.${encodeURIComponent(`${s}+/`)}`,
        'non-ASCII': `${h}.${p}é.${s}`,
        'NUL byte': `${h}.${p}\u0000.${s}`,
        'four segments': `${h}.${p}.${s}.${s}`,
        'empty payload': `${h}..${s}`,
        'header not JSON': `${Buffer.from('not json').toString('base64url')}.${p}.${s}`,
        'payload not JSON': `${h}.${Buffer.from('{"sub":').toString('base64url')}.${s}`,
        'payload an array': `${h}.${b64([claims])}.${s}`,
        'truncated signature': `${h}.${p}.${s.slice(0, -2)}`,
        'dots only': '..',
      };
      for (const [name, token] of Object.entries(variants)) {
        // The NUL byte cannot travel in a header; the body judges still get it.
        if (name === 'NUL byte' || name === 'non-ASCII') {
          for (const judge of ['verify', 'authorize']) assert.equal((await judges[judge](token)).accepted, false, name);
          continue;
        }
        await assertRefusedEverywhere(name, token);
      }
    });

    it('100 KB tokens: refused quickly and without an error', async () => {
      const good = forge.sign({ ...claims });
      const [h, , s] = good.split('.');
      const bigSigned = forge.sign({ ...claims, pad: 'x'.repeat(100 * KIB) });
      assert.ok(bigSigned.length > 100 * KIB);
      const bigGarbage = `${h}.${'A'.repeat(100 * KIB)}.${s}`;
      for (const token of [bigSigned, bigGarbage]) {
        // In a header: refused by our 8 KiB credential limit (400), or by the runtime's own header
        // limit (431) before the Worker runs. In a body: over 64 KiB (413).
        const me = await request(srv, 'GET', '/v1/me', { bearer: token });
        assert.ok(me.status === 431 || (me.status === 400 && me.body?.error?.code === 'invalid_request'), show(me));
        assertError(await request(srv, 'POST', '/v1/verify', { json: { token } }), 413, 'payload_too_large');
        assertError(
          await request(srv, 'POST', '/v1/authorize', { json: { token, capability: 'docs:read', workspace: W } }),
          413,
          'payload_too_large',
        );
      }
      // Between 8 KiB and the body limit, signed by us: refused by the verifier's size rule.
      const midSigned = forge.sign({ ...claims, pad: 'x'.repeat(40 * KIB) });
      for (const judge of ['verify', 'authorize']) {
        const { accepted, res } = await judges[judge](midSigned);
        assert.equal(accepted, false, `40 KB signed token accepted by ${judge}`);
        assert.ok(res.ms < 2_000, `${judge} took ${res.ms} ms`);
      }
    });
  });

  // ---- bodies over every POST/PUT/PATCH route --------------------------------------------------

  describe('oversized and malformed bodies over every POST/PUT/PATCH route', () => {
    let bodyRoutes;

    before(() => {
      bodyRoutes = routes.filter((r) => ['POST', 'PUT', 'PATCH'].includes(r.method));
      assert.ok(bodyRoutes.length >= 20, `only ${bodyRoutes.length} body routes in the table`);
    });

    /** A path with absent targets (a real role for PutRole: an unknown role is 404 before its body). */
    const pathOf = (route) => route.pattern.replace(/\{(\w+)\}/g, (_, n) => (route.id === 'PutRole' ? 'viewer' : absentId()));

    /** The credential a route needs: a fresh session for the person-only routes (logout may end
     * it), the bootstrap API key for the others. */
    async function credentialFor(route) {
      if (route.credential === 'Session' || route.credential === 'SessionOrRefresh') return (await loginToken(srv)).access;
      return route.credential === 'None' ? undefined : adminKey;
    }

    const malformed = [
      ['text/plain', { body: '{}', contentType: 'text/plain' }, 415, 'unsupported_media_type'],
      ['application/xml', { body: '<a/>', contentType: 'application/xml' }, 415, 'unsupported_media_type'],
      ['no content type', { body: new TextEncoder().encode('{}') }, 415, 'unsupported_media_type'],
      ['broken JSON', { body: '{"a":', contentType: 'application/json' }, 400, 'invalid_request'],
      ['invalid UTF-8', { body: new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), contentType: 'application/json' }, 400, 'invalid_request'],
      ['JSON array', { body: '[]', contentType: 'application/json' }, 400, 'invalid_request'],
      ['JSON null', { body: 'null', contentType: 'application/json' }, 400, 'invalid_request'],
      ['two objects', { body: '{}{}', contentType: 'application/json' }, 400, 'invalid_request'],
      ['deep nesting', { body: `${'['.repeat(5000)}${']'.repeat(5000)}`, contentType: 'application/json' }, 400, 'invalid_request'],
    ];

    it('a body over 64 KiB is 413 on every route, with and without Content-Length', async () => {
      const problems = [];
      for (const route of bodyRoutes) {
        const path = pathOf(route);
        const bearer = await credentialFor(route);
        const declared = await request(srv, route.method, path, {
          bearer,
          body: JSON.stringify({ pad: 'x'.repeat(100 * KIB) }),
          contentType: 'application/json',
        });
        if (declared.status !== 413 || declared.body?.error?.code !== 'payload_too_large') problems.push(`declared: ${show(declared)}`);
        const chunked = await request(srv, route.method, path, { bearer, body: chunkedBody(96 * KIB), contentType: 'application/json' });
        if (chunked.status !== 413) problems.push(`chunked: ${show(chunked)}`);
      }
      assert.deepEqual(problems, []);
    });

    it('wrong content types, broken JSON, invalid UTF-8 and non-objects get a 4xx on every route', async () => {
      const problems = [];
      for (const route of bodyRoutes) {
        const path = pathOf(route);
        for (const [label, opts, status, code] of malformed) {
          const bearer = await credentialFor(route);
          const res = await request(srv, route.method, path, { bearer, ...opts });
          if (res.status >= 500 || !res.body?.error?.code && res.status >= 400) {
            problems.push(`${label}: ${show(res)}`);
            continue;
          }
          // Bootstrap: every refusal is the one 401 (no oracle for the bootstrap token).
          const [wantStatus, wantCode] = route.id === 'Bootstrap' ? [401, 'auth_failure'] : [status, code];
          if (res.status !== wantStatus || res.body?.error?.code !== wantCode) problems.push(`${label}: want ${wantStatus} ${wantCode}, ${show(res)}`);
        }
      }
      assert.deepEqual(problems, []);
    });

    it('a wrongly typed field is a 400 naming it', async () => {
      const cases = [
        ['POST', '/v1/auth/login', { email: ['a'], password: 'x' }, 'email'],
        ['POST', '/v1/auth/refresh', { refresh_token: 7 }, 'refresh_token'],
        ['POST', '/v1/auth/magic-link', { email: { a: 1 } }, 'email'],
        ['POST', '/v1/auth/magic-link/code', { email: 'a@b.c', code: 123456, attempt: 'x' }, 'code'],
        ['POST', '/v1/auth/register', { email: 'a@b.c', password: false }, 'password'],
        ['POST', '/v1/verify', { token: ['x'] }, 'token'],
        ['POST', '/v1/api-keys', { name: 'k', role: 5 }, 'role'],
        ['POST', '/v1/users', { email: 'u@example.com', name: 'U', org_admin: 'yes' }, 'org_admin'],
        ['POST', '/v1/workspaces', { name: null }, 'name'],
        ['PUT', `/v1/roles/viewer`, { capabilities: 'docs:read' }, 'capabilities'],
        ['POST', '/v1/authorize', { capability: 'docs:read', workspace: 5 }, 'workspace'],
        ['POST', '/v1/authorize/batch', { checks: [{ capability: 'docs:read', resource: [] }] }, 'checks[0].resource'],
      ];
      for (const [method, path, json, field] of cases) {
        const res = await request(srv, method, path, { bearer: path.startsWith('/v1/auth/') ? undefined : adminKey, json });
        assertError(res, 400, 'invalid_request', field);
      }
    });
  });

  // ---- headers -----------------------------------------------------------------------------------

  describe('absurd headers', () => {
    it('a Cookie or Authorization header over 8 KiB is a 400 naming it', async () => {
      const cases = {
        cookie: { headers: { cookie: `${ACCESS_COOKIE}=${'c'.repeat(9 * KIB)}` } },
        authorization: { headers: { authorization: `Bearer ${'a'.repeat(9 * KIB)}` } },
      };
      for (const [name, opts] of Object.entries(cases)) {
        for (const [method, path] of [['GET', '/v1/me'], ['GET', '/health'], ['POST', '/v1/verify'], ['POST', '/v1/auth/logout']]) {
          const res = await request(srv, method, path, { ...opts, json: method === 'POST' ? { token: 'x' } : undefined });
          assertError(res, 400, 'invalid_request');
          assert.match(res.body.error.message, new RegExp(name), show(res));
        }
      }
      // Just under the limit passes.
      assertStatus(await request(srv, 'GET', '/health', { headers: { cookie: `x=${'c'.repeat(8 * KIB - 10)}` } }), 200);
    });

    it('headers far beyond any limit are refused before the Worker, never a 5xx', async () => {
      // Our limits answer 400; the runtime in front of the Worker may refuse first with its own
      // 431 (seen under wrangler dev for a 100 KiB header). Either way a 4xx, and the Worker lives.
      const many = Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`x-pad-${i}`, 'p'.repeat(7 * KIB)]));
      for (const headers of [many, { cookie: 'c'.repeat(100 * KIB) }, { authorization: `Bearer ${'a'.repeat(100 * KIB)}` }]) {
        const res = await request(srv, 'GET', '/v1/me', { headers });
        assert.ok(res.status === 431 || res.status === 400, show(res));
      }
      assertStatus(await request(srv, 'GET', '/health'), 200);
    });
  });

  // ---- CORS ------------------------------------------------------------------------------------

  describe('CORS', () => {
    const corsHeaders = (res) => [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));

    it('a foreign origin gets no CORS header on any route, and every response varies by Origin', async () => {
      const problems = [];
      for (const route of routes) {
        const path = route.pattern.replace(/\{(\w+)\}/g, () => absentId());
        const json = ['POST', 'PUT', 'PATCH'].includes(route.method) ? {} : undefined;
        // The endpoints that would end the admin's session or rotate keys are asked with nothing
        // that authenticates: the CORS layer is the same for every answer.
        const bearer = route.credential === 'None' || ['Logout', 'LogoutAll', 'RotateSigningKey'].includes(route.id) ? undefined : adminKey;
        for (const origin of [EVIL_ORIGIN, 'null', `${APP_ORIGIN}.evil.example`, APP_ORIGIN.replace('https', 'http')]) {
          const res = await request(srv, route.method, path, { bearer, json, origin });
          if (corsHeaders(res).length) problems.push(`${origin}: ${corsHeaders(res)} on ${show(res)}`);
          if (!/(^|,\s*)origin(\s*,|$)/i.test(res.headers.get('vary') ?? '')) problems.push(`no Vary: Origin on ${show(res)}`);
          if (res.status >= 500) problems.push(show(res));
        }
      }
      assert.deepEqual(problems, []);
    });

    it('the configured origin gets its own origin back with credentials, never *', async () => {
      for (const [method, path, opts] of [
        ['GET', '/health', {}],
        ['GET', '/v1/me', { bearer: session.access }],
        ['GET', '/v1/me', {}],
        ['POST', '/v1/verify', { json: { token: 'x' } }],
      ]) {
        const res = await request(srv, method, path, { ...opts, origin: APP_ORIGIN });
        assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN, show(res));
        assert.equal(res.headers.get('access-control-allow-credentials'), 'true', show(res));
        assert.match(res.headers.get('vary') ?? '', /origin/i);
      }
    });

    it('refusals made before any route runs (body over 64 KiB, a huge header) carry CORS too, so the page can read them', async () => {
      const tooLarge = await request(srv, 'POST', '/v1/verify', {
        body: JSON.stringify({ token: 'x'.repeat(70 * KIB) }),
        contentType: 'application/json',
        origin: APP_ORIGIN,
      });
      const hugeHeader = await request(srv, 'GET', '/v1/me', { bearer: 'x'.repeat(9 * KIB), origin: APP_ORIGIN });
      for (const [res, status] of [[tooLarge, 413], [hugeHeader, 400]]) {
        assert.equal(res.status, status, show(res));
        assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN, show(res));
        assert.equal(res.headers.get('access-control-allow-credentials'), 'true', show(res));
        assert.equal(res.headers.get('cache-control'), 'no-store', show(res));
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff', show(res));
      }
      // A foreign origin still gets none.
      const foreign = await request(srv, 'POST', '/v1/verify', {
        body: JSON.stringify({ token: 'x'.repeat(70 * KIB) }),
        contentType: 'application/json',
        origin: EVIL_ORIGIN,
      });
      assert.equal(foreign.status, 413, show(foreign));
      assert.equal(corsHeaders(foreign).length, 0, show(foreign));
      assert.match(foreign.headers.get('vary') ?? '', /origin/i);
    });

    it('preflight: 204 with the path\'s methods for the configured origin, 403 without CORS headers for others', async () => {
      const preflight = (path, origin, method) =>
        request(srv, 'OPTIONS', path, {
          headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization, content-type' },
        });
      const ok = await preflight('/v1/api-keys', APP_ORIGIN, 'POST');
      assertStatus(ok, 204);
      assert.equal(ok.headers.get('access-control-allow-origin'), APP_ORIGIN);
      assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
      assert.deepEqual(
        ok.headers.get('access-control-allow-methods').split(',').map((m) => m.trim()).sort(),
        ['GET', 'HEAD', 'POST'],
      );
      assert.match(ok.headers.get('access-control-allow-headers'), /authorization/);
      assert.match(ok.headers.get('access-control-allow-headers'), /content-type/);

      for (const origin of [EVIL_ORIGIN, 'null', `${APP_ORIGIN}.evil.example`]) {
        const res = await preflight('/v1/api-keys', origin, 'POST');
        assertError(res, 403, 'forbidden');
        assert.deepEqual(corsHeaders(res), [], show(res));
      }
      assertStatus(await preflight('/v1/api-keys', APP_ORIGIN, 'PUT'), 405);
      assertStatus(await preflight('/v1/nope', APP_ORIGIN, 'GET'), 404);
    });
  });

  // ---- cookie-authenticated POSTs ----------------------------------------------------------------

  describe('cookie-authenticated state changes', () => {
    it('without an Origin, or with a foreign one, every state-changing route is 403 csrf and nothing changes', async () => {
      const { jar } = await loginCookie(srv);
      const cookieOnly = jar.only(ACCESS_COOKIE);
      const guarded = routes.filter((r) => r.credential !== 'None' && r.method !== 'GET');
      assert.ok(guarded.length >= 15);
      const problems = [];
      for (const route of guarded) {
        const path = route.pattern.replace(/\{(\w+)\}/g, (_, n) => (n === 'id' && route.pattern.startsWith('/v1/workspaces') ? W : absentId()));
        const json = route.method === 'DELETE' ? undefined : { name: 'csrf', capability: 'docs:read', workspace: W };
        for (const headers of [{}, { origin: EVIL_ORIGIN }, { origin: 'null' }, { origin: 'null', 'sec-fetch-site': 'cross-site' }, { origin: `${APP_ORIGIN}.evil.example` }]) {
          const res = await request(srv, route.method, path, { jar: cookieOnly, keepJar: true, json, headers });
          if (res.status !== 403 || res.body?.error?.code !== 'csrf') problems.push(`${JSON.stringify(headers)}: ${show(res)}`);
        }
      }
      assert.deepEqual(problems, []);
      // The session was never ended nor anything created: the key list is as before, the cookie works.
      const me = await request(srv, 'GET', '/v1/me', { jar: cookieOnly, keepJar: true });
      assertStatus(me, 200);
      const keys = await request(srv, 'GET', '/v1/api-keys', { bearer: adminKey });
      assert.ok(!keys.body.api_keys.some((k) => k.name === 'csrf'), 'a key was created by a cross-site POST');
    });

    it('the refresh cookie without or with a foreign Origin is refused too', async () => {
      const { jar } = await loginCookie(srv);
      for (const origin of [undefined, EVIL_ORIGIN]) {
        const res = await request(srv, 'POST', '/v1/auth/refresh', { jar, keepJar: true, origin });
        assert.equal(res.status, 403, show(res));
        assert.equal(res.body.error.code, 'csrf', show(res));
      }
      const ok = await request(srv, 'POST', '/v1/auth/refresh', { jar, origin: APP_ORIGIN });
      assertStatus(ok, 200);
    });

    it('with the configured Origin the same cookie request goes through', async () => {
      const { jar } = await loginCookie(srv);
      const res = await request(srv, 'POST', '/v1/api-keys', { jar: jar.only(ACCESS_COOKIE), keepJar: true, origin: APP_ORIGIN, json: { name: 'allowed origin' } });
      assertStatus(res, 201);
      assert.equal(res.headers.get('access-control-allow-origin'), APP_ORIGIN);
      assert.match(res.headers.get('cache-control') ?? '', /no-store/);
    });
  });

  // ---- security headers and caching --------------------------------------------------------------

  describe('HTTP hardening', () => {
    /** The only answers that may be cached: public documents that carry no credential. */
    const CACHEABLE = new Set(['Jwks', 'OpenIdConfiguration', 'Asset']);

    /** Every GET route, with real or absent ids, as the admin key and with nothing. */
    async function everyGet() {
      const out = [];
      for (const route of routes.filter((r) => r.method === 'GET')) {
        const path =
          route.id === 'Asset'
            ? '/assets/app.js'
            : route.id === 'MagicLinkPage'
              ? '/v1/auth/magic-link/verify?token=not-a-live-token'
              : route.pattern.replace(/\{(\w+)\}/g, () => absentId());
        for (const bearer of [undefined, adminKey]) out.push([route, await request(srv, 'GET', path, { bearer })]);
      }
      return out;
    }

    it('every HTML answer carries a strict CSP, frame-ancestors none, nosniff and no-referrer', async () => {
      const problems = [];
      let pages = 0;
      for (const [route, res] of await everyGet()) {
        if (!(res.headers.get('content-type') ?? '').startsWith('text/html')) continue;
        pages += 1;
        const csp = res.headers.get('content-security-policy') ?? '';
        if (!csp.includes("default-src 'none'") || !csp.includes("frame-ancestors 'none'") || !csp.includes("script-src 'self'")) problems.push(`${route.id} CSP: ${csp}`);
        if (res.headers.get('x-content-type-options') !== 'nosniff') problems.push(`${route.id}: no nosniff`);
        if (res.headers.get('referrer-policy') !== 'no-referrer') problems.push(`${route.id}: referrer-policy ${res.headers.get('referrer-policy')}`);
        if (res.headers.get('x-frame-options') !== 'DENY') problems.push(`${route.id}: x-frame-options ${res.headers.get('x-frame-options')}`);
        if (!/no-store/.test(res.headers.get('cache-control') ?? '')) problems.push(`${route.id}: cache-control ${res.headers.get('cache-control')}`);
      }
      assert.deepEqual(problems, []);
      // /login, /signup, /login/code, /account and the link page, each asked twice.
      assert.ok(pages >= 10, `only ${pages} HTML answers`);
    });

    it('every answer is no-store but the public documents, and every answer that carries a credential is', async () => {
      const problems = [];
      for (const [route, res] of await everyGet()) {
        const cache = res.headers.get('cache-control') ?? '';
        if (CACHEABLE.has(route.id) && res.status === 200) {
          if (!/^public, max-age=\d+$/.test(cache)) problems.push(`${route.id}: ${cache}`);
        } else if (cache !== 'no-store') problems.push(`${route.id} ${res.status}: ${cache}`);
      }
      // The answers that hand out a credential: tokens, cookies, a link binding, a key, a password.
      const cookie = await request(srv, 'POST', '/v1/auth/login', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, session: 'cookie' } });
      const token = await loginToken(srv);
      const credentialAnswers = {
        'login (cookie)': cookie,
        'login (token)': await request(srv, 'POST', '/v1/auth/login', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, session: 'token' } }),
        refresh: await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: token.refresh } }),
        'magic link (cookie binding)': await request(srv, 'POST', '/v1/auth/magic-link', { json: { email: 'someone@example.com' } }),
        'magic link (token binding)': await request(srv, 'POST', '/v1/auth/magic-link', { json: { email: 'someone@example.com', session: 'token' } }),
        register: await request(srv, 'POST', '/v1/auth/register', { json: { email: 'new-user@example.com', password: 'a fine new password', session: 'token' } }),
        'api key': await request(srv, 'POST', '/v1/api-keys', { bearer: adminKey, json: { name: 'hardening' } }),
      };
      const user = await request(srv, 'POST', '/v1/users', { bearer: adminKey, json: { email: 'reset-me@example.com', name: 'Reset Me' } });
      credentialAnswers['reset password'] = await request(srv, 'POST', `/v1/users/${user.body.user.id}/reset-password`, { bearer: adminKey });
      for (const [name, res] of Object.entries(credentialAnswers)) {
        if (res.status >= 300) problems.push(`${name}: ${show(res)}`);
        const carries = res.setCookies.length > 0 || /token|attempt|"key"|password/.test(res.text);
        if (!carries) problems.push(`${name} carries no credential: ${show(res)}`);
        if (res.headers.get('cache-control') !== 'no-store') problems.push(`${name}: cache-control ${res.headers.get('cache-control')}`);
      }
      assert.deepEqual(problems, []);
    });
  });
});

/** A request body stream of `total` bytes of a JSON string (no Content-Length: chunked). */
function chunkedBody(total) {
  const enc = new TextEncoder();
  let sent = 0;
  return new ReadableStream({
    start(controller) {
      controller.enqueue(enc.encode('{"pad":"'));
    },
    pull(controller) {
      if (sent >= total) {
        controller.enqueue(enc.encode('"}'));
        controller.close();
        return;
      }
      sent += 16 * KIB;
      controller.enqueue(enc.encode('x'.repeat(16 * KIB)));
    },
  });
}
