"""Clients that misbehave (stall, vanish, fall behind) and the CLI on the live service: real processes, real Flight."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight
import pytest

import arrowdaq
from arrowdaq.app.runner import ExitStatus
from arrowdaq.cli.live_cmd import Watched
from arrowdaq.cli.main import main
from arrowdaq.data import image_batch, image_schema, scalar_batch, scalar_schema, vector_batch, vector_schema
from arrowdaq.errors import ArrowDAQError, DaemonUnavailable, GapError, LiveServiceError, StreamError
from arrowdaq.hub import InstrumentManager
from arrowdaq.live import discovery
from arrowdaq.live.server import LiveService, ServiceSettings

from .configs import instrument
from .live_helpers import Daemon, DaemonProcess
from .waiting import wait_until

CAMERA = instrument("cam1", "sim_camera", port=None, poll_hz=20.0, settings={"shape": [256, 256], "fps": 20.0})

#: A client that prints "seq dropped" for every batch of the streams it follows.
FOLLOWER = textwrap.dedent(
    """
    import sys, threading
    import arrowdaq
    daq = arrowdaq.connect(name="follower")
    subs = [daq.subscribe(s) for s in sys.argv[1:]]
    lock = threading.Lock()
    def follow(sub):
        for batch in sub:
            with lock:
                print(sub.stream, sub.seq, sub.dropped, flush=True)
    threads = [threading.Thread(target=follow, args=(s,)) for s in subs]
    print("ready", flush=True)  # subscribed: what arrives meanwhile waits in the subscriptions
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("ended", flush=True)
    """
)


def start_follower(*streams: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, *streams], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def read_until(proc: subprocess.Popen[str], wanted) -> list[str]:  # type: ignore[no-untyped-def]
    """Lines of the follower until one satisfies ``wanted`` (the pytest timeout bounds the wait)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.split())
        if wanted(lines[-1]):
            return lines
    raise AssertionError(f"the follower ended without the line wanted; last lines {lines[-3:]}")


def rows(daemon: Daemon, stream: str) -> int:
    async def count() -> int:
        return daemon.app.hub.status()["streams"][stream]["rows"]

    return daemon.call(count)


def test_a_client_stalled_for_10_s_costs_only_its_own_batches(tmp_path):
    daemon = Daemon(tmp_path, extra=CAMERA).start()
    client = start_follower("cam1/frames", "pm1/power")
    try:
        read_until(client, lambda line: line[0] == "cam1/frames")
        os.kill(client.pid, signal.SIGSTOP)
        start = rows(daemon, "pm1/power")
        time.sleep(10.0)  # the thing tested: a client stalled for 10 s
        during = rows(daemon, "pm1/power") - start
        os.kill(client.pid, signal.SIGCONT)
        gap = read_until(client, lambda line: line[0] == "cam1/frames" and int(line[2]) > 0)
    finally:
        if client.poll() is None:
            os.kill(client.pid, signal.SIGCONT)
            client.kill()
        client.wait()
        summary = daemon.stop()
    frames = [line for line in gap if line[0] == "cam1/frames"]
    seq_before, (seq_after, dropped) = int(frames[-2][1]), (int(frames[-1][1]), int(frames[-1][2]))
    assert dropped > 0 and seq_after - seq_before == dropped + 1  # a counted gap, seen on resume
    # acquisition went on while the client stalled (a rate compared across windows is the machine's load, not
    # the daemon's: nothing waited for the client, as the counted gap above and the complete file below show)
    assert during > 0
    run = arrowdaq.open_run(summary.run_file)
    for stream in ("cam1/frames", "pm1/power"):  # storage has every row the hub published
        assert run.table(stream).num_rows == summary.streams[stream].rows
    assert not any(name.startswith("storage") for name in summary.drops)


