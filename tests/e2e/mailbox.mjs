// A mail capture server for the end-to-end suite: stands in for the mail provider's HTTP API
// (the Resend shape, design.md section 4), so a test can read what the worker sent.
//
//   import { startMailbox, linkOf, tokenOf, codeOf } from './mailbox.mjs';
//   const mailbox = await startMailbox({ apiKey: 'test-key' });
//   const srv = await startServer({ vars: { MAIL_ENDPOINT: mailbox.url, MAIL_API_KEY: 'test-key' } });
//   ...
//   const mail = await mailbox.waitFor((m) => m.body.to.includes('ada@example.com'));
//   const token = tokenOf(mail);
//   await mailbox.stop();
//
// It listens on 127.0.0.1 only (a free port) and answers `POST /emails` with `200 {"id":"<uuid>"}`
// only when the request carries `Authorization: Bearer <apiKey>` and a JSON content type; anything
// else is answered 401 / 415 / 400 / 404 and recorded in `rejected`, never in `mails`, so a test can
// assert that the worker sent the key.
import http from 'node:http';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { parseSetCookie, show } from './client.mjs';

/** The path of the magic-link confirmation page (the token follows). */
export const VERIFY_PATH = '/v1/auth/magic-link/verify?token=';

const LINK_RE = /https?:\/\/[^\s"'<>]+?\/v1\/auth\/magic-link\/verify\?token=[A-Za-z0-9_-]+/g;
const CODE_RE = /Code: (\d{6})(?!\d)/;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The recipients of a captured mail, lower-cased (body.to may be an array or, wrongly, a string). */
export function recipientsOf(mail) {
  const to = mail?.body?.to;
  const list = Array.isArray(to) ? to : to === undefined || to === null ? [] : [to];
  return list.map((a) => String(a).toLowerCase());
}

/** Every verify link in the mail's text part (normally one). */
export function linksOf(mail) {
  const text = typeof mail?.body?.text === 'string' ? mail.body.text : '';
  return text.match(LINK_RE) ?? [];
}

/** The verify URL from the mail's text part, or undefined when there is none. */
export function linkOf(mail) {
  return linksOf(mail)[0];
}

/** The link token (the `token` query parameter of the verify URL), or undefined. */
export function tokenOf(mail) {
  const link = linkOf(mail);
  return link === undefined ? undefined : new URL(link).searchParams.get('token') ?? undefined;
}

/** The 6-digit code from the line `Code: 123456` of the text part, or undefined. */
export function codeOf(mail) {
  const text = typeof mail?.body?.text === 'string' ? mail.body.text : '';
  return text.match(CODE_RE)?.[1];
}

/** One-line description of a mail, for assertion messages. */
export function describeMail(mail) {
  return `[to ${JSON.stringify(mail?.body?.to)} subject ${JSON.stringify(mail?.body?.subject)}]`;
}

/**
 * Start a capture server.
 * @param {{ apiKey: string }} opts
 * @returns {Promise<{
 *   url: string, port: number,
 *   mails: Array<{id:string, headers:object, body:any, raw:string, receivedAt:number}>,
 *   rejected: Array<{status:number, method:string, url:string, headers:object, raw:string, receivedAt:number}>,
 *   waitFor: (predicate:(mail)=>boolean, timeoutMs?:number) => Promise<object>,
 *   waitForCount: (to:string, n:number, timeoutMs?:number) => Promise<object[]>,
 *   mailsFor: (address:string) => object[],
 *   countFor: (address:string) => number,
 *   stop: () => Promise<void>,
 * }>}
 */
export async function startMailbox({ apiKey } = {}) {
  if (typeof apiKey !== 'string' || apiKey.length === 0) throw new Error('startMailbox: apiKey is required');
  const mails = [];
  const rejected = [];

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const receivedAt = Date.now();
      const headers = { ...req.headers };
      const answer = (status, obj) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const refuse = (status, message) => {
        rejected.push({ status, method: req.method, url: req.url, headers, raw, receivedAt });
        answer(status, { statusCode: status, name: 'error', message });
      };
      const pathname = (req.url ?? '').split('?')[0];
      if (pathname !== '/emails') return refuse(404, 'not found');
      if (req.method !== 'POST') return refuse(405, 'method not allowed');
      if (headers.authorization !== `Bearer ${apiKey}`) return refuse(401, 'missing or wrong API key');
      if (!/^application\/json\s*(;|$)/i.test(headers['content-type'] ?? '')) return refuse(415, 'content type must be application/json');
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return refuse(400, 'body is not JSON');
      }
      const id = crypto.randomUUID();
      mails.push({ id, headers, body, raw, receivedAt });
      answer(200, { id });
    });
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();

  const mailsFor = (address) => {
    const a = String(address).toLowerCase();
    return mails.filter((m) => recipientsOf(m).includes(a));
  };
  const summary = () =>
    `received ${mails.length} mail(s): ${mails.map(describeMail).join(' ') || '-'}; ` +
    `rejected ${rejected.length} request(s): ${rejected.map((r) => `${r.status} ${r.method} ${r.url}`).join(', ') || '-'}`;

  async function waitFor(predicate, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = mails.find((m) => {
        try {
          return predicate(m);
        } catch {
          return false;
        }
      });
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`mailbox: no matching mail within ${timeoutMs} ms (${summary()})`);
      await sleep(50);
    }
  }

  async function waitForCount(to, n, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = mailsFor(to);
      if (got.length >= n) return got;
      if (Date.now() > deadline) {
        throw new Error(`mailbox: ${got.length} of ${n} mail(s) to ${to} within ${timeoutMs} ms (${summary()})`);
      }
      await sleep(50);
    }
  }

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections?.();
    });
  }

  return {
    url: `http://127.0.0.1:${port}/emails`,
    port,
    mails,
    rejected,
    waitFor,
    waitForCount,
    mailsFor,
    countFor: (address) => mailsFor(address).length,
    summary,
    stop,
  };
}

