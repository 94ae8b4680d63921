"""`WorkflowAgent`: an Agent Framework `Workflow` (or `WorkflowBuilder`) hosted as an afactors `Agent`.

Each turn runs the workflow with the turn's input; its output events stream back as the reply. Checkpoints go to
the conversation's own records (`ConversationCheckpoints`), committed with the turn. When the workflow asks for
input (a `request_info` event) the turn ends with the request shown to the user; the conversation's next message
answers it, and the workflow resumes from the checkpoint the paused turn committed.

A turn of kind "timer" starts the workflow with `timer_message(ctx.timer)` as its input; while the workflow waits
for an answer, a timer turn shows the pending request again (a timer is not an answer). The timer tools
(`afactors_agent_framework.timers`) of agents inside the workflow act on the running turn.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import orjson
import trio
from agent_framework import AgentResponse, AgentResponseUpdate, Workflow, WorkflowBuilder
from agent_framework import Message as AFMessage

from afactors.model import TurnContext, Update
from afactors.targets import TargetError
from afactors_agent_framework.bridge import AsyncioThread, BridgedTarget
from afactors_agent_framework.checkpoints import ConversationCheckpoints
from afactors_agent_framework.codec import UpdateMapper, to_af_messages
from afactors_agent_framework.timers import timer_message, turn_timers

WORKFLOW_STATE_KEY = "agent_framework.workflow"
"""Where a paused workflow's checkpoint id and open requests live in the conversation's state."""


class WorkflowFailed(RuntimeError):
    """The workflow reported a failure (its `failed` event) instead of raising."""


def _own_storage(target: Workflow | WorkflowBuilder) -> object | None:
    if isinstance(target, WorkflowBuilder):
        return getattr(target, "_checkpoint_storage", None)
    context = getattr(getattr(target, "_runner", None), "context", None)
    has = getattr(context, "has_checkpointing", None)
    return context if callable(has) and has() else None


def _prompt(data: Any) -> str:
    if isinstance(data, str):
        return data
    for name in ("prompt", "message", "question", "text"):
        value = getattr(data, name, None)
        if isinstance(value, str):
            return value
    return str(data)


def _answer(text: str, response_type: Any) -> Any:
    """The user's reply as the type the workflow asked for; ValueError when it cannot be read as that."""
    if response_type in (None, str, Any, object):
        return text
    if response_type is bool:
        lowered = text.strip().lower()
        if lowered in ("yes", "y", "true", "ok", "approve", "approved"):
            return True
        if lowered in ("no", "n", "false", "reject", "rejected"):
            return False
        raise ValueError("answer yes or no")
    if response_type in (int, float):
        return response_type(text.strip())
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"answer with a JSON object for {getattr(response_type, '__name__', response_type)}") from exc
    return response_type(**value) if isinstance(value, dict) else response_type(value)