def test_kill_9_of_a_client_and_shutdown_with_clients_attached(tmp_path):
    daemon = Daemon(tmp_path, extra=CAMERA).start()
    killed = start_follower("cam1/frames", "pm1/power", "_events")
    attached = [start_follower("cam1/frames", "pm1/power") for _ in range(2)]
    stalled = start_follower("cam1/frames")
    try:
        read_until(killed, lambda line: line[0] == "cam1/frames")
        killed.kill()  # SIGKILL mid-stream
        killed.wait()
        for proc in attached:
            read_until(proc, lambda line: line[0] == "cam1/frames")
        read_until(stalled, lambda line: line[0] == "cam1/frames")
        os.kill(stalled.pid, signal.SIGSTOP)  # it stops reading: its stream blocks in a write
        service = daemon.app.live
        assert service is not None
        daemon.stop()
        report = service.shutdown_report
        # the stalled client's connection was severed after the grace period; everyone else ended cleanly
        assert report["severed"] >= 1 and report["stopped"] is True
        for proc in attached:
            assert read_until(proc, lambda line: line[0] == "ended")
            assert proc.wait(timeout=30) == 0
    finally:
        for proc in (*attached, stalled):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait()


class ServiceThread:
    """A hub and its live service on an event loop in a thread (no instruments)."""

    def __init__(self, **settings) -> None:  # type: ignore[no-untyped-def]
        self.hub = InstrumentManager()
        self.service = LiveService(self.hub, ServiceSettings(**settings))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start)

    async def _start(self) -> None:
        self.service.start()

    def call(self, fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.service.stop)
        self.call(self.hub.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def service():
    s = ServiceThread(max_streams=3)
    yield s
    s.stop()


def test_a_lossless_client_that_falls_behind_gets_an_explicit_gap(service):
    service.hub.declare("bench/x", scalar_schema("V"), producer="bench")
    batch = scalar_batch(np.zeros(10_000), channel="x", unit="V")
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        sub = daq.subscribe("bench/x", "lossless", max_batches=4)

        async def flood() -> None:
            for _ in range(2_000):  # far faster than one client reads 10,000-row batches
                await service.hub.publish("bench/x", batch)

        service.call(flood)
        seqs = []
        with pytest.raises(GapError, match=r"gap at seq (\d+)") as caught:
            for _ in sub:
                seqs.append(sub.seq)
        assert seqs == list(range(len(seqs)))  # in order, none missing, up to the gap
        assert caught.value.seq >= len(seqs)


def read_messages(reader, rows: int) -> list[tuple[int, dict | None]]:  # type: ignore[no-untyped-def]
    """(rows, app metadata or None) of each non-empty message of a plain Flight stream until ``rows`` rows came."""
    messages: list[tuple[int, dict | None]] = []
    while sum(n for n, _ in messages) < rows:
        chunk = reader.read_chunk()
        if chunk.data.num_rows:
            meta = None if chunk.app_metadata is None else json.loads(chunk.app_metadata.to_pybytes())
            messages.append((chunk.data.num_rows, meta))
    reader.cancel()
    return messages


def seqs_by_the_contract(messages: list[tuple[int, dict | None]]) -> list[int]:
    """Each message's seq as docs/live-service.md says a plain client reads it: a message without metadata
    is the batch after the previous one."""
    seqs: list[int] = []
    for _, meta in messages:
        seqs.append(seqs[-1] + 1 if meta is None else meta["seq"])
    return seqs


def test_small_batches_queued_for_a_client_come_in_one_message(service):
    """The events queued for a new ``_events`` client (``history``) go out as one message that says how many
    published batches it holds; ``"merge": false`` keeps one message per batch. seq stays continuous."""

    async def emit() -> None:
        for i in range(30):
            service.hub.record_event("bench", "note", f"event {i}")

    service.call(emit)
    token = service.service.token
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    with flight.FlightClient(service.service.address) as plain:
        runs = {}
        for merge in (True, False):
            ticket = {"stream": "_events", "mode": "lossless", "history": 30, "merge": merge}
            runs[merge] = read_messages(plain.do_get(flight.Ticket(json.dumps(ticket).encode()), auth), 30)
    merged, single = runs[True], runs[False]
    assert merged[0] == (30, {"seq": 29, "dropped": 0, "batches": 30})
    assert [n for n, _ in single] == [1] * 30 and seqs_by_the_contract(single) == list(range(30))
    assert single[0][1] == {"seq": 0, "dropped": 0}  # the first message of a call has metadata
    assert all(m is None or "batches" not in m for _, m in single)


def test_a_fast_stream_of_small_batches_reaches_a_plain_client_whole_and_counted(service):
    """1-row batches published in a burst (faster than one message each goes out): every row arrives, in
    order; each message's seq follows the last by its dropped + batches (lossless: nothing dropped)."""
    service.hub.declare("fast/x", scalar_schema("V"), producer="fast")
    token = service.service.token
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    with flight.FlightClient(service.service.address) as plain:
        ticket = json.dumps({"stream": "fast/x", "mode": "lossless"}).encode()
        reader = plain.do_get(flight.Ticket(ticket), auth)

        async def burst() -> None:
            for i in range(500):
                service.hub.publish_nowait("fast/x", scalar_batch(np.array([float(i)]), channel="x", unit="V"))

        service.call(burst)
        values: list[float] = []
        seq = -1
        while len(values) < 500:
            chunk = reader.read_chunk()
            if not chunk.data.num_rows:
                continue
            if chunk.app_metadata is None:  # the batch after the last (docs/live-service.md)
                meta = {"seq": seq + 1, "dropped": 0}
            else:
                meta = json.loads(chunk.app_metadata.to_pybytes())
            batches = meta.get("batches", 1)
            assert meta["dropped"] == 0 and meta["seq"] - seq == batches == chunk.data.num_rows
            seq = meta["seq"]
            values += chunk.data.column("value").to_pylist()
        reader.cancel()
    assert values == [float(i) for i in range(500)] and seq == 499


def numbered(k: int, rows: int = 10_000) -> pa.RecordBatch:
    """A large batch (well over 64 KiB: never merged) whose values all say which one it is."""
    return scalar_batch(np.full(rows, float(k)), channel="x", unit="V")


def test_large_batches_that_queue_go_out_as_a_run_whose_seq_a_plain_client_follows(service):
    """Large batches published in a burst queue for the client and go out as runs: the first message of
    a run has the metadata, the others none, each the batch after the last. A plain client that follows
    the contract sees every batch once, in order, numbered right."""
    service.hub.declare("big/x", scalar_schema("V"), producer="big")
    token = service.service.token
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    with flight.FlightClient(service.service.address) as plain:
        reader = plain.do_get(flight.Ticket(json.dumps({"stream": "big/x", "mode": "lossless"}).encode()), auth)

        async def burst() -> None:
            for k in range(60):
                service.hub.publish_nowait("big/x", numbered(k))

        service.call(burst)
        messages: list[tuple[int, dict | None]] = []
        values: list[float] = []
        while len(values) < 60:
            chunk = reader.read_chunk()
            if chunk.data.num_rows:
                meta = None if chunk.app_metadata is None else json.loads(chunk.app_metadata.to_pybytes())
                messages.append((chunk.data.num_rows, meta))
                column = chunk.data.column("value")
                assert pc.min(column).as_py() == pc.max(column).as_py()  # one published batch per message
                values.append(column[0].as_py())
        reader.cancel()
    assert values == [float(k) for k in range(60)]
    assert seqs_by_the_contract(messages) == list(range(60))
    assert messages[0][1] == {"seq": 0, "dropped": 0}
    # nothing dropped, nothing merged: after the first, every message is simply the next batch (0077)
    assert all(meta is None for _, meta in messages[1:])


def test_a_message_carries_metadata_only_when_it_is_not_the_next_batch(service):
    """``latest``, a burst far larger than the buffer: the first message and each one after a drop carry
    metadata (the drop counted), the others none; a plain client that follows the contract numbers every
    batch as its values say."""
    service.hub.declare("big/z", scalar_schema("V"), producer="big")
    token = service.service.token
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    with flight.FlightClient(service.service.address) as plain:
        ticket = {"stream": "big/z", "mode": "latest", "max_batches": 8}
        reader = plain.do_get(flight.Ticket(json.dumps(ticket).encode()), auth)
        wait_until(lambda: service.hub.streams["big/z"].subscribers, message="the client's feed on big/z")

        async def burst() -> None:
            for k in range(200):
                service.hub.publish_nowait("big/z", numbered(k))

        service.call(burst)
        messages: list[tuple[int, dict | None]] = []
        values: list[float] = []
        while not values or values[-1] < 199:
            chunk = reader.read_chunk()
            if chunk.data.num_rows:
                messages.append(
                    (1, None if chunk.app_metadata is None else json.loads(chunk.app_metadata.to_pybytes()))
                )
                values.append(chunk.data.column("value")[0].as_py())
        reader.cancel()
    assert [float(s) for s in seqs_by_the_contract(messages)] == values
    metas = [meta for _, meta in messages]
    assert metas[0] is not None and any(meta is None for meta in metas)
    assert all(meta["dropped"] > 0 for meta in metas[1:] if meta is not None)
    dropped = sum(meta["dropped"] for meta in metas if meta is not None)
    assert dropped > 0 and len(values) + dropped == 200  # every batch published: sent or counted


def test_the_python_client_numbers_the_batches_of_runs_and_counts_the_drops(service):
    """``latest``: a burst far larger than the buffer; runs and drops together. Every batch the client
    gets is the one its ``seq`` says, and received + dropped accounts for every published batch."""
    service.hub.declare("big/y", scalar_schema("V"), producer="big")
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        sub = daq.subscribe("big/y", "latest", max_batches=8)

        async def burst() -> None:
            for k in range(200):
                service.hub.publish_nowait("big/y", numbered(k))

        service.call(burst)
        for batch in sub:
            assert batch.column("value")[0].as_py() == float(sub.seq)
            if sub.seq == 199:
                break
        assert sub.batches + sub.dropped == 200 and sub.dropped > 0
        sub.close()


class SilentServer(flight.FlightServerBase):
    """A Flight server that sends one batch and then nothing, not even a heartbeat (a daemon that hangs)."""

    def __init__(self) -> None:
        super().__init__("grpc://127.0.0.1:0")
        self.release = threading.Event()

    def do_get(self, context, ticket):  # type: ignore[no-untyped-def]
        batch = pa.record_batch({"value": [1.0]})

        def batches():  # type: ignore[no-untyped-def]
            yield batch, pa.py_buffer(b'{"seq": 0, "dropped": 0}')
            self.release.wait()  # silence until the test ends

        return flight.GeneratorStream(batch.schema, batches())


def test_a_daemon_that_goes_silent_is_reported_not_waited_on_forever():
    server = SilentServer()
    try:
        with arrowdaq.connect(f"grpc://127.0.0.1:{server.port}", token="t" * 20) as daq:
            sub = daq.subscribe("pm1/power")
            assert next(sub).column("value").to_pylist() == [1.0] and sub.seq == 0
            with pytest.raises(DaemonUnavailable, match=r"'pm1/power': no data nor heartbeat for 5 s"):
                next(sub)  # the read waits; the watchdog cancels it after 5 s of silence
            with pytest.raises(StopIteration):
                next(sub)
    finally:
        server.release.set()
        server.shutdown()


def test_close_from_another_thread_ends_a_waiting_iteration(service):
    service.hub.declare("quiet/y", scalar_schema("V"), producer="quiet")
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        sub = daq.subscribe("quiet/y")
        ended = threading.Event()

        def iterate() -> None:
            for _ in sub:
                pass
            ended.set()  # StopIteration, not an error

        reader = threading.Thread(target=iterate)
        reader.start()
        while sub.waiting_since is None:  # the iteration is inside its read
            threading.Event().wait(0.01)
        sub.close()
        reader.join(10)
        assert ended.is_set()


def test_heartbeats_on_a_quiet_stream_and_the_cap_on_streams(service):
    service.hub.declare("quiet/x", scalar_schema("V"), producer="quiet")
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        with daq.subscribe("quiet/x", heartbeats=True) as sub:
            beat = next(sub)  # nothing is published: the daemon still says it is there
            assert beat.num_rows == 0 and sub.heartbeats_seen == 1
            others = [daq.subscribe("quiet/x") for _ in range(2)]
            with pytest.raises(LiveServiceError, match=r"too many live streams \(3, server.max_streams\)"):
                daq.subscribe("quiet/x")
            for other in others:
                other.close()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", *args], capture_output=True, text=True, timeout=120
    )


