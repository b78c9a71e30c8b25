// What the tests run against: the interop kit's real authorization servers (Authlib, oidc-provider),
// a real redis-server, the oauth2-host command, each a child process on loopback, stopped with
// the test. A missing part fails the test with what to install.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { connection } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const workspace = resolve(here, '../../..');
export const kit = (path) => join(workspace, 'tests/interop', path);

/** Authlib's only user; oidc-provider's dev login takes any. */
export const USERNAME = 'alice';
export const PASSWORD = 'wonderland';
/** The client secret of both servers' client-credentials clients. */
export const SPECIAL_SECRET = 's3cr:t/+&%= ~';

function need(path, what) {
  if (!existsSync(path)) throw new Error(`${path} is missing: ${what}`);
  return path;
}

const python = () => need(kit('authlib/.venv/bin/python'), 'run tests/interop/setup.sh (it installs Authlib)');

/** A free loopback port, for redirect URIs that must be known before the server starts. */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** A child process whose first stdout line is JSON; it dies with the test (its stdin closes). */
async function startPrinting(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`${args[0]} printed nothing in 20 s:\n${stderr}`)), 20_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      done(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`${args[0]} exited with ${code}:\n${stderr}`));
    });
  });
  return {
    info: JSON.parse(first),
    stop: () => new Promise((done) => {
      if (child.exitCode !== null) return done();
      child.once('exit', done);
      child.kill('SIGTERM');
    }),
    stderr: () => stderr,
  };
}

/** The Authlib server of the interop kit; with `clientJwks`, its private_key_jwt clients too. */
export async function authlib({ accessTokenTtl = 60, redirectUri, clientJwks, deviceInterval } = {}) {
  const args = [kit('authlib/server.py'), '--access-token-ttl', String(accessTokenTtl)];
  if (deviceInterval) args.push('--device-interval', String(deviceInterval));
  if (redirectUri) args.push('--redirect-uri', redirectUri);
  if (clientJwks) args.push('--client-jwks', clientJwks);
  return startPrinting(python(), args);
}

/** The oidc-provider server of the interop kit. */
export async function oidcProvider({ accessTokenTtl = 60, redirectUri } = {}) {
  need(kit('oidc-provider/node_modules/oidc-provider'), 'run tests/interop/setup.sh (it installs oidc-provider)');
  const args = [kit('oidc-provider/server.mjs')];
  if (redirectUri) args.push('--redirect-uri', redirectUri);
  return startPrinting(process.execPath, args, { env: { ...process.env, ACCESS_TOKEN_TTL: String(accessTokenTtl) } });
}

/**
 * Both servers' authorization-code client as a connection: `web-client` with its secret stored
 * as `web-secret`, `redirectUri` as registered at start; `fields` add to or override it.
 */
export function webConnection(server, redirectUri, fields) {
  return connection({
    grantType: 'authorization-code',
    tokenUrl: server.info.token_url,
    authorizationUrl: server.info.authorization_url,
    redirectUri,
    clientId: 'web-client',
    clientSecretName: 'web-secret',
    ...fields,
  });
}

/** Runs a kit script to its end and returns its stdout; fails with its stderr. */
export async function runScript(command, args, limitMs = 60_000) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => { stdout += chunk; });
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const code = await new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('exit', (exit) => {
      clearTimeout(timer);
      done(exit);
    });
  });
  if (code !== 0) throw new Error(`${args[0]} exited with ${code}:\n${stderr}`);
  return stdout;
}

/** Authlib's consent form, posted by the kit's cookie-jar driver: the redirect URL it ends at. */
export async function authlibConsent(authorizationUrl) {
  const out = await runScript(python(), [kit('authlib/consent.py'), authorizationUrl, '--no-follow']);
  return out.trim().split('\n').pop();
}

/** Debian's headless Chromium through the interop kit's playwright driver. */
export function chromiumConsent(authorizationUrl) {
  need('/usr/bin/chromium', 'run tests/interop/setup.sh (it installs Debian\'s chromium)');
  need(kit('browser/node_modules/playwright-core'), 'run tests/interop/setup.sh (it installs playwright-core)');
  return runScript(process.execPath, [kit('browser/consent.mjs'), authorizationUrl,
    '--user', USERNAME, '--password', PASSWORD]);
}

/**
 * Client keys the kit's make_keys.py makes into `dir`: rsa.pem, ec.pem (PKCS#8), rsa-cert.pem
 * (the RSA key and a certificate for it), wrong.pem, and jwks.json with the public keys rsa-1, ec-1.
 */
export async function makeKeys(dir) {
  await runScript(python(), [kit('authlib/make_keys.py'), dir]);
}

/** A CA (ca.pem) and a server certificate it signed (cert.pem, key.pem) naming `names` too. */
export async function makeCa(dir, ...names) {
  await runScript(python(), [kit('authlib/make_ca.py'), dir, ...names]);
}

/** A private scratch directory, removed by the returned function. */
export function scratch(label) {
  const dir = mkdtempSync(join(tmpdir(), `oauth2-node-${label}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real redis-server on a free loopback port, with an ACL user that has a password. */
export const REDIS_USER = 'oauth2-worker';
export const REDIS_PASSWORD = 'redis-acl-password-node-4b1c';
export async function redisServer() {
  need('/usr/bin/redis-server', 'run tests/interop/setup.sh (it installs Debian\'s redis-server)');
  const port = await freePort();
  const dir = scratch('redis');
  const child = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--daemonize', 'no', '--save', '', '--appendonly', 'no', '--dir', dir.dir,
    '--user', 'default', 'off', '--user', REDIS_USER, 'on', `>${REDIS_PASSWORD}`, '~*', '&*', '+@all'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  const started = Date.now();
  for (;;) {
    const ping = spawnSync('/usr/bin/redis-cli', ['-p', String(port), '--user', REDIS_USER, '--pass', REDIS_PASSWORD,
      '--no-auth-warning', 'PING'], { encoding: 'utf8' });
    if (ping.stdout?.trim() === 'PONG') break;
    if (Date.now() - started > 10_000) throw new Error(`redis-server did not answer on ${port}`);
    await new Promise((done) => setTimeout(done, 50));
  }
  return {
    port,
    url: `redis://${REDIS_USER}@127.0.0.1:${port}`,
    cli: (...args) => spawnSync('/usr/bin/redis-cli', ['-p', String(port), '--user', REDIS_USER, '--pass',
      REDIS_PASSWORD, '--no-auth-warning', ...args], { encoding: 'utf8' }).stdout,
    stop: () => new Promise((done) => {
      child.once('exit', () => {
        dir.remove();
        done();
      });
      child.kill('SIGTERM');
    }),
  };
}

/** The oauth2-host command the Rust workspace builds (debug, as `cargo test` leaves it). */
export function oauth2Host() {
  const path = process.env.OAUTH2_HOST_BIN ?? join(workspace, 'target/debug/oauth2-host');
  return need(path, 'build it with `cargo build -p oauth2-host` (npm test does)');
}

/** Every way a secret may be written: as it is, and in the encodings requests and logs use. */
export function encodings(secret) {
  const bytes = Buffer.from(secret, 'utf8');
  return [...new Set([
    secret,
    encodeURIComponent(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
    bytes.toString('base64'),
    bytes.toString('base64url'),
    bytes.toString('hex'),
    JSON.stringify(secret).slice(1, -1),
  ])];
}

/** A fixture server of test/fixtures, in its own process (a call into the component blocks this thread). */
export function fixture(script, args = []) {
  return startPrinting(process.execPath, [join(here, 'fixtures', script), ...args]);
}
