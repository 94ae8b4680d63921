"""The target the cluster process tests host: it notes each run in `$AFACTORS_TEST_RUNS` (one line: node, turn id),
sleeps `$AFACTORS_TEST_SLEEP` seconds when the input is "slow" (forever if "inf"), then answers "<node>: done"."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import trio

from afactors.model import TurnContext, Update


class Target:
    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        node = os.environ.get("AFACTORS_TEST_NODE", "?")
        runs = trio.Path(os.environ["AFACTORS_TEST_RUNS"])
        async with await runs.open("a") as file:
            await file.write(f"{node} {ctx.turn_id}\n")
        if ctx.messages[-1].text == "slow":
            await trio.sleep(float(os.environ.get("AFACTORS_TEST_SLEEP", "inf")))
        yield Update(delta=f"{node}: done")


target = Target()
