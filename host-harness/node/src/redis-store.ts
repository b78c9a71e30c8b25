// The token store many processes share, on Redis, with the Rust host's key layout, sealing and
// lock protocol, so Rust and Node workers on one Redis keep one token per connection.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { SyncWorker } from './sync-call.js';
import { SealingKeys } from './sealing.js';
import { LOCK_WAIT_MS, StoreFailure, type HeldLock, type TokenStore } from './token-store.js';

/** The component's largest expiry margin: memory never serves a token longer than this. */
export const MAX_NEAR_CACHE_MS = 30_000;

/** How to open a {@link RedisTokenStore}. */
export interface RedisStoreOptions {
  /** `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /** The password, when the URL names none (a password in a URL ends up in process lists). */
  password?: string;
  /** The keys values are sealed with: the key file every worker, Rust or Node, shares. */
  keys: SealingKeys;
  /** Prefix of every Redis key; the Rust host's default is `oauth2-host:`. */
  namespace?: string;
  /** How long an entry read or written here is served from memory (0: never); default 2 s. */
  nearCacheMs?: number;
  /**
   * How long a lock outlives a holder that never released it; default 90 s. A live holder must
   * finish its token requests within it: at least three times the plugin's HTTP timeout (a call
   * makes two token requests at most), which the plugin checks.
   */
  lockExpiryMs?: number;
  /** How long a call waits for a lock another holder has, at most 30 s (the default). */
  lockWaitMs?: number;
  /** PEM certificates of a private CA that signed a rediss:// server's certificate. */
  caCertificates?: string;
}

const IO_TIMEOUT_MS = 5_000;
const MAX_NEAR_ENTRIES = 4096;

interface Near {
  plain: string;
  until: number;
}

/**
 * Entries under `<namespace>entry:{<key>}`, locks under `<namespace>lock:{<key>}` (the braces keep
 * both in one Redis Cluster slot) and, for platforms that keep secrets there too, secrets under
 * `<namespace>secret:{<name>}`, every value sealed and bound to its Redis key. A lock is
 * `SET NX PX` with a random holder id, released by a script that checks the id.
 */
export class RedisTokenStore implements TokenStore {
  readonly #io: SyncWorker;
  readonly #shown: string;
  readonly #keys: SealingKeys;
  readonly #namespace: string;
  readonly #nearMs: number;
  readonly #lockExpiryMs: number;
  readonly #lockWaitMs: number;
  readonly #near = new Map<string, Near>();
  /** Keys this process holds the lock of: their entries are read from Redis, never from memory. */
  readonly #held = new Set<string>();

  private constructor(io: SyncWorker, shown: string, options: RedisStoreOptions) {
    this.#io = io;
    this.#shown = shown;
    this.#keys = options.keys;
    this.#namespace = options.namespace ?? 'oauth2-host:';
    this.#nearMs = Math.min(Math.max(options.nearCacheMs ?? 2_000, 0), MAX_NEAR_CACHE_MS);
    this.#lockExpiryMs = Math.max(options.lockExpiryMs ?? 90_000, 1);
    this.#lockWaitMs = Math.min(Math.max(options.lockWaitMs ?? LOCK_WAIT_MS, 0), LOCK_WAIT_MS);
  }

