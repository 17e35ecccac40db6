#!/usr/bin/env node
// Latency of the hot endpoints under local `wrangler dev`: login (token mode), refresh (chaining
// the rotated token), verify (access token and API key), authorize, and magic-link requests for
// known and unknown addresses (which must answer alike). Starts its own server
// through the e2e harness, bootstraps it, runs N sequential requests per endpoint and prints
// median / p90 / min in milliseconds.
//
//   node scripts/latency.mjs            # N = 40
//   N=100 node scripts/latency.mjs
//
// Local workerd timings vary between sessions: compare numbers from one run, and repeat.
import { nextClientIp } from '../tests/e2e/client.mjs';
import { startServer } from '../tests/e2e/harness.mjs';

const N = Number(process.env.N ?? 40);
const EMAIL = 'latency@example.com';
const PASSWORD = 'latency password 1234';

async function post(url, body, bearer) {
  const t0 = performance.now();
  // A fresh client address per request, so the per-IP limits (60 sign-ins a minute) never answer.
  const headers = { 'content-type': 'application/json', 'cf-connecting-ip': nextClientIp() };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    redirect: 'manual',
  });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (!res.ok) throw new Error(`POST ${new URL(url).pathname} -> ${res.status} ${text.slice(0, 300)}`);
  return { ms, body: text ? JSON.parse(text) : undefined };
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
  const median = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median, p90: at(0.9), min: s[0], max: s[s.length - 1] };
}

function table(rows) {
  const head = ['endpoint', 'n', 'median ms', 'p90 ms', 'min ms', 'max ms'];
  const lines = rows.map(([name, samples]) => {
    const st = stats(samples);
    return [name, String(samples.length), st.median.toFixed(1), st.p90.toFixed(1), st.min.toFixed(1), st.max.toFixed(1)];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(head), widths.map((w) => '-'.repeat(w)).join('  '), ...lines.map(fmt)].join('\n');
}

async function main() {
  const srv = await startServer();
  try {
    const base = srv.url;
    const boot = await fetch(`${base}/v1/bootstrap`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: srv.bootstrapToken, email: EMAIL, password: PASSWORD, name: 'Latency' }),
    });
    if (boot.status !== 201) throw new Error(`bootstrap -> ${boot.status} ${await boot.text()}`);
    const { key: apiKey, workspace } = await boot.json();

    // One warm-up of each, not counted.
    let { body: session } = await post(`${base}/v1/auth/login`, { email: EMAIL, password: PASSWORD, session: 'token' });
    await post(`${base}/v1/verify`, { token: session.access_token });

    const login = [];
    for (let i = 0; i < N; i++) {
      const r = await post(`${base}/v1/auth/login`, { email: EMAIL, password: PASSWORD, session: 'token' });
      login.push(r.ms);
      session = r.body;
      // Keep the user under the session cap: drop each measured session right away (not timed).
      if (i < N - 1) {
        await fetch(`${base}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${session.access_token}` } }).then((x) => x.arrayBuffer());
      }
    }

    const refresh = [];
    let refreshTok = session.refresh_token;
    let access = session.access_token;
    for (let i = 0; i < N; i++) {
      const r = await post(`${base}/v1/auth/refresh`, { refresh_token: refreshTok });
      if (r.body.refresh_token === refreshTok) throw new Error('refresh token did not rotate');
      refreshTok = r.body.refresh_token;
      access = r.body.access_token;
      refresh.push(r.ms);
    }

    const verify = [];
    for (let i = 0; i < N; i++) {
      const r = await post(`${base}/v1/verify`, { token: access });
      if (r.body.active !== true) throw new Error(`verify: ${JSON.stringify(r.body)}`);
      verify.push(r.ms);
    }

    // An API key at /v1/verify (D1 lookup + KV flag), the bootstrap org-admin key.
    await post(`${base}/v1/verify`, { token: apiKey });
    const verifyKey = [];
    for (let i = 0; i < N; i++) {
      const r = await post(`${base}/v1/verify`, { token: apiKey });
      if (r.body.active !== true || r.body.kind !== 'api_key') throw new Error(`verify key: ${JSON.stringify(r.body)}`);
      verifyKey.push(r.ms);
    }

    // A decision for the caller's own credential (Bearer access token of the admin).
    const decision = { capability: 'docs:read', workspace: workspace.id };
    await post(`${base}/v1/authorize`, decision, access);
    const authorize = [];
    for (let i = 0; i < N; i++) {
      const r = await post(`${base}/v1/authorize`, decision, access);
      if (r.body.allow !== true) throw new Error(`authorize: ${JSON.stringify(r.body)}`);
      authorize.push(r.ms);
    }

    // Magic-link requests, known vs unknown address, interleaved so drift hits both alike. Each
    // address is asked for once (the per-address mail limit would otherwise turn known into
    // throttled). Known addresses get an attempt row and a mail (to the log, after the answer).
    for (let i = 0; i < N; i++) {
      const res = await fetch(`${base}/v1/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
        body: JSON.stringify({ email: `known-${i}@example.com`, name: `Known ${i}` }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`create user -> ${res.status}`);
    }
    await post(`${base}/v1/auth/magic-link`, { email: 'warmup@example.com', session: 'token' });
    const linkKnown = [];
    const linkUnknown = [];
    for (let i = 0; i < N; i++) {
      linkKnown.push((await post(`${base}/v1/auth/magic-link`, { email: `known-${i}@example.com`, session: 'token' })).ms);
      linkUnknown.push((await post(`${base}/v1/auth/magic-link`, { email: `unknown-${i}@example.com`, session: 'token' })).ms);
    }

    // Revocation, measured locally: from the moment logout answers to the first /v1/verify that
    // reports the access token inactive (polling as fast as requests return, 5 s cap).
    const revocation = [];
    let firstCheckInactive = 0;
    const ROUNDS = Math.min(N, 10);
    for (let i = 0; i < ROUNDS; i++) {
      const { body: s } = await post(`${base}/v1/auth/login`, { email: EMAIL, password: PASSWORD, session: 'token' });
      const out = await fetch(`${base}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${s.access_token}` } });
      await out.arrayBuffer();
      if (out.status !== 204) throw new Error(`logout -> ${out.status}`);
      const t0 = performance.now();
      for (let check = 1; ; check++) {
        const r = await post(`${base}/v1/verify`, { token: s.access_token });
        if (r.body.active === false) {
          revocation.push(performance.now() - t0);
          if (check === 1) firstCheckInactive++;
          break;
        }
        if (performance.now() - t0 > 5000) throw new Error('token still active 5 s after logout');
      }
    }

    console.log(`edgeauth latency, local wrangler dev at ${base}, ${N} sequential requests each (client-side wall time)\n`);
    console.log(
      table([
        ['POST /v1/auth/login (token)', login],
        ['POST /v1/auth/refresh (token)', refresh],
        ['POST /v1/verify (access token)', verify],
        ['POST /v1/verify (API key)', verifyKey],
        ['POST /v1/authorize (Bearer access)', authorize],
        ['POST /v1/auth/magic-link (known)', linkKnown],
        ['POST /v1/auth/magic-link (unknown)', linkUnknown],
        ['logout -> verify inactive', revocation],
      ]),
    );
    console.log(`\nrevocation: the first /v1/verify after logout already said inactive in ${firstCheckInactive}/${ROUNDS} rounds`);
  } finally {
    await srv.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
