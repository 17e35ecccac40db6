// Token forging for the end-to-end suites: signs arbitrary access tokens with edgeauth's *real*
// signing keys, so a test can make tokens the service would never issue (expired, wrong audience,
// far-future expiry, signed by a retired key) and still have a valid signature.
//
// edgeauth stores no private keys (src/tokens.rs): a key row holds `kid` and a random `seed_salt`,
// and the private key is derived from the SIGNING_SECRET Worker secret, which the harness chose:
//   root = HMAC-SHA256(SIGNING_SECRET, "edgeauth/v1/signing-key")     (crypto::derive_key)
//   seed = HMAC-SHA256(root, kid || 0x00 || base64url-decoded seed_salt)   (tokens::key_pair)
//   Ed25519 key pair from the 32-byte seed.
//
//   const forge = await forger(srv);                 // reads signing_keys from the local D1
//   const token = forge.sign({ ...claims, aud: 'https://elsewhere' });   // current key
//   const old = forge.sign(claims, { kid: retiredKid });
import crypto from 'node:crypto';
import { d1Query } from './harness.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const b64urlJson = (value) => b64url(Buffer.from(JSON.stringify(value)));

// DER prefix of a PKCS#8 Ed25519 private key; the 32-byte seed follows it.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const hmac = (key, ...parts) => {
  const mac = crypto.createHmac('sha256', key);
  for (const p of parts) mac.update(p);
  return mac.digest();
};

/** The signing root edgeauth derives from SIGNING_SECRET (the secret's UTF-8 bytes as the key). */
export function signingRoot(signingSecret) {
  return hmac(Buffer.from(signingSecret, 'utf8'), Buffer.from('edgeauth/v1/signing-key', 'utf8'));
}

/**
 * The key pair of signing key `kid` with base64url salt `seedSalt`.
 * Returns { kid, seed, privateKey, publicKey (KeyObjects), x (base64url public key) }.
 */
export function deriveSigningKey(signingSecret, kid, seedSalt) {
  const salt = Buffer.from(seedSalt, 'base64url');
  const seed = hmac(signingRoot(signingSecret), Buffer.from(kid, 'utf8'), Buffer.from([0]), salt);
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = crypto.createPublicKey(privateKey);
  const x = publicKey.export({ format: 'jwk' }).x;
  return { kid, seed, privateKey, publicKey, x };
}

/** Every row of signing_keys in the server's local D1 (ordered newest first). */
export async function signingKeyRows(srv) {
  return d1Query(
    srv,
    'SELECT kid, public_key, seed_salt, status, created_at, retired_at, publish_until ' +
      'FROM signing_keys ORDER BY created_at DESC, kid',
  );
}

/** Signs header.payload with `privateKey` (Ed25519); header and payload are taken as given. */
export function signJwt(privateKey, header, payload) {
  const input = `${b64urlJson(header)}.${b64urlJson(payload)}`;
  return `${input}.${b64url(crypto.sign(null, Buffer.from(input), privateKey))}`;
}

/** True when `token`'s signature verifies under `publicKey` (a KeyObject). */
export function signatureValid(token, publicKey) {
  const [h, p, s] = token.split('.');
  return crypto.verify(null, Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'));
}

/** The decoded payload of a compact JWT (unverified). */
export function claimsOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** The decoded header of a compact JWT (unverified). */
export function headerOf(token) {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
}

/**
 * Reads the server's signing keys from D1 and derives their private halves. Each derived public key
 * is checked against the row's public_key, so a wrong derivation fails here, loudly.
 * Returns { keys: Map<kid, key>, rows, current (kid of the current key), key(kid),
 *           sign(payload, { kid?, header? }) }.
 * sign(): header { alg: 'EdDSA', typ: 'at+jwt', kid } overridden by opts.header (a member set to
 * undefined is dropped); payload as given. Keys are re-read with forge.reload().
 */
export async function forger(srv) {
  const forge = {
    keys: new Map(),
    rows: [],
    current: undefined,
    async reload() {
      forge.rows = await signingKeyRows(srv);
      forge.keys = new Map();
      for (const row of forge.rows) {
        const key = deriveSigningKey(srv.signingSecret, row.kid, row.seed_salt);
        if (key.x !== row.public_key) {
          throw new Error(`forge: derived public key of ${row.kid} (${key.x}) differs from D1's ${row.public_key}`);
        }
        forge.keys.set(row.kid, key);
      }
      forge.current = forge.rows.find((r) => r.status === 'current')?.kid;
      return forge;
    },
    key(kid) {
      const key = forge.keys.get(kid);
      if (!key) throw new Error(`forge: no signing key ${kid} in D1 (have ${[...forge.keys.keys()].join(', ')})`);
      return key;
    },
    sign(payload, { kid = forge.current, header = {} } = {}) {
      const fullHeader = { alg: 'EdDSA', typ: 'at+jwt', kid, ...header };
      for (const k of Object.keys(fullHeader)) if (fullHeader[k] === undefined) delete fullHeader[k];
      return signJwt(forge.key(kid).privateKey, fullHeader, payload);
    },
  };
  return forge.reload();
}
