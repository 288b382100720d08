"""The remote-access how-to (docs/howto/remote-tls.md) works: a daemon serving TLS, reached with its certificate.

A self-signed certificate for 127.0.0.1 (as the how-to makes one for the lab computer's name), the
daemon's ``[server] tls_cert``/``tls_key``, then the clients the page names: ``connect(...,
tls_cert=...)`` from Python, the command line with ``--tls-cert``, and local clients that find the
certificate in the address file. A client that does not trust the certificate is refused by the TLS
handshake, with the reason; a ``--tls-cert`` that is missing or not a certificate is named.
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
from arrowdaq.errors import ConfigError, DaemonUnavailable

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


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_daemon, tmp_path, monkeypatch) -> None:
    daemon, _ = tls_daemon
    monkeypatch.setenv("ARROWDAQ_LIVE_FILE", str(tmp_path / "elsewhere.json"))  # another computer: no address file
    with arrowdaq.connect(daemon.address, token=TOKEN, timeout=5.0) as daq:
        with pytest.raises(DaemonUnavailable, match=r"TLS certificate is not trusted here \(self-signed certificate\)"):
            daq.ping()


def arrowdaq_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    env.pop("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", None)
    return subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_command_line_takes_the_certificate(tls_daemon) -> None:
    daemon, cert = tls_daemon
    remote = ["--address", daemon.address, "--token", TOKEN, "--tls-cert", str(cert)]
    result = arrowdaq_cli("status", *remote)
    assert result.returncode == 0, result.stderr
    assert "pm1/power" in result.stdout and daemon.address in result.stdout
    result = arrowdaq_cli("set", "laser", "wavelength", "790", *remote)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("laser.wavelength = 79")
    # without it (on another computer: no address file), the handshake fails and says so
    elsewhere = {"ARROWDAQ_LIVE_FILE": str(cert.with_name("elsewhere.json"))}
    result = arrowdaq_cli("status", "--address", daemon.address, "--token", TOKEN, env=elsewhere)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [  # one line, no gRPC log lines before it
        "arrowdaq status: error: the daemon's TLS certificate is not trusted here (self-signed certificate): "
        "give it with --tls-cert PEM, ARROWDAQ_TLS_CERT or connect(tls_cert=...) (the daemon's server.tls_cert)"
    ], result.stderr


def test_a_local_client_finds_the_certificate_in_the_address_file(tls_daemon) -> None:
    """The daemon names its certificate in its address file: local clients need no option at all."""
    daemon, cert = tls_daemon
    # the address given by hand is the file's: its certificate comes from the file
    with arrowdaq.connect(daemon.address, token=TOKEN) as daq:
        assert daq.set("laser", "wavelength", 805) == pytest.approx(805, abs=1)
    result = arrowdaq_cli("get", "laser", "wavelength")
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == pytest.approx(805, abs=1)


def test_a_certificate_that_is_missing_or_not_one_is_named(tls_daemon, tmp_path: Path) -> None:
    daemon, cert = tls_daemon
    missing = tmp_path / "nowhere.crt"
    key = cert.with_name("server.key")
    text = tmp_path / "notes.txt"
    text.write_text("not a certificate\n")
    for path, reason in ((missing, "does not exist"), (key, "is a private key"), (text, "is not a PEM certificate")):
        result = arrowdaq_cli("status", "--address", daemon.address, "--token", TOKEN, "--tls-cert", str(path))
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0] and reason in lines[0], result.stderr
        with pytest.raises(ConfigError, match=reason):
            arrowdaq.connect(daemon.address, token=TOKEN, tls_cert=path)
    result = arrowdaq_cli(
        "gui", daemon.address, "--token", TOKEN, "--tls-cert", str(missing), env={"QT_QPA_PLATFORM": "offscreen"}
    )
    assert result.returncode != 0 and str(missing) in result.stderr and "does not exist" in result.stderr


def test_the_window_on_another_computer_reaches_the_tls_daemon_with_its_certificate(
    tls_daemon, tmp_path: Path, monkeypatch, qtbot
) -> None:
    """``arrowdaq gui ADDRESS --tls-cert PEM`` as the how-to gives it: connected, live values with units."""
    from arrowdaq.gui.app import live_connector
    from arrowdaq.gui.link import Link

    from .gui_support import connected_window

    daemon, cert = tls_daemon
    monkeypatch.setenv("ARROWDAQ_LIVE_FILE", str(tmp_path / "elsewhere.json"))  # no address file to help
    link = Link(live_connector(daemon.address, TOKEN, str(cert)), daemon.address)
    win = connected_window(qtbot, link, tmp_path / "gui.ini")
    try:
        qtbot.waitUntil(lambda: "pm1" in win.instruments.cards, timeout=30_000)
        power = win.instruments.cards["pm1"].value_labels["pm1/power"]
        qtbot.waitUntil(lambda: power.text().endswith(" W"), timeout=30_000)
        assert win.link.state == "connected"
    finally:
        win.shutdown()