class WorkflowAgent(BridgedTarget):
    """Hosts an Agent Framework workflow; enter it (`async with`, the host does) to start its asyncio loop thread.

    A `WorkflowBuilder` is built afresh for every turn, so conversations run in parallel and share nothing in
    memory. A `Workflow` instance allows one run at a time, so its turns run one after another (host-wide) and
    it keeps whatever shared state its executors hold between runs. A workflow that has its own checkpoint
    storage is refused: afactors keeps checkpoints per conversation in its store.
    """

    def __init__(self, target: Workflow | WorkflowBuilder, *, bridge: AsyncioThread | None = None) -> None:
        if _own_storage(target) is not None:
            raise TargetError(
                "this workflow has its own checkpoint storage; afactors keeps checkpoints per conversation in its "
                "store (committed with each turn), so build it without checkpoint_storage"
            )
        super().__init__(target, bridge)
        self.target = target
        self._lock = trio.Lock() if isinstance(target, Workflow) else None
        self._pristine: Any = None  # a shared instance's state before its first run, restored before fresh runs

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if self._lock is None:
            async for update in self._turn(ctx, self.target.build()):  # type: ignore[union-attr]
                yield update
            return
        async with self._lock:
            async for update in self._turn(ctx, self.target):  # type: ignore[arg-type]
                yield update

    async def _turn(self, ctx: TurnContext, workflow: Workflow) -> AsyncIterator[Update]:
        storage = ConversationCheckpoints(ctx.records)
        paused = ctx.state.get(WORKFLOW_STATE_KEY) or {}
        requests: dict[str, dict[str, Any]] = dict(paused.get("requests") or {})
        text = ctx.messages[-1].text if ctx.messages else ""
        start: Callable[[], Any]
        fresh = not requests
        if requests and ctx.timer is not None:  # a timer is no answer: the workflow still waits for the user's
            yield Update(delta=next(iter(requests.values()))["prompt"])
            return
        if requests:
            request_id = next(iter(requests))
            try:
                answer = _answer(text, _pending_type(requests[request_id]))
            except (ValueError, TypeError) as exc:
                yield Update(delta=f"{requests[request_id]['prompt']}\n(I could not use that answer: {exc})")
                return
            del requests[request_id]

            def start() -> Any:
                return workflow.run(
                    responses={request_id: answer},
                    checkpoint_id=paused["checkpoint_id"],
                    checkpoint_storage=storage,
                    stream=True,
                )
        else:
            message = _input_value(workflow, ctx)

            def start() -> Any:
                return workflow.run(message, checkpoint_storage=storage, stream=True)

        token = trio.lowlevel.current_trio_token()

        async def events() -> AsyncGenerator[Any, None]:
            if self._lock is not None and fresh:
                await self._reset(workflow)
            with turn_timers(ctx, token):  # the timer tools of its agents act on this turn
                async for event in start():
                    yield event

        mapper = UpdateMapper()
        async with aclosing(self.bridge.stream(events)) as stream:
            async for event in stream:
                for update in self._event_updates(event, mapper, requests):
                    yield update
        for update in mapper.close():
            yield update
        if requests:
            ctx.state[WORKFLOW_STATE_KEY] = {"checkpoint_id": storage.latest_id(), "requests": requests}
        else:
            ctx.state.pop(WORKFLOW_STATE_KEY, None)
        storage.prune()

    @staticmethod
    def _event_updates(event: Any, mapper: UpdateMapper, requests: dict[str, dict[str, Any]]) -> list[Update]:
        """What one workflow event shows the user: outputs, and requests (noted in `requests`); raises on failure."""
        kind = event.type
        if kind == "output":
            return _output_updates(event.data, mapper)
        if kind == "request_info":
            prompt = _prompt(event.data)
            requests[event.request_id] = {
                "prompt": prompt,
                "response_type": getattr(event.response_type, "__name__", "str"),
            }
            return [*mapper.close(), Update(delta=prompt)]
        if kind in ("failed", "error"):
            details = getattr(event, "details", None) or getattr(event, "data", None)
            raise WorkflowFailed(f"the workflow failed: {getattr(details, 'message', details)}")
        return []

    async def _reset(self, workflow: Workflow) -> None:
        """A shared instance starts each fresh run from its state before its first run, so no conversation
        inherits another's pending requests or shared state (runs on the asyncio loop, under the lock)."""
        runner = workflow._runner  # Agent Framework has no public reset; its runner checkpoints are the way
        if self._pristine is None:
            self._pristine = await runner.build_checkpoint()
        else:
            await runner.restore_checkpoint(self._pristine)


def _pending_type(request: dict[str, Any]) -> Any:
    """The response type a stored request wants (by name: str, bool, int, float; anything else reads as text)."""
    return {"str": str, "bool": bool, "int": int, "float": float}.get(request.get("response_type", "str"), str)


def _input_value(workflow: Workflow, ctx: TurnContext) -> Any:
    """The turn's input in the shape the workflow's start executor takes: text, or Agent Framework messages (for a
    timer turn, `timer_message` of the timer that fired)."""
    types = workflow.input_types
    fired = None if ctx.timer is None else timer_message(ctx.timer)
    if any(t is str for t in types) or not ctx.messages:
        return fired if fired is not None else ctx.messages[-1].text if ctx.messages else ""
    af = [AFMessage("user", [fired])] if fired is not None else to_af_messages(ctx.messages[-1:])
    if any(t is AFMessage for t in types):
        return af[0]
    return af


def _output_updates(data: Any, mapper: UpdateMapper) -> list[Update]:
    if isinstance(data, str):
        return [*mapper.close(), Update(delta=data)]
    if isinstance(data, AgentResponseUpdate):
        return mapper.add(data.contents)
    if isinstance(data, AgentResponse):
        return [u for m in data.messages if m.role != "user" for u in mapper.add(m.contents)]
    if isinstance(data, AFMessage):
        return mapper.add(data.contents)
    if isinstance(data, list) and all(isinstance(m, AFMessage) for m in data):
        return [u for m in data if m.role != "user" for u in mapper.add(m.contents)]
    return [*mapper.close(), Update(delta=orjson.dumps(data, default=str).decode())]
