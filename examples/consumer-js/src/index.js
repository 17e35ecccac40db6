// A Worker that accepts edgeauth access tokens: the recipe to copy into your own Worker.
//
//   GET /offline     verify the Bearer token offline against edgeauth's JWKS (no call per request).
//                    A logged-out session's token is accepted until it expires (at most
//                    ACCESS_TOKEN_TTL + 10 s): use this where that is acceptable. A token from a key
//                    newer than our JWKS copy is checked by edgeauth when a refetch is not allowed yet.
//   GET /checked     the same, then ask edgeauth's /v1/verify, so a revoked session is refused.
//   GET /authorized?capability=docs:read&workspace=<id>
//                    ask edgeauth's /v1/authorize whether the token's user has the capability.
//
// edgeauth is reached through the service binding EDGEAUTH (see wrangler.toml); the URL host is
// ignored by a service binding, only the path matters.
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } from 'jose';

const MAX_TOKEN_BYTES = 8 * 1024; // edgeauth refuses longer tokens; so do we, before parsing
const CLOCK_TOLERANCE = 10; // seconds of clock skew on exp/nbf/iat, as edgeauth allows
const REFETCH_MIN_MS = 10_000; // an unknown kid refetches the JWKS at most this often
const MAX_CACHE_MS = 300_000; // never keep a JWKS longer than this (nor than its max-age)

// The JWKS cache lives at module scope: it survives across requests in this isolate.
let jwks = { keySet: null, kids: new Set(), fetchedAt: 0, expiresAt: 0 };

async function refreshJwks(env) {
  const res = await env.EDGEAUTH.fetch('https://edgeauth/.well-known/jwks.json');
  if (!res.ok) throw new Error(`JWKS fetch failed: ${res.status}`);
  const body = await res.json();
  // Honour Cache-Control max-age: edgeauth keeps it shorter than a retired key's overlap, so a
  // key it stops publishing stops being trusted here too.
  const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1] ?? 300);
  const now = Date.now();
  jwks = {
    keySet: createLocalJWKSet(body),
    kids: new Set(body.keys.map((k) => k.kid)),
    fetchedAt: now,
    expiresAt: now + Math.min(maxAge * 1000, MAX_CACHE_MS),
  };
}

// jose calls this with the token's header: pick the key by kid from edgeauth's JWKS only.
async function keyFor(env, header) {
  if (typeof header.kid !== 'string') throw new errors.JWKSNoMatchingKey(); // edgeauth always sets one
  // Headers pointing at keys outside edgeauth's JWKS: jose ignores them, edgeauth refuses them.
  if (['jwk', 'jku', 'x5u', 'x5c'].some((name) => name in header)) throw new errors.JWSInvalid();
  const now = Date.now();
  const expired = now >= jwks.expiresAt;
  const unknownKid = !jwks.kids.has(header.kid) && now - jwks.fetchedAt >= REFETCH_MIN_MS;
  if (expired || unknownKid) await refreshJwks(env);
  return jwks.keySet(header); // throws JWKSNoMatchingKey for a kid edgeauth does not publish
}

/** The verified claims of the request's Bearer token, or null (missing, bad, expired, ...). */
async function verifiedClaims(request, env) {
  const match = /^Bearer ([^\s]+)$/.exec(request.headers.get('authorization') ?? '');
  if (!match || match[1].length > MAX_TOKEN_BYTES) return null;
  const token = match[1];
  try {
    const { payload, protectedHeader } = await jwtVerify(token, (header) => keyFor(env, header), {
      algorithms: ['EdDSA'], // never let the token choose the algorithm
      typ: 'at+jwt',
      issuer: env.EDGEAUTH_ISSUER,
      audience: env.EDGEAUTH_AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE,
      requiredClaims: ['sub', 'sid', 'org', 'jti', 'amr', 'exp', 'iat', 'nbf'],
    });
    // Two rules of edgeauth's that jose leaves to us: one audience (a string, not a list), and
    // no token issued in the future.
    if (typeof payload.aud !== 'string') return null;
    if (payload.iat > Date.now() / 1000 + CLOCK_TOLERANCE) return null;
    return { token, kid: protectedHeader.kid, claims: payload };
  } catch (err) {
    if (err instanceof errors.JWKSNoMatchingKey) return verifiedByEdgeauth(env, token);
    if (err instanceof errors.JOSEError) return null; // any token problem: refuse
    throw err; // e.g. the JWKS could not be fetched: not the token's fault
  }
}

// A kid our copy of the JWKS lacks, while a refetch is not allowed yet (edgeauth may have rotated
// its key a moment after we fetched): ask edgeauth rather than refuse a token it just signed. It
// refuses every token that is not its own, so a forged kid gains nothing here.
async function verifiedByEdgeauth(env, token) {
  const verdict = await askEdgeauth(env, '/v1/verify', { token });
  if (verdict.active !== true || verdict.kind !== 'session') return null;
  const { kid } = decodeProtectedHeader(token); // edgeauth verified it, so the header is genuine
  return { token, kid, claims: { sub: verdict.sub, sid: verdict.sid } };
}

/** POST a JSON body to edgeauth through the binding; the parsed answer, or throws. */
async function askEdgeauth(env, path, body) {
  const res = await env.EDGEAUTH.fetch(`https://edgeauth${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`edgeauth ${path}: ${res.status}`);
  return res.json();
}

const json = (status, body) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
const unauthorized = () => json(401, { error: 'unauthorized' });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== 'GET') return json(405, { error: 'method_not_allowed' });
    const route = url.pathname;
    if (!['/offline', '/checked', '/authorized'].includes(route)) return json(404, { error: 'not_found' });

    try {
      const verified = await verifiedClaims(request, env);
      if (!verified) return unauthorized();
      const { token, kid, claims } = verified;

      if (route === '/offline') {
        return json(200, { sub: claims.sub, sid: claims.sid, kid, path: 'offline' });
      }
      if (route === '/checked') {
        // Offline verification cannot see a logout; edgeauth's KV revocation flags can.
        const verdict = await askEdgeauth(env, '/v1/verify', { token });
        if (verdict.active !== true) return unauthorized();
        return json(200, { sub: claims.sub, sid: claims.sid, kid, path: 'checked' });
      }
      // /authorized: roles live in edgeauth, not in the token, so ask it (cacheable for `ttl` s).
      const capability = url.searchParams.get('capability');
      if (!capability) return json(400, { error: 'capability is required' });
      const question = { token, capability };
      const workspace = url.searchParams.get('workspace');
      if (workspace) question.workspace = workspace;
      const decision = await askEdgeauth(env, '/v1/authorize', question);
      if (decision.allow !== true) return json(403, { error: 'forbidden' });
      return json(200, { allow: true, ttl: decision.ttl, path: 'authorized' });
    } catch (err) {
      console.error(`consumer-js: ${err.message}`);
      return json(503, { error: 'unavailable' }); // fail closed when edgeauth cannot be asked
    }
  },
};
