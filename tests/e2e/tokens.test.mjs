// Tokens: JWKS and discovery, independent verification with jose, /v1/verify, pinned algorithms,
// and one indistinguishable 401 across every authentication failure.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import { startServer } from './harness.mjs';
import {
  ACCESS_COOKIE,
  ADMIN_EMAIL,
  CookieJar,
  REFRESH_COOKIE,
  ADMIN_PASSWORD,
  AUTH_FAILURE,
  assertAuthFailure,
  assertStatus,
  bootstrap,
  loginRaw,
  loginToken,
  refreshToken,
  request,
  show,
  sleep,
  verify,
} from './client.mjs';

const GRACE_SECONDS = 1;

/** Flip one character in the middle of the payload segment to another base64url character. */
function tamperPayloadChar(token) {
  const [h, p, s] = token.split('.');
  const i = Math.floor(p.length / 2);
  const c = p[i];
  const replacement = c === 'A' ? 'B' : 'A';
  return `${h}.${p.slice(0, i)}${replacement}${p.slice(i + 1)}.${s}`;
}

/** Re-encode the payload with one claim changed, keeping the original signature. */
function tamperClaim(token, claim, value) {
  const [h, , s] = token.split('.');
  const payload = { ...jose.decodeJwt(token), [claim]: value };
  return `${h}.${jose.base64url.encode(JSON.stringify(payload))}.${s}`;
}

