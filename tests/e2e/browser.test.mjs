// Issue 4 acceptance in a real browser: Debian's Chromium driven by playwright-core against one
// edgeauth server under `wrangler dev`, with the mail captured by tests/e2e/mailbox.mjs.
//   a. password sign-in on /login lands on /account (user and sessions shown);
//   b/c. a magic link works only in the browser that asked for it: a fresh browser and a browser
//        holding another attempt's binding are refused (401 page) without using the link up, then
//        the asking browser confirms it and is signed in; afterwards the link is dead everywhere;
//   the 6-digit code typed into /login/code signs in too;
//   d. the account page revokes another session and signs out;
//   e. no page logs a Content-Security-Policy violation.
//
// Cookies are `__Host-` + Secure while the server speaks plain http on 127.0.0.1: Chromium treats
// http://127.0.0.1 (like http://localhost) as a secure context and stores and sends Secure cookies
// there, so the harness's own URL is used as is.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer } from './harness.mjs';
import { startMailbox, linkOf, codeOf, recipientsOf, describeMail } from './mailbox.mjs';
import { bootstrap, createUser, loginToken, request, assertStatus, show } from './client.mjs';

const CHROMIUM = process.env.EDGEAUTH_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const MAIL_API_KEY = 'browser-test-mail-key';
const USER_EMAIL = 'bruno@browser.example';
const USER_PASSWORD = 'a long browser test password';
const OTHER_EMAIL = 'olga@browser.example'; // only used to give a context a binding of its own
const STEP_MS = 15_000; // one page action / navigation / mail
const TEST_MS = 60_000;

const CSP_TEXT = /content[- ]security[- ]policy/i;

