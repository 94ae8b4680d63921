"""Retention benchmark: the state dir stops growing under a steady load with retention on.

`python -m bench.retention [--seconds N]`. Runs a host in this process (no HTTP: turns go straight to the actor
system, each with an idempotency key like a Telegram update, so every turn writes a dedup key, a turn record and
a response record) with 20 senders at a steady 200 turns/s in all; each sender moves to a new conversation
every 3 turns, so old conversations close. Once with retention off, once with short ages (3 s for dedup keys,
responses and the turns of closed conversations; a sweep every second), each for N seconds (default 40).
Prints, every few seconds, the size of `data.mdb`, the records kept and the turns done; then the growth of the
file over the second half of each run. With retention on the file stops growing: LMDB reuses the pages the
sweeper frees.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import trio

import afactors
from afactors.host import RetentionConfig
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update

SENDERS = 20
RATE = 200.0
"""Turns per second over all senders: a steady load the 2-core machine carries with room to spare."""
TURNS_PER_CONVERSATION = 3


class Echo:
    async def run(self, ctx: TurnContext) -> object:
        yield Update(delta="ok " + ctx.messages[-1].text[:200])


async def one_run(seconds: float, retention: RetentionConfig, label: str) -> list[tuple[float, int, int, int]]:
    samples: list[tuple[float, int, int, int]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("AFACTORS_BENCH_DIR")) as tmp:
        async with afactors.open_host(
            Echo(), state_dir=tmp, port=0, durability="fast", retention=retention, idle_timeout=1.0, web_ui=False
        ) as host:
            done = 0
            body = "x" * 400  # a few hundred bytes of input and output per turn

            async def sender(n: int) -> None:
                nonlocal done
                i = 0
                begin = trio.current_time()
                while True:
                    await trio.sleep_until(begin + i * SENDERS / RATE)
                    key = ConversationKey("bench", f"s{n}-c{i // TURNS_PER_CONVERSATION}")
                    envelope = Envelope(key, (Message("user", body),), idempotency_key=f"u{n}-{i}")
                    await (await host.system.submit(envelope)).reply()
                    done += 1
                    i += 1

            data = Path(tmp) / "data" / "data.mdb"
            start = time.monotonic()
            async with trio.open_nursery() as nursery:
                for n in range(SENDERS):
                    nursery.start_soon(sender, n)
                while (elapsed := time.monotonic() - start) < seconds:
                    await trio.sleep(min(3.0, seconds - elapsed))
                    kept = sum(host.store.count(k) for k in ("turns", "responses", "dedup"))
                    sample = (time.monotonic() - start, data.stat().st_size, kept, done)
                    samples.append(sample)
                    print(f"{label:>13} t={sample[0]:5.1f}s  data.mdb {sample[1] / 2**20:7.2f} MiB  "
                          f"records {kept:7d}  turns {done:7d}", flush=True)  # fmt: skip
                nursery.cancel_scope.cancel()
    return samples


def growth(samples: list[tuple[float, int, int, int]]) -> tuple[float, float]:
    """MiB the file grew over the second half of a run, and turns done in that half."""
    half = samples[len(samples) // 2 - 1]
    last = samples[-1]
    return (last[1] - half[1]) / 2**20, last[3] - half[3]


async def main(seconds: float) -> None:
    off = await one_run(seconds, RetentionConfig(enabled=False), "retention off")
    short = RetentionConfig(dedup=3, responses=3, closed_turns=3, dead_letters=3, interval=1, batch=500)
    on = await one_run(seconds, short, "retention on")
    for label, samples in (("off", off), ("on", on)):
        grew, turns = growth(samples)
        print(f"retention {label}: data.mdb grew {grew:.2f} MiB over the second half ({turns:.0f} turns), "
              f"ends at {samples[-1][1] / 2**20:.2f} MiB with {samples[-1][2]} records")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0)
    trio.run(main, parser.parse_args().seconds)
