"""Agent Framework's `AGUIChatClient` (`agent-framework-ag-ui`) as the black-box client of the AG-UI channel.

The client is asyncio code, so each conversation runs in a worker thread under `asyncio.run` while the host
serves on trio in the test's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import trio
from agent_framework import ChatResponse, Content, Message
from agent_framework.ag_ui import AGUIChatClient

from .conftest import Serve, WeatherAgent

T = TypeVar("T")


async def in_asyncio(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return await trio.to_thread.run_sync(lambda: asyncio.run(fn()))


def contents(response: ChatResponse[Any], kind: str) -> list[Content]:
    return [content for message in response.messages for content in message.contents if content.type == kind]


async def test_agent_framework_client_keeps_a_thread_on_the_server(serve: Serve) -> None:
    async with serve() as served:
        endpoint = served.url + "/agui"

        async def chat() -> list[ChatResponse[Any]]:
            async with AGUIChatClient(endpoint=endpoint) as client:
                options: Any = {"metadata": {"thread_id": "af-thread"}}
                first = await client.get_response([Message("user", ["remember that tea is hot"])], options=options)
                second = await client.get_response([Message("user", ["what do you remember?"])], options=options)
                other = await client.get_response([Message("user", ["what do you remember?"])])
                return [first, second, other]

        first, second, other = await in_asyncio(chat)
    assert first.text == "Turn 1. I will remember that tea is hot."
    assert second.text == "Turn 2. I remember: tea is hot."
    assert other.text == "Turn 1. I don't remember anything yet."  # a new thread id per call without one


async def test_agent_framework_client_streams_tool_calls_and_results(serve: Serve, weather: WeatherAgent) -> None:
    async with serve(weather) as served:
        endpoint = served.url + "/agui"

        async def chat() -> tuple[list[str], ChatResponse[Any]]:
            async with AGUIChatClient(endpoint=endpoint) as client:
                stream = client.get_response([Message("user", ["what is the weather?"])], stream=True)
                deltas = [update.text async for update in stream if update.text]
                return deltas, await stream.get_final_response()

        deltas, response = await in_asyncio(chat)
    assert "".join(deltas) == "Let me check. It is sunny in Paris."
    calls = contents(response, "function_call")
    assert [(call.call_id, call.name, call.arguments) for call in calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}')
    ]
    assert [(result.call_id, result.result) for result in contents(response, "function_result")] == [
        ("call_1", "sunny")
    ]
    assert response.finish_reason == "stop"  # RUN_FINISHED was read
    assert response.additional_properties["run_id"] == weather.seen[0].options["run_id"]
    assert response.additional_properties["thread_id"] == weather.seen[0].options["thread_id"]
