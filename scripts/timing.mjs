#!/usr/bin/env node
// Enumeration timing: does a wrong answer for a KNOWN address take as long as one for an UNKNOWN
// address? Prints figures (median and spread of each, and how far apart the two are); it is a
// measurement, not a pass/fail test, so it is not part of the test command.
//
//   node scripts/timing.mjs          # N = 200 of each, for login and for magic-link requests
//   N=400 node scripts/timing.mjs
//   ONLY=magic-link node scripts/timing.mjs   # or ONLY=login
//
// Starts its own `wrangler dev` (release build, fresh state) through the e2e harness and stops it.
// Known addresses are N real users, each with a 600,000-iteration password (the admin's record,
// copied in D1 so that setting them up costs no N hashes). Each address is tried ONCE, with a wrong
// password, so no known or unknown address reaches its lockout or its mail limit, and each request
// carries its own CF-Connecting-IP so the per-IP limit never answers instead. Known and unknown
// requests alternate in a random order, so drift in the machine's speed hits both alike. Mail goes
// where production sends it, to an HTTP mail API after the answer (a local capture server here),
// and the script checks that only the known addresses got one.
import { nextClientIp } from '../tests/e2e/client.mjs';
import { d1Query, startServer } from '../tests/e2e/harness.mjs';
import { recipientsOf, startMailbox } from '../tests/e2e/mailbox.mjs';

const N = Number(process.env.N ?? 200);
const ONLY = process.env.ONLY ?? '';
if (!['', 'login', 'magic-link'].includes(ONLY)) throw new Error(`ONLY must be login or magic-link, not ${ONLY}`);
const ADMIN = { email: 'timing-admin@example.com', password: 'timing admin password 1234', name: 'Timing' };

async function timedPost(base, path, body, { bearer, expect } = {}) {
  const headers = { 'content-type': 'application/json', 'cf-connecting-ip': nextClientIp() };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const t0 = performance.now();
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  const ms = performance.now() - t0;
  if (expect && res.status !== expect) throw new Error(`POST ${path} -> ${res.status} ${text.slice(0, 300)}`);
  return { ms, status: res.status, text };
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

function describe(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p10: quantile(s, 0.1),
    p90: quantile(s, 0.9),
    iqr: quantile(s, 0.75) - quantile(s, 0.25),
    min: s[0],
    max: s[s.length - 1],
  };
}

/** P(a random known sample is slower than a random unknown one); 0.5 means no difference. */
function probabilitySlower(known, unknown) {
  let wins = 0;
  for (const k of known) for (const u of unknown) wins += k > u ? 1 : k === u ? 0.5 : 0;
  return wins / (known.length * unknown.length);
}

/** The share of `a`'s samples inside `b`'s 10th-90th percentile range. */
function shareWithin(a, b) {
  const { p10, p90 } = describe(b);
  return a.filter((x) => x >= p10 && x <= p90).length / a.length;
}

function report(title, known, unknown) {
  const k = describe(known);
  const u = describe(unknown);
  const row = (label, d) =>
    [label.padEnd(8), String(d.n).padStart(4), ...[d.median, d.p10, d.p90, d.iqr, d.min, d.max].map((v) => v.toFixed(1).padStart(8))].join('  ');
  console.log(`\n${title}`);
  console.log(['address'.padEnd(8), 'n'.padStart(4), ...['median', 'p10', 'p90', 'IQR', 'min', 'max'].map((h) => h.padStart(8))].join('  '));
  console.log(row('known', k));
  console.log(row('unknown', u));
  console.log(
    `median difference (known - unknown): ${(k.median - u.median).toFixed(1)} ms; ` +
      `P(known slower than unknown) = ${probabilitySlower(known, unknown).toFixed(3)} (0.5 = indistinguishable); ` +
      `known inside unknown's p10-p90: ${(100 * shareWithin(known, unknown)).toFixed(0)}%, ` +
      `unknown inside known's: ${(100 * shareWithin(unknown, known)).toFixed(0)}%`,
  );
}

