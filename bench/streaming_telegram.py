"""Streaming (c): model-paced streams rendered live in Telegram, against the fake Bot API and its flood limits.

`python -m bench.streaming_telegram [--quick|--full] [--json PATH]` (also part (c) of `bench.streaming`). The host
runs as `python -m afactors --channel telegram --target bench.targets:stream` (durable, long polling) pinned to
SERVER_CPU, each turn yielding `DELTAS` deltas `STEP_MS` ms apart (a model's pace); the fake Bot API runs in this
process pinned to LOAD_CPU and enforces Telegram's limits (1 msg/s per chat, 20 per minute per group, the global
rate). P private chats and P groups each send one message at once: a private chat previews the text with
`sendMessageDraft` (not rate-limited), a group with one preview message that `editMessageText` updates (counted
against the limits); the answer itself then arrives as usual. Per run:

* `streaming.telegram.previews_per_s.<kind>` (kind `private` or `group`): previews (drafts; a group's preview
  message and its edits; the answer excluded) per second of the run (first update handed to the host to the
  last answer); `streaming.telegram.edits_per_s`: the groups' edits alone;
* `streaming.telegram.deltas_per_preview.<kind>`: deltas streamed per preview (how many one preview coalesces);
* `streaming.telegram.first_preview_p50_ms.<kind>` / `first_preview_p99_ms.<kind>`: from the first delta (the
  update handed to the host, plus the target's first `STEP_MS`) to the chat's first visible preview;
  `streaming.telegram.no_preview.<kind>`: chats whose answer came with no preview before it;
* `streaming.telegram.answer_p50_ms` / `answer_p99_ms`: from the update handed to the host to the answer;
* `streaming.telegram.too_many_requests`: 429 answers the fake gave (flood limits hit), and
  `streaming.telegram.violations`: requests the fake counted as over a limit; both must be 0.

Quick: 25 private chats + 25 groups; full: 100 + 100. Medians of 3 runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import trio

from afactors_telegram.testing import FakeBotApi, RateLimits, open_fake_bot_api
from bench.common import LOAD_CPU, MIN_RUNS, REPO_ROOT, SERVER_CPU, Metrics, bench_main, pin, summarize
from bench.harness import free_port, progress

DELTAS = 150
STEP_MS = 20.0
GLOBAL_RATE = 30.0
STARTUP_TIMEOUT = 60.0
PREVIEWS = ("sendMessageDraft", "sendMessage", "editMessageText")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _answer_text() -> str:
    return "".join(f"d{i} " for i in range(DELTAS))


async def _one_run(chats: int, scratch: Path) -> dict[str, float]:
    limits = RateLimits(global_per_second=GLOBAL_RATE)
    async with open_fake_bot_api(rate_limits=limits) as fake:
        argv = [
            sys.executable, "-m", "afactors", "--port", str(free_port()), "--state-dir", str(scratch / "state"),
            "--channel", "telegram", "--telegram-token", fake.token, "--telegram-api-base", fake.api_base,
            "--telegram-global-rate", str(GLOBAL_RATE), "--target", "bench.targets:stream",
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "BENCH_STREAM_DELTAS": str(DELTAS),
               "BENCH_STREAM_INTERVAL_MS": str(STEP_MS)}  # fmt: skip
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        with (scratch / "server.log").open("wb") as log:
            process = await trio.lowlevel.open_process(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            pin(process.pid, SERVER_CPU)
            await fake.wait_until(lambda: fake.call_count("deleteWebhook") > 0, timeout=STARTUP_TIMEOUT)
            return await _stream_all(fake, chats)
        finally:
            process.terminate()
            with trio.move_on_after(15):
                await process.wait()
            process.kill()


def _chat_of(call: Any) -> int:
    return int(call.params["chat_id"])


def _delivered(fake: FakeBotApi) -> dict[int, float]:
    """When each chat's message was handed to the host (the getUpdates answer that carried it)."""
    handed: dict[int, float] = {}
    for call in fake.calls("getUpdates"):
        for update in call.response.get("result", ()):
            message: Mapping[str, Any] = update.get("message") or {}
            chat = message.get("chat", {}).get("id")
            if chat is not None:
                handed.setdefault(int(chat), call.at)
    return handed


