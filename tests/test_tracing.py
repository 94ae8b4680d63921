"""OpenTelemetry traces: a span per turn, continuing the caller's `traceparent` and passed on to model calls.

Real hosts on loopback with the SDK's `InMemorySpanExporter`; requests from the openai SDK and raw HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from quart import Response, request
from quart_trio import QuartTrio
from websockets.sync.client import connect

import afactors
from afactors.host import Host
from afactors.host._otel import conversation_hash
from afactors.host._server import serve_app, server_config
from afactors.model import ConversationKey, TurnContext, Update
from afactors.targets import OpenAIChatAgent, outgoing_headers
from afactors_a2a import A2AChannel
from afactors_agui import AguiChannel
from afactors_chat import ChatChannel
from afactors_invocations import InvocationsChannel
from afactors_mcp import McpChannel
from afactors_responses import ResponsesChannel

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
SECRET = "my secret message about the launch codes"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def serve(tmp_path: Path, exporter: InMemorySpanExporter) -> Any:
    """`async with serve(target, *channels, **host_kwargs) as (host, url):` with traces going to `exporter`."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @asynccontextmanager
    async def serving(target: object = None, *channels: Any, **kwargs: Any) -> AsyncIterator[tuple[Host, str]]:
        kwargs.setdefault("tracer_provider", provider)
        async with afactors.open_host(
            target, channels=channels or [ResponsesChannel()], state_dir=tmp_path / "s", port=0, durability="unsafe",
            **kwargs,
        ) as host:  # fmt: skip
            yield host, host.urls[0]

    return serving


def sdk(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0, timeout=20)


def spans(exporter: InMemorySpanExporter, name: str = "afactors.turn") -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def attribute_values(exporter: InMemorySpanExporter) -> str:
    """Every attribute value of every span, as one string to search."""
    return repr([dict(span.attributes or {}) for span in exporter.get_finished_spans()])


async def echo(messages: list[Any]) -> str:
    return f"you said: {messages[-1].text}"


async def test_a_responses_turn_is_one_span_continuing_the_callers_traceparent(serve, exporter) -> None:
    async with serve(echo) as (_, url), sdk(url) as client:
        made = await client.responses.create(
            model="m", input=SECRET, extra_headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
        )
    [turn] = spans(exporter)
    assert made.output_text == f"you said: {SECRET}"
    assert f"{turn.context.trace_id:032x}" == TRACE_ID
    assert turn.parent is not None and f"{turn.parent.span_id:016x}" == PARENT_ID and turn.parent.is_remote
    assert turn.context.trace_state.get("vendor") == "abc"
    assert turn.kind is SpanKind.CONSUMER
    attributes = dict(turn.attributes or {})
    assert attributes["afactors.channel"] == "responses"
    assert attributes["afactors.turn.id"] == made.id
    assert attributes["afactors.turn.kind"] == "turn"
    assert attributes["afactors.turn.status"] == "completed"
    assert attributes["afactors.turn.attempt"] == 1
    assert attributes["afactors.busy_policy"] == "enqueue"
    assert attributes["afactors.commit.duration_ms"] >= 0
    assert turn.status.status_code is StatusCode.UNSET
    [commit] = spans(exporter, "afactors.commit")
    assert commit.parent is not None and commit.parent.span_id == turn.context.span_id
    assert SECRET not in attribute_values(exporter)


async def test_the_conversation_is_a_hash_never_the_raw_id(serve, exporter) -> None:
    async with serve(echo) as (_, url), sdk(url) as client:
        conversation = await client.conversations.create()
        await client.responses.create(model="m", input=SECRET, conversation=conversation.id)
        await client.responses.create(model="m", input="again", conversation=conversation.id)
    first, second = spans(exporter)
    hashed = first.attributes["afactors.conversation.hash"]
    assert hashed == second.attributes["afactors.conversation.hash"]  # stable: one conversation, one pseudonym
    assert len(hashed) == 16 and conversation.id not in attribute_values(exporter)
    assert SECRET not in attribute_values(exporter)
    assert first.context.trace_id != second.context.trace_id  # no traceparent: each turn starts a trace
    assert first.parent is None


def test_the_conversation_hash_is_stable_and_separates_tenants() -> None:
    assert conversation_hash(ConversationKey("t", "c")) == conversation_hash(ConversationKey("t", "c"))
    assert conversation_hash(ConversationKey("t", "c")) != conversation_hash(ConversationKey("u", "c"))


async def words(messages: list[Any]) -> AsyncIterator[str]:
    for word in ("one ", "two ", "three"):
        yield word


async def test_a_streamed_turn_is_traced_like_any_other(serve, exporter) -> None:
    async with serve(words) as (_, url), sdk(url) as client:
        stream = await client.responses.create(
            model="m", input=SECRET, stream=True, extra_headers={"traceparent": TRACEPARENT}
        )
        kinds = [event.type async for event in stream]
    assert kinds[-1] == "response.completed"
    [turn] = spans(exporter)
    assert f"{turn.context.trace_id:032x}" == TRACE_ID
    assert turn.attributes["afactors.turn.status"] == "completed"


