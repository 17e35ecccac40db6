// Magic links end to end (one server for the file, sign-up off, mail captured by tests/e2e/mailbox.mjs):
// the request and its mail, the scanner-safe confirmation page, the browser binding, form and JSON
// confirmation, token mode, the 6-digit code and its lockout, the redirect allow-list, no mail for
// unknown or disabled addresses (with identical answers), the per-address mail limit, two links in
// one browser, CSRF, and malformed input.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import * as jose from 'jose';
import { startServer } from './harness.mjs';
import {
  ACCESS_COOKIE,
  REFRESH_COOKIE,
  assertAuthFailure,
  assertError,
  assertNoStore,
  assertSessionCookies,
  assertStatus,
  assertUser,
  bootstrap,
  CookieJar,
  createUser,
  refreshToken,
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
  cookiesNamed,
  describeMail,
  formBody,
  linkOf,
  linksOf,
  randomSecret,
  startMailbox,
  tokenOf,
} from './mailbox.mjs';

const MAIL_KEY = `mail-key-${crypto.randomBytes(12).toString('hex')}`;
const MAIL_FROM = 'Edgeauth Tests <signin@edgeauth.test>';
const ALLOWED_REDIRECT = 'https://app.example/dash';
const SUBJECT = 'Your sign-in link';
/** After a control mail requested later has arrived, how long a stray mail gets to show up. */
const QUIET_MS = 1500;

