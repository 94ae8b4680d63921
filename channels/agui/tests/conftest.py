"""Fixtures: a real host on loopback serving the AG-UI channel, request bodies built with the `ag_ui.core` models,
an SSE reader that validates every event with those models, and agents a test can steer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import ag_ui.core as agui
import attrs
import httpx
import orjson
import pytest
import trio
from pydantic import BaseModel, TypeAdapter

import afactors
from afactors.channel import TurnView
from afactors.model import FunctionCallPart, FunctionResultPart, ReasoningPart, TurnContext, Update, UsagePart
from afactors_agui import AguiChannel

AGUI_VERSION = version("ag-ui-protocol")
EVENTS: TypeAdapter[Any] = TypeAdapter(agui.Event)
NEWER_FIELDS = {"RUN_STARTED": {"protocolVersion"}}
"""Fields of AG-UI 1.0 that older installed models do not declare (then allowed as extras)."""


CANCELLED_OUTCOME = {"type": "cancelled"}
"""A 1.0 `RUN_FINISHED` outcome that 0.x models reject; test_protocol_versions validates it with the 1.0 models."""


def validate_event(event: dict[str, Any]) -> BaseModel:
    """`event` parsed by the installed `ag_ui.core` models; every key must be a field the model declares."""
    if AGUI_VERSION.startswith("0.") and event.get("outcome") == CANCELLED_OUTCOME:
        event = {key: value for key, value in event.items() if key != "outcome"}
    model = EVENTS.validate_python(event)
    declared = {field.alias or name for name, field in type(model).model_fields.items()}
    unknown = set(event) - declared - NEWER_FIELDS.get(event["type"], set())
    assert not unknown, f"{event['type']} has fields the AG-UI {AGUI_VERSION} models do not know: {unknown}"
    return model


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body: each frame exactly one `data:` line holding one JSON event, validated."""
    events = []
    for frame in text.split("\n\n"):
        if not frame:
            continue
        lines = frame.split("\n")
        assert len(lines) == 1 and lines[0].startswith("data: "), f"unexpected SSE frame {frame!r}"
        event = orjson.loads(lines[0].removeprefix("data: "))
        validate_event(event)
        events.append(event)
    return events


def user(text: str, message_id: str | None = None) -> agui.UserMessage:
    return agui.UserMessage(id=message_id or str(uuid.uuid4()), role="user", content=text)


def assistant(text: str | None = None, calls: Iterable[tuple[str, str, str]] = ()) -> agui.AssistantMessage:
    tool_calls = [
        agui.ToolCall(id=call_id, type="function", function=agui.FunctionCall(name=name, arguments=arguments))
        for call_id, name, arguments in calls
    ]
    return agui.AssistantMessage(id=str(uuid.uuid4()), role="assistant", content=text, tool_calls=tool_calls or None)


def run_input(thread_id: str, messages: Iterable[BaseModel], **fields: Any) -> dict[str, Any]:
    """A `RunAgentInput` built and serialised by the installed `ag_ui.core` model (camelCase, as clients send)."""
    fields.setdefault("tools", [])
    fields.setdefault("context", [])
    fields.setdefault("forwarded_props", {})
    model = agui.RunAgentInput(thread_id=thread_id, run_id=f"run-{uuid.uuid4()}", messages=list(messages), **fields)
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@attrs.frozen
class Run:
    """One finished POST: the response and its validated events."""

    response: httpx.Response
    events: list[dict[str, Any]]

    def of(self, *types: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] in types]

    @property
    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    @property
    def text(self) -> str:
        return "".join(event["delta"] for event in self.of("TEXT_MESSAGE_CONTENT"))


@attrs.frozen
class Served:
    """A running host's AG-UI endpoint."""

    host: afactors.Host
    url: str
    http: httpx.AsyncClient

    async def run(self, body: object, headers: dict[str, str] | None = None, path: str = "/agui") -> Run:
        response = await self.http.post(path, json=body, headers=headers)
        events = parse_sse(response.text) if response.headers.get("content-type") == "text/event-stream" else []
        return Run(response, events)

    def turns(self, run_id: str) -> list[TurnView]:
        """The stored turns a run made (the run id is kept in each turn's options)."""
        return [record for _, record in self.host.store.scan("responses") if record.data.get("run_id") == run_id]


