"""The remote-access how-to (docs/howto/remote-tls.md) works: a daemon serving TLS, reached with its certificate.

A self-signed certificate for 127.0.0.1 (as the how-to makes one for the lab computer's name), the
daemon's ``[server] tls_cert``/``tls_key``, then the clients the page names: ``connect(...,
tls_cert=...)`` from Python, and the command line with ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``. A client
that does not trust the certificate is refused by the TLS handshake, with the reason.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import arrowdaq
from arrowdaq.errors import DaemonUnavailable

from .live_helpers import Daemon

TOKEN = "a-long-random-secret-for-tests"


def self_signed(folder: Path) -> tuple[Path, Path]:
    """What ``openssl req -x509 ... -addext subjectAltName=...`` in the how-to makes: a PEM cert and key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "server.crt", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@pytest.fixture
def tls_daemon(tmp_path: Path):
    cert, key = self_signed(tmp_path)
    extra = f'[server]\nhost = "127.0.0.1"\ntls_cert = "{cert}"\ntls_key = "{key}"\ntoken = "{TOKEN}"\n'
    daemon = Daemon(tmp_path, extra=extra).start()
    yield daemon, cert
    daemon.stop()


def test_a_tls_daemon_is_reached_with_its_certificate(tls_daemon) -> None:
    daemon, cert = tls_daemon
    assert daemon.address.startswith("grpc+tls://127.0.0.1:")
    with arrowdaq.connect(daemon.address, token=TOKEN, tls_cert=cert, name="office") as daq:
        assert daq.ping()
        assert daq.streams()["pm1/power"].unit == "W"
        assert daq.set("laser", "wavelength", 800) == pytest.approx(800, abs=1)


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_daemon) -> None:
    daemon, _ = tls_daemon
    with arrowdaq.connect(daemon.address, token=TOKEN, timeout=5.0) as daq:
        with pytest.raises(DaemonUnavailable, match="(?i)certificate|handshake|ssl"):
            daq.ping()


def test_the_command_line_trusts_the_certificate_through_grpc_roots(tls_daemon) -> None:
    daemon, cert = tls_daemon
    env = {**os.environ, "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(cert), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", "status", "--address", daemon.address, "--token", TOKEN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "pm1/power" in result.stdout and daemon.address in result.stdout
