"""Targets the benchmarks host with `python -m afactors --target bench.targets:<name>`."""

from __future__ import annotations

from collections.abc import Sequence

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
