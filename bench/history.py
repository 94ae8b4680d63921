"""History benchmark: turn latency at turn 10 vs turn 6,000 of one conversation, with and without a window.

`python -m bench.history [--turns N] [--modes all,turns,tokens,summary]`. One actor system on an `unsafe` store in
a temp dir (no fsync: the disk's flush time, measured by `bench.store`, would hide what the history costs) hosts
the demo agent (which reads the whole context it is given, like a model would). One conversation gets N turns
(default 6,000) one after the other; the latency of each turn (submit to reply, commit included) is recorded.
p50/p99 over turns 1-100 ("turn 10") and over the last 100 turns ("turn N"), and their ratio, per mode: `all`
(the target sees every turn), `turns` (`history_turns=50`), `tokens` (`history_tokens=2000`, the built-in
estimate) and `summary` (`history_tokens=2000` with a summarising hook; the hook itself is a cheap function, so
the figures are the runtime's cost of summarising, not a model's). The modes run in the same process, one after
the other; `summary` also prints how many times the hook ran.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence

import trio

from afactors.actors import ActorConfig, ActorSystem
from afactors.model import ConversationKey, Envelope, Message
from afactors.store import Store
from afactors.targets import DemoAgent

BAND = 100


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


class Summaries:
    """A cheap summarising hook: keeps the facts ("remember that fact N holds") of the turns it is given."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, previous: Message | None, dropped: Sequence[Message]) -> Message:
        self.calls += 1
        facts = [m.text for m in dropped if m.role == "user" and m.text.startswith("remember")]
        return Message("system", " ".join([previous.text if previous else "Earlier:", *facts])[-2000:])


def configs() -> dict[str, ActorConfig]:
    return {
        "all": ActorConfig(),
        "turns": ActorConfig(history_turns=50),
        "tokens": ActorConfig(history_tokens=2000),
        "summary": ActorConfig(history_tokens=2000, summarize=Summaries()),
    }


async def run(turns: int, config: ActorConfig) -> list[float]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("AFACTORS_BENCH_DIR")) as tmp:
        async with Store.open(tmp, durability="unsafe") as store:
            async with ActorSystem.open(store, DemoAgent(), config) as system:
                key = ConversationKey("bench", "long")
                for n in range(turns):
                    text = f"remember that fact {n} holds" if n % 10 == 0 else f"message {n}"
                    started = time.perf_counter()
                    await (await system.submit(Envelope(key, (Message("user", text),)))).reply()
                    latencies.append(time.perf_counter() - started)
    return latencies


async def main(turns: int, modes: list[str]) -> None:
    print(f"{'mode':>8} {'p50 @10':>9} {'p99 @10':>9} {'p50 @N':>9} {'p99 @N':>9} {'p99 ratio':>9}")
    for mode in modes:
        config = configs()[mode]
        latencies = await run(turns, config)
        early, late = latencies[:BAND], latencies[-BAND:]
        e50, e99, l50, l99 = (1000 * p(x, q) for x, q in ((early, 50), (early, 99), (late, 50), (late, 99)))
        hook = f"  (hook ran {config.summarize.calls} times)" if isinstance(config.summarize, Summaries) else ""
        print(f"{mode:>8} {e50:8.2f}ms {e99:8.2f}ms {l50:8.2f}ms {l99:8.2f}ms {l99 / e99:9.2f}{hook}", flush=True)
    print(f"(@10: turns 1-{BAND}; @N: turns {turns - BAND + 1}-{turns})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=6000)
    parser.add_argument(
        "--modes", default="all,turns,tokens,summary", help="comma-separated: all, turns, tokens, summary"
    )
    args = parser.parse_args()
    trio.run(main, args.turns, args.modes.split(","))
