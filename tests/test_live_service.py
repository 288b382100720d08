"""The live service end to end: a real Flight server in the daemon, real clients on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow.flight as flight
import pytest

import arrowdaq
from arrowdaq.errors import AuthenticationError, CommandError, ConfigError
from arrowdaq.live import discovery

from .live_helpers import Daemon


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path).start()
    yield d
    d.stop()


PLAIN_CLIENT = textwrap.dedent(
    """
    import json, sys
    import pyarrow.flight as flight

    address, token = sys.argv[1], sys.argv[2]
    client = flight.FlightClient(address)
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    out = {"modules": sorted(m for m in sys.modules if m.startswith("arrowdaq"))}
    infos = {"/".join(p.decode() for p in i.descriptor.path): i for i in client.list_flights(b"", auth)}
    out["streams"] = sorted(infos)
    out["meta"] = json.loads(infos["pm1/power"].app_metadata)
    reader = client.do_get(flight.Ticket(json.dumps({"stream": "pm1/power", "mode": "latest"}).encode()), auth)
    out["unit"] = reader.schema.field("value").metadata[b"unit"].decode()
    rows, seqs, seq = 0, [], -1
    while rows < 10:
        chunk = reader.read_chunk()
        if chunk.app_metadata is None:  # the batch after the last one
            seq += 1
        else:
            seq = json.loads(chunk.app_metadata.to_pybytes())["seq"]
        if chunk.data.num_rows:
            rows += chunk.data.num_rows
            seqs.append(seq)
            out["last_value"] = chunk.data.column("value")[-1].as_py()
    reader.cancel()
    out["rows"], out["seqs"] = rows, seqs
    # lossless, decoded as the document says: no metadata = the batch after the last; seq jumps by
    # dropped + batches; a heartbeat (0 rows) repeats the last seq
    reader = client.do_get(flight.Ticket(json.dumps({"stream": "pm1/power", "mode": "lossless"}).encode()), auth)
    seq, out["jumps"], rows = None, [], 0
    while rows < 10:
        chunk = reader.read_chunk()
        if chunk.app_metadata is None:
            seq, jump = seq + 1, 1
        else:
            meta = json.loads(chunk.app_metadata.to_pybytes())
            dropped, batches = meta["dropped"], meta.get("batches", 1)
            if seq is not None and not meta.get("heartbeat"):
                out["jumps"].append((meta["seq"] - seq, dropped + batches))
            seq = meta["seq"]
        rows += chunk.data.num_rows
    reader.cancel()

    def act(kind, body):
        reply = client.do_action(flight.Action(kind, json.dumps(body).encode()), auth)
        return json.loads(next(iter(reply)).body.to_pybytes())

    out["actions"] = sorted(a.type for a in client.list_actions(auth))
    out["ping"] = act("ping", {})
    laser = act("describe", {})["instruments"]["laser"]
    out["controls"] = {c["name"]: [c["unit"], c.get("limits")] for c in laser["controls"]}
    out["status"] = sorted(act("status", {}))
    out["command"] = act("command", {"instrument": "laser", "command": "set_wavelength", "args": {"nm": 780}})
    out["get"] = act("get", {"instrument": "laser", "name": "wavelength"})
    out["set"] = act("set", {"instrument": "laser", "name": "wavelength", "value": 790})
    out["record"] = act("record", {"action": "state"})
    try:
        act("command", {"instrument": "laser", "command": "bogus"})
    except flight.FlightServerError as exc:
        out["refused"] = [str(exc).split(". Detail:")[0], json.loads(exc.extra_info)]
    for name, options in (("missing", flight.FlightCallOptions()),
                          ("wrong", flight.FlightCallOptions(headers=[(b"authorization", b"Bearer nope")]))):
        try:
            list(client.list_flights(b"", options))
            out[name] = "accepted"
        except flight.FlightUnauthenticatedError as exc:
            out[name] = str(exc)
    try:  # pyarrow's own token call (a Flight handshake with 'Basic'): the daemon wants the header instead
        client.authenticate_basic_token("arrowdaq", token)
        out["basic"] = "accepted"
    except flight.FlightUnauthenticatedError as exc:
        out["basic"] = str(exc)
    print(json.dumps(out))
    """
)


def test_a_plain_pyarrow_flight_client_needs_nothing_else(daemon, tmp_path):
    script = tmp_path / "plain_client.py"
    script.write_text(PLAIN_CLIENT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), daemon.address, daemon.token], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["modules"] == []  # no arrowdaq import
    assert {"pm1/power", "laser/wavelength", "hwp/position", "_events"} <= set(out["streams"])
    assert out["meta"]["producer"] == "pm1" and out["meta"]["kind"] == "scalar"
    assert out["unit"] == "W"
    assert out["rows"] >= 10 and out["seqs"] == sorted(out["seqs"])
    assert "no token" in out["missing"] and "authorization: Bearer" in out["missing"]
    assert "wrong token" in out["wrong"]
    assert "the header must be 'authorization: Bearer <token>', got a 'Basic' one" in out["basic"]
    assert out["jumps"] and all(jump == expected for jump, expected in out["jumps"])
    assert out["actions"] == ["command", "describe", "get", "ping", "record", "scan", "set", "status"]
    assert out["ping"]["pong"] is True
    assert out["controls"]["wavelength"] == ["nm", [690, 1040]]
    assert {"actors", "streams", "subscribers", "live", "recording", "time_ns"} <= set(out["status"])
    assert out["command"] == {"result": None}
    assert out["get"]["value"] == pytest.approx(780, abs=1) and out["set"]["value"] == pytest.approx(790, abs=1)
    assert out["record"]["recording"] is True and out["record"]["file"].endswith(".h5")
    message, info = out["refused"]
    assert message.startswith("laser: unknown command 'bogus' (commands: ") and info == {"error": "CommandError"}


def test_python_client_finds_the_daemon_and_controls_it(daemon):
    info = discovery.read_address_file()
    assert info is not None and info["address"] == daemon.address
    assert discovery.address_file().stat().st_mode & 0o777 == 0o600
    with arrowdaq.connect(name="test") as daq:
        assert daq.ping()["pong"] is True
        streams = daq.streams()
        assert streams["pm1/power"].unit == "W" and streams["pm1/power"].producer == "pm1"
        described = daq.describe()
        laser = described["instruments"]["laser"]
        commands = {c["name"]: c for c in laser["commands"]}
        assert commands["set_wavelength"]["params"][0]["name"] == "nm"
        controls = {c["name"]: c for c in laser["controls"]}
        assert controls["wavelength"]["unit"] == "nm" and controls["wavelength"]["limits"] == [690, 1040]
        assert "power" in laser["streams"] and laser["status"] == "Running"
        with pytest.raises(CommandError, match=r"laser: unknown command 'fly' \(commands: close_shutter"):
            daq.command("laser", "fly")
        with pytest.raises(
            CommandError, match=r"set_wavelength: missing a required argument: 'nm' \(set_wavelength takes nm\)"
        ):
            daq.command("laser", "set_wavelength")
        with pytest.raises(CommandError) as typo:  # a misspelt key is named, not only the key it left missing
            daq.command("laser", "set_wavelength", wavelenght=800)
        assert str(typo.value) == "laser: set_wavelength: unknown argument 'wavelenght' (set_wavelength takes nm)"
        with pytest.raises(CommandError, match=r"no instrument named 'laserx'"):
            daq.command("laserx", "open_shutter")
        with pytest.raises(CommandError, match=r"laser\.wavelength: 2000 is outside 690\.\.1040"):
            daq.set("laser", "wavelength", 2000)  # refused by the declaration's validator before it queues
        daq.command("laser", "set_wavelength", nm=780)
        assert daq.command("laser", "get_wavelength") == pytest.approx(780, abs=1)
        frame = daq.latest("pm1/power")
        assert frame.columns == ["timestamp_ns", "channel", "value", "unit"] and frame["unit"][0] == "W"
        sub = daq.subscribe("pm1/power")
        batches = [next(sub) for _ in range(3)]
        sub.close()
        assert all(b.num_rows > 0 for b in batches) and sub.seq >= 2
        status = daq.status()
        assert status["streams"]["pm1/power"]["rows"] > 0 and status["recording"]["recording"] is True


def test_a_wrong_token_is_refused_with_a_clear_message(daemon):
    with arrowdaq.connect(daemon.address, token="x" * 20) as daq:
        with pytest.raises(AuthenticationError, match="wrong token"):
            daq.status()


def test_non_loopback_bind_without_tls_is_refused(tmp_path):
    from arrowdaq.hub import InstrumentManager
    from arrowdaq.live.server import LiveService, ServiceSettings

    service = LiveService(InstrumentManager(), ServiceSettings(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="not a loopback address .*allow_insecure_remote = true"):
        service.start()
    with pytest.raises(ConfigError, match="not a loopback address"):
        Daemon(tmp_path, extra='[server]\nhost = "192.0.2.1"\n')


SECOND_PROCESS = textwrap.dedent(
    """
    import json, time
    import arrowdaq

    daq = arrowdaq.connect(name="second-process")

    def power_after(t_ns):
        # a reading is stamped mid-query: the one query under way when the move ended may be stamped after
        # t_ns with the power from before; the second reading stamped after t_ns was measured after the move
        after = []
        with daq.subscribe("pm1/power") as sub:
            for batch in sub:
                stamps = batch.column("timestamp_ns").to_pylist()
                after += [v for t, v in zip(stamps, batch.column("value").to_pylist()) if t > t_ns]
                if len(after) >= 2:
                    return after[-1]

    daq.command("laser", "emission_on")
    daq.command("laser", "set_wavelength", nm=780)
    daq.command("laser", "open_shutter")
    daq.command("hwp", "move_to", target=0.0)
    bright = power_after(time.time_ns())
    daq.command("hwp", "move_to", target=45.0)
    dark = power_after(time.time_ns())
    print(json.dumps({"bright": bright, "dark": dark, "wavelength": daq.command("laser", "get_wavelength")}))
    """
)


def test_a_second_process_drives_the_table_and_the_command_log_records_it(tmp_path):
    import arrowdaq as adq

    daemon = Daemon(tmp_path).start()
    try:
        script = tmp_path / "second.py"
        script.write_text(SECOND_PROCESS, encoding="utf-8")
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
    finally:
        summary = daemon.stop()
    assert out["wavelength"] == pytest.approx(780, abs=1)
    assert out["bright"] > 20 * out["dark"]  # the half-wave plate at 45° turns the polarisation away (Malus)
    events = adq.open_run(summary.run_file).events.to_pylist()
    commands = [e for e in events if e["kind"] == "command"]
    logged = [(e["source"], json.loads(e["details"])) for e in commands]
    wanted = [("laser", "emission_on"), ("laser", "set_wavelength"), ("laser", "open_shutter"), ("hwp", "move_to")]
    assert [(source, d["command"]) for source, d in logged][:5] == [*wanted, ("hwp", "move_to")]
    for _source, details in logged:
        assert details["client"].startswith("second-process") and details["error"] is None
    assert logged[1][1]["args"] == {"nm": 780}
    assert logged[1][1]["settings"]["wavelength"] == pytest.approx(780, abs=1)
    assert logged[1][1]["settings"]["shutter"] == "closed" and logged[2][1]["settings"]["shutter"] == "open"
    assert logged[4][1]["args"] == {"target": 45.0} and logged[4][1]["result"] == pytest.approx(45, abs=0.1)
    times = [e["timestamp_ns"] for e in commands]
    assert times == sorted(times)


def test_scan_points_follows_each_scans_columns_for_a_plain_client(daemon):
    """Each scan declares ``scan/points`` again with its own columns: a plain pyarrow.flight client gets the
    new schema (catalogue, get_schema, snapshot, a new stream); a stream opened before the new scan ends
    with an error saying why, instead of carrying batches its schema cannot hold."""
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + daemon.token.encode())])
    plain = flight.FlightClient(daemon.address)
    points = flight.FlightDescriptor.for_path("scan/points")

    def ticket(mode: str) -> flight.Ticket:
        return flight.Ticket(json.dumps({"stream": "scan/points", "mode": mode}).encode())

    with plain, arrowdaq.connect(daemon.address, token=daemon.token) as daq:
        daq.scan("scan", "hwp", 0, 10, 2, detectors=["pm1"], settle=0)
        assert "pm1" in plain.get_schema(points, auth).schema.names
        opened_before = plain.do_get(ticket("latest"), auth)
        assert "laser_power" not in opened_before.schema.names

        daq.scan("scan", "hwp", 0, 10, 3, detectors=["pm1", "laser/power"], settle=0)
        assert {"pm1", "laser_power", "laser_power_std"} <= set(plain.get_schema(points, auth).schema.names)
        catalogue = {"/".join(p.decode() for p in i.descriptor.path): i for i in plain.list_flights(b"", auth)}
        assert "laser_power" in catalogue["scan/points"].schema.names
        last = plain.do_get(ticket("snapshot"), auth).read_all()
        assert last.num_rows == 1 and last.column("index").to_pylist() == [2]
        assert last.schema.field("laser_power").metadata[b"unit"] == b"W"
        opened_after = plain.do_get(ticket("latest"), auth)
        assert "laser_power" in opened_after.schema.names
        opened_after.cancel()

        with pytest.raises(flight.FlightError, match=r"'scan/points' was declared again with another schema"):
            for _ in range(100):  # heartbeats (empty batches) until the first point of the new scan ends it
                opened_before.read_chunk()
