"""Live service benchmark: latency from ``hub.publish`` to a client process, and throughput beside bare Flight.

    .venv/bin/python benchmarks/live.py            # or: arrowdaq bench live
    .venv/bin/python benchmarks/live.py --quick    # fewer samples
    .venv/bin/python benchmarks/live.py --rounds 5 --only latency --no-demo

The machine is shared: every measurement runs in rounds, each beside its bare
pyarrow.flight baseline, and the summary gives medians with the range.

1. Latency: 1-row batches published at ~1 kHz into the hub of a running demo
   (the simulated optical table, its processors and recording), read by another
   process through ``arrowdaq.connect().subscribe`` and through a plain
   pyarrow.flight loop; each row's timestamp is taken just before
   ``hub.publish``, the client takes its own on arrival (same clock).
   p50/p99/max over >= 10,000 rows. The floor beside it: bare pyarrow.flight
   in the same process, a producer thread handing the same 1-row batches at
   1 kHz to a ``GeneratorStream`` through a queue.
2. Throughput: 10,000-row scalar batches and 8 MiB camera frames, published
   as fast as one client takes them (``latest`` mode, the producer keeping a
   few batches queued), read by a plain pyarrow.flight client in another
   process, in windows alternating with a bare pyarrow.flight server whose
   do_get streams the same prebuilt batches from C++ (``RecordBatchStream``).
   Beside MB/s (noisy on a shared machine): the CPU time per batch of the
   threads serving Flight (steady under load); once, the reading thread's CPU
   per message of a plain pyarrow.flight loop and of arrowdaq's Subscription.
3. Acquisition with clients: the demo's rows/s with no client and with 4
   clients subscribed to every stream, one of them stalled (SIGSTOP), as a
   ratio; at the end, the rows the run file holds of those published.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from arrowdaq.app.config import parse_config
from arrowdaq.app.runner import Application
from arrowdaq.app.thread import ApplicationThread
from arrowdaq.cli.demo_cmd import demo_config_text
from arrowdaq.data import image_batch, scalar_batch, scalar_schema
from arrowdaq.data.schemas import image_schema, plain_schema
from arrowdaq.live import server as live_server
from arrowdaq.live.feeds import ClientFeed
from arrowdaq.live.wire import WireFormat

LATENCY_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import arrowdaq
    n = int(sys.argv[1])
    WARM_UP_S = 2.0  # the first seconds not counted: the first conversions (~0.7 s) and catching up after them
    daq = arrowdaq.connect(name="bench-latency")
    lat, got = [], 0
    with daq.subscribe("bench/tick") as sub:
        print("ready", flush=True)
        start = time.monotonic()
        for batch in sub:  # every row: small batches that queued come in one message
            rows = time.time_ns() - batch.column("timestamp_ns").to_numpy().astype(np.int64)
            if time.monotonic() - start >= WARM_UP_S:
                lat.append(rows)
                got += batch.num_rows
            if got >= n:
                break
        dropped = sub.dropped
    a = np.concatenate(lat) / 1e6
    print(json.dumps({"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                      "max": float(a.max()), "dropped": dropped}), flush=True)
    """
)

PLAIN_LATENCY_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import pyarrow.flight as flight
    address, token, ticket, n = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
    WARM_UP_S = 2.0  # the first seconds not counted: the first conversions (~0.7 s) and catching up after them
    client = flight.FlightClient(address)
    options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
    reader = client.do_get(flight.Ticket(ticket), options)
    print("ready", flush=True)
    lat, got, dropped = [], 0, 0
    start = time.monotonic()
    while got < n:
        chunk = reader.read_chunk()
        if chunk.data.num_rows:
            rows = time.time_ns() - chunk.data.column("timestamp_ns").to_numpy().astype(np.int64)
            if time.monotonic() - start < WARM_UP_S:
                continue
            lat.append(rows)
            got += chunk.data.num_rows
            if chunk.app_metadata is not None:
                dropped += json.loads(chunk.app_metadata.to_pybytes()).get("dropped", 0)
    reader.cancel()
    a = np.concatenate(lat) / 1e6
    print(json.dumps({"n": len(a), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
                      "max": float(a.max()), "dropped": dropped}), flush=True)
    """
)

THROUGHPUT_CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import pyarrow.flight as flight
    n, windows = int(sys.argv[1]), json.loads(sys.argv[2])  # [[address, token, ticket], ...] in turn
    print("ready", flush=True)
    for address, token, ticket in windows:
        input()  # the benchmark says when the server of this window is ready
        client = flight.FlightClient(address)
        options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
        reader = client.do_get(flight.Ticket(ticket.encode()), options)
        got = nbytes = 0
        t0 = None
        while got < n:
            chunk = reader.read_chunk()
            if chunk.data.num_rows == 0:
                continue
            if t0 is None:
                t0 = time.perf_counter()   # from the first batch: connection set-up not counted
            else:
                got += 1
                nbytes += chunk.data.get_total_buffer_size()  # (nbytes costs 16 us a batch)
        dt = time.perf_counter() - t0
        reader.cancel()
        client.close()
        print(json.dumps({"batches_per_s": got / dt, "mb_per_s": nbytes / dt / 1e6}), flush=True)
    """
)

