"""Host a Microsoft Agent Framework workflow with a human in the loop; checkpoints live in afactors' store.

Each message runs the workflow: a writer drafts a headline, an editor asks the user to approve it. That request
ends the turn (the user sees the question on whatever channel they use); the next message on the conversation
answers it and the workflow resumes from the checkpoint the paused turn committed, even after a restart.

Run the demo:      python examples/workflow.py [STATE_DIR]
Serve it instead:  python -m afactors --target workflow:newsroom   (with examples/ on PYTHONPATH)
"""

from __future__ import annotations

import sys
import tempfile

import trio
from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler, response_handler
from openai import AsyncOpenAI

import afactors
from afactors_responses import ResponsesChannel


class Writer(Executor):
    @handler
    async def draft(self, topic: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(f"BREAKING: {topic.strip().rstrip('.').upper()}")


class Editor(Executor):
    @handler
    async def review(self, headline: str, ctx: WorkflowContext) -> None:
        await ctx.request_info(f"Publish the headline {headline!r}? (yes/no)", bool)

    @response_handler
    async def decide(self, question: str, publish: bool, ctx: WorkflowContext[None, str]) -> None:
        headline = question.split("'")[1]
        await ctx.yield_output(f"Published: {headline}" if publish else f"Spiked: {headline}")


def newsroom_builder() -> WorkflowBuilder:
    writer, editor = Writer(id="writer"), Editor(id="editor")
    return WorkflowBuilder(start_executor=writer, name="newsroom").add_edge(writer, editor)


newsroom = newsroom_builder()
"""The target: a builder, so every turn runs a fresh workflow (conversations share nothing in memory)."""


async def main(state_dir: str) -> None:
    async with (
        afactors.open_host(newsroom, channels=[ResponsesChannel()], state_dir=state_dir, port=0) as host,
        AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key="unused", max_retries=0) as client,
    ):
        for text in ("cats learn to fly", "maybe", "yes"):
            reply = await client.responses.create(model="any", input=text, conversation="desk-1")
            print(f"> {text}\n{reply.output_text}")


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
