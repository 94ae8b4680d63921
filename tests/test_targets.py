"""Targets: every accepted shape, the demo agent, and the OpenAI-compatible adapter against a local endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import trio
from quart import Response, request
from quart_trio import QuartTrio

from afactors.host._server import serve_app, server_config
from afactors.model import ConversationKey, Message, TurnContext, Update, UsagePart
from afactors.targets import DemoAgent, OpenAIChatAgent, TargetError, UpstreamError, as_agent, load_target
from afactors.targets.adapt import BUILTIN_SHAPES, FunctionAgent
from afactors.targets.openai_chat import chat_messages, parse_sse_line


def ctx(*texts: str, state: dict | None = None, options: dict | None = None) -> TurnContext:
    roles = ["user", "assistant"]
    messages = tuple(Message(roles[i % 2], t) for i, t in enumerate(texts))  # type: ignore[arg-type]
    return TurnContext(
        ConversationKey("t", "c"), messages, state if state is not None else {}, "turn_1", 1, options or {}
    )


async def collect(agent: object, turn: TurnContext) -> list[Update]:
    return [u async for u in as_agent(agent).run(turn)]


async def async_fn(messages: list[Message]) -> str:
    return f"async saw {len(messages)}"


async def gen_fn(messages: list[Message]) -> AsyncIterator[str]:
    yield "a"
    yield "b"


def sync_fn(messages: list[Message]) -> str:
    return messages[-1].text.upper()


async def test_every_function_shape_becomes_an_agent() -> None:
    turn = ctx("hi", "ok", "again")
    assert [u.delta for u in await collect(async_fn, turn)] == ["async saw 3"]
    assert [u.delta for u in await collect(gen_fn, turn)] == ["a", "b"]
    assert [u.delta for u in await collect(sync_fn, turn)] == ["AGAIN"]


async def test_a_function_that_declares_ctx_gets_the_turn_context_by_keyword() -> None:
    async def async_ctx(messages: list[Message], *, ctx: TurnContext) -> str:
        return f"{ctx.kind} {ctx.seq} {len(messages)}"

    async def gen_ctx(messages: list[Message], *, ctx: TurnContext) -> AsyncIterator[str]:
        yield ctx.kind

    def sync_ctx(messages: list[Message], ctx: TurnContext | None = None) -> str:
        assert ctx is not None
        ctx.state["seen"] = True
        return ctx.kind

    turn = ctx("hi", "ok", "again")
    assert [u.delta for u in await collect(async_ctx, turn)] == ["turn 1 3"]
    assert [u.delta for u in await collect(gen_ctx, turn)] == ["turn"]
    assert [u.delta for u in await collect(sync_ctx, turn)] == ["turn"] and turn.state == {"seen": True}

    def required_positional_ctx(messages: list[Message], ctx: TurnContext) -> str:
        return "x"

    with pytest.raises(TargetError, match="is not a target"):
        as_agent(required_positional_ctx)  # as `Agent.run(self, ctx)` read off a class: not a function shape


async def test_agent_objects_pass_through() -> None:
    agent = DemoAgent()
    assert as_agent(agent) is agent


async def test_a_function_returning_the_wrong_type_is_a_target_error() -> None:
    async def bad(messages: list[Message]) -> str:
        return 42  # type: ignore[return-value]

    with pytest.raises(TargetError, match="must produce str"):
        await collect(bad, ctx("x"))


@pytest.mark.parametrize("obj", [42, "text", DemoAgent])
def test_non_targets_are_refused(obj: object) -> None:
    with pytest.raises(TargetError, match="not a target"):
        as_agent(obj)


def test_load_target_by_module_and_attribute() -> None:
    agent = load_target("afactors.actors._replies:error_text")
    assert isinstance(agent, FunctionAgent)
    with pytest.raises(TargetError, match="not a target"):
        load_target("afactors.targets.demo:DemoAgent.answer")  # two parameters: not a function of the messages
    with pytest.raises(TargetError, match="module:attr"):
        load_target("no_colon")
    with pytest.raises(TargetError, match="cannot import"):
        load_target("no_such_module_xyz:f")
    with pytest.raises(TargetError, match="no attribute"):
        load_target("afactors.targets.demo:missing")


async def test_demo_agent_streams_words_counts_turns_and_keeps_notes() -> None:
    updates = await collect(DemoAgent(), ctx("remember the key is under the mat"))
    assert len(updates) > 3  # streamed word by word
    assert "".join(u.delta for u in updates) == "Turn 1. I will remember that the key is under the mat."
    recall = "".join(
        u.delta
        for u in await collect(DemoAgent(), ctx("remember the key is under the mat", "ok", "what do you remember?"))
    )
    assert recall == "Turn 2. I remember: the key is under the mat."
    assert "".join(u.delta for u in await collect(DemoAgent(), ctx("what do you remember?"))) == (
        "Turn 1. I don't remember anything yet."
    )


def test_parse_sse_line() -> None:
    assert parse_sse_line("data: [DONE]") is None
    assert parse_sse_line(": keep-alive") is None
    assert parse_sse_line('data: {"a": 1}') == {"a": 1}
    with pytest.raises(UpstreamError, match="unreadable"):
        parse_sse_line("data: {oops")


def fake_chat_endpoint(seen: list[dict]) -> QuartTrio:
    app = QuartTrio("fake-chat")

    @app.post("/v1/chat/completions")
    async def completions() -> Response:
        body = await request.get_json()
        seen.append({"body": body, "auth": request.headers.get("Authorization")})
        if body["model"] == "broken":
            return Response(orjson.dumps({"error": {"message": "no such model"}}), status=404)
        words = ["Hello", " from", " the", " model"]

        async def events() -> AsyncIterator[bytes]:
            for word in words:
                chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            yield b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 4}}\n\n'
            yield b"data: [DONE]\n\n"

        resp = Response(events(), mimetype="text/event-stream")
        resp.timeout = None
        return resp

    return app


async def test_openai_adapter_streams_from_a_chat_completions_endpoint() -> None:
    seen: list[dict] = []
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        urls = await nursery.start(serve_app, fake_chat_endpoint(seen), server_config("127.0.0.1", 0, 1.0), stop)
        agent = OpenAIChatAgent("m1", base_url=urls[0] + "/v1", api_key="sk-test")
        updates = await collect(agent, ctx("hi", "hello", "how are you?", options={"instructions": "be brief"}))
        assert "".join(u.delta for u in updates) == "Hello from the model"
        assert updates[-1].part == UsagePart(7, 4)
        assert seen[0]["auth"] == "Bearer sk-test"
        assert seen[0]["body"]["messages"] == [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "how are you?"},
        ]
        with pytest.raises(UpstreamError, match="404"):
            await collect(OpenAIChatAgent("broken", base_url=urls[0] + "/v1"), ctx("x"))
        stop.set()


class CoroutineRun:
    """The shape that used to start healthy and fail every turn: `run` is a coroutine, not an update stream."""

    async def run(self, messages: object) -> str:
        return "never streamed"


class CallableObject:
    def __call__(self, messages: list[Message]) -> str:
        return "hi"


async def no_parameters() -> str:
    return "hi"


@pytest.mark.parametrize("obj", [CoroutineRun(), CallableObject(), no_parameters, lambda a, b: "x"])
def test_objects_fitting_no_shape_are_refused_naming_every_shape(obj: object) -> None:
    with pytest.raises(TargetError, match="not a target") as info:
        as_agent(obj, adapters=())
    for shape in BUILTIN_SHAPES:
        assert shape in str(info.value)


class Foreign:
    """An object of a foreign framework's kind."""

    async def run(self, messages: object) -> str:
        return "foreign"


