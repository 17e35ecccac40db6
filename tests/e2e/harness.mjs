// End-to-end test harness: starts edgeauth under `wrangler dev` (real workerd, local D1 and KV)
// with a fresh state directory per server, and stops it again.
//
//   import { startServer } from './harness.mjs';
//   const srv = await startServer({ vars: { ALLOW_SIGNUP: 'true' } });
//   const res = await fetch(`${srv.url}/health`);
//   await srv.stop();
//
// Other Workers (the example consumers) run next to it with startWorker(); they reach edgeauth
// through a service binding, which wrangler resolves across `wrangler dev` processes through its dev
// registry (a directory named by WRANGLER_REGISTRY_PATH). Every server gets a fresh registry of its
// own (srv.registryPath), so a consumer started with { registryPath: srv.registryPath } talks to
// this server and never to another test's (or the developer's) edgeauth:
//
//   const js = await startWorker({ config: 'examples/consumer-js/wrangler.toml',
//     vars: { EDGEAUTH_ISSUER: srv.url, EDGEAUTH_AUDIENCE: srv.url }, registryPath: srv.registryPath });
//   await js.stop(); await srv.stop();
//
// Build: if EDGEAUTH_SKIP_BUILD=1 is set in the test process (scripts/test.sh builds once first and
// sets it) and a build exists, nothing is built. Otherwise the first startServer() of a test
// process runs `bash scripts/build.sh` once (EDGEAUTH_PROFILE decides release/dev). The spawned
// wrangler always gets EDGEAUTH_SKIP_BUILD=1, so its own [build] runs are no-ops. startWorker()
// takes the same approach for a Worker with a build step of its own (opts.build).
//
// Environment knobs: EDGEAUTH_E2E_KEEP=1 keeps state dirs (and logs) after stop();
// EDGEAUTH_E2E_VERBOSE=1 prints each server's log path.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRANGLER = path.join(REPO_ROOT, 'node_modules', '.bin', 'wrangler');
const BUILD_ENTRY = path.join(REPO_ROOT, 'build', 'worker', 'shim.mjs');
const BUILD_WASM = path.join(REPO_ROOT, 'build', 'index_bg.wasm');

const START_TIMEOUT_MS = 90_000;
const STOP_GRACE_MS = 5_000;
const KEEP_STATE = process.env.EDGEAUTH_E2E_KEEP === '1';
const VERBOSE = process.env.EDGEAUTH_E2E_VERBOSE === '1';

const baseEnv = () => ({
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  CI: 'true',
  FORCE_COLOR: '0',
});

// Environment of the spawned wrangler dev: never let the test process's environment leak in as
// Worker vars, and never rebuild (the harness has built already).
// Its dev registry is the one given (service bindings resolve only among the Workers there).
function childEnv(registryPath) {
  const env = { ...baseEnv(), EDGEAUTH_SKIP_BUILD: '1', WRANGLER_REGISTRY_PATH: registryPath };
  delete env.CLOUDFLARE_INCLUDE_PROCESS_ENV;
  return env;
}

/** A free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Last `lines` lines of a file ('' if unreadable). */
export function tail(file, lines = 60) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

const randomHex = (bytes) => crypto.randomBytes(bytes).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- one build per test process -------------------------------------------------------------
let buildPromise = null;
function ensureBuilt() {
  if (!buildPromise) {
    buildPromise = (async () => {
      const haveBuild = fs.existsSync(BUILD_ENTRY) && fs.existsSync(BUILD_WASM);
      if (process.env.EDGEAUTH_SKIP_BUILD === '1' && haveBuild) return;
      try {
        await execFileP('bash', [path.join(REPO_ROOT, 'scripts', 'build.sh')], {
          cwd: REPO_ROOT,
          env: { ...baseEnv(), EDGEAUTH_SKIP_BUILD: '0' },
          maxBuffer: 64 * 1024 * 1024,
          timeout: 15 * 60_000,
        });
      } catch (err) {
        throw new Error(
          `e2e harness: bash scripts/build.sh failed (${err.message.split('\n')[0]})\n` +
            `--- stdout (tail) ---\n${String(err.stdout ?? '').split('\n').slice(-30).join('\n')}\n` +
            `--- stderr (tail) ---\n${String(err.stderr ?? '').split('\n').slice(-60).join('\n')}`,
        );
      }
    })();
  }
  return buildPromise;
}

