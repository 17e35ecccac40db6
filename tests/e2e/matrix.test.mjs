// The role x endpoint matrix: every route of the route table (read from the crate itself with
// `cargo run -q --example route_table`, so a new route is covered without touching this file)
// called by every kind of caller, each cell asserting the status class the declared credential and
// requirement imply:
//
//   anonymous on a route that needs a credential         -> 401 auth_failure (the one body)
//   an API key on a Session / SessionOrRefresh route      -> 403 forbidden
//   requirement not met                                   -> 403 forbidden
//   otherwise "passes"                                    -> neither 401 nor 403 (nor 5xx): 2xx,
//                                                            400 for the empty body, 404 for the
//                                                            absent target, 409 ...
//
// Requirements are checked before the handler, so destructive routes are called with a target that
// does not exist wherever the requirement allows it (admins then see 404, everyone else 403), or
// with an empty body that the handler refuses (400) before writing anything. The two routes that end
// the caller's own session (logout, logout-all) run last, logout with a spare session.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT, startServer } from './harness.mjs';
import {
  AUTH_FAILURE,
  absentId,
  assertStatus,
  bootstrap,
  createApiKey,
  createUser,
  createWorkspace,
  loginToken,
  request,
  show,
  verify,
} from './client.mjs';

const PASSWORD = 'matrix password 1234';

/** Routes that end the calling session (or all of its user's sessions). */
const endsSession = (route) => route.id === 'Logout' || route.id === 'LogoutAll' || /\/logout/.test(route.pattern);

