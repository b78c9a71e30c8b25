// The component in Node: instances of the transpiled component with the host's imports, the
// rules they are served under, and the grant exports as typed methods.
import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { instantiate, type Root } from '../gen/oauth2/oauth2.js';
import type {
  AuthorizationStart,
  ConfigProblem,
  ConnectionConfig,
  DeviceAuthorization,
  DevicePoll,
  HttpRequest,
  HttpResponse,
  OauthError,
  Pair,
  Revocation,
  SigningAlgorithm,
  Token,
  TokenStep,
  TransportError,
} from '../gen/types/interfaces/integration-oauth2-types.js';
import type { ImportObject } from '../gen/oauth2/oauth2.js';
import { permittedOrigins, refusal } from './destination.js';
import { ComponentFailure, DeviceAuthorizationEnded, ImportFailure, OAuth2Error } from './errors.js';
import type { HttpSettings, Outcome } from './http-transport.js';
import { RedisTokenStore } from './redis-store.js';
import { holdsPrivateKey, pemSigner, SigningFailure, type Signer } from './signing.js';
import { SyncWorker } from './sync-call.js';
import { LOCK_WAIT_MS, MemoryTokenStore, StoreFailure, type HeldLock, type TokenStore } from './token-store.js';

/** Random bytes one request may ask for: more than the component's memory is a broken guest. */
const MAX_RANDOM_BYTES = 64 << 20;
/** What one call may do to the token store: an entry or two and a lock or two are the need. */
const MAX_KEY_BYTES = 256;
const MAX_VALUE_BYTES = 256 << 10;
const MAX_WRITES_PER_CALL = 16;
const MAX_LOCKS_PER_CALL = 4;

/** How a {@link OAuth2Plugin} reaches the world. */
export interface PluginOptions {
  /**
   * The user's secrets by name (client secrets, passwords, PEM private keys); undefined when there
   * is none. A throw becomes the component's `secret-store` error, with the thrown message.
   */
  secrets: (name: string) => string | undefined;
  /** Where tokens live; default a {@link MemoryTokenStore} of this thread. */
  store?: TokenStore;
  /** Signs JWTs; default a PEM signer over `secrets`. */
  signer?: Signer;
  /** Milliseconds since the epoch; tests move it. Default `Date.now`. */
  clock?: () => number;
  /**
   * Limits of the HTTP the component gets; defaults 10 s to connect, 30 s in all, 1 MiB bodies,
   * and the environment's proxy and `NO_PROXY`, as the Rust host reads them; an empty `proxy`
   * uses none.
   */
  http?: Partial<HttpSettings>;
  /**
   * A new instance for every call, as the Rust host runs each step, so that nothing a call leaves
   * in the component's memory can reach the next; about half a millisecond per call (BENCHMARKS.md). By
   * default one instance serves the calls of this plugin, and is replaced after a failure.
   */
  instancePerCall?: boolean;
}

/** The component this package transpiled: the SHA-256 of its .wasm and its size. */
export const component: { sha256: string; bytes: number } = JSON.parse(
  readFileSync(new URL('../gen/component.json', import.meta.url), 'utf8'),
);

const compiled = new Map<string, WebAssembly.Module>();

/** Each core module compiled once per thread; an instance then costs a fraction of a millisecond. */
function coreModule(name: string): WebAssembly.Module {
  let module = compiled.get(name);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(new URL(`../gen/oauth2/${name}`, import.meta.url)));
    compiled.set(name, module);
  }
  return module;
}

/** What the call under way may reach and has done. */
class Call {
  #origins: string[] | undefined;
  writes = 0;
  readonly held = new Map<string, HeldLock>();
  constructor(readonly config: ConnectionConfig) {}

  /** Parsed when the component first sends, which most calls (a cached token) never do. */
  get origins(): string[] {
    this.#origins ??= permittedOrigins(this.config);
    return this.#origins;
  }

  releaseAll(): void {
    for (const lock of this.held.values()) lock.release();
    this.held.clear();
  }
}

/** The WIT's oauth-error, as jco throws it out of an export: a plain `{ tag, val }` object. */
function isOauthError(thrown: unknown): thrown is OauthError {
  return typeof thrown === 'object' && thrown !== null && !(thrown instanceof Error) && 'tag' in thrown;
}