// ---- magic-link helpers shared by magic_links.test.mjs and register.test.mjs --------------------


/** The binding cookie of a magic-link attempt (design.md section 3). */
export const LINK_COOKIE = '__Host-edgeauth-link';

/** A binding, token or attempt value as the service makes them: 32 random bytes, base64url. */
export const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

/** A random value of the binding's shape that no attempt was issued with. */
export function randomSecret() {
  return crypto.randomBytes(32).toString('base64url');
}

/** All Set-Cookie headers of a response for one cookie name, parsed. */
export function cookiesNamed(res, name) {
  return res.setCookies.map(parseSetCookie).filter((c) => c.name === name);
}

/**
 * Exactly one `__Host-edgeauth-link` Set-Cookie with exactly the contract's attributes
 * (HttpOnly, Secure, SameSite=Lax, Path=/, Max-Age=600, no Domain, no Expires in the past) and a
 * 43-char base64url value. Returns the parsed cookie.
 */
export function assertLinkCookie(res) {
  const all = cookiesNamed(res, LINK_COOKIE);
  assert.equal(all.length, 1, `exactly one ${LINK_COOKIE} Set-Cookie expected: ${res.setCookies.join(' | ')} (${show(res)})`);
  const [c] = all;
  assert.match(c.value, SECRET_RE, `${LINK_COOKIE} value is not 43 base64url chars: ${c.raw}`);
  assert.equal(c.attrs.httponly, true, `${LINK_COOKIE} not HttpOnly: ${c.raw}`);
  assert.equal(c.attrs.secure, true, `${LINK_COOKIE} not Secure: ${c.raw}`);
  assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', `${LINK_COOKIE} SameSite: ${c.raw}`);
  assert.equal(c.attrs.path, '/', `${LINK_COOKIE} Path: ${c.raw}`);
  assert.equal(c.attrs['max-age'], '600', `${LINK_COOKIE} Max-Age: ${c.raw}`);
  assert.ok(!('domain' in c.attrs), `${LINK_COOKIE} must not carry Domain (__Host- prefix): ${c.raw}`);
  return c;
}

/** The link cookie is cleared (Max-Age=0) in a form a browser accepts for a __Host- cookie. */
export function assertLinkCookieCleared(res) {
  const all = cookiesNamed(res, LINK_COOKIE);
  assert.equal(all.length, 1, `${LINK_COOKIE} not cleared: ${res.setCookies.join(' | ')}`);
  const [c] = all;
  assert.equal(c.attrs['max-age'], '0', `${LINK_COOKIE} not cleared with Max-Age=0: ${c.raw}`);
  assert.equal(c.attrs.secure, true, `${LINK_COOKIE} clear lacks Secure: ${c.raw}`);
  assert.equal(c.attrs.path, '/', `${LINK_COOKIE} clear lacks Path=/: ${c.raw}`);
  assert.ok(!('domain' in c.attrs), `${LINK_COOKIE} clear has Domain: ${c.raw}`);
}

