# Makes a throwaway CA and a server certificate it signed, for serving server.py over https.
#
#   .venv/bin/python make_ca.py DIR [DNS_NAME...]
#
# Writes into DIR (which must exist): ca.pem (the CA certificate, what clients trust), cert.pem (the
# leaf for IP 127.0.0.1, DNS localhost and any DNS_NAME given (a name a test reaches through a
# proxy), followed by the CA so the server sends the chain) and
# key.pem (the leaf's unencrypted private key, mode 0600). The CA's key is never written: nothing
# else can be signed with it. Both certificates are valid from an hour ago (clock skew) for a day.
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject, subject_key, issuer, issuer_key, extensions):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def main():
    if len(sys.argv) < 2 or not os.path.isdir(sys.argv[1]):
        sys.exit("usage: make_ca.py EXISTING_DIR [DNS_NAME...]")
    out = sys.argv[1]
    extra_names = [x509.DNSName(dns) for dns in sys.argv[2:]]

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("oauth2-host interop test CA")
    ca = certificate(ca_name, ca_key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False), True),
    ])

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(name("localhost"), key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            *extra_names,
        ]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ])

    pem = serialization.Encoding.PEM
    with open(os.path.join(out, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(out, "cert.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path = os.path.join(out, "key.pem")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


if __name__ == "__main__":
    main()
