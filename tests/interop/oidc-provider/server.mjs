// Loopback oidc-provider authorization server plus a tiny protected API, for the interop tests.
//
//   node server.mjs [--port N] [--api-port N] [--redirect-uri URL] [--client-jwks JWKS.json]
//                   [--device-interval 5] [--device-expires-in 600]
//   env: PORT, API_PORT, REDIRECT_URI, ACCESS_TOKEN_TTL (seconds, default 60), CLIENT_JWKS,
//        DEVICE_INTERVAL, DEVICE_EXPIRES_IN (defaults for the flags)
//
// Port 0 (the default) picks a free port. Once both servers listen, exactly one JSON line is printed
// on stdout (everything else goes to stderr). Exits on SIGTERM/SIGINT, and when stdin is a pipe that
// closes (so a test that spawns it with a piped stdin never leaks it).
// JSON fields: issuer, token_url, authorization_url, introspection_url, revocation_url,
// device_authorization_url (/device/auth), device_verification_url (/device), device_interval,
// device_expires_in, discovery_url, api_url, api_resource, redirect_uri, access_token_ttl,
// clients {id: secret or null}, client_auth {id: token_endpoint_auth_method},
// client_assertion_audiences ([issuer, token URL]: the aud values a client assertion may carry at any
// endpoint; oidc-provider also takes the URL of the endpoint called, e.g. revocation_url at revocation).
//
// Clients (API tokens need resource=api_resource: scope api:read, opaque, checked by introspection):
//   cc-client    client_secret_basic  client_credentials
//   cc-body      client_secret_post   client_credentials
//   web-client   client_secret_basic  authorization_code, refresh_token (redirect URI: --redirect-uri)
//   device-client  none (public)      device_code, refresh_token
// and only with --client-jwks FILE (a public JWKS, as ../authlib/make_keys.py writes):
//   pkjwt-client private_key_jwt (keys: the JWKS; RS256, PS256, ES256)  client_credentials,
//   sjwt-client  client_secret_jwt (HS256, secret in clients)   authorization_code, refresh_token
// A client assertion needs exp, a single-use jti, iss = sub = client_id; every refusal is 401
// invalid_client "client authentication failed" (the reason is only logged). Clock tolerance 15 s.
// Device flow (RFC 8628): POST /device/auth, then the user at /device?user_code=... (confirm page,
// dev login, dev consent; see device.mjs). The library's response has no interval and it never
// answers slow_down: this server adds "interval": --device-interval to the response, not enforced.
// --device-expires-in is the device code's lifetime (expired_token after it). Reusing a device code
// gives invalid_grant and revokes every token issued from it (as for authorization codes).
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
    'client-jwks': { type: 'string', default: process.env.CLIENT_JWKS },
    'device-interval': { type: 'string', default: process.env.DEVICE_INTERVAL ?? '5' },
    'device-expires-in': { type: 'string', default: process.env.DEVICE_EXPIRES_IN ?? '600' },
  },
});
const HOST = '127.0.0.1';
const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL ?? 60);
const API_RESOURCE = 'https://api.example.test';
const API_SCOPE = 'api:read';
const DEVICE_INTERVAL = Number(args['device-interval']);
const DEVICE_EXPIRES_IN = Number(args['device-expires-in']);
const CLIENT_JWKS = args['client-jwks'] ? JSON.parse(fs.readFileSync(args['client-jwks'], 'utf8')) : null;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// Client secrets. The client-credentials clients' secret needs encoding in Basic auth (RFC 6749
// §2.3.1) and in a form body: both client_auth styles are tested with the same awkward secret.
const SPECIAL_SECRET = 's3cr:t/+&%= ~';
const SECRETS = {
  'cc-client': SPECIAL_SECRET,
  'cc-body': SPECIAL_SECRET,
  'web-client': 'web-secret-1',
  'api-introspector': 'api-introspector-secret',
  'device-client': null,
};
if (CLIENT_JWKS) {
  SECRETS['pkjwt-client'] = null;
  SECRETS['sjwt-client'] = 'sjwt-secret-for-hs256-0123456789abcdef'; // HS256 wants >= 32 bytes
}

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
    {
      // RFC 8628 device flow, a public client
      client_id: 'device-client',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      scope: `openid offline_access ${API_SCOPE}`,
    },
    ...(CLIENT_JWKS ? [
      {
        client_id: 'pkjwt-client',
        token_endpoint_auth_method: 'private_key_jwt', // RS256, PS256, ES256 (any asymmetric alg enabled)
        jwks: CLIENT_JWKS,
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [args['redirect-uri']],
        scope: `openid offline_access ${API_SCOPE}`,
      },
      {
        client_id: 'sjwt-client',
        client_secret: SECRETS['sjwt-client'],
        token_endpoint_auth_method: 'client_secret_jwt',
        token_endpoint_auth_signing_alg: 'HS256',
        grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [args['redirect-uri']],
        scope: `openid offline_access ${API_SCOPE}`,
      },
    ] : []),
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
    DeviceCode: DEVICE_EXPIRES_IN,
  },
  features: {
    devInteractions: { enabled: true }, // built-in login (any login/password) and consent pages
    clientCredentials: { enabled: true },
    // RFC 8628: POST /device/auth, user pages at /device (then dev login and consent)
    deviceFlow: { enabled: true },
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
  if (['client_secret_basic', 'client_secret_post'].includes(registered) && used !== registered) {
    ctx.status = 401;
    ctx.body = { error: 'invalid_client', error_description: `client authentication failed: ${registered} required, got ${used}` };
  }
});
// oidc-provider's device authorization response has no interval (RFC 8628 §3.2: then 5 s) and it
// never answers slow_down: advertise --device-interval so that a client may poll that often.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && ctx.body?.device_code) {
    ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
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

const CLIENT_AUTH = {};
for (const id of Object.keys(SECRETS)) CLIENT_AUTH[id] = (await provider.Client.find(id)).clientAuthMethod;

process.stdout.write(`${JSON.stringify({
  issuer,
  token_url: `${issuer}/token`,
  authorization_url: `${issuer}/auth`,
  introspection_url: introspectionUrl,
  revocation_url: `${issuer}/token/revocation`,
  device_authorization_url: `${issuer}/device/auth`,
  device_verification_url: `${issuer}/device`,
  device_interval: DEVICE_INTERVAL,
  device_expires_in: DEVICE_EXPIRES_IN,
  discovery_url: `${issuer}/.well-known/openid-configuration`,
  api_url: `http://${HOST}:${apiPort}/data`,
  api_resource: API_RESOURCE,
  redirect_uri: args['redirect-uri'],
  access_token_ttl: ACCESS_TOKEN_TTL,
  clients: Object.fromEntries(Object.entries(SECRETS).filter(([id]) => id !== 'api-introspector')),
  client_auth: Object.fromEntries(Object.entries(SECRETS).filter(([id]) => id !== 'api-introspector')
    .map(([id]) => [id, CLIENT_AUTH[id]])),
  client_assertion_audiences: [issuer, `${issuer}/token`],
})}\n`);
