// What the Node host itself promises: the Rust host's component, its HTTP rules, and no secret in
// anything it prints or throws, whatever a hostile provider sends back.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { permittedOrigins, refusal } from '../dist/destination.js';
import { bypassesProxy } from '../dist/http-transport.js';
import { component, ComponentFailure, connection, OAuth2Error, OAuth2Plugin, SealingKeys } from '../dist/index.js';
import { encodings, fixture, makeCa, oauth2Host, REDIS_PASSWORD, redisServer, scratch } from './support.mjs';

test('the component is the one the Rust host embeds', () => {
  const out = spawnSync(oauth2Host(), ['--version'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const match = /component sha256 ([0-9a-f]{64}) \((\d+) bytes\)/.exec(out.stdout);
  assert.ok(match, out.stdout);
  assert.equal(component.sha256, match[1]);
  assert.equal(component.bytes, Number(match[2]));
});

test('an argument of the wrong shape is a clear failure, and the plugin serves the next call', async () => {
  const plugin = new OAuth2Plugin({ secrets: () => undefined });
  const config = connection({ grantType: 'client-credentials', tokenUrl: 'https://login.example.com/t', clientId: 'c', clientSecretName: 's' });
  assert.throws(() => plugin.validateConfig({ ...config, grantType: 'implicit' }),
    (e) => e instanceof ComponentFailure && /does not fit the WIT types: "implicit" is not one of the cases of grant-type/.test(e.message));
  assert.throws(() => plugin.validateConfig({ ...config, clientId: 7 }), /expected a string/);
  assert.deepEqual(plugin.validateConfig(config), []);
  await plugin.close();
});

describe('HTTP rules', () => {
  let server;
  before(async () => {
    server = await fixture('slow-provider.mjs');
  });
  after(() => server?.stop());
  const config = (path) => connection({
    grantType: 'client-credentials', tokenUrl: `${server.info.url}${path}`, clientId: 'c', clientSecretName: 's',
  });
  const failure = (plugin, path) => {
    try {
      plugin.ensureToken(config(path));
    } catch (error) {
      assert.ok(error instanceof OAuth2Error, String(error));
      return error.error;
    }
    assert.fail('the token request succeeded');
  };

  test('a redirect is returned to the component, never followed', async () => {
    const plugin = new OAuth2Plugin({ secrets: () => 'secret' });
    const error = failure(plugin, '/redirect');
    assert.equal(error.tag, 'malformed-response');
    assert.equal(error.val.status, 302);
    assert.equal(await (await fetch(`${server.info.url}/count`)).text(), '0');
    await plugin.close();
  });

  test('a body over the limit is refused with the limit', async () => {
    const plugin = new OAuth2Plugin({ secrets: () => 'secret' });
    assert.deepEqual(failure(plugin, '/big'), { tag: 'transport', val: { tag: 'body-too-large', val: 1048576n } });
    await plugin.close();
  });

  test('a server that never answers times out at the configured limit', async () => {
    const plugin = new OAuth2Plugin({ secrets: () => 'secret', http: { timeoutMs: 1_000 } });
    const started = Date.now();
    assert.deepEqual(failure(plugin, '/silent'), { tag: 'transport', val: { tag: 'timeout' } });
    assert.ok(Date.now() - started < 5_000);
    await plugin.close();
  });

  test('the component\'s requests may go only to its endpoints\' origins, over https or to loopback', () => {
    const config = connection({
      grantType: 'device-code',
      tokenUrl: 'https://login.example.com/oauth/token',
      clientId: 'c',
      deviceAuthorizationUrl: 'https://device.example.com/authorize',
    });
    const permitted = permittedOrigins(config);
    assert.deepEqual(permitted, ['https://login.example.com', 'https://device.example.com']);
    assert.equal(refusal('https://login.example.com/other/path?x=1', permitted), undefined);
    assert.equal(refusal('https://device.example.com/authorize', permitted), undefined);
    for (const elsewhere of ['https://revoke.example.com/revoke', 'https://login.example.com:8443/token',
      'http://login.example.com/token', 'https://169.254.169.254/latest/meta-data', 'data:text/plain,x', 'not a url']) {
      assert.match(refusal(elsewhere, permitted), /may reach only the origins/, elsewhere);
    }
    // The revocation endpoint, once configured, is reachable too.
    assert.equal(refusal('https://revoke.example.com/r', permittedOrigins({ ...config, revocationUrl: 'https://revoke.example.com/r' })), undefined);
    // A plain http endpoint passes only on loopback, even when it is the connection's own.
    const plain = permittedOrigins({ ...config, tokenUrl: 'http://provider.example/token', deviceAuthorizationUrl: 'http://127.0.0.1:9/d' });
    assert.match(refusal('http://provider.example/token', plain), /plain http to provider\.example/);
    assert.equal(refusal('http://127.0.0.1:9/d', plain), undefined);
  });

  test('a proxy carries https to other machines only: never loopback, never plain http', async (t) => {
    const proxy = await fixture('recording-proxy.mjs');
    t.after(() => proxy.stop());
    const plugin = new OAuth2Plugin({ secrets: () => 'secret', http: { proxy: proxy.info.url } });
    t.after(() => plugin.close());
    const seen = async () => (await fetch(`${proxy.info.url}/seen`)).json();
    // Loopback, through the proxy had it been used: the redirect comes back from the server itself.
    assert.equal(failure(plugin, '/redirect').val.status, 302);
    assert.deepEqual(await seen(), []);

    assert.throws(() => plugin.ensureToken(connection({
      grantType: 'client-credentials', tokenUrl: 'https://Provider.Example.invalid/token', clientId: 'c', clientSecretName: 's',
    })), (error) => {
      assert.deepEqual(error.error?.tag, 'transport');
      assert.equal(error.error.val.tag, 'connect');
      assert.match(error.error.val.val, /answered 403 to CONNECT provider\.example\.invalid:443/);
      return true;
    });
    assert.deepEqual(await seen(), ['CONNECT provider.example.invalid:443 HTTP/1.1'], 'the host name as the URL parser reads it');
    assert.throws(() => new OAuth2Plugin({ secrets: () => undefined, http: { proxy: 'socks5://127.0.0.1:1080' } }), /must be an http:\/\/ URL/);
    // From the environment, a proxy this host cannot speak is passed over, as a malformed one is.
    const saved = process.env.ALL_PROXY;
    process.env.ALL_PROXY = 'socks5://127.0.0.1:1080';
    try {
      await new OAuth2Plugin({ secrets: () => undefined }).close();
    } finally {
      if (saved === undefined) delete process.env.ALL_PROXY;
      else process.env.ALL_PROXY = saved;
    }
  });

  test('through the proxy, TLS runs end to end to the named host, checked against the given CA', async (t) => {
    const dir = scratch('tunnel');
    t.after(dir.remove);
    await makeCa(dir.dir, 'provider.test');
    const world = await fixture('tunnel-world.mjs', [join(dir.dir, 'cert.pem'), join(dir.dir, 'key.pem')]);
    t.after(() => world.stop());
    const ca = readFileSync(join(dir.dir, 'ca.pem'), 'utf8');
    const plugin = new OAuth2Plugin({ secrets: () => 'secret', http: { proxy: world.info.proxy, caCertificates: ca } });
    t.after(() => plugin.close());
    const config = (host) => connection({
      grantType: 'client-credentials', tokenUrl: `https://${host}/token`, clientId: 'c', clientSecretName: 's',
    });
    assert.equal(plugin.ensureToken(config('provider.test')).accessToken, 'through-the-tunnel-1');
    plugin.forgetToken(config('provider.test'));
    assert.equal(plugin.ensureToken(config('provider.test')).accessToken, 'through-the-tunnel-2');
    assert.deepEqual(await (await fetch(world.info.seen)).json(), ['CONNECT provider.test:443'],
      'one tunnel, kept alive for the second request');

    // The certificate names provider.test, not this host: refused however the tunnel got there.
    assert.throws(() => plugin.ensureToken(config('other.test')), (error) => {
      assert.equal(error.error?.val?.tag, 'tls', String(error.message));
      return true;
    });
    // Without the CA, the same endpoint is not trusted.
    const untrusting = new OAuth2Plugin({ secrets: () => 'secret', http: { proxy: world.info.proxy } });
    t.after(() => untrusting.close());
    assert.throws(() => untrusting.ensureToken(config('provider.test')), (error) => error.error?.val?.tag === 'tls');
  });

  test('NO_PROXY patterns are read as the Rust host reads them', () => {
    const patterns = ['internal.example', '.corp.example', '*.svc', 'idp-*'];
    for (const direct of ['internal.example', 'INTERNAL.example', 'a.corp.example', 'x.svc', 'idp-eu.example']) {
      assert.ok(bypassesProxy(direct, patterns), direct);
    }
    for (const proxied of ['other.example', 'corp.example', 'svc.example', 'xidp-eu.example']) {
      assert.ok(!bypassesProxy(proxied, patterns), proxied);
    }
    assert.ok(bypassesProxy('anything.example', ['*']));
  });

  test('the component refuses a plain http endpoint before anything is sent', async () => {
    const plugin = new OAuth2Plugin({ secrets: () => 'secret' });
    const problems = plugin.validateConfig(connection({
      grantType: 'client-credentials', tokenUrl: 'http://provider.example/token', clientId: 'c', clientSecretName: 's',
    }));
    assert.deepEqual(problems.map((p) => p.field), ['token_url']);
    await plugin.close();
  });
});

test('no secret in anything the Node host prints or throws, whatever the provider echoes', async (t) => {
  const SENTINELS = {
    SENTINEL_CLIENT_SECRET: 'cs-Sentinel/+ 7f3e:&%',
    SENTINEL_PASSWORD: 'pw-Sentinel 9a1c!"é',
    SENTINEL_REDIS_PASSWORD: REDIS_PASSWORD,
  };
  const accessToken = 'at-Sentinel-5d2b0e';
  const refreshToken = 'rt-Sentinel-81c4aa';
  const provider = await fixture('echo-provider.mjs', [accessToken, refreshToken]);
  const redis = await redisServer();
  const dir = scratch('sentinel');
  t.after(async () => {
    await provider.stop();
    await redis.stop();
    dir.remove();
  });
  const keyLine = SealingKeys.newKeyLine();
  const keyFile = join(dir.dir, 'store.key');
  writeFileSync(keyFile, `${keyLine}\n`, { mode: 0o600 });

  const out = spawnSync(process.execPath, [fileURLToPath(new URL('fixtures/sentinel-scenario.mjs', import.meta.url)),
    provider.info.url, redis.url, keyFile], { encoding: 'utf8', env: { ...process.env, ...SENTINELS }, timeout: 60_000 });
  const printed = `${out.stdout}\n${out.stderr}`;
  assert.equal(out.status, 0, printed);
  // The scenario went where it should: every case ran and failed as a provider made it fail.
  for (const expected of ['SCENARIO DONE', 'CASE password grant refused', 'invalid_client', 'invalid_grant',
    'token endpoint answered 500', 'answered 302', 'CASE wrong redis password', 'WRONGPASS']) {
    assert.ok(printed.includes(expected), `the output lacks ${expected}:\n${printed}`);
  }
  const secrets = [...Object.values(SENTINELS), accessToken, refreshToken, keyLine];
  for (const secret of secrets) {
    for (const form of encodings(secret)) {
      assert.ok(!printed.includes(form), `${JSON.stringify(form)} (a form of a secret) was printed:\n${printed}`);
    }
  }
  // The provider did echo them: the component's cleaning is what kept them out.
  const stored = redis.cli('KEYS', '*');
  assert.match(stored, /oauth2-host:entry:\{oauth2\/token\//);
  for (const value of redis.cli('--scan').split('\n').filter(Boolean).map((key) => redis.cli('GET', key))) {
    assert.match(value, /^v1\.[0-9a-f]{8}\./);
    for (const secret of secrets) assert.ok(!value.includes(secret));
  }
});
