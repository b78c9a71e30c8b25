// One whole HTTP exchange on node:http / node:https, run in the I/O thread: no redirect followed,
// a proxy only for https to other machines, a cap on the body and limits on time. Messages never
// hold a header value, a body or the proxy's credentials.
import http from 'node:http';
import https from 'node:https';
import { isIP, isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { isLoopback } from './destination.js';
import type {
  HttpRequest,
  HttpResponse,
  Pair,
  TransportError,
} from '../gen/types/interfaces/integration-oauth2-types.js';

/** Limits of the HTTP the component gets. */
export interface HttpSettings {
  /** Establishing the connection (TCP and TLS). */
  connectTimeoutMs: number;
  /** The whole exchange, from connecting to the last byte of the body. */
  timeoutMs: number;
  /** The largest response body accepted. */
  maxBodyBytes: number;
  /** PEM certificates trusted besides Node's bundled roots (a private CA). */
  caCertificates?: string | undefined;
  /**
   * An `http://[user:password@]host:port` proxy that carries `https` requests to other machines
   * through CONNECT; loopback destinations and plain `http` never go through it.
   */
  proxy?: string | undefined;
  /** Hosts that bypass the proxy, as `NO_PROXY` writes them (`*`, `.suffix`, `*suffix`, `prefix*`, exact). */
  noProxy?: string[] | undefined;
}

/** Whether `host` matches one of the `NO_PROXY` patterns, as the Rust host's HTTP client reads them. */
export function bypassesProxy(host: string, patterns: string[]): boolean {
  const name = host.toLowerCase();
  return patterns.some((raw) => {
    const pattern = raw.trim().toLowerCase();
    if (pattern === '') return false;
    if (pattern === '*') return true;
    if (pattern.startsWith('*')) return name.endsWith(pattern.slice(1));
    if (pattern.startsWith('.')) return name.endsWith(pattern);
    if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
    if (pattern.endsWith('.')) return name.startsWith(pattern);
    return name === pattern;
  });
}

export type Outcome = { ok: HttpResponse } | { err: TransportError };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Control characters other than tab, checked on the value's UTF-8 bytes.
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
// Headers that frame the message or route it: the host sets Host and Content-Length itself, and
// a component choosing them could desynchronise a kept-alive connection or reach another site
// served at the permitted address.
const HOST_ONLY = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te',
  'expect', 'keep-alive', 'trailer']);
const hostOnly = (name: string) => HOST_ONLY.has(name) || name.startsWith('proxy-');

class TimedOut extends Error {}

/** The proxy refused to open the tunnel. */
class ProxyRefused extends Error {
  override readonly name = 'ProxyRefused';
}

/**
 * Connections tunnelled through an HTTP proxy (CONNECT), then TLS to the destination end to end:
 * the proxy sees the host name and port, never the request. Pooled like any keep-alive agent.
 */
class TunnelAgent extends https.Agent {
  readonly #proxy: URL;
  readonly #connectTimeoutMs: number;

  constructor(proxy: URL, settings: HttpSettings, options: https.AgentOptions) {
    super(options);
    this.#proxy = proxy;
    this.#connectTimeoutMs = settings.connectTimeoutMs;
  }

