"""Embed afactors in a trio program: host an async-generator agent, talk to it with the openai SDK, exit.

Run: python examples/embed.py [STATE_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator

import trio
from openai import AsyncOpenAI

import afactors
from afactors.model import Message
from afactors_responses import ResponsesChannel


async def shouting_agent(messages: list[Message]) -> AsyncIterator[str]:
    """Answers in capitals and says how many user turns it has seen."""
    turns = sum(1 for m in messages if m.role == "user")
    yield f"[turn {turns}] "
    for word in messages[-1].text.split():
        yield word.upper() + " "


async def main(state_dir: str) -> None:
    async with afactors.open_host(shouting_agent, channels=[ResponsesChannel()], state_dir=state_dir, port=0) as host:
        async with AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="unused", max_retries=0) as client:
            first = await client.responses.create(model="any", input="hello there")
            print(first.output_text.strip())
            second = await client.responses.create(model="any", input="and again", previous_response_id=first.id)
            print(second.output_text.strip())
            async with client.responses.stream(
                model="any", input="stream me", previous_response_id=second.id
            ) as stream:
                async for event in stream:
                    if event.type == "response.output_text.delta":
                        print(event.delta, end="", flush=True)
            print()


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="afactors-example-"))
