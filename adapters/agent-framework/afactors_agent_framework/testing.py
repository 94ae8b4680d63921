"""`ScriptedChatClient`: a deterministic, offline Agent Framework chat client for tests and examples.

It implements Agent Framework's chat-client protocol (`BaseChatClient._inner_get_response`, streaming and not)
with the framework's own function-invocation, middleware and telemetry layers, so an `Agent` built on it runs
its tools exactly as it would over a real model. What it answers is decided by a plain function of the
conversation, `script(messages) -> Step`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import attrs
from agent_framework import (
    BaseChatClient,
    ChatMiddlewareLayer,
    ChatResponse,
    ChatResponseUpdate,
    Content,
    FunctionInvocationLayer,
    Message,
)
from agent_framework.observability import ChatTelemetryLayer


@attrs.frozen
class Call:
    """A tool call the model asks for."""

    name: str
    arguments: str
    call_id: str


@attrs.frozen
class Step:
    """One model answer: optional reasoning, tool calls or text, and its token usage."""

    text: str = ""
    reasoning: str = ""
    calls: tuple[Call, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    fail: str | None = None  # raise RuntimeError(fail) instead of answering
    block: bool = False  # wait until cancelled (to test cancellation)


Script = Callable[[Sequence[Message]], Step]


def echo_script(messages: Sequence[Message]) -> Step:
    """Answers "echo: <last user text>" with a little reasoning and usage."""
    last = next((m.text for m in reversed(messages) if m.role == "user"), "")
    return Step(text=f"echo: {last}", reasoning="the user wants an echo", input_tokens=len(messages), output_tokens=2)


class ScriptedChatClient(FunctionInvocationLayer, ChatMiddlewareLayer, ChatTelemetryLayer, BaseChatClient):  # type: ignore[misc]
    """A chat client whose answers come from `script`; streams text word by word (`word_delay` apart).

    `calls` counts model calls and `seen` keeps the messages each call was given.

    `started` and `cancelled` are set (on the asyncio side) when a blocking step starts and is cancelled.
    """

    OTEL_PROVIDER_NAME = "afactors-scripted"

    def __init__(self, script: Script = echo_script, *, word_delay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.word_delay = word_delay
        self.calls = 0
        self.seen: list[list[Message]] = []
        self.started = False
        self.cancelled = False

    async def _step(self, messages: Sequence[Message]) -> Step:
        self.calls += 1
        self.seen.append(list(messages))
        step = self.script(messages)
        if step.block:
            self.started = True
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        if step.fail is not None:
            raise RuntimeError(step.fail)
        return step

    def _inner_get_response(
        self, *, messages: Sequence[Message], stream: bool, options: Mapping[str, Any], **kwargs: Any
    ) -> Any:
        if stream:
            return self._build_response_stream(self._stream(messages))
        return self._respond(messages)

    async def _respond(self, messages: Sequence[Message]) -> ChatResponse:
        step = await self._step(messages)
        return ChatResponse(messages=[Message("assistant", _contents(step, (step.text,)))], response_id="scripted")

    async def _stream(self, messages: Sequence[Message]) -> AsyncIterator[ChatResponseUpdate]:
        step = await self._step(messages)
        words = step.text.split(" ") if step.text else []
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for content in _contents(step, ()):
            yield ChatResponseUpdate(role="assistant", contents=[content], message_id="m1")
        for piece in pieces:
            await asyncio.sleep(self.word_delay)
            yield ChatResponseUpdate(role="assistant", contents=[Content.from_text(piece)], message_id="m1")


def _contents(step: Step, texts: Sequence[str]) -> list[Content]:
    contents: list[Content] = []
    if step.reasoning:
        contents.append(Content.from_text_reasoning(text=step.reasoning))
    contents.extend(Content.from_function_call(c.call_id, c.name, arguments=c.arguments) for c in step.calls)
    contents.extend(Content.from_text(t) for t in texts if t)
    if step.input_tokens or step.output_tokens:
        contents.append(
            Content.from_usage(
                {
                    "input_token_count": step.input_tokens,
                    "output_token_count": step.output_tokens,
                    "total_token_count": step.input_tokens + step.output_tokens,
                }
            )
        )
    return contents
