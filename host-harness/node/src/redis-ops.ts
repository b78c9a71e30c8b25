// The Redis commands of the shared token store, run in the I/O thread on node-redis. Values
// arrive sealed and names complete: this side knows nothing of tokens, only of Redis.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createClient } from 'redis';

/** How to reach Redis. */
export interface RedisSettings {
  url: string;
  /** The URL without its password, for messages. */
  shown: string;
  password?: string | undefined;
  /** PEM certificates of a private CA for a rediss:// server. */
  caCertificates?: string | undefined;
  ioTimeoutMs: number;
}

/** The Rust host's own scripts (host-harness/runtime/src/redis), copied here by the build. */
const script = (name: string) => readFileSync(new URL(`../gen/redis/${name}`, import.meta.url), 'utf8');
const COMPARE_AND_SWAP = script('compare_and_swap.lua');
const RELEASE = script('release.lua');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Handler = (...args: never[]) => Promise<unknown>;

/** The operations, by name; each rejects with a message that names the server, never a value. */
export async function redisHandlers(settings: RedisSettings): Promise<Record<string, Handler>> {
  // The URL's parts given one by one: node-redis lets a URL's (empty) password override the
  // password option, and the password given apart from the URL goes with the URL's user.
  const url = new URL(settings.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const password = settings.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  const database = Number(url.pathname.slice(1) || '0');
  if (!Number.isInteger(database) || database < 0) throw new Error(`Redis URL ${settings.shown}: the path must be a database number`);
  const client = createClient({
    ...(password === undefined ? {} : { username: decodeURIComponent(url.username) || 'default', password }),
    database,
    disableOfflineQueue: true,
    socket: {
      host,
      port: Number(url.port || '6379'),
      connectTimeout: settings.ioTimeoutMs,
      // A refused login will not pass on a retry: give up and report it. Anything else (a Redis
      // restarting) is retried with a growing pause.
      reconnectStrategy: (retries: number, cause: Error) =>
        /WRONGPASS|NOAUTH|NOPERM/.test(cause?.message ?? '') ? cause : Math.min(50 * 2 ** retries, 1000),
      ...(url.protocol === 'rediss:'
        ? { tls: true as const, ...(isIP(host) === 0 ? { servername: host } : {}), ...(settings.caCertificates ? { ca: settings.caCertificates } : {}) }
        : {}),
    },
  });
  // Failures are reported per command; the client reconnects by itself.
  client.on('error', () => {});

  const problem = (error: unknown) =>
    new Error(`Redis at ${settings.shown}: ${error instanceof Error ? error.message : String(error)}`);
  const bounded = async <T>(work: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${settings.ioTimeoutMs / 1000} s`)), settings.ioTimeoutMs);
    });
    try {
      return await Promise.race([work, late]);
    } catch (error) {
      throw problem(error);
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    await bounded(client.connect());
  } catch (error) {
    client.destroy();
    throw error;
  }

  const release = async (name: string, holder: string) => {
    await bounded(client.eval(RELEASE, { keys: [name], arguments: [holder] }));
  };
  const polling = new Set<string>();
  const abandoned = new Set<string>();

  return {
    'redis.get': async (name: string) => await bounded(client.get(name)),
    'redis.set': async (name: string, value: string, ttlMs: number | null) => {
      await bounded(ttlMs === null
        ? client.set(name, value)
        : client.set(name, value, { expiration: { type: 'PX', value: ttlMs } }));
    },
    'redis.cas': async (name: string, current: string, value: string, ttlMs: string) =>
      Number(await bounded(client.eval(COMPARE_AND_SWAP, { keys: [name], arguments: [current, value, ttlMs] }))),
    // Polls SET NX PX until the lock is free or the wait is over: false then.
    'redis.lock': async (name: string, holder: string, expiryMs: number, waitMs: number) => {
      const deadline = Date.now() + waitMs;
      polling.add(holder);
      try {
        for (let pause = 1; ; pause = Math.min(pause * 2, 25)) {
          if (abandoned.delete(holder)) return false;
          const taken = await bounded(client.set(name, holder, { condition: 'NX', expiration: { type: 'PX', value: expiryMs } }));
          if (taken !== null) {
            // Its caller gave up meanwhile: nobody would release it.
            if (abandoned.delete(holder)) {
              await release(name, holder);
              return false;
            }
            return true;
          }
          const left = deadline - Date.now();
          if (left <= 0) return false;
          await sleep(Math.min(pause, left));
        }
      } finally {
        polling.delete(holder);
      }
    },
    'redis.release': async (name: string, holder: string) => {
      await release(name, holder);
    },
    // A caller that gave up on a lock: stop any poll still running for it, and free the lock if
    // it was taken.
    'redis.abandon': async (name: string, holder: string) => {
      if (polling.has(holder)) abandoned.add(holder);
      await release(name, holder);
    },
    'redis.ping': async () => await bounded(client.ping()),
    'redis.close': async () => {
      client.destroy();
    },
  };
}
