"""Outbound delivery through the durable outbox: the bot's token, retries honouring Retry-After, dead letters."""

from __future__ import annotations

import email.utils
from typing import Any

import trio

from afactors.model import Identity, Message, ResponseTarget
from afactors_activity.connector import MAX_RETRY_AFTER, retry_after_seconds
from afactors_activity.outbound import echo_quote


async def echo(messages: list[Message]) -> str:
    return "echo: " + messages[-1].text


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    now = 1_800_000_000.0
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry_after_seconds("86400", now) == MAX_RETRY_AFTER  # one reply cannot stall a conversation for a day
    assert retry_after_seconds(email.utils.formatdate(now + 86400, usegmt=True), now) == MAX_RETRY_AFTER
    for unreadable in (None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2026 00:00:00"):
        assert retry_after_seconds(unreadable, now) is None, unreadable


async def test_the_token_is_fetched_once_and_reused(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:  # no streaming: one message per turn
        for n in range(3):
            await bot.say(f"m{n}")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 3)
        (request,) = bot.identity.token_requests
        assert (
            request["grant_type"] == "client_credentials"
            and request["scope"] == "https://api.botframework.com/.default"
        )
        assert len({c.authorization for c in bot.connector.calls}) == 1


async def test_a_refused_token_is_replaced_at_once(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        await bot.say("one")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        bot.identity.issued.clear()  # revoked: the Connector now answers 401 to it
        await bot.say("two")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        assert len(bot.identity.token_requests) == 2
        assert bot.connector.delivered()[1].body["text"] == "echo: two"


async def test_an_expiring_token_is_refreshed_before_it_runs_out(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        bot.identity.token_lifetime = 1  # refreshed after half its life
        await bot.say("one")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        await trio.sleep(0.6)
        await bot.say("two")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        assert len(bot.identity.token_requests) == 2
        assert all(c.status == 200 for c in bot.connector.calls)  # never sent a stale token


async def test_throttling_is_retried_after_the_services_retry_after(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        bot.connector.fail_next(429, retry_after="1")
        await bot.say("patience")
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        tries = [c for c in bot.connector.calls if c.body.get("type") == "message"]
        assert [c.status for c in tries] == [429, 200]
        assert tries[1].at - tries[0].at >= 0.95
        assert tries[1].body["text"] == "echo: patience"


async def test_server_errors_are_retried_and_delivered_once(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        bot.connector.fail_next(503, retry_after="0", times=2)
        await bot.say("again")
        await bot.connector.wait_until(lambda: bot.connector.delivered())
        await trio.sleep(0.2)
        assert [c.status for c in bot.connector.calls if c.body.get("type") == "message"] == [503, 503, 200]
        assert len(bot.connector.delivered()) == 1


async def test_a_permanent_refusal_is_dead_lettered_not_retried(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        bot.connector.fail_next(400)
        await bot.say("doomed")
        (dead,) = await bot.dead_lettered()
        assert [c.status for c in bot.connector.calls] == [400]
        assert "400" in dead.error


async def test_a_push_without_a_turn_reaches_a_known_user(serve: Any) -> None:
    async with serve(echo, channel_id="emulator") as bot:
        await bot.say("hello")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 1)
        [(link_key, _)] = bot.host.store.scan("links", "default/activity/")
        user = link_key.removeprefix("default/activity/")
        target = ResponseTarget.to_identities([Identity("activity", user)])
        first = await bot.host.push(target, "the build is green", idempotency_key="build-1")
        again = await bot.host.push(target, "the build is green", idempotency_key="build-1")
        await bot.connector.wait_until(lambda: len(bot.connector.delivered()) == 2)
        await bot.outbox_drained()
    assert again.duplicate and again.id == first.id
    assert [c.body["text"] for c in bot.connector.delivered()] == ["echo: hello", "the build is green"]


def test_an_echo_is_quoted_line_by_line() -> None:
    assert echo_quote((Message("user", "first line\nsecond"), Message("user", " "))) == "> first line\n> second"
