// edgeauth login pages: the one script of every page (the CSP forbids inline script), picked by
// <body data-page>. Served from /assets/app.js; built into the worker by src/pages.rs.
// Rules: data from the server reaches the DOM through textContent only, never parsed as HTML;
// buttons are disabled while a request is in flight; every error goes to #error (role="alert").
'use strict';

const $ = (id) => document.getElementById(id);
const GENERIC = 'Something went wrong. Please try again.';
const TOO_MANY = 'Too many attempts, try again later.';

function showError(message) {
  $('error').textContent = message || '';
}

function go(url) {
  location.assign(url);
  return true;
}

// Same-origin request with an optional JSON body. A network failure becomes status 0, so callers
// handle one shape.
async function call(method, path, body) {
  const init = { method, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers = { 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  try {
    return await fetch(path, init);
  } catch (_) {
    return { status: 0, ok: false, json: async () => ({}) };
  }
}

// The `message` of an error body {"error":{"code","message"}}, if there is one.
async function messageOf(res) {
  try {
    const data = await res.json();
    return (data && data.error && data.error.message) || null;
  } catch (_) {
    return null;
  }
}

// The message for a failure without a page-specific wording: 400s say what is wrong with the input.
async function failure(res) {
  if (res.status === 429) return TOO_MANY;
  return (res.status === 400 && (await messageOf(res))) || GENERIC;
}

function setBusy(scope, busy) {
  scope.querySelectorAll('button').forEach((b) => { b.disabled = busy; });
}

// Runs `work` with the buttons of `scope` disabled. `work` returns true when it navigates away, and
// then the buttons stay disabled so a second click cannot send the request again.
async function whileBusy(scope, work) {
  showError('');
  setBusy(scope, true);
  let leaving = false;
  try {
    leaving = await work();
  } catch (_) {
    showError(GENERIC);
  }
  if (!leaving) setBusy(scope, false);
}

function onSubmit(formId, work) {
  const form = $(formId);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    whileBusy(form, work);
  });
}

function codeUrl(email, extra) {
  return '/login/code?email=' + encodeURIComponent(email) + (extra || '');
}

function signIn() {
  // Set by the server only for an allowed redirect_to; checked again so that nothing but an http(s)
  // URL (never javascript:) can be navigated to.
  const target = document.body.dataset.redirectTo || '';
  const redirectTo = /^https?:\/\//i.test(target) ? target : '';

  onSubmit('password-form', async () => {
    const res = await call('POST', '/v1/auth/login', {
      email: $('email').value.trim(),
      password: $('password').value, // passwords are compared exactly as typed: no trim
    });
    if (res.status === 200) return go(redirectTo || '/account');
    showError(res.status === 401 ? 'Wrong email or password.' : await failure(res));
  });

  onSubmit('link-form', async () => {
    const email = $('link-email').value.trim();
    const body = { email };
    if (redirectTo) body.redirect_to = redirectTo;
    const res = await call('POST', '/v1/auth/magic-link', body);
    if (res.status === 202) return go(codeUrl(email));
    showError(await failure(res));
  });
}

function signUp() {
  onSubmit('signup-form', async () => {
    const email = $('signup-email').value.trim();
    const body = { email, password: $('signup-password').value };
    const name = $('signup-name').value.trim();
    if (name) body.name = name;
    const res = await call('POST', '/v1/auth/register', body);
    if (res.status === 202) return go(codeUrl(email, '&purpose=verify'));
    showError(await failure(res));
  });
}

function codePage() {
  const params = new URLSearchParams(location.search);
  const email = $('code-email');
  if (!email.value) email.value = params.get('email') || '';
  if (params.get('purpose') === 'verify') {
    $('code-intro').textContent = 'We sent a link and a 6-digit code to confirm your address. ' +
      'Open the link in this browser, or enter the code here.';
  }
  if (email.value) $('code').focus();

  onSubmit('code-form', async () => {
    const res = await call('POST', '/v1/auth/magic-link/code', {
      email: email.value.trim(),
      code: $('code').value.replace(/\s+/g, ''),
    });
    if (res.status === 200) return go('/account');
    showError(res.status === 401
      ? 'That code is not right, or it has expired. After 5 wrong codes, request a new link.'
      : await failure(res));
  });
}

