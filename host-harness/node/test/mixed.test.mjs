// Rust and Node workers on one Redis: the oauth2-host command (Rust, wasmtime) and Node processes
// (this package, jco) take turns on one connection while its two-second token expires again and
// again, against Authlib rotating refresh tokens. The provider's own count says whether a refresh
// ever happened twice (a rotated-out refresh token comes back) or a token was lost.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connection, OAuth2Plugin, RedisTokenStore, SealingKeys } from '../dist/index.js';
import { authlib, oauth2Host, REDIS_PASSWORD, redisServer, scratch, SPECIAL_SECRET, PASSWORD, USERNAME } from './support.mjs';

const TTL_SECONDS = 2;
const DURATION_MS = 12_000;
const NODE_WORKERS = 2;
const RUST_WORKERS = 2;

/** Runs `command` until it exits; resolves with its status and output. */
function run(command, args, env) {
  return new Promise((done) => {
    const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    child.once('exit', (status) => done({ status, stdout, stderr }));
  });
}

/**
 * A Redis, Authlib issuing two-second tokens, a key file, and one password-grant connection as
 * each host's user writes it: a connection file for the Rust command and the WIT record for Node.
 * The secrets are stored in Redis from Node, sealed; the Rust command reads them and gets the
 * first token. Everything stops with the test.
 */
