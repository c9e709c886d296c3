"""Self-signed TLS material for the emulators, written to a private temp dir.

A real BIG-IP management port serves a self-signed certificate, so the emulator does too. The
certificate is also its own CA (basicConstraints CA:TRUE, keyCertSign) so a client can verify it by passing the
file as a private CA bundle instead of switching verification off; the subjectAltName covers both ways tests
and demos address it (`IP:127.0.0.1`, `DNS:localhost`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class CertFiles:
    directory: str
    cert_path: str
    key_path: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def generate_self_signed(common_name: str = "localhost", prefix: str = "llmsched-emu-") -> CertFiles:
    """Create cert.pem/key.pem in a fresh temp dir (mode 0700) and return their paths."""
    directory = tempfile.mkdtemp(prefix=prefix)
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    try:
        import cryptography  # noqa: F401  (probe only; the openssl CLI is the fallback)
    except ImportError:
        _with_openssl_cli(common_name, cert_path, key_path)
    else:
        _with_cryptography(common_name, cert_path, key_path)
    os.chmod(key_path, 0o600)
    return CertFiles(directory, cert_path, key_path)


def _with_cryptography(common_name: str, cert_path: str, key_path: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    # EC P-256: key generation is instant, which keeps emulator start-up (and the test suite) fast.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "llmsched emulator"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        # An AKI equal to the SKI keeps OpenSSL's strict X.509 mode (Python 3.13 default) happy.
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))


def _with_openssl_cli(common_name: str, cert_path: str, key_path: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("cannot create a TLS certificate: neither `cryptography` nor `openssl` is available")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key_path,
            "-out",
            cert_path,
            "-days",
            "30",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