async def test_a_background_turn_continues_the_trace_of_the_request_that_queued_it(serve, exporter) -> None:
    async with serve(words) as (_, url), sdk(url) as client:
        queued = await client.responses.create(
            model="m", input="later", background=True, extra_headers={"traceparent": TRACEPARENT}
        )
        with trio.fail_after(10):
            while (await client.responses.retrieve(queued.id)).status != "completed":
                await trio.sleep(0.01)
    [turn] = spans(exporter)
    assert f"{turn.context.trace_id:032x}" == TRACE_ID and f"{turn.parent.span_id:016x}" == PARENT_ID
    assert turn.attributes["afactors.turn.id"] == queued.id


class Broken:
    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        raise RuntimeError(f"the model choked on {ctx.messages[-1].text}")
        yield Update()  # pragma: no cover


async def test_a_failed_turn_marks_each_attempt_an_error_without_its_message(serve, exporter) -> None:
    async with serve(Broken()) as (_, url):
        async with httpx.AsyncClient(base_url=url) as http:
            answer = await http.post(
                "/v1/responses", json={"model": "m", "input": SECRET}, headers={"traceparent": TRACEPARENT}
            )
    assert answer.json()["status"] == "failed"
    first, second = spans(exporter)  # the supervisor retries once
    assert [first.attributes["afactors.turn.attempt"], second.attributes["afactors.turn.attempt"]] == [1, 2]
    assert first.attributes["afactors.turn.status"] == "retrying"
    assert second.attributes["afactors.turn.status"] == "failed"
    assert second.attributes["afactors.turn.error_code"] == "agent_error"
    for span in (first, second):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "RuntimeError"
        assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert "choked" not in attribute_values(exporter) and SECRET not in attribute_values(exporter)
    assert all("choked" not in (span.status.description or "") for span in (first, second))
    assert not spans(exporter, "afactors.commit")


async def test_a_bad_traceparent_starts_a_new_trace(serve, exporter) -> None:
    async with serve(echo) as (_, url), httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(
            "/v1/responses", json={"model": "m", "input": "hi"}, headers={"traceparent": "00-not-a-trace-01"}
        )
    assert answer.status_code == 200
    [turn] = spans(exporter)
    assert turn.parent is None and f"{turn.context.trace_id:032x}" != TRACE_ID


def fake_model(headers: list[dict[str, str]]) -> QuartTrio:
    """An OpenAI-compatible chat-completions endpoint that answers "ok" and records each request's headers."""
    app = QuartTrio("fake-model")

    @app.post("/v1/chat/completions")
    async def completions() -> Response:
        headers.append({name.lower(): value for name, value in request.headers.items()})
        chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}}]}
        return Response(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n", mimetype="text/event-stream")

    return app


async def chat_turn_through_a_model(serve: Any, **host_kwargs: Any) -> tuple[str | None, dict[str, str]]:
    """A Chat Completions turn (with `TRACEPARENT`) hosted by `OpenAIChatAgent` on the fake model: the answer and
    the headers of the model call."""
    seen: list[dict[str, str]] = []
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        [model_url] = await nursery.start(serve_app, fake_model(seen), server_config("127.0.0.1", 0, 1.0), stop)
        agent = OpenAIChatAgent("m", base_url=model_url + "/v1", api_key="sk-up")
        async with serve(agent, ChatChannel(), **host_kwargs) as (_, url), sdk(url) as client:
            completion = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": SECRET}], extra_headers={"traceparent": TRACEPARENT}
            )
        stop.set()
    [call] = seen
    return completion.choices[0].message.content, call


async def test_the_model_call_of_a_chat_completions_turn_carries_the_turns_traceparent(serve, exporter) -> None:
    answer, call = await chat_turn_through_a_model(serve)
    assert answer == "ok"
    [turn] = spans(exporter)
    assert turn.attributes["afactors.channel"] == "chat"
    assert call["traceparent"] == f"00-{TRACE_ID}-{turn.context.span_id:016x}-01"
    assert SECRET not in attribute_values(exporter)


async def test_a_model_call_outside_a_traced_host_carries_no_traceparent(serve, exporter) -> None:
    answer, call = await chat_turn_through_a_model(serve, tracer_provider=None)
    assert answer == "ok" and "traceparent" not in call
    assert not exporter.get_finished_spans()


def traced_turn(exporter: InMemorySpanExporter, channel: str) -> ReadableSpan:
    """The one turn span, checked to continue `TRACEPARENT` and to name `channel`."""
    [turn] = spans(exporter)
    assert f"{turn.context.trace_id:032x}" == TRACE_ID and f"{turn.parent.span_id:016x}" == PARENT_ID
    assert turn.attributes["afactors.channel"] == channel
    return turn


