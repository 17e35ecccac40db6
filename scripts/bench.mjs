#!/usr/bin/env node
// The benchmark (issue 7): `bash scripts/bench.sh` (which installs what is missing, then runs this).
// Not part of the test command. Prints one table:
//   1. in the Worker, side by side in the same isolate and run: our PBKDF2-HMAC-SHA256 (100k, 600k)
//      and Ed25519 sign/verify against WebCrypto called from plain JavaScript (the `bench` build,
//      src/edge/bench.rs; that code is never in the release build);
//   2. over loopback, the release build under `wrangler dev` at concurrency 1 and 16: /v1/verify
//      (access token, API key), /v1/authorize, /v1/auth/refresh, /v1/auth/login, and a plain
//      JavaScript Worker verifying the same token with jose against the same JWKS
//      (examples/consumer-js, GET /offline): requests/s, p50, p99;
//   3. CPU time per request of each endpoint: the workerd process's CPU time (utime + stime from
//      /proc) over the sequential run, divided by its requests. That counts everything workerd does
//      for the request, including local D1 and KV (in production those are not billed to the
//      Worker), so it is an upper bound; the /health row is the floor of an answer that does nothing;
//   4. the gzip -9 size of the release .wasm;
//   5. /v1/verify against the jose Worker side by side: alternating short slices at c=1 and c=16,
//      after WARMUP requests to each side (steady state), the median slice of each side, their
//      ratio, and in how many slices ours was ahead; and, from the same c=1 slices, each side's
//      workerd CPU per request (what a Workers bill counts).
// Environment: DURATION (seconds per load run, default 8), RUNS (in-worker runs, default 7),
// SIDE_BY_SIDE_ROUNDS (slices per side, default 10), SLICE (seconds per slice, default 2) and
// WARMUP (requests to each side before the side-by-side slices, default 20000);
// for a quick look at a few rows: ROWS (a regular expression; only the loopback rows whose name
// matches run, and the in-worker part is skipped) and NO_BUILD=1 (use the release build in build/).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { nextClientIp } from '../tests/e2e/client.mjs';
import { REPO_ROOT, startConsumer, startServer, startWorker } from '../tests/e2e/harness.mjs';

const DURATION_MS = Number(process.env.DURATION ?? 8) * 1000;
const RUNS = Number(process.env.RUNS ?? 7);
const ADMIN = { email: 'bench@example.com', password: 'bench admin password 1234', name: 'Bench' };
const CONCURRENCY = [1, 16];
// The side-by-side comparison of /v1/verify with the jose Worker: slices per side, and their length.
const SIDE_BY_SIDE_ROUNDS = Number(process.env.SIDE_BY_SIDE_ROUNDS ?? 10);
const SLICE_MS = Number(process.env.SLICE ?? 2) * 1000;
const WARMUP = Number(process.env.WARMUP ?? 20000);
const ROWS = process.env.ROWS ? new RegExp(process.env.ROWS, 'i') : undefined;

// ---- helpers -------------------------------------------------------------------------------------

function build(features) {
  if (process.env.NO_BUILD === '1') return;
  const args = ['scripts/build.sh', ...(features ? ['--features', features] : [])];
  execFileSync('bash', args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, EDGEAUTH_PROFILE: 'release', EDGEAUTH_SKIP_BUILD: '0' },
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];


const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One request over a keep-alive connection; resolves to { status, body (text), ms }. */
function send(url, { method = 'GET', json, bearer } = {}) {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? undefined : Buffer.isBuffer(json) ? json : Buffer.from(JSON.stringify(json));
    const headers = { 'cf-connecting-ip': nextClientIp() };
    if (body) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = body.length;
    }
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const start = process.hrtime.bigint();
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8'), ms: Number(process.hrtime.bigint() - start) / 1e6 }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** CPU seconds (user + system) of `pid` and its descendants, from /proc. */
function cpuSeconds(pid) {
  const ticks = 100; // USER_HZ on Linux
  let total = 0;
  const visit = (p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime
      const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const c of children ? children.split(' ') : []) visit(Number(c));
    } catch {
      // The process ended meanwhile.
    }
  };
  visit(pid);
  return total;
}

/** The workerd processes under wrangler `pid` (wrangler itself is node: not counted). */
function workerdPids(pid) {
  const out = [];
  const visit = (p) => {
    let comm = '';
    try {
      comm = fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim();
    } catch {
      return;
    }
    if (comm === 'workerd') out.push(p);
    const children = fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
    for (const c of children ? children.split(' ') : []) visit(Number(c));
  };
  visit(pid);
  if (out.length === 0) throw new Error(`no workerd process under ${pid}`);
  return out;
}