/**
 * The grant component with this host's imports. Calls are synchronous: one that must fetch a token
 * blocks this thread for the exchange (the component's imports are synchronous; the I/O runs in a
 * worker thread meanwhile). A fresh cached token costs no I/O with the memory store.
 */
export class OAuth2Plugin {
  readonly #secrets: (name: string) => string | undefined;
  readonly #store: TokenStore;
  readonly #signer: Signer;
  readonly #clock: () => number;
  readonly #http: HttpSettings;
  readonly #instancePerCall: boolean;
  #io: SyncWorker | undefined;
  #instance: Root | undefined;
  #call: Call | undefined;

  constructor(options: PluginOptions) {
    this.#secrets = options.secrets;
    this.#store = options.store ?? new MemoryTokenStore(options.clock);
    this.#signer = options.signer ?? pemSigner(options.secrets);
    this.#clock = options.clock ?? Date.now;
    this.#instancePerCall = options.instancePerCall ?? false;
    this.#http = {
      connectTimeoutMs: options.http?.connectTimeoutMs ?? 10_000,
      timeoutMs: options.http?.timeoutMs ?? 30_000,
      maxBodyBytes: options.http?.maxBodyBytes ?? 1 << 20,
      caCertificates: options.http?.caCertificates,
      ...proxyFrom(options.http),
    };
    // A live holder must keep its lock through its token requests, two at most per call: a
    // shorter expiry lets another worker refresh the same token meanwhile.
    if (this.#store instanceof RedisTokenStore && this.#store.lockExpiryMs < 3 * this.#http.timeoutMs) {
      throw new Error(`the Redis store's lock expiry (${this.#store.lockExpiryMs} ms) must be at least three times the HTTP timeout (${this.#http.timeoutMs} ms)`);
    }
  }

  /** Every problem in a configuration, without any I/O; empty when it is usable. */
  validateConfig(config: ConnectionConfig): ConfigProblem[] {
    return this.#run(config, (grant) => grant.validateConfig(config));
  }

  /** The token endpoint request for a step; sends nothing. */
  buildTokenRequest(config: ConnectionConfig, step: TokenStep): HttpRequest {
    return this.#run(config, (grant) => grant.buildTokenRequest(config, step));
  }

  /** Reads a token endpoint's response to `request` into a token; stores nothing. */
  parseTokenResponse(config: ConnectionConfig, request: HttpRequest, response: HttpResponse): Token {
    return this.#run(config, (grant) => grant.parseTokenResponse(config, request, response));
  }

  /** A usable token: cached while fresh, else refreshed or fetched and stored under the connection's lock. */
  ensureToken(config: ConnectionConfig): Token {
    return this.#run(config, (grant) => grant.ensureToken(config));
  }

  /** The headers to set on a request to `url` (`Authorization: <prefix> <token>`): the call of a connector step. */
  authorizationHeaders(config: ConnectionConfig, url: string): Pair[] {
    return this.#run(config, (grant) => grant.authorizationHeaders(config, url));
  }

  /** The request with the headers of {@link authorizationHeaders} set. */
  decorateRequest(config: ConnectionConfig, request: HttpRequest): HttpRequest {
    return this.#run(config, (grant) => grant.decorateRequest(config, request));
  }

  /** Starts the authorization-code flow: the URL to send the user to, and its state. */
  beginAuthorization(config: ConnectionConfig): AuthorizationStart {
    return this.#run(config, (grant) => grant.beginAuthorization(config));
  }

  /** Finishes the flow from the URL the browser was redirected to, and stores the token. */
  completeAuthorization(config: ConnectionConfig, redirectUrl: string): Token {
    return this.#run(config, (grant) => grant.completeAuthorization(config, redirectUrl));
  }

  /** Drops the access token the API refused (`refused`: the Authorization value it was sent with). */
  forgetToken(config: ConnectionConfig, refused?: string): void {
    this.#run(config, (grant) => grant.forgetToken(config, refused));
  }

  /** Starts the device authorization grant (RFC 8628). */
  startDeviceAuthorization(config: ConnectionConfig): DeviceAuthorization {
    return this.#run(config, (grant) => grant.startDeviceAuthorization(config));
  }

  /** Asks once whether the user approved `deviceCode`; stores the token when they did. */
  pollDeviceAuthorization(config: ConnectionConfig, deviceCode: string): DevicePoll {
    return this.#run(config, (grant) => grant.pollDeviceAuthorization(config, deviceCode));
  }

  /**
   * The whole device authorization grant: starts it, hands the verification URI and user code to
   * `show`, then polls at the provider's interval (5 s more after each `slow_down`) without
   * blocking this thread between polls, until the user approves (the token, stored), refuses or
   * the code expires ({@link DeviceAuthorizationEnded}), or `signal` aborts.
   */
  async authorizeDevice(config: ConnectionConfig, show: (prompt: Omit<DeviceAuthorization, 'deviceCode'>) => void,
    signal?: AbortSignal): Promise<Token> {
    const { deviceCode, ...prompt } = this.startDeviceAuthorization(config);
    // The device code stands for the grant: the user sees the rest.
    show(prompt);
    let interval = prompt.intervalSeconds;
    for (;;) {
      const left = Number(prompt.expiresAt) * 1000 - this.#clock();
      // Never past the expiry, however long an interval the provider asks for.
      await sleep(Math.max(0, Math.min(Math.max(interval, 1) * 1000, left)), signal);
      if (BigInt(Math.floor(this.#clock() / 1000)) >= prompt.expiresAt) {
        throw new DeviceAuthorizationEnded('expired', undefined);
      }
      const poll = this.pollDeviceAuthorization(config, deviceCode);
      switch (poll.tag) {
        case 'granted':
          return poll.val;
        case 'slow-down':
          interval += 5;
          break;
        case 'denied':
        case 'expired':
          throw new DeviceAuthorizationEnded(poll.tag, poll.val);
        case 'pending':
          break;
      }
    }
  }

  /** Revokes the stored refresh and access tokens (RFC 7009) and removes them from the store. */
  revokeTokens(config: ConnectionConfig): Revocation {
    return this.#run(config, (grant) => grant.revokeTokens(config));
  }

  /**
   * `fetch(url, init)` with the connection's token; after a 401, the refused token is dropped and
   * the request sent once more with a new one. Redirects are returned, not followed, so the token
   * never follows one to another origin. A body given as a stream cannot be sent twice: the 401 is
   * returned (its token already dropped), so pass bytes or text when a retry may be needed.
   */
  async fetch(config: ConnectionConfig, url: string, init: RequestInit = {}): Promise<Response> {
    const send = (pairs: Pair[]) => {
      const headers = new Headers(init.headers);
      for (const { name, value } of pairs) headers.set(name, value);
      return fetch(url, { ...init, headers, redirect: 'manual' });
    };
    const pairs = this.authorizationHeaders(config, url);
    const response = await send(pairs);
    if (response.status !== 401) return response;
    const refused = pairs.find((pair) => pair.name.toLowerCase() === 'authorization')?.value;
    this.forgetToken(config, refused);
    // A stream was read by the first attempt: the next call gets the new token instead.
    if (init.body instanceof ReadableStream) return response;
    await response.body?.cancel();
    return send(this.authorizationHeaders(config, url));
  }

  /** Stops the I/O thread. The token store is the caller's to close. */
  async close(): Promise<void> {
    this.#instance = undefined;
    await this.#io?.close();
    this.#io = undefined;
  }

  [inspect.custom](): string {
    return `OAuth2Plugin { component: ${component.sha256.slice(0, 12)}…, store: ${this.#store.constructor.name} }`;
  }

  /** Runs one export for `config`, with the call's rules, and types what comes out. */
  #run<T>(config: ConnectionConfig, body: (grant: Root['grant']) => T): T {
    if (this.#call) {
      throw new ComponentFailure('a call into the component is already under way on this thread (an import called back into it)');
    }
    const call = new Call(config);
    this.#call = call;
    try {
      this.#instance ??= instantiate(coreModule, this.#imports());
      return body(this.#instance.grant);
    } catch (thrown) {
      if (isOauthError(thrown)) throw new OAuth2Error(thrown);
      // A trapped instance cannot be entered again; the next call gets a new one.
      this.#instance = undefined;
      const reason = thrown instanceof Error ? thrown.message : 'unknown failure';
      // jco's type checks of what crosses the boundary throw TypeErrors: most often an argument
      // of the wrong shape, which is the caller's to fix, not the component's.
      throw new ComponentFailure(thrown instanceof TypeError
        ? `a value crossing into or out of the component does not fit the WIT types: ${reason}`
        : `the component failed: ${reason}`);
    } finally {
      call.releaseAll();
      this.#call = undefined;
      if (this.#instancePerCall) this.#instance = undefined;
    }
  }

  #current(): Call {
    if (!this.#call) throw new ComponentFailure('the component called an import outside a call');
    return this.#call;
  }

  #imports(): ImportObject {
    const http = { send: (request: HttpRequest) => this.#send(request) };
    const secrets = { get: (name: string) => this.#secret(name) };
    const tokenStore = {
      get: (key: string) => this.#storeOp(() => this.#store.get(key)),
      set: (key: string, value: string, ttl: bigint | undefined) =>
        this.#storeOp(() => {
          this.#countWrite(key, Buffer.byteLength(value));
          this.#store.set(key, value, ttl === undefined ? undefined : Number(ttl));
        }),
      compareAndSwap: (key: string, expected: string | undefined, value: string | undefined, ttl: bigint | undefined) =>
        this.#storeOp(() => {
          this.#countWrite(key, value === undefined ? 0 : Buffer.byteLength(value));
          return this.#store.compareAndSwap(key, expected, value, ttl === undefined ? undefined : Number(ttl));
        }),
      lock: (key: string) => this.#storeOp(() => this.#lock(key)),
      unlock: (key: string) => {
        const call = this.#current();
        call.held.get(key)?.release();
        call.held.delete(key);
      },
    };
    const signing = {
      describeKey: (name: string, algorithm: SigningAlgorithm) => this.#sign(() => this.#signer.describeKey(name, algorithm)),
      sign: (name: string, algorithm: SigningAlgorithm, data: Uint8Array) => this.#sign(() => this.#signer.sign(name, algorithm, data)),
    };
    const wallClock = {
      now: () => {
        const ms = this.#clock();
        const seconds = Math.floor(ms / 1000);
        return { seconds: BigInt(seconds), nanoseconds: Math.floor((ms - seconds * 1000) * 1e6) };
      },
      resolution: () => ({ seconds: 0n, nanoseconds: 1_000_000 }),
    };
    const random = {
      getRandomBytes: (len: bigint) => {
        if (len > BigInt(MAX_RANDOM_BYTES)) throw new ComponentFailure(`the component asked for ${len} random bytes, more than its memory`);
        return randomFillSync(new Uint8Array(Number(len)));
      },
      getRandomU64: () => randomFillSync(new BigUint64Array(1))[0]!,
    };
    const interfaces = {
      'integration:oauth2/http@0.2.0': http,
      'integration:oauth2/secrets@0.2.0': secrets,
      'integration:oauth2/signing@0.2.0': signing,
      'integration:oauth2/token-store@0.2.0': tokenStore,
      'integration:oauth2/types@0.2.0': {},
      'wasi:clocks/wall-clock@0.2.12': wallClock,
      'wasi:random/random@0.2.12': random,
    };
    // jco's typings name the imports with their versions and its generated module looks them up
    // without: both, so the typings hold and the module finds them.
    const unversioned = Object.fromEntries(
      Object.entries(interfaces).map(([name, value]) => [name.replace(/@[^@]*$/, ''), value]),
    );
    return { ...interfaces, ...unversioned } as ImportObject;
  }

  /** Runs a token-store operation, turning its failure into the component's `store-error`. */
  #storeOp<T>(operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      if (error instanceof StoreFailure) throw new ImportFailure(error.error);
      if (error instanceof ImportFailure) throw error;
      throw new ImportFailure({ tag: 'unavailable', val: (error as Error).message });
    }
  }

  #countWrite(key: string, valueLength: number): void {
    const call = this.#current();
    if (Buffer.byteLength(key) > MAX_KEY_BYTES || valueLength > MAX_VALUE_BYTES) {
      throw new ImportFailure({ tag: 'unavailable', val: `the component wrote an entry over the host's limits (${MAX_KEY_BYTES} B keys, ${MAX_VALUE_BYTES >> 10} KiB values)` });
    }
    if (call.writes === MAX_WRITES_PER_CALL) {
      throw new ImportFailure({ tag: 'unavailable', val: `the component wrote more than ${MAX_WRITES_PER_CALL} entries in one call` });
    }
    call.writes += 1;
  }

  #lock(key: string): void {
    const call = this.#current();
    if (call.held.has(key)) {
      throw new ImportFailure({ tag: 'unavailable', val: 'the component asked for a lock it already holds' });
    }
    if (call.held.size >= MAX_LOCKS_PER_CALL || Buffer.byteLength(key) > MAX_KEY_BYTES) {
      throw new ImportFailure({ tag: 'unavailable', val: `the component asked for more than ${MAX_LOCKS_PER_CALL} locks, or a name over ${MAX_KEY_BYTES} B` });
    }
    call.held.set(key, this.#store.lock(key, LOCK_WAIT_MS));
  }

  /** A secret, unless it holds a private key: keys are used through `signing` and never enter the component. */
  #secret(name: string): string | undefined {
    let value: string | undefined;
    try {
      value = this.#secrets(name);
    } catch (error) {
      throw new ImportFailure(error instanceof Error ? error.message : 'the secrets callback failed');
    }
    if (value !== undefined && holdsPrivateKey(value)) {
      throw new ImportFailure(`the secret ${JSON.stringify(name)} holds a private key, which the component may not read: name it as the signing key, and the host signs with it`);
    }
    return value;
  }

  #sign<T>(operation: () => T): T {
    try {
      return operation();
    } catch (error) {
      if (error instanceof SigningFailure) throw new ImportFailure(error.error);
      throw new ImportFailure({ tag: 'unusable-key', val: 'the signer failed' });
    }
  }

  /**
   * Sends only to the origins of the connection's token, device authorization and revocation
   * URLs, over https or to a loopback host: a component, however written, cannot use the host to
   * reach anything else.
   */
  #send(request: HttpRequest): HttpResponse {
    const refused = refusal(request.url, this.#current().origins);
    if (refused !== undefined) throw new ImportFailure<TransportError>({ tag: 'forbidden-destination', val: refused });
    this.#io ??= new SyncWorker({ http: this.#http });
    let outcome: Outcome;
    try {
      outcome = this.#io.call('http.send', [request], this.#http.timeoutMs + 5_000) as Outcome;
    } catch (error) {
      // A thread that ended is replaced for the next request.
      if (this.#io.stopped) this.#io = undefined;
      throw new ImportFailure<TransportError>({ tag: 'other', val: (error as Error).message });
    }
    if ('err' in outcome) throw new ImportFailure(outcome.err);
    return outcome.ok;
  }
}