async def _stream_all(fake: FakeBotApi, chats: int) -> dict[str, float]:
    private = [fake.private_chat(fake.user(f"User{i}")) for i in range(chats)]
    groups = [fake.group(f"Group{i}") for i in range(chats)]
    members = [fake.user(f"Member{i}") for i in range(chats)]
    for chat in private:
        fake.send_text(chat, "go")
    for chat, member in zip(groups, members, strict=True):
        fake.send_text(chat, f"{fake.mention} go", sender=member)
    answer = _answer_text()
    ids = {chat.id for chat in (*private, *groups)}

    def answered() -> set[int]:
        return {
            _chat_of(call)
            for call in fake.calls()
            if call.method in ("sendMessage", "editMessageText") and call.ok and call.params.get("text") == answer
        }

    timeout = DELTAS * STEP_MS / 1000.0 * 10 + 60
    await fake.wait_until(lambda: answered() >= ids, timeout=timeout)
    handed = _delivered(fake)
    previews = [
        call
        for call in fake.calls()
        if call.method in PREVIEWS and call.ok and _chat_of(call) in ids and call.params.get("text") != answer
    ]
    finals: dict[int, float] = {}
    for call in fake.calls():
        if call.method in ("sendMessage", "editMessageText") and call.ok and call.params.get("text") == answer:
            finals.setdefault(_chat_of(call), call.at)
    step = STEP_MS / 1000.0
    span = max(finals.values()) - min(handed.values())
    figures: dict[str, float] = {}
    for kind, chats_of_kind in (("private", {chat.id for chat in private}), ("group", {chat.id for chat in groups})):
        mine = [call for call in previews if _chat_of(call) in chats_of_kind]
        first: dict[int, float] = {}
        for call in mine:
            first.setdefault(_chat_of(call), call.at)
        first_ms = [(at - handed[chat] - step) * 1000.0 for chat, at in first.items()]
        figures[f"streaming.telegram.previews_per_s.{kind}"] = len(mine) / span
        figures[f"streaming.telegram.deltas_per_preview.{kind}"] = DELTAS * len(chats_of_kind) / max(len(mine), 1)
        figures[f"streaming.telegram.first_preview_p50_ms.{kind}"] = _percentile(first_ms, 0.5)
        figures[f"streaming.telegram.first_preview_p99_ms.{kind}"] = _percentile(first_ms, 0.99)
        figures[f"streaming.telegram.no_preview.{kind}"] = float(len(chats_of_kind) - len(first))
    answer_ms = [(at - handed[chat]) * 1000.0 for chat, at in finals.items()]
    edits = [call for call in previews if call.method == "editMessageText"]
    return {
        **figures,
        "streaming.telegram.edits_per_s": len(edits) / span,
        "streaming.telegram.answer_p50_ms": _percentile(answer_ms, 0.5),
        "streaming.telegram.answer_p99_ms": _percentile(answer_ms, 0.99),
        "streaming.telegram.too_many_requests": float(sum(1 for call in fake.calls() if call.status == 429)),
        "streaming.telegram.violations": float(fake.rate_limit_violations),
    }


def run(quick: bool) -> Metrics:
    """`MIN_RUNS` runs; medians with min-max."""
    chats = 25 if quick else 100
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        pin(0, LOAD_CPU)
        for number in range(1, MIN_RUNS + 1):
            with tempfile.TemporaryDirectory(prefix="bench-streaming-telegram-") as scratch:
                result = trio.run(_one_run, chats, Path(scratch))
            progress(
                f"  telegram streams run {number}/{MIN_RUNS}: "
                + "  ".join(f"{name.removeprefix('streaming.telegram.')} {value:.3g}" for name, value in result.items())
            )
            for name, value in result.items():
                samples[name].append(value)
    finally:
        if affinity is not None:
            os.sched_setaffinity(0, affinity)
    metrics = summarize(samples)
    metrics["streaming.telegram.load_average"] = psutil.getloadavg()[0]
    metrics.notes["streaming.telegram.shape"] = (
        f"{chats} private chats (drafts) + {chats} groups (preview message + edits), one turn each of {DELTAS} deltas "
        f"{STEP_MS:.0f} ms apart; limits 1 msg/s per chat, 20/min per group, {GLOBAL_RATE:g}/s global"
    )
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("streaming_telegram", run))