class ForeignAgent:
    def __init__(self, target: Foreign) -> None:
        self.target = target

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta=await self.target.run(ctx.messages))


class ForeignAdapter:
    shape = "a Foreign object"

    def __init__(self, kind: type = Foreign) -> None:
        self.kind = kind

    def accepts(self, target: object) -> bool:
        return isinstance(target, self.kind)

    def adapt(self, target: object) -> ForeignAgent:
        return ForeignAgent(target)  # type: ignore[arg-type]


async def test_an_adapter_hosts_the_kind_it_detects_and_its_shape_is_listed() -> None:
    agent = as_agent(Foreign(), adapters=(ForeignAdapter(),))
    assert [u.delta async for u in agent.run(ctx("hi"))] == ["foreign"]
    with pytest.raises(TargetError, match="a Foreign object"):
        as_agent(42, adapters=(ForeignAdapter(),))


def test_a_target_two_shapes_claim_is_refused_as_ambiguous() -> None:
    with pytest.raises(TargetError, match="ambiguous"):
        as_agent(Foreign(), adapters=(ForeignAdapter(), ForeignAdapter()))
    with pytest.raises(TargetError, match="ambiguous"):
        as_agent(DemoAgent(), adapters=(ForeignAdapter(DemoAgent),))  # an adapter and the Agent protocol


def test_chat_messages_carry_a_user_messages_speaker_as_a_valid_name() -> None:
    said = (Message("user", "tea", name="Alice Liddell"), Message("assistant", "ok", name="bot"),
            Message("user", "coffee", name="Борис"), Message("user", "hm"))  # fmt: skip
    ctx = TurnContext(ConversationKey("t", "c"), said, {}, "turn", 4)
    assert chat_messages(ctx) == [
        {"role": "user", "content": "tea", "name": "Alice_Liddell"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "coffee"},  # nothing of the name fits the pattern: left out, not mangled
        {"role": "user", "content": "hm"},
    ]
