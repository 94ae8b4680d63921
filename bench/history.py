"""History benchmark: turn latency at turn 10 vs turn 6,000 of one conversation, with and without a window.

`python -m bench.history [--turns N]`. One actor system on an `unsafe` store in a temp dir (no fsync: the
disk's flush time, measured by `bench.store`, would hide what the history costs) hosts the demo agent
(which reads the whole context it is given, like a model would). One conversation gets N turns (default 6,000)
one after the other; the latency of each turn (submit to reply, commit included) is recorded. p50/p99 over turns
1-100 ("turn 10") and over the last 100 turns ("turn N"), and their ratio, for `history_turns=None` (the target
sees every turn) and `history_turns=50`. Both modes run in the same process, one after the other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import trio

from afactors.actors import ActorSystem
from afactors.model import ConversationKey, Envelope, Message
from afactors.store import Store
from afactors.targets import DemoAgent

BAND = 100


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


async def run(turns: int, window: int | None) -> list[float]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("AFACTORS_BENCH_DIR")) as tmp:
        async with Store.open(tmp, durability="unsafe") as store:
            async with ActorSystem.open(store, DemoAgent(), history_turns=window) as system:
                key = ConversationKey("bench", "long")
                for n in range(turns):
                    text = f"remember that fact {n} holds" if n % 10 == 0 else f"message {n}"
                    started = time.perf_counter()
                    await (await system.submit(Envelope(key, (Message("user", text),)))).reply()
                    latencies.append(time.perf_counter() - started)
    return latencies


async def main(turns: int) -> None:
    print(f"{'history_turns':>13} {'p50 @10':>9} {'p99 @10':>9} {'p50 @N':>9} {'p99 @N':>9} {'p99 ratio':>9}")
    for window in (None, 50):
        latencies = await run(turns, window)
        early, late = latencies[:BAND], latencies[-BAND:]
        e50, e99, l50, l99 = (1000 * p(x, q) for x, q in ((early, 50), (early, 99), (late, 50), (late, 99)))
        print(f"{window!s:>13} {e50:8.2f}ms {e99:8.2f}ms {l50:8.2f}ms {l99:8.2f}ms {l99 / e99:9.2f}", flush=True)
    print(f"(@10: turns 1-{BAND}; @N: turns {turns - BAND + 1}-{turns})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=6000)
    trio.run(main, parser.parse_args().turns)
