"""Targets the benchmarks host with `python -m afactors --target bench.targets:<name>`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence

import trio

from bench.common import turn_text

SLOW_ECHO_SECONDS = 0.01
"""How long `slow_echo` pretends to think: enough for concurrent turns of one conversation to overlap."""


def _role(message: object) -> object:
    role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
    return getattr(role, "value", role)  # an Enum role compares by its value


def _user_turns(messages: Sequence[object]) -> int:
    return sum(1 for message in messages if _role(message) == "user")


async def echo(messages: Sequence[object]) -> str:
    """Reply `turn N`, N being the number of user messages the conversation holds (this one included)."""
    return turn_text(_user_turns(messages))


async def slow_echo(messages: Sequence[object]) -> str:
    """`echo` after a short sleep, like a model call: lets concurrent turns of one conversation race."""
    await trio.sleep(SLOW_ECHO_SECONDS)
    return turn_text(_user_turns(messages))


def _stream_shape() -> tuple[int, float]:
    """(deltas, seconds between them) for `stream`, from BENCH_STREAM_DELTAS / BENCH_STREAM_INTERVAL_MS."""
    return int(os.environ.get("BENCH_STREAM_DELTAS", "10000")), float(os.environ.get("BENCH_STREAM_INTERVAL_MS", "0"))


async def stream(messages: Sequence[object]) -> AsyncIterator[str]:
    """Small text deltas (`BENCH_STREAM_DELTAS`, default 10,000), each after `BENCH_STREAM_INTERVAL_MS` (a model's
    pace), or with 0 (the default) as fast as the target can: with a checkpoint between deltas, as any real
    producer has (a target that never yields to the loop cannot be streamed by anyone)."""
    deltas, interval_ms = _stream_shape()
    for i in range(deltas):
        if interval_ms:
            await trio.sleep(interval_ms / 1000.0)
        else:
            await trio.lowlevel.checkpoint()
        yield f"d{i} "


async def stall(messages: Sequence[object]) -> str:
    """Never answers: turns pile up in the conversations' inboxes (the recovery benchmark kills the host then)."""
    await trio.sleep_forever()
    raise AssertionError("unreachable")
