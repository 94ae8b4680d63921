"""A deterministic agent for the MCP tests, driven by the prompt text.

- contains `fail`: raises (the turn fails; the tool result is `isError: true`);
- `hold`: streams "holding" and then waits until the turn is cancelled;
- `delay <seconds>`: waits that long, then answers like the default;
- anything else: streams `turn <n>: <prompt>` word by word, `n` counting the user messages so far (so a
  continued conversation is visible in the answer).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio

from afactors.model import TurnContext, Update


class ScriptedAgent:
    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        prompt = ctx.messages[-1].text
        if "fail" in prompt:
            raise RuntimeError("asked to fail")
        if prompt.startswith("hold"):
            yield Update(delta="holding")
            await trio.sleep_forever()
        if prompt.startswith("delay "):
            await trio.sleep(float(prompt.split()[1]))
        turn = sum(1 for message in ctx.messages if message.role == "user")
        yield Update(delta=f"turn {turn}:")
        for word in prompt.split():
            yield Update(delta=f" {word}")


agent = ScriptedAgent()
