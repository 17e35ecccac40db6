// Self-registration end to end: POST /v1/auth/register with sign-up on (pending account, the
// confirmation mail, password usable only after confirming; an existing address gets a different
// mail and nothing changes; sign-up on first sign-in by magic link; password rules; the shared
// per-address mail limit), and with sign-up off (404, nothing created, nothing sent).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as jose from 'jose';
import { startServer } from './harness.mjs';
import {
  ACCESS_COOKIE,
  assertAuthFailure,
  assertError,
  assertNoStore,
  assertSessionCookies,
  assertStatus,
  assertUser,
  bootstrap,
  CookieJar,
  createUser,
  loginRaw,
  loginToken,
  request,
  show,
  sleep,
} from './client.mjs';
import {
  LINK_COOKIE,
  SECRET_RE,
  VERIFY_PATH,
  assertConfirmPage,
  assertLinkCookie,
  assertLinkCookieCleared,
  assertNotLeaked,
  assertSecurePage,
  codeOf,
  cookieShape,
  describeMail,
  formBody,
  linkOf,
  startMailbox,
  tokenOf,
} from './mailbox.mjs';

const MAIL_KEY = `mail-key-${crypto.randomBytes(12).toString('hex')}`;
const CONFIRM_SUBJECT = 'Confirm your email address';
const EXISTS_SUBJECT = 'You already have an account';
const SIGNIN_SUBJECT = 'Your sign-in link';
const QUIET_MS = 1500;
const PASSWORD = 'registration password 1234';
const OTHER_PASSWORD = 'a different password 5678';

/** Shared per-server fixtures and helpers. */
function fixture(label) {
  const f = {
    srv: undefined,
    mailbox: undefined,
    boot: undefined,
    seq: 0,
    run: crypto.randomBytes(3).toString('hex'),
  };
  f.fresh = (name) => `${name}-${f.run}-${++f.seq}@${label}.example`;
  f.register = (json, opts = {}) => request(f.srv, 'POST', '/v1/auth/register', { json, ...opts });
  f.ask = (json, opts = {}) => request(f.srv, 'POST', '/v1/auth/magic-link', { json, ...opts });
  f.verifyJson = (json, opts = {}) => request(f.srv, 'POST', '/v1/auth/magic-link/verify', { json, ...opts });
  f.verifyForm = (fields, opts = {}) =>
    request(f.srv, 'POST', '/v1/auth/magic-link/verify', {
      body: formBody(fields),
      contentType: 'application/x-www-form-urlencoded',
      ...opts,
    });
  f.enterCode = (json, opts = {}) => request(f.srv, 'POST', '/v1/auth/magic-link/code', { json, ...opts });
  f.page = (token, method = 'GET', opts = {}) => request(f.srv, method, `${VERIFY_PATH}${encodeURIComponent(token)}`, opts);
  f.nextMail = async (email, before) => (await f.mailbox.waitForCount(email, before + 1))[before];
  f.login = (email, password) => loginRaw(f.srv, { email, password, session: 'token' });

  /** The user with this address, via the admin listing (undefined if none). */
  f.findUser = async (email) => {
    let cursor;
    for (let i = 0; i < 100; i++) {
      const params = new URLSearchParams({ limit: '200' });
      if (cursor) params.set('cursor', cursor);
      const res = await request(f.srv, 'GET', `/v1/users?${params}`, { bearer: f.boot.key });
      assertStatus(res, 200);
      const hit = res.body.users.find((u) => u.email === email);
      if (hit) return hit;
      cursor = res.body.next_cursor;
      if (!cursor) return undefined;
    }
    throw new Error('GET /v1/users: too many pages');
  };

  /** Link, token and code of a mail that must carry them. */
  f.secretsOf = (mail) => {
    const link = linkOf(mail);
    assert.ok(link, `no verify link in the mail text: ${describeMail(mail)} ${JSON.stringify(mail.body.text)}`);
    assert.ok(link.startsWith(`${f.srv.url}${VERIFY_PATH}`), `the link is not based on PUBLIC_URL (${f.srv.url}): ${link}`);
    const token = tokenOf(mail);
    assert.match(token, SECRET_RE, `link token shape: ${link}`);
    const code = codeOf(mail);
    assert.match(String(code), /^\d{6}$/, `no "Code: dddddd" line: ${JSON.stringify(mail.body.text)}`);
    return { link, token, code };
  };

  /**
   * As a browser: register (cookie mode) and return { jar, binding, res, mail }. The mail is the
   * next one to that address, whatever its subject (callers check it).
   */
  f.browserRegister = async (email, password = PASSWORD, extra = {}, jar = new CookieJar()) => {
    const before = f.mailbox.countFor(email);
    const res = await f.register({ email, password, ...extra }, { jar, origin: f.srv.url });
    assertStatus(res, 202);
    assert.deepEqual(res.body, { status: 'sent' }, show(res));
    const cookie = assertLinkCookie(res);
    const mail = await f.nextMail(email, before);
    return { jar, binding: cookie.value, cookie, res, mail };
  };

  /** Proves delivery works now, then waits so that any earlier-requested mail would have arrived. */
  f.quietWindow = async (control) => {
    const email = f.fresh('control');
    const res = await control(email);
    assertStatus(res, 202);
    await f.mailbox.waitForCount(email, 1);
    await sleep(QUIET_MS);
  };
  return f;
}

