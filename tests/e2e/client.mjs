// Shared helpers for the end-to-end suite: a tiny HTTP client over global fetch, a cookie jar,
// Set-Cookie parsing, and the assertions every test file repeats (the one auth_failure body,
// error shapes, cookie attributes, the user object).
import assert from 'node:assert/strict';

/** The one body every authentication failure must return (design.md section 3). */
export const AUTH_FAILURE = Object.freeze({
  error: Object.freeze({ code: 'auth_failure', message: 'authentication failed' }),
});

export const ACCESS_COOKIE = '__Host-edgeauth-access';
export const REFRESH_COOKIE = '__Host-edgeauth-refresh';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Parse one Set-Cookie header value into { name, value, attrs } (attribute names lower-cased). */
export function parseSetCookie(raw) {
  const [pair, ...rest] = raw.split(';');
  const eq = pair.indexOf('=');
  assert.ok(eq > 0, `malformed Set-Cookie: ${raw}`);
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  const attrs = {};
  for (const part of rest) {
    const trimmed = part.trim();
    if (!trimmed) continue;
    const i = trimmed.indexOf('=');
    const key = (i < 0 ? trimmed : trimmed.slice(0, i)).trim().toLowerCase();
    attrs[key] = i < 0 ? true : trimmed.slice(i + 1).trim();
  }
  return { name, value, attrs, raw };
}

/** Set-Cookie headers of a response, parsed, keyed by cookie name (asserting no duplicates). */
export function setCookiesByName(res) {
  const out = {};
  for (const raw of res.setCookies) {
    const c = parseSetCookie(raw);
    assert.ok(!(c.name in out), `cookie ${c.name} set twice in one response: ${res.setCookies.join(' | ')}`);
    out[c.name] = c;
  }
  return out;
}

/** A minimal cookie jar: remembers name=value from Set-Cookie, forgets cookies cleared with Max-Age<=0. */
export class CookieJar {
  constructor(entries = []) {
    this.cookies = new Map(entries);
  }

  get size() {
    return this.cookies.size;
  }

  get(name) {
    return this.cookies.get(name);
  }

  set(name, value) {
    this.cookies.set(name, value);
  }

  delete(name) {
    this.cookies.delete(name);
  }

  clone() {
    return new CookieJar([...this.cookies]);
  }

  /** Keep only the named cookies (e.g. send just the access cookie). */
  only(...names) {
    return new CookieJar([...this.cookies].filter(([k]) => names.includes(k)));
  }

