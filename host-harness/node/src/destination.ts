// Where the component's HTTP may go: the origins of the connection's own endpoints, over https or
// to this machine. Checked by the host, so a component, however written, cannot use it for SSRF.
import type { ConnectionConfig } from '../gen/types/interfaces/integration-oauth2-types.js';

/** The origins of the connection's token, device authorization and revocation URLs. */
export function permittedOrigins(config: ConnectionConfig): string[] {
  return [config.tokenUrl, config.deviceAuthorizationUrl, config.revocationUrl].flatMap((url) => {
    if (url === undefined) return [];
    try {
      const origin = new URL(url.trim()).origin;
      return origin === 'null' ? [] : [origin];
    } catch {
      return [];
    }
  });
}

/** Why a request to `url` is refused, or undefined when it may go. */
export function refusal(url: string, permitted: string[]): string | undefined {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !permitted.includes(parsed.origin)) {
    return `the component may reach only the origins of the connection's token, device authorization and revocation endpoints (${permitted.join(', ') || 'none'}), not ${parsed ? parsed.origin : 'an unparsable URL'}`;
  }
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && isLoopback(parsed))) {
    return `plain http to ${parsed.host}: only https, or http to this machine`;
  }
  return undefined;
}

/** The Rust host's rule: `localhost`, 127.0.0.0/8 or ::1. */
export function isLoopback(url: URL): boolean {
  const host = url.hostname;
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