// One refresh at a time: refresh tokens rotate, so two parallel refreshes with the same token would
// look like reuse to the server.
let refreshing = null;
function refresh() {
  if (!refreshing) {
    refreshing = call('POST', '/v1/auth/refresh')
      .then((res) => res.ok)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

// A request as the signed-in user. The access cookie is short-lived, so a 401 gets one refresh and
// one retry; still 401 means no session: go to /login (and return null).
async function authed(method, path) {
  let res = await call(method, path);
  if (res.status === 401 && (await refresh())) res = await call(method, path);
  if (res.status === 401) {
    go('/login');
    return null;
  }
  return res;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function when(iso) {
  const date = new Date(iso);
  return isNaN(date) ? String(iso || '') : date.toLocaleString();
}

function account() {
  const main = document.querySelector('main');

  function sessionItem(s) {
    const li = el('li');
    li.dataset.sessionId = s.id;
    const label = s.device_label || s.user_agent || 'Unknown device';
    li.append(el('strong', label, 'device'));
    if (s.current) li.append(' ', el('span', 'this device', 'badge'));
    const details = [
      s.ip ? 'IP ' + s.ip : '',
      'signed in ' + when(s.created_at),
      'last active ' + when(s.last_active_at),
    ];
    li.append(el('div', details.filter(Boolean).join(' · '), 'meta'));
    const revoke = el('button', 'Revoke', 'revoke');
    revoke.type = 'button';
    revoke.setAttribute('aria-label', 'Revoke session: ' + label);
    revoke.addEventListener('click', () => whileBusy(main, async () => {
      const res = await authed('DELETE', '/v1/auth/sessions/' + encodeURIComponent(s.id));
      if (!res) return true;
      if (!res.ok) return showError(GENERIC);
      // Revoking this browser's own session signs it out.
      if (s.current) return go('/login');
      return loadSessions();
    }));
    li.append(revoke);
    return li;
  }

  // Returns true when it navigated away (to /login).
  async function loadSessions() {
    const res = await authed('GET', '/v1/auth/sessions');
    if (!res) return true;
    if (!res.ok) return showError(GENERIC);
    const data = await res.json();
    $('sessions').replaceChildren(...(data.sessions || []).map(sessionItem));
    return false;
  }

  async function load() {
    const me = await authed('GET', '/v1/me');
    if (!me) return true;
    if (!me.ok) return showError(GENERIC);
    const data = await me.json();
    $('account-email').textContent = (data.user && data.user.email) || '';
    // After /v1/me, not in parallel: both could need the one refresh.
    if (await loadSessions()) return true;
    $('loading').hidden = true;
    $('account').hidden = false;
    return false;
  }

  function signOut(path) {
    return () => whileBusy(main, async () => {
      const res = await authed('POST', path);
      if (!res) return true;
      if (!res.ok) return showError(GENERIC);
      return go('/login');
    });
  }

  $('logout').addEventListener('click', signOut('/v1/auth/logout'));
  $('logout-all').addEventListener('click', signOut('/v1/auth/logout-all'));
  whileBusy(main, load);
}

// The confirm form posts natively (the 303 sets the cookies); only stop a double submit, which
// would consume the link with the first request and show the refusal page for the second.
function linkPage() {
  const form = $('link-confirm');
  if (form) form.addEventListener('submit', () => { $('link-confirm-submit').disabled = true; });
}

const pages = { 'sign-in': signIn, 'sign-up': signUp, code: codePage, account, link: linkPage };
const start = pages[document.body.dataset.page];
if (start) start();
