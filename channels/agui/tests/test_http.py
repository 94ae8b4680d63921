"""The AG-UI channel black-box: real HTTP on loopback against `open_host`, every event validated with `ag_ui.core`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
import trio

from afactors.channel import HookRejected, installed_plugins
from afactors.model import Envelope, FunctionCallPart, Message, TurnContext, Update
from afactors.testing import disk_full
from afactors_agui import AguiChannel

from .conftest import GatedAgent, Serve, WeatherAgent, assistant, parse_sse, run_input, stream_events, user

# ---------------------------------------------------------------- runs and threads


async def test_a_run_streams_a_text_message_between_run_started_and_run_finished(serve: Serve) -> None:
    async with serve() as served:
        body = run_input("t1", [user("hello")])
        run = await served.run(body)
    assert run.response.status_code == 200
    assert run.response.headers["content-type"] == "text/event-stream"
    assert run.response.headers["cache-control"] == "no-cache"
    assert run.types[0] == "RUN_STARTED" and run.types[-1] == "RUN_FINISHED"
    assert run.types[1] == "TEXT_MESSAGE_START" and run.types[-2] == "TEXT_MESSAGE_END"
    assert set(run.types[2:-2]) == {"TEXT_MESSAGE_CONTENT"}
    started, finished = run.events[0], run.events[-1]
    assert (started["threadId"], started["runId"]) == (finished["threadId"], finished["runId"]) == ("t1", body["runId"])
    assert started["protocolVersion"] == "1.0"
    message_ids = {e["messageId"] for e in run.of("TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END")}
    assert len(message_ids) == 1
    assert run.of("TEXT_MESSAGE_START")[0]["role"] == "assistant"
    assert run.text == "Turn 1. You said: hello"
    assert "STATE_SNAPSHOT" not in run.types  # the demo agent keeps no state


async def test_a_thread_is_one_conversation_and_resent_history_is_not_input_again(serve: Serve) -> None:
    async with serve() as served:
        first = await served.run(run_input("t1", [user("remember that the sky is green")]))
        history = [user("remember that the sky is green", "u1"), assistant(first.text)]
        second = await served.run(run_input("t1", [*history, user("what do you remember?")]))
        other = await served.run(run_input("t2", [user("what do you remember?")]))
    assert second.text == "Turn 2. I remember: the sky is green."  # the re-sent history did not count twice
    assert other.text == "Turn 1. I don't remember anything yet."


async def test_tenants_with_the_same_thread_id_are_isolated(serve: Serve) -> None:
    async with serve(api_keys=["key-a", "key-b"]) as served:
        await served.run(run_input("t1", [user("remember that A was here")]), {"Authorization": "Bearer key-a"})
        b = await served.run(run_input("t1", [user("what do you remember?")]), {"Authorization": "Bearer key-b"})
        a = await served.run(run_input("t1", [user("what do you remember?")]), {"Authorization": "Bearer key-a"})
    assert b.text == "Turn 1. I don't remember anything yet."
    assert a.text == "Turn 2. I remember: A was here."


async def test_a_run_with_nothing_new_reports_the_state_and_runs_no_turn(serve: Serve, weather: WeatherAgent) -> None:
    async with serve(weather) as served:
        await served.run(run_input("t1", [user("hi")], state={"theme": "dark"}))
        empty = await served.run(run_input("t1", []))
        answered = await served.run(run_input("t1", [user("hi"), assistant("Run 1: hi")]))
    assert len(weather.seen) == 1
    for run in (empty, answered):
        assert run.types == ["RUN_STARTED", "STATE_SNAPSHOT", "RUN_FINISHED"]
        assert run.of("STATE_SNAPSHOT")[0]["snapshot"] == {"theme": "dark", "runs": 1}


# ---------------------------------------------------------------- tools, state, usage


async def test_tool_calls_results_state_and_usage(serve: Serve, weather: WeatherAgent) -> None:
    async with serve(weather) as served:
        run = await served.run(run_input("t1", [user("what is the weather?")], state={"city": "Paris"}))
    assert run.types == [
        "RUN_STARTED",
        "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_END",
        "REASONING_END",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "STATE_SNAPSHOT",
        "RUN_FINISHED",
    ]  # fmt: skip
    first, second = (e["messageId"] for e in run.of("TEXT_MESSAGE_START"))
    start, args, end = run.of("TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END")
    assert start == {
        "type": "TOOL_CALL_START",
        "toolCallId": "call_1",
        "toolCallName": "get_weather",
        "parentMessageId": first,
    }
    assert orjson.loads(args["delta"]) == {"city": "Paris"} and end["toolCallId"] == "call_1"
    result = run.of("TOOL_CALL_RESULT")[0]
    assert (result["toolCallId"], result["content"], result["role"]) == ("call_1", "sunny", "tool")
    reasoning = run.of("REASONING_MESSAGE_CONTENT")[0]
    assert reasoning["delta"] == "The user wants the weather: call the tool."
    assert len({first, second, result["messageId"], reasoning["messageId"]}) == 4
    assert run.text == "Let me check. It is sunny in Paris."
    assert run.of("STATE_SNAPSHOT")[0]["snapshot"] == {"city": "Paris", "runs": 1}
    assert run.events[-1]["usage"] == [{"inputTokens": 10, "outputTokens": 5, "totalTokens": 15}]


async def test_the_state_snapshot_is_the_committed_conversation_state(serve: Serve, weather: WeatherAgent) -> None:
    async with serve(weather) as served:
        await served.run(run_input("t1", [user("hi")], state={"city": "Paris"}))
        second = await served.run(run_input("t1", [user("hi again")]))  # no state sent: the thread keeps its own
        other = await served.run(run_input("t2", [user("hi")]))
    assert second.of("STATE_SNAPSHOT")[0]["snapshot"] == {"city": "Paris", "runs": 2}
    assert other.of("STATE_SNAPSHOT")[0]["snapshot"] == {"runs": 1}


async def test_a_front_end_tool_call_is_answered_by_the_next_run(serve: Serve, weather: WeatherAgent) -> None:
    tools = [{"name": "confirm", "description": "Ask the user", "parameters": {"type": "object"}}]
    async with serve(weather) as served:
        asking = await served.run(run_input("t1", [user("please confirm")], tools=tools))
        call = asking.of("TOOL_CALL_START")[0]
        history = [
            user("please confirm"),
            assistant(calls=[(call["toolCallId"], "confirm", '{"question": "Go?"}')]),
            {"id": "m3", "role": "tool", "toolCallId": call["toolCallId"], "content": "yes"},
        ]
        answered = await served.run(run_input("t1", history, tools=tools))
    assert call["toolCallName"] == "confirm" and "TOOL_CALL_RESULT" not in asking.types
    assert answered.text == "The front-end answered yes."
    assert weather.seen[0].options["tools"] == [
        {"type": "function", "name": "confirm", "description": "Ask the user", "parameters": {"type": "object"}}
    ]
    new_input = weather.seen[1].messages[-1:]  # the tool message was the only new input
    assert [m.role for m in new_input] == ["tool"]
    assert [m.role for m in weather.seen[1].messages] == ["user", "assistant", "tool"]


async def test_context_forwarded_props_and_ids_reach_the_target(serve: Serve, weather: WeatherAgent) -> None:
    async with serve(weather) as served:
        body = run_input(
            "t1",
            [user("hi")],
            context=[{"description": "page", "value": "/home"}],
            forwarded_props={"mode": "x"},
            parent_run_id="parent-1",
        )
        run = await served.run(body)
        turns = served.turns(body["runId"])
    options = weather.seen[0].options
    assert options["context"] == [{"description": "page", "value": "/home"}]
    assert options["forwarded_props"] == {"mode": "x"}
    assert (options["thread_id"], options["run_id"], options["parent_run_id"]) == ("t1", body["runId"], "parent-1")
    assert run.events[0]["parentRunId"] == "parent-1"
    assert [turn.status for turn in turns] == ["completed"]


# ---------------------------------------------------------------- serialised runs, busy policies, disconnects


async def test_concurrent_runs_on_one_thread_are_serialised(serve: Serve, gated: GatedAgent) -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    async with serve(gated) as served, trio.open_nursery() as nursery:
        first_started, second_started = trio.Event(), trio.Event()
        nursery.start_soon(stream_events, served.http, run_input("t1", [user("one")]), "TEXT_MESSAGE_CONTENT",
                           first, first_started)  # fmt: skip
        with trio.fail_after(5):
            await first_started.wait()
        nursery.start_soon(stream_events, served.http, run_input("t1", [user("two")]), "RUN_STARTED",
                           second, second_started)  # fmt: skip
        with trio.fail_after(5):
            await second_started.wait()
        assert [e["type"] for e in second] == ["RUN_STARTED"]  # queued behind the first run: no content yet
        gated.release()
    texts = ["".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT") for events in (first, second)]
    assert texts == ["Turn 1. one", "Turn 2. two"]
    assert first[-1]["type"] == second[-1]["type"] == "RUN_FINISHED"


async def test_reject_policy_refuses_a_second_run_before_streaming(serve: Serve, gated: GatedAgent) -> None:
    seen: list[dict[str, Any]] = []
    async with serve(gated, channel=AguiChannel(busy_policy="reject")) as served, trio.open_nursery() as nursery:
        started = trio.Event()
        nursery.start_soon(stream_events, served.http, run_input("t1", [user("one")]), "TEXT_MESSAGE_CONTENT",
                           seen, started)  # fmt: skip
        with trio.fail_after(5):
            await started.wait()
        refused = await served.run(run_input("t1", [user("two")]))
        gated.release()
        elsewhere = await served.run(run_input("t2", [user("two")]))
    assert refused.response.status_code == 409
    assert refused.response.json()["error"]["code"] == "thread_busy"
    assert elsewhere.response.status_code == 200


@pytest.mark.parametrize(("protocol_version", "ending"), [(None, "RUN_ERROR"), ("1.0", "RUN_FINISHED")])
async def test_an_interrupted_run_ends_by_the_clients_protocol_version(
    serve: Serve, gated: GatedAgent, protocol_version: str | None, ending: str
) -> None:
    seen: list[dict[str, Any]] = []
    extra = {} if protocol_version is None else {"protocolVersion": protocol_version}
    async with serve(gated, channel=AguiChannel(busy_policy="interrupt")) as served, trio.open_nursery() as nursery:
        started = trio.Event()
        body = {**run_input("t1", [user("one")]), **extra}
        nursery.start_soon(stream_events, served.http, body, "TEXT_MESSAGE_CONTENT", seen, started)
        with trio.fail_after(5):
            await started.wait()
        newer: list[dict[str, Any]] = []
        nursery.start_soon(stream_events, served.http, run_input("t1", [user("two")]), "", newer, trio.Event())
        with trio.fail_after(5):
            await gated.cut.wait()
        gated.release()
    newer_text = "".join(e["delta"] for e in newer if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert newer_text == "Turn 1. two"  # nothing of the cut run was committed
    assert seen[-2]["type"] == "TEXT_MESSAGE_END" and seen[-1]["type"] == ending
    if ending == "RUN_ERROR":
        assert seen[-1]["code"] == "interrupted"
    else:
        assert seen[-1]["outcome"] == {"type": "cancelled"}


async def test_a_client_that_goes_away_cancels_its_run(serve: Serve, gated: GatedAgent) -> None:
    async with serve(gated) as served:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(served.http.post, "/agui", json=run_input("t1", [user("one")])))
            with trio.fail_after(5):
                await gated.entered.wait()
            nursery.cancel_scope.cancel()  # the client closes its connection mid-stream
        with trio.fail_after(5):
            await gated.cut.wait()  # the running turn was cancelled
        gated.release()
        after = await served.run(run_input("t1", [user("two")]))
    assert after.text == "Turn 1. two"  # nothing of the cut run was committed


@pytest.mark.parametrize("finishes_in_time", [True, False])
async def test_at_shutdown_a_run_gets_the_drain_timeout(
    serve: Serve, gated: GatedAgent, finishes_in_time: bool
) -> None:
    seen: list[dict[str, Any]] = []
    failure: list[Exception] = []

    async def read(http: httpx.AsyncClient, started: trio.Event) -> None:
        try:
            await stream_events(http, run_input("t1", [user("one")]), "TEXT_MESSAGE_CONTENT", seen, started)
        except httpx.RemoteProtocolError as exc:
            failure.append(exc)

    async with (
        httpx.AsyncClient(timeout=20) as http,
        trio.open_nursery() as nursery,
        serve(gated, drain_timeout=0.5) as served,
    ):
        http.base_url = httpx.URL(served.url)
        started = trio.Event()
        nursery.start_soon(read, http, started)
        with trio.fail_after(5):
            await started.wait()
        if finishes_in_time:
            nursery.start_soon(_release_when, served.host.shutting_down, gated)
    if finishes_in_time:
        assert [e["type"] for e in seen][-2:] == ["TEXT_MESSAGE_END", "RUN_FINISHED"] and not failure
        assert not gated.cut.is_set()
    else:  # cut off: no closing event, and the turn was cancelled uncommitted
        assert seen[-1]["type"] == "TEXT_MESSAGE_CONTENT" and failure
        assert gated.cut.is_set()


async def _release_when(event: trio.Event, gated: GatedAgent) -> None:
    await event.wait()
    gated.release()


async def torrent(messages: list[Message]) -> AsyncIterator[str]:
    for n in range(3000):  # never yields to the scheduler: overflows the turn's stream buffer
        yield f"w{n} "


async def test_a_reader_that_fell_behind_still_gets_the_whole_text(serve: Serve) -> None:
    async with serve(torrent) as served:
        run = await served.run(run_input("t1", [user("go")]))
    assert run.text == "".join(f"w{n} " for n in range(3000))
    assert run.types[-1] == "RUN_FINISHED"
    assert len(run.of("TEXT_MESSAGE_START")) == len(run.of("TEXT_MESSAGE_END")) == 1


# ---------------------------------------------------------------- failures


async def failing(messages: list[Message]) -> str:
    raise ValueError("secret database password in the exception text")


class FlakyAgent:
    """Streams a partial answer and fails on the first attempt of each turn; the retry answers in full."""

    def __init__(self) -> None:
        self.attempts = 0

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.attempts += 1
        if self.attempts == 1:
            yield Update(delta="Partial")
            raise RuntimeError("first attempt fails")
        yield Update(delta="Partial answer, complete.")
        yield Update(part=FunctionCallPart("c1", "lookup", "{}"))


async def test_an_agent_failure_ends_the_stream_with_a_generic_run_error(serve: Serve) -> None:
    async with serve(failing) as served:
        run = await served.run(run_input("t1", [user("hi")]))
    assert run.response.status_code == 200
    assert run.types == ["RUN_STARTED", "RUN_ERROR"]
    error = run.events[-1]
    assert error["code"] == "agent_error"
    assert "secret" not in run.response.text and "Traceback" not in run.response.text


async def test_a_retried_turn_shows_the_answer_the_retry_gave(serve: Serve) -> None:
    async with serve(FlakyAgent()) as served:
        run = await served.run(run_input("t1", [user("hi")]))
    assert run.types[-1] == "RUN_FINISHED"
    messages: dict[str, str] = {}
    for event in run.of("TEXT_MESSAGE_CONTENT"):
        messages[event["messageId"]] = messages.get(event["messageId"], "") + event["delta"]
    assert list(messages.values())[-1] == "Partial answer, complete."
    assert [e["toolCallName"] for e in run.of("TOOL_CALL_START")] == ["lookup"]


# ---------------------------------------------------------------- bad input (4xx before the stream starts)

GOOD = {"threadId": "t1", "runId": "r1", "messages": [{"id": "m1", "role": "user", "content": "hi"}]}


def _with(**fields: Any) -> dict[str, Any]:
    return {**GOOD, **fields}


def _without(name: str) -> dict[str, Any]:
    return {key: value for key, value in GOOD.items() if key != name}


BAD_BODIES: list[tuple[str, object, str]] = [
    ("body is an array", [GOOD], "JSON object"),
    ("no threadId", _without("threadId"), "'threadId' must be a string, got null"),
    ("empty threadId", _with(threadId=""), "'threadId' must be 1 to 256 characters"),
    ("long threadId", _with(threadId="t" * 257), "'threadId' must be 1 to 256"),
    ("control characters in threadId", _with(threadId="a\nb"), "control characters"),
    ("numeric runId", _with(runId=7), "'runId' must be a string, got a number"),
    ("no messages", _without("messages"), "missing 'messages'"),
    ("messages an object", _with(messages={}), "'messages' must be an array"),
    ("message not an object", _with(messages=["hi"]), "'messages[0]' must be an object, got a string"),
    ("unknown role", _with(messages=[{"id": "m", "role": "robot", "content": "x"}]), "'messages[0].role' must be"),
    ("user content a number", _with(messages=[{"id": "m", "role": "user", "content": 5}]), "'messages[0].content'"),
    ("system without content", _with(messages=[{"id": "m", "role": "system"}]), "'messages[0].content' must be"),
    ("tool without toolCallId", _with(messages=[{"id": "m", "role": "tool", "content": "x"}]), "toolCallId"),
    ("bad tool call", _with(messages=[{"id": "m", "role": "assistant", "toolCalls": [{"id": "c"}]}]),
     "'messages[0].toolCalls[0].function' must be an object"),
    ("unknown part", _with(messages=[{"id": "m", "role": "user", "content": [{"type": "hologram"}]}]),
     "'messages[0].content[0].type' must be one of"),
    ("bad base64", _with(messages=[{"id": "m", "role": "user", "content": [
        {"type": "image", "source": {"type": "data", "value": "%%%", "mimeType": "image/png"}}]}]), "must be base64"),
    ("binary without source", _with(messages=[{"id": "m", "role": "user", "content": [
        {"type": "binary", "mimeType": "image/png"}]}]), "needs one of 'data', 'url' or 'id'"),
    ("tools an object", _with(tools={}), "'tools' must be an array"),
    ("tool without name", _with(tools=[{"description": "x"}]), "'tools[0].name' must be a string"),
    ("duplicate tools", _with(tools=[{"name": "a", "description": ""}, {"name": "a", "description": ""}]),
     "two tools named 'a'"),
    ("tool parameters a string", _with(tools=[{"name": "a", "description": "", "parameters": "x"}]),
     "'tools[0].parameters' must be a JSON Schema object"),
    ("context item without value", _with(context=[{"description": "d"}]), "'context[0].value' must be a string"),
    ("resume", _with(resume=[{"interruptId": "i", "status": "resolved"}]), "never interrupts"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "message"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
async def test_bad_run_input_is_a_400_before_any_event(serve: Serve, case: str, body: object, message: str) -> None:
    async with serve() as served:
        response = await served.http.post("/agui", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and message in error["message"]


async def test_bad_requests_of_every_other_kind(serve: Serve) -> None:
    async with serve(api_keys=["key"]) as served:
        auth = {"Authorization": "Bearer key"}
        as_json, as_text = {**auth, "content-type": "application/json"}, {**auth, "content-type": "text/plain"}
        bad_json = await served.http.post("/agui", content=b"{nope", headers=as_json)
        text = await served.http.post("/agui", content=orjson.dumps(GOOD), headers=as_text)
        json_only = await served.http.post("/agui", json=GOOD, headers={**auth, "accept": "application/json"})
        get = await served.http.get("/agui", headers=auth)
        no_key = await served.http.post("/agui", json=GOOD)
        wrong_key = await served.http.post("/agui", json=GOOD, headers={"Authorization": "Bearer nope"})
        sse_ok = await served.http.post("/agui", json=GOOD, headers={**auth, "accept": "text/event-stream"})
    expected = [
        (bad_json, 400, "invalid_json"), (text, 415, "unsupported_media_type"), (json_only, 406, "not_acceptable"),
        (get, 405, "method_not_allowed"), (no_key, 401, "unauthorized"), (wrong_key, 401, "unauthorized"),
    ]  # fmt: skip
    for response, status, code in expected:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
        assert response.headers["content-type"] == "application/json"
    assert get.headers["allow"] == "POST"
    assert sse_ok.status_code == 200 and parse_sse(sse_ok.text)[-1]["type"] == "RUN_FINISHED"


async def test_an_oversized_body_is_a_413(serve: Serve) -> None:
    async with serve() as served:
        host, port = served.url.removeprefix("http://").split(":")
        head = (
            f"POST /agui HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {17 << 20}\r\n\r\n"
        ).encode()
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(head + b'{"threadId": "' + b"x" * 65536)  # the server answers before the rest
            received = b""
            with trio.fail_after(10):
                while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
                    chunk = await stream.receive_some()
                    assert chunk, received
                    received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.split()[1] == b"413"
    assert orjson.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_entity_too_large"


async def test_a_run_hook_refusal_is_its_4xx(serve: Serve) -> None:
    def refuse_long(envelope: Envelope) -> Envelope:
        if len(envelope.input[-1].text) > 5:
            raise HookRejected("message too long for this agent", status=422, code="too_long")
        return envelope

    async with serve(channel=AguiChannel(run_hook=refuse_long)) as served:
        refused = await served.run(run_input("t1", [user("far too long")]))
        fine = await served.run(run_input("t1", [user("hi")]))
    assert refused.response.status_code == 422
    assert refused.response.json() == {"error": {"code": "too_long", "message": "message too long for this agent"}}
    assert fine.text == "Turn 1. You said: hi"


# ---------------------------------------------------------------- plugin and path


async def test_the_path_is_configurable(serve: Serve) -> None:
    async with serve(channel=AguiChannel(path="/api/copilot")) as served:
        run = await served.run(run_input("t1", [user("hi")]), path="/api/copilot")
        default = await served.http.post("/agui", json=GOOD)
    assert run.text == "Turn 1. You said: hi"
    assert default.status_code == 404


def test_the_plugin_is_installed_and_reads_its_flags() -> None:
    import argparse

    plugin = installed_plugins()["agui"]
    parser = argparse.ArgumentParser()
    plugin.add_arguments(parser)
    channel = plugin.create(parser.parse_args(["--agui-path", "/x", "--agui-busy-policy", "reject"]))
    assert isinstance(channel, AguiChannel)
    assert (channel.path, channel.busy_policy) == ("/x", "reject")
    assert plugin.create(parser.parse_args([])) == AguiChannel()
    with pytest.raises(ValueError, match="plain URL path"):
        AguiChannel(path="agui")


async def test_a_full_disk_is_a_507_with_retry_after_before_any_event(serve: Serve) -> None:
    async with serve() as served:
        disk_full(served.host.store)
        full = await served.run(run_input("t", [user("hi")]))
        disk_full(served.host.store, False)
        after = await served.run(run_input("t", [user("hi")]))
    assert full.response.status_code == 507 and full.response.headers["retry-after"] == "30"
    assert full.response.json()["error"]["code"] == "insufficient_storage" and full.events == []
    assert after.events[-1]["type"] == "RUN_FINISHED"