describe('browser: sign-in pages and magic links in Chromium', { timeout: 180_000 }, () => {
  let mailbox;
  let srv;
  let browser;
  let admin;
  const contexts = [];
  const cspViolations = []; // { where, text }
  const pageErrors = []; // uncaught exceptions in page scripts

  // A fresh browser context (own cookie jar) whose pages report CSP violations and script errors.
  async function newContext(label) {
    const ctx = await browser.newContext();
    ctx.setDefaultTimeout(STEP_MS);
    ctx.setDefaultNavigationTimeout(STEP_MS);
    // The securitypolicyviolation event, reported through a binding (init scripts and bindings are
    // injected by the driver, so the page's CSP does not stop them).
    await ctx.exposeBinding('__edgeauthCsp', ({ page }, v) => {
      cspViolations.push({ where: `${label} ${page.url()}`, text: `event: ${JSON.stringify(v)}` });
    });
    await ctx.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        globalThis.__edgeauthCsp({
          directive: e.violatedDirective,
          blocked: e.blockedURI,
          source: e.sourceFile,
          line: e.lineNumber,
        });
      });
    });
    ctx.on('page', (page) => watchPage(page, label));
    contexts.push(ctx);
    return ctx;
  }

  function watchPage(page, label) {
    page.on('console', (msg) => {
      if (CSP_TEXT.test(msg.text())) cspViolations.push({ where: `${label} ${page.url()}`, text: `console.${msg.type()}: ${msg.text()}` });
    });
    page.on('pageerror', (err) => pageErrors.push({ where: `${label} ${page.url()}`, text: String(err?.stack ?? err) }));
  }

  async function newPage(label) {
    const ctx = await newContext(label);
    const page = await ctx.newPage();
    return { ctx, page };
  }

  // Mark the mails captured so far; mailAfter(mark, ...) then waits for a newer one.
  const mark = () => new Set(mailbox.mails.map((m) => m.id));
  // The first mail to `to` with `subject` that was not yet there at `seen` (mail leaves via waitUntil).
  function mailAfter(seen, to, subject) {
    return mailbox.waitFor((m) => !seen.has(m.id) && recipientsOf(m).includes(to) && m.body.subject === subject, STEP_MS);
  }

  const url = (path) => `${srv.url}${path}`;

  async function expectSignedIn(page, email) {
    await page.waitForURL((u) => u.pathname === '/account');
    await page.locator('#account-email').filter({ hasText: email }).waitFor();
    assert.equal((await page.locator('#account-email').textContent()).trim(), email);
    await page.locator('#sessions li').first().waitFor();
  }

  // Ask for a sign-in link on /login; returns once the page went on to /login/code.
  async function requestLinkFromLoginPage(page, email) {
    const res = await page.goto(url('/login'));
    assert.equal(res.status(), 200, 'GET /login');
    await page.fill('#link-email', email);
    await page.click('#link-submit');
    await page.waitForURL((u) => u.pathname === '/login/code');
    assert.equal(new URL(page.url()).searchParams.get('email'), email, `code page URL: ${page.url()}`);
  }

  before(async () => {
    mailbox = await startMailbox({ apiKey: MAIL_API_KEY });
    srv = await startServer({
      name: 'browser',
      vars: {
        MAIL_ENDPOINT: mailbox.url,
        MAIL_API_KEY,
        MAIL_FROM: 'edgeauth <login@browser.example>',
      },
    });
    const boot = await bootstrap(srv);
    admin = await loginToken(srv);
    assert.ok(boot.user.id);
    await createUser(srv, admin.access, { email: USER_EMAIL, name: 'Bruno Browser', password: USER_PASSWORD });
    await createUser(srv, admin.access, { email: OTHER_EMAIL, name: 'Olga Other', password: USER_PASSWORD });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    for (const ctx of contexts) await ctx.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.stop();
    if (mailbox) await mailbox.stop();
  });

  let pageA; // signed in with the password (a), later uses the account page (d)

  it('a. password sign-in on /login lands on /account with the user and its sessions', { timeout: TEST_MS }, async () => {
    const { page } = await newPage('A');
    pageA = page;
    const res = await page.goto(url('/login'));
    assert.equal(res.status(), 200, 'GET /login');
    await page.fill('#email', USER_EMAIL);
    await page.fill('#password', USER_PASSWORD);
    await page.click('#password-submit');
    await expectSignedIn(page, USER_EMAIL);
    assert.ok((await page.locator('#sessions li').count()) >= 1, 'at least one session listed');
    const names = (await page.context().cookies(srv.url)).map((c) => c.name).sort();
    assert.ok(names.includes('__Host-edgeauth-access') && names.includes('__Host-edgeauth-refresh'), `cookies in A: ${names}`);
  });

  it('b/c. a magic link is refused in other browsers without being used up, then works in the browser that asked', { timeout: TEST_MS }, async () => {
    const seen = mark();
    // B asks for a link on the sign-in page.
    const { ctx: ctxB, page: pageB } = await newPage('B');
    await requestLinkFromLoginPage(pageB, USER_EMAIL);
    const bCookies = await ctxB.cookies(srv.url);
    assert.ok(bCookies.some((c) => c.name === '__Host-edgeauth-link'), `B holds no link binding cookie: ${bCookies.map((c) => c.name)}`);

    const mail = await mailAfter(seen, USER_EMAIL, 'Your sign-in link');
    const link = linkOf(mail);
    assert.ok(link, `no link in the mail ${describeMail(mail)}: ${mail.body.text}`);
    assert.ok(link.startsWith(`${srv.url}/v1/auth/magic-link/verify?token=`), `link: ${link}`);

    // C: a fresh browser (no binding at all) opens the link and confirms: refused with 401.
    const { page: pageC } = await newPage('C');
    await expectRefused(pageC, link, 'C (no binding)');

    // C2: a browser holding a binding of its own (it asked for a link for another address) is
    // refused as well: the binding must be the one of this link's attempt, not just any.
    const { ctx: ctxC2, page: pageC2 } = await newPage('C2');
    await requestLinkFromLoginPage(pageC2, OTHER_EMAIL);
    const c2Binding = (await ctxC2.cookies(srv.url)).find((c) => c.name === '__Host-edgeauth-link');
    assert.ok(c2Binding, 'C2 holds a link binding cookie');
    const bBinding = bCookies.find((c) => c.name === '__Host-edgeauth-link');
    assert.notEqual(c2Binding.value, bBinding.value, 'two browsers got the same binding');
    await expectRefused(pageC2, link, 'C2 (another binding)');

    // B opens the same link (still live: the refusals did not consume it) and confirms.
    const confirm = await pageB.goto(link);
    assert.equal(confirm.status(), 200, 'B: GET link after the refusals (token must still be live)');
    await expectConfirmPage(pageB);
    const [post] = await Promise.all([
      pageB.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/auth/magic-link/verify'),
      pageB.click('#link-confirm-submit'),
    ]);
    assert.equal(post.status(), 303, `B: POST verify (expected 303 to /account) -> ${await describePost(post)}`);
    await expectSignedIn(pageB, USER_EMAIL);
    const after = (await ctxB.cookies(srv.url)).map((c) => c.name);
    assert.ok(after.includes('__Host-edgeauth-access'), `B has no access cookie after confirming: ${after}`);
    assert.ok(!after.includes('__Host-edgeauth-link'), `B still holds the link binding after success: ${after}`);

    // The link is used up now, in every browser.
    for (const [who, page] of [['B', pageB], ['C', pageC]]) {
      const dead = await page.goto(link);
      assert.equal(dead.status(), 404, `${who}: GET used link`);
      assert.match(await page.locator('body').innerText(), /invalid|expired/i, `${who}: used-link page text`);
      assert.equal(await page.locator('#link-confirm-submit').count(), 0, `${who}: used-link page offers a confirm button`);
    }
  });

  // GET the link (the confirm page), click confirm, and expect the 401 "not in this browser" page.
  async function expectRefused(page, link, who) {
    const res = await page.goto(link);
    assert.equal(res.status(), 200, `${who}: GET link (confirm page)`);
    await expectConfirmPage(page);
    const [post] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/auth/magic-link/verify'),
      page.click('#link-confirm-submit'),
    ]);
    assert.equal(post.status(), 401, `${who}: POST verify (expected the 401 refusal page) -> ${await describePost(post)}`);
    // The refusal is the answer of the POST itself (no query string), not a redirect elsewhere.
    await page.waitForURL((u) => u.pathname === '/v1/auth/magic-link/verify' && u.search === '');
    await page.waitForLoadState('domcontentloaded');
    const text = await page.locator('body').innerText();
    assert.match(text, /browser/i, `${who}: refusal page should say the link cannot be used in this browser: ${text}`);
    const names = (await page.context().cookies(srv.url)).map((c) => c.name);
    assert.ok(!names.includes('__Host-edgeauth-access'), `${who}: signed in despite the refusal: ${names}`);
  }

  // The confirm POST's answer, with what the browser sent, for assertion messages.
  async function describePost(post) {
    const origin = (await post.request().allHeaders()).origin ?? '(none)';
    const body = await post.text().catch(() => '(no body)');
    return `${post.status()} (request Origin: ${origin}; body: ${body.replace(/\s+/g, ' ').slice(0, 200)})`;
  }

  async function expectConfirmPage(page) {
    const text = await page.locator('body').innerText();
    assert.match(text, /sign in as/i, `confirm page text: ${text}`);
    assert.ok(text.includes(USER_EMAIL), `confirm page should name ${USER_EMAIL}: ${text}`);
    assert.equal(await page.locator('#link-confirm-submit').count(), 1, 'confirm page has #link-confirm-submit');
  }

  it('the 6-digit code from the mail, typed into /login/code, signs in', { timeout: TEST_MS }, async () => {
    const seen = mark();
    const { page } = await newPage('D');
    await requestLinkFromLoginPage(page, USER_EMAIL);
    const mail = await mailAfter(seen, USER_EMAIL, 'Your sign-in link');
    const code = codeOf(mail);
    assert.match(String(code), /^\d{6}$/, `no code in the mail ${describeMail(mail)}: ${mail.body.text}`);
    const field = page.locator('#code');
    await field.fill(String(code));
    await page.click('#code-submit');
    await expectSignedIn(page, USER_EMAIL);
  });

  it('d. the account page revokes another session, and Sign out ends the session', { timeout: TEST_MS }, async () => {
    assert.ok(pageA, 'needs the password session of test a');
    // Another session of the same user (an API login) to revoke from A's account page.
    const victim = await request(srv, 'POST', '/v1/auth/login', {
      json: { email: USER_EMAIL, password: USER_PASSWORD, session: 'token' },
      headers: { 'user-agent': 'EdgeauthRevokeMe/1.0' },
    });
    assertStatus(victim, 200);
    const victimId = victim.body.session_id;

    await pageA.goto(url('/account'));
    await expectSignedIn(pageA, USER_EMAIL);
    const items = pageA.locator('#sessions li');
    const target = pageA.locator(`#sessions li[data-session-id="${victimId}"]`);
    await target.waitFor();
    const before = await items.count();
    assert.ok(before >= 2, `A's own session and the one to revoke are listed: ${await items.allInnerTexts()}`);

    const [del] = await Promise.all([
      pageA.waitForResponse((r) => r.request().method() === 'DELETE' && new URL(r.url()).pathname === `/v1/auth/sessions/${victimId}`),
      target.getByRole('button', { name: /revoke/i }).click(),
    ]);
    assert.equal(del.status(), 204, `DELETE /v1/auth/sessions/${victimId}`);
    await target.waitFor({ state: 'detached' });
    assert.equal(await items.count(), before - 1, 'one session fewer in the list');
    // Gone for real: the server no longer lists it, and its refresh token is dead.
    const list = await request(srv, 'GET', '/v1/auth/sessions', { bearer: (await loginToken(srv, { email: USER_EMAIL, password: USER_PASSWORD })).access });
    assertStatus(list, 200);
    assert.ok(!list.body.sessions.some((s) => s.id === victimId), show(list));
    const refreshed = await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: victim.body.refresh_token } });
    assert.equal(refreshed.status, 401, show(refreshed));
    // After a reload the list still lacks it.
    await pageA.reload();
    await expectSignedIn(pageA, USER_EMAIL);
    assert.equal(await target.count(), 0, 'revoked session listed again after reload');

    // Sign out: back on /login, cookies gone, and /account sends us to /login again.
    await pageA.getByRole('button', { name: 'Sign out', exact: true }).click();
    await pageA.waitForURL((u) => u.pathname === '/login');
    const names = (await pageA.context().cookies(srv.url)).map((c) => c.name);
    assert.ok(!names.includes('__Host-edgeauth-access') && !names.includes('__Host-edgeauth-refresh'), `cookies after sign out: ${names}`);
    await pageA.goto(url('/account'));
    await pageA.waitForURL((u) => u.pathname === '/login');
    assert.equal(await pageA.locator('#account-email').count(), 0, 'no account shown after sign out');
  });

  it('e. no page logged a Content-Security-Policy violation or a script error', async () => {
    assert.ok(contexts.length >= 4, 'the tests above opened pages');
    assert.deepEqual(cspViolations, [], `CSP violations:\n${cspViolations.map((v) => `${v.where}: ${v.text}`).join('\n')}`);
    assert.deepEqual(pageErrors, [], `page errors:\n${pageErrors.map((v) => `${v.where}: ${v.text}`).join('\n')}`);
  });

  it('e (control). the CSP watcher does see a violation when one happens', async () => {
    // A page with its own CSP and an inline script: proves the listeners above would notice.
    const before = cspViolations.length;
    const { page } = await newPage('control');
    await page.goto(
      'data:text/html,' +
        encodeURIComponent(
          `<meta http-equiv="Content-Security-Policy" content="script-src 'none'"><script>document.title='ran'</script><p>x</p>`,
        ),
    );
    await new Promise((r) => setTimeout(r, 300)); // let the reports arrive
    assert.notEqual(await page.title(), 'ran', 'the inline script ran despite the CSP');
    const seen = cspViolations.splice(before);
    assert.ok(seen.some((v) => v.text.startsWith('console.')), `no console CSP report seen: ${JSON.stringify(seen)}`);
    assert.ok(seen.some((v) => v.text.startsWith('event:')), `no securitypolicyviolation event seen: ${JSON.stringify(seen)}`);
  });
});
