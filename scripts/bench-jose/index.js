// The benchmark's comparison Worker: POST /v1/verify {"token"} -> edgeauth's answer shape, with
// the token verified by jose against edgeauth's JWKS (see wrangler.toml). The rules are
// edgeauth's: EdDSA only, typ at+jwt, its issuer and audience, 10 s of clock tolerance, the
// claims edgeauth always sets, one audience string, no token issued in the future.
import { createLocalJWKSet, errors, jwtVerify } from 'jose';

let keySet = null; // the JWKS, fetched once per isolate

async function keys(env) {
  if (!keySet) {
    const res = await env.EDGEAUTH.fetch('https://edgeauth/.well-known/jwks.json');
    if (!res.ok) throw new Error(`JWKS fetch failed: ${res.status}`);
    keySet = createLocalJWKSet(await res.json());
  }
  return keySet;
}

const answer = (body) =>
  new Response(JSON.stringify(body), {
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });

export default {
  async fetch(request, env) {
    if (request.method !== 'POST' || new URL(request.url).pathname !== '/v1/verify') {
      return new Response('not found', { status: 404 });
    }
    let token;
    try {
      token = (await request.json()).token;
    } catch {
      return new Response('bad request', { status: 400 });
    }
    if (typeof token !== 'string' || token.length > 8192) return new Response('bad request', { status: 400 });
    try {
      const { payload } = await jwtVerify(token, await keys(env), {
        algorithms: ['EdDSA'],
        typ: 'at+jwt',
        issuer: env.EDGEAUTH_ISSUER,
        audience: env.EDGEAUTH_AUDIENCE,
        clockTolerance: 10,
        requiredClaims: ['sub', 'sid', 'org', 'jti', 'amr', 'exp', 'iat', 'nbf'],
      });
      if (typeof payload.aud !== 'string' || payload.iat > Date.now() / 1000 + 10) return answer({ active: false });
      return answer({ active: true, kind: 'session', sub: payload.sub, org: payload.org, ws: payload.ws ?? null, sid: payload.sid, exp: payload.exp });
    } catch (err) {
      if (err instanceof errors.JOSEError) return answer({ active: false });
      return new Response('unavailable', { status: 503 }); // e.g. the JWKS could not be fetched
    }
  },
};
