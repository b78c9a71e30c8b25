// The signing import on node:crypto: private_key_jwt client assertions with RS256, PS256 and ES256,
// and one naming its key by the certificate's thumbprint, verified by Authlib (joserfc); the key
// read from the secrets callback by the host and never handed to the component.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connection, OAuth2Error, OAuth2Plugin, pemSigner } from '../dist/index.js';
import { authlib, makeKeys, scratch } from './support.mjs';

describe('private_key_jwt at Authlib', () => {
  let server;
  let dir;
  let pem;
  before(async () => {
    dir = scratch('keys');
    await makeKeys(dir.dir);
    pem = (file) => readFileSync(join(dir.dir, file), 'utf8');
    server = await authlib({ clientJwks: join(dir.dir, 'jwks.json') });
  });
  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  const config = (key, algorithm, keyId) => connection({
    grantType: 'client-credentials',
    tokenUrl: server.info.token_url,
    clientId: 'pkjwt-client',
    clientAuth: 'private-key-jwt',
    signingKey: { name: key, algorithm, keyId },
    scope: 'read',
  });

  for (const [algorithm, file, keyId] of [['rs256', 'rsa.pem', 'rsa-1'], ['ps256', 'rsa.pem', 'rsa-1'],
    ['es256', 'ec.pem', 'ec-1'], ['rs256', 'rsa-cert.pem', undefined]]) {
    test(`${algorithm} with ${file}${keyId ? ` as ${keyId}` : ', named by its certificate'}: the API accepts the token`, async () => {
      const asked = [];
      const plugin = new OAuth2Plugin({ secrets: (name) => { asked.push(name); return name === 'client-key' ? pem(file) : undefined; } });
      try {
        const response = await plugin.fetch(config('client-key', algorithm, keyId), server.info.api_url);
        assert.equal(response.status, 200);
        assert.equal((await response.json()).client_id, 'pkjwt-client');
        assert.ok(asked.every((name) => name === 'client-key'), 'the host read only the key');
      } finally {
        await plugin.close();
      }
    });
  }

  test('a key the provider does not know is invalid_client; a P-256 key for RS256 a typed signing error', async () => {
    const plugin = new OAuth2Plugin({ secrets: (name) => ({ wrong: pem('wrong.pem'), ec: pem('ec.pem') })[name] });
    try {
      assert.throws(() => plugin.ensureToken(config('wrong', 'rs256', 'rsa-1')),
        (e) => e instanceof OAuth2Error && e.error.tag === 'provider' && e.error.val.code === 'invalid_client');
      assert.throws(() => plugin.ensureToken(config('ec', 'rs256', undefined)),
        (e) => e.error?.tag === 'signing' && e.error.val.tag === 'wrong-algorithm');
      assert.throws(() => plugin.ensureToken(config('nothing', 'es256', undefined)),
        (e) => e.error?.tag === 'signing' && e.error.val.tag === 'unknown-key');
    } finally {
      await plugin.close();
    }
  });

  test('a private key named as a client secret never reaches the component', async () => {
    const plugin = new OAuth2Plugin({ secrets: () => pem('rsa.pem') });
    try {
      assert.throws(() => plugin.ensureToken(connection({
        grantType: 'client-credentials', tokenUrl: server.info.token_url, clientId: 'cc-basic', clientSecretName: 'client-key',
      })), (e) => {
        assert.equal(e.error?.tag, 'secret-store');
        assert.match(e.message, /holds a private key/);
        assert.ok(!e.message.includes('PRIVATE KEY-----\n'));
        return true;
      });
    } finally {
      await plugin.close();
    }
  });
});

test('keys the Rust host refuses are refused here too, with the same advice', () => {
  const sec1 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' });
  const short = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const small = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  const signer = pemSigner((name) => ({ sec1, short, p384, small })[name]);
  const refused = (name, algorithm, pattern) => assert.throws(() => signer.sign(name, algorithm, new Uint8Array(1)),
    (e) => e.error.tag === 'unusable-key' && pattern.test(e.message) && !e.message.includes('PRIVATE KEY-----\n'));
  refused('sec1', 'es256', /openssl pkcs8 -topk8 -nocrypt/);
  refused('short', 'rs256', /1024 bits/);
  refused('p384', 'es256', /neither an RSA key nor a P-256 key/);
  refused('small', 'rs256', /public exponent is 3/);
});
