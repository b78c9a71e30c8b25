// The Node.js host of the oauth2-plugin component: the same .wasm as the Rust host, run through
// jco, with HTTP, the token store, secrets, signing, clock and randomness provided here.
export { component, connection, OAuth2Plugin } from './plugin.js';
export type { ConnectionFields, PluginOptions } from './plugin.js';
export { ComponentFailure, DeviceAuthorizationEnded, explain, OAuth2Error } from './errors.js';
export { LOCK_WAIT_MS, MemoryTokenStore, StoreFailure } from './token-store.js';
export type { HeldLock, TokenStore } from './token-store.js';
export { RedisTokenStore } from './redis-store.js';
export type { RedisStoreOptions } from './redis-store.js';
export { OpenError, SealingKeys } from './sealing.js';
export { holdsPrivateKey, pemSigner, SigningFailure } from './signing.js';
export type { Signer } from './signing.js';
export type { HttpSettings } from './http-transport.js';
export type * from '../gen/types/interfaces/integration-oauth2-types.js';
export type { KeyDescription } from '../gen/types/interfaces/integration-oauth2-signing.js';