def test_the_cli_controls_a_running_daemon(tmp_path):
    daemon = Daemon(tmp_path).start()
    try:
        done = run_cli("do", "laser", "set_wavelength", "nm=780")
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
        done = run_cli("get", "laser", "wavelength")
        assert done.returncode == 0 and float(done.stdout) == pytest.approx(780, abs=1)
        done = run_cli("set", "laser", "wavelength", "790")
        assert done.returncode == 0 and done.stdout.strip() == "laser.wavelength = 790.0", done.stderr
        done = run_cli("do", "laser", "fly")
        assert done.returncode == 1 and "arrowdaq do: error: laser: unknown command 'fly'" in done.stderr
        done = run_cli("do", "laser", "set_wavelength", "wavelenght=800")  # the typo is named, and the right key
        assert done.returncode == 1 and done.stderr.strip().splitlines() == [
            "arrowdaq do: error: laser: set_wavelength: unknown argument 'wavelenght' (set_wavelength takes nm)"
        ]
        done = run_cli("do", "hwp", "move_to", "target=10", "speed=3")
        assert done.returncode == 1 and (
            "hwp: move_to: unknown argument 'speed' (move_to takes target, wait=True, axis=None)" in done.stderr
        )
        done = run_cli("status")
        assert done.returncode == 0 and "pm1/power" in done.stdout and "recording: on" in done.stdout
        done = run_cli("watch", "pm1/power", "laser/*", "--duration", "2")
        assert done.returncode == 0, done.stderr
        assert any(line.startswith("pm1/power ") and " W rows=" in line for line in done.stdout.splitlines())
        assert any(line.startswith("laser/wavelength ") and " nm rows=" in line for line in done.stdout.splitlines())
        done = run_cli("watch", "pm9/power", "--duration", "1")
        assert done.returncode == 1 and "unknown stream 'pm9/power'" in done.stderr
        first = daemon.app.run_file
        done = run_cli("record", "stop")
        assert done.returncode == 0 and done.stdout.startswith("not recording"), done.stderr
        done = run_cli("record", "start", "--name", "second", "--sample", "mirror")
        assert done.returncode == 0 and done.stdout.startswith("recording: ") and "second" in done.stdout
        second = daemon.app.run_file
        done = run_cli("record", "stop")
        assert done.returncode == 0 and done.stdout.startswith("not recording"), done.stderr
        with arrowdaq.connect(daemon.address, daemon.token) as daq, daq.subscribe("pm1/power") as sub:
            next(sub)  # published after the stop: in no file
    finally:
        summary = daemon.stop()
    assert second != first
    # the summary counts what was published while the last file recorded: nothing is called lost
    assert summary.run_file == second and summary.stored is not None
    assert summary.exit_status is ExitStatus.OK and summary.not_stored == {}, summary.not_stored
    assert summary.published_while_recording is not None
    in_second = summary.published_while_recording["pm1/power"]
    assert 0 < in_second == summary.stored["pm1/power"] < summary.streams["pm1/power"].rows
    events = arrowdaq.open_run(first).events.to_pylist()
    commands = [json.loads(e["details"]) for e in events if e["kind"] == "command"]
    assert [(c["command"], c["client"].split(" (")[0]) for c in commands][:2] == [
        ("set_wavelength", "arrowdaq do"),
        ("set", "arrowdaq set"),
    ]
    run = arrowdaq.open_run(second)
    sample = run.metadata["sample"]
    assert (sample.get("name") if isinstance(sample, dict) else sample) == "mirror"
    assert run.table("pm1/power").num_rows > 0