describe('role x endpoint matrix', () => {
  let srv;
  let routes; // the route table as the crate prints it
  let W; // the bootstrap workspace
  let X; // another workspace
  let adminId;
  const users = {}; // name -> user object
  const callers = []; // rows of the matrix
  const absent = {}; // param name -> an id that names nothing
  const cells = new Map(); // row label -> Map(caller name -> { status, ok })
  const failures = [];

  before(async () => {
    // The very table the service enforces. Built already by the time tests run (cargo caches).
    const out = execFileSync('cargo', ['run', '-q', '--example', 'route_table'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
      timeout: 15 * 60_000,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    routes = JSON.parse(out);
    assert.ok(Array.isArray(routes) && routes.length > 0, 'route table is empty');
    for (const r of routes) {
      for (const k of ['id', 'method', 'pattern', 'credential', 'requirement']) assert.ok(k in r, `route lacks ${k}: ${JSON.stringify(r)}`);
      assert.ok(
        ['None', 'Session', 'SessionOrRefresh', 'SessionOrApiKey', 'BodyTokenOrCaller'].includes(r.credential),
        `unknown credential kind ${r.credential} (teach matrix.test.mjs its rule): ${JSON.stringify(r)}`,
      );
      assert.ok(
        ['None', 'OrgAdmin', 'OrgAdminOrSelf', 'WorkspaceAdmin', 'WorkspaceMember'].includes(r.requirement),
        `unknown requirement ${r.requirement} (teach matrix.test.mjs its rule): ${JSON.stringify(r)}`,
      );
    }

    srv = await startServer({ name: 'matrix' });
    const boot = await bootstrap(srv);
    W = boot.workspace.id;
    adminId = boot.user.id;
    const admin = await loginToken(srv);
    X = (await createWorkspace(srv, admin.access, 'Matrix X')).id;

    const specs = [
      ['wsadmin', W, 'admin'],
      ['editor', W, 'editor'],
      ['viewer', W, 'viewer'],
      ['outsider', X, 'viewer'],
    ];
    for (const [name, workspace, role] of specs) {
      users[name] = await createUser(srv, admin.access, {
        email: `${name}@matrix.example`,
        name,
        password: PASSWORD,
        workspace,
        role,
      });
    }
    const viewerKey = await createApiKey(srv, admin.access, { name: 'matrix viewer key', role: 'viewer' });
    assert.equal(viewerKey.api_key.role, 'viewer');

    // Each person logs in twice (PBKDF2 is slow here, so only this): the main session for every
    // cell, a spare one for the logout cell (logout-all, the very last cell, ends both).
    const login = (email) => loginToken(srv, { email, password: email.startsWith('admin@') ? undefined : PASSWORD });
    const adminSpare = await login('admin@example.com');
    const sessions = {};
    for (const name of Object.keys(users)) {
      const email = `${name}@matrix.example`;
      sessions[name] = { main: await login(email), spare: await login(email) };
    }

    const nobody = { name: 'anon', label: 'anonymous' };
    callers.push(
      nobody,
      { name: 'adminS', label: 'org admin (session)', kind: 'session', userId: adminId, orgAdmin: true, roleW: 'admin', token: admin.access, spare: adminSpare.access },
      { name: 'adminK', label: 'org admin (bootstrap API key)', kind: 'key', userId: adminId, orgAdmin: true, roleW: 'admin', token: boot.key },
      { name: 'wsAdmin', label: 'admin of W', kind: 'session', userId: users.wsadmin.id, roleW: 'admin', ...tok(sessions.wsadmin) },
      { name: 'editor', label: 'editor of W', kind: 'session', userId: users.editor.id, roleW: 'editor', ...tok(sessions.editor) },
      { name: 'viewer', label: 'viewer of W', kind: 'session', userId: users.viewer.id, roleW: 'viewer', ...tok(sessions.viewer) },
      { name: 'outsider', label: 'viewer of X only', kind: 'session', userId: users.outsider.id, roleW: null, ...tok(sessions.outsider) },
      { name: 'viewerKey', label: 'API key, ceiling viewer (owner: org admin)', kind: 'key', userId: adminId, roleW: 'viewer', token: viewerKey.key },
    );

    // Fixture sanity: each credential is who the matrix thinks it is.
    for (const c of callers.filter((c) => c.kind)) {
      const me = await request(srv, 'GET', '/v1/me', { bearer: c.token });
      assertStatus(me, 200);
      assert.equal(me.body.user.id, c.userId, `${c.name}: /v1/me user`);
      if (c.kind === 'session') {
        const inW = me.body.memberships.find((m) => m.workspace_id === W);
        assert.equal(inW?.role ?? null, c.roleW, `${c.name}: role in W`);
        assert.equal(me.body.org_admin, Boolean(c.orgAdmin), `${c.name}: org_admin`);
      }
    }
  });

  function tok(s) {
    return { token: s.main.access, spare: s.spare.access };
  }

  after(async () => {
    if (routes && cells.size > 0) console.log(renderTable());
    if (srv) await srv.stop();
  });

  /** The expected outcome of one cell: 401, 403 or 'pass'. */
  function expected(route, caller, variant) {
    if (!caller.kind) return 401;
    if (caller.kind === 'key' && (route.credential === 'Session' || route.credential === 'SessionOrRefresh')) return 403;
    switch (route.requirement) {
      case 'None':
        return 'pass';
      case 'OrgAdmin':
        return caller.orgAdmin ? 'pass' : 403;
      case 'OrgAdminOrSelf':
        return caller.orgAdmin || variant === 'self' ? 'pass' : 403;
      case 'WorkspaceAdmin':
        return caller.orgAdmin || caller.roleW === 'admin' ? 'pass' : 403;
      case 'WorkspaceMember':
        return caller.orgAdmin || caller.roleW ? 'pass' : 403;
      default:
        throw new Error(`no rule for requirement ${route.requirement}`);
    }
  }

  function absentParam(name) {
    if (!(name in absent)) absent[name] = absentId();
    return absent[name];
  }

  /** Another real user than the caller's own (for the "other" column of OrgAdminOrSelf). */
  function otherUser(caller) {
    return caller.userId === users.editor.id ? users.viewer.id : users.editor.id;
  }

  function pathFor(route, caller, variant) {
    return route.pattern.replace(/\{(\w+)\}/g, (_, name) => {
      if (name === 'id' && route.requirement === 'OrgAdminOrSelf') {
        return variant === 'self' ? caller.userId ?? adminId : otherUser(caller);
      }
      if (name === 'id' && (route.requirement === 'WorkspaceAdmin' || route.requirement === 'WorkspaceMember')) return W;
      return absentParam(name); // a target that does not exist: a passing admin gets 404, not a change
    });
  }

  function bodyFor(route) {
    switch (route.id) {
      // A complete request, so the anonymous caller is refused for lack of a credential, not a body.
      case 'Authorize':
        return { capability: 'docs:read', workspace: W };
      case 'AuthorizeBatch':
        return { checks: [{ capability: 'docs:read', workspace: W }] };
      // Valid bodies aimed at absent targets (404) rather than refused bodies (400).
      case 'PutMember':
        return { role: 'viewer' };
      case 'PutRole':
        return { capabilities: ['docs:read'] };
      case 'UpdateWorkspace':
        return { name: 'matrix rename' };
      default:
        // Creation routes get an empty object: the handler refuses it (400) before writing.
        return ['POST', 'PUT', 'PATCH'].includes(route.method) ? {} : undefined;
    }
  }

  const variantsOf = (route) => (route.requirement === 'OrgAdminOrSelf' ? ['self', 'other'] : ['']);
  const rowLabel = (route, variant) => `${route.method} ${route.pattern}${variant ? ` [${variant}]` : ''}`;

  function record(label, caller, status, ok) {
    if (!cells.has(label)) cells.set(label, new Map());
    cells.get(label).set(caller.name, { status, ok });
  }

  /** Calls one cell and checks it; returns an error message or null. */
  async function runCell(route, caller, variant, token) {
    const path = pathFor(route, caller, variant);
    const res = await request(srv, route.method, path, { bearer: token, json: bodyFor(route) });
    const want = expected(route, caller, variant);
    let problem = null;
    if (want === 401) {
      if (res.status !== 401 || JSON.stringify(res.body) !== JSON.stringify(AUTH_FAILURE)) {
        problem = `expected 401 auth_failure`;
      }
    } else if (want === 403) {
      if (res.status !== 403 || res.body?.error?.code !== 'forbidden') problem = 'expected 403 forbidden';
    } else if (res.status === 401 || res.status === 403 || res.status >= 500) {
      problem = 'expected to pass (neither 401, 403 nor 5xx)';
    }
    record(rowLabel(route, variant), caller, res.status, !problem);
    if (problem) {
      const msg = `${caller.name} (${caller.label}): ${problem}; got ${show(res)}`;
      failures.push(`${rowLabel(route, variant)} :: ${msg}`);
      return msg;
    }
    return null;
  }

  it('reads a route table that covers the admin API', () => {
    const ids = new Set(routes.map((r) => r.id));
    for (const id of ['Me', 'CreateUser', 'GetUser', 'ListMembers', 'PutMember', 'CreateApiKey', 'Authorize', 'Audit']) {
      assert.ok(ids.has(id), `route table lacks ${id}`);
    }
    for (const r of routes) {
      const params = [...r.pattern.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      if (['OrgAdminOrSelf', 'WorkspaceAdmin', 'WorkspaceMember'].includes(r.requirement)) {
        assert.equal(params[0], 'id', `${r.id}: the requirement reads the first path parameter, which must be {id}`);
      }
    }
  });

  it('public routes (credential None) answer an anonymous caller without 403 or 5xx', async (t) => {
    const problems = [];
    for (const route of routes.filter((r) => r.credential === 'None')) {
      const path = route.pattern.replace(/\{(\w+)\}/g, (_, n) => absentParam(n));
      const json = route.method === 'GET' ? undefined : route.id === 'Verify' ? { token: 'not-a-token' } : {};
      const res = await request(srv, route.method, path, { json });
      let ok = res.status !== 403 && res.status < 500;
      // GET routes answer 200, except those whose subject is absent here: a link page without a
      // token, an asset that does not exist, the sign-up page while sign-up is closed (404 each).
      const absentSubject = { MagicLinkPage: 'no token', Asset: 'no such asset', SignUpPage: 'sign-up closed' };
      if (route.method === 'GET') ok = ok && res.status === (route.id in absentSubject ? 404 : 200);
      if (route.id === 'Verify') ok = ok && res.status === 200 && res.body?.active === false;
      record(rowLabel(route, ''), { name: 'anon' }, res.status, ok);
      if (!ok) problems.push(show(res));
    }
    t.diagnostic(`public routes checked anonymously: ${routes.filter((r) => r.credential === 'None').length}`);
    assert.deepEqual(problems, [], 'public routes misbehave');
  });

  it('every route with a credential x every caller', async (t) => {
    const guarded = routes.filter((r) => r.credential !== 'None');
    // Everything except the session-ending routes first; those last, logout before logout-all.
    const ordinary = guarded.filter((r) => !endsSession(r));
    const ending = guarded.filter(endsSession).sort((a, b) => Number(a.id === 'LogoutAll') - Number(b.id === 'LogoutAll'));

    for (const route of ordinary) {
      await t.test(`${route.method} ${route.pattern} (${route.credential}, ${route.requirement})`, async () => {
        const problems = [];
        for (const variant of variantsOf(route)) {
          for (const caller of callers) {
            const p = await runCell(route, caller, variant, caller.token);
            if (p) problems.push(p);
          }
        }
        assert.deepEqual(problems, [], `${route.method} ${route.pattern}`);
      });
    }

    // Session-ending routes: a person's spare session for the first one (logout), the main one for
    // the last (logout-all ends every session of the user, so nothing runs after it).
    for (const [i, route] of ending.entries()) {
      const last = i === ending.length - 1;
      await t.test(`${route.method} ${route.pattern} (${route.credential}, ${route.requirement}) [ends the session]`, async () => {
        const problems = [];
        for (const variant of variantsOf(route)) {
          for (const caller of callers) {
            const token = caller.kind === 'session' ? (last ? caller.token : caller.spare) : caller.token;
            const p = await runCell(route, caller, variant, token);
            if (p) problems.push(p);
            else if (caller.kind === 'session' && expected(route, caller, variant) === 'pass') {
              // It passed, so the session it named must be over now.
              const v = await verify(srv, token);
              if (v.active !== false) problems.push(`${caller.name}: ${route.method} ${route.pattern} passed but the token is still active`);
            }
          }
        }
        assert.deepEqual(problems, [], `${route.method} ${route.pattern}`);
      });
    }

    // Every guarded route was walked by every caller (a route is not silently skipped).
    for (const route of guarded) {
      for (const variant of variantsOf(route)) {
        const row = cells.get(rowLabel(route, variant));
        assert.ok(row, `no cells for ${rowLabel(route, variant)}`);
        for (const c of callers) assert.ok(row.has(c.name), `no cell ${rowLabel(route, variant)} x ${c.name}`);
      }
    }
    assert.ok(failures.length === 0, `matrix cells that contradict the rules:\n${failures.join('\n')}`);
  });

  function renderTable() {
    const names = callers.map((c) => c.name);
    const guardedRows = [];
    const publicRows = [];
    for (const route of routes) {
      for (const variant of variantsOf(route)) {
        const label = rowLabel(route, variant);
        if (!cells.has(label)) continue;
        (route.credential === 'None' ? publicRows : guardedRows).push([`${label}  ${route.credential}/${route.requirement}`, cells.get(label)]);
      }
    }
    const width = Math.max(...[...guardedRows, ...publicRows].map(([l]) => l.length), 10);
    const colW = Math.max(...names.map((n) => n.length)) + 1;
    const fmt = (status, ok) => `${status}${ok ? '' : '!'}`.padStart(colW);
    const lines = [];
    lines.push('role x endpoint matrix (status; "!" = contradicts the rule; "-" = not called)');
    lines.push(
      `callers: ${callers.map((c) => `${c.name} = ${c.label}`).join('; ')}`,
    );
    lines.push(`${''.padEnd(width)} ${names.map((n) => n.padStart(colW)).join('')}`);
    for (const [label, row] of [...guardedRows, ...publicRows]) {
      lines.push(
        `${label.padEnd(width)} ${names.map((n) => (row.has(n) ? fmt(row.get(n).status, row.get(n).ok) : '-'.padStart(colW))).join('')}`,
      );
    }
    return lines.join('\n');
  }
});
