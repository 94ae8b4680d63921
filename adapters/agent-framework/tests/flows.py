"""Workflows for the tests (also a `--target` for the kill -9 test: `flows:approval`).

`approval`: draft -> review. The reviewer asks the user to approve the draft (a human-in-the-loop request) and
outputs the decision. With $AFX_FLOW_LOG set, every executor step appends a line to that file, and with
$AFX_FLOW_HANG set, the step after the approval writes "hanging" and waits forever (to be killed mid-turn).
"""

from __future__ import annotations

import asyncio
import os

from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler, response_handler


def note(line: str) -> None:
    if path := os.environ.get("AFX_FLOW_LOG"):
        with open(path, "a") as f:
            f.write(line + "\n")


class Draft(Executor):
    @handler
    async def start(self, text: str, ctx: WorkflowContext[str]) -> None:
        note(f"draft {text}")
        await ctx.send_message(f"draft of {text}")


class Review(Executor):
    @handler
    async def review(self, draft: str, ctx: WorkflowContext) -> None:
        note(f"review {draft}")
        await ctx.request_info(f"Approve '{draft}'? (yes/no)", bool)

    @response_handler
    async def decided(self, question: str, approved: bool, ctx: WorkflowContext[None, str]) -> None:
        note(f"decided {approved}")
        if os.environ.get("AFX_FLOW_HANG"):  # set and not empty
            note("hanging")
            await asyncio.Event().wait()
        await ctx.yield_output(("approved: " if approved else "rejected: ") + question.split("'")[1])


def approval_builder(**kwargs: object) -> WorkflowBuilder:
    draft, review = Draft(id="draft"), Review(id="review")
    return WorkflowBuilder(start_executor=draft, name="approval", **kwargs).add_edge(draft, review)  # type: ignore[arg-type]


approval = approval_builder()
