// The three grants of the form, refresh with rotation and the 401 retry, through the Node host,
// against the interop kit's Authlib server over loopback HTTP, client credentials at oidc-provider
// (which has no password grant; its consent is in consent.test.mjs), and the device code grant.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connection, DeviceAuthorizationEnded, OAuth2Error, OAuth2Plugin } from '../dist/index.js';
import { authlib, authlibConsent, freePort, oidcProvider, PASSWORD, SPECIAL_SECRET, USERNAME, webConnection } from './support.mjs';

let server;
let redirectUri;
before(async () => {
  redirectUri = `http://127.0.0.1:${await freePort()}/callback`;
  server = await authlib({ redirectUri });
});
after(() => server?.stop());

const secrets = (map) => (name) => map[name];

async function api(token) {
  const response = await fetch(server.info.api_url, { headers: { Authorization: `Bearer ${token}` } });
  return { status: response.status, body: response.status === 200 ? await response.json() : undefined };
}

async function introspect(clientId, secret, token) {
  const response = await fetch(server.info.introspection_url, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token }).toString(),
  });
  assert.equal(response.status, 200);
  return (await response.json()).active;
}

test('client credentials at oidc-provider: a token for the API resource, body authentication', async (t) => {
  const provider = await oidcProvider();
  t.after(() => provider.stop());
  const plugin = new OAuth2Plugin({ secrets: secrets({ 'cc-secret': SPECIAL_SECRET }) });
  t.after(() => plugin.close());
  const config = connection({
    grantType: 'client-credentials',
    tokenUrl: provider.info.token_url,
    clientId: 'cc-body',
    clientSecretName: 'cc-secret',
    clientAuth: 'request-body',
    scope: 'api:read',
    resourceIndicators: [provider.info.api_resource],
  });
  const response = await plugin.fetch(config, provider.info.api_url);
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.client_id, 'cc-body');
  assert.equal(body.aud, provider.info.api_resource);
});

