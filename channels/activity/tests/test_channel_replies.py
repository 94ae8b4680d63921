"""Messages in, replies out: 202 and a background turn, replies posted to the Connector with the bot's token."""

from __future__ import annotations

from typing import Any


async def echo(messages: Any) -> str:
    return "echo: " + messages[-1].text


async def test_message_is_accepted_and_answered_in_the_background(serve: Any) -> None:
    async with serve(echo) as bot:
        sent = bot.client.message("hello", id="incoming-1")
        answer = await bot.send(sent)
        assert answer.status_code == 202
        assert answer.content == b""
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        (call,) = bot.connector.delivered()
        reply = call.activity
        assert reply.text == "echo: hello"
        assert call.method == "POST" and call.activity_id == "incoming-1"  # threaded under what it answers
        assert reply.reply_to_id == "incoming-1"
        assert reply.from_property.id == sent.recipient.id and reply.recipient.id == sent.from_property.id
        assert reply.conversation.id == sent.conversation.id
        assert call.authorization is not None and call.authorization.split()[1] in bot.identity.issued


async def test_reply_matches_the_models_create_reply(serve: Any) -> None:
    async with serve(echo) as bot:
        sent = bot.client.message("shape", locale="de-DE")
        await bot.send(sent)
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        reply = bot.connector.delivered()[0].activity
        expected = sent.create_reply("echo: shape")
        for field in ("type", "channel_id", "service_url", "reply_to_id", "locale", "text"):
            assert getattr(reply, field) == getattr(expected, field), field
        assert reply.from_property.id == expected.from_property.id
        assert reply.recipient.id == expected.recipient.id
        assert reply.text_format == "markdown"
