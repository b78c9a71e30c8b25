// The component's own state (tokens, pending authorizations) and the locks that keep a refresh
// single: the interface every store implements, and the in-memory store of one thread.
import type { StoreError } from '../gen/types/interfaces/integration-oauth2-types.js';

/** The longest a call waits for a connection's lock another holder has: the contract's bound. */
export const LOCK_WAIT_MS = 30_000;

/** A store operation that failed, with the WIT `store-error` the component receives. */
export class StoreFailure extends Error {
  override readonly name = 'StoreFailure';
  constructor(readonly error: StoreError) {
    super(error.tag === 'unavailable' ? error.val : `lock held elsewhere for over ${error.val} s`);
  }
}

/** A lock the store granted; `release` is idempotent. */
export interface HeldLock {
  release(): void;
}

/**
 * Where the component's state lives. Every method is synchronous (the component's imports are)
 * and fails by throwing a {@link StoreFailure}. The semantics are the WIT `token-store`'s: entries
 * and locks are separate namespaces, `compareAndSwap` is atomic, and `lock` waits at most `waitMs`
 * for another holder, then fails with `lock-timeout`.
 */
export interface TokenStore {
  get(key: string): string | undefined;
  set(key: string, value: string, ttlSeconds: number | undefined): void;
  compareAndSwap(key: string, expected: string | undefined, value: string | undefined,
    ttlSeconds: number | undefined): boolean;
  lock(key: string, waitMs: number): HeldLock;
}

interface Entry {
  value: string;
  /** Milliseconds since the epoch; none for an entry that never expires. */
  expiresAt: number | undefined;
}

/**
 * Entries in this thread's memory. A call into the component runs to its end before the next
 * starts on the same thread, so a lock here is never contended: it exists for the contract, and
 * workers that must share tokens share a {@link RedisTokenStore} instead.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #entries = new Map<string, Entry>();
  readonly #locks = new Set<string>();
  readonly #now: () => number;

  /** `now` gives milliseconds since the epoch, for expiries; tests move it. */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (entry?.expiresAt !== undefined && entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry?.value;
  }

  set(key: string, value: string, ttlSeconds: number | undefined): void {
    this.#entries.set(key, {
      value,
      expiresAt: ttlSeconds === undefined ? undefined : this.#now() + ttlSeconds * 1000,
    });
  }

  compareAndSwap(key: string, expected: string | undefined, value: string | undefined,
    ttlSeconds: number | undefined): boolean {
    if (this.get(key) !== expected) return false;
    if (value === undefined) this.#entries.delete(key);
    else this.set(key, value, ttlSeconds);
    return true;
  }

  lock(key: string): HeldLock {
    if (this.#locks.has(key)) {
      // Only a call that is still running could hold it, and that is the caller itself.
      throw new StoreFailure({ tag: 'unavailable', val: 'the lock is already held by this thread' });
    }
    this.#locks.add(key);
    let held = true;
    return {
      release: () => {
        if (held) this.#locks.delete(key);
        held = false;
      },
    };
  }

  /** The number of entries, expired ones included until they are read. */
  get size(): number {
    return this.#entries.size;
  }
}