/** A JSON session from a magic-link confirmation: amr ["email"], the user active. */
function assertEmailSession(res, email, mode) {
  assertStatus(res, 200);
  assertNoStore(res);
  const b = res.body;
  assert.equal(typeof b.access_token, 'string', show(res));
  assert.equal(b.token_type, 'Bearer');
  assert.equal(typeof b.session_id, 'string');
  assertUser(b.user, { email, status: 'active' });
  assert.deepEqual(jose.decodeJwt(b.access_token).amr, ['email']);
  if (mode === 'cookie') {
    assert.ok(!('refresh_token' in b));
    assertSessionCookies(res);
    assertLinkCookieCleared(res);
  } else {
    assert.equal(typeof b.refresh_token, 'string', show(res));
    assert.deepEqual(res.setCookies, []);
  }
  return b;
}

/** The text and html of a mail hold no verify link, no link token and no 6-digit code. */
function assertNoSecrets(mail) {
  for (const part of ['text', 'html']) {
    const s = String(mail.body[part] ?? '');
    assert.ok(!s.includes('/v1/auth/magic-link/verify'), `the ${part} part has a verify link: ${s}`);
    assert.ok(!/token=/.test(s), `the ${part} part has a token: ${s}`);
    // (Only the text part: an html part may hold CSS colours such as #333333.)
    if (part === 'text') assert.ok(!/(?<!\d)\d{6}(?!\d)/.test(s), `the text part has a 6-digit number: ${s}`);
    assert.ok(!/Code:/i.test(s), `the ${part} part has a code line: ${s}`);
  }
}

