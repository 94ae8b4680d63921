"""Live rendering: drafts in private chats, a throttled edited preview in groups, typing actions (T-12..T-14)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from typing import Any

import trio

from afactors.model import TurnContext, Update
from afactors_telegram.testing import FakeBotApi

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py
WORDS = ["**Streaming**", "one", "word", "at", "a", "time,", "slowly", "enough", "to", "be", "seen."]
FINAL = " ".join(WORDS)
INTERVAL = 0.2
THROTTLED = INTERVAL * 0.6
"""The least gap between two previews as the fake Bot API sees them: they are sent `INTERVAL` apart, but a loaded
machine may delay one request's arrival more than the next one's; unthrottled they would follow the words (0.08 s)."""


class SlowWords:
    """Streams `WORDS` with a pause between them (a slow model)."""

    def __init__(self, pause: float = 0.08) -> None:
        self.pause = pause

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        for i, word in enumerate(WORDS):
            yield Update(delta=word if i == 0 else " " + word)
            await trio.sleep(self.pause)


class HalfThenWait:
    """Streams half an answer, then waits for `gate` before the rest."""

    def __init__(self, gate: trio.Event) -> None:
        self.gate = gate

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta="thinking about it")
        await self.gate.wait()
        yield Update(delta=" - the answer")


def _growing(texts: list[str]) -> bool:
    return all(a != b and FINAL.startswith(b) and b.startswith(a) for a, b in pairwise(texts))


async def test_private_chats_stream_drafts_then_send_the_answer(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve(SlowWords(), stream_interval=INTERVAL, typing_interval=INTERVAL):
        fake.send_text(alice, "tell me")
        [answer] = await fake.wait_for_messages(alice, 1)
    drafts = fake.drafts(alice)
    assert len(drafts) >= 2
    assert len({d.draft_id for d in drafts}) == 1 and drafts[0].draft_id != 0
    assert _growing([d.text for d in drafts])
    assert all(b.at - a.at >= THROTTLED for a, b in pairwise(drafts))
    [sent] = fake.calls("sendMessage")
    assert all(d.at <= sent.at for d in drafts)  # no preview after the answer
    assert answer["text"] == FINAL.replace("**", "")
    assert answer["entities"][0]["type"] == "bold"
    assert not fake.edits(alice)
    assert len(fake.chat_actions(alice)) >= 3  # typing while the turn runs (about 0.9 s)


async def test_the_first_draft_shows_the_first_delta_without_waiting_for_the_interval(
    fake: FakeBotApi, serve: Serve
) -> None:
    gate = trio.Event()
    alice = fake.user("Alice")
    async with serve(HalfThenWait(gate), stream_interval=3600.0):  # later drafts: not within this test
        fake.send_text(alice, "question")
        await fake.wait_until(lambda: bool(fake.drafts(alice)))
        gate.set()
        [answer] = await fake.wait_for_messages(alice, 1)
    assert [d.text for d in fake.drafts(alice)] == ["thinking about it"]
    assert answer["text"] == "thinking about it - the answer"


async def test_groups_stream_by_editing_one_message_into_the_answer(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    group = fake.supergroup("Team")
    async with serve(SlowWords(), stream_interval=INTERVAL, typing_interval=INTERVAL):
        question = fake.send_text(group, f"{fake.mention} tell me", sender=alice)
        await fake.wait_until(lambda: any(e.text == FINAL.replace("**", "") for e in fake.edits(group)))
    [message] = fake.messages(group)
    assert message["text"] == FINAL.replace("**", "") and message["entities"][0]["type"] == "bold"
    assert message["reply_to_message"]["message_id"] == question["message_id"]
    edits = fake.edits(group)
    previews = [e.text for e in edits[:-1]]
    assert _growing(previews)
    [placeholder] = fake.calls("sendMessage")
    times = [placeholder.at, *(e.at for e in edits[:-1])]  # the last edit is the answer, not a preview
    assert len(times) >= 3
    assert all(b - a >= THROTTLED for a, b in pairwise(times))  # previews are throttled
    assert not fake.drafts()
    assert fake.rate_limit_violations == 0


async def test_a_fast_turn_in_a_group_is_one_message_and_no_edits(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    group = fake.group("Team")
    async with serve(stream_interval=INTERVAL):
        fake.send_text(group, f"{fake.mention} quick", sender=alice)
        await fake.wait_for_messages(group, 1)
    assert not fake.edits(group)
    assert len(fake.calls("sendMessage")) == 1


async def test_streaming_can_be_turned_off(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    async with serve(SlowWords(), stream=False, stream_interval=INTERVAL, typing_interval=INTERVAL):
        fake.send_text(alice, "tell me")
        await fake.wait_for_messages(alice, 1)
    assert not fake.drafts() and not fake.edits()
    assert fake.chat_actions(alice)


async def test_a_group_preview_held_back_by_flood_control_is_sent_once_it_may_be(
    fake: FakeBotApi, serve: Serve
) -> None:
    # The only delta comes before the first preview is due, and that preview is refused (429): the preview is
    # tried again once the chat may be written to, not left out until the answer.
    gate = trio.Event()
    alice = fake.user("Alice")
    group = fake.supergroup("Team")
    fake.force_flood_wait(1, method="sendMessage")
    async with serve(HalfThenWait(gate), stream_interval=INTERVAL):
        fake.send_text(group, f"{fake.mention} question", sender=alice)
        [preview] = await fake.wait_for_messages(group, 1)
        gate.set()
        await fake.wait_until(lambda: any(e.text == "thinking about it - the answer" for e in fake.edits(group)))
    assert preview["text"] == "thinking about it"
    assert [m["text"] for m in fake.messages(group)] == ["thinking about it - the answer"]


async def test_a_preview_that_cannot_be_edited_is_replaced_by_a_new_message(fake: FakeBotApi, serve: Serve) -> None:
    gate = trio.Event()
    alice = fake.user("Alice")
    group = fake.supergroup("Team")
    async with serve(HalfThenWait(gate), stream_interval=INTERVAL):
        fake.send_text(group, f"{fake.mention} question", sender=alice)
        [preview] = await fake.wait_for_messages(group, 1)
        fake.force_error(400, "Bad Request: message to edit not found", method="editMessageText", times=5)
        gate.set()
        messages = await fake.wait_for_messages(group, 2)
    assert preview["text"] == "thinking about it"
    assert messages[1]["text"] == "thinking about it - the answer"
    assert messages[1]["reply_to_message"]["message_id"] == preview["reply_to_message"]["message_id"]


async def test_a_preview_row_is_kept_while_its_turn_runs_and_deleted_once_answered(
    fake: FakeBotApi, serve: Serve, eventually: Callable[..., Any]
) -> None:
    gate = trio.Event()
    alice = fake.user("Alice")
    group = fake.supergroup("Team")
    async with serve(HalfThenWait(gate), stream_interval=INTERVAL) as (host, _):
        fake.send_text(group, f"{fake.mention} question", sender=alice)
        [preview] = await fake.wait_for_messages(group, 1)
        await eventually(lambda: host.store.scan("aliases", "telegram/preview/"))
        rows = host.store.scan("aliases", "telegram/preview/")
        assert [row.data for _, row in rows] == [{"message_id": preview["message_id"]}]
        gate.set()
        await fake.wait_until(lambda: any(e.text == "thinking about it - the answer" for e in fake.edits(group)))
        await eventually(lambda: not host.store.scan("aliases", "telegram/preview/"))