/** Waits `ms` without blocking the thread; rejects with the signal's reason when it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }, ms);
    const aborted = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/**
 * The proxy to use and the hosts that bypass it: the `http.proxy` option (an `http://` proxy;
 * empty for none), else the environment as the Rust host's HTTP client reads it: the first of
 * `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (either case) that parses, a missing scheme meaning
 * `http://`, and `NO_PROXY`. A socks or https proxy there is one this host cannot speak: it
 * connects directly instead.
 */
function proxyFrom(http: Partial<HttpSettings> | undefined): Pick<HttpSettings, 'proxy' | 'noProxy'> {
  if (http?.proxy !== undefined) {
    if (http.proxy === '') return {};
    let url: URL | undefined;
    try {
      url = new URL(http.proxy);
    } catch {
      url = undefined;
    }
    if (url?.protocol !== 'http:') throw new Error('the http.proxy option must be an http:// URL, the only kind of proxy this host speaks');
    return { proxy: http.proxy, noProxy: http.noProxy };
  }
  const env = process.env;
  const noProxy = (env.NO_PROXY ?? env.no_proxy)?.split(',');
  for (const name of ['ALL_PROXY', 'all_proxy', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy']) {
    const value = env[name];
    if (!value) continue;
    let url: URL;
    try {
      url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
    } catch {
      continue;
    }
    return url.protocol === 'http:' ? { proxy: url.toString(), noProxy } : {};
  }
  return {};
}

/** The fields of a connection every grant needs; the rest are optional. */
export type ConnectionFields = Pick<ConnectionConfig, 'grantType' | 'tokenUrl' | 'clientId'> & Partial<ConnectionConfig>;

/** A connection config with the standard defaults: Basic client auth, RFC token responses, no lists. */
export function connection(fields: ConnectionFields): ConnectionConfig {
  return {
    resourceIndicators: [],
    clientAuth: 'basic',
    extraParams: [],
    authorizationParams: [],
    responseFormat: { tokenPath: '', expiresInUnit: 'seconds', scopeSeparator: 'space' },
    apiOrigins: [],
    ...fields,
  };
}