async function sharedConnection(t) {
  const redis = await redisServer();
  const provider = await authlib({ accessTokenTtl: TTL_SECONDS });
  const dir = scratch('mixed');
  t.after(async () => {
    await provider.stop();
    await redis.stop();
    dir.remove();
  });
  const keyFile = join(dir.dir, 'store.key');
  writeFileSync(keyFile, `${SealingKeys.newKeyLine()}\n`, { mode: 0o600 });
  const env = { OAUTH2_HOST_STORE_KEY_FILE: keyFile, OAUTH2_HOST_REDIS_PASSWORD: REDIS_PASSWORD };

  // The connection as each host's user writes it: a connection file, and the WIT record.
  const connectionFile = join(dir.dir, 'connection.json');
  writeFileSync(connectionFile, JSON.stringify({
    grant_type: 'password',
    token_url: provider.info.token_url,
    client_id: 'cc-basic',
    client_secret: 'cc-secret',
    client_auth: 'basic',
    username: USERNAME,
    password: 'alice-password',
    scope: 'read',
  }));
  const config = connection({
    grantType: 'password',
    tokenUrl: provider.info.token_url,
    clientId: 'cc-basic',
    clientSecretName: 'cc-secret',
    clientAuth: 'basic',
    username: USERNAME,
    passwordName: 'alice-password',
    scope: 'read',
  });

  // Node stores the secrets, sealed; the Rust command reads them, and gets the first token.
  const keys = SealingKeys.fromFile(keyFile);
  const store = await RedisTokenStore.open({ url: redis.url, password: REDIS_PASSWORD, keys });
  t.after(() => store.close());
  store.setSecret('cc-secret', SPECIAL_SECRET);
  store.setSecret('alice-password', PASSWORD);
  const seeded = spawnSync(oauth2Host(), ['token', '--config', connectionFile, '--store', redis.url],
    { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(seeded.status, 0, seeded.stderr);

  return { redis, provider, keyFile, env, connectionFile, config, store };
}

/** The provider's own count of what it issued, and of rotated-out refresh tokens presented. */
async function stats(provider) {
  return (await fetch(`${provider.info.base_url}/stats`)).json();
}

test('Rust and Node workers sharing Redis refresh once per expiry and lose no refresh token', { timeout: 120_000 }, async (t) => {
  const { redis, provider, keyFile, env, connectionFile, config, store } = await sharedConnection(t);
  const started = Date.now();
  const rust = Array.from({ length: RUST_WORKERS }, async () => {
    const tally = { ok: 0, failed: 0, firstError: '' };
    while (Date.now() - started < DURATION_MS) {
      const out = await run(oauth2Host(), ['token', '--config', connectionFile, '--store', redis.url], env);
      if (out.status === 0) tally.ok += 1;
      else {
        tally.failed += 1;
        tally.firstError ||= out.stderr;
      }
    }
    return tally;
  });
  const node = Array.from({ length: NODE_WORKERS }, async () => {
    const out = await run(process.execPath, [fileURLToPath(new URL('fixtures/mixed-worker.mjs', import.meta.url)),
      redis.url, keyFile, JSON.stringify(config), String(DURATION_MS)], env);
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout.trim().split('\n').pop());
  });
  const rustTallies = await Promise.all(rust);
  const nodeTallies = await Promise.all(node);
  const elapsedSeconds = (Date.now() - started) / 1000;

  for (const tally of [...rustTallies, ...nodeTallies]) {
    assert.equal(tally.failed, 0, `a worker failed: ${tally.firstError}`);
    assert.ok(tally.ok > 0);
  }
  // Each Node worker saw several token generations: it took part across expiries.
  for (const tally of nodeTallies) assert.ok(tally.tokens >= 3, `a Node worker saw ${tally.tokens} tokens`);

  const issued = await stats(provider);
  const refreshes = issued.tokens.refresh_token ?? 0;
  assert.equal(issued.refresh_replays, 0, 'a rotated-out refresh token came back: a refresh happened twice');
  assert.equal(issued.tokens.password, 1, 'no new grant: the refresh token was never lost');
  assert.ok(refreshes >= 5, `the run spans five expiries: ${refreshes} refreshes in ${elapsedSeconds} s`);
  // Tokens live between TTL - 1 and TTL seconds (whole-second expiry, the component's margin).
  assert.ok(refreshes <= elapsedSeconds / (TTL_SECONDS - 1) + 2, `more refreshes (${refreshes}) than expiries in ${elapsedSeconds} s`);

  // The refresh token in the store is the provider's live one.
  const plugin = new OAuth2Plugin({ secrets: (name) => store.secret(name), store });
  const stored = plugin.ensureToken(config);
  await plugin.close();
  const introspected = await fetch(provider.info.introspection_url, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${Buffer.from(`cc-basic:${encodeURIComponent(SPECIAL_SECRET)}`).toString('base64')}`,
      'Content-Type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token: stored.refreshToken, token_type_hint: 'refresh_token' }).toString(),
  });
  assert.equal((await introspected.json()).active, true);
  console.log(`mixed run: ${rustTallies.reduce((n, t) => n + t.ok, 0)} Rust token commands and `
    + `${nodeTallies.reduce((n, t) => n + t.ok, 0)} Node decorations in ${elapsedSeconds.toFixed(1)} s, `
    + `${refreshes} refreshes, 0 replays, 1 password grant`);
});

test('the lock is one protocol: the Rust command waits for a Node holder, Node for a Rust one', { timeout: 60_000 }, async (t) => {
  const { redis, provider, env, connectionFile, config, store } = await sharedConnection(t);
  const [entry] = redis.cli('--scan', '--pattern', 'oauth2-host:entry:{oauth2/token/*').split('\n').filter(Boolean);
  assert.ok(entry, 'the Rust command stored the token under the shared layout');
  const key = /^oauth2-host:entry:\{(.*)\}$/.exec(entry)[1];
  const expire = () => new Promise((done) => setTimeout(done, TTL_SECONDS * 1000 + 200));

  // Node holds the connection's lock while the token is stale: the Rust command waits for it.
  await expire();
  const held = store.lock(key, 1_000);
  const holder = redis.cli('GET', `oauth2-host:lock:{${key}}`).trim();
  assert.match(holder, /^[0-9a-f]{32}$/, 'a random holder id under the Rust host\'s lock name');
  const pttl = Number(redis.cli('PTTL', `oauth2-host:lock:{${key}}`));
  assert.ok(pttl > 60_000 && pttl <= 90_000, `the lock expires by itself: ${pttl} ms left`);
  const started = Date.now();
  const rust = run(oauth2Host(), ['token', '--config', connectionFile, '--store', redis.url], env);
  await new Promise((done) => setTimeout(done, 1_500));
  held.release();
  const out = await rust;
  assert.equal(out.status, 0, out.stderr);
  assert.ok(Date.now() - started >= 1_400, 'the Rust command waited for the Node holder');
  assert.equal((await stats(provider)).tokens.refresh_token, 1);

  // A lock as the Rust host takes it, held while the token is stale again: Node waits for it to
  // expire, then refreshes over the entry the Rust command sealed.
  const plugin = new OAuth2Plugin({ secrets: (name) => store.secret(name), store });
  t.after(() => plugin.close());
  await expire();
  redis.cli('SET', `oauth2-host:lock:{${key}}`, 'a-rust-holder', 'PX', '1500');
  const waited = Date.now();
  plugin.ensureToken(config);
  assert.ok(Date.now() - waited >= 1_300, 'Node waited for the Rust holder');
  // The Rust command reads the entry Node sealed: no refresh and no new grant of its own.
  const after = spawnSync(oauth2Host(), ['token', '--config', connectionFile, '--store', redis.url],
    { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(after.status, 0, after.stderr);
  const issued = await stats(provider);
  assert.deepEqual(issued, { tokens: { password: 1, refresh_token: 2 }, refresh_replays: 0 });
});