  // Node's agents accept a connection given later through the callback, as here.
  override createConnection(options: http.RequestOptions,
    callback?: (error: Error | null, stream: Duplex) => void): undefined {
    // The stream is unused when there is an error.
    const done = (error: Error | null, stream?: Duplex) => callback?.(error, stream as Duplex);
    const host = options.host ?? '';
    const target = `${isIPv6(host) ? `[${host}]` : host}:${options.port ?? 443}`;
    const proxy = this.#proxy;
    const credentials = proxy.username
      ? { 'Proxy-Authorization': `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}` }
      : {};
    const connect = http.request({
      host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: proxy.port || 80,
      method: 'CONNECT',
      path: target,
      headers: { Host: target, ...credentials },
      agent: false,
    });
    // The connect timeout covers the tunnel and the TLS handshake through it.
    let secure: tls.TLSSocket | undefined;
    const timer = setTimeout(() => {
      if (secure) secure.destroy(new TimedOut());
      else connect.destroy(new TimedOut());
    }, this.#connectTimeoutMs);
    connect.once('connect', (answer, socket) => {
      if (answer.statusCode !== 200) {
        clearTimeout(timer);
        socket.destroy();
        done(new ProxyRefused(`the proxy ${proxy.host} answered ${answer.statusCode} to CONNECT ${target}`));
        return;
      }
      const { ca } = options as tls.ConnectionOptions;
      // `host` names the certificate to check (not the proxy's); SNI carries names, never addresses.
      secure = tls.connect({ socket, host, ...(isIP(host) === 0 ? { servername: host } : {}), ...(ca ? { ca } : {}) });
      secure.once('secureConnect', () => clearTimeout(timer));
      secure.once('close', () => clearTimeout(timer));
      done(null, secure);
    });
    connect.once('error', (error) => {
      clearTimeout(timer);
      done(error instanceof TimedOut ? error : Object.assign(new Error(`the proxy ${proxy.host}: ${error.message}`), { code: (error as { code?: string }).code }));
    });
    connect.end();
    return undefined;
  }
}

interface Agents {
  'http:': http.Agent;
  'https:': https.Agent;
  tunnel: https.Agent | undefined;
}

/** A sender with keep-alive connections, one pool per scheme (and one through the proxy). */
export function createSender(settings: HttpSettings): (request: HttpRequest) => Promise<Outcome> {
  const tlsOptions = {
    keepAlive: true,
    ...(settings.caCertificates ? { ca: [...tls.rootCertificates, settings.caCertificates] } : {}),
  };
  const agents: Agents = {
    'http:': new http.Agent({ keepAlive: true }),
    'https:': new https.Agent(tlsOptions),
    tunnel: settings.proxy ? new TunnelAgent(new URL(settings.proxy), settings, tlsOptions) : undefined,
  };
  return (request) => send(request, settings, agents);
}

function refuse(reason: string): Outcome {
  return { err: { tag: 'invalid-request', val: reason } };
}

function send(request: HttpRequest, settings: HttpSettings, agents: Agents): Promise<Outcome> {
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return Promise.resolve(refuse('the URL does not parse'));
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return Promise.resolve(refuse(`the scheme ${url.protocol} is not HTTP`));
  }
  if (!TOKEN.test(request.method)) return Promise.resolve(refuse('the method is not an HTTP token'));
  // A flat list keeps the headers' order and repeats; Node then adds no Host of its own.
  const headers: string[] = ['Host', url.host];
  for (const { name, value } of request.headers) {
    if (!TOKEN.test(name)) return Promise.resolve(refuse('a header name is not an HTTP token'));
    if (hostOnly(name.toLowerCase())) return Promise.resolve(refuse(`the ${name} header is the host's to set`));
    // Node writes header strings as latin1: the UTF-8 bytes as latin1 characters go out as UTF-8,
    // as the Rust host sends them.
    const bytes = Buffer.from(value, 'utf8').toString('latin1');
    if (BAD_VALUE.test(bytes)) return Promise.resolve(refuse(`the ${name} header holds a character HTTP does not allow`));
    headers.push(name, bytes);
  }
  if (request.body.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(request.method)) {
    headers.push('Content-Length', String(request.body.length));
  }

  const client = url.protocol === 'https:' ? https : http;
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(connecting);
      resolve(outcome);
    };
    const req = client.request({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: request.method,
      headers,
      agent: url.protocol === 'https:' && agents.tunnel && !isLoopback(url) && !bypassesProxy(url.hostname, settings.noProxy ?? [])
        ? agents.tunnel
        : agents[url.protocol as 'http:' | 'https:'],
    });
    const overall = setTimeout(() => req.destroy(new TimedOut()), settings.timeoutMs);
    let connecting: NodeJS.Timeout | undefined;
    req.on('socket', (socket) => {
      if (!socket.connecting) return;
      connecting = setTimeout(() => req.destroy(new TimedOut()), settings.connectTimeoutMs);
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connecting));
    });
    req.on('error', (error) => finish({ err: classify(error) }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > settings.maxBodyBytes) {
          finish({ err: { tag: 'body-too-large', val: BigInt(settings.maxBodyBytes) } });
          res.destroy();
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (error) => finish({ err: classify(error, true) }));
      res.on('aborted', () => finish({ err: { tag: 'interrupted', val: 'the server closed the connection mid-answer' } }));
      res.on('end', () => {
        const pairs: Pair[] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          pairs.push({ name: res.rawHeaders[i]!, value: res.rawHeaders[i + 1]! });
        }
        const body = Buffer.concat(chunks);
        finish({
          ok: {
            status: res.statusCode ?? 0,
            headers: pairs,
            body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
          },
        });
      });
    });
    req.end(request.body.length > 0 ? Buffer.from(request.body) : undefined);
  });
}

/** The transport error for a Node socket error; its message names the code and the host, not data. */
function classify(error: Error & { code?: string }, midAnswer = false): TransportError {
  if (error instanceof TimedOut) return { tag: 'timeout' };
  if (error instanceof ProxyRefused) return { tag: 'connect', val: error.message };
  const code = error.code ?? '';
  const message = error.message;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') return { tag: 'dns', val: message };
  if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'].includes(code)) {
    return { tag: 'connect', val: message };
  }
  if (code === 'ETIMEDOUT') return { tag: 'timeout' };
  if (/^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH)/.test(code)) {
    return { tag: 'tls', val: `${code}: ${message}` };
  }
  if (midAnswer || ['ECONNRESET', 'EPIPE', 'ECONNABORTED'].includes(code) || message === 'socket hang up') {
    return { tag: 'interrupted', val: message };
  }
  if (code.startsWith('ERR_INVALID') || code === 'ERR_UNESCAPED_CHARACTERS') {
    return { tag: 'invalid-request', val: code };
  }
  return { tag: 'other', val: code ? `${code}: ${message}` : message };
}
