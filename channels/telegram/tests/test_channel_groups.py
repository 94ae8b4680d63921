"""Groups and forum topics through the real channel and the fake: who is answered, in which conversation, where."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from afactors_telegram.testing import FakeBotApi

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py


async def test_mention_only_answers_mentions_replies_and_commands(fake: FakeBotApi, serve: Serve) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    group = fake.group("Friends")
    async with serve():
        fake.send_text(group, "just chatting", sender=alice)
        fake.send_text(group, "/new@OtherBot", sender=alice)
        fake.send_text(group, "/unknown", sender=alice)
        question = fake.send_text(group, f"{fake.mention} what is up", sender=alice)
        [answer] = await fake.wait_for_messages(group, 1)
        fake.send_text(group, "and this?", sender=alice, reply_to=answer["message_id"])
        fake.send_text(group, "hey", sender=bob, entities=[{"type": "text_mention", "offset": 0, "length": 3,
                                                           "user": fake.bot.wire()}])  # fmt: skip
        messages = await fake.wait_for_messages(group, 3)
    assert answer["text"] == "Turn 1. You said: what is up"
    assert answer["reply_to_message"]["message_id"] == question["message_id"]  # answers quote their question
    assert messages[1]["text"] == "Turn 2. You said: and this?"
    assert messages[2]["text"] == "Turn 1. You said: hey"
    assert len(fake.messages(group)) == 3


@pytest.mark.parametrize(
    ("scope", "bob_turn", "dm_turn"),
    [("per_user_per_conversation", 1, 1), ("per_conversation", 2, 1), ("per_user", 1, 2)],
)
async def test_conversation_scope(fake: FakeBotApi, serve: Serve, scope: str, bob_turn: int, dm_turn: int) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    group = fake.group("Friends")
    async with serve(conversation_scope=scope):
        fake.send_text(group, f"{fake.mention} hi from alice", sender=alice)
        await fake.wait_for_messages(group, 1)
        fake.send_text(group, f"{fake.mention} hi from bob", sender=bob)
        fake.send_text(alice, "hi in private")
        _, for_bob = await fake.wait_for_messages(group, 2)
        [in_private] = await fake.wait_for_messages(alice, 1)
    assert for_bob["text"] == f"Turn {bob_turn}. You said: hi from bob"
    assert in_private["text"] == f"Turn {dm_turn}. You said: hi in private"


async def test_command_only_ignores_mentions(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    group = fake.group("Friends")
    async with serve(accept_in_group="command_only"):
        fake.send_text(group, f"{fake.mention} hello", sender=alice)
        fake.send_text(group, "/ask something", sender=alice)
        [answer] = await fake.wait_for_messages(group, 1)
    assert answer["text"] == "Turn 1. You said: /ask something"
    assert len(fake.messages(group)) == 1


async def test_new_in_a_group_resets_only_that_conversation(fake: FakeBotApi, serve: Serve) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    group = fake.group("Friends")
    async with serve():
        fake.send_text(group, f"{fake.mention} one", sender=alice)
        fake.send_text(group, f"{fake.mention} one", sender=bob)
        fake.send_text(group, "/new", sender=alice)
        fake.send_text(group, f"{fake.mention} two", sender=alice)
        fake.send_text(group, f"{fake.mention} two", sender=bob)
        messages = await fake.wait_for_messages(group, 5)
    texts = [m["text"] for m in messages]
    assert texts[2] == "Started a new conversation."
    assert sorted(texts[3:]) == ["Turn 1. You said: two", "Turn 2. You said: two"]


async def test_forum_topics_are_separate_conversations_answered_in_their_topic(fake: FakeBotApi, serve: Serve) -> None:
    alice = fake.user("Alice")
    forum = fake.supergroup("Forum", forum=True)
    async with serve():
        news = fake.create_topic(forum, "News", creator=alice)
        chat = fake.create_topic(forum, "Chat", creator=alice)
        fake.send_text(forum, f"{fake.mention} in news", sender=alice, thread_id=news)
        fake.send_text(forum, f"{fake.mention} in news again", sender=alice, thread_id=news)
        fake.send_text(forum, f"{fake.mention} in chat", sender=alice, thread_id=chat)
        fake.send_text(forum, f"{fake.mention} in general", sender=alice)
        fake.send_text(forum, "not for the bot", sender=alice, thread_id=chat)
        in_news = await fake.wait_for_messages(forum, 2, thread_id=news)
        [in_chat] = await fake.wait_for_messages(forum, 1, thread_id=chat)
        await fake.wait_for_messages(forum, 4)
    assert [m["text"] for m in in_news] == ["Turn 1. You said: in news", "Turn 2. You said: in news again"]
    assert in_chat["text"] == "Turn 1. You said: in chat"
    general = [m for m in fake.messages(forum) if "message_thread_id" not in m]
    assert [m["text"] for m in general] == ["Turn 1. You said: in general"]
    assert len(fake.messages(forum)) == 4


async def test_a_reply_follows_a_group_that_became_a_supergroup(fake: FakeBotApi, serve: Serve) -> None:
    gate = trio.Event()

    async def held(messages: list[Any]) -> str:
        await gate.wait()
        return "after the move"

    alice = fake.user("Alice")
    group = fake.group("Growing")
    async with serve(held):
        fake.send_text(group, f"{fake.mention} question", sender=alice)
        await fake.wait_until(lambda: bool(fake.chat_actions(group)))
        supergroup = fake.migrate_to_supergroup(group, by=alice)
        gate.set()
        [answer] = await fake.wait_for_messages(supergroup, 1)
    assert answer["text"] == "after the move"
    assert fake.rate_limit_violations == 0
