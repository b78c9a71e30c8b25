// The token stores on their own: the memory store's semantics, sealing as the Rust host seals,
// the key file's checks, and the Redis store's atomic swap and locks against a real redis-server.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MemoryTokenStore, OpenError, RedisTokenStore, SealingKeys, StoreFailure } from '../dist/index.js';
import { REDIS_PASSWORD, redisServer, scratch } from './support.mjs';

test('the memory store: time to live, compare-and-swap, locks', () => {
  let now = 1_000_000;
  const store = new MemoryTokenStore(() => now);
  store.set('a', 'one', 10);
  assert.equal(store.get('a'), 'one');
  now += 10_000;
  assert.equal(store.get('a'), undefined, 'gone once its time to live has passed');

  assert.equal(store.compareAndSwap('b', undefined, 'first', undefined), true);
  assert.equal(store.compareAndSwap('b', undefined, 'second', undefined), false, 'an entry is there');
  assert.equal(store.compareAndSwap('b', 'stale', 'second', undefined), false);
  assert.equal(store.get('b'), 'first');
  assert.equal(store.compareAndSwap('b', 'first', undefined, undefined), true);
  assert.equal(store.get('b'), undefined, 'none deletes');

  const lock = store.lock('b');
  assert.throws(() => store.lock('b'), StoreFailure);
  lock.release();
  lock.release();
  store.lock('b').release();
});

describe('sealing', () => {
  const keys = SealingKeys.fromKeys([Buffer.alloc(32, 1)]);

  test('a value opens under its name with its key, and nowhere else', () => {
    const sealed = keys.seal('entry:a', 'refresh-token-value');
    assert.match(sealed, new RegExp(`^v1\\.${keys.ids[0]}\\.[A-Za-z0-9_-]+$`));
    assert.ok(!sealed.includes('refresh-token-value'));
    assert.notEqual(sealed, keys.seal('entry:a', 'refresh-token-value'), 'random nonces');
    assert.equal(keys.open('entry:a', sealed), 'refresh-token-value');
    assert.throws(() => keys.open('entry:b', sealed), (e) => e instanceof OpenError && e.kind === 'forged');
    const other = SealingKeys.fromKeys([Buffer.alloc(32, 2)]);
    assert.throws(() => other.open('entry:a', sealed), (e) => e.kind === 'unknown-key');
    for (const notSealed of ['', 'plain text', 'v1.zz.abc', 'v2.00000000.AAAA', 'v1.00000000.AA']) {
      assert.throws(() => keys.open('entry:a', notSealed), (e) => e.kind === 'not-sealed', notSealed);
    }
    const inside = sealed.length - 8;
    const altered = `${sealed.slice(0, inside)}${sealed[inside] === 'A' ? 'B' : 'A'}${sealed.slice(inside + 1)}`;
    assert.throws(() => keys.open('entry:a', altered), (e) => e.kind === 'forged');
  });

  test('the key id is the Rust host\'s: the first 4 bytes of SHA-256 over the label and the key', () => {
    // SHA-256("oauth2-host store key id\0" || 32 bytes of 0x01), as sealing.rs computes it.
    assert.deepEqual(keys.ids, ['432ae2e6']);
  });

  test('a rotated key file opens old values and seals with the new key', () => {
    const rotated = SealingKeys.fromKeys([Buffer.alloc(32, 2), Buffer.alloc(32, 1)]);
    assert.equal(rotated.open('n', keys.seal('n', 'x')), 'x');
    assert.ok(rotated.seal('n', 'y').startsWith(`v1.${rotated.ids[0]}.`));
  });

  test('the key file must be private, and every line a key; inspecting shows ids only', (t) => {
    const dir = scratch('keys');
    t.after(dir.remove);
    const file = join(dir.dir, 'store.key');
    const line = SealingKeys.newKeyLine();
    writeFileSync(file, `# the store key\n\n${line}\n`, { mode: 0o600 });
    const loaded = SealingKeys.fromFile(file);
    assert.equal(loaded.ids.length, 1);
    assert.ok(!JSON.stringify(loaded).includes(line));
    chmodSync(file, 0o644);
    assert.throws(() => SealingKeys.fromFile(file), /may be read by others/);
    chmodSync(file, 0o600);
    writeFileSync(file, 'not a key\n');
    assert.throws(() => SealingKeys.fromFile(file), /line 1 is not a key/);
  });
});

