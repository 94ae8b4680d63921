"""Host a Microsoft Agent Framework agent with a tool, offline: its tools run inside each afactors turn.

The agent is a real `agent_framework.Agent`; its chat client is `ScriptedChatClient`, a deterministic offline
stand-in for a model (swap in `OpenAIChatClient(...)` or any other Agent Framework client for a real one).

Run the demo:      python examples/agent_framework_agent.py [STATE_DIR]
Serve it instead:  python -m afactors --target agent_framework_agent:agent   (with examples/ on PYTHONPATH)
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Sequence

import trio
from agent_framework import Agent, Message, tool
from openai import AsyncOpenAI

import afactors
from afactors_agent_framework.testing import Call, ScriptedChatClient, Step
from afactors_responses import ResponsesChannel


@tool
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


def model(messages: Sequence[Message]) -> Step:
    """A pretend model: asks for `add` when the user gives two numbers, then states the tool's result."""
    last = messages[-1]
    if last.role == "tool":
        return Step(text=f"The sum is {last.contents[0].result}.", input_tokens=20, output_tokens=5)
    numbers = re.findall(r"-?\d+", last.text)
    if len(numbers) >= 2:
        arguments = f'{{"a": {numbers[0]}, "b": {numbers[1]}}}'
        return Step(reasoning="Two numbers: use the add tool.", calls=(Call("add", arguments, "call_1"),),
                    input_tokens=12, output_tokens=8)  # fmt: skip
    turns = sum(1 for m in messages if m.role == "user")
    return Step(text=f"Give me two numbers to add (this is turn {turns}).", input_tokens=10, output_tokens=9)


agent = Agent(client=ScriptedChatClient(model), tools=[add], name="calculator", instructions="Add numbers.")


async def main(state_dir: str) -> None:
    async with (
        afactors.open_host(agent, channels=[ResponsesChannel()], state_dir=state_dir, port=0) as host,
        AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="unused", max_retries=0) as client,
    ):
        first = await client.responses.create(model="any", input="hello")
        print(first.output_text)
        question = "what is 2 + 3?"
        async with client.responses.stream(model="any", input=question, previous_response_id=first.id) as stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    print(event.delta, end="", flush=True)
            final = await stream.get_final_response()
        print()
        for item in final.output:
            if item.type == "function_call":
                print(f"tool call: {item.name}({item.arguments})")
        if final.usage is not None:
            print(f"usage: {final.usage.input_tokens} in, {final.usage.output_tokens} out")


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
