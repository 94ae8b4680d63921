"""Agent Framework agents as targets, through real channels: tools inside a turn, streaming, history, failures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest
import trio
from agent_framework import Agent, ContextProvider, HistoryProvider, InMemoryHistoryProvider
from agent_framework import Message as AFMessage

from afactors.targets import TargetError, as_agent
from afactors_agent_framework import AgentFrameworkAgent
from afactors_agent_framework.testing import ScriptedChatClient, Step

from .conftest import ServeResponses, adding_agent, eventually


async def test_tools_run_inside_the_turn_and_stream_through_responses_sse(serve_responses: ServeResponses) -> None:
    agent, client = adding_agent()
    async with serve_responses(agent) as (_, sdk):
        stream = await sdk.responses.create(model="m", input="add 2 and 3", stream=True)
        events = [event async for event in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "the sum is 5"
    final = events[-1].response
    assert final.status == "completed"
    kinds = [item.type for item in final.output]
    assert kinds == ["message", "reasoning", "function_call"]
    call = final.output[2]
    assert (call.name, call.call_id, call.arguments) == ("add", "call_1", '{"a": 2, "b": 3}')
    assert final.output[1].summary[0].text == "I should add"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 6)  # both model calls of the turn
    assert client.calls == 2  # the model was asked again with the tool's result: the tool ran in the turn


async def test_the_next_turn_gets_the_whole_history_back_in_agent_framework_shape(
    serve_responses: ServeResponses,
) -> None:
    agent, client = adding_agent()
    async with serve_responses(agent) as (_, sdk):
        first = await sdk.responses.create(model="m", input="add 2 and 3")
        await sdk.responses.create(model="m", input="thanks", previous_response_id=first.id)
    seen = client.seen[2]  # the first model call of the second turn
    shape = [(m.role, [c.type for c in m.contents]) for m in seen]
    assert shape == [
        ("user", ["text"]),
        ("assistant", ["text_reasoning", "function_call"]),
        ("tool", ["function_result"]),
        ("assistant", ["text"]),
        ("user", ["text"]),
    ]
    assert seen[2].contents[0].result == "5" and seen[3].text == "the sum is 5"


class Spy(ContextProvider):
    """A context provider that notes what conversation it sees before each run."""

    def __init__(self) -> None:
        super().__init__("spy")
        self.seen: list[list[str]] = []

    async def before_run(self, *, agent: Any, session: Any, context: Any, state: dict[str, Any]) -> None:
        self.seen.append([m.text for m in context.get_messages()] + [m.text for m in context.input_messages])
        state["runs"] = state.get("runs", 0) + 1


class Mirror(HistoryProvider):
    """The user's own store, in Agent Framework's shape: it only stores (load_messages=False)."""

    def __init__(self) -> None:
        super().__init__("audit", load_messages=False)
        self.saved: dict[str | None, list[AFMessage]] = {}

    async def get_messages(self, session_id: str | None, *, state: Any = None, **kwargs: Any) -> list[AFMessage]:
        return list(self.saved.get(session_id, []))

    async def save_messages(
        self, session_id: str | None, messages: Sequence[AFMessage], *, state: Any = None, **kwargs: Any
    ) -> None:
        self.saved.setdefault(session_id, []).extend(messages)


async def test_context_providers_see_the_conversation_and_a_mirror_gets_every_turn(
    serve_responses: ServeResponses,
) -> None:
    spy, mirror = Spy(), Mirror()
    agent = Agent(client=ScriptedChatClient(), context_providers=[spy, mirror])
    async with serve_responses(agent) as (host, sdk):
        await sdk.responses.create(model="m", input="one", conversation="chat-1")
        await sdk.responses.create(model="m", input="two", conversation="chat-1")
        [(path, snapshot)] = host.store.scan("snapshots")
    assert spy.seen == [["one"], ["one", "echo: one", "two"]]
    [(session_id, saved)] = mirror.saved.items()
    assert [(m.role, m.text) for m in saved] == [
        ("user", "one"),
        ("assistant", "echo: one"),
        ("user", "two"),
        ("assistant", "echo: two"),
    ]
    assert session_id == path  # the Agent Framework session id is the conversation's
    assert snapshot.state["agent_framework.session"]["state"]["spy"] == {"runs": 2}  # provider state kept per turn


def test_an_agent_whose_history_provider_loads_history_is_refused_at_startup() -> None:
    agent = Agent(client=ScriptedChatClient(), context_providers=[InMemoryHistoryProvider()])
    with pytest.raises(TargetError, match="load_messages=False"):
        as_agent(agent)


def test_agent_framework_agents_are_detected_by_protocol_not_by_a_run_attribute() -> None:
    agent, _ = adding_agent()
    assert isinstance(as_agent(agent), AgentFrameworkAgent)

    class RunOnly:
        async def run(self, messages: object = None, **kwargs: object) -> str:
            return "x"

    with pytest.raises(TargetError, match="an Agent Framework agent"):
        as_agent(RunOnly())


async def test_a_failing_agent_fails_the_turn_with_its_error(serve_responses: ServeResponses) -> None:
    agent = Agent(client=ScriptedChatClient(lambda messages: Step(fail="the model is down")))
    async with serve_responses(agent) as (_, sdk):
        stream = await sdk.responses.create(model="m", input="hi", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    assert "the model is down" in events[-1].response.error.message


async def test_a_client_that_disconnects_cancels_the_agent_run(serve_responses: ServeResponses) -> None:
    client = ScriptedChatClient(lambda messages: Step(block=True))
    async with serve_responses(Agent(client=client)) as (host, _):
        host_name, port = host.urls[0].removeprefix("http://").split(":")
        body = orjson.dumps({"model": "m", "input": "wait", "stream": True})
        head = (
            f"POST /v1/responses HTTP/1.1\r\nHost: {host_name}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with await trio.open_tcp_stream(host_name, int(port)) as stream:
            await stream.send_all(head + body)
            await eventually(lambda: client.started)  # the model call is running on the asyncio side
        await eventually(lambda: client.cancelled)  # the connection is gone: the turn, and the agent's run, cancelled