CLIENT_CPU = textwrap.dedent(
    """
    import json, sys, time
    import pyarrow.flight as flight
    import arrowdaq
    address, token, stream, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ticket = flight.Ticket(json.dumps({"stream": stream, "mode": "latest"}).encode())
    print("ready", flush=True)
    daq = arrowdaq.connect(address, token, name="bench-client-cpu")
    cpu = {"plain": [], "arrowdaq": []}
    for _ in range(2):
        client = flight.FlightClient(address)
        options = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + token.encode())])
        reader = client.do_get(ticket, options)
        reader.read_chunk()
        t0 = time.thread_time()
        for _ in range(n):
            reader.read_chunk()
        cpu["plain"].append((time.thread_time() - t0) / n * 1e6)
        reader.cancel()
        client.close()
        with daq.subscribe(stream) as sub:
            next(sub)
            t0 = time.thread_time()
            for _ in range(n):
                next(sub)
            cpu["arrowdaq"].append((time.thread_time() - t0) / n * 1e6)
    print(json.dumps({k: min(v) for k, v in cpu.items()}), flush=True)
    """
)

STALLED_CLIENT = textwrap.dedent(
    """
    import sys, threading
    import arrowdaq
    daq = arrowdaq.connect(name="bench-subscriber")
    subs = [daq.subscribe(s) for s in sys.argv[1:]]
    def drain(sub):
        for _ in sub:
            pass
    threads = [threading.Thread(target=drain, args=(s,), daemon=True) for s in subs]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()
    """
)


class Daemon(ApplicationThread):
    """The demo in a thread of this process, with the benchmark's own streams declared."""

    def __init__(self, data_dir: Path, extra_streams: dict[str, pa.Schema], demo: bool = True) -> None:
        """``demo=False``: the daemon with no instruments nor processors (the service alone in the process)."""
        config = parse_config(tomllib.loads(demo_config_text()), "demo.toml")
        config.run.data_dir = data_dir
        # the demo records what it records; the benchmark's own streams are not stored (storage is not measured)
        config.storage.streams = [f"{i.id}/*" for i in config.instruments] + [f"{p.id}/*" for p in config.processors]
        if not demo:
            config.instruments, config.processors, config.scans = [], [], []
            config.storage.record = False
        config.server.max_streams = 512  # 4 clients on every stream
        app = Application(config, source="demo.toml")
        for name, schema in extra_streams.items():
            app.hub.declare(name, schema, producer="bench")
        super().__init__(app)

    def run(self, coro, timeout: float = 600):  # type: ignore[no-untyped-def]
        return self.call(lambda: coro, timeout)


#: Seconds each acquisition window lasts (without clients, then with them).
ACQUISITION_S = 10.0