/**
 * Runs `makeRequest(worker)` from `concurrency` workers for `durationMs` (default DURATION_MS; or
 * `count` requests in all); each request must answer `expect`. Returns rps, p50, p99 and, for the
 * sequential run, the workerd CPU per request.
 */
async function load(name, concurrency, makeRequest, { expect = 200, count, cpuOf, durationMs = DURATION_MS } = {}) {
  const latencies = [];
  let failures = 0;
  const cpu0 = cpuOf ? cpuOf() : 0;
  const start = performance.now();
  const deadline = start + durationMs;
  let issued = 0;
  const more = () => (count === undefined ? performance.now() < deadline : issued < count);
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (more()) {
        issued += 1;
        const res = await makeRequest(worker);
        if (res.status !== expect) {
          failures += 1;
          if (failures <= 3) console.error(`${name}: ${res.status} ${res.body.slice(0, 200)}`);
        } else latencies.push(res.ms);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuOf ? cpuOf() - cpu0 : undefined;
  if (failures > 0) throw new Error(`${name} at concurrency ${concurrency}: ${failures} answers were not ${expect}`);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    n: sorted.length,
    rps: sorted.length / seconds,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    cpuMs: cpu === undefined ? undefined : (cpu * 1000) / sorted.length,
  };
}

function table(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

const f = (x, digits = 1) => (x === undefined ? '-' : x.toFixed(digits));

// ---- 1. in the Worker (bench build) --------------------------------------------------------------

async function inWorker() {
  console.error('==> bench build (cargo feature `bench`)');
  build('bench');
  const srv = await startServer({ name: 'bench-crypto' });
  try {
    const res = await send(`${srv.url}/__bench/crypto?runs=${RUNS}&n=500`);
    if (res.status !== 200) throw new Error(`/__bench/crypto -> ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body);
  } finally {
    await srv.stop();
  }
}

// ---- 2 and 3. over loopback (release build) ------------------------------------------------------

async function overLoopback() {
  console.error('==> release build');
  build();
  const wasmPath = `${REPO_ROOT}/build/index_bg.wasm`;
  // gzip -9 itself (Node's zlib at level 9 compresses this file ~1.6% worse).
  const size = { raw: fs.statSync(wasmPath).size, gzip: execFileSync('gzip', ['-9', '-c', wasmPath], { maxBuffer: 64 << 20 }).length };

  const srv = await startServer({ name: 'bench-load' });
  const consumer = await startConsumer('js', srv);
  // The same request and answer as POST /v1/verify, verified by jose (scripts/bench-jose).
  const joseVerify = await startWorker({
    config: 'scripts/bench-jose/wrangler.toml',
    name: 'bench-jose',
    registryPath: srv.registryPath,
    vars: { EDGEAUTH_ISSUER: srv.vars.ISSUER ?? srv.url, EDGEAUTH_AUDIENCE: srv.vars.AUDIENCE ?? srv.url },
  });
  try {
    const boot = await send(`${srv.url}/v1/bootstrap`, { method: 'POST', json: { token: srv.bootstrapToken, ...ADMIN } });
    if (boot.status !== 201) throw new Error(`bootstrap -> ${boot.status} ${boot.body}`);
    const { key: apiKey, workspace } = JSON.parse(boot.body);
    const login = async () => {
      const res = await send(`${srv.url}/v1/auth/login`, { method: 'POST', json: { email: ADMIN.email, password: ADMIN.password, session: 'token' } });
      if (res.status !== 200) throw new Error(`login -> ${res.status} ${res.body}`);
      return JSON.parse(res.body);
    };
    const session = await login();
    const access = session.access_token;
    // One refresh chain per concurrent worker (each rotation hands the next token to that worker).
    const chains = [];
    for (let i = 0; i < Math.max(...CONCURRENCY); i++) chains.push((await login()).refresh_token);
    // One user per concurrent login worker: attempts on one account are counted before the password
    // is checked (the lockout), so more than five in flight at once on ONE account are refused.
    const loginUsers = [];
    for (let i = 0; i < Math.max(...CONCURRENCY); i++) {
      const email = `bench-${i}@example.com`;
      const res = await send(`${srv.url}/v1/users`, { method: 'POST', bearer: apiKey, json: { email, name: `Bench ${i}`, password: ADMIN.password } });
      if (res.status !== 201) throw new Error(`create user -> ${res.status} ${res.body}`);
      loginUsers.push(email);
    }

    const workerd = workerdPids(srv.pid);
    const edgeCpu = () => workerd.reduce((sum, p) => sum + cpuSeconds(p), 0);
    const consumerWorkerd = workerdPids(consumer.pid);
    const consumerCpu = () => consumerWorkerd.reduce((sum, p) => sum + cpuSeconds(p), 0);
    const joseWorkerd = workerdPids(joseVerify.pid);
    const joseCpu = () => joseWorkerd.reduce((sum, p) => sum + cpuSeconds(p), 0);
    // Request bodies serialised once: the load generator shares the cores with workerd.
    const verifyAccess = Buffer.from(JSON.stringify({ token: access }));
    // The same request to both: the rows below and the side-by-side comparison after them.
    const verifyOurs = () => send(`${srv.url}/v1/verify`, { method: 'POST', json: verifyAccess });
    const verifyJose = () => send(`${joseVerify.url}/v1/verify`, { method: 'POST', json: verifyAccess });

    const endpoints = [
      ['GET /health (floor)', () => send(`${srv.url}/health`), {}],
      ['POST /v1/verify, access token', verifyOurs, { active: true }],
      [
        'jose Worker, POST /v1/verify (same request and answer)',
        verifyJose,
        { cpuOf: joseCpu, active: true },
      ],
      ['POST /v1/verify, API key', () => send(`${srv.url}/v1/verify`, { method: 'POST', json: { token: apiKey } }), {}],
      ['POST /v1/authorize', () => send(`${srv.url}/v1/authorize`, { method: 'POST', bearer: access, json: { capability: 'docs:read', workspace: workspace.id } }), {}],
      [
        'POST /v1/auth/refresh',
        async (worker) => {
          const res = await send(`${srv.url}/v1/auth/refresh`, { method: 'POST', json: { refresh_token: chains[worker] } });
          if (res.status === 200) chains[worker] = JSON.parse(res.body).refresh_token;
          return res;
        },
        {},
      ],
      [
        'POST /v1/auth/login (PBKDF2 600k)',
        (worker) => send(`${srv.url}/v1/auth/login`, { method: 'POST', json: { email: loginUsers[worker], password: ADMIN.password, session: 'token' } }),
        { count: { 1: 12, 16: 32 } },
      ],
      ['jose Worker, GET /offline (Bearer header; examples/consumer-js)', () => send(`${consumer.url}/offline`, { bearer: access }), { cpuOf: consumerCpu }],
    ];

    // Ours against the jose Worker, side by side: the rows below run one after the other, and the
    // machine's speed drifts between them by more than the difference being measured. Here short
    // slices alternate (ABBA...), so both see the same conditions; each side's median slice counts.
    // It runs before the rows, so that both workerd processes have the same history: under
    // `wrangler dev` a workerd's memory grows with every request it has served (any Worker, ~10 KB
    // each), and its garbage collection with it (README).
    const sideBySide = [];
    if (!ROWS || ROWS.test('side by side')) {
      // Each side's workerd CPU per request too (at c=1, where the slice's CPU is that side's
      // alone): req/s is what the issue compares, CPU time is what a Workers bill counts.
      const sides = [
        ['ours', verifyOurs, edgeCpu],
        ['jose', verifyJose, joseCpu],
      ];
      // Steady state, not start-up: V8 first runs wasm in its baseline compiler and moves each
      // function to its optimising one only after that function has done enough work, which for
      // the small functions a request passes through takes a few thousand requests (README). Both
      // sides get the same number of requests first (JavaScript is tiered up the same way).
      for (const [side, makeRequest] of sides) {
        const warm = await load(`side by side, warm-up, ${side}`, 16, makeRequest, { count: WARMUP });
        console.error(`    side by side, warm-up: ${warm.n} requests to ${side}`);
      }
      for (const c of CONCURRENCY) {
        const slices = { ours: [], jose: [] };
        const cpu = { ours: [], jose: [] };
        for (let round = 0; round < SIDE_BY_SIDE_ROUNDS; round++) {
          for (const [side, makeRequest, cpuOf] of round % 2 ? [...sides].reverse() : sides) {
            const slice = await load(`side by side, ${side}`, c, makeRequest, { durationMs: SLICE_MS, cpuOf: c === 1 ? cpuOf : undefined });
            slices[side].push(slice.rps);
            if (slice.cpuMs !== undefined) cpu[side].push(slice.cpuMs);
          }
        }
        const wins = slices.ours.filter((rps, i) => rps > slices.jose[i]).length;
        const cheaper = cpu.ours.filter((ms, i) => ms < cpu.jose[i]).length;
        sideBySide.push({ c, ours: median(slices.ours), jose: median(slices.jose), wins, cpu, cheaper });
        console.error(`    side by side, c=${c}: ours ${slices.ours.map((x) => f(x, 0)).join(' ')} / jose ${slices.jose.map((x) => f(x, 0)).join(' ')}`);
        if (c === 1) console.error(`    side by side, CPU ms/req: ours ${cpu.ours.map((x) => f(x, 2)).join(' ')} / jose ${cpu.jose.map((x) => f(x, 2)).join(' ')}`);
      }
    }
    const rows = [];
    for (const [name, makeRequest, opts] of endpoints.filter(([name]) => !ROWS || ROWS.test(name))) {
      // Warm-up, not counted; a verification row must be verifying (not answering "inactive").
      for (let i = 0; i < 3; i++) {
        const res = await makeRequest(0);
        if (opts.active && JSON.parse(res.body).active !== true) throw new Error(`${name}: ${res.status} ${res.body}`);
      }
      const results = {};
      for (const c of CONCURRENCY) {
        results[c] = await load(name, c, makeRequest, {
          count: opts.count?.[c],
          cpuOf: c === 1 ? (opts.cpuOf ?? edgeCpu) : undefined,
        });
      }
      rows.push([name, results]);
      console.error(`    ${name}: ${f(results[1].rps)} / ${f(results[16].rps)} rps`);
    }

    return { size, rows, sideBySide };
  } finally {
    await joseVerify.stop();
    await consumer.stop();
    await srv.stop();
  }
}

// ---- main ----------------------------------------------------------------------------------------

async function main() {
  const crypto = ROWS ? { pbkdf2: [], ed25519: [] } : await inWorker();
  const { size, rows, sideBySide } = await overLoopback();

  const cryptoRows = [];
  for (const p of crypto.pbkdf2) {
    const ours = median(p.ours_ms);
    const native = median(p.native_ms);
    cryptoRows.push([`PBKDF2-HMAC-SHA256, ${p.iterations / 1000}k iterations`, f(ours), f(native), `${(ours / native).toFixed(2)}x`]);
  }
  for (const op of ['sign', 'verify']) {
    const ours = median(crypto.ed25519.map((r) => r[`ours_${op}_ms`] ?? r[`compact_${op}_ms`]));
    const native = median(crypto.ed25519.map((r) => r[`native_${op}_ms`]));
    cryptoRows.push([`Ed25519 ${op} (per operation)`, f(ours, 4), f(native, 4), `${(ours / native).toFixed(2)}x`]);
  }
  for (const op of ['sign', 'verify']) {
    const compact = median(crypto.ed25519.map((r) => r[`compact_${op}_ms`]));
    const native = median(crypto.ed25519.map((r) => r[`native_${op}_ms`]));
    cryptoRows.push([`  reference: ed25519-compact ${op} in wasm`, f(compact, 4), f(native, 4), `${(compact / native).toFixed(2)}x`]);
  }

  console.log(`\nedgeauth benchmark, ${new Date().toISOString().slice(0, 10)}, local wrangler dev (workerd), ${RUNS} in-worker runs, ${DURATION_MS / 1000} s per load run${crypto.simd128 ? ', wasm simd128' : ''}\n`);
  if (!ROWS) {
    console.log(table(['in the Worker (median)', 'ours ms', 'WebCrypto ms', 'ours/native'], cryptoRows));
    console.log('');
  }
  console.log(
    table(
      ['over loopback', 'c=1 req/s', 'c=1 p50 ms', 'c=1 p99 ms', 'c=16 req/s', 'c=16 p50 ms', 'c=16 p99 ms', 'CPU ms/req'],
      rows.map(([name, r]) => [name, f(r[1].rps), f(r[1].p50), f(r[1].p99), f(r[16].rps), f(r[16].p50), f(r[16].p99), f(r[1].cpuMs, 2)]),
    ),
  );
  if (sideBySide.length > 0) {
    console.log('');
    console.log(
      table(
        [`POST /v1/verify (access token), side by side: ${SIDE_BY_SIDE_ROUNDS} alternating ${SLICE_MS / 1000} s slices each`, 'ours req/s', 'jose req/s', 'ours/jose', 'slices ours ahead'],
        sideBySide.map(({ c, ours, jose, wins }) => [`c=${c}`, f(ours), f(jose), `${(ours / jose).toFixed(3)}x`, `${wins} of ${SIDE_BY_SIDE_ROUNDS}`]),
      ),
    );
    const { cpu, cheaper } = sideBySide.find(({ c }) => c === 1);
    const [ours, jose] = [median(cpu.ours), median(cpu.jose)];
    console.log('');
    console.log(
      table(
        ['the same c=1 slices: workerd CPU per request', 'ours ms', 'jose ms', 'ours/jose', 'slices ours cheaper'],
        [['POST /v1/verify (access token)', f(ours, 2), f(jose, 2), `${(ours / jose).toFixed(3)}x`, `${cheaper} of ${SIDE_BY_SIDE_ROUNDS}`]],
      ),
    );
  }
  console.log(`\nrelease .wasm: ${size.raw} bytes raw, ${size.gzip} bytes gzip -9 (${(size.gzip / 1024).toFixed(1)} KiB)`);
  console.log('CPU ms/req: workerd process CPU over the c=1 run / requests (includes local D1 and KV; an upper bound).');
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => agent.destroy());