describe('self-registration with ALLOW_SIGNUP=true', () => {
  const f = fixture('signup');
  const controlRegister = (email) => f.register({ email, password: PASSWORD }, { jar: new CookieJar(), origin: f.srv.url });

  before(async () => {
    f.mailbox = await startMailbox({ apiKey: MAIL_KEY });
    f.srv = await startServer({
      name: 'register-on',
      vars: { MAIL_ENDPOINT: f.mailbox.url, MAIL_API_KEY: MAIL_KEY, ALLOW_SIGNUP: 'true' },
    });
    f.boot = await bootstrap(f.srv);
  });

  after(async () => {
    if (f.srv) await f.srv.stop();
    if (f.mailbox) await f.mailbox.stop();
  });

  it('new address: 202 + link cookie; confirmation mail with link and code; password refused until confirmed, then it works', async () => {
    const email = f.fresh('new');
    const r = await f.browserRegister(email, PASSWORD, { name: 'New Person' });
    assert.equal(r.res.setCookies.length, 1, `only the link cookie: ${r.res.setCookies.join(' | ')}`);
    const { mail } = r;
    assert.equal(mail.headers.authorization, `Bearer ${MAIL_KEY}`);
    assert.deepEqual(mail.body.to, [email]);
    assert.equal(mail.body.subject, CONFIRM_SUBJECT);
    const { token, code } = f.secretsOf(mail);
    assertNotLeaked(r.res, { 'link token': token, code });

    const pending = await f.findUser(email);
    assert.ok(pending, 'the pending user exists');
    assert.equal(pending.status, 'pending');
    assert.equal(pending.name, 'New Person');
    assertAuthFailure(await f.login(email, PASSWORD));

    // The confirmation page (scanner-safe), then the browser confirms with its binding.
    assertConfirmPage(await f.page(token), { token, email });
    assertAuthFailure(await f.verifyJson({ token })); // no binding
    assertAuthFailure(await f.login(email, PASSWORD)); // still pending
    const ok = await f.verifyJson({ token }, { jar: r.jar, origin: f.srv.url });
    const body = assertEmailSession(ok, email, 'cookie');
    assert.equal(body.user.id, pending.id);
    const me = await request(f.srv, 'GET', '/v1/me', { jar: r.jar.only(ACCESS_COOKIE) });
    assertStatus(me, 200);
    assert.equal(me.body.user.email, email);

    const s = await loginToken(f.srv, { email, password: PASSWORD });
    assertUser(s.body.user, { email, status: 'active' });
    assert.deepEqual(jose.decodeJwt(s.access).amr, ['pwd']);
    assert.equal((await f.findUser(email)).status, 'active');
    assertAuthFailure(await f.verifyJson({ token }, { jar: new CookieJar([[LINK_COOKIE, r.binding]]), origin: f.srv.url }));
    assertSecurePage(await f.page(token), 404);
  });

  it('new address confirmed by a form post: 303 to PUBLIC_URL/account, then the password works', async () => {
    const email = f.fresh('form');
    const r = await f.browserRegister(email);
    assert.equal(r.mail.body.subject, CONFIRM_SUBJECT);
    const { token } = f.secretsOf(r.mail);
    const res = await f.verifyForm({ token }, { jar: r.jar, origin: f.srv.url });
    assertStatus(res, 303);
    assert.equal(res.headers.get('location'), `${f.srv.url}/account`, show(res));
    assertSessionCookies(res);
    assertLinkCookieCleared(res);
    const s = await loginToken(f.srv, { email, password: PASSWORD });
    assert.equal(s.body.user.status, 'active');
  });

  it('new address in token mode: 202 with attempt and no cookie; the code confirms it; then the password works', async () => {
    const email = f.fresh('token');
    const res = await f.register({ email, password: PASSWORD, session: 'token' });
    assertStatus(res, 202);
    assert.equal(res.body.status, 'sent');
    assert.match(String(res.body.attempt), SECRET_RE, show(res));
    assert.deepEqual(Object.keys(res.body).sort(), ['attempt', 'status']);
    assert.deepEqual(res.setCookies, []);
    const mail = await f.nextMail(email, 0);
    assert.equal(mail.body.subject, CONFIRM_SUBJECT);
    const { code } = f.secretsOf(mail);
    assertAuthFailure(await f.login(email, PASSWORD));
    assertEmailSession(await f.enterCode({ email, code, attempt: res.body.attempt }), email, 'token');
    const s = await loginToken(f.srv, { email, password: PASSWORD });
    assert.equal(s.body.user.status, 'active');
  });

  it('existing address: the same 202 answer and cookie attributes; an "already have an account" mail with no link and no code; the password is unchanged', async () => {
    const email = f.fresh('existing');
    await createUser(f.srv, f.boot.key, { email, name: 'Existing', password: PASSWORD });
    const newcomer = await f.browserRegister(f.fresh('compare'), OTHER_PASSWORD);
    const r = await f.browserRegister(email, OTHER_PASSWORD, { name: 'Impostor' });

    assert.deepEqual(r.res.body, newcomer.res.body);
    assert.equal(r.res.setCookies.length, newcomer.res.setCookies.length);
    assert.deepEqual(cookieShape(r.cookie), cookieShape(newcomer.cookie), 'link cookie attributes differ from a new address');
    for (const h of ['content-type', 'cache-control']) assert.equal(r.res.headers.get(h), newcomer.res.headers.get(h), `${h} differs`);
    const tokNew = await f.register({ email: f.fresh('compare-token'), password: OTHER_PASSWORD, session: 'token' });
    const tokOld = await f.register({ email, password: OTHER_PASSWORD, session: 'token' });
    assertStatus(tokOld, 202);
    assertStatus(tokNew, 202);
    assert.deepEqual(Object.keys(tokOld.body).sort(), Object.keys(tokNew.body).sort());
    assert.match(String(tokOld.body.attempt), SECRET_RE);

    assert.deepEqual(r.mail.body.to, [email]);
    assert.equal(r.mail.body.subject, EXISTS_SUBJECT);
    assertNoSecrets(r.mail);
    const second = await f.nextMail(email, 1); // the token-mode request's mail
    assert.equal(second.body.subject, EXISTS_SUBJECT);
    assertNoSecrets(second);

    await loginToken(f.srv, { email, password: PASSWORD });
    assertAuthFailure(await f.login(email, OTHER_PASSWORD));
    const u = await f.findUser(email);
    assert.equal(u.status, 'active');
    assert.equal(u.name, 'Existing', 'the name must not change either');
  });

  it('registering a pending address again: an "already have an account" mail, and the first password is the one that works', async () => {
    const email = f.fresh('twice');
    const first = await f.browserRegister(email, PASSWORD);
    assert.equal(first.mail.body.subject, CONFIRM_SUBJECT);
    const { token } = f.secretsOf(first.mail);
    const again = await f.browserRegister(email, OTHER_PASSWORD);
    assert.equal(again.mail.body.subject, EXISTS_SUBJECT);
    assertNoSecrets(again.mail);
    assert.equal((await f.findUser(email)).status, 'pending');
    assertEmailSession(await f.verifyJson({ token }, { jar: first.jar, origin: f.srv.url }), email, 'cookie');
    await loginToken(f.srv, { email, password: PASSWORD });
    assertAuthFailure(await f.login(email, OTHER_PASSWORD));
  });

  it('sign-up on first sign-in: a magic link for an unknown address is sent, and confirming it creates an active user', async () => {
    const email = f.fresh('first-signin');
    assert.equal(await f.findUser(email), undefined);
    const jar = new CookieJar();
    const res = await f.ask({ email }, { jar, origin: f.srv.url });
    assertStatus(res, 202);
    assert.deepEqual(res.body, { status: 'sent' });
    assertLinkCookie(res);
    const mail = await f.nextMail(email, 0);
    assert.equal(mail.body.subject, SIGNIN_SUBJECT);
    const { token } = f.secretsOf(mail);
    assert.equal(await f.findUser(email), undefined, 'no user before the link is confirmed');
    assertConfirmPage(await f.page(token), { token, email });
    const body = assertEmailSession(await f.verifyJson({ token }, { jar, origin: f.srv.url }), email, 'cookie');
    assert.equal(body.user.email, email);
    const u = await f.findUser(email);
    assert.ok(u, 'the user was created');
    assert.equal(u.id, body.user.id);
    assert.equal(u.status, 'active');
    assertAuthFailure(await f.login(email, PASSWORD)); // no password was ever set
  });

  it('a pending user who signs in by magic link is activated, and the registration password is dropped', async () => {
    const email = f.fresh('pending-link');
    const reg = await f.browserRegister(email, PASSWORD);
    assert.equal(reg.mail.body.subject, CONFIRM_SUBJECT);
    const jar = new CookieJar();
    const res = await f.ask({ email }, { jar, origin: f.srv.url });
    assertStatus(res, 202);
    const mail = await f.nextMail(email, 1);
    assert.equal(mail.body.subject, SIGNIN_SUBJECT);
    const { token } = f.secretsOf(mail);
    const body = assertEmailSession(await f.verifyJson({ token }, { jar, origin: f.srv.url }), email, 'cookie');
    assert.equal(body.user.status, 'active');
    assert.equal((await f.findUser(email)).status, 'active');
    assertAuthFailure(await f.login(email, PASSWORD));
  });

  it('a password shorter than 8 characters or over 1024 bytes: 400 field password, nothing created, no mail', async () => {
    const email = f.fresh('weak');
    for (const password of ['short', 'seven77', 'a'.repeat(1025), 'é'.repeat(513) /* 513 chars, 1026 bytes */]) {
      const res = await f.register({ email, password }, { jar: new CookieJar(), origin: f.srv.url });
      assertError(res, 400, 'invalid_request', 'password');
    }
    assertError(await f.register({ email }), 400, 'invalid_request', 'password');
    await f.quietWindow(controlRegister);
    assert.equal(f.mailbox.countFor(email), 0, `mail for a refused registration: ${f.mailbox.mailsFor(email).map(describeMail).join(' ')}`);
    assert.equal(await f.findUser(email), undefined, 'a refused registration created a user');
    assertAuthFailure(await f.login(email, 'short'));
    // Nothing was created, so a valid registration now is a NEW address (8 characters is enough).
    const ok = await f.browserRegister(email, 'eight888');
    assert.equal(ok.mail.body.subject, CONFIRM_SUBJECT);
    // 1024 bytes is still allowed.
    const long = await f.register({ email: f.fresh('long'), password: 'b'.repeat(1024) });
    assertStatus(long, 202);
  });

  it('bad input: missing or malformed email 400 field email; wrong content type 415; bad session 400', async () => {
    assertError(await f.register({ password: PASSWORD }), 400, 'invalid_request', 'email');
    assertError(await f.register({ email: 'nope', password: PASSWORD }), 400, 'invalid_request', 'email');
    const res = await request(f.srv, 'POST', '/v1/auth/register', {
      body: JSON.stringify({ email: f.fresh('ct'), password: PASSWORD }),
      contentType: 'text/plain',
    });
    assertError(res, 415, 'unsupported_media_type');
    assertError(await f.register({ email: f.fresh('session'), password: PASSWORD, session: 'bogus' }), 400, 'invalid_request', 'session');
  });

  it('the per-address mail limit is shared with magic links: a registration and 5 link requests send exactly 5 mails', async () => {
    const email = f.fresh('shared-limit');
    const reg = await f.browserRegister(email, PASSWORD);
    assert.equal(reg.mail.body.subject, CONFIRM_SUBJECT);
    for (let i = 0; i < 5; i++) {
      const res = await f.ask({ email }, { jar: new CookieJar(), origin: f.srv.url });
      assertStatus(res, 202);
      assert.deepEqual(res.body, { status: 'sent' });
    }
    await f.mailbox.waitForCount(email, 5);
    await f.quietWindow(controlRegister);
    assert.equal(f.mailbox.countFor(email), 5);
    // And a registration beyond the limit answers alike but sends nothing.
    const over = await f.register({ email, password: PASSWORD }, { jar: new CookieJar(), origin: f.srv.url });
    assertStatus(over, 202);
    assert.deepEqual(over.body, { status: 'sent' });
    await f.quietWindow(controlRegister);
    assert.equal(f.mailbox.countFor(email), 5);
  });

  it('GET /signup is the sign-up page', async () => {
    const res = await request(f.srv, 'GET', '/signup');
    assertSecurePage(res, 200);
  });

  it('the mail API never refused the worker', () => {
    assert.ok(f.mailbox.mails.length > 0);
    assert.deepEqual(f.mailbox.rejected.map((r) => `${r.status} ${r.method} ${r.url}`), []);
  });
});

