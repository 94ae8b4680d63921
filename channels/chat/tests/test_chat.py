"""Chat Completions and Models through the openai SDK in strict mode, LangChain's ChatOpenAI, and raw HTTP."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import trio

from afactors.model import FunctionCallPart, FunctionResultPart, Message
from afactors_chat import ChatChannel
from afactors_chat.codec import new_input, parse_chat
from afactors_responses.codec import ApiError

SDK_LEAVES_GENERATORS_AT_DONE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
"""The SDK stops reading at `data: [DONE]` and leaves its own SSE generators to the garbage collector, which trio
reports as a ResourceWarning: the SDK's doing (every chat stream ends with [DONE]), not the server's."""

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_non_streamed_completion_in_strict_mode(serve, sdk, target) -> None:
    async with serve() as (_, url), sdk(url) as client:
        completion = await client.chat.completions.create(
            model="gpt-local", messages=[{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}]
        )
    assert completion.object == "chat.completion" and completion.model == "gpt-local"
    assert completion.choices[0].message.content == "echo: system:be kind | user:hi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 8


@SDK_LEAVES_GENERATORS_AT_DONE
async def test_streamed_completion_with_usage_in_strict_mode(serve, sdk) -> None:
    async with (
        serve() as (_, url),
        sdk(url) as client,
        await client.chat.completions.create(
            model="afactors",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream,
    ):
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: user:hi"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


@SDK_LEAVES_GENERATORS_AT_DONE
async def test_tools_reach_the_target_and_tool_messages_come_back(serve, sdk, target) -> None:
    async with serve() as (_, url), sdk(url) as client:
        first = await client.chat.completions.create(
            model="afactors",
            messages=[{"role": "user", "content": "Oslo"}],
            tools=[WEATHER],  # type: ignore[list-item]
        )
        call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert first.choices[0].finish_reason == "tool_calls"
        assert (call.function.name, call.function.arguments) == ("weather", '{"city": "Oslo"}')
        assert target.seen[-1].options["tools"][0]["name"] == "weather"
        async with await client.chat.completions.create(
            model="afactors",
            stream=True,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": "Oslo"},
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
            ],
        ) as stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "The tool said sunny."
    given = target.seen[-1].messages
    assert given[1].contents == (FunctionCallPart(call.id, "weather", '{"city": "Oslo"}'),)
    assert given[2].contents == (FunctionResultPart(call.id, "sunny"),)


@SDK_LEAVES_GENERATORS_AT_DONE
async def test_streamed_tool_calls_parse_in_strict_mode(serve, sdk) -> None:
    async with (
        serve() as (_, url),
        sdk(url) as client,
        await client.chat.completions.create(
            model="afactors",
            messages=[{"role": "user", "content": "Rome"}],
            tools=[WEATHER],
            stream=True,  # type: ignore[list-item]
        ) as stream,
    ):
        chunks = [c async for c in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_stateless_by_default_no_store_growth(serve, sdk) -> None:
    async with serve() as (host, url), sdk(url) as client:
        before = [host.store.count(kind) for kind in ("responses", "turns", "snapshots", "inbox")]
        for _ in range(3):
            await client.chat.completions.create(model="afactors", messages=[{"role": "user", "content": "hi"}])
        after = [host.store.count(kind) for kind in ("responses", "turns", "snapshots", "inbox")]
        assert after == before
        assert host.system.actors() == []  # nothing kept in memory either


async def test_a_conversation_key_makes_requests_turns_of_one_actor(serve, sdk, raw, target) -> None:
    async with serve() as (host, url), sdk(url) as client:
        await client.chat.completions.create(
            model="afactors", user="alice", messages=[{"role": "user", "content": "a"}]
        )
        second = await client.chat.completions.create(
            model="afactors",
            user="alice",
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "b"},
            ],
        )
        # the actor kept turn one (its own answer), the request added only what follows the last assistant message
        assert second.choices[0].message.content == "echo: user:a | assistant:echo: user:a | user:b"
        by_header = await raw(
            url,
            "POST",
            "/v1/chat/completions",
            headers={"x-afactors-conversation": "alice"},
            json={"messages": [{"role": "user", "content": "c"}]},
        )
        assert by_header.json()["choices"][0]["message"]["content"].endswith("| user:c")
        assert host.store.count("snapshots") == 1


async def test_models_list_and_retrieve(serve, sdk) -> None:
    async with serve() as (_, url), sdk(url) as client:
        models = [m.id async for m in client.models.list()]
        one = await client.models.retrieve("gpt-local")
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("nope")
    assert models == ["afactors", "gpt-local"] and one.object == "model"


async def test_root_mount(serve, sdk) -> None:
    async with serve(ChatChannel(path="")) as (_, url), sdk(url, "") as client:
        completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content == "echo: user:hi"


@SDK_LEAVES_GENERATORS_AT_DONE
async def test_a_failed_turn_is_an_openai_error(serve, sdk, target) -> None:
    async def boom(ctx: Any) -> Any:
        raise RuntimeError("model down")
        yield

    target.run = boom
    async with serve() as (_, url), sdk(url) as client:
        with pytest.raises(openai.InternalServerError, match="model down"):
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async with stream:
            with pytest.raises(openai.APIError, match="model down"):
                async for _ in stream:
                    pass


CASES: list[tuple[str, str, str, dict[str, Any], Any, int, str | None, str | None]] = [
    ("not json", "POST", "/v1/chat/completions", {"content-type": "application/json"}, b"{", 400, None, "invalid_json"),
    (
        "text body",
        "POST",
        "/v1/chat/completions",
        {"content-type": "text/plain"},
        b"hi",
        415,
        None,
        "unsupported_media_type",
    ),
    ("array body", "POST", "/v1/chat/completions", {}, [], 400, "body", "invalid_type"),
    ("no messages", "POST", "/v1/chat/completions", {}, {"model": "m"}, 400, "messages", "missing_required_parameter"),
    ("empty messages", "POST", "/v1/chat/completions", {}, {"messages": []}, 400, "messages", "empty_array"),
    (
        "bad role",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "robot", "content": "x"}]},
        400,
        "messages[0].role",
        "invalid_value",
    ),
    (
        "no content",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user"}]},
        400,
        "messages[0].content",
        "missing_required_parameter",
    ),
    (
        "bad part",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
        400,
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "bad image",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
        400,
        "messages[0].content[0].image_url.url",
        "invalid_value",
    ),
    (
        "tool without id",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "tool", "content": "x"}]},
        400,
        "messages[0].tool_call_id",
        "missing_required_parameter",
    ),
    (
        "empty assistant",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "assistant"}]},
        400,
        "messages[0].content",
        "invalid_value",
    ),
    (
        "bad tool call",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "assistant", "tool_calls": [{"id": "c"}]}]},
        400,
        "messages[0].tool_calls[0].function",
        "missing_required_parameter",
    ),
    (
        "n two",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        400,
        "n",
        "unsupported_value",
    ),
    (
        "stream string",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": "x"}], "stream": "yes"},
        400,
        "stream",
        "invalid_type",
    ),
    (
        "stream options unstreamed",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": True}},
        400,
        "stream_options",
        "invalid_value",
    ),
    (
        "bad tool",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web"}]},
        400,
        "tools[0].type",
        "invalid_value",
    ),
    (
        "bad temperature",
        "POST",
        "/v1/chat/completions",
        {},
        {"messages": [{"role": "user", "content": "x"}], "temperature": 5},
        400,
        "temperature",
        "invalid_value",
    ),
    (
        "long key",
        "POST",
        "/v1/chat/completions",
        {"x-afactors-conversation": "k" * 300},
        {"messages": [{"role": "user", "content": "x"}]},
        400,
        None,
        "invalid_value",
    ),
    ("get completions", "GET", "/v1/chat/completions", {}, None, 405, None, "method_not_allowed"),
    ("post models", "POST", "/v1/models", {}, {}, 405, None, "method_not_allowed"),
    ("unknown model", "GET", "/v1/models/nope", {}, None, 404, "model", "model_not_found"),
    ("delete model", "DELETE", "/v1/models/afactors", {}, None, 405, None, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("case", "method", "path", "headers", "body", "status", "param", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_gets_the_openai_error_envelope(
    serve,
    raw,
    case: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    async with serve() as (_, url):
        kwargs: dict[str, Any] = {"headers": headers}
        if isinstance(body, bytes):
            kwargs["content"] = body
        elif body is not None:
            kwargs["json"] = body
        response = await raw(url, method, path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code) and error["message"]


async def test_unauthorized_requests_get_401(serve, raw) -> None:
    async with serve(api_keys=["k1"]) as (_, url):
        response = await raw(url, "GET", "/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_codec_units() -> None:
    request = parse_chat(
        {
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "d"}]},
                {"role": "user", "content": "u"},
            ],
            "max_tokens": 5,
            "user": "bob",
        }
    )
    assert request.messages == (Message("system", "d"), Message("user", "u"))
    assert request.options["max_output_tokens"] == 5 and request.user == "bob"
    assert new_input((*request.messages, Message("assistant", "a"), Message("user", "v"))) == (Message("user", "v"),)
    with pytest.raises(ApiError):
        parse_chat({"messages": [{"role": "user", "content": "x"}], "user": ""})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


@pytest.mark.parametrize("use_responses_api", [False, True])
async def test_langchain_chat_openai(serve, use_responses_api: bool) -> None:
    """LangChain's ChatOpenAI (its sync client, in a thread) against the trio server: chat completions, or the
    Responses API served by the Responses channel beside the Chat channel."""
    from langchain_openai import ChatOpenAI

    from afactors_responses import ResponsesChannel

    answers: list[str] = []

    def run(url: str) -> None:
        model = ChatOpenAI(
            model="afactors",
            base_url=url + "/v1",
            api_key="sk-test",
            max_retries=0,
            use_responses_api=use_responses_api,
        )
        answers.append(_text(model.invoke("hello").content))
        answers.append("".join(_text(chunk.content) for chunk in model.stream("again")))

    async with serve(ChatChannel(), ResponsesChannel()) as (_, url):
        await trio.to_thread.run_sync(run, url)
    assert answers == ["echo: user:hello", "echo: user:again"]


def test_the_cli_plugin_lists_the_model_flag_as_a_model() -> None:
    import argparse

    from afactors_chat import plugin

    assert plugin.create(argparse.Namespace(model="gpt-x")).models == ("afactors", "gpt-x")
    assert plugin.create(argparse.Namespace(model=None)).models == ("afactors",)