/** Runs `known(i)` and `unknown(i)` for i < N, each pair in a random order; returns their times. */
async function alternate(known, unknown) {
  const times = { known: [], unknown: [] };
  for (let i = 0; i < N; i++) {
    const order = Math.random() < 0.5 ? ['known', 'unknown'] : ['unknown', 'known'];
    for (const which of order) times[which].push(await (which === 'known' ? known(i) : unknown(i)));
  }
  return times;
}

async function main() {
  const MAIL_KEY = 'timing-mail-key';
  const mailbox = await startMailbox({ apiKey: MAIL_KEY });
  const srv = await startServer({ name: 'timing', vars: { MAIL_ENDPOINT: mailbox.url, MAIL_API_KEY: MAIL_KEY } });
  try {
    const base = srv.url;
    const boot = await timedPost(base, '/v1/bootstrap', { token: srv.bootstrapToken, ...ADMIN }, { expect: 201 });
    const { key } = JSON.parse(boot.text);

    // N known users, then the admin's 600k password record copied to each of them.
    for (let i = 0; i < N; i++) {
      await timedPost(base, '/v1/users', { email: `known-${i}@example.com`, name: `Known ${i}` }, { bearer: key, expect: 201 });
    }
    await d1Query(
      srv,
      `INSERT INTO password_credentials (user_id, org_id, phc, updated_at)
       SELECT u.id, u.org_id, (SELECT phc FROM password_credentials LIMIT 1), u.updated_at
       FROM users u WHERE u.email LIKE 'known-%@example.com'`,
    );
    const [{ n }] = await d1Query(
      srv,
      `SELECT COUNT(*) AS n FROM password_credentials c JOIN users u ON u.id = c.user_id
       WHERE u.email LIKE 'known-%@example.com' AND u.status = 'active' AND c.phc LIKE '$pbkdf2-sha256$i=600000,%'`,
    );
    if (n !== N) throw new Error(`expected ${N} known users with a 600k password, found ${n}`);

    // Warm-up (not counted): both paths, so neither pays for a cold isolate.
    const failure = (i, who) => timedPost(base, '/v1/auth/login', { email: `${who}-${i}@example.com`, password: 'not the password 1', session: 'token' }, { expect: 401 });
    for (let i = 0; i < 3; i++) {
      await failure(i, 'warmup');
      await timedPost(base, '/v1/auth/magic-link', { email: `warmup-${i}@example.com`, session: 'token' }, { expect: 202 });
    }

    const bodies = new Set();
    const login = ONLY === 'magic-link' ? undefined : await alternate(
      async (i) => {
        const r = await failure(i, 'known');
        bodies.add(r.text);
        return r.ms;
      },
      async (i) => {
        const r = await failure(i, 'unknown');
        bodies.add(r.text);
        return r.ms;
      },
    );
    if (login && bodies.size !== 1) throw new Error(`login failures differ in body: ${[...bodies].join(' | ')}`);

    const link = (i, who) =>
      timedPost(base, '/v1/auth/magic-link', { email: `${who}-${i}@example.com`, session: 'token' }, { expect: 202 }).then((r) => r.ms);
    const magic = ONLY === 'login' ? undefined : await alternate((i) => link(i, 'known'), (i) => link(i, 'unknown'));
    if (magic) {
      // Mail is sent after the answer: give the last ones a moment, then check who got one.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const to = mailbox.mails.flatMap(recipientsOf);
      const known = to.filter((a) => /^known-\d+@/.test(a)).length;
      const unknown = to.filter((a) => /^unknown-\d+@/.test(a)).length;
      if (known !== N || unknown !== 0) throw new Error(`expected ${N} mails to known addresses and none to unknown ones, got ${known} and ${unknown}`);
    }

    console.log(`edgeauth enumeration timing, local wrangler dev at ${base} (release build), client-side wall time in ms`);
    if (login) report(`POST /v1/auth/login, wrong password (the same 401 body for all ${2 * N})`, login.known, login.unknown);
    if (magic) report('POST /v1/auth/magic-link (202 for all; a mail for known addresses only)', magic.known, magic.unknown);
  } finally {
    await srv.stop();
    await mailbox.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
