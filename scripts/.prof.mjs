import fs from 'node:fs';
import http from 'node:http';
import WebSocket from 'ws';
import { startServer, startWorker } from '../tests/e2e/harness.mjs';
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function send(url) { return new Promise((resolve, reject) => { const req = http.request(url, { headers: { 'cf-connecting-ip': '10.0.0.9' }, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }); req.on('error', reject); req.end(); }); }
const getJson = (url) => new Promise((resolve, reject) => http.get(url, (res) => { let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => resolve(JSON.parse(b))); }).on('error', reject));
function inspectorPortOf(pid) { const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'); return Number(args[args.indexOf('--inspector-port') + 1]); }
async function profile(inspectorPort, url, n) {
  const targets = await getJson(`http://127.0.0.1:${inspectorPort}/json/list`);
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((r) => ws.once('open', r));
  let id = 0; const pending = new Map();
  ws.on('message', (m) => { const msg = JSON.parse(m); if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg.result); pending.delete(msg.id); } });
  const call = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  await call('Profiler.enable'); await call('Profiler.setSamplingInterval', { interval: 100 });
  for (let i = 0; i < 300; i++) await send(url);
  await call('Profiler.start');
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await send(url);
  const wall = performance.now() - t0;
  const { profile: p } = await call('Profiler.stop');
  ws.close();
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map(); let total = 0;
  p.samples.forEach((s, i) => { const node = byId.get(s); const cf = node.callFrame; const key = `${cf.functionName || '(anon)'} ${cf.url.split('/').pop()}:${cf.lineNumber}`; const dt = p.timeDeltas[i] ?? 0; self.set(key, (self.get(key) ?? 0) + dt); total += dt; });
  console.log(`== ${url} ${n} requests, wall ${(wall / n).toFixed(3)} ms/req, profile ${(total / 1000 / n).toFixed(3)} ms/req`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 22)) console.log(`${(v / n).toFixed(1).padStart(7)} us/req  ${k.slice(0, 110)}`);
}
const srv = await startServer({ name: 'prof' });
const bare = await startWorker({ config: '/tmp/cfgtest/bare.toml', name: 'prof-bare', readyPath: '/health', registryPath: srv.registryPath });
try {
  const path = process.env.P ?? '/health';
  await profile(srv.inspectorPort, `${srv.url}${path}`, 3000);
  await profile(inspectorPortOf(bare.pid), `${bare.url}/health`, 3000);
} finally { await bare.stop(); await srv.stop(); }