describe('grants against Authlib', () => {
  test('client credentials: a token the API accepts, cached for the next step', async () => {
    const plugin = new OAuth2Plugin({ secrets: secrets({ 'cc-secret': SPECIAL_SECRET }) });
    const config = connection({
      grantType: 'client-credentials',
      tokenUrl: server.info.token_url,
      clientId: 'cc-basic',
      clientSecretName: 'cc-secret',
      scope: 'read',
    });
    assert.deepEqual(plugin.validateConfig(config), []);
    const token = plugin.ensureToken(config);
    assert.equal(token.tokenType.toLowerCase(), 'bearer');
    assert.equal(token.scope, 'read');
    assert.ok(token.expiresAt > BigInt(Math.floor(Date.now() / 1000)));
    const called = await api(token.accessToken);
    assert.equal(called.status, 200);
    assert.equal(called.body.client_id, 'cc-basic');

    const headers = plugin.authorizationHeaders(config, server.info.api_url);
    assert.deepEqual(headers, [{ name: 'Authorization', value: `Bearer ${token.accessToken}` }]);
    await plugin.close();
  });

  test('password: the user\'s token, with the secret sent in the request body', async () => {
    const plugin = new OAuth2Plugin({ secrets: secrets({ 'cc-secret': SPECIAL_SECRET, 'alice-password': PASSWORD }) });
    const config = connection({
      grantType: 'password',
      tokenUrl: server.info.token_url,
      clientId: 'cc-post',
      clientSecretName: 'cc-secret',
      clientAuth: 'request-body',
      username: USERNAME,
      passwordName: 'alice-password',
      scope: 'read write',
    });
    const response = await plugin.fetch(config, server.info.api_url);
    assert.equal(response.status, 200);
    const body = await response.json();
    assert.equal(body.sub, USERNAME);
    assert.equal(body.scope, 'read write');
    await plugin.close();
  });

  test('a wrong client secret is a typed invalid_client that says what to check', async () => {
    const plugin = new OAuth2Plugin({ secrets: secrets({ 'cc-secret': 'not-the-secret' }) });
    const config = connection({
      grantType: 'client-credentials',
      tokenUrl: server.info.token_url,
      clientId: 'cc-basic',
      clientSecretName: 'cc-secret',
    });
    assert.throws(() => plugin.ensureToken(config), (error) => {
      assert.ok(error instanceof OAuth2Error);
      assert.equal(error.error.tag, 'provider');
      assert.equal(error.error.val.code, 'invalid_client');
      assert.match(error.message, /invalid_client/);
      assert.match(error.message, /client (ID|id)/i);
      return true;
    });
    await plugin.close();
  });

  describe('authorization code, refresh with rotation, the 401 retry', () => {
    let now = Date.now();
    const plugin = new OAuth2Plugin({ secrets: secrets({ 'web-secret': 'web-secret-1' }), clock: () => now });
    let config;
    let first;
    before(() => {
      config = webConnection(server, redirectUri, { scope: 'read write', revocationUrl: server.info.revocation_url });
    });
    after(() => plugin.close());

    test('consent, then the code exchanged for a stored token', async () => {
      assert.throws(() => plugin.ensureToken(config), (error) => error.error?.tag === 'authorization-required');
      const start = plugin.beginAuthorization(config);
      const url = new URL(start.url);
      assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(url.searchParams.get('state'), start.state);
      const redirect = await authlibConsent(start.url);
      assert.ok(redirect.startsWith(redirectUri), redirect);
      first = plugin.completeAuthorization(config, redirect);
      assert.ok(first.refreshToken);
      assert.equal((await api(first.accessToken)).body.sub, USERNAME);
      // The state is single-use.
      assert.throws(() => plugin.completeAuthorization(config, redirect), (error) => error.error?.tag === 'state-mismatch');
    });

    test('after expiry the token is refreshed once, and the provider rotated the refresh token', async () => {
      now += 3_600_000;
      const refreshed = plugin.ensureToken(config);
      assert.notEqual(refreshed.accessToken, first.accessToken);
      assert.ok(refreshed.refreshToken);
      assert.notEqual(refreshed.refreshToken, first.refreshToken);
      assert.equal(await introspect('web-client', 'web-secret-1', first.refreshToken), false);
      assert.equal(await introspect('web-client', 'web-secret-1', refreshed.refreshToken), true);
      assert.equal((await api(refreshed.accessToken)).status, 200);
      assert.equal(plugin.ensureToken(config).accessToken, refreshed.accessToken, 'served from the store');
      first = refreshed;
    });

    test('a 401 drops the refused token and the request goes again with a new one', async () => {
      const revoked = await fetch(server.info.revocation_url, {
        method: 'POST',
        headers: {
          Authorization: `Basic ${Buffer.from('web-client:web-secret-1').toString('base64')}`,
          'Content-Type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: first.accessToken, token_type_hint: 'access_token' }).toString(),
      });
      assert.equal(revoked.status, 200);
      assert.equal((await api(first.accessToken)).status, 401);

      const response = await plugin.fetch(config, server.info.api_url);
      assert.equal(response.status, 200);
      assert.equal((await response.json()).sub, USERNAME);
      const now = plugin.ensureToken(config);
      assert.notEqual(now.accessToken, first.accessToken);
    });

    test('revoking disconnects: both tokens revoked at the provider and gone from the store', async () => {
      const held = plugin.ensureToken(config);
      const revocation = plugin.revokeTokens(config);
      assert.deepEqual(revocation, { refreshToken: { tag: 'revoked' }, accessToken: { tag: 'revoked' } });
      assert.equal(await introspect('web-client', 'web-secret-1', held.refreshToken), false);
      assert.throws(() => plugin.ensureToken(config), (error) => error.error?.tag === 'authorization-required');
    });
  });
});

describe('device code at Authlib', () => {
  let provider;
  before(async () => {
    provider = await authlib({ deviceInterval: 1 });
  });
  after(() => provider?.stop());
  const config = () => connection({
    grantType: 'device-code',
    tokenUrl: provider.info.token_url,
    deviceAuthorizationUrl: provider.info.device_authorization_url,
    clientId: 'device-client',
    scope: 'read',
  });
  /** The user's decision on Authlib's verification page. */
  const decide = async (userCode, action) => {
    const page = await fetch(provider.info.device_verification_url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user_code: userCode, username: USERNAME, password: PASSWORD, action }).toString(),
    });
    return page.text();
  };

  test('started and polled by hand: pending until the user approves', async (t) => {
    const plugin = new OAuth2Plugin({ secrets: () => undefined });
    t.after(() => plugin.close());
    const started = plugin.startDeviceAuthorization(config());
    assert.equal(started.intervalSeconds, 1);
    assert.equal(plugin.pollDeviceAuthorization(config(), started.deviceCode).tag, 'pending');
    assert.match(await decide(started.userCode, 'allow'), /data-result="approved"/);
    await new Promise((done) => setTimeout(done, 1_000));
    const poll = plugin.pollDeviceAuthorization(config(), started.deviceCode);
    assert.equal(poll.tag, 'granted');
    assert.equal((await (await plugin.fetch(config(), provider.info.api_url)).json()).sub, USERNAME);
  });

  test('authorizeDevice: shown to the user, polled until approved, the token stored', async (t) => {
    const plugin = new OAuth2Plugin({ secrets: () => undefined });
    t.after(() => plugin.close());
    let approval;
    const token = await plugin.authorizeDevice(config(), (started) => {
      assert.ok(started.verificationUriComplete.includes(encodeURIComponent(started.userCode)) || started.verificationUriComplete.includes(started.userCode));
      approval = decide(started.userCode, 'allow');
    });
    assert.match(await approval, /data-result="approved"/);
    assert.equal(plugin.ensureToken(config()).accessToken, token.accessToken);
    const response = await plugin.fetch(config(), provider.info.api_url);
    assert.equal((await response.json()).sub, USERNAME);
  });

  test('authorizeDevice: a refusal ends it with access_denied', async (t) => {
    const plugin = new OAuth2Plugin({ secrets: () => undefined });
    t.after(() => plugin.close());
    await assert.rejects(plugin.authorizeDevice(config(), (started) => { decide(started.userCode, 'deny'); }), (error) => {
      assert.ok(error instanceof DeviceAuthorizationEnded);
      assert.equal(error.outcome, 'denied');
      assert.equal(error.error.code, 'access_denied');
      return true;
    });
  });
});