def test_a_missing_daemon_is_one_clear_line(tmp_path):
    done = run_cli("status")
    assert done.returncode == 1 and "no local arrowdaq daemon" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(ArrowDAQError, match="no local arrowdaq daemon"):
        arrowdaq.connect()


def test_a_plain_client_counts_from_a_heartbeat_and_a_snapshot_says_its_seq(service):
    """docs/live-service.md: a heartbeat before the call's first batch has the stream's last seq, so the
    first batch follows it by ``dropped + batches`` as any other; a snapshot carries its batch's seq; an
    unknown stream is a StreamError (the hub's own type) for a plain client and the Python client alike."""
    service.hub.declare("quiet/y", scalar_schema("V"), producer="quiet")

    async def publish(*values: float) -> None:
        for v in values:
            await service.hub.publish("quiet/y", scalar_batch(np.array([v]), channel="y", unit="V"))

    service.call(lambda: publish(0.0, 1.0, 2.0))
    auth = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + service.service.token.encode())])
    with flight.FlightClient(service.service.address) as plain:
        snapshot = plain.do_get(flight.Ticket(b'{"stream": "quiet/y", "mode": "snapshot"}'), auth).read_chunk()
        assert json.loads(snapshot.app_metadata.to_pybytes()) == {"seq": 2, "dropped": 0}
        assert snapshot.data.column("value").to_pylist() == [2.0]
        reader = plain.do_get(flight.Ticket(b'{"stream": "quiet/y", "mode": "lossless"}'), auth)
        beat = reader.read_chunk()  # nothing published since: a heartbeat within a second
        assert beat.data.num_rows == 0
        assert json.loads(beat.app_metadata.to_pybytes()) == {"seq": 2, "dropped": 0, "heartbeat": True}
        service.call(lambda: publish(3.0))
        chunk = reader.read_chunk()
        assert json.loads(chunk.app_metadata.to_pybytes()) == {"seq": 3, "dropped": 0}  # 2 + 0 dropped + 1 batch
        assert chunk.data.column("value").to_pylist() == [3.0]
        reader.cancel()
        with pytest.raises(flight.FlightServerError, match=r"^arrowdaq: unknown stream 'quiet/z' \(streams: ") as e:
            plain.do_get(flight.Ticket(b'{"stream": "quiet/z"}'), auth).read_chunk()
        assert json.loads(e.value.extra_info) == {"error": "StreamError"}
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        with pytest.raises(StreamError, match=r"^unknown stream 'quiet/z'"):
            daq.latest("quiet/z")