  update(setCookies) {
    for (const raw of setCookies) {
      const c = parseSetCookie(raw);
      const maxAge = c.attrs['max-age'];
      const expired =
        (maxAge !== undefined && Number(maxAge) <= 0) ||
        (typeof c.attrs.expires === 'string' && Date.parse(c.attrs.expires) <= Date.now());
      if (expired) this.cookies.delete(c.name);
      else this.cookies.set(c.name, c.value);
    }
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

let clientIpCounter = 0;

/** A new client address from 198.18.0.0/15 (reserved for benchmarking), for `CF-Connecting-IP`:
 * the per-IP limits (60 sign-ins a minute per address) then never answer a test or a measurement. */
export function nextClientIp() {
  clientIpCounter += 1;
  const n = clientIpCounter;
  return `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
}

/**
 * Send one request. Options:
 *   json       - value to send as application/json
 *   body       - raw body (string / Uint8Array / stream); with contentType
 *   contentType- explicit Content-Type
 *   bearer     - Authorization: Bearer <bearer>
 *   jar        - CookieJar: sent as Cookie, updated from Set-Cookie (unless keepJar)
 *   origin     - Origin header
 *   headers    - extra headers
 * Returns { status, headers, text, body (parsed JSON or undefined), setCookies, ms }.
 * Each request comes from its own client address (`CF-Connecting-IP`) unless `headers` names one:
 * the suite plays many clients, and the per-IP limits (60 sign-ins a minute per address) are tested
 * on purpose, with named addresses, in lockout.test.mjs.
 */
export async function request(srv, method, path, opts = {}) {
  const headers = new Headers(opts.headers ?? {});
  if (!headers.has('cf-connecting-ip')) headers.set('cf-connecting-ip', nextClientIp());
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  if (opts.contentType !== undefined) headers.set('content-type', opts.contentType);
  if (opts.bearer !== undefined) headers.set('authorization', `Bearer ${opts.bearer}`);
  if (opts.jar && opts.jar.size > 0) headers.set('cookie', opts.jar.header());
  if (opts.origin !== undefined) headers.set('origin', opts.origin);
  const init = { method, headers, body, redirect: 'manual' };
  if (body && typeof body.getReader === 'function') init.duplex = 'half';
  const t0 = performance.now();
  const res = await fetch(srv.url + path, init);
  const text = await res.text();
  const ms = performance.now() - t0;
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  const setCookies = res.headers.getSetCookie();
  if (opts.jar && !opts.keepJar) opts.jar.update(setCookies);
  return { status: res.status, headers: res.headers, text, body: parsed, setCookies, ms, method, path };
}

/** Short description of a response for assertion messages. */
export function show(res) {
  return `${res.method} ${res.path} -> ${res.status} ${res.text.slice(0, 400)}`;
}

export function assertStatus(res, status) {
  assert.equal(res.status, status, show(res));
}

let firstAuthFailureText;

/**
 * Exactly 401 with exactly the auth_failure body; the raw text must also be byte-identical to the
 * first auth failure this process saw (so every failure case is indistinguishable).
 */
export function assertAuthFailure(res) {
  assert.equal(res.status, 401, show(res));
  assert.deepEqual(res.body, AUTH_FAILURE, show(res));
  if (firstAuthFailureText === undefined) firstAuthFailureText = res.text;
  assert.equal(res.text, firstAuthFailureText, `auth_failure raw body differs: ${show(res)}`);
}

/** A non-auth error: status, error.code, a message string, and optionally error.field. */
export function assertError(res, status, code, field) {
  assert.equal(res.status, status, show(res));
  assert.ok(res.body && typeof res.body === 'object' && res.body.error, `no error object: ${show(res)}`);
  assert.equal(res.body.error.code, code, show(res));
  assert.equal(typeof res.body.error.message, 'string', show(res));
  assert.ok(res.body.error.message.length > 0, show(res));
  if (field !== undefined) assert.equal(res.body.error.field, field, show(res));
  const ct = res.headers.get('content-type') ?? '';
  assert.match(ct, /^application\/json/i, `error content-type: ${show(res)}`);
}

export function assertNoStore(res) {
  const cc = res.headers.get('cache-control') ?? '';
  assert.match(cc, /(^|,)\s*no-store\s*(,|$)/i, `Cache-Control no-store missing (got "${cc}"): ${show(res)}`);
}

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$/;

export function assertTimestamp(value, what) {
  assert.equal(typeof value, 'string', `${what} should be an RFC 3339 string, got ${JSON.stringify(value)}`);
  assert.match(value, RFC3339_UTC, `${what} not RFC 3339 UTC: ${value}`);
  assert.ok(!Number.isNaN(Date.parse(value)), `${what} unparseable: ${value}`);
}

export function assertUser(user, expected = {}) {
  assert.ok(user && typeof user === 'object', `user object missing: ${JSON.stringify(user)}`);
  for (const k of ['id', 'email', 'username', 'name', 'status', 'org_admin', 'must_change_password', 'created_at']) {
    assert.ok(k in user, `user.${k} missing: ${JSON.stringify(user)}`);
  }
  assert.equal(typeof user.id, 'string');
  assert.ok(user.id.length > 0);
  assert.ok(['active', 'pending', 'disabled'].includes(user.status), `user.status ${user.status}`);
  assert.equal(typeof user.org_admin, 'boolean');
  assert.equal(typeof user.must_change_password, 'boolean');
  assertTimestamp(user.created_at, 'user.created_at');
  for (const k of ['password', 'password_hash', 'hash']) assert.ok(!(k in user), `user exposes ${k}`);
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(user[k], v, `user.${k}`);
}

/**
 * The session cookies set by a cookie-mode login/refresh: both present, with exactly the
 * attributes design.md asks for. Returns { access, refresh } parsed cookies.
 */
export function assertSessionCookies(res) {
  const byName = setCookiesByName(res);
  const access = byName[ACCESS_COOKIE];
  const refresh = byName[REFRESH_COOKIE];
  assert.ok(access, `no ${ACCESS_COOKIE} Set-Cookie: ${res.setCookies.join(' | ')}`);
  assert.ok(refresh, `no ${REFRESH_COOKIE} Set-Cookie: ${res.setCookies.join(' | ')}`);
  for (const [c, sameSite] of [
    [access, 'lax'],
    [refresh, 'strict'],
  ]) {
    assert.ok(c.value.length > 0, `${c.name} has an empty value`);
    assert.equal(c.attrs.httponly, true, `${c.name} not HttpOnly: ${c.raw}`);
    assert.equal(c.attrs.secure, true, `${c.name} not Secure: ${c.raw}`);
    assert.equal(c.attrs.path, '/', `${c.name} Path: ${c.raw}`);
    assert.equal(String(c.attrs.samesite).toLowerCase(), sameSite, `${c.name} SameSite: ${c.raw}`);
    assert.ok(!('domain' in c.attrs), `${c.name} must not carry Domain (__Host- prefix): ${c.raw}`);
    assert.match(String(c.attrs['max-age']), /^\d+$/, `${c.name} Max-Age: ${c.raw}`);
    assert.ok(Number(c.attrs['max-age']) > 0, `${c.name} Max-Age must be positive: ${c.raw}`);
  }
  return { access, refresh };
}

/** Both session cookies cleared (Max-Age=0) in a way a browser accepts for __Host- cookies. */
export function assertCookiesCleared(res) {
  const byName = setCookiesByName(res);
  for (const name of [ACCESS_COOKIE, REFRESH_COOKIE]) {
    const c = byName[name];
    assert.ok(c, `${name} not cleared; Set-Cookie: ${res.setCookies.join(' | ')}`);
    assert.equal(c.attrs['max-age'], '0', `${name} not cleared with Max-Age=0: ${c.raw}`);
    // A browser ignores a __Host- Set-Cookie without Secure / Path=/ or with Domain, so the
    // clearing header must carry them too, or the cookie would survive logout.
    assert.equal(c.attrs.secure, true, `${name} clear lacks Secure: ${c.raw}`);
    assert.equal(c.attrs.path, '/', `${name} clear lacks Path=/: ${c.raw}`);
    assert.ok(!('domain' in c.attrs), `${name} clear has Domain: ${c.raw}`);
  }
}

// ---- flows -------------------------------------------------------------------------------------

export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'correct horse battery staple';

/** Bootstrap the first admin; asserts 201 and returns the body. */
export async function bootstrap(srv, { email = ADMIN_EMAIL, password = ADMIN_PASSWORD, name = 'Ada Admin' } = {}) {
  const res = await request(srv, 'POST', '/v1/bootstrap', { json: { token: srv.bootstrapToken, email, password, name } });
  assertStatus(res, 201);
  return res.body;
}

/** Raw login. */
export function loginRaw(srv, { email = ADMIN_EMAIL, password = ADMIN_PASSWORD, session, workspace, jar, origin, headers } = {}) {
  const json = { email, password };
  if (session !== undefined) json.session = session;
  if (workspace !== undefined) json.workspace = workspace;
  return request(srv, 'POST', '/v1/auth/login', { json, jar, origin, headers });
}

/**
 * Token-mode login that must succeed. Returns { access, refresh, sessionId, body, res }.
 */
export async function loginToken(srv, opts = {}) {
  const res = await loginRaw(srv, { ...opts, session: 'token' });
  assertStatus(res, 200);
  assert.equal(typeof res.body.access_token, 'string', show(res));
  assert.equal(typeof res.body.refresh_token, 'string', show(res));
  return { access: res.body.access_token, refresh: res.body.refresh_token, sessionId: res.body.session_id, body: res.body, res };
}

/** Cookie-mode login that must succeed. Returns { jar, access, sessionId, body, res }. */
export async function loginCookie(srv, opts = {}) {
  const jar = new CookieJar();
  const res = await loginRaw(srv, { ...opts, session: 'cookie', jar });
  assertStatus(res, 200);
  assert.ok(jar.get(ACCESS_COOKIE), `no access cookie: ${res.setCookies.join(' | ')}`);
  assert.ok(jar.get(REFRESH_COOKIE), `no refresh cookie: ${res.setCookies.join(' | ')}`);
  return { jar, access: res.body.access_token, sessionId: res.body.session_id, body: res.body, res };
}

export function refreshToken(srv, refresh) {
  return request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: refresh } });
}

/** wrangler dev's own answer when it reloaded the runtime while a request was on its way to the
 * Worker (its proxy retries only GET and HEAD); edgeauth never sends this text. */
const DEV_RELOAD = 'Your worker restarted mid-request';

/** POST /v1/verify; asserts 200 and returns the body. A verification changes nothing, so one that
 * wrangler dev cut off by reloading its runtime (seen once in CI, cause not found) is sent again. */
export async function verify(srv, token) {
  let res = await request(srv, 'POST', '/v1/verify', { json: { token } });
  if (res.status === 503 && res.text.startsWith(DEV_RELOAD)) {
    res = await request(srv, 'POST', '/v1/verify', { json: { token } });
  }
  assertStatus(res, 200);
  return res.body;
}

export async function assertActive(srv, token, what = 'token') {
  const v = await verify(srv, token);
  assert.equal(v.active, true, `${what} should be active: ${JSON.stringify(v)}`);
  return v;
}

export async function assertInactive(srv, token, what = 'token') {
  const v = await verify(srv, token);
  assert.deepEqual(v, { active: false }, `${what} should be inactive`);
}

/** Run `fn(srv)`-style setup with a server that is always stopped. */
export async function stopQuietly(srv) {
  if (srv) await srv.stop();
}

// ---- administration fixtures (matrix.test.mjs, admin.test.mjs) ---------------------------------

/** An id that names nothing (the service's ids are UUIDs; this one is random v4). */
export function absentId() {
  return globalThis.crypto.randomUUID();
}

/** POST /v1/users as `bearer` (an org admin); asserts 201 and returns the user object. */
export async function createUser(srv, bearer, fields) {
  const res = await request(srv, 'POST', '/v1/users', { bearer, json: fields });
  assertStatus(res, 201);
  assertUser(res.body.user, { email: fields.email.trim().toLowerCase() });
  return res.body.user;
}

/** POST /v1/workspaces as `bearer` (an org admin); asserts 201 and returns the workspace object. */
export async function createWorkspace(srv, bearer, name) {
  const res = await request(srv, 'POST', '/v1/workspaces', { bearer, json: { name } });
  assertStatus(res, 201);
  assert.equal(typeof res.body.workspace?.id, 'string', show(res));
  return res.body.workspace;
}

/** POST /v1/api-keys as `bearer`; asserts 201 and returns { api_key, key }. */
export async function createApiKey(srv, bearer, fields) {
  const res = await request(srv, 'POST', '/v1/api-keys', { bearer, json: fields });
  assertStatus(res, 201);
  assert.match(String(res.body.key), /^ea_/, show(res));
  assert.equal(typeof res.body.api_key?.id, 'string', show(res));
  return res.body;
}

/**
 * Every page of GET /v1/audit (newest first) as `bearer`, following next_cursor.
 * `query` holds extra parameters (e.g. { action: 'authorize' }). Returns { events, responses }.
 */
export async function auditAll(srv, bearer, query = {}) {
  const events = [];
  const responses = [];
  let cursor;
  for (let page = 0; page < 1000; page++) {
    const params = new URLSearchParams({ ...query, limit: '200' });
    if (cursor) params.set('cursor', cursor);
    const res = await request(srv, 'GET', `/v1/audit?${params}`, { bearer });
    assertStatus(res, 200);
    assert.ok(Array.isArray(res.body.events), show(res));
    responses.push(res);
    events.push(...res.body.events);
    cursor = res.body.next_cursor;
    if (!cursor) return { events, responses };
  }
  throw new Error('GET /v1/audit: more than 1000 pages');
}
