// The failures of a call into the component, as typed errors whose messages hold no secret.
import type {
  OauthError,
  ProviderError,
  ResponseProblem,
  TransportError,
} from '../gen/types/interfaces/integration-oauth2-types.js';

/**
 * The component's typed error: `error` is the WIT `oauth-error` variant, to match on
 * (`error.tag === 'provider' && error.val.code === 'invalid_client'`); `message` says it for people.
 * Provider text in it was cleaned of the request's secrets by the component.
 */
export class OAuth2Error extends Error {
  override readonly name = 'OAuth2Error';
  constructor(readonly error: OauthError) {
    super(explain(error));
  }
}

/** The device authorization ended without a token: the user refused, or the code expired. */
export class DeviceAuthorizationEnded extends Error {
  override readonly name = 'DeviceAuthorizationEnded';
  constructor(readonly outcome: 'denied' | 'expired', readonly error: ProviderError | undefined) {
    super(outcome === 'denied'
      ? `the user refused the device authorization${error ? `: ${provider(error)}` : ''}`
      : `the device code expired before the user approved it${error ? `: ${provider(error)}` : ''}: start again`);
  }
}

/** The component trapped or broke a host limit: the call failed, and the host replaces the instance. */
export class ComponentFailure extends Error {
  override readonly name = 'ComponentFailure';
}

/** An import the host could not serve, with the WIT error value the component receives. */
export class ImportFailure<E> extends Error {
  constructor(readonly payload: E) {
    super('host import failed');
  }
}

/** One line for people, in the words of the Rust host's messages. */
export function explain(error: OauthError): string {
  switch (error.tag) {
    case 'invalid-config':
      return `config: ${error.val.field}: ${error.val.message}`;
    case 'missing-secret':
      return `secret "${error.val.name}" named by ${error.val.field} is not in the secret store`;
    case 'secret-store':
      return `secret store: ${error.val}`;
    case 'token-store':
      return error.val.tag === 'unavailable'
        ? `token store: ${error.val.val}`
        : `token store: another step held this connection's lock for over ${error.val.val} s (a slow token request, or a stuck worker): try again`;
    case 'transport':
      return `could not reach the token endpoint: ${transport(error.val)}`;
    case 'provider':
      return `token endpoint answered ${error.val.status} ${provider(error.val)}`;
    case 'malformed-response':
      return responseProblem(error.val);
    case 'authorization-required':
      return `authorization required: ${error.val}`;
    case 'authorization-denied':
      return `authorization server redirected with ${provider(error.val)}`;
    case 'state-mismatch':
      return "state_mismatch: the redirect's state was not issued by this host or was already used; start the authorization again";
    case 'invalid-redirect':
      return `invalid redirect URL: ${error.val}`;
    case 'randomness-unavailable':
      return `the host gave no secure randomness: ${error.val}`;
    case 'api-url-refused':
      return `the token may not be sent there: ${error.val} (apiOrigins lists where it may go)`;
    case 'signing':
      return `signing key: ${error.val.tag}: ${error.val.val}`;
    case 'issuer-mismatch':
      return error.val.received === undefined
        ? `issuer_mismatch: the authorization response carries no iss, but issuer ${JSON.stringify(error.val.expected)} is configured; the code was not used (remove issuer if the provider does not send iss, RFC 9207)`
        : `issuer_mismatch: the authorization response came from issuer ${JSON.stringify(error.val.received)}, not the configured issuer ${JSON.stringify(error.val.expected)}; the code was not used (a mix-up attack, or issuer is wrong)`;
  }
}

function transport(error: TransportError): string {
  switch (error.tag) {
    case 'invalid-request':
      return `invalid request: ${error.val}`;
    case 'forbidden-destination':
      return `destination refused: ${error.val}`;
    case 'dns':
      return `DNS lookup failed: ${error.val}. Check the host name in the URL`;
    case 'connect':
      return `connection failed: ${error.val}. Check the URL's host and port, and that the server is up`;
    case 'tls':
      return `TLS failed: ${error.val}. Check the server's certificate, or give the host its CA`;
    case 'timeout':
      return 'timed out. The server accepted the connection but did not answer in time';
    case 'interrupted':
      return `the connection broke mid-answer: ${error.val}`;
    case 'body-too-large':
      return `response body larger than ${error.val} bytes`;
    case 'other':
      return error.val;
  }
}

function provider(p: ProviderError): string {
  let text = p.code;
  if (p.description) text += `: ${p.description.replace(/\.+$/, '')}`;
  if (p.uri !== undefined) text += ` (see ${p.uri})`;
  return withHint(text, p.hint);
}

function responseProblem(r: ResponseProblem): string {
  let text = `token endpoint answered ${r.status}`;
  if (r.contentType !== undefined) text += ` (${r.contentType})`;
  text += ` that is not a token: ${r.message.replace(/\.+$/, '')}`;
  return withHint(text, r.hint);
}

function withHint(text: string, hint: string): string {
  return hint ? `${text}. ${hint[0]!.toUpperCase()}${hint.slice(1)}` : text;
}
