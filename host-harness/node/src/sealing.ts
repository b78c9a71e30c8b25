// Values sealed at rest for a shared store, exactly as the Rust host seals them: AES-256-GCM with
// the Redis key name as associated data, written `v1.<key id>.<base64url(nonce | ciphertext | tag)>`.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { inspect } from 'node:util';

const VERSION = 'v1';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAX_KEY_FILE_BYTES = 64 << 10;

/** Why a sealed value did not open; no message holds the value. */
export class OpenError extends Error {
  override readonly name = 'OpenError';
  constructor(readonly kind: 'not-sealed' | 'unknown-key' | 'forged', readonly keyId?: string) {
    super(kind === 'not-sealed'
      ? 'holds a value that was not sealed by this store: something else writes under the store\'s names'
      : kind === 'unknown-key'
        ? `was sealed with key ${keyId}, which the store key file does not hold: use the key file the other workers use (during a rotation, keep the old key on a line below the new one)`
        : `does not open with key ${keyId}: the value was altered or copied from another name`);
  }
}

interface Key {
  id: string;
  key: Buffer;
}

/**
 * The keys of a store: the first seals every new value, all of them open what they sealed. A key
 * file holds one base64 key per line (blank lines and `#` comments skipped), the same file the
 * Rust host's workers read through OAUTH2_HOST_STORE_KEY_FILE.
 */
export class SealingKeys {
  readonly #keys: Key[];

  private constructor(keys: Buffer[]) {
    this.#keys = keys.map((key) => ({ id: keyId(key), key }));
  }

  /** Keys given directly, the sealing one first. */
  static fromKeys(keys: Uint8Array[]): SealingKeys {
    if (keys.length === 0) throw new Error('SealingKeys needs at least one key');
    for (const key of keys) {
      if (key.length !== KEY_BYTES) throw new Error(`a store key is ${KEY_BYTES} bytes`);
    }
    return new SealingKeys(keys.map((key) => Buffer.from(key)));
  }

  /** The keys in `path`, which must be a regular file of this user that no one else may read. */
  static fromFile(path: string): SealingKeys {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      throw new Error(`store key file ${path}: ${(error as Error).message}`);
    }
    let text: string;
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new Error(`store key file ${path} is not a regular file`);
      if (stat.uid !== process.getuid?.()) throw new Error(`store key file ${path} belongs to another user`);
      if ((stat.mode & 0o077) !== 0) {
        throw new Error(`store key file ${path} may be read by others (mode ${(stat.mode & 0o777).toString(8)}): chmod 600 it`);
      }
      const buffer = Buffer.alloc(Math.min(stat.size, MAX_KEY_FILE_BYTES));
      const read = readSync(fd, buffer, 0, buffer.length, 0);
      text = buffer.subarray(0, read).toString('utf8');
    } finally {
      closeSync(fd);
    }
    const keys: Buffer[] = [];
    text.split('\n').forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const key = Buffer.from(line, 'base64');
      if (key.length !== KEY_BYTES || key.toString('base64') !== line) {
        throw new Error(`store key file ${path} line ${index + 1} is not a key: each line holds 32 random bytes in base64 (44 characters)`);
      }
      keys.push(key);
    });
    if (keys.length === 0) throw new Error(`store key file ${path} holds no key`);
    return new SealingKeys(keys);
  }

  /** A new random key, as a line of a key file. */
  static newKeyLine(): string {
    return randomBytes(KEY_BYTES).toString('base64');
  }

  /** The key ids, the sealing one first. */
  get ids(): string[] {
    return this.#keys.map((key) => key.id);
  }

  /** `plaintext` sealed under the first key and bound to `name`. */
  seal(name: string, plaintext: string): string {
    const { id, key } = this.#keys[0]!;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(Buffer.from(name, 'utf8'));
    const body = Buffer.concat([nonce, cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${VERSION}.${id}.${body.toString('base64url')}`;
  }

  /** The plaintext of a value {@link seal} wrote under `name`; throws an {@link OpenError}. */
  open(name: string, value: string): string {
    const [version, id, body, extra] = value.split('.');
    if (version !== VERSION || id === undefined || !/^[0-9a-f]{8}$/.test(id) || body === undefined
      || extra !== undefined || !/^[A-Za-z0-9_-]*$/.test(body)) {
      throw new OpenError('not-sealed');
    }
    const sealed = Buffer.from(body, 'base64url');
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new OpenError('not-sealed');
    const candidates = this.#keys.filter((key) => key.id === id);
    if (candidates.length === 0) throw new OpenError('unknown-key', id);
    const nonce = sealed.subarray(0, NONCE_BYTES);
    const ciphertext = sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES);
    const tag = sealed.subarray(sealed.length - TAG_BYTES);
    for (const { key } of candidates) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, nonce);
        decipher.setAAD(Buffer.from(name, 'utf8'));
        decipher.setAuthTag(tag);
        const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
        return new TextDecoder('utf-8', { fatal: true }).decode(plain);
      } catch {
        // The next key of the same id, if any.
      }
    }
    throw new OpenError('forged', id);
  }

  /** Only the ids: the keys are secrets. */
  [inspect.custom](): string {
    return `SealingKeys { ids: ${JSON.stringify(this.ids)} }`;
  }

  toJSON(): object {
    return { ids: this.ids };
  }
}

/** The first four bytes of SHA-256 over a label and the key, in hex: the Rust host's key id. */
function keyId(key: Buffer): string {
  return createHash('sha256').update('oauth2-host store key id\0').update(key).digest().subarray(0, 4).toString('hex');
}
