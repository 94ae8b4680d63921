"""`counting`: the deterministic target the cluster tests and benchmarks host (`--target
afactors.cluster.testing:counting`), which makes order, duplicates and the node that ran each turn visible."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import trio

from afactors.model import TurnContext, Update

NODE_ENV = "AFACTORS_TEST_NODE"
"""The environment variable naming the node a `counting` target runs in (the harness sets it per node)."""

DELAY_ENV = "AFACTORS_TEST_TURN_MS"
"""Milliseconds each `counting` turn takes (default 0): long enough and some turns are in flight at any fault."""


def reply_text(seq: int, node: str) -> str:
    """What `counting` answers to the input `seq` when it runs on `node`."""
    return f"seq {seq} node {node}"


def parse_reply(text: str) -> tuple[int, str] | None:
    """(seq, node) of a `reply_text`, or None for any other text."""
    words = text.split(" ")
    if len(words) != 4 or words[0] != "seq" or words[2] != "node" or not words[1].isdigit():
        return None
    return int(words[1]), words[3]


class CountingTarget:
    """Each input is a per-conversation sequence number (as text). A turn appends `[seq, node, started]` to the
    conversation's `state["seen"]`, which commits with the turn, and answers `reply_text(seq, node)`; any other
    input is answered "not a number" and leaves the state alone.

    `node` is `$AFACTORS_TEST_NODE`; `started` the wall-clock time the turn began (one machine, one clock: a later
    entry that began earlier than the one before it was committed late, by a node that no longer owned the
    conversation)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        started = time.time()
        text = ctx.messages[-1].text.strip() if ctx.messages else ""
        if not text.isdigit():
            yield Update(delta="not a number")
            return
        node = os.environ.get(NODE_ENV, "")
        if self.delay:
            await trio.sleep(self.delay)
        ctx.state.setdefault("seen", []).append([int(text), node, started])
        yield Update(delta=reply_text(int(text), node))


counting = CountingTarget(float(os.environ.get(DELAY_ENV, "0")) / 1000.0)
"""The instance `--target afactors.cluster.testing:counting` loads."""
