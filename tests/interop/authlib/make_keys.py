# Makes throwaway client signing keys and their public JWKS, for private_key_jwt client authentication
# and the JWT bearer grant (the JWKS is what both servers take as --client-jwks).
#
#   .venv/bin/python make_keys.py DIR
#
# Writes into DIR (which must exist), private keys unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"),
# mode 0600:
#   rsa.pem       RSA 2048 key, kid rsa-1 in the JWKS (for RS256 and PS256)
#   ec.pem        P-256 key, kid ec-1 in the JWKS (for ES256)
#   rsa-cert.pem  the RSA key's PEM followed by a self-signed X.509 certificate for it (CN
#                 "oauth2-host interop client", valid from an hour ago for a day), in one file
#   wrong.pem     another RSA 2048 key, in no JWKS (a client signing with it must be refused)
#   jwks.json     {"keys": [rsa-1, ec-1]}: public keys only, each with kid, use "sig" and no alg (so one
#                 RSA key serves RS256 and PS256); rsa-1 also has x5c (the certificate, base64 DER)
#                 and x5t#S256 (base64url SHA-256 of that DER), so a server can match a JWT whose
#                 header names the key by x5t#S256 instead of kid.
# Prints nothing but errors.
import base64
import datetime
import hashlib
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


def b64url_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_fixed(n, size):
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode("ascii")


def pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oauth2-host interop client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: make_keys.py EXISTING_DIR")
    out = sys.argv[1]

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(rsa_key)
    der = cert.public_bytes(serialization.Encoding.DER)

    rsa_pub = rsa_key.public_key().public_numbers()
    ec_pub = ec_key.public_key().public_numbers()
    jwks = {"keys": [
        {
            "kty": "RSA", "kid": "rsa-1", "use": "sig",
            "n": b64url_uint(rsa_pub.n), "e": b64url_uint(rsa_pub.e),
            "x5c": [base64.b64encode(der).decode("ascii")],
            "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii"),
        },
        {
            "kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
            "x": b64url_fixed(ec_pub.x, 32), "y": b64url_fixed(ec_pub.y, 32),
        },
    ]}

    write_private(os.path.join(out, "rsa.pem"), pkcs8(rsa_key))
    write_private(os.path.join(out, "ec.pem"), pkcs8(ec_key))
    write_private(os.path.join(out, "rsa-cert.pem"),
                  pkcs8(rsa_key) + cert.public_bytes(serialization.Encoding.PEM))
    write_private(os.path.join(out, "wrong.pem"), pkcs8(wrong_key))
    with open(os.path.join(out, "jwks.json"), "w") as f:
        json.dump(jwks, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