describe('the Redis store', () => {
  let redis;
  let dir;
  let keys;
  before(async () => {
    redis = await redisServer();
    dir = scratch('redis-store');
    const file = join(dir.dir, 'store.key');
    writeFileSync(file, `${SealingKeys.newKeyLine()}\n`, { mode: 0o600 });
    keys = SealingKeys.fromFile(file);
  });
  after(async () => {
    await redis?.stop();
    dir?.remove();
  });
  const open = (options = {}) => RedisTokenStore.open({ url: redis.url, password: REDIS_PASSWORD, keys, ...options });

  test('entries are sealed under the Rust host\'s names, and swapped atomically', async (t) => {
    const store = await open({ nearCacheMs: 0 });
    t.after(() => store.close());
    store.set('oauth2/token/abc', 'token-entry', undefined);
    assert.equal(store.get('oauth2/token/abc'), 'token-entry');
    const raw = redis.cli('GET', 'oauth2-host:entry:{oauth2/token/abc}').trim();
    assert.equal(keys.open('oauth2-host:entry:{oauth2/token/abc}', raw), 'token-entry');

    assert.equal(store.compareAndSwap('oauth2/token/abc', 'other', 'new', undefined), false);
    assert.equal(store.compareAndSwap('oauth2/token/abc', 'token-entry', 'new', undefined), true);
    assert.equal(store.get('oauth2/token/abc'), 'new');
    assert.equal(store.compareAndSwap('oauth2/token/abc', 'new', undefined, undefined), true);
    assert.equal(redis.cli('EXISTS', 'oauth2-host:entry:{oauth2/token/abc}').trim(), '0');

    store.set('oauth2/pending/p', 'pending', 1);
    const ttl = Number(redis.cli('PTTL', 'oauth2-host:entry:{oauth2/pending/p}'));
    assert.ok(ttl > 0 && ttl <= 1000, String(ttl));

    redis.cli('SET', 'oauth2-host:entry:{oauth2/token/planted}', 'plain text');
    assert.throws(() => store.get('oauth2/token/planted'), (e) => e instanceof StoreFailure && /not sealed/.test(e.message));
  });

  test('a lock another holder has is waited for, then refused with lock-timeout; an expired one is free', async (t) => {
    const first = await open({ lockExpiryMs: 1_500 });
    const second = await open({ lockWaitMs: 300 });
    t.after(async () => {
      await first.close();
      await second.close();
    });
    const held = first.lock('oauth2/token/x', 30_000);
    const started = Date.now();
    assert.throws(() => second.lock('oauth2/token/x', 30_000), (e) => e.error?.tag === 'lock-timeout');
    assert.ok(Date.now() - started >= 300);
    held.release();
    second.lock('oauth2/token/x', 30_000).release();

    // A holder that never releases (a worker killed mid-refresh) blocks no one past the expiry.
    const patient = await open({ lockWaitMs: 5_000 });
    t.after(() => patient.close());
    first.lock('oauth2/token/y', 30_000);
    const taken = Date.now();
    patient.lock('oauth2/token/y', 30_000).release();
    assert.ok(Date.now() - taken >= 1_400, 'taken only once the dead holder\'s lock expired');
  });

  test('a wrong password or an unreachable Redis is a clear error without the password', async () => {
    await assert.rejects(RedisTokenStore.open({ url: redis.url, password: 'not-the-password', keys }), (e) => {
      assert.match(e.message, /Redis at redis:\/\/oauth2-worker@127\.0\.0\.1:\d+/);
      assert.match(e.message, /WRONGPASS/);
      assert.ok(!e.message.includes('not-the-password'));
      return true;
    });
    await assert.rejects(RedisTokenStore.open({ url: 'redis://127.0.0.1:1', keys }), /Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
