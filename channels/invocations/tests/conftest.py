"""Fixtures: a real host on loopback serving the Invocations channel, and agents tests can hold mid-turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import afactors
from afactors.model import TurnContext, Update
from afactors_invocations import InvocationsChannel

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """`async with serve(target=..., channel=..., **open_host_kwargs) as client:` an httpx client on a live host."""
    runs = iter(range(1_000_000))

    @asynccontextmanager
    async def serving(
        target: object = None, channel: InvocationsChannel | None = None, **host_kwargs: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        async with (
            afactors.open_host(
                target,
                channels=[channel or InvocationsChannel()],
                state_dir=tmp_path / f"state{next(runs)}",
                port=0,
                durability="unsafe",
                **host_kwargs,
            ) as host,
            httpx.AsyncClient(base_url=host.urls[0], timeout=10) as client,
        ):
            yield client

    return serving


class GatedAgent:
    """Answers "Turn N. <text>" but only once `release()` is called; `entered` is set when a turn starts."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self._gate = trio.Event()

    def release(self) -> None:
        self._gate.set()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.entered.set()
        yield Update(delta=f"Turn {ctx.seq}.")
        await self._gate.wait()
        yield Update(delta=f" {ctx.messages[-1].text}")


@pytest.fixture
def gated() -> GatedAgent:
    return GatedAgent()
