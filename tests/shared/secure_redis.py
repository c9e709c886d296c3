"""Redis servers and Sentinels with the security turned on, for the tests of Redis authentication and TLS: a
private CA with server and client certificates (made with `cryptography`), and processes started from a config
file (requirepass, ACL users, TLS-only ports, Sentinel's own password). All on 127.0.0.1, free ports, temp dirs."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> str:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, signed by that CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("llmsched test CA"))
        .issuer_name(_name("llmsched test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(common: str, usage: x509.ObjectIdentifier, stem: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(directory / f"{stem}.pem"), _write_key(key, directory / f"{stem}.key")

    server = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, "server")
    # Redis's TLS port also dials out (a replica to its master, Sentinel to the servers) with the same pair.
    client = leaf("llmsched", ExtendedKeyUsageOID.CLIENT_AUTH, "client")
    return TlsFiles(str(directory / "ca.pem"), *server, *client)


def tls_server_lines(tls: TlsFiles, port: int) -> list[str]:
    """A TLS-only listener that requires a client certificate signed by the test CA."""
    return [
        "port 0",
        f"tls-port {port}",
        f"tls-cert-file {tls.server_cert}",
        f"tls-key-file {tls.server_key}",
        f"tls-client-cert-file {tls.server_cert}",
        f"tls-client-key-file {tls.server_key}",
        f"tls-ca-cert-file {tls.ca}",
        "tls-auth-clients yes",
        "tls-replication yes",
    ]


class SecureRedis:
    """A redis-server (or with `sentinel=True` a Sentinel) from config lines; `client_options` reach it."""

    def __init__(self, lines: list[str], client_options: dict[str, Any], sentinel: bool = False, port: int = 0):
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmsched-test-secure-redis-"))
        self.lines = lines
        self.client_options = client_options
        self.sentinel = sentinel
        self.proc: subprocess.Popen | None = None

    def client(self, **overrides: Any) -> redis.Redis:
        options = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, **self.client_options, **overrides}
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def start(self, timeout: float = 10.0) -> SecureRedis:
        conf = self.dir / ("sentinel.conf" if self.sentinel else "redis.conf")
        base = ["bind 127.0.0.1", f"dir {self.dir}"]
        if not self.sentinel:
            base += ['save ""', "appendonly no"]
        if not any(line.startswith("port ") for line in self.lines):
            base.append(f"port {self.port}")
        conf.write_text("\n".join(base + self.lines) + "\n")
        argv = [shutil.which("redis-server") or "redis-server", str(conf)] + (["--sentinel"] if self.sentinel else [])
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError(f"redis on {self.port} did not start: {self.log()[-1500:]}") from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