def test_watch_shows_the_unit_of_traces_and_frames(service):
    """``arrowdaq watch`` puts a stream's unit beside its value: a trace's ``values`` and a camera's
    ``pixels`` carry it, as a scalar's ``value`` does."""
    service.hub.declare("scope/trace", vector_schema("V", "s"), producer="scope")
    service.hub.declare("cam/frames", image_schema((2, 3)), producer="cam")
    with arrowdaq.connect(service.service.address, service.service.token) as daq:
        streams = daq.streams()
    assert (streams["scope/trace"].unit, streams["cam/frames"].unit) == ("V", "counts")
    trace, frame = Watched("scope/trace", "V"), Watched("cam/frames", "counts")
    trace.take(vector_batch(np.array([[0.5, 2.0, 1.0]]), channel="t", unit="V", x0=0.0, dx=1e-3, x_unit="s"), 0)
    frame.take(image_batch(np.arange(6, dtype=np.uint16).reshape(2, 3), channel="c", frame_numbers=7), 0)
    assert (trace.value, frame.value) == ("3 points, max 2", "frame 7, max 5")


def test_a_stale_address_file_a_silent_address_and_a_bad_argument_are_one_clear_line(tmp_path, capsys):
    """A daemon killed with -9 leaves its address file: the CLI says so (and which pid), not gRPC's
    words; an address where nothing listens says no daemon answers; ``do`` with a bare value is a
    usage error naming it. Each is one line and a non-zero exit status."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid names no process now
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"grpc://127.0.0.1:{port}"
    discovery.write_address_file({"address": address, "token": "t" * 32, "pid": gone.pid, "version": "0"})
    done = run_cli("status")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"arrowdaq status: error: no local arrowdaq daemon: {discovery.address_file()} ")
    assert f"names pid {gone.pid}, which is not running" in done.stderr
    with pytest.raises(DaemonUnavailable, match=f"names pid {gone.pid}"):
        arrowdaq.connect()
    done = run_cli("get", "laser", "wavelength", "--address", address, "--token", "t" * 32)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert (
        done.stderr.startswith("arrowdaq get: error: no daemon answers (failed to connect") and str(port) in done.stderr
    )
    assert done.stderr.rstrip().endswith("is it running?")
    with pytest.raises(SystemExit) as exited:
        main(["do", "laser", "set_wavelength", "780"])
    assert exited.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "arrowdaq do: error: argument KEY=VALUE: expected KEY=VALUE (e.g. nm=780), got '780'"


def test_a_daemon_killed_mid_stream_is_one_clear_line_for_its_clients(tmp_path):
    """kill -9 of the daemon: a subscription ends with DaemonUnavailable in arrowdaq's words (without
    pyarrow's gRPC debug context), and the address file it left names its pid as not running."""
    daemon = DaemonProcess(tmp_path)
    try:
        with daemon.client() as daq:
            sub = daq.subscribe("pm1/power")
            next(sub)
            daemon.process.kill()
            daemon.process.wait(30)
            with pytest.raises(DaemonUnavailable) as caught:
                for _ in sub:
                    pass
    finally:
        daemon.stop()
    message = str(caught.value)
    assert message.startswith("no daemon answers (") and message.endswith("; is it running?"), message
    assert "debug context" not in message and "\n" not in message
    done = subprocess.run(
        [sys.executable, "-m", "arrowdaq.cli.main", "status"], env=daemon.env, capture_output=True, text=True
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert f"names pid {daemon.process.pid}, which is not running" in done.stderr
