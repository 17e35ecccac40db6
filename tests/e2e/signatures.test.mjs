// Signatures: edgeauth signs and verifies Ed25519 through the platform's WebCrypto, and derives its
// public keys there too. Ed25519 is deterministic (RFC 8032), so an independent implementation
// (Node's crypto, with the key derived from SIGNING_SECRET as documented in forge.mjs) must compute
// byte for byte the signature edgeauth put on its tokens, and edgeauth must accept what Node signs.
// The pure-Rust side (ed25519-compact) accepting edgeauth's tokens is consumers.test.mjs
// (consumer-rs /offline); the host backend's RFC 8032 vectors are tests/signatures.rs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startServer } from './harness.mjs';
import { claimsOf, forger, headerOf } from './forge.mjs';
import { assertStatus, bootstrap, loginToken, request, show, verify } from './client.mjs';

/** Node's Ed25519 signature (base64url) of `token`'s signing input under `privateKey`. */
function nodeSignature(token, privateKey) {
  const input = token.slice(0, token.lastIndexOf('.'));
  return crypto.sign(null, Buffer.from(input), privateKey).toString('base64url');
}

describe('signatures', () => {
  let srv;
  let boot;
  let forge;

  before(async () => {
    srv = await startServer({ name: 'signatures', vars: { PBKDF2_ITERATIONS: '1000' } });
    boot = await bootstrap(srv);
    await loginToken(srv); // the first token makes the first signing key
    forge = await forger(srv); // fails loudly if a derived public key differs from D1's
  });

  after(async () => {
    if (srv) await srv.stop();
  });

  it("edgeauth's public keys are the ones Node derives from SIGNING_SECRET", async () => {
    const jwks = await request(srv, 'GET', '/.well-known/jwks.json');
    assertStatus(jwks, 200);
    assert.ok(jwks.body.keys.length >= 1, show(jwks));
    for (const k of jwks.body.keys) assert.equal(k.x, forge.key(k.kid).x, `x of ${k.kid}`);
  });

  it('the signature on a token edgeauth issued is byte-identical to the one Node computes', async () => {
    for (let i = 0; i < 3; i++) {
      const { access } = await loginToken(srv);
      const { kid } = headerOf(access);
      assert.equal(kid, forge.current);
      const ours = access.slice(access.lastIndexOf('.') + 1);
      assert.equal(ours, nodeSignature(access, forge.key(kid).privateKey), `token ${i + 1}`);
      assert.equal(Buffer.from(ours, 'base64url').length, 64);
    }
  });

  it('edgeauth accepts tokens Node signs with its key, and refuses one with a flipped signature bit', async () => {
    const { access } = await loginToken(srv);
    const now = Math.floor(Date.now() / 1000);
    const token = forge.sign({ ...claimsOf(access), jti: 'signed-by-node', iat: now, nbf: now, exp: now + 300 });
    const body = await verify(srv, token);
    assert.equal(body.active, true, JSON.stringify(body));
    assert.equal(body.sid, claimsOf(access).sid);
    // The same token as a bearer credential (the authenticated-route path, not only /v1/verify).
    const me = await request(srv, 'GET', '/v1/me', { bearer: token });
    assertStatus(me, 200);

    const signature = Buffer.from(token.slice(token.lastIndexOf('.') + 1), 'base64url');
    signature[10] ^= 1;
    const flipped = `${token.slice(0, token.lastIndexOf('.'))}.${signature.toString('base64url')}`;
    assert.deepEqual(await verify(srv, flipped), { active: false });
  });

  it('after a rotation, the new key (derived through WebCrypto) signs what Node signs, and each side accepts the other', async () => {
    const rot = await request(srv, 'POST', '/v1/signing-keys/rotate', { bearer: boot.key });
    assertStatus(rot, 200);
    await forge.reload(); // re-derives every key in Node and compares with D1's public keys
    const k2 = rot.body.signing_key.kid;
    assert.equal(forge.current, k2);
    const { access } = await loginToken(srv);
    assert.equal(headerOf(access).kid, k2);
    assert.equal(access.slice(access.lastIndexOf('.') + 1), nodeSignature(access, forge.key(k2).privateKey));
    const now = Math.floor(Date.now() / 1000);
    const token = forge.sign({ ...claimsOf(access), jti: 'signed-by-node-k2', iat: now, nbf: now, exp: now + 300 });
    assert.equal((await verify(srv, token)).active, true);
  });
});
