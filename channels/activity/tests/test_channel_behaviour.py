"""What a user sees: expectReplies, invoke, welcomes, group mentions, scopes, /new, generic errors, proactive."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from microsoft_agents.activity import Activity, ChannelAccount, ExpectedReplies

from afactors.model import Message
from afactors.testing import disk_full
from afactors_activity.outbound import GENERIC_ERROR, NEW_CONVERSATION_TEXT


async def echo(messages: list[Message]) -> str:
    return "echo: " + messages[-1].text


async def history(messages: list[Message]) -> str:
    """Answers with every user message of the conversation so far."""
    return " | ".join(m.text for m in messages if m.role == "user")


async def broken(messages: list[Message]) -> str:
    raise RuntimeError("database password is hunter2")


async def test_expect_replies_answers_200_with_the_replies_and_posts_nothing(serve: Any) -> None:
    async with serve(echo) as bot:
        answer = await bot.say("sync please", delivery_mode="expectReplies")
        assert answer.status_code == 200
        replies = ExpectedReplies.model_validate(answer.json())
        assert [Activity.model_validate(a).text for a in replies.activities] == ["echo: sync please"]
        reply = Activity.model_validate(replies.activities[0])
        assert reply.reply_to_id is not None and reply.type == "message"
        ignored = await bot.say("not for the bot", conversation="19:g", conversation_type="groupChat",
                                delivery_mode="expectReplies")  # fmt: skip
        assert ignored.status_code == 200 and ignored.json() == {"activities": []}
        await trio.sleep(0.2)
        assert bot.connector.calls == []  # no typing, no streaming, no posted reply


async def test_expect_replies_of_a_failed_turn_is_generic(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "afactors.activity")
    async with serve(broken) as bot:
        answer = await bot.say("boom", delivery_mode="expectReplies")
        assert answer.status_code == 200
        assert [a["text"] for a in answer.json()["activities"]] == [GENERIC_ERROR]
        assert "hunter2" not in answer.text
    assert "hunter2" in caplog.text  # the details go to the log


async def test_a_failed_turn_shows_only_a_generic_message(serve: Any) -> None:
    async with serve(broken) as bot:
        await bot.say("boom")
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        assert [c.body["text"] for c in bot.connector.delivered()] == [GENERIC_ERROR]
        assert all("hunter2" not in str(c.body) for c in bot.connector.calls)


async def test_invoke_gets_501_and_other_activity_types_202_and_nothing_else(serve: Any) -> None:
    async with serve(echo) as bot:
        invoke = bot.client.message("", type="invoke", name="adaptiveCard/action", value={"verb": "x"})
        answer = await bot.send(invoke)
        assert answer.status_code == 501
        assert answer.json()["error"]["code"] == "NotImplemented"
        for kind in ("typing", "endOfConversation", "messageReaction", "installationUpdate", "event", "madeUp"):
            answer = await bot.send(bot.client.message("", type=kind))
            assert answer.status_code == 202, kind
        await trio.sleep(0.1)
        assert bot.connector.calls == []


async def test_a_full_disk_is_507_with_retry_after_so_the_service_redelivers(serve: Any) -> None:
    async with serve(echo) as bot:
        disk_full(bot.host.store)
        full = await bot.say("hello")
        disk_full(bot.host.store, False)
        again = await bot.say("hello")
        await bot.connector.wait_until(lambda: bot.connector.delivered())
    assert full.status_code == 507 and full.headers["retry-after"] == "30"
    assert full.json()["error"]["code"] == "InsufficientStorage"
    assert again.status_code == 202 and len(bot.connector.delivered()) == 1


async def test_the_bot_greets_a_conversation_it_joins(serve: Any) -> None:
    async with serve(echo, welcome_text="Hi, I am Helper.") as bot:
        joined = bot.client.message("", type="conversationUpdate", members_added=[bot.client.bot, bot.client.user()])
        assert (await bot.send(joined)).status_code == 202
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        (call,) = bot.connector.delivered()
        assert call.body["text"] == "Hi, I am Helper." and call.activity_id is None  # sent to the conversation
        other = bot.client.message("", type="conversationUpdate", members_added=[ChannelAccount(id="29:someone")])
        assert (await bot.send(other)).status_code == 202
        await trio.sleep(0.1)
        assert len(bot.connector.delivered()) == 1


async def test_group_chats_answer_only_when_the_bot_is_mentioned(serve: Any) -> None:
    async with serve(echo) as bot:
        group = {"conversation": "19:team@thread.v2", "conversation_type": "groupChat"}
        assert (await bot.say("chatting among ourselves", **group)).status_code == 202
        assert (await bot.say("what is 2+2?", mention_bot=True, **group)).status_code == 202
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        await trio.sleep(0.1)
        assert [c.body["text"] for c in bot.connector.delivered()] == ["echo: what is 2+2?"]


async def test_teams_channel_threads_need_a_mention_too(serve: Any) -> None:
    async with serve(echo) as bot:
        thread = {"conversation": "19:general@thread.tacv2;messageid=1700", "conversation_type": "channel"}
        await bot.say("no mention", **thread)
        await bot.say("hello team", mention_bot=True, **thread)
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        (call,) = bot.connector.delivered()
        assert call.body["text"] == "echo: hello team"
        assert call.conversation == "19:general@thread.tacv2;messageid=1700"


async def test_scope_per_conversation_shares_a_group_history(serve: Any) -> None:
    async with serve(history, conversation_scope="per_conversation") as bot:
        group = {"conversation": "19:g@thread.v2", "conversation_type": "groupChat", "mention_bot": True}
        await bot.say("from alice", user=bot.client.user(1), **group)
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        await bot.say("from bob", user=bot.client.user(2), **group)
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        assert bot.connector.delivered()[1].body["text"] == "from alice | from bob"


async def test_default_scope_keeps_each_users_group_history_apart(serve: Any) -> None:
    async with serve(history) as bot:
        group = {"conversation": "19:g@thread.v2", "conversation_type": "groupChat", "mention_bot": True}
        await bot.say("from alice", user=bot.client.user(1), **group)
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        await bot.say("from bob", user=bot.client.user(2), **group)
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        assert bot.connector.delivered()[1].body["text"] == "from bob"


async def test_slash_new_starts_afresh(serve: Any) -> None:
    async with serve(history) as bot:
        await bot.say("one")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        await bot.say("/new")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        await bot.say("two")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 3)
        assert [c.body["text"] for c in bot.connector.delivered()] == ["one", NEW_CONVERSATION_TEXT, "two"]


async def test_a_redelivered_activity_runs_once(serve: Any) -> None:
    async with serve(history) as bot:
        first = bot.client.message("only once", id="dup-1")
        assert (await bot.send(first)).status_code == 202
        assert (await bot.send(first)).status_code == 202
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        await trio.sleep(0.3)
        assert [c.body["text"] for c in bot.connector.delivered()] == ["only once"]


async def test_replies_keep_the_order_of_the_messages(serve: Any) -> None:
    async with serve(echo) as bot:
        for n in range(5):
            assert (await bot.say(f"m{n}")).status_code == 202
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 5)
        assert [c.body["text"] for c in bot.connector.delivered()] == [f"echo: m{n}" for n in range(5)]


async def test_a_busy_conversation_is_told_so_generically(serve: Any) -> None:
    release = trio.Event()

    async def slow(messages: list[Message]) -> str:
        await release.wait()
        return "done"

    async with serve(slow, busy_policy="reject") as bot:
        await bot.say("first")
        await trio.sleep(0.1)
        assert (await bot.say("second")).status_code == 202
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        assert "still answering" in bot.connector.delivered()[0].body["text"]
        release.set()
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)


async def test_proactive_messages_use_the_stored_conversation_reference(serve: Any) -> None:
    async with serve(echo) as bot:
        await bot.say("remember me")
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        conversation = "activity:msteams:tenant-1:29:user-1"
        ref = bot.channel.reference(conversation)
        assert ref is not None and ref.activity_id is None and ref.service_url == bot.connector.service_url
        await bot.channel.send_proactive(conversation, "a reminder")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        call = bot.connector.delivered()[1]
        assert call.body["text"] == "a reminder" and call.activity_id is None and "replyToId" not in call.body
        assert call.authorization is not None and call.authorization.split()[1] in bot.identity.issued
        with pytest.raises(LookupError):
            await bot.channel.send_proactive("activity:msteams:tenant-1:nobody", "hi")