  /** Connects now, so a wrong address or password is reported before any work starts. */
  static async open(options: RedisStoreOptions): Promise<RedisTokenStore> {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new Error('Redis URL: it does not parse');
    }
    const hidden = new URL(url);
    hidden.password = '';
    const shown = hidden.toString();
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new Error(`Redis URL ${shown}: the scheme must be redis:// or rediss:// (TLS)`);
    }
    if (options.caCertificates && url.protocol !== 'rediss:') {
      throw new Error(`Redis URL ${shown}: a CA certificate is for rediss:// (TLS) only`);
    }
    const io = new SyncWorker({
      redis: {
        url: options.url,
        shown,
        password: options.password,
        caCertificates: options.caCertificates,
        ioTimeoutMs: IO_TIMEOUT_MS,
      },
    });
    const store = new RedisTokenStore(io, shown, options);
    try {
      store.#call('redis.ping', []);
    } catch (error) {
      await io.close();
      throw new Error((error as StoreFailure).message);
    }
    return store;
  }

  /** The store's URL without its password. */
  get url(): string {
    return this.#shown;
  }

  /** How long a lock outlives a holder that never released it. */
  get lockExpiryMs(): number {
    return this.#lockExpiryMs;
  }

  #call(op: string, args: unknown[], limitMs = IO_TIMEOUT_MS * 2): unknown {
    try {
      return this.#io.call(op, args, limitMs);
    } catch (error) {
      throw new StoreFailure({ tag: 'unavailable', val: (error as Error).message });
    }
  }

  #entryName(key: string): string {
    return `${this.#namespace}entry:{${key}}`;
  }

  #secretName(name: string): string {
    return `${this.#namespace}secret:{${name}}`;
  }

  /** The value under a Redis name, opened, and as stored; an entry that does not open is an error. */
  #read(name: string): [string, string] | undefined {
    const sealed = this.#call('redis.get', [name]) as string | null;
    if (sealed === null) return undefined;
    try {
      return [this.#keys.open(name, sealed), sealed];
    } catch (error) {
      throw new StoreFailure({ tag: 'unavailable', val: `${this.#shown}: the entry ${name} ${(error as Error).message}` });
    }
  }

  #remember(key: string, plain: string | undefined): void {
    if (plain === undefined || this.#nearMs === 0) {
      this.#near.delete(key);
      return;
    }
    if (this.#near.size >= MAX_NEAR_ENTRIES) {
      const now = performance.now();
      for (const [k, entry] of this.#near) if (entry.until <= now) this.#near.delete(k);
      if (this.#near.size >= MAX_NEAR_ENTRIES) this.#near.clear();
    }
    this.#near.set(key, { plain, until: performance.now() + this.#nearMs });
  }

  get(key: string): string | undefined {
    if (this.#nearMs > 0 && !this.#held.has(key)) {
      const near = this.#near.get(key);
      if (near && near.until > performance.now()) return near.plain;
    }
    const entry = this.#read(this.#entryName(key));
    this.#remember(key, entry?.[0]);
    return entry?.[0];
  }

  set(key: string, value: string, ttlSeconds: number | undefined): void {
    const name = this.#entryName(key);
    const ttlMs = ttlSeconds === undefined ? null : Math.max(ttlSeconds * 1000, 1);
    this.#call('redis.set', [name, this.#keys.seal(name, value), ttlMs]);
    this.#remember(key, ttlSeconds === undefined ? value : undefined);
  }

  /**
   * Compares what the entry opens to (every seal differs), then swaps in a script only if the
   * sealed bytes are still the ones compared; a change in between is read again, three times at most.
   */
  compareAndSwap(key: string, expected: string | undefined, value: string | undefined,
    ttlSeconds: number | undefined): boolean {
    const name = this.#entryName(key);
    const sealedValue = value === undefined ? '' : this.#keys.seal(name, value);
    const ttlMs = ttlSeconds === undefined ? '' : String(Math.max(ttlSeconds * 1000, 1));
    for (let round = 0; round < 3; round++) {
      const current = this.#read(name);
      if (current?.[0] !== expected) {
        this.#remember(key, current?.[0]);
        return false;
      }
      if (this.#call('redis.cas', [name, current?.[1] ?? '', sealedValue, ttlMs]) === 1) {
        this.#remember(key, ttlSeconds === undefined ? value : undefined);
        return true;
      }
    }
    this.#remember(key, undefined);
    return false;
  }

  lock(key: string, waitMs: number): HeldLock {
    const wait = Math.min(waitMs, this.#lockWaitMs);
    const name = `${this.#namespace}lock:{${key}}`;
    const holder = randomBytes(16).toString('hex');
    let taken: unknown;
    try {
      taken = this.#call('redis.lock', [name, holder, this.#lockExpiryMs, wait], wait + IO_TIMEOUT_MS * 2);
    } catch (error) {
      // The lock may be taken after this call gave up: free it rather than leave every worker
      // waiting out its expiry. Releasing checks the holder, so it is safe when not taken.
      try {
        this.#call('redis.abandon', [name, holder]);
      } catch {
        // Unreachable Redis: the lock expires by itself.
      }
      throw error;
    }
    if (!taken) throw new StoreFailure({ tag: 'lock-timeout', val: Math.max(1, Math.floor(wait / 1000)) });
    // What was remembered before the lock may be older than what its last holder wrote.
    this.#near.delete(key);
    this.#held.add(key);
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#held.delete(key);
        this.#release(name, holder);
      },
    };
  }

  #release(name: string, holder: string): void {
    try {
      this.#call('redis.release', [name, holder]);
    } catch {
      // Unreachable Redis: the lock expires by itself.
    }
  }

  /** A secret as the Rust host's `oauth2-host secret set --store redis://...` stores it. */
  secret(name: string): string | undefined {
    return this.#read(this.#secretName(name))?.[0];
  }

  /** Stores a secret sealed under its name. */
  setSecret(name: string, value: string): void {
    const redisName = this.#secretName(name);
    this.#call('redis.set', [redisName, this.#keys.seal(redisName, value), null]);
  }

  /** Closes the connection and its thread. */
  async close(): Promise<void> {
    try {
      this.#call('redis.close', []);
    } finally {
      await this.#io.close();
    }
  }

  [inspect.custom](): string {
    return `RedisTokenStore { url: ${JSON.stringify(this.#shown)}, namespace: ${JSON.stringify(this.#namespace)} }`;
  }
}
