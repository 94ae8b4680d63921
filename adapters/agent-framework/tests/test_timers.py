"""Timer tools: a real Agent Framework agent (`OpenAIChatCompletionClient` against a fake OpenAI-compatible model
on loopback) schedules, lists and cancels timers by tool calls in a Telegram chat; the timer fires as a turn of
kind "timer" whose reply arrives in the chat; a turn that fails after its tool call schedules nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import openai
import orjson
import pytest
import trio
from agent_framework import Agent
from agent_framework.openai import OpenAIChatCompletionClient
from quart import Response, request
from quart_trio import QuartTrio

from afactors.host._server import serve_app, server_config
from afactors_agent_framework import AgentFrameworkAgent, timer_tools
from afactors_agent_framework.timers import schedule_timer
from afactors_telegram.testing import FakeBotApi

from .conftest import ServeResponses, ServeTelegram

T = TypeVar("T")

Answer = dict[str, Any]  # {"text": ...} or {"call": (name, arguments)} or {"fail": status}


def model(bodies: list[dict[str, Any]]) -> QuartTrio:
    """A fake chat-completions model: what it answers depends on the last message it is sent (see `answer`)."""
    app = QuartTrio("fake-model")

    @app.post("/v1/chat/completions")
    async def completions() -> Response:
        body = await request.get_json()
        bodies.append(body)
        reply = answer(body["messages"])
        if "fail" in reply:
            return Response(orjson.dumps({"error": {"message": "the model is down"}}), status=reply["fail"])
        base = {"id": f"chatcmpl-{len(bodies)}", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        if "call" in reply:
            name, arguments = reply["call"]
            call = {"index": 0, "id": f"call_{len(bodies)}", "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}  # fmt: skip
            chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]  # fmt: skip
        else:
            chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": reply["text"]}}]},
                      {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]  # fmt: skip

        async def events() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield b"data: " + orjson.dumps({**base, **chunk}) + b"\n\n"
            yield b"data: [DONE]\n\n"

        return Response(events(), mimetype="text/event-stream")

    return app


def answer(messages: list[dict[str, Any]]) -> Answer:
    last = messages[-1]
    if last["role"] == "tool":
        if "then fail" in next(m["content"] for m in reversed(messages) if m["role"] == "user"):
            return {"fail": 500}
        return {"text": "tool said " + last["content"]}
    text = last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
    if text.startswith("[timer]"):
        note = orjson.loads(text[text.index("{") : text.rindex("}") + 1])["payload"]["note"]
        return {"text": f"Time to {note}!"}
    if text.startswith("remind"):  # "remind <seconds> <note>" (or "... then fail")
        _, seconds, note = text.split(" ", 2)
        return {"call": ("schedule_timer", {"after_seconds": float(seconds), "note": note, "id": "r1"})}
    if text == "daily":
        return {"call": ("schedule_timer", {"cron": "0 9 * * *", "timezone": "Mars/Olympus", "id": "d"})}
    if text.startswith("at "):
        return {"call": ("schedule_timer", {"at": text.split()[1], "id": "a1", "note": "new year"})}
    if text == "list":
        return {"call": ("list_timers", {})}
    if text.startswith("cancel"):
        return {"call": ("cancel_timer", {"id": text.split()[1]})}
    return {"text": "?"}


@asynccontextmanager
async def serving(serve: Callable[[object], AbstractAsyncContextManager[T]]) -> AsyncIterator[tuple[T, list[Any]]]:
    """The fake model on loopback, and a host serving (`serve`: a fixture's) an agent with the timer tools that
    uses it through Agent Framework's OpenAI client; yields what `serve` gives and the request bodies the model got."""
    bodies: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        urls = await nursery.start(serve_app, model(bodies), server_config("127.0.0.1", 0, 1.0), stop)
        sdk = openai.AsyncOpenAI(base_url=urls[0] + "/v1", api_key="sk-test", max_retries=0)
        client = OpenAIChatCompletionClient(model="m", async_client=sdk)
        target = AgentFrameworkAgent(Agent(client=client, tools=timer_tools(), name="reminder"))
        async with serve(target) as served:
            yield served, bodies
            await target.bridge.call(sdk.close)  # on the agent's loop, while it runs: no connection left open
        stop.set()


def tool_result(text: str) -> Any:
    """The tool's result the fake model echoed back ("tool said <result>")."""
    return orjson.loads(text.removeprefix("tool said "))


async def test_an_agent_schedules_a_reminder_by_tool_call_and_it_arrives_as_a_timer_turn(
    fake: FakeBotApi, serve_telegram: ServeTelegram
) -> None:
    alice = fake.user("Alice")
    async with serving(serve_telegram) as (host, bodies):
        fake.send_text(alice, "remind 0.5 stretch")
        with trio.fail_after(15):
            [confirmation, reminder] = await fake.wait_for_messages(alice, 2)
        assert tool_result(confirmation["text"])["scheduled"]["payload"] == {"note": "stretch"}
        assert reminder["text"] == "Time to stretch!"
        assert host.timers.count() == 0  # a one-shot timer is gone once fired
    timer_turn = bodies[-1]["messages"]
    assert [m["role"] for m in timer_turn][:4] == ["user", "assistant", "tool", "assistant"]  # the history
    assert timer_turn[-1]["content"].startswith("[timer] A timer you scheduled is due now")


async def test_list_cancel_and_bad_input_answer_the_model(serve_responses: ServeResponses) -> None:
    async with serving(serve_responses) as ((host, sdk), _):
        results = []
        for text in ["remind 3600 water", "list", "cancel r1", "cancel r1", "daily", "at tomorrow",
                     "at 2999-01-01T09:00:00+01:00", "cancel a1"]:  # fmt: skip
            response = await sdk.responses.create(model="m", input=text, conversation="c1")
            results.append(tool_result(response.output_text))
        assert host.timers.count() == 0
    [listed] = results[1]["timers"]
    assert (listed["id"], listed["payload"]) == ("r1", {"note": "water"})
    assert results[2] == {"cancelled": "r1"}
    assert results[3] == {"error": "there is no pending timer 'r1'"}
    assert "Mars/Olympus" in results[4]["error"]
    assert results[5] == {"error": "at 'tomorrow' is not an ISO 8601 date and time with a UTC offset"}
    assert results[6]["scheduled"]["due"] == "2999-01-01T08:00:00+00:00" and results[7] == {"cancelled": "a1"}


async def test_a_turn_that_fails_after_its_tool_call_schedules_nothing(
    fake: FakeBotApi, serve_telegram: ServeTelegram
) -> None:
    alice = fake.user("Alice")
    async with serving(serve_telegram) as (host, bodies):
        fake.send_text(alice, "remind 3600 then fail")
        with trio.fail_after(15):
            await fake.wait_for_messages(alice, 1)  # the channel's error message
        assert [m["role"] for m in bodies[-1]["messages"]][-1] == "tool"  # the tool ran, then the model failed
        assert host.timers.count() == 0


async def test_the_tools_refuse_to_run_outside_a_turn() -> None:
    with pytest.raises(RuntimeError, match="only inside a turn hosted by afactors"):
        await schedule_timer(after_seconds=1)
