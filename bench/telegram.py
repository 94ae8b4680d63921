"""The Telegram channel draining a burst through the fake Bot API, against the floor its rate limits set.

`python -m bench.telegram [--quick|--full] [--json PATH]`. The host runs as `python -m afactors` (built-in
demo agent, durable commits, long polling) in its own process pinned to SERVER_CPU; the fake Bot API runs
in this process pinned to LOAD_CPU. Each run injects M messages into each of N private chats at once and
waits until every answer has arrived.

* `telegram.drain_vs_floor`: drain time (first message injected to last answer sent) over the floor the
  channel's own limits set: max((N*M - 1) / global rate, (M - 1) / per-chat rate). Target <= 1.2.
* `telegram.replies_per_s`: answers per second over the drain.
* `telegram.p99_ms`: p99 of (answer sent - its message injected). Everything is injected at once, so this
  is dominated by the queue the limits impose, not by per-turn latency.

Full: 1,000 chats x 5 messages at a global 200 msg/s (floor 25 s). Quick: 200 chats x 5 at 100 msg/s
(floor 10 s). The per-chat limit is Telegram's 1 msg/s. The fake enforces the same limits with Telegram's
bursts and counts violations; a run with a violation fails the benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trio

from afactors_telegram.testing import FakeBotApi, RateLimits, open_fake_bot_api
from bench.common import LOAD_CPU, MIN_RUNS, REPO_ROOT, SERVER_CPU, Metrics, bench_main, pin, summarize
from bench.harness import free_port, progress

MESSAGES = 5
PER_CHAT_RATE = 1.0
STARTUP_TIMEOUT = 60.0


def _shape(quick: bool) -> tuple[int, float]:
    """(chats, global messages per second)."""
    return (200, 100.0) if quick else (1000, 200.0)


def _floor(chats: int, global_rate: float) -> float:
    return max((chats * MESSAGES - 1) / global_rate, (MESSAGES - 1) / PER_CHAT_RATE)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _one_run(chats: int, global_rate: float, scratch: Path) -> dict[str, float]:
    limits = RateLimits(per_chat_per_second=PER_CHAT_RATE, per_chat_burst=3, global_per_second=global_rate,
                        global_burst=30)  # fmt: skip
    async with open_fake_bot_api(rate_limits=limits) as fake:
        argv = [
            sys.executable, "-m", "afactors", "--port", str(free_port()), "--state-dir", str(scratch / "state"),
            "--channel", "telegram", "--telegram-token", fake.token, "--telegram-api-base", fake.api_base,
            "--telegram-chat-rate", str(PER_CHAT_RATE), "--telegram-global-rate", str(global_rate),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        with (scratch / "server.log").open("wb") as log:
            process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            pin(process.pid, SERVER_CPU)
            # the poller's first call; getUpdates itself is recorded only when its long poll returns
            await fake.wait_until(lambda: fake.call_count("deleteWebhook") > 0, timeout=STARTUP_TIMEOUT)
            return await _drain(fake, chats, global_rate)
        finally:
            process.terminate()
            with trio.move_on_after(15):
                await process.wait()
            process.kill()


async def _drain(fake: FakeBotApi, chats: int, global_rate: float) -> dict[str, float]:
    users = [fake.user(f"User{i}") for i in range(chats)]
    injected: dict[str, float] = {}
    start = trio.current_time()
    for n in range(MESSAGES):
        for i, user in enumerate(users):
            tag = f"c{i}m{n}"
            fake.send_text(user, tag)
            injected[tag] = trio.current_time()
    total = chats * MESSAGES
    await fake.wait_until(lambda: fake.call_count("sendMessage") >= total, timeout=_floor(chats, global_rate) * 5 + 60)
    answers = [c for c in fake.calls("sendMessage") if c.ok]
    latencies = [c.at - injected[str(c.params["text"]).rsplit(" ", 1)[-1]] for c in answers]
    drain = max(c.at for c in answers) - start
    if fake.rate_limit_violations:
        raise RuntimeError(f"{fake.rate_limit_violations} rate-limit violations counted by the fake")
    if len(answers) != total:
        raise RuntimeError(f"{len(answers)} answers for {total} messages")
    return {
        "telegram.drain_vs_floor": drain / _floor(chats, global_rate),
        "telegram.replies_per_s": total / drain,
        "telegram.p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def run(quick: bool) -> Metrics:
    """Drain the burst `MIN_RUNS` times; medians with min-max."""
    chats, global_rate = _shape(quick)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    samples: dict[str, list[float]] = {}
    try:
        pin(0, LOAD_CPU)
        for attempt in range(MIN_RUNS):
            with tempfile.TemporaryDirectory(prefix="bench-telegram-") as scratch:
                result = trio.run(_one_run, chats, global_rate, Path(scratch))
            progress(f"telegram run {attempt + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in result.items()))
            for name, value in result.items():
                samples.setdefault(name, []).append(value)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    metrics = summarize(samples)
    metrics.notes["telegram.shape"] = (
        f"{chats} chats x {MESSAGES} messages, {PER_CHAT_RATE:g} msg/s per chat, {global_rate:g} msg/s global, "
        f"floor {_floor(chats, global_rate):.1f} s"
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: `python -m bench.telegram [--quick|--full] [--json PATH]`."""
    return bench_main("telegram", run, argv)


if __name__ == "__main__":
    sys.exit(main())