describe('self-registration with sign-up off', () => {
  const f = fixture('signup-off');

  before(async () => {
    f.mailbox = await startMailbox({ apiKey: MAIL_KEY });
    f.srv = await startServer({
      name: 'register-off',
      vars: { MAIL_ENDPOINT: f.mailbox.url, MAIL_API_KEY: MAIL_KEY, ALLOW_SIGNUP: 'false' },
    });
    f.boot = await bootstrap(f.srv);
  });

  after(async () => {
    if (f.srv) await f.srv.stop();
    if (f.mailbox) await f.mailbox.stop();
  });

  it('POST /v1/auth/register and GET /signup are 404; nothing is created and no mail is sent', async () => {
    const email = f.fresh('nope');
    for (const session of [undefined, 'cookie', 'token']) {
      const jar = new CookieJar();
      const res = await f.register({ email, password: PASSWORD, ...(session ? { session } : {}) }, { jar, origin: f.srv.url });
      assertError(res, 404, 'not_found');
      assert.equal(jar.get(LINK_COOKIE), undefined, 'a 404 must not set the link cookie');
    }
    const signup = await request(f.srv, 'GET', '/signup');
    assert.equal(signup.status, 404, show(signup));

    // Delivery works on this server (a known user's link arrives), yet nothing went to `email`.
    await f.quietWindow(async (control) => {
      await createUser(f.srv, f.boot.key, { email: control, name: 'Control' });
      return f.ask({ email: control });
    });
    assert.equal(f.mailbox.countFor(email), 0);
    assert.equal(await f.findUser(email), undefined);
    assertAuthFailure(await f.login(email, PASSWORD));
  });
});
