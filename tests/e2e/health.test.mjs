// Self-check of the e2e harness: a fresh server answers GET /health.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';

test('GET /health answers 200 {status:"ok", version:<string>}', async (t) => {
  const srv = await startServer({ name: 'health' });
  t.after(() => srv.stop());
  const res = await fetch(`${srv.url}/health`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = await res.json();
  assert.equal(body.status, 'ok');
  assert.equal(typeof body.version, 'string');
  assert.ok(body.version.length > 0, 'version must not be empty');
  // The benchmark build's routes (cargo feature `bench`) are not in the build that ships.
  const bench = await fetch(`${srv.url}/__bench/crypto?runs=1&n=1`);
  assert.equal(bench.status, 404);
  assert.equal((await bench.json()).error.code, 'not_found');
  await srv.stop();
});
