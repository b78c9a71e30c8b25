// Loopback oidc-provider authorization server plus a tiny protected API, for the interop tests.
//
//   node server.mjs [--port N] [--api-port N] [--redirect-uri URL]
//   env: PORT, API_PORT, REDIRECT_URI, ACCESS_TOKEN_TTL (seconds, default 60)
//
// Port 0 (the default) picks a free port. Once both servers listen, exactly one JSON line is printed
// on stdout (everything else goes to stderr). Exits on SIGTERM/SIGINT, and when stdin is a pipe that
// closes (so a test that spawns it with a piped stdin never leaks it).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

// oidc-provider prints notices with console.info (stdout): keep stdout for the JSON line only.
console.info = (...args) => console.error(...args);
const { default: Provider, errors } = await import('oidc-provider');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '0' },
    'api-port': { type: 'string', default: process.env.API_PORT ?? '0' },
    'redirect-uri': { type: 'string', default: process.env.REDIRECT_URI ?? 'http://127.0.0.1:8765/callback' },
  },
});
const HOST = '127.0.0.1';
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL ?? 60);
const API_RESOURCE = 'https://api.example.test';
const API_SCOPE = 'api:read';

// Client secrets. The client-credentials clients' secret needs encoding in Basic auth (RFC 6749
// §2.3.1) and in a form body: both client_auth styles are tested with the same awkward secret.
const SPECIAL_SECRET = 's3cr:t/+&%= ~';
const SECRETS = {
  'cc-client': SPECIAL_SECRET,
  'cc-body': SPECIAL_SECRET,
  'web-client': 'web-secret-1',
  'api-introspector': 'api-introspector-secret',
};

const listen = (server, port) => new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number(port), HOST, () => resolve(server.address().port));
});

// The issuer must name the port, so bind first and attach the provider afterwards.
const asServer = http.createServer();
const asPort = await listen(asServer, args.port);
const issuer = `http://${HOST}:${asPort}`;

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'cc-client',
      client_secret: SECRETS['cc-client'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: API_SCOPE,
    },
    {
      client_id: 'cc-body',
      client_secret: SECRETS['cc-body'],
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: API_SCOPE,
    },
    {
      client_id: 'web-client',
      client_secret: SECRETS['web-client'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [args['redirect-uri']],
      scope: `openid offline_access ${API_SCOPE}`,
    },
    {
      // The protected API's own credentials, used only to call the introspection endpoint.
      client_id: 'api-introspector',
      client_secret: SECRETS['api-introspector'],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'offline_access', API_SCOPE],
  jwks: { keys: [{ ...signingKey, kid: 'sig-1', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true }, // S256 is the only method this version accepts
  rotateRefreshToken: true,
  // Dev interactions only put offline_access in the grant when the request has prompt=consent
  // (OIDC Core §11). Issue a refresh token to any client allowed the refresh_token grant instead,
  // so a plain authorization request (as a user's client sends it) still gets one.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 24 * 3600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 24 * 3600,
  },
  features: {
    devInteractions: { enabled: true }, // built-in login (any login/password) and consent pages
    clientCredentials: { enabled: true },
    // the API's client may introspect any token, a client only its own; a client revokes only its own
    introspection: {
      enabled: true,
      allowedPolicy: async (ctx, client, token) => client.clientId === 'api-introspector' || client.clientId === token.clientId,
    },
    revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => client.clientId === token.clientId },
    resourceIndicators: {
      enabled: true,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
        // opaque (not JWT) so that the token can be introspected
        return { scope: API_SCOPE, audience: API_RESOURCE, accessTokenTTL: ACCESS_TOKEN_TTL, accessTokenFormat: 'opaque' };
      },
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

// oidc-provider accepts client_secret_basic and client_secret_post interchangeably for any client
// registered with either. Be strict, like many real servers: the method used must be the one
// registered, so a test proves which one our client sent. (Checked after the fact: the token the
// provider already issued on a mismatch is never delivered.)
provider.use(async (ctx, next) => {
  await next();
  const client = ctx.oidc?.client;
  if (!client || !['token', 'introspection', 'revocation'].includes(ctx.oidc.route)) return;
  const used = ctx.headers.authorization ? 'client_secret_basic' : 'client_secret_post';
  const registered = client.clientAuthMethod;
  if (registered.startsWith('client_secret_') && used !== registered) {
    ctx.status = 401;
    ctx.body = { error: 'invalid_client', error_description: `client authentication failed: ${registered} required, got ${used}` };
  }
});
asServer.on('request', provider.callback());

// The protected API: 200 only for a token that introspection says is active.
const introspectionUrl = `${issuer}/token/introspection`;
const introspectorAuth = `Basic ${Buffer.from(`api-introspector:${SECRETS['api-introspector']}`).toString('base64')}`;

async function introspect(token) {
  const res = await fetch(introspectionUrl, {
    method: 'POST',
    headers: { authorization: introspectorAuth, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ token }),
  });
  if (!res.ok) throw new Error(`introspection answered ${res.status}: ${await res.text()}`);
  return res.json();
}

const apiServer = http.createServer(async (req, res) => {
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  try {
    const m = /^Bearer ([^\s]+)$/i.exec(req.headers.authorization ?? '');
    const info = m ? await introspect(m[1]) : { active: false };
    console.error(`api: ${req.method} ${req.url} token active=${info.active}`);
    if (!info.active) {
      send(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return;
    }
    send(200, {
      ok: true, method: req.method, path: req.url,
      client_id: info.client_id, sub: info.sub, scope: info.scope, aud: info.aud, exp: info.exp,
    });
  } catch (err) {
    console.error('api error', err);
    send(500, { error: 'server_error' });
  }
});
const apiPort = await listen(apiServer, args['api-port']);

const shutdown = () => {
  asServer.close();
  apiServer.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (fs.fstatSync(0).isFIFO() || fs.fstatSync(0).isSocket()) {
  process.stdin.on('close', shutdown);
  process.stdin.on('end', shutdown);
  process.stdin.resume();
}

process.stdout.write(`${JSON.stringify({
  issuer,
  token_url: `${issuer}/token`,
  authorization_url: `${issuer}/auth`,
  introspection_url: introspectionUrl,
  revocation_url: `${issuer}/token/revocation`,
  api_url: `http://${HOST}:${apiPort}/data`,
  api_resource: API_RESOURCE,
  redirect_uri: args['redirect-uri'],
  access_token_ttl: ACCESS_TOKEN_TTL,
  clients: Object.fromEntries(Object.entries(SECRETS).filter(([id]) => id !== 'api-introspector')),
})}\n`);
