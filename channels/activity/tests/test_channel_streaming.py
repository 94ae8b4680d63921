"""Typing and Teams-style streaming (B-13, B-14): informative/streaming chunks, streamId, paced, then final."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from afactors.model import Message


def words(pause: float) -> Callable[[list[Message]], AsyncIterator[str]]:
    """A target streaming "Once upon a time." a word at a time, `pause` seconds apart."""

    async def target(messages: list[Message]) -> AsyncIterator[str]:
        for word in ("Once ", "upon ", "a ", "time."):
            yield word
            await trio.sleep(pause)

    return target


slow_words = words(0.4)


def chunks(bot: Any) -> list[Any]:
    return [c for c in bot.connector.calls if c.stream_info is not None and c.body["type"] == "typing"]


async def test_web_chat_streams_paced_chunks_with_one_stream_id_then_a_final_message(serve: Any) -> None:
    async with serve(slow_words, channel_id="webchat") as bot:
        await bot.say("tell me a story", conversation="webchat-conv-1")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        streamed = chunks(bot)
        final = bot.connector.delivered()[-1]
    assert len(streamed) >= 2
    infos = [c.stream_info for c in streamed]
    assert [i["streamSequence"] for i in infos] == list(range(1, len(infos) + 1))
    assert all(i["streamType"] == "streaming" for i in infos)
    stream_id = infos[0]["streamId"]  # Web Chat: the bot names the stream from the first chunk
    assert stream_id and all(i["streamId"] == stream_id for i in infos)
    texts = [c.body["text"] for c in streamed]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))  # cumulative
    assert final.body["text"] == "Once upon a time."
    assert final.stream_info == {"type": "streaminfo", "streamType": "final", "streamId": stream_id}
    times = [c.at for c in streamed] + [final.at]
    assert all(b - a >= 0.45 for a, b in itertools.pairwise(times))  # B-14: 0.5 s apart on Web Chat
    assert all(c.activity_id is not None for c in streamed)  # every chunk threads under the user's message


async def test_teams_personal_chat_takes_the_stream_id_from_the_first_answer(serve: Any) -> None:
    async with serve(words(0.3)) as bot:
        await bot.say("a story")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        streamed = chunks(bot)
        final = bot.connector.delivered()[-1]
    assert streamed, "Teams 1:1 chats stream"
    first, rest = streamed[0], streamed[1:]
    assert "streamId" not in first.stream_info and "id" not in first.body
    ids = {c.stream_info["streamId"] for c in rest} | {final.stream_info["streamId"]}
    assert len(ids) == 1 and next(iter(ids)).startswith("act-")  # the id the Connector gave the first chunk
    times = [c.at for c in streamed] + [final.at]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))  # B-14: 1 s apart on Teams


async def test_an_informative_chunk_opens_the_stream(serve: Any) -> None:
    async with serve(words(0.5), informative_text="Thinking...") as bot:
        await bot.say("a story")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        streamed = chunks(bot)
        final = bot.connector.delivered()[-1]
    first = streamed[0]
    assert first.body["text"] == "Thinking..." and first.stream_info == {
        "type": "streaminfo", "streamType": "informative", "streamSequence": 1}  # fmt: skip
    assert [c.stream_info["streamType"] for c in streamed[1:]] == ["streaming"] * (len(streamed) - 1)
    assert [c.stream_info["streamSequence"] for c in streamed] == list(range(1, len(streamed) + 1))
    assert len(streamed) >= 2 and {c.stream_info.get("streamId") for c in streamed[1:]} == {
        final.stream_info["streamId"]
    }
    assert bot.connector.delivered("typing") == streamed  # no plain typing indicator once the stream is open


async def test_teams_group_chats_get_typing_and_only_the_final_message(serve: Any) -> None:
    async with serve(words(0.15)) as bot:
        await bot.say("a story", mention_bot=True, conversation="19:g@thread.v2", conversation_type="groupChat")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        assert chunks(bot) == []
        assert bot.connector.delivered("typing"), "a typing indicator while the answer is made"
        final = bot.connector.delivered()[-1]
        assert final.body["text"] == "Once upon a time." and final.stream_info is None


async def test_streaming_can_be_switched_off(serve: Any) -> None:
    async with serve(words(0.05), stream=False, channel_id="webchat") as bot:
        await bot.say("a story")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        assert chunks(bot) == [] and bot.connector.delivered()[-1].stream_info is None


async def test_a_refused_stream_falls_back_to_the_final_message(serve: Any) -> None:
    async with serve(words(0.05)) as bot:
        bot.connector.refuse_streaming = True  # Teams answers 403 ContentStreamNotAllowed
        await bot.say("a story")
        await bot.connector.wait_until(lambda: bot.connector.delivered(), within=20)
        assert len(chunks(bot)) == 1  # one refused chunk, then no more tries
        final = bot.connector.delivered()[-1]
        assert final.body["text"] == "Once upon a time." and final.stream_info is None
