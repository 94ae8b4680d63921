"""Peer "g3": Microsoft's published hosting helpers on Starlette + uvicorn. Runs in bench/.peers/venv only.

A real `agent_framework.Agent` (its `InMemoryHistoryProvider` is injected by default) over an offline stub
chat client that answers `turn N` (N = user messages it is given), wrapped by the helpers the way their
README's route does it: `responses_to_run` -> `AgentState.get_or_create_session` -> `Agent.run` ->
`AgentState.set_session` -> `responses_from_run`; with `"stream": true`, `Agent.run(..., stream=True)` through
`responses_from_streaming_run` into a `StreamingResponse`, the session stored once the stream has ended (the stub
then streams `--deltas` text deltas `--interval-ms` apart; 0: yielding to the loop between them, as fast as it
can). `previous_response_id` continues from an immutable
snapshot; `conversation` continues a mutable head, which the helpers leave unserialised ("the app must
serialize writers"), exactly as published. No request option is passed through (the README's allowlist,
left empty).

    bench/.peers/venv/bin/python bench/peers/g3_server.py --port 8000 [--delay-ms 10] [--deltas N --interval-ms 20]
(with the repo root on PYTHONPATH, for `bench.common`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from agent_framework import (
    Agent,
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
)
from agent_framework.observability import ChatTelemetryLayer
from agent_framework_hosting import AgentState
from agent_framework_hosting_responses import (
    create_response_id,
    responses_from_run,
    responses_from_streaming_run,
    responses_session_id,
    responses_to_run,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.common import turn_text


class StubChatClient(  # type: ignore[misc]
    FunctionInvocationLayer, ChatMiddlewareLayer, ChatTelemetryLayer, BaseChatClient
):
    """An offline chat client composed like the published ones; replies `turn N` after `delay` seconds, or streams
    `deltas` text deltas `interval` seconds apart."""

    def __init__(self, delay: float = 0.0, deltas: int = 0, interval: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.deltas = deltas
        self.interval = interval

    def _inner_get_response(  # type: ignore[override]
        self, *, messages: Sequence[Message], stream: bool, options: Any, **kwargs: Any
    ) -> Any:
        """A coroutine of the whole reply, or (`stream`) the framework's `ResponseStream` of deltas."""
        if stream:
            return self._build_response_stream(self._deltas())
        return self._reply(sum(1 for message in messages if message.role == "user"))

    async def _reply(self, turns: int) -> ChatResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        return ChatResponse(messages=[Message(role="assistant", contents=[turn_text(turns)])])

    async def _deltas(self) -> AsyncIterator[ChatResponseUpdate]:
        for i in range(self.deltas):
            await asyncio.sleep(self.interval)
            yield ChatResponseUpdate(contents=[Content.from_text(text=f"d{i} ")], role="assistant")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status_code=status)


def create_app(delay: float, deltas: int = 0, interval: float = 0.0) -> Starlette:
    """POST /v1/responses, written as the helpers' README writes it."""
    state = AgentState(Agent(client=StubChatClient(delay, deltas, interval), name="bench"))

    async def responses(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        try:
            run = responses_to_run(body)
            session_id, is_conversation_id = responses_session_id(body)
        except (TypeError, ValueError) as exc:
            return _error(400, str(exc))
        response_id = create_response_id()
        session = await state.get_or_create_session(session_id or response_id)
        target = await state.get_target()
        conversation_id = session_id if is_conversation_id else None
        if run.get("stream"):

            async def events() -> AsyncIterator[str]:
                stream = target.run(run["messages"], session=session, options={}, stream=True)
                async for event in responses_from_streaming_run(
                    stream, response_id=response_id, conversation_id=conversation_id
                ):
                    yield event
                await state.set_session(session_id if is_conversation_id else response_id, session)

            return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        result = await target.run(run["messages"], session=session, options={})
        # As published: no lock; two writers of one conversation race and the last one wins.
        await state.set_session(session_id if is_conversation_id else response_id, session)
        return JSONResponse(responses_from_run(result, response_id=response_id, conversation_id=conversation_id))

    return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"])])


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: serve on uvicorn (h11, asyncio loop, one worker) until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="how long the stub model thinks")
    parser.add_argument("--deltas", type=int, default=10_000, help="text deltas a streamed reply has")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause before each streamed delta")
    args = parser.parse_args(argv)
    app = create_app(args.delay_ms / 1000.0, args.deltas, args.interval_ms / 1000.0)
    uvicorn.run(app, host=args.host, port=args.port, loop="asyncio", http="h11", log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
