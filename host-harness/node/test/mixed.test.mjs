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

test('Rust and Node workers sharing Redis refresh once per expiry and lose no refresh token', { timeout: 120_000 }, async (t) => {
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

  const stats = await (await fetch(`${provider.info.base_url}/stats`)).json();
  const refreshes = stats.tokens.refresh_token ?? 0;
  assert.equal(stats.refresh_replays, 0, 'a rotated-out refresh token came back: a refresh happened twice');
  assert.equal(stats.tokens.password, 1, 'no new grant: the refresh token was never lost');
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
