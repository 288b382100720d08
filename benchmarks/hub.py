"""Hub throughput: scalar batches from N producers through the hub to M subscribers.

Beside it, the baseline measured in the same run: the same batches fanned out
through bare ``asyncio.Queue``s (no validation, no metrics, no policies).
The difference per delivered message is the hub's overhead.

    .venv/bin/python benchmarks/hub.py [--quick] [--producers N] [--subscribers M]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import numpy as np

from arrowdaq.data import scalar_batch, scalar_schema
from arrowdaq.hub import InstrumentManager


def make_batches(rows: int, count: int) -> list:
    ts = np.arange(rows, dtype=np.uint64)
    return [
        scalar_batch(np.random.default_rng(i).normal(size=rows), channel="v", unit="V", timestamps_ns=ts)
        for i in range(count)
    ]


async def through_hub(batches: list, producers: int, subscribers: int) -> float:
    hub = InstrumentManager()
    for p in range(producers):
        hub.declare(f"dev{p}/v", scalar_schema("V"), producer=f"dev{p}")
    subs = [hub.subscribe("dev*/v", delivery="lossless", name=f"s{m}") for m in range(subscribers)]
    expected = len(batches) * producers

    async def produce(p: int) -> None:
        for b in batches:
            await hub.publish(f"dev{p}/v", b)

    async def consume(sub) -> None:
        for _ in range(expected):
            await sub.get()

    t0 = time.perf_counter()
    await asyncio.gather(*(produce(p) for p in range(producers)), *(consume(s) for s in subs))
    return time.perf_counter() - t0


async def through_queues(batches: list, producers: int, subscribers: int) -> float:
    queues = [asyncio.Queue(maxsize=10_000) for _ in range(subscribers)]
    expected = len(batches) * producers

    async def produce() -> None:
        for b in batches:
            for q in queues:
                await q.put(b)

    async def consume(q) -> None:
        for _ in range(expected):
            await q.get()

    t0 = time.perf_counter()
    await asyncio.gather(*(produce() for _ in range(producers)), *(consume(q) for q in queues))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--subscribers", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("arrowdaq").setLevel(logging.ERROR)  # backpressure alarms are expected here
    n, m = args.producers, args.subscribers
    print(f"hub benchmark: {n} producers -> {m} subscribers (lossless), scalar batches")
    print(
        f"{'rows/batch':>10} {'batches':>8} {'hub batches/s':>14} {'hub rows/s':>12} {'queue batches/s':>16} "
        f"{'hub us/msg':>10} {'queue us/msg':>12} {'overhead us/msg':>15}"
    )
    for rows, count in ((1, 20_000), (100, 20_000), (10_000, 2_000)):
        if args.quick:
            count //= 20
        batches = make_batches(rows, min(count, 200))
        batches = (batches * (count // len(batches) + 1))[:count]
        t_hub = min(asyncio.run(through_hub(batches, n, m)) for _ in range(2))
        t_q = min(asyncio.run(through_queues(batches, n, m)) for _ in range(2))
        published = count * n
        delivered = published * m
        print(
            f"{rows:>10} {published:>8} {published / t_hub:>14,.0f} {published * rows / t_hub:>12,.0f} "
            f"{published / t_q:>16,.0f} {t_hub / delivered * 1e6:>10.2f} {t_q / delivered * 1e6:>12.2f} "
            f"{(t_hub - t_q) / delivered * 1e6:>15.2f}"
        )


if __name__ == "__main__":
    main()
