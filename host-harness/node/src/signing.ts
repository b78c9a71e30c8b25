// JWS signatures with PEM private keys on node:crypto: the key is read and used here, in the
// host, and never enters the component.
import { constants, createHash, createPrivateKey, sign, X509Certificate, type KeyObject } from 'node:crypto';
import type { SigningAlgorithm, SigningError } from '../gen/types/interfaces/integration-oauth2-types.js';
import type { KeyDescription } from '../gen/types/interfaces/integration-oauth2-signing.js';

/** A signing failure, with the WIT `signing-error` the component receives. */
export class SigningFailure extends Error {
  override readonly name = 'SigningFailure';
  constructor(readonly error: SigningError) {
    super(error.val);
  }
}

/**
 * Signs the component's JWTs with keys the platform holds. The default reads a PEM private key
 * from the secrets callback under the key's name; a platform with a KMS or HSM gives its own.
 */
export interface Signer {
  describeKey(keyName: string, algorithm: SigningAlgorithm): KeyDescription;
  sign(keyName: string, algorithm: SigningAlgorithm, data: Uint8Array): Uint8Array;
}

/** Whether `value` holds a PEM private key: such secrets are kept from the component. */
export function holdsPrivateKey(value: string): boolean {
  return value.includes('-----BEGIN') && value.includes('PRIVATE KEY-----');
}

const PRIVATE_KEY = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[\s\S]*?-----END (?:RSA |EC )?PRIVATE KEY-----/;
const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/;

/** A {@link Signer} over PEM keys that `pem(name)` returns (undefined: no such key). */
export function pemSigner(pem: (name: string) => string | undefined): Signer {
  const load = (name: string, algorithm: SigningAlgorithm): [KeyObject, string] => {
    let text: string | undefined;
    try {
      text = pem(name);
    } catch (error) {
      throw new SigningFailure({ tag: 'unusable-key', val: `the secret store failed: ${(error as Error).message}` });
    }
    if (text === undefined) {
      throw new SigningFailure({ tag: 'unknown-key', val: `no secret named ${JSON.stringify(name)} holds a private key` });
    }
    const block = PRIVATE_KEY.exec(text)?.[0];
    if (block === undefined) {
      throw new SigningFailure({ tag: 'unusable-key', val: 'it holds no PEM private key: store the key as PKCS#8 (-----BEGIN PRIVATE KEY-----)' });
    }
    // The Rust host's rules, so a key works on every worker of a mixed fleet or on none.
    if (block.startsWith('-----BEGIN EC PRIVATE KEY')) {
      throw new SigningFailure({ tag: 'unusable-key', val: 'it is a SEC1 EC key (BEGIN EC PRIVATE KEY): convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`' });
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(block);
    } catch (error) {
      // OpenSSL's reasons name the format, never the key's bytes.
      throw new SigningFailure({ tag: 'unusable-key', val: `the private key is refused (${(error as { code?: string }).code ?? 'unreadable'})` });
    }
    const type = key.asymmetricKeyType;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const rsa = type === 'rsa';
    const p256 = type === 'ec' && curve === 'prime256v1';
    // ring's limits, which the Rust host signs with: a 2048- to 4096-bit modulus, an exponent of
    // at least 65537 and at most 33 bits.
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
    if (rsa && (bits < 2048 || bits > 4096)) {
      throw new SigningFailure({ tag: 'unusable-key', val: `the RSA key has ${bits} bits: RS256 and PS256 take 2048 to 4096` });
    }
    if (rsa && (exponent < 65537n || exponent >= 1n << 33n)) {
      throw new SigningFailure({ tag: 'unusable-key', val: `the RSA key's public exponent is ${exponent}: it must be at least 65537 (make the key with the usual 65537)` });
    }
    if (!rsa && !p256) {
      throw new SigningFailure({ tag: 'unusable-key', val: `the key is neither an RSA key nor a P-256 key (${type}${curve ? ` ${curve}` : ''})` });
    }
    if (algorithm === 'es256' && !p256) {
      throw new SigningFailure({ tag: 'wrong-algorithm', val: 'the key is an RSA key: set signing_alg to RS256 or PS256' });
    }
    if (algorithm !== 'es256' && !rsa) {
      throw new SigningFailure({ tag: 'wrong-algorithm', val: 'the key is a P-256 EC key: set signing_alg to ES256' });
    }
    return [key, text];
  };
  return {
    describeKey(keyName, algorithm) {
      const [, text] = load(keyName, algorithm);
      const certificate = CERTIFICATE.exec(text)?.[0];
      let certificateSha256: string | undefined;
      if (certificate !== undefined) {
        try {
          certificateSha256 = createHash('sha256').update(new X509Certificate(certificate).raw).digest('base64url');
        } catch {
          // An unreadable certificate is as none: no thumbprint in the header.
        }
      }
      return { keyId: undefined, certificateSha256 };
    },
    sign(keyName, algorithm, data) {
      const [key] = load(keyName, algorithm);
      const options = algorithm === 'es256'
        ? { key, dsaEncoding: 'ieee-p1363' as const }
        : algorithm === 'ps256'
          ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
          : { key };
      try {
        return new Uint8Array(sign('sha256', data, options));
      } catch {
        throw new SigningFailure({ tag: 'unusable-key', val: 'the signature could not be made' });
      }
    },
  };
}