Serve = Callable[..., AbstractAsyncContextManager[Served]]


async def stream_events(
    client: httpx.AsyncClient, body: dict[str, Any], event_type: str, seen: list[dict[str, Any]], arrived: trio.Event
) -> None:
    """POST a run, collecting its validated events into `seen` as they come; set `arrived` once an `event_type`
    event came (and at the end of the stream in any case)."""
    async with client.stream("POST", "/agui", json=body) as response:
        buffer = ""
        async for chunk in response.aiter_text():
            buffer += chunk
            *frames, buffer = buffer.split("\n\n")
            for frame in frames:
                seen.extend(parse_sse(frame + "\n\n"))
                if seen[-1]["type"] == event_type:
                    arrived.set()
    arrived.set()


@pytest.fixture
def serve(tmp_path: Path) -> Serve:
    """`async with serve(target, channel=..., **open_host_kwargs) as served:` a live host on 127.0.0.1."""
    runs = iter(range(1_000_000))

    @asynccontextmanager
    async def serving(
        target: object = None, channel: AguiChannel | None = None, **host_kwargs: Any
    ) -> AsyncIterator[Served]:
        host_kwargs.setdefault("durability", "unsafe")
        state_dir = tmp_path / f"state{next(runs)}"
        async with (
            afactors.open_host(
                target, channels=[channel or AguiChannel()], state_dir=state_dir, port=0, **host_kwargs
            ) as host,
            httpx.AsyncClient(base_url=host.urls[0], timeout=20) as http,
        ):
            yield Served(host, host.urls[0], http)

    return serving


class WeatherAgent:
    """A target with tools and state.

    It merges the client's state into the conversation's state and counts its runs there. "weather" makes it
    call its own `get_weather` tool (call, result, then text); "confirm" makes it call the front-end's `confirm`
    tool and stop, and a tool message answering that call is read back. Every turn reports usage.
    Before its weather tool call it reasons (a reasoning part).
    """

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.seen.append(ctx)
        if isinstance(client_state := ctx.options.get("client_state"), dict):
            ctx.state.update(client_state)
        ctx.state["runs"] = ctx.state.get("runs", 0) + 1
        last = ctx.messages[-1]
        results = [part for part in last.contents if isinstance(part, FunctionResultPart)]
        if results:
            yield Update(delta=f"The front-end answered {results[0].result}.")
        elif "weather" in last.text:
            call_id = f"call_{ctx.seq}"
            yield Update(part=ReasoningPart("The user wants the weather: call the tool."))
            yield Update(delta="Let me check. ")
            yield Update(part=FunctionCallPart(call_id, "get_weather", '{"city": "Paris"}'))
            yield Update(part=FunctionResultPart(call_id, "sunny"))
            yield Update(delta="It is sunny")
            yield Update(delta=" in Paris.")
        elif "confirm" in last.text:
            yield Update(part=FunctionCallPart(f"confirm_{ctx.seq}", "confirm", '{"question": "Go?"}'))
        else:
            yield Update(delta=f"Run {ctx.state['runs']}: {last.text}")
        yield Update(part=UsagePart(10, 5))


class GatedAgent:
    """Says "Turn N." at once, then waits for `release()` before echoing the last message.

    `entered` is set when a turn starts; `cut` when a running turn is cancelled.
    """

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.cut = trio.Event()
        self._gate = trio.Event()

    def release(self) -> None:
        self._gate.set()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.entered.set()
        yield Update(delta=f"Turn {ctx.seq}.")
        try:
            await self._gate.wait()
        except trio.Cancelled:
            self.cut.set()
            raise
        yield Update(delta=f" {ctx.messages[-1].text}")


@pytest.fixture
def weather() -> WeatherAgent:
    return WeatherAgent()


@pytest.fixture
def gated() -> GatedAgent:
    return GatedAgent()