def start_client(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env or os.environ.copy(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"client did not start: {line!r}")
    return proc


def finish(proc: subprocess.Popen[str]) -> dict[str, float]:
    assert proc.stdout is not None
    out, _ = proc.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def measure_latency(daemon: Daemon, n: int, plain: bool = False) -> dict[str, float]:
    """``plain``: the client is bare pyarrow.flight (no reader thread), else ``arrowdaq.connect().subscribe``."""
    live = daemon.app.live
    assert live is not None
    if plain:
        ticket = json.dumps({"stream": "bench/tick", "mode": "latest"})
        client = start_client(PLAIN_LATENCY_CLIENT, live.address, live.token, ticket, str(n))
    else:
        client = start_client(LATENCY_CLIENT, str(n))
    hub = daemon.app.hub

    async def publish() -> None:
        values = np.zeros(1)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while client.poll() is None:
            next_at += 0.001
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            stamp = np.array([time.time_ns()], np.uint64)
            await hub.publish("bench/tick", scalar_batch(values, channel="tick", unit="s", timestamps_ns=stamp))

    task = asyncio.run_coroutine_threadsafe(publish(), daemon.loop)  # type: ignore[arg-type]
    result = finish(client)
    task.result(30)
    return result


async def keep_fed(daemon: Daemon, stream: str, batches: list[pa.RecordBatch], done: threading.Event) -> None:
    """Publish ``batches`` in turn as fast as the client of ``stream`` takes them, until ``done``."""
    feed = None
    k = 0
    while not done.is_set():
        if feed is None or feed.closed:  # a window's feed, once the hub delivers to it
            subscribed = daemon.app.hub.streams[stream].subscribers
            feed = next((f for f in subscribed if isinstance(f, ClientFeed) and not f.closed), None)
        if feed is None or len(feed) >= 12:  # plenty queued: the client, not the producer, sets the pace
            await asyncio.sleep(0.0002)  # (asyncio wakes in whole milliseconds; 12 batches outlast that)
            continue
        await daemon.app.hub.publish(stream, batches[k % len(batches)])
        k += 1


def measure_client_cpu(daemon: Daemon, stream: str, batches: list[pa.RecordBatch], n: int) -> dict[str, float]:
    """The reading thread's CPU per message (us) of a plain pyarrow.flight loop and of arrowdaq's
    ``Subscription``, in turn on the same live stream, in one client process."""
    live = daemon.app.live
    assert live is not None
    done = threading.Event()
    task = asyncio.run_coroutine_threadsafe(keep_fed(daemon, stream, batches, done), daemon.loop)  # type: ignore[arg-type]
    try:
        client = start_client(CLIENT_CPU, live.address, live.token, stream, str(n))
        return finish(client)
    finally:
        done.set()
        task.result(30)


def measure_throughput(
    daemon: Daemon, stream: str, batches: list[pa.RecordBatch], n: int, pairs: int, bare_from: str = "wire"
) -> list[tuple[float, float, float, float]]:
    """MB/s of the live service and of bare Flight, and the CPU time per batch (us) of the gRPC threads serving
    Flight in each window (the benchmark's own publishing, on the event loop, is left out), ``pairs`` windows of
    each in turn (live first in one pair, bare first in the next), read by one plain pyarrow.flight client
    process (so that each pair meets the same load on a shared machine).

    The live service gets distinct batches in turn, as a producer publishes them (it converts each once
    for all its clients: the same batch object again and again would be converted only once); bare
    Flight streams the same prebuilt batches in the same turn as the live service puts them on the wire
    (its WireFormat: plain strings, the same buffers, the same bytes), from C++ (``RecordBatchStream``).
    ``bare_from="cast"``: bare Flight's batches cast to plain instead, as before decision 0077 (measured
    ~14% slower to serve than the live service's own bytes: a larger working set)."""
    live = daemon.app.live
    assert live is not None
    ticket = json.dumps({"stream": stream, "mode": "latest", "max_batches": 16})
    if bare_from == "wire":  # what the live service sends of them: the same bytes, the same buffers
        wire = WireFormat(batches[0].schema)
        plain = [wire(b) for b in batches]
    else:  # each batch cast to plain strings: a string column (and a validity bitmap) of its own per batch
        plain = [b.cast(plain_schema(b.schema)) for b in batches]
    bare = BareServer([plain[k % len(plain)] for k in range(n + 2)])
    # live first in one pair, bare first in the next: neither side always meets the start of a pair
    turns = [(True, False) if p % 2 == 0 else (False, True) for p in range(pairs)]
    order = [is_live for turn in turns for is_live in turn]
    windows = [[live.address, live.token, ticket] if is_live else [bare.address, "x", "{}"] for is_live in order]
    client = start_client(THROUGHPUT_CLIENT, str(n), json.dumps(windows))
    assert client.stdin is not None and client.stdout is not None
    done = threading.Event()
    task = asyncio.run_coroutine_threadsafe(keep_fed(daemon, stream, batches, done), daemon.loop)  # type: ignore[arg-type]
    rates: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    try:
        for is_live in order:
            cpu0 = grpc_cpu()
            client.stdin.write("go\n")
            client.stdin.flush()
            rates[is_live].append(json.loads(client.stdout.readline())["mb_per_s"])
            cpu[is_live].append((grpc_cpu() - cpu0) / n * 1e6)  # per batch sent, us
    finally:
        done.set()
        task.result(30)
        client.wait(60)
        bare.shutdown()
    return list(zip(rates[True], rates[False], cpu[True], cpu[False], strict=True))


def grpc_cpu() -> float:
    """CPU seconds of this process's gRPC threads (Linux /proc: they name themselves ``grpcpp_sync_ser``,
    ``event_engine``...; Python's threads keep the process's name): the threads that serve Flight, the live
    service's and bare Flight's alike, without the demo's or the event loop's. Each thread's CPU clock
    (``clock_gettime``, nanoseconds; /proc's stat counts 10 ms ticks, 10 us a batch over a window)."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            if name.startswith(("grpc", "event_engine")):
                total += time.clock_gettime_ns(thread_cpu_clock(int(task.name)))
        except OSError:
            continue  # the thread ended
    return total / 1e9


def thread_cpu_clock(tid: int) -> int:
    """The CPU-time clock of thread ``tid`` of this process (Linux: CPUCLOCK_SCHED of a thread, as glibc's
    ``pthread_getcpuclockid`` makes it)."""
    return ((~tid) << 3) | 6


class BareServer(flight.FlightServerBase):
    """pyarrow.flight with nothing of arrowdaq: do_get streams the prebuilt batches from C++."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self.table = pa.Table.from_batches(batches)
        super().__init__("grpc://127.0.0.1:0")
        self.address = f"grpc://127.0.0.1:{self.port}"

    def do_get(self, context, ticket):  # type: ignore[no-untyped-def]
        return flight.RecordBatchStream(self.table)


class BareTickServer(flight.FlightServerBase):
    """The floor for latency: bare pyarrow.flight in this process (beside the running demo, as the daemon's
    service is), a producer thread handing 1-row batches at 1 kHz to the do_get generator through a
    bounded queue that keeps the newest 16 (the hand-off any server with a producer makes)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.dropped = 0
        super().__init__("grpc://127.0.0.1:0")

    def do_get(self, context, ticket):  # type: ignore[no-untyped-def]
        import queue

        ticks: queue.Queue[pa.RecordBatch] = queue.Queue(maxsize=16)
        schema = plain_schema(scalar_schema("s"))
        values, channel, unit = pa.array([0.0]), pa.array(["tick"]), pa.array(["s"])
        ended = threading.Event()  # set by the generator when the call ends

        def produce() -> None:
            # never touches ``context``: it is valid only while the call runs in its gRPC thread, and a
            # thread that asked ``context.is_cancelled()`` after the call had ended read a dead C++ object
            # (the benchmark's segfault, rc 139)
            next_at = time.perf_counter()
            while not self.stop.is_set() and not ended.is_set():
                next_at += 0.001
                delay = next_at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                stamp = pa.array([time.time_ns()], pa.uint64())
                batch = pa.RecordBatch.from_arrays([stamp, channel, values, unit], schema=schema)
                try:
                    ticks.put_nowait(batch)
                except queue.Full:
                    ticks.get_nowait()
                    self.dropped += 1
                    ticks.put_nowait(batch)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()

        def batches():  # type: ignore[no-untyped-def]
            try:
                while not self.stop.is_set():
                    try:
                        yield ticks.get(timeout=0.2)  # sees the stop flag (a get without timeout hung shutdown)
                    except queue.Empty:
                        continue
            finally:
                ended.set()
                producer.join()

        return flight.GeneratorStream(schema, batches())


def measure_bare_latency(n: int) -> dict[str, float]:
    server = BareTickServer()
    try:
        client = start_client(PLAIN_LATENCY_CLIENT, f"grpc://127.0.0.1:{server.port}", "x", "{}", str(n))
        return {**finish(client), "dropped": server.dropped}
    finally:
        server.stop.set()
        server.shutdown()


def demo_rates(daemon: Daemon, seconds: float) -> dict[str, dict[str, float]]:
    """Per demo stream over ``seconds``: rows/s achieved (the hub's count of published rows, which the
    run file matches: see the end of main), rows/s requested (the poll rates), readings missed."""

    async def counts() -> dict[str, dict[str, Any]]:
        streams = daemon.app.hub.status()["streams"]
        return {n: s for n, s in streams.items() if not n.startswith("bench/")}

    before = daemon.run(counts())
    t0 = time.monotonic()
    time.sleep(seconds)
    after = daemon.run(counts())
    dt = time.monotonic() - t0
    return {
        n: {
            "rows_per_s": (a["rows"] - before[n]["rows"]) / dt,
            "requested_per_s": a["requested_per_s"] or 0.0,
            "missed": a["missed"] - before[n]["missed"],
        }
        for n, a in after.items()
        if n in before
    }


def spread(values: list[float]) -> str:
    """Median and range of a measurement's rounds."""
    return f"{statistics.median(values):8.3f} [{min(values):.3f}-{max(values):.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each live beside bare Flight (default 3)")
    parser.add_argument("--pairs", type=int, default=3, help="throughput windows, live and bare in turn, per round")
    parser.add_argument("--switch-interval", type=float, help="the daemon's sys.setswitchinterval (s), to compare")
    parser.add_argument("--no-demo", action="store_true", help="the daemon without instruments (the service alone)")
    parser.add_argument(
        "--bare-from",
        choices=("wire", "cast"),
        default="wire",
        help="bare Flight's batches: as the live service puts them on the wire (default), or cast to plain strings "
        "(the baseline before decision 0077)",
    )
    parser.add_argument(
        "--only", action="append", choices=("latency", "throughput", "acquisition"), help="run this part (repeatable)"
    )
    args = parser.parse_args()
    n_latency = 2_000 if args.quick else 10_000
    n_scalar = 200 if args.quick else 1_000
    n_frames = 20 if args.quick else 100

    rows = 10_000
    scalars = [
        scalar_batch(
            np.random.default_rng(k).normal(size=rows),
            channel="power",
            unit="W",
            timestamps_ns=np.arange(rows, dtype=np.uint64) + k * rows,
        )
        for k in range(16)
    ]
    frames = [image_batch(np.zeros((2048, 2048), np.uint16), channel="frames", frame_numbers=k) for k in range(4)]
    scalar, frame = scalars[0], frames[0]  # 8 MiB frames
    streams = {
        "bench/tick": scalar_schema("s"),
        "bench/scalar": scalar.schema,
        "bench/frames": frame.schema if frame.schema is not None else image_schema((2048, 2048), "uint16"),
    }
    if args.switch_interval is not None:
        live_server.SWITCH_INTERVAL_S = args.switch_interval
    parts = args.only or ["latency", "throughput", "acquisition"]
    with TemporaryDirectory() as tmp:
        # this daemon's own address file: the clients must not find a daemon another process runs meanwhile
        os.environ["ARROWDAQ_LIVE_FILE"] = str(Path(tmp) / "live.json")
        with Daemon(Path(tmp), streams, demo=not args.no_demo) as daemon:
            print(
                f"live service {daemon.app.live.address if daemon.app.live else '?'}; the demo is running", flush=True
            )
            results: dict[str, list[float]] = {}

            def note(key: str, value: float) -> None:
                results.setdefault(key, []).append(value)

            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}: load average {os.getloadavg()[0]:.2f}", flush=True)
                if "latency" in parts:
                    for label, measure in (
                        ("live, arrowdaq client", lambda: measure_latency(daemon, n_latency)),
                        ("live, plain Flight client", lambda: measure_latency(daemon, n_latency, plain=True)),
                        ("bare Flight", lambda: measure_bare_latency(n_latency)),
                    ):
                        lat = measure()
                        for q in ("p50", "p99", "max"):
                            note(f"latency {label} {q}", lat[q])
                        print(
                            f"  latency {label:>26}: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
                            f"max {lat['max']:.3f} ms (n={lat['n']:,}, dropped {lat['dropped']})",
                            flush=True,
                        )
                if "throughput" in parts:
                    for label, stream, batches, n in (
                        ("10,000-row scalar batches", "bench/scalar", scalars, n_scalar),
                        ("8 MiB frames", "bench/frames", frames, n_frames),
                    ):
                        pairs = measure_throughput(daemon, stream, batches, n, args.pairs, args.bare_from)
                        for live_mb, bare_mb, live_cpu, bare_cpu in pairs:
                            note(f"{label} ratio", live_mb / bare_mb)
                            note(f"{label} serving CPU us/batch live", live_cpu)
                            note(f"{label} serving CPU us/batch bare", bare_cpu)
                        print(
                            f"  {label:>26}: live/bare MB/s "
                            + ", ".join(f"{lv:,.0f}/{bv:,.0f} ({lv / bv:.2f})" for lv, bv, _, _ in pairs)
                            + "; serving CPU us/batch "
                            + ", ".join(f"{lc:,.0f}/{bc:,.0f}" for _, _, lc, bc in pairs),
                            flush=True,
                        )
                    if r == args.rounds - 1:  # once: the reading side of the same stream
                        cpu = measure_client_cpu(daemon, "bench/scalar", scalars, n_scalar)
                        print(
                            f"  client CPU per 10,000-row message: plain pyarrow.flight {cpu['plain']:.0f} us, "
                            f"arrowdaq's Subscription {cpu['arrowdaq']:.0f} us",
                            flush=True,
                        )
            if results:
                print(
                    f"medians over {args.rounds} rounds (throughput: {args.pairs} pairs each) [min-max]  (targets: latency p50 <= 1 ms, p99 <= 10 ms; "
                    "throughput ratio >= 0.8)"
                )
                for key, values in results.items():
                    print(f"  {key:>46} {spread(values)}")

            if "acquisition" in parts:
                everything = [s for s in daemon.app.hub.streams if not s.startswith("bench/")]
                quiet = demo_rates(daemon, ACQUISITION_S)
                clients = [start_client(STALLED_CLIENT, *everything) for _ in range(4)]
                try:
                    os.kill(clients[0].pid, signal.SIGSTOP)
                    loaded = demo_rates(daemon, ACQUISITION_S)
                finally:
                    for c in clients:
                        os.kill(c.pid, signal.SIGCONT)
                        c.kill()
                        c.wait()

                def total(rates: dict[str, dict[str, float]], key: str) -> float:
                    return sum(r[key] for r in rates.values())

                requested, rate_quiet, rate_loaded = (
                    total(quiet, "requested_per_s"),
                    total(quiet, "rows_per_s"),
                    total(loaded, "rows_per_s"),
                )
                print(
                    f"demo acquisition over {ACQUISITION_S:g} s each, {len(everything)} streams (their poll rates "
                    f"ask {requested:,.0f} rows/s; processors' outputs follow their inputs):\n"
                    f"  without clients {rate_quiet:,.1f} rows/s ({total(quiet, 'missed'):.0f} readings missed); "
                    f"with 4 clients on every stream, one stalled, {rate_loaded:,.1f} rows/s "
                    f"({total(loaded, 'missed'):.0f} missed)\n"
                    f"  acquisition with clients / without: {rate_loaded / max(rate_quiet, 1e-9):.3f}  "
                    "(target: 1.00 within noise)",
                    flush=True,
                )
                slower = {n: (quiet[n]["rows_per_s"], r["rows_per_s"]) for n, r in loaded.items() if n in quiet}
                slower = {n: q_l for n, q_l in slower.items() if q_l[1] < 0.95 * q_l[0]}
                for name, (q, lo) in slower.items():
                    print(f"  slower with clients: {name} {q:.2f} -> {lo:.2f} rows/s", flush=True)
        summary = daemon.summary
        if summary is not None and summary.stored is not None:
            published = {n: t.rows for n, t in summary.streams.items() if not n.startswith("bench/")}
            stored = sum(summary.stored.get(n, 0) for n in published)
            print(
                f"run file: {stored:,} rows of the {sum(published.values()):,} the demo published "
                f"({summary.duration_s:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
