"""Button presses and edited messages through the real channel, a real host and the fake Bot API over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import trio

from afactors.model import TurnContext, Update
from afactors_telegram.testing import FakeBotApi

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py


class Recorder:
    """Answers "<text> (<update kind>)" and keeps every turn's context; waits for `gate` when it is set."""

    def __init__(self) -> None:
        self.seen: list[TurnContext] = []
        self.gate: trio.Event | None = None

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        self.seen.append(ctx)
        if self.gate is not None:
            await self.gate.wait()
        kind = ctx.options.get("telegram", {}).get("update", "message")
        yield Update(delta=f"{ctx.messages[-1].text} ({kind})")


async def post_with_buttons(fake: FakeBotApi, chat_id: int, *data: str) -> int:
    """The bot posts a message with inline buttons (as an earlier reply or a command handler would)."""
    keyboard = {"inline_keyboard": [[{"text": d, "callback_data": d} for d in data]]}
    async with httpx.AsyncClient() as http:
        sent = await http.post(f"{fake.bot_url}/sendMessage",
                               json={"chat_id": chat_id, "text": "Proceed?", "reply_markup": keyboard})  # fmt: skip
    assert sent.status_code == 200, sent.text
    return int(sent.json()["result"]["message_id"])


async def test_a_button_press_is_answered_at_once_and_reaches_the_agent(fake: FakeBotApi, serve: Serve) -> None:
    alice, agent = fake.user("Alice"), Recorder()
    agent.gate = trio.Event()
    async with serve(agent):
        buttons = await post_with_buttons(fake, fake.private_chat(alice).id, "yes", "no")
        fake.press_button(alice, buttons, "yes")
        await fake.wait_until(lambda: bool(fake.callback_answers(alice)) and bool(agent.seen))
        assert len(fake.messages(alice)) == 1  # the query is answered while the turn still runs
        agent.gate.set()
        _, answer = await fake.wait_for_messages(alice, 2)
    assert answer["text"] == "yes (callback_query)"
    [ctx] = agent.seen
    assert ctx.options["telegram"] == {"update": "callback_query", "data": "yes", "message_id": buttons,
                                       "message_text": "Proceed?"}  # fmt: skip
    assert ctx.identity is not None and ctx.identity.user_id == str(alice.id)


async def test_a_button_press_in_a_group_is_the_pressers_turn(fake: FakeBotApi, serve: Serve) -> None:
    alice, bob, agent = fake.user("Alice"), fake.user("Bob"), Recorder()
    group = fake.group("Team")
    async with serve(agent):
        buttons = await post_with_buttons(fake, group.id, "ship it")
        fake.press_button(group, buttons, "ship it", sender=bob)
        _, answer = await fake.wait_for_messages(group, 2)
    assert answer["text"] == "ship it (callback_query)"
    assert answer["reply_to_message"]["message_id"] == buttons  # quotes the message whose button was pressed
    assert [a.callback_query_id for a in fake.callback_answers(group)] != []
    assert agent.seen[0].identity is not None and agent.seen[0].identity.user_id == str(bob.id)
    assert alice.id != bob.id


async def test_an_edited_message_is_a_new_turn_with_the_edited_text(fake: FakeBotApi, serve: Serve) -> None:
    alice, agent = fake.user("Alice"), Recorder()
    async with serve(agent):
        sent = fake.send_text(alice, "helo")
        await fake.wait_for_messages(alice, 1)
        fake.edit_text(alice, sent["message_id"], "hello")
        first, second = await fake.wait_for_messages(alice, 2)
    assert (first["text"], second["text"]) == ("helo (message)", "hello (edited_message)")
    edit = agent.seen[1]
    assert edit.options["telegram"]["update"] == "edited_message"
    assert edit.options["telegram"]["message_id"] == sent["message_id"]
    assert [m.text for m in edit.messages if m.role == "user"] == ["helo", "hello"]  # the first turn stays


async def test_bad_updates_are_ignored_and_the_poller_goes_on(fake: FakeBotApi, serve: Serve) -> None:
    alice, agent = fake.user("Alice"), Recorder()
    queue = fake._api.updates  # raw updates no real user could produce
    async with serve(agent) as (host, _):
        queue.push("callback_query", alice.id, {"id": "77", "from": "nobody", "data": 5})
        queue.push("callback_query", alice.id, {"from": {"id": alice.id}, "data": "x"})
        queue.push("edited_message", alice.id, {"message_id": "x"})
        queue.push("message_reaction", alice.id, {"chat": {"id": alice.id}})
        fake.send_text(alice, "still here")
        [answer] = await fake.wait_for_messages(alice, 1)
        assert host.store.count("dead_letters") == 0  # ignored, not failed
    assert answer["text"] == "still here (message)"
    assert len(agent.seen) == 1


async def test_a_shared_group_conversation_keeps_each_speaker_across_a_restart(
    fake: FakeBotApi, serve: Serve, eventually: Callable[..., Any]
) -> None:
    alice, bob, carol = fake.user("Alice", last_name="Liddell"), fake.user("Bob"), fake.user("Carol")
    group, agent = fake.group("Team"), Recorder()
    settings = {"conversation_scope": "per_conversation", "accept_in_group": "all"}
    async with serve(agent, **settings) as (host, _):
        fake.send_text(group, "I vote tea", sender=alice)
        await fake.wait_for_messages(group, 1)
        fake.send_text(group, "I vote coffee", sender=bob)
        await fake.wait_for_messages(group, 2)
        await eventually(lambda: host.store.count("outbox") == 0)
    async with serve(agent, **settings):  # the same LMDB state directory, a new host
        fake.send_text(group, "what did everyone vote?", sender=carol)
        await fake.wait_for_messages(group, 3)
    history = [(m.name, m.text) for m in agent.seen[-1].messages if m.role == "user"]
    assert history == [("Alice Liddell", "I vote tea"), ("Bob", "I vote coffee"), ("Carol", "what did everyone vote?")]
    assert agent.seen[-1].identity is not None and agent.seen[-1].identity.user_id == str(carol.id)


async def test_only_shared_conversations_name_their_speakers(fake: FakeBotApi, serve: Serve) -> None:
    alice, agent = fake.user("Alice"), Recorder()
    group = fake.group("Team")
    async with serve(agent, accept_in_group="all"):  # per user per conversation: one speaker anyway
        fake.send_text(group, "hello", sender=alice)
        fake.send_text(alice, "hello in private")
        await fake.wait_for_messages(group, 1)
        await fake.wait_for_messages(alice, 1)
    assert [ctx.messages[-1].name for ctx in agent.seen] == [None, None]
