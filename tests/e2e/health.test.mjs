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
  await srv.stop();
});
