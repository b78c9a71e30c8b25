// The authorization-code consent through the Node host, with Debian's headless Chromium on the real
// login and consent pages of oidc-provider and Authlib, the redirect caught on a loopback listener;
// then a refresh once the token has expired.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, test } from 'node:test';
import { OAuth2Plugin } from '../dist/index.js';
import { authlib, chromiumConsent, freePort, oidcProvider, USERNAME, webConnection } from './support.mjs';

/** A listener on the redirect URI's port: the first request's full URL. */
function redirectListener(port) {
  let server;
  const received = new Promise((done) => {
    server = createServer((request, response) => {
      response.end('You may close this window.');
      done(`http://127.0.0.1:${port}${request.url}`);
    });
    server.listen(port, '127.0.0.1');
  });
  return { received, close: () => new Promise((done) => server.close(done)) };
}

const servers = {
  'oidc-provider': { start: oidcProvider, scope: 'openid offline_access api:read', sendsIss: true },
  Authlib: { start: authlib, scope: 'read write', sendsIss: false },
};

describe('consent in Chromium', () => {
  for (const [name, kind] of Object.entries(servers)) {
    test(`${name}: the user consents, the code is exchanged, the API answers for the user`, async () => {
      const port = await freePort();
      const redirectUri = `http://127.0.0.1:${port}/callback`;
      const server = await kind.start({ redirectUri });
      let now = Date.now();
      const plugin = new OAuth2Plugin({
        secrets: (secret) => (secret === 'web-secret' ? server.info.clients['web-client'] : undefined),
        clock: () => now,
      });
      const listener = redirectListener(port);
      try {
        const config = webConnection(server, redirectUri, {
          scope: kind.scope,
          // RFC 9207 where the provider speaks it: a response from another issuer is refused.
          ...(kind.sendsIss ? { issuer: server.info.issuer } : {}),
        });
        const start = plugin.beginAuthorization(config);
        const [redirect, driven] = await Promise.all([listener.received, chromiumConsent(start.url)]);
        assert.equal(JSON.parse(driven.trim().split('\n').pop()).error, null);
        const token = plugin.completeAuthorization(config, redirect);
        assert.ok(token.refreshToken, 'a refresh token comes with the consent');

        const response = await plugin.fetch(config, server.info.api_url);
        assert.equal(response.status, 200);
        const body = await response.json();
        assert.equal(body.sub, USERNAME);
        assert.equal(body.client_id, 'web-client');

        // An hour on, the token has expired: refreshed with the refresh token, no consent again.
        now += 3_600_000;
        const refreshed = plugin.ensureToken(config);
        assert.notEqual(refreshed.accessToken, token.accessToken);
        const again = await plugin.fetch(config, server.info.api_url);
        assert.equal(again.status, 200);
        assert.equal((await again.json()).sub, USERNAME);
      } finally {
        await listener.close();
        await plugin.close();
        await server.stop();
      }
    });
  }
});
