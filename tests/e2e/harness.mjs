// End-to-end test harness: starts edgeauth under `wrangler dev` (real workerd, local D1 and KV)
// with a fresh state directory per server, and stops it again.
//
//   import { startServer } from './harness.mjs';
//   const srv = await startServer({ vars: { ALLOW_SIGNUP: 'true' } });
//   const res = await fetch(`${srv.url}/health`);
//   await srv.stop();
//
// Build: if EDGEAUTH_SKIP_BUILD=1 is set in the test process (scripts/test.sh builds once first and
// sets it) and a build exists, nothing is built. Otherwise the first startServer() of a test
// process runs `bash scripts/build.sh` once (EDGEAUTH_PROFILE decides release/dev). The spawned
// wrangler always gets EDGEAUTH_SKIP_BUILD=1, so its own [build] runs are no-ops.
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
function childEnv() {
  const env = { ...baseEnv(), EDGEAUTH_SKIP_BUILD: '1' };
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

/**
 * Start a fresh edgeauth server under `wrangler dev`.
 * @param {{ vars?: Record<string,string|number|boolean|null>, name?: string }} [opts]
 *   vars: extra/overriding Worker vars; the caller wins over the harness defaults (PUBLIC_URL,
 *         ALLOWED_ORIGINS = the server's url, random SIGNING_SECRET and BOOTSTRAP_TOKEN) and over
 *         wrangler.toml [vars]; null/undefined drops a harness default. The repo's .dev.vars is
 *         never read.
 *   name: label used in the state dir name and messages.
 * @returns {Promise<{url:string, port:number, stateDir:string, logFile:string,
 *   bootstrapToken:string, signingSecret:string, vars:Record<string,string>,
 *   logTail:(n?:number)=>string, stop:()=>Promise<void>}>}
 */
export async function startServer({ vars = {}, name } = {}) {
  installCleanup();
  if (!fs.existsSync(WRANGLER)) {
    throw new Error(`e2e harness: ${WRANGLER} not found; run: bash scripts/setup.sh`);
  }
  await ensureBuilt();

  const label = (name ?? 'e2e').replace(/[^A-Za-z0-9_.-]/g, '_');
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), `edgeauth-${label}-`));
  const logFile = path.join(stateDir, 'wrangler.log');
  const port = await freePort();
  let inspectorPort = await freePort();
  while (inspectorPort === port) inspectorPort = await freePort();
  const url = `http://127.0.0.1:${port}`;

  const signingSecret = randomHex(32);
  const bootstrapToken = randomHex(16);
  const allVars = {
    PUBLIC_URL: url,
    ALLOWED_ORIGINS: url,
    SIGNING_SECRET: signingSecret,
    BOOTSTRAP_TOKEN: bootstrapToken,
    ...vars,
  };
  for (const key of Object.keys(allVars)) {
    if (key.includes(':')) throw new Error(`e2e harness: var name must not contain ':' (${key})`);
    // null/undefined drops a var the harness would set (e.g. { BOOTSTRAP_TOKEN: null } starts a
    // server without that secret). wrangler.toml [vars] cannot be removed, only overridden.
    if (allVars[key] === undefined || allVars[key] === null) delete allVars[key];
    else allVars[key] = String(allVars[key]);
  }

  try {
    await applyMigrations(stateDir, logFile);
  } catch (err) {
    if (!KEEP_STATE) await fsp.rm(stateDir, { recursive: true, force: true });
    throw err;
  }

  // `--var KEY:VALUE`: wrangler splits at the first ':' and re-joins the rest, so URLs survive.
  const args = [
    'dev',
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--inspector-port', String(inspectorPort),
    '--persist-to', stateDir,
    '--show-interactive-dev-session=false',
  ];
  for (const [k, v] of Object.entries(allVars)) args.push('--var', `${k}:${v}`);

  // Isolation from the developer's own local secrets: wrangler reads the repo's .dev.vars (or .env)
  // only when no --env-file is given, so pass an empty one. Every value the server sees then comes
  // from wrangler.toml [vars] and the --var flags below (which also override .dev.vars).
  const envFile = path.join(stateDir, 'empty.env');
  await fsp.writeFile(envFile, '# intentionally empty: keeps the repo .dev.vars out of e2e servers\n');
  args.push('--env-file', envFile);

  const logFd = fs.openSync(logFile, 'a');
  const child = spawn(WRANGLER, args, {
    cwd: REPO_ROOT,
    env: childEnv(),
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

  // Wait for GET /health == 200.
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastErr = 'no answer yet';
  for (;;) {
    if (exited) {
      const t = tail(logFile);
      await stop();
      throw new Error(
        `e2e harness: wrangler dev exited before becoming healthy ` +
          `(code ${exited.code}, signal ${exited.signal}${exited.error ? `, ${exited.error.message}` : ''})\n` +
          `--- ${logFile} (tail) ---\n${t}`,
      );
    }
    if (Date.now() > deadline) {
      const t = tail(logFile);
      await stop();
      throw new Error(
        `e2e harness: ${url}/health did not answer 200 within ${START_TIMEOUT_MS / 1000}s ` +
          `(last: ${lastErr})\n--- ${logFile} (tail) ---\n${t}`,
      );
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(3_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
      lastErr = `HTTP ${res.status}`;
    } catch (err) {
      lastErr = err.cause?.code ?? err.message;
    }
    await sleep(200);
  }

  return {
    url,
    port,
    stateDir,
    logFile,
    bootstrapToken: allVars.BOOTSTRAP_TOKEN,
    signingSecret: allVars.SIGNING_SECRET,
    vars: allVars,
    logTail: (n = 60) => tail(logFile, n),
    stop,
  };
}
