// Malformed input: 400 / 413 / 415 / 404 / 405 with the documented error shape, never a 500.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './harness.mjs';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  assertError,
  assertStatus,
  bootstrap,
  loginToken,
  request,
  show,
} from './client.mjs';

const KIB = 1024;

describe('input handling', () => {
  let srv;
  let session;

  before(async () => {
    srv = await startServer();
    await bootstrap(srv);
    session = await loginToken(srv);
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  describe('400 invalid_request', () => {
    it('malformed JSON', async () => {
      for (const path of ['/v1/auth/login', '/v1/auth/refresh', '/v1/verify']) {
        const res = await request(srv, 'POST', path, { body: '{"email": "a@b.c", ', contentType: 'application/json' });
        assertError(res, 400, 'invalid_request');
      }
    });

    it('JSON that is not an object, and wrongly typed or missing fields, name the field', async () => {
      for (const body of ['null', '[]', '"a string"', '42']) {
        const res = await request(srv, 'POST', '/v1/auth/login', { body, contentType: 'application/json' });
        assertError(res, 400, 'invalid_request');
      }
      assertError(await request(srv, 'POST', '/v1/auth/login', { json: { email: 5, password: ADMIN_PASSWORD } }), 400, 'invalid_request', 'email');
      assertError(await request(srv, 'POST', '/v1/auth/login', { json: { email: ADMIN_EMAIL } }), 400, 'invalid_request', 'password');
      assertError(
        await request(srv, 'POST', '/v1/auth/login', { json: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD, session: 'carrier-pigeon' } }),
        400,
        'invalid_request',
        'session',
      );
      assertError(await request(srv, 'POST', '/v1/verify', { json: { token: 123 } }), 400, 'invalid_request', 'token');
      assertError(await request(srv, 'POST', '/v1/verify', { json: {} }), 400, 'invalid_request', 'token');
    });

    it('odd but well-formed bodies never produce a 5xx', async () => {
      const bodies = [
        '{"email":{"$ne":null},"password":{"$ne":null}}',
        '{"email":"\\u0000","password":"\\ud800"}',
        `{"email":"${'a'.repeat(5000)}@example.com","password":"x"}`,
        '{"email":"a@b.c","password":"12345678","workspace":["x"]}',
        '{"token":{"nested":[1,2,3]}}',
        '{"refresh_token":null}',
        '\ufeff{}',
      ];
      for (const path of ['/v1/auth/login', '/v1/auth/refresh', '/v1/verify', '/v1/bootstrap', '/v1/auth/logout']) {
        for (const body of bodies) {
          const res = await request(srv, 'POST', path, { body, contentType: 'application/json' });
          assert.ok(res.status >= 400 && res.status < 500, `expected a 4xx: ${show(res)}`);
          assert.ok(res.body?.error?.code, `expected an error body: ${show(res)}`);
        }
      }
    });
  });

  describe('415 unsupported_media_type', () => {
    it('a JSON POST with a wrong or missing Content-Type', async () => {
      const json = JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD, session: 'token' });
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
        const res = await request(srv, 'POST', '/v1/auth/login', { body: json, contentType });
        assertError(res, 415, 'unsupported_media_type');
      }
      // No Content-Type at all (a Uint8Array body gets none from fetch).
      const bare = await request(srv, 'POST', '/v1/auth/login', { body: new TextEncoder().encode(json) });
      assertError(bare, 415, 'unsupported_media_type');
      const verifyText = await request(srv, 'POST', '/v1/verify', { body: JSON.stringify({ token: session.access }), contentType: 'text/plain' });
      assertError(verifyText, 415, 'unsupported_media_type');
    });

    it('application/json with a charset parameter is accepted', async () => {
      const res = await request(srv, 'POST', '/v1/verify', {
        body: JSON.stringify({ token: session.access }),
        contentType: 'application/json; charset=utf-8',
      });
      assertStatus(res, 200);
      assert.equal(res.body.active, true);
    });
  });

  describe('413 payload_too_large', () => {
    it('a body over 64 KiB is refused', async () => {
      const huge = JSON.stringify({ email: ADMIN_EMAIL, password: 'x'.repeat(70 * KIB) });
      assertError(await request(srv, 'POST', '/v1/auth/login', { body: huge, contentType: 'application/json' }), 413, 'payload_too_large');
      const hugeToken = JSON.stringify({ token: 'y'.repeat(65 * KIB) });
      assertError(await request(srv, 'POST', '/v1/verify', { body: hugeToken, contentType: 'application/json' }), 413, 'payload_too_large');
    });

    it('even without a Content-Length (chunked upload)', async () => {
      const chunk = new TextEncoder().encode('x'.repeat(16 * KIB));
      let sent = 0;
      const stream = new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"token":"'));
        },
        pull(controller) {
          if (sent >= 6) {
            controller.enqueue(new TextEncoder().encode('"}'));
            controller.close();
            return;
          }
          sent += 1;
          controller.enqueue(chunk);
        },
      });
      const res = await request(srv, 'POST', '/v1/verify', { body: stream, contentType: 'application/json' });
      assertError(res, 413, 'payload_too_large');
    });

    it('a body just under 64 KiB is parsed (not 413)', async () => {
      const body = JSON.stringify({ token: 'z'.repeat(60 * KIB) });
      assert.ok(body.length < 64 * KIB);
      const res = await request(srv, 'POST', '/v1/verify', { body, contentType: 'application/json' });
      assertStatus(res, 200);
      assert.deepEqual(res.body, { active: false });
    });
  });

  describe('404 and 405', () => {
    it('unknown routes are 404 not_found', async () => {
      for (const [method, path] of [
        ['GET', '/v1/nope'],
        ['GET', '/nope'],
        ['POST', '/v1/auth/nope'],
        ['GET', '/v1/auth/sessions/abc/def'],
        ['GET', '/.well-known/nope'],
      ]) {
        const res = await request(srv, method, path, method === 'POST' ? { json: {} } : {});
        assertError(res, 404, 'not_found');
      }
    });

    it('HEAD on a GET route answers like GET without a body', async () => {
      const res = await request(srv, 'HEAD', '/health');
      assertStatus(res, 200);
      assert.equal(res.text, '');
    });

    it('self-registration is 404 when ALLOW_SIGNUP is not set', async () => {
      const res = await request(srv, 'POST', '/v1/auth/register', { json: { email: 'new@example.com', password: 'a password 123' } });
      assertError(res, 404, 'not_found');
    });

    const wrongMethods = [
      ['GET', '/v1/auth/login', 'POST'],
      ['PUT', '/v1/auth/refresh', 'POST'],
      ['GET', '/v1/verify', 'POST'],
      ['DELETE', '/v1/verify', 'POST'],
      ['POST', '/.well-known/jwks.json', 'GET'],
      ['POST', '/health', 'GET'],
      ['PATCH', '/v1/me', 'GET'],
      ['POST', '/v1/auth/sessions', 'GET'],
    ];
    const sendWrong = (method, path) => request(srv, method, path, method === 'GET' || method === 'DELETE' ? {} : { json: {} });

    it('a wrong method on a known route is 405 method_not_allowed', async () => {
      for (const [method, path] of wrongMethods) assertError(await sendWrong(method, path), 405, 'method_not_allowed');
    });

    it('a 405 names the allowed methods in Allow (RFC 9110 section 15.5.6: MUST)', async () => {
      for (const [method, path, allowed] of wrongMethods) {
        const res = await sendWrong(method, path);
        assertStatus(res, 405);
        const allow = res.headers.get('allow') ?? '';
        assert.ok(
          allow.split(',').map((m) => m.trim().toUpperCase()).includes(allowed),
          `${method} ${path}: Allow should include ${allowed}, got "${allow}"`,
        );
      }
    });
  });
});