describe('tokens', () => {
  let srv;
  let boot;
  let jwks; // jose remote key set
  let session; // a token-mode login

  before(async () => {
    srv = await startServer({ vars: { REFRESH_GRACE_SECONDS: String(GRACE_SECONDS) } });
    boot = await bootstrap(srv);
    jwks = jose.createRemoteJWKSet(new URL(`${srv.url}/.well-known/jwks.json`));
    session = await loginToken(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  describe('discovery', () => {
    it('JWKS publishes Ed25519 public keys only, cacheable', async () => {
      const res = await request(srv, 'GET', '/.well-known/jwks.json');
      assertStatus(res, 200);
      assert.match(res.headers.get('content-type') ?? '', /json/);
      const cc = res.headers.get('cache-control') ?? '';
      assert.match(cc, /max-age=\d+/, `JWKS should be cacheable, Cache-Control: "${cc}"`);
      assert.ok(Number(/max-age=(\d+)/.exec(cc)[1]) > 0, `JWKS max-age should be positive: "${cc}"`);
      assert.doesNotMatch(cc, /no-store|no-cache|private/);
      const keys = res.body.keys;
      assert.ok(Array.isArray(keys) && keys.length >= 1, show(res));
      const kids = new Set();
      for (const k of keys) {
        assert.equal(k.kty, 'OKP');
        assert.equal(k.crv, 'Ed25519');
        assert.equal(k.alg, 'EdDSA');
        assert.equal(k.use, 'sig');
        assert.equal(typeof k.kid, 'string');
        assert.ok(k.kid.length > 0);
        assert.ok(!kids.has(k.kid), `duplicate kid ${k.kid}`);
        kids.add(k.kid);
        assert.match(k.x, /^[A-Za-z0-9_-]{43}$/, 'x is 32 bytes base64url without padding');
        for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.ok(!(priv in k), `JWK exposes private member ${priv}`);
        await jose.importJWK(k, 'EdDSA'); // a usable public key
      }
    });

    it('openid-configuration names the issuer and the JWKS', async () => {
      const res = await request(srv, 'GET', '/.well-known/openid-configuration');
      assertStatus(res, 200);
      assert.equal(res.body.issuer, srv.url);
      assert.equal(res.body.jwks_uri, `${srv.url}/.well-known/jwks.json`);
      const viaDiscovery = await fetch(res.body.jwks_uri).then((r) => r.json());
      assert.ok(viaDiscovery.keys.length >= 1);
    });
  });

  describe('access tokens', () => {
    it('verify independently with jose against the published JWKS', async () => {
      const { payload, protectedHeader } = await jose.jwtVerify(session.access, jwks, {
        issuer: srv.url,
        audience: srv.url,
        algorithms: ['EdDSA'],
        typ: 'at+jwt',
      });
      assert.equal(protectedHeader.alg, 'EdDSA');
      assert.equal(protectedHeader.typ, 'at+jwt');
      assert.equal(typeof protectedHeader.kid, 'string');
      assert.ok(!('crit' in protectedHeader));
      const published = await request(srv, 'GET', '/.well-known/jwks.json');
      assert.ok(published.body.keys.some((k) => k.kid === protectedHeader.kid), 'kid names a published key');

      assert.equal(payload.iss, srv.url);
      assert.ok(payload.aud === srv.url || (Array.isArray(payload.aud) && payload.aud.includes(srv.url)));
      assert.equal(payload.sub, boot.user.id);
      assert.equal(payload.sid, session.sessionId);
      assert.equal(typeof payload.org, 'string');
      assert.ok(payload.org.length > 0);
      assert.deepEqual(payload.amr, ['pwd']);
      for (const k of ['iat', 'nbf', 'exp']) assert.ok(Number.isInteger(payload[k]), `${k} is an integer NumericDate`);
      assert.equal(payload.exp - payload.iat, 600);
      assert.ok(payload.nbf <= payload.iat + 1);
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(payload.iat - now) < 120, `iat ${payload.iat} far from now ${now}`);
      assert.equal(typeof payload.jti, 'string');
      assert.ok(payload.jti.length >= 16, 'jti should be unique-looking');
      for (const k of ['role', 'roles', 'capabilities', 'scope', 'email']) assert.ok(!(k in payload), `identity-only token carries ${k}`);
      assert.equal(session.body.expires_in, 600);
    });

    it('two logins get distinct jti and sid', async () => {
      const other = await loginToken(srv);
      const a = jose.decodeJwt(session.access);
      const b = jose.decodeJwt(other.access);
      assert.notEqual(a.jti, b.jti);
      assert.notEqual(a.sid, b.sid);
    });

    it('a token with one tampered payload character fails jose verification and the service', async () => {
      const bad = tamperPayloadChar(session.access);
      assert.notEqual(bad, session.access);
      await assert.rejects(
        jose.jwtVerify(bad, jwks, { issuer: srv.url, audience: srv.url, algorithms: ['EdDSA'], typ: 'at+jwt' }),
        (err) => err.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || err.code === 'ERR_JWS_INVALID',
      );
      assert.deepEqual(await verify(srv, bad), { active: false });
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: bad }));

      // A well-formed forgery (sub changed, old signature) fails on the signature specifically.
      const forged = tamperClaim(session.access, 'sub', 'someone-else');
      await assert.rejects(
        jose.jwtVerify(forged, jwks, { issuer: srv.url, audience: srv.url, algorithms: ['EdDSA'], typ: 'at+jwt' }),
        { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' },
      );
      assert.deepEqual(await verify(srv, forged), { active: false });
      // The untouched token still passes both.
      await jose.jwtVerify(session.access, jwks, { issuer: srv.url, audience: srv.url, algorithms: ['EdDSA'], typ: 'at+jwt' });
      assert.equal((await verify(srv, session.access)).active, true);
    });

    it('the service pins EdDSA and its own keys: foreign key, embedded jwk, alg none and HS256 are inactive', async () => {
      const claims = jose.decodeJwt(session.access);
      const { kid } = jose.decodeProtectedHeader(session.access);

      // Same claims and kid, signed by an attacker's Ed25519 key.
      const { privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const foreignKey = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid }).sign(privateKey);
      assert.deepEqual(await verify(srv, foreignKey), { active: false });
      assertAuthFailure(await request(srv, 'GET', '/v1/me', { bearer: foreignKey }));

      // The attacker's key embedded in the header (jwk injection) must not be trusted either.
      const { privateKey: p2, publicKey: pub2 } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const embedded = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid, jwk: await jose.exportJWK(pub2) })
        .sign(p2);
      assert.deepEqual(await verify(srv, embedded), { active: false });

      // alg "none".
      const none = new jose.UnsecuredJWT(claims).encode();
      assert.deepEqual(await verify(srv, none), { active: false });
      const noneTyped = `${jose.base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid }))}.${none.split('.')[1]}.`;
      assert.deepEqual(await verify(srv, noneTyped), { active: false });

      // HS256 keyed with the public key bytes (algorithm confusion).
      const pub = (await request(srv, 'GET', '/.well-known/jwks.json')).body.keys.find((k) => k.kid === kid);
      const hs = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid })
        .sign(jose.base64url.decode(pub.x));
      assert.deepEqual(await verify(srv, hs), { active: false });
      const hsText = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid })
        .sign(new TextEncoder().encode(pub.x));
      assert.deepEqual(await verify(srv, hsText), { active: false });

      // The untouched original is still active: the refusals above are not a broken verifier.
      assert.equal((await verify(srv, session.access)).active, true);
    });

    it('a token over 8 KiB is refused (inactive, not an error)', async () => {
      const [h, , s] = session.access.split('.');
      const big = `${h}.${jose.base64url.encode(JSON.stringify({ ...jose.decodeJwt(session.access), pad: 'x'.repeat(9000) }))}.${s}`;
      assert.ok(big.length > 8192);
      assert.deepEqual(await verify(srv, big), { active: false });
      // As a Bearer header it is refused before any route: no credential header may exceed 8 KiB.
      const res = await request(srv, 'GET', '/v1/me', { bearer: big });
      assert.equal(res.status, 400, show(res));
      assert.equal(res.body?.error?.code, 'invalid_request', show(res));
    });
  });

  describe('/v1/verify', () => {
    it('a valid access token: active with kind, sub, org, sid, exp matching the claims', async () => {
      const res = await request(srv, 'POST', '/v1/verify', { json: { token: session.access } });
      assertStatus(res, 200);
      const v = res.body;
      const claims = jose.decodeJwt(session.access);
      assert.equal(v.active, true);
      assert.equal(v.kind, 'session');
      assert.equal(v.sub, boot.user.id);
      assert.equal(v.org, claims.org);
      assert.equal(v.sid, session.sessionId);
      assert.equal(v.exp, claims.exp);
      if ('ws' in v && v.ws !== null) assert.equal(v.ws, claims.ws);
      assert.ok(!('key_id' in v));
    });

    it('needs no credential of the caller, and garbage is 200 {"active":false}', async () => {
      for (const token of ['garbage', 'a.b.c', 'ea_', 'ea_notakey', 'x'.repeat(100), `${session.access}x`]) {
        const res = await request(srv, 'POST', '/v1/verify', { json: { token } });
        assertStatus(res, 200);
        assert.deepEqual(res.body, { active: false }, `token ${JSON.stringify(token.slice(0, 40))}`);
      }
    });

    it('an altered iss or aud claim under the old signature is inactive', async () => {
      assert.deepEqual(await verify(srv, tamperClaim(session.access, 'iss', 'https://evil.example')), { active: false });
      assert.deepEqual(await verify(srv, tamperClaim(session.access, 'aud', 'https://evil.example')), { active: false });
      assert.deepEqual(await verify(srv, tamperClaim(session.access, 'exp', 4102444800)), { active: false });
    });
  });

  describe('one indistinguishable 401', () => {
    it('unknown user, wrong password, garbage/tampered bearer, replayed refresh, bad bootstrap token: same status, body and headers', async () => {
      const cases = {};
      cases.unknownUser = await loginRaw(srv, { email: 'nobody@example.com', password: ADMIN_PASSWORD, session: 'token' });
      cases.wrongPassword = await loginRaw(srv, { email: ADMIN_EMAIL, password: 'wrong password 99', session: 'token' });
      cases.garbageBearer = await request(srv, 'GET', '/v1/me', { bearer: 'garbage' });
      cases.tamperedBearer = await request(srv, 'GET', '/v1/me', { bearer: tamperPayloadChar(session.access) });
      cases.unknownApiKey = await request(srv, 'GET', '/v1/me', { bearer: 'ea_0000000000000000000000000000' });
      cases.noCredential = await request(srv, 'GET', '/v1/me');
      cases.basicScheme = await request(srv, 'GET', '/v1/me', { headers: { authorization: 'Basic YWRtaW46cGFzc3dvcmQ=' } });
      cases.emptyBearer = await request(srv, 'GET', '/v1/me', { headers: { authorization: 'Bearer ' } });
      cases.unknownRefresh = await refreshToken(srv, 'Z'.repeat(43));
      cases.unknownRefreshCookie = await request(srv, 'POST', '/v1/auth/refresh', {
        jar: new CookieJar([[REFRESH_COOKIE, 'Y'.repeat(43)]]),
        origin: srv.url,
      });
      cases.garbageAccessCookie = await request(srv, 'GET', '/v1/me', { jar: new CookieJar([[ACCESS_COOKIE, 'garbage']]) });
      cases.badBootstrapToken = await request(srv, 'POST', '/v1/bootstrap', {
        json: { token: 'wrong-bootstrap-token', email: 'x@example.com', password: 'whatever 12345' },
      });
      cases.bootstrapAgain = await request(srv, 'POST', '/v1/bootstrap', {
        json: { token: srv.bootstrapToken, email: 'x@example.com', password: 'whatever 12345' },
      });

      // Replayed refresh token after the grace window.
      const s = await loginToken(srv);
      const r1 = await refreshToken(srv, s.refresh);
      assertStatus(r1, 200);
      await sleep((GRACE_SECONDS + 2) * 1000);
      cases.replayedRefresh = await refreshToken(srv, s.refresh);
      cases.revokedRefresh = await refreshToken(srv, r1.body.refresh_token);
      cases.revokedAccess = await request(srv, 'GET', '/v1/me', { bearer: r1.body.access_token });

      // CORS headers follow the request's Origin (the cookie cases must send one), not the outcome.
      const normHeaders = (res) => {
        const out = {};
        for (const [k, v] of res.headers) if (!['date', 'cf-ray'].includes(k) && !k.startsWith('access-control-')) out[k] = v;
        return out;
      };
      const [firstName, first] = Object.entries(cases)[0];
      for (const [name, res] of Object.entries(cases)) {
        assert.equal(res.status, 401, `${name}: ${show(res)}`);
        assert.deepEqual(res.body, AUTH_FAILURE, `${name}: ${show(res)}`);
        assert.equal(res.text, first.text, `${name} body differs from ${firstName}`);
        assert.deepEqual(normHeaders(res), normHeaders(first), `${name} headers differ from ${firstName}`);
        assertAuthFailure(res);
      }
    });

    it('an unknown user costs about as much as a wrong password (no enumeration by timing)', async () => {
      const time = async (email) => (await loginRaw(srv, { email, password: 'timing password 1', session: 'token' })).ms;
      const unknown = [];
      const known = [];
      for (let i = 0; i < 3; i++) {
        unknown.push(await time(`ghost${i}@example.com`));
        known.push(await time(ADMIN_EMAIL));
      }
      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const mu = median(unknown);
      const mk = median(known);
      assert.ok(mk > 50, `a wrong password should cost a real PBKDF2 (median ${mk.toFixed(0)} ms)`);
      // Without the dummy hash an unknown user answers ~30x faster; 0.25 leaves room for noise.
      assert.ok(mu > 0.25 * mk, `unknown user ${mu.toFixed(0)} ms vs wrong password ${mk.toFixed(0)} ms`);
    });
  });
});