describe('magic links', () => {
  let mailbox;
  let srv;
  let boot;
  let seq = 0;
  const run = crypto.randomBytes(3).toString('hex');

  /** A fresh address (the mail limit is per address, so every test uses its own). */
  const fresh = (label) => `${label}-${run}-${++seq}@ml.example`;

  /** An active user made by the org admin (no password: the magic link is their way in). */
  async function newUser(label, extra = {}) {
    const email = fresh(label);
    const user = await createUser(srv, boot.key, { email, name: label, ...extra });
    return { email, user };
  }

  const ask = (json, opts = {}) => request(srv, 'POST', '/v1/auth/magic-link', { json, ...opts });
  const verifyJson = (json, opts = {}) => request(srv, 'POST', '/v1/auth/magic-link/verify', { json, ...opts });
  const verifyForm = (fields, opts = {}) =>
    request(srv, 'POST', '/v1/auth/magic-link/verify', {
      body: formBody(fields),
      contentType: 'application/x-www-form-urlencoded',
      ...opts,
    });
  const enterCode = (json, opts = {}) => request(srv, 'POST', '/v1/auth/magic-link/code', { json, ...opts });
  const page = (token, method = 'GET', opts = {}) =>
    request(srv, method, `${VERIFY_PATH}${encodeURIComponent(token)}`, opts);

  /** The (n+1)-th mail to `email`, n = how many it had before the request that should send it. */
  async function nextMail(email, before) {
    const all = await mailbox.waitForCount(email, before + 1);
    return all[before];
  }

  /** A link and code, from the mail to `email`, checked for the sign-in shape. */
  function secretsOf(mail) {
    const link = linkOf(mail);
    assert.ok(link, `no verify link in the mail text: ${describeMail(mail)} ${JSON.stringify(mail.body.text)}`);
    assert.ok(link.startsWith(`${srv.url}${VERIFY_PATH}`), `the link is not based on PUBLIC_URL (${srv.url}): ${link}`);
    const token = tokenOf(mail);
    assert.match(token, SECRET_RE, `link token shape: ${link}`);
    const code = codeOf(mail);
    assert.match(String(code), /^\d{6}$/, `no "Code: dddddd" line in the mail text: ${JSON.stringify(mail.body.text)}`);
    return { link, token, code };
  }

  /**
   * Cookie mode, as a browser: POST the request with our Origin and a jar, get the link cookie and
   * the mail. Returns { jar, binding, res, mail, link, token, code }.
   */
  async function browserLink(email, extra = {}, jar = new CookieJar()) {
    const before = mailbox.countFor(email);
    const res = await ask({ email, ...extra }, { jar, origin: srv.url });
    assertStatus(res, 202);
    assert.deepEqual(res.body, { status: 'sent' }, show(res));
    const binding = jar.get(LINK_COOKIE);
    assert.match(String(binding), SECRET_RE, `no link cookie in the jar: ${res.setCookies.join(' | ')}`);
    const mail = await nextMail(email, before);
    return { jar, binding, res, mail, ...secretsOf(mail) };
  }

  /** Token mode: returns { attempt, res, mail, link, token, code }. */
  async function tokenLink(email, extra = {}) {
    const before = mailbox.countFor(email);
    const res = await ask({ email, session: 'token', ...extra });
    assertStatus(res, 202);
    assert.equal(res.body?.status, 'sent', show(res));
    assert.match(String(res.body?.attempt), SECRET_RE, `token mode must return the attempt: ${show(res)}`);
    assert.deepEqual(res.setCookies, [], `token mode must set no cookie: ${res.setCookies.join(' | ')}`);
    const mail = await nextMail(email, before);
    return { attempt: res.body.attempt, res, mail, ...secretsOf(mail) };
  }

  /** A successful JSON sign-in by mail: the login body, amr ["email"], the session mode's delivery. */
  function assertEmailSession(res, email, mode) {
    assertStatus(res, 200);
    assertNoStore(res);
    const b = res.body;
    assert.equal(typeof b.access_token, 'string', show(res));
    assert.equal(b.token_type, 'Bearer');
    assert.equal(b.expires_in, 600);
    assert.equal(typeof b.session_id, 'string');
    assertUser(b.user, { email, status: 'active' });
    const claims = jose.decodeJwt(b.access_token);
    assert.deepEqual(claims.amr, ['email'], `amr of a magic-link session: ${JSON.stringify(claims)}`);
    assert.equal(claims.sid, b.session_id);
    assert.equal(claims.sub, b.user.id);
    if (mode === 'cookie') {
      assert.ok(!('refresh_token' in b), 'cookie mode keeps the refresh token out of the body');
      assertSessionCookies(res);
      assertLinkCookieCleared(res);
    } else {
      assert.equal(typeof b.refresh_token, 'string', `token mode puts the refresh token in the body: ${show(res)}`);
      assert.deepEqual(res.setCookies, [], `token mode sets no cookies: ${res.setCookies.join(' | ')}`);
    }
    return b;
  }

  /** No session was started by this response. */
  function assertNoSession(res) {
    const names = res.setCookies.map((c) => c.split('=')[0].trim());
    assert.ok(!names.includes(ACCESS_COOKIE) && !names.includes(REFRESH_COOKIE), `a refused request set session cookies: ${res.setCookies.join(' | ')}`);
    assert.ok(!/access_token|refresh_token/.test(res.text), `a refused request returned tokens: ${show(res)}`);
  }

  /**
   * Proves delivery works right now (a control mail requested now arrives), then waits QUIET_MS,
   * so that any mail requested BEFORE this call would have arrived by the time it returns.
   */
  async function quietWindow() {
    const { email } = await newUser('control');
    const res = await ask({ email });
    assertStatus(res, 202);
    await mailbox.waitForCount(email, 1);
    await sleep(QUIET_MS);
  }

  before(async () => {
    mailbox = await startMailbox({ apiKey: MAIL_KEY });
    srv = await startServer({
      name: 'magic-links',
      vars: {
        MAIL_ENDPOINT: mailbox.url,
        MAIL_API_KEY: MAIL_KEY,
        MAIL_FROM,
        ALLOWED_REDIRECTS: ALLOWED_REDIRECT,
        ALLOW_SIGNUP: 'false',
      },
    });
    boot = await bootstrap(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
    if (mailbox) await mailbox.stop();
  });

  describe('requesting a link', () => {
    it('known user: 202 {"status":"sent"}, the link cookie, and the mail with link and code (nothing secret in the response)', async () => {
      const { email } = await newUser('known');
      const jar = new CookieJar();
      const res = await ask({ email }, { jar, origin: srv.url });
      assertStatus(res, 202);
      assert.deepEqual(res.body, { status: 'sent' });
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/i);
      assert.equal(res.setCookies.length, 1, `only the link cookie: ${res.setCookies.join(' | ')}`);
      const cookie = assertLinkCookie(res);

      const mail = await mailbox.waitForCount(email, 1).then((m) => m[0]);
      assert.equal(mail.headers.authorization, `Bearer ${MAIL_KEY}`, 'the worker must send MAIL_API_KEY as a Bearer token');
      assert.match(mail.headers['content-type'] ?? '', /^application\/json/i);
      assert.equal(mail.body.from, MAIL_FROM, 'from = MAIL_FROM');
      assert.deepEqual(mail.body.to, [email], 'to = [the address]');
      assert.equal(mail.body.subject, SUBJECT);
      assert.equal(typeof mail.body.text, 'string');
      assert.equal(typeof mail.body.html, 'string');
      const { link, token, code } = secretsOf(mail);
      assert.equal(linksOf(mail).length, 1, `exactly one link in the text: ${mail.body.text}`);
      assert.ok(mail.body.html.includes(token), 'the html part carries the link too');
      assert.notEqual(token, cookie.value, 'the link token is not the binding');
      assert.equal(new URL(link).pathname, '/v1/auth/magic-link/verify');

      // The secrets of the mail never travel in the HTTP response.
      assertNotLeaked(res, { 'link token': token, code });
      assert.deepEqual(mailbox.rejected, [], `the mail API refused requests: ${JSON.stringify(mailbox.rejected.map((r) => [r.status, r.headers.authorization]))}`);
    });

    it('token mode: 202 with "attempt" (43 chars) and no cookie; the mail has the same shape', async () => {
      const { email } = await newUser('tokenmode');
      const t = await tokenLink(email);
      assert.deepEqual(Object.keys(t.res.body).sort(), ['attempt', 'status']);
      assert.equal(t.mail.body.subject, SUBJECT);
      assert.notEqual(t.attempt, t.token);
      assertNotLeaked(t.res, { 'link token': t.token, code: t.code });
    });
  });

  describe('the link', () => {
    it('GET/HEAD show a confirm page and consume nothing; no or wrong binding is 401 and consumes nothing; the right browser signs in once', async () => {
      const { email, user } = await newUser('scanner');
      const b = await browserLink(email);
      const other = await browserLink((await newUser('other-browser')).email); // a real binding of another attempt

      // A scanner (no cookies) fetches the link, several times, and HEADs it.
      for (let i = 0; i < 3; i++) {
        const get = await request(srv, 'GET', b.link.slice(srv.url.length));
        assertConfirmPage(get, { token: b.token, email });
        assert.deepEqual(get.setCookies, [], `the page must set no cookie: ${get.setCookies.join(' | ')}`);
      }
      const head = await page(b.token, 'HEAD');
      assertSecurePage(head, 200);
      assert.equal(head.text, '');
      assert.deepEqual(head.setCookies, []);

      // A client without the binding posts the token: JSON and form, both refused.
      const noBindingJson = await verifyJson({ token: b.token });
      assertAuthFailure(noBindingJson);
      assertNoSession(noBindingJson);
      const noBindingForm = await verifyForm({ token: b.token });
      assertSecurePage(noBindingForm, 401);
      assert.match(noBindingForm.text, /browser/i, 'the 401 page should say the link cannot be used in this browser');
      assertNoSession(noBindingForm);

      // Wrong bindings: a random one, another attempt's real one (cookie), a wrong attempt in the body.
      assertAuthFailure(await verifyJson({ token: b.token }, { jar: new CookieJar([[LINK_COOKIE, randomSecret()]]), origin: srv.url }));
      assertAuthFailure(await verifyJson({ token: b.token }, { jar: new CookieJar([[LINK_COOKIE, other.binding]]), origin: srv.url }));
      assertAuthFailure(await verifyJson({ token: b.token, attempt: other.binding }));
      const wrongForm = await verifyForm({ token: b.token }, { jar: new CookieJar([[LINK_COOKIE, randomSecret()]]), origin: srv.url });
      assertSecurePage(wrongForm, 401);
      assertNoSession(wrongForm);

      // Nothing was consumed: the page is still live.
      assertConfirmPage(await page(b.token), { token: b.token, email });

      // The browser that asked: opening the page keeps its cookie, then the JSON confirmation signs in.
      const opened = await page(b.token, 'GET', { jar: b.jar });
      assertConfirmPage(opened, { token: b.token, email });
      assert.equal(b.jar.get(LINK_COOKIE), b.binding, 'opening the page must not touch the link cookie');
      const ok = await verifyJson({ token: b.token }, { jar: b.jar, origin: srv.url });
      const body = assertEmailSession(ok, email, 'cookie');
      assert.equal(body.user.id, user.id);
      assert.equal(b.jar.get(LINK_COOKIE), undefined, 'the link cookie is cleared on success');

      // The access cookie and the access token both work for /v1/me.
      const meCookie = await request(srv, 'GET', '/v1/me', { jar: b.jar.only(ACCESS_COOKIE) });
      assertStatus(meCookie, 200);
      assert.equal(meCookie.body.user.email, email);
      assert.equal(meCookie.body.session_id, body.session_id);
      const meBearer = await request(srv, 'GET', '/v1/me', { bearer: body.access_token });
      assertStatus(meBearer, 200);
      assert.equal(meBearer.body.session_id, body.session_id);
      const sessions = await request(srv, 'GET', '/v1/auth/sessions', { bearer: body.access_token });
      assertStatus(sessions, 200);
      const listed = sessions.body.sessions.find((s) => s.id === body.session_id);
      assert.ok(listed, 'the new session is listed');
      assert.equal(listed.auth_method, 'email', `auth_method of a magic-link session: ${JSON.stringify(listed)}`);

      // Single use: the same token with the right binding again is refused, and the page is gone.
      const again = await verifyJson({ token: b.token }, { jar: new CookieJar([[LINK_COOKIE, b.binding]]), origin: srv.url });
      assertAuthFailure(again);
      assertNoSession(again);
      const gone = await page(b.token);
      assertSecurePage(gone, 404);
      assert.match(gone.text, /invalid|expired/i, 'the 404 page should say the link is invalid or expired');
      assert.ok(!gone.text.includes(email), 'a dead link must not name the address');
      assertSecurePage(await page(b.token, 'HEAD'), 404);
    });

    it('an unknown token: GET/HEAD 404 page, POST 401', async () => {
      const token = randomSecret();
      const get = await page(token);
      assertSecurePage(get, 404);
      assert.deepEqual(get.setCookies, []);
      assertSecurePage(await page(token, 'HEAD'), 404);
      assertSecurePage(await page('not-a-token'), 404);
      assertAuthFailure(await verifyJson({ token }, { jar: new CookieJar([[LINK_COOKIE, randomSecret()]]), origin: srv.url }));
      assertAuthFailure(await verifyJson({ token, attempt: randomSecret() }));
    });

    it('form POST with the binding cookie: 303 to the requested redirect_to, session cookies set, link cookie cleared', async () => {
      const { email } = await newUser('form-redirect');
      const target = 'https://app.example/dash/reports?tab=1';
      const b = await browserLink(email, { redirect_to: target });
      assertConfirmPage(await page(b.token, 'GET', { jar: b.jar }), { token: b.token, email });
      const res = await verifyForm({ token: b.token }, { jar: b.jar, origin: srv.url });
      assertStatus(res, 303);
      assert.equal(res.headers.get('location'), target, show(res));
      assertNoStore(res);
      assertSessionCookies(res);
      assertLinkCookieCleared(res);
      assert.equal(b.jar.get(LINK_COOKIE), undefined);
      const me = await request(srv, 'GET', '/v1/me', { jar: b.jar.only(ACCESS_COOKIE) });
      assertStatus(me, 200);
      assert.equal(me.body.user.email, email);
      assert.deepEqual(jose.decodeJwt(b.jar.get(ACCESS_COOKIE)).amr, ['email']);
      // Used up.
      assertSecurePage(await page(b.token), 404);
    });

    it('form POST without redirect_to: 303 to PUBLIC_URL/account', async () => {
      const { email } = await newUser('form-account');
      const b = await browserLink(email);
      const res = await verifyForm({ token: b.token }, { jar: b.jar, origin: srv.url });
      assertStatus(res, 303);
      assert.equal(res.headers.get('location'), `${srv.url}/account`, show(res));
      assertSessionCookies(res);
      assertLinkCookieCleared(res);
      const me = await request(srv, 'GET', '/v1/me', { jar: b.jar.only(ACCESS_COOKIE) });
      assertStatus(me, 200);
      assert.equal(me.body.user.email, email);
    });

    it('token mode: verify {token, attempt} gives 200 with refresh_token in the body and no cookies', async () => {
      const { email } = await newUser('token-verify');
      const t = await tokenLink(email);
      assertAuthFailure(await verifyJson({ token: t.token })); // the attempt is the binding
      assertAuthFailure(await verifyJson({ token: t.token, attempt: randomSecret() }));
      const res = await verifyJson({ token: t.token, attempt: t.attempt });
      const body = assertEmailSession(res, email, 'token');
      const me = await request(srv, 'GET', '/v1/me', { bearer: body.access_token });
      assertStatus(me, 200);
      assert.equal(me.body.user.email, email);
      const r = await refreshToken(srv, body.refresh_token);
      assertStatus(r, 200);
      assert.equal(r.body.session_id, body.session_id);
      assertAuthFailure(await verifyJson({ token: t.token, attempt: t.attempt })); // single use
    });

    it('a link requested before the user was disabled does not sign in (401) once they are', async () => {
      const { email, user } = await newUser('disabled-later');
      const b = await browserLink(email);
      const off = await request(srv, 'POST', `/v1/users/${user.id}/disable`, { bearer: boot.key, json: {} });
      assertStatus(off, 200);
      const res = await verifyJson({ token: b.token }, { jar: b.jar, origin: srv.url });
      assertAuthFailure(res);
      assertNoSession(res);
    });

    it('CSRF: a foreign Origin on the request is 403 csrf (no cookie); on the confirmation it is 403 and consumes nothing', async () => {
      const { email } = await newUser('csrf');
      const bad = await ask({ email }, { jar: new CookieJar(), origin: 'https://evil.example' });
      assertError(bad, 403, 'csrf');
      assert.deepEqual(cookiesNamed(bad, LINK_COOKIE), [], 'a refused request must not set the link cookie');

      const b = await browserLink(email);
      const forged = await verifyForm({ token: b.token }, { jar: b.jar, origin: 'https://evil.example', keepJar: true });
      assert.equal(forged.status, 403, show(forged));
      assertNoSession(forged);
      const forgedJson = await verifyJson({ token: b.token }, { jar: b.jar, origin: `${srv.url}.evil.example`, keepJar: true });
      assertError(forgedJson, 403, 'csrf');
      assertConfirmPage(await page(b.token), { token: b.token, email });
      assertEmailSession(await verifyJson({ token: b.token }, { jar: b.jar, origin: srv.url }), email, 'cookie');
      // The refused request sent nothing: only the one mail of the accepted request.
      await quietWindow();
      assert.equal(mailbox.countFor(email), 1, `mails to ${email}: ${mailbox.mailsFor(email).map(describeMail).join(' ')}`);
    });
  });

  describe('the code', () => {
    it('token mode: {email, code, attempt} gives the session; the link of that attempt is then dead', async () => {
      const { email } = await newUser('code-token');
      const t = await tokenLink(email);
      assertAuthFailure(await enterCode({ email, code: t.code })); // no binding
      assertAuthFailure(await enterCode({ email, code: t.code, attempt: randomSecret() }));
      assertAuthFailure(await enterCode({ email: fresh('someone-else'), code: t.code, attempt: t.attempt }));
      const res = await enterCode({ email, code: t.code, attempt: t.attempt });
      const body = assertEmailSession(res, email, 'token');
      const r = await refreshToken(srv, body.refresh_token);
      assertStatus(r, 200);
      assertAuthFailure(await enterCode({ email, code: t.code, attempt: t.attempt })); // single use
      assertAuthFailure(await verifyJson({ token: t.token, attempt: t.attempt }));
      assertSecurePage(await page(t.token), 404);
    });

    it('cookie mode: {email, code} with the link cookie gives the session cookies', async () => {
      const { email } = await newUser('code-cookie');
      const b = await browserLink(email);
      const res = await enterCode({ email, code: b.code }, { jar: b.jar, origin: srv.url });
      assertEmailSession(res, email, 'cookie');
      const me = await request(srv, 'GET', '/v1/me', { jar: b.jar.only(ACCESS_COOKIE) });
      assertStatus(me, 200);
      assert.equal(me.body.user.email, email);
    });

    it('5 wrong codes end the attempt: then the right code and the link are refused (401) and the page is 404', async () => {
      const { email } = await newUser('code-lock');
      const t = await tokenLink(email);
      for (let i = 1; i <= 5; i++) {
        const wrong = String((Number(t.code) + i) % 1_000_000).padStart(6, '0');
        const res = await enterCode({ email, code: wrong, attempt: t.attempt });
        assertAuthFailure(res);
        assertNoSession(res);
      }
      assertAuthFailure(await enterCode({ email, code: t.code, attempt: t.attempt }));
      assertAuthFailure(await verifyJson({ token: t.token, attempt: t.attempt }));
      assertSecurePage(await page(t.token), 404);
    });

    it('4 wrong codes do not end the attempt: the right code still works', async () => {
      const { email } = await newUser('code-four');
      const t = await tokenLink(email);
      for (let i = 1; i <= 4; i++) {
        const wrong = String((Number(t.code) + i) % 1_000_000).padStart(6, '0');
        assertAuthFailure(await enterCode({ email, code: wrong, attempt: t.attempt }));
      }
      assertEmailSession(await enterCode({ email, code: t.code, attempt: t.attempt }), email, 'token');
    });
  });

  describe('redirect_to', () => {
    it('anything but the allow-listed prefix is 400 field redirect_to, and sends no mail', async () => {
      const { email } = await newUser('redirects');
      const refused = [
        'https://evil.example',
        '//evil.example',
        '/\\evil.example',
        'https://app.example.evil.example/dash',
        'javascript:alert(1)',
        'https://app.example/dashboard',
        'http://app.example/dash',
        'https://app.example:8443/dash',
        'https://app.example@evil.example/dash',
        '/dash',
        'https://app.example/dash/../admin',
      ];
      for (const redirect_to of refused) {
        for (const session of ['cookie', 'token']) {
          const res = await ask({ email, redirect_to, session }, { jar: new CookieJar(), origin: srv.url });
          assertError(res, 400, 'invalid_request', 'redirect_to');
          assert.deepEqual(cookiesNamed(res, LINK_COOKIE), [], `a refused request must not set the link cookie (${redirect_to})`);
        }
      }
      await quietWindow();
      assert.equal(mailbox.countFor(email), 0, `refused redirect_to values sent mail: ${mailbox.mailsFor(email).map(describeMail).join(' ')}`);

      // The allowed prefix itself, and a path below it on a segment boundary, are accepted.
      for (const ok of [ALLOWED_REDIRECT, `${ALLOWED_REDIRECT}/deep/page`]) {
        const res = await ask({ email, redirect_to: ok }, { jar: new CookieJar(), origin: srv.url });
        assertStatus(res, 202);
      }
      await mailbox.waitForCount(email, 2);
    });
  });

  describe('no account enumeration', () => {
    it('an unknown address gets the same answer (status, body, cookie attributes) and no mail; so does a disabled user', async () => {
      const { email: known } = await newUser('enum-known');
      const unknown = fresh('enum-unknown');
      const { email: disabled, user: disabledUser } = await newUser('enum-disabled');
      assertStatus(await request(srv, 'POST', `/v1/users/${disabledUser.id}/disable`, { bearer: boot.key, json: {} }), 200);

      const answers = {};
      for (const [what, email] of [['known', known], ['unknown', unknown], ['disabled', disabled]]) {
        const res = await ask({ email }, { jar: new CookieJar(), origin: srv.url });
        assertStatus(res, 202);
        const tok = await ask({ email, session: 'token' });
        assertStatus(tok, 202);
        answers[what] = { res, cookie: assertLinkCookie(res), tok };
      }
      const k = answers.known;
      for (const what of ['unknown', 'disabled']) {
        const a = answers[what];
        assert.deepEqual(a.res.body, k.res.body, `${what}: body differs from a known address`);
        assert.equal(a.res.setCookies.length, k.res.setCookies.length, `${what}: number of cookies differs`);
        assert.deepEqual(cookieShape(a.cookie), cookieShape(k.cookie), `${what}: link cookie attributes differ`);
        assert.notEqual(a.cookie.value, k.cookie.value);
        for (const h of ['content-type', 'cache-control']) {
          assert.equal(a.res.headers.get(h), k.res.headers.get(h), `${what}: ${h} differs`);
          assert.equal(a.tok.headers.get(h), k.tok.headers.get(h), `${what}: token mode ${h} differs`);
        }
        assert.deepEqual(Object.keys(a.tok.body).sort(), Object.keys(k.tok.body).sort(), `${what}: token-mode body keys differ`);
        assert.equal(a.tok.body.status, 'sent');
        assert.match(String(a.tok.body.attempt), SECRET_RE, `${what}: token-mode attempt shape`);
        assert.deepEqual(a.tok.setCookies, []);
      }
      // The known address got its two mails; the others none, though delivery demonstrably works.
      await mailbox.waitForCount(known, 2);
      await quietWindow();
      assert.equal(mailbox.countFor(unknown), 0, `an unknown address got mail (sign-up is off): ${mailbox.mailsFor(unknown).map(describeMail).join(' ')}`);
      assert.equal(mailbox.countFor(disabled), 0, `a disabled user got mail: ${mailbox.mailsFor(disabled).map(describeMail).join(' ')}`);
    });
  });

  describe('mail limit', () => {
    it('6 requests for one address: six identical 202 answers, exactly 5 mails', async () => {
      const { email } = await newUser('throttle');
      const answers = [];
      for (let i = 0; i < 6; i++) {
        const res = await ask({ email }, { jar: new CookieJar(), origin: srv.url });
        assertStatus(res, 202);
        answers.push({ res, cookie: assertLinkCookie(res) });
      }
      for (const a of answers.slice(1)) {
        assert.deepEqual(a.res.body, answers[0].res.body);
        assert.deepEqual(cookieShape(a.cookie), cookieShape(answers[0].cookie), 'a throttled answer must look like the others');
      }
      await mailbox.waitForCount(email, 5);
      await quietWindow();
      assert.equal(mailbox.countFor(email), 5, `mails to ${email}: ${mailbox.countFor(email)}`);
      // A throttled token-mode request also answers alike.
      const tok = await ask({ email, session: 'token' });
      assertStatus(tok, 202);
      assert.deepEqual(Object.keys(tok.body).sort(), ['attempt', 'status']);
    });
  });

  describe('two links from one browser', () => {
    it('the browser keeps one binding; the first link still works after the second was requested, and so does the second', async () => {
      const { email } = await newUser('two-links');
      const first = await browserLink(email);
      const second = await browserLink(email, {}, first.jar);
      for (const c of cookiesNamed(second.res, LINK_COOKIE)) {
        assert.equal(c.value, first.binding, `the second request must reuse the browser's binding: ${c.raw}`);
      }
      assert.equal(first.jar.get(LINK_COOKIE), first.binding);
      assert.notEqual(first.token, second.token);
      const sameBrowser = first.jar.clone(); // the same browser, for the second link

      assertEmailSession(await verifyJson({ token: first.token }, { jar: first.jar, origin: srv.url }), email, 'cookie');
      assertEmailSession(await verifyJson({ token: second.token }, { jar: sameBrowser, origin: srv.url }), email, 'cookie');
    });

    it('with two live attempts in one browser, the code of the newer mail works, and then that of the older one', async () => {
      const { email } = await newUser('two-codes');
      const first = await browserLink(email);
      const second = await browserLink(email, {}, first.jar);
      assert.equal(second.binding, first.binding);
      const tab2 = first.jar.clone();
      assertEmailSession(await enterCode({ email, code: second.code }, { jar: first.jar, origin: srv.url }), email, 'cookie');
      if (first.code !== second.code) {
        assertEmailSession(await enterCode({ email, code: first.code }, { jar: tab2, origin: srv.url }), email, 'cookie');
      }
    });
  });

  describe('bad input', () => {
    it('missing or malformed email: 400 field email; no mail', async () => {
      assertError(await ask({}), 400, 'invalid_request', 'email');
      assertError(await ask({ email: 'not-an-email' }), 400, 'invalid_request', 'email');
      assertError(await ask({ email: 42 }), 400, 'invalid_request', 'email');
    });

    it('wrong content type: 415', async () => {
      const { email } = await newUser('content-type');
      const json = JSON.stringify({ email });
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
        const res = await request(srv, 'POST', '/v1/auth/magic-link', { body: json, contentType });
        assertError(res, 415, 'unsupported_media_type');
      }
    });

    it('session must be "cookie" or "token": 400 field session', async () => {
      const { email } = await newUser('bad-session');
      assertError(await ask({ email, session: 'bogus' }), 400, 'invalid_request', 'session');
      assertError(await ask({ email, session: 1 }), 400, 'invalid_request', 'session');
    });

    it('malformed JSON: 400 invalid_request', async () => {
      const res = await request(srv, 'POST', '/v1/auth/magic-link', { body: '{"email":', contentType: 'application/json' });
      assertError(res, 400, 'invalid_request');
    });
  });

  it('the mail API never refused the worker (it always sent the Bearer key and JSON)', () => {
    assert.ok(mailbox.mails.length > 0);
    assert.deepEqual(
      mailbox.rejected.map((r) => `${r.status} ${r.method} ${r.url} auth=${r.headers.authorization ? 'set' : 'none'} ct=${r.headers['content-type']}`),
      [],
    );
    for (const m of mailbox.mails) assert.equal(m.headers.authorization, `Bearer ${MAIL_KEY}`);
  });
});
