"""A target for the browser tests: the demo agent, except that a message containing "hold" waits for a file.

`python -m afactors --target gated_target:agent` with this folder on PYTHONPATH; the gate file is
`$AFACTORS_TEST_GATE`. Waiting for the file lets a test see a later turn queued behind this one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from afactors.model import TurnContext, Update
from afactors.targets import DemoAgent

_demo = DemoAgent()


class GatedAgent:
    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if "hold" in (ctx.messages[-1].text if ctx.messages else ""):
            gate = Path(os.environ["AFACTORS_TEST_GATE"])
            with trio.fail_after(30):
                while not gate.exists():
                    await trio.sleep(0.02)
        async for update in _demo.run(ctx):
            yield update


agent = GatedAgent()
