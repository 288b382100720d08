"""The live service on a Unix socket (``[server] socket``): grpc+unix://, found through the address file."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap

import pytest

import arrowdaq
from arrowdaq.errors import ConfigError
from arrowdaq.live import discovery

from .live_helpers import Daemon

PLAIN_UNIX_CLIENT = textwrap.dedent(
    """
    import json, sys
    import pyarrow.flight as flight

    info = json.load(open(sys.argv[1]))
    client = flight.FlightClient(info["address"])
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + info["token"].encode())])
    out = {"modules": sorted(m for m in sys.modules if m.startswith("arrowdaq"))}
    out["streams"] = sorted("/".join(p.decode() for p in i.descriptor.path) for i in client.list_flights(b"", auth))
    out["ping"] = json.loads(next(iter(client.do_action(flight.Action("ping", b"{}"), auth))).body.to_pybytes())
    reader = client.do_get(flight.Ticket(json.dumps({"stream": "pm1/power", "mode": "latest"}).encode()), auth)
    rows = 0
    while rows < 3:
        rows += reader.read_chunk().data.num_rows
    reader.cancel()
    out["rows"] = rows
    print(json.dumps(out))
    """
)


def test_the_service_on_a_unix_socket_serves_a_plain_pyarrow_flight_client(tmp_path):
    path = tmp_path / "run" / "live.sock"
    daemon = Daemon(tmp_path, extra=f'[server]\nsocket = "{path}"\n').start()
    try:
        assert daemon.address == f"grpc+unix://{path}"
        info = discovery.read_address_file()
        assert info is not None and info["address"] == daemon.address  # the address file records it
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # only this user may connect
        script = tmp_path / "plain_unix_client.py"
        script.write_text(PLAIN_UNIX_CLIENT, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(script), str(discovery.address_file())], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["modules"] == [] and out["ping"]["pong"] is True and out["rows"] >= 3
        assert {"pm1/power", "hwp/position", "_events"} <= set(out["streams"])
        with arrowdaq.connect() as daq:  # found through the address file, like a TCP daemon
            assert daq.address.startswith("grpc+unix://") and "pm1/power" in daq.status()["streams"]
        with pytest.raises(ConfigError, match=r"server.socket: .*live.sock is in use \(another arrowdaq daemon\?\)"):
            Daemon(tmp_path / "second", extra=f'[server]\nsocket = "{path}"\n').start()
    finally:
        daemon.stop()
    assert not path.exists()  # removed when the daemon stops


def test_a_socket_left_by_a_dead_daemon_is_replaced_and_a_plain_file_is_refused(tmp_path):
    import socket

    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening, closed: what a killed daemon leaves
    daemon = Daemon(tmp_path, extra=f'[server]\nsocket = "{stale}"\n').start()
    try:
        with arrowdaq.connect() as daq:
            assert daq.ping()["pong"] is True
    finally:
        daemon.stop()
    plain = tmp_path / "notes.txt"
    plain.write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"server.socket: .*notes.txt exists and is not a socket"):
        Daemon(tmp_path / "other", extra=f'[server]\nsocket = "{plain}"\n').start()
    assert plain.read_text(encoding="utf-8") == "mine"