/** Cookie attributes without the value, for "alike" comparisons. */
export function cookieShape(c) {
  return { name: c.name, attrs: c.attrs, valueLength: c.value.length };
}

/** CSP directives as { name: [sources] }. */
export function cspDirectives(csp) {
  const out = {};
  for (const part of String(csp ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out[name.toLowerCase()] = sources;
  }
  return out;
}

/**
 * An HTML page with the security headers every page must carry (spec "Headers", design.md 5):
 * a strict CSP with frame-ancestors 'none', Referrer-Policy no-referrer, Cache-Control no-store,
 * X-Content-Type-Options nosniff, X-Frame-Options DENY.
 */
export function assertSecurePage(res, status) {
  assert.equal(res.status, status, show(res));
  const ct = res.headers.get('content-type') ?? '';
  assert.match(ct, /^text\/html/i, `content-type of a page: "${ct}" (${show(res)})`);
  const csp = res.headers.get('content-security-policy');
  assert.ok(csp, `no Content-Security-Policy: ${show(res)}`);
  const d = cspDirectives(csp);
  assert.deepEqual(d['frame-ancestors'], ["'none'"], `CSP frame-ancestors must be 'none': ${csp}`);
  const scripts = d['script-src'] ?? d['default-src'];
  assert.ok(scripts, `CSP has neither script-src nor default-src: ${csp}`);
  for (const weak of ["'unsafe-inline'", "'unsafe-eval'", '*', 'http:', 'https:', 'data:']) {
    assert.ok(!scripts.includes(weak), `CSP allows scripts from ${weak}: ${csp}`);
  }
  assert.equal((res.headers.get('referrer-policy') ?? '').toLowerCase(), 'no-referrer', `Referrer-Policy: ${show(res)}`);
  const cc = res.headers.get('cache-control') ?? '';
  assert.match(cc, /(^|,)\s*no-store\s*(,|$)/i, `Cache-Control no-store missing (got "${cc}"): ${show(res)}`);
  assert.equal((res.headers.get('x-content-type-options') ?? '').toLowerCase(), 'nosniff', `X-Content-Type-Options: ${show(res)}`);
  assert.equal((res.headers.get('x-frame-options') ?? '').toUpperCase(), 'DENY', `X-Frame-Options: ${show(res)}`);
}

/**
 * The live confirmation page of a link: a POST form to /v1/auth/magic-link/verify with a hidden
 * `token` input holding `token`, a submit button, and the address it signs in.
 */
export function assertConfirmPage(res, { token, email }) {
  assertSecurePage(res, 200);
  const html = res.text;
  const form = html.match(/<form\b[^>]*>/i)?.[0];
  assert.ok(form, `no <form> on the confirmation page: ${html.slice(0, 600)}`);
  assert.match(form, /\bmethod\s*=\s*["']?post["'\s>]/i, `form method is not post: ${form}`);
  assert.match(form, /\baction\s*=\s*["']\/v1\/auth\/magic-link\/verify["']/i, `form action: ${form}`);
  const input = [...html.matchAll(/<input\b[^>]*>/gi)].map((m) => m[0]).find((tag) => /\bname\s*=\s*["']token["']/i.test(tag));
  assert.ok(input, `no input named token: ${html.slice(0, 600)}`);
  assert.match(input, /\btype\s*=\s*["']hidden["']/i, `the token input is not hidden: ${input}`);
  assert.ok(input.includes(`value="${token}"`) || input.includes(`value='${token}'`), `the token input does not hold the token: ${input}`);
  assert.match(html, /<button\b|type\s*=\s*["']submit["']/i, 'no submit button on the confirmation page');
  if (email !== undefined) assert.ok(html.includes(email), `the page does not name ${email}`);
}

/** None of `secrets` appears in the response body or any response header. */
export function assertNotLeaked(res, secrets) {
  const headerText = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\n') + '\n' + res.setCookies.join('\n');
  for (const [what, secret] of Object.entries(secrets)) {
    assert.ok(secret && secret.length >= 6, `test bug: ${what} is empty`);
    assert.ok(!res.text.includes(secret), `the ${what} appears in the response body: ${show(res)}`);
    assert.ok(!headerText.includes(secret), `the ${what} appears in a response header: ${headerText}`);
  }
}

/** An application/x-www-form-urlencoded body. */
export function formBody(fields) {
  return new URLSearchParams(fields).toString();
}
