"""The certificate a client trusts for a ``grpc+tls://`` daemon (a self-signed server's ``tls_cert``).

Shared by the Python client, the command line and the window, so that a wrong
path or a file that is not a certificate fails with the file's name instead of
gRPC's "handshake failed" at the first call.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import errors

#: Names the certificate for the command line and the window (as ARROWDAQ_ADDRESS/ARROWDAQ_TOKEN name the rest).
CERT_ENV = "ARROWDAQ_TLS_CERT"

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


def read_certificate(path: str | os.PathLike[str]) -> bytes:
    """The PEM certificate(s) in ``path``; ConfigError naming the file if it is missing or holds none."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise errors.ConfigError(
            f"tls_cert: {path} does not exist (give the daemon's certificate, e.g. server.crt)"
        ) from None
    except OSError as exc:
        raise errors.ConfigError(f"tls_cert: cannot read {path}: {exc.strerror}") from None
    if _PEM_CERTIFICATE not in data and b"PRIVATE KEY-----" in data:
        raise errors.ConfigError(
            f"tls_cert: {path} is a private key, not a certificate; give the daemon's certificate (server.crt)"
        )
    if _PEM_CERTIFICATE not in data:
        raise errors.ConfigError(
            f"tls_cert: {path} is not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line); "
            "give the daemon's certificate (server.crt)"
        )
    return data