async def test_an_invocations_turn_continues_the_callers_trace(serve, exporter) -> None:
    async with serve(echo, InvocationsChannel()) as (_, url), httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/invocations", json={"message": SECRET}, headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200
    traced_turn(exporter, "invocations")
    assert SECRET not in attribute_values(exporter)


def websocket_turn(url: str) -> dict[str, Any]:
    with connect(url, additional_headers={"traceparent": TRACEPARENT}, open_timeout=10) as socket:
        socket.send(orjson.dumps({"message": "hi"}).decode())
        while (frame := orjson.loads(socket.recv(timeout=10)))["type"] not in ("result", "error"):
            pass
    return frame


async def test_a_websocket_turn_continues_the_trace_of_the_upgrade_request(serve, exporter) -> None:
    async with serve(echo, InvocationsChannel()) as (_, url):
        frame = await trio.to_thread.run_sync(websocket_turn, url.replace("http://", "ws://") + "/invocations_ws")
    assert frame["type"] == "result"
    traced_turn(exporter, "invocations")


async def test_an_mcp_tool_call_continues_the_trace_of_its_post(serve, exporter) -> None:
    async with serve(echo, McpChannel()) as (_, url), httpx.AsyncClient(base_url=url, timeout=10) as http:
        headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"}

        async def rpc(method: str, params: dict[str, Any], **extra: str) -> httpx.Response:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            return await http.post("/mcp", json=body, headers={**headers, **extra})

        hello = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        headers["mcp-session-id"] = (await rpc("initialize", hello)).headers["mcp-session-id"]
        await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        call = {"name": "ask_agent", "arguments": {"prompt": SECRET}}
        called = await rpc("tools/call", call, traceparent=TRACEPARENT)
    assert f"you said: {SECRET}" in called.text
    traced_turn(exporter, "mcp")
    assert SECRET not in attribute_values(exporter)


async def test_an_agui_run_continues_the_callers_trace(serve, exporter) -> None:
    run = {
        "threadId": "thread-1", "runId": "run-1", "messages": [{"id": "m1", "role": "user", "content": SECRET}],
        "tools": [], "context": [], "forwardedProps": {}, "state": {},
    }  # fmt: skip
    async with serve(echo, AguiChannel()) as (_, url), httpx.AsyncClient(base_url=url, timeout=10) as http:
        answer = await http.post("/agui", json=run, headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 200 and "RUN_FINISHED" in answer.text
    traced_turn(exporter, "agui")
    assert SECRET not in attribute_values(exporter) and "thread-1" not in attribute_values(exporter)


async def test_an_a2a_task_continues_the_trace_of_the_message_that_started_it(serve, exporter) -> None:
    message = {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": SECRET}]}
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    async with serve(echo, A2AChannel()) as (_, url), httpx.AsyncClient(base_url=url, timeout=10) as http:
        answer = await http.post("/a2a", json=body, headers={"A2A-Version": "1.0", "traceparent": TRACEPARENT})
    assert answer.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    traced_turn(exporter, "a2a")
    assert SECRET not in attribute_values(exporter)


class Stuck:
    """Never answers (until its host shuts down)."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        await trio.sleep_forever()
        yield Update()  # pragma: no cover


async def test_a_turn_replayed_after_a_restart_continues_the_trace_of_its_request(serve, exporter) -> None:
    async with serve(Stuck(), drain_timeout=0.05) as (_, url), sdk(url) as client:
        queued = await client.responses.create(
            model="m", input="later", background=True, extra_headers={"traceparent": TRACEPARENT}
        )
        with trio.fail_after(10):
            while (await client.responses.retrieve(queued.id)).status != "in_progress":
                await trio.sleep(0.01)
    [cut] = spans(exporter)  # the shutdown cut it: uncommitted, its inbox row stays
    assert cut.attributes["afactors.turn.status"] == "cancelled"
    async with serve(echo) as (_, url), sdk(url) as client:
        with trio.fail_after(10):
            while (await client.responses.retrieve(queued.id)).status != "completed":
                await trio.sleep(0.01)
    cut, replayed = spans(exporter)
    assert replayed.attributes["afactors.turn.id"] == queued.id
    assert f"{replayed.context.trace_id:032x}" == TRACE_ID and f"{replayed.parent.span_id:016x}" == PARENT_ID


class Forwarding:
    """Keeps the headers a target would put on its own outgoing calls."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.headers.append(outgoing_headers())
        yield Update(delta="ok")


async def test_a_custom_target_gets_headers_continuing_its_turns_span_and_no_baggage(serve, exporter) -> None:
    target = Forwarding()
    async with serve(target) as (_, url), sdk(url) as client:
        await client.responses.create(
            model="m", input="hi", extra_headers={"traceparent": TRACEPARENT, "baggage": "user=alice"}
        )
    [turn] = spans(exporter)
    assert target.headers == [{"traceparent": f"00-{TRACE_ID}-{turn.context.span_id:016x}-01"}]
    assert outgoing_headers() == {}  # outside a turn