// ---- cleanup of everything still running when the process ends ------------------------------
const live = new Map(); // pid -> stateDir

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

let cleanupInstalled = false;
function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const killAll = () => {
    for (const [pid, stateDir] of live) {
      killGroup(pid, 'SIGKILL');
      if (!KEEP_STATE) {
        try {
          fs.rmSync(stateDir, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
    }
    live.clear();
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      killAll();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

async function applyMigrations(stateDir, logFile) {
  const dir = path.join(REPO_ROOT, 'migrations');
  const hasSql = fs.existsSync(dir) && fs.readdirSync(dir).some((f) => f.endsWith('.sql'));
  if (!hasSql) return;
  try {
    const { stdout, stderr } = await execFileP(
      WRANGLER,
      ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', stateDir],
      { cwd: REPO_ROOT, env: baseEnv(), timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    );
    await fsp.appendFile(logFile, `--- d1 migrations apply ---\n${stdout}${stderr}\n`);
  } catch (err) {
    throw new Error(
      `e2e harness: wrangler d1 migrations apply failed: ${err.message.split('\n')[0]}\n` +
        `${err.stdout ?? ''}\n${err.stderr ?? ''}`,
    );
  }
}

// ---- builds of other Workers (opts.build of startWorker), once per test process each ----------
const workerBuilds = new Map(); // key -> Promise

/**
 * Runs `bash <args...>` from the repo root once per test process for each distinct build, unless
 * EDGEAUTH_SKIP_BUILD=1 is set and every one of `outputs` (repo-relative) exists already.
 */
function ensureWorkerBuilt({ args, outputs = [], env = {} }) {
  const key = JSON.stringify([args, env]);
  if (!workerBuilds.has(key)) {
    workerBuilds.set(
      key,
      (async () => {
        const have = outputs.length > 0 && outputs.every((f) => fs.existsSync(path.resolve(REPO_ROOT, f)));
        if (process.env.EDGEAUTH_SKIP_BUILD === '1' && have) return;
        try {
          await execFileP('bash', args, {
            cwd: REPO_ROOT,
            env: { ...baseEnv(), EDGEAUTH_SKIP_BUILD: '0', ...env },
            maxBuffer: 64 * 1024 * 1024,
            timeout: 15 * 60_000,
          });
        } catch (err) {
          throw new Error(
            `e2e harness: bash ${args.join(' ')} failed (${err.message.split('\n')[0]})\n` +
              `--- stdout (tail) ---\n${String(err.stdout ?? '').split('\n').slice(-30).join('\n')}\n` +
              `--- stderr (tail) ---\n${String(err.stderr ?? '').split('\n').slice(-60).join('\n')}`,
          );
        }
        for (const f of outputs) {
          if (!fs.existsSync(path.resolve(REPO_ROOT, f))) {
            throw new Error(`e2e harness: bash ${args.join(' ')} succeeded but ${f} is missing`);
          }
        }
      })(),
    );
  }
  return workerBuilds.get(key);
}

/** Normalises a vars object: strings only, null/undefined dropped, no ':' in names. */
function normaliseVars(allVars) {
  for (const key of Object.keys(allVars)) {
    if (key.includes(':')) throw new Error(`e2e harness: var name must not contain ':' (${key})`);
    // null/undefined drops a var the harness would set (e.g. { BOOTSTRAP_TOKEN: null } starts a
    // server without that secret). wrangler.toml [vars] cannot be removed, only overridden.
    if (allVars[key] === undefined || allVars[key] === null) delete allVars[key];
    else allVars[key] = String(allVars[key]);
  }
  return allVars;
}

/**
 * Spawns `wrangler dev` (own process group, log to logFile) and waits until `isReady(res)` is true
 * for a GET of `readyPath`. Returns { pid, stop }; on failure stops everything and throws.
 */
async function launchWrangler({ label, args, registryPath, stateDir, logFile, url, readyPath, isReady }) {
  const logFd = fs.openSync(logFile, 'a');
  const child = spawn(WRANGLER, args, {
    cwd: REPO_ROOT,
    env: childEnv(registryPath),
    detached: true, // own process group: stop() kills wrangler and workerd together
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  const pid = child.pid;
  live.set(pid, stateDir);
  if (VERBOSE) console.error(`[harness] ${label}: wrangler pid ${pid} on ${url}, log ${logFile}`);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.once('error', (err) => {
      exited = { code: null, signal: null, error: err };
      resolve(exited);
    });
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (killGroup(pid, 'SIGTERM')) {
      const deadline = Date.now() + STOP_GRACE_MS;
      while (groupAlive(pid) && Date.now() < deadline) await sleep(100);
      if (groupAlive(pid)) {
        killGroup(pid, 'SIGKILL');
        const hardDeadline = Date.now() + STOP_GRACE_MS;
        while (groupAlive(pid) && Date.now() < hardDeadline) await sleep(50);
      }
    }
    if (!exited) await Promise.race([exitPromise, sleep(STOP_GRACE_MS)]);
    live.delete(pid);
    if (!KEEP_STATE) await fsp.rm(stateDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastErr = 'no answer yet';
  for (;;) {
    if (exited) {
      const t = tail(logFile);
      await stop();
      throw new Error(
        `e2e harness: wrangler dev (${label}) exited before becoming ready ` +
          `(code ${exited.code}, signal ${exited.signal}${exited.error ? `, ${exited.error.message}` : ''})\n` +
          `--- ${logFile} (tail) ---\n${t}`,
      );
    }
    if (Date.now() > deadline) {
      const t = tail(logFile);
      await stop();
      throw new Error(
        `e2e harness: ${url}${readyPath} (${label}) was not ready within ${START_TIMEOUT_MS / 1000}s ` +
          `(last: ${lastErr})\n--- ${logFile} (tail) ---\n${t}`,
      );
    }
    try {
      const res = await fetch(`${url}${readyPath}`, { signal: AbortSignal.timeout(3_000) });
      await res.arrayBuffer();
      if (isReady(res)) break;
      lastErr = `HTTP ${res.status}`;
    } catch (err) {
      lastErr = err.cause?.code ?? err.message;
    }
    await sleep(200);
  }
  return { pid, stop };
}

/** Two distinct free ports: the HTTP port and the inspector port. */
async function twoPorts() {
  const port = await freePort();
  let inspectorPort = await freePort();
  while (inspectorPort === port) inspectorPort = await freePort();
  return { port, inspectorPort };
}

/** The common `wrangler dev` arguments, --var flags and the empty --env-file. */
async function devArgs({ port, inspectorPort, stateDir, vars, testScheduled, config }) {
  const args = ['dev'];
  if (config) args.push('--config', config);
  args.push(
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', stateDir,
    '--show-interactive-dev-session=false',
  );
  // /__scheduled?cron=... runs the Worker's scheduled handler (wrangler answers 200 "Ran scheduled
  // event", or 500 if the handler threw).
  if (testScheduled) args.push('--test-scheduled');
  // `--var KEY:VALUE`: wrangler splits at the first ':' and re-joins the rest, so URLs survive.
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);

  // Isolation from the developer's own local secrets: wrangler reads the repo's .dev.vars (or .env)
  // only when no --env-file is given, so pass an empty one. Every value the server sees then comes
  // from wrangler.toml [vars] and the --var flags (which also override .dev.vars).
  const envFile = path.join(stateDir, 'empty.env');
  await fsp.writeFile(envFile, '# intentionally empty: keeps the repo .dev.vars out of e2e servers\n');
  args.push('--env-file', envFile);
  return args;
}

/**
 * Start a fresh edgeauth server under `wrangler dev`.
 * @param {{ vars?: Record<string,string|number|boolean|null>, name?: string,
 *   registryPath?: string, testScheduled?: boolean }} [opts]
 *   vars: extra/overriding Worker vars; the caller wins over the harness defaults (PUBLIC_URL,
 *         ALLOWED_ORIGINS = the server's url, random SIGNING_SECRET and BOOTSTRAP_TOKEN) and over
 *         wrangler.toml [vars]; null/undefined drops a harness default. The repo's .dev.vars is
 *         never read.
 *   name: label used in the state dir name and messages.
 *   registryPath: wrangler dev registry directory to register in (default: a fresh one inside the
 *         state dir, returned as registryPath; pass it to startWorker for the consumers).
 *   testScheduled: adds `--test-scheduled`, so GET /__scheduled?cron=... runs the scheduled handler.
 * @returns {Promise<{url:string, port:number, stateDir:string, logFile:string, registryPath:string,
 *   bootstrapToken:string, signingSecret:string, vars:Record<string,string>,
 *   logTail:(n?:number)=>string, stop:()=>Promise<void>}>}
 */
export async function startServer({ vars = {}, name, registryPath, testScheduled = false } = {}) {
  installCleanup();
  if (!fs.existsSync(WRANGLER)) {
    throw new Error(`e2e harness: ${WRANGLER} not found; run: bash scripts/setup.sh`);
  }
  await ensureBuilt();

  const label = (name ?? 'e2e').replace(/[^A-Za-z0-9_.-]/g, '_');
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), `edgeauth-${label}-`));
  const logFile = path.join(stateDir, 'wrangler.log');
  const { port, inspectorPort } = await twoPorts();
  const url = `http://127.0.0.1:${port}`;
  const registry = registryPath ?? path.join(stateDir, 'registry');
  await fsp.mkdir(registry, { recursive: true });

  const allVars = normaliseVars({
    PUBLIC_URL: url,
    ALLOWED_ORIGINS: url,
    SIGNING_SECRET: randomHex(32),
    BOOTSTRAP_TOKEN: randomHex(16),
    ...vars,
  });

  try {
    await applyMigrations(stateDir, logFile);
  } catch (err) {
    if (!KEEP_STATE) await fsp.rm(stateDir, { recursive: true, force: true });
    throw err;
  }

  const args = await devArgs({ port, inspectorPort, stateDir, vars: allVars, testScheduled });
  // Wait for GET /health == 200.
  const { pid, stop } = await launchWrangler({
    label,
    args,
    registryPath: registry,
    stateDir,
    logFile,
    url,
    readyPath: '/health',
    isReady: (res) => res.status === 200,
  });

  return {
    url,
    port,
    inspectorPort,
    pid,
    stateDir,
    logFile,
    registryPath: registry,
    bootstrapToken: allVars.BOOTSTRAP_TOKEN,
    signingSecret: allVars.SIGNING_SECRET,
    vars: allVars,
    logTail: (n = 60) => tail(logFile, n),
    stop,
  };
}

/**
 * Start another Worker (e.g. an example consumer) under `wrangler dev`, on its own free port, with a
 * fresh state dir, registered in `registryPath` so its service bindings reach the Workers there.
 * @param {{ config: string, vars?: Record<string,string|number|boolean|null>, registryPath: string,
 *   name?: string, readyPath?: string, build?: { args: string[], outputs?: string[], env?: object } }} opts
 *   config: its wrangler.toml (absolute or repo-relative).
 *   vars: Worker vars (override its wrangler.toml [vars]); nothing else is added.
 *   readyPath: GET until any answer but 502/503 (default '/': a 404 from the Worker is ready).
 *   build: `bash <args>` run once per test process before the first start (skipped with
 *          EDGEAUTH_SKIP_BUILD=1 when all `outputs` exist). The spawned wrangler gets
 *          EDGEAUTH_SKIP_BUILD=1, so a [build] command that honours it is a no-op there.
 * @returns {Promise<{url:string, port:number, pid:number, stateDir:string, logFile:string,
 *   vars:Record<string,string>, logTail:(n?:number)=>string, stop:()=>Promise<void>}>}
 */
export async function startWorker({ config, vars = {}, registryPath, name, readyPath = '/', build } = {}) {
  installCleanup();
  if (!config) throw new Error('e2e harness: startWorker needs { config }');
  if (!registryPath) throw new Error('e2e harness: startWorker needs { registryPath } (e.g. srv.registryPath)');
  if (!fs.existsSync(WRANGLER)) {
    throw new Error(`e2e harness: ${WRANGLER} not found; run: bash scripts/setup.sh`);
  }
  const configPath = path.resolve(REPO_ROOT, config);
  if (!fs.existsSync(configPath)) throw new Error(`e2e harness: ${configPath} not found`);
  if (build) await ensureWorkerBuilt(build);

  const label = (name ?? path.basename(path.dirname(configPath))).replace(/[^A-Za-z0-9_.-]/g, '_');
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), `edgeauth-${label}-`));
  const logFile = path.join(stateDir, 'wrangler.log');
  const { port, inspectorPort } = await twoPorts();
  const url = `http://127.0.0.1:${port}`;
  const allVars = normaliseVars({ ...vars });

  const args = await devArgs({ port, inspectorPort, stateDir, vars: allVars, config: configPath });
  const { pid, stop } = await launchWrangler({
    label,
    args,
    registryPath,
    stateDir,
    logFile,
    url,
    readyPath,
    isReady: (res) => res.status !== 502 && res.status !== 503,
  });
  return { url, port, pid, stateDir, logFile, vars: allVars, logTail: (n = 60) => tail(logFile, n), stop };
}

/**
 * Runs SQL against a server's local D1 (`wrangler d1 execute DB --local --persist-to <stateDir>
 * --json`), next to the running `wrangler dev`. Returns the rows of the last statement.
 * @param {{stateDir:string}} srv  a server from startServer()
 */
export async function d1Query(srv, sql) {
  let stdout;
  try {
    ({ stdout } = await execFileP(
      WRANGLER,
      ['d1', 'execute', 'DB', '--local', '--persist-to', srv.stateDir, '--json', '--command', sql],
      { cwd: REPO_ROOT, env: baseEnv(), timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
    ));
  } catch (err) {
    throw new Error(
      `e2e harness: wrangler d1 execute failed: ${err.message.split('\n')[0]}\n` +
        `SQL: ${sql}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`,
    );
  }
  let parsed;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    throw new Error(`e2e harness: wrangler d1 execute printed no JSON for: ${sql}\n${stdout}`);
  }
  const results = Array.isArray(parsed) ? parsed : [parsed];
  for (const r of results) {
    if (r.success === false) throw new Error(`e2e harness: D1 statement failed: ${sql}\n${stdout}`);
  }
  return results.at(-1)?.results ?? [];
}

// ---- the example consumers (examples/consumer-js, examples/consumer-rs) ---------------------
export const CONSUMERS = Object.freeze({
  js: Object.freeze({ config: 'examples/consumer-js/wrangler.toml' }),
  rs: Object.freeze({
    config: 'examples/consumer-rs/wrangler.toml',
    // Built once per test process like the main Worker: scripts/build.sh builds the crate in
    // EDGEAUTH_CRATE_DIR (EDGEAUTH_PROFILE applies). Its wrangler.toml [build] runs the same command,
    // a no-op under the EDGEAUTH_SKIP_BUILD=1 the spawned wrangler gets.
    build: Object.freeze({
      args: ['scripts/build.sh'],
      env: Object.freeze({ EDGEAUTH_CRATE_DIR: 'examples/consumer-rs' }),
      outputs: ['examples/consumer-rs/build/worker/shim.mjs'],
    }),
  }),
});

/**
 * Start example consumer `kind` ('js' | 'rs') next to edgeauth server `srv`: same dev registry
 * (its EDGEAUTH service binding reaches `srv`), EDGEAUTH_ISSUER / EDGEAUTH_AUDIENCE = srv's.
 */
export function startConsumer(kind, srv, { vars = {} } = {}) {
  const spec = CONSUMERS[kind];
  if (!spec) throw new Error(`e2e harness: no consumer ${kind}`);
  return startWorker({
    config: spec.config,
    build: spec.build,
    name: `consumer-${kind}`,
    registryPath: srv.registryPath,
    vars: {
      EDGEAUTH_ISSUER: srv.vars.ISSUER ?? srv.url,
      EDGEAUTH_AUDIENCE: srv.vars.AUDIENCE ?? srv.url,
      ...vars,
    },
  });
}
