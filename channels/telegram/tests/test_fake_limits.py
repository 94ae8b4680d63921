"""Flood limits, forced errors and the violation counters of the fake, over loopback HTTP."""

from typing import Any

import httpx

from afactors_telegram.testing import FakeBotApi, ManualClock, RateLimits, open_fake_bot_api


async def _send(client: httpx.AsyncClient, fake: FakeBotApi, chat_id: int, **extra: Any) -> httpx.Response:
    return await client.post(f"{fake.bot_url}/sendMessage", json={"chat_id": chat_id, "text": "x", **extra})


def _flood(retry_after: int) -> dict[str, Any]:
    return {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after}}  # fmt: skip


async def test_per_chat_limit_answers_429_and_counts_violations() -> None:
    clock = ManualClock()
    async with open_fake_bot_api(clock=clock) as fake, httpx.AsyncClient() as client:
        chat = fake.private_chat(fake.user("Ann"))
        assert [(await _send(client, fake, chat.id)).status_code for _ in range(3)] == [200, 200, 200]
        refused = await _send(client, fake, chat.id)
        assert (refused.status_code, refused.json()) == (429, _flood(1))
        clock.advance(0.5)
        assert (await _send(client, fake, chat.id)).status_code == 429, "retrying inside retry_after"
        assert (fake.rate_limit_violations, fake.violations_in(chat)) == (2, 2)
        clock.advance(0.5)
        assert (await _send(client, fake, chat.id)).status_code == 200
        assert (fake.call_count("sendMessage"), fake.answered_count("SendMessage")) == (6, 4), "refusals not answered"
        placeholder = fake.messages(chat)[0]["message_id"]
        edit = await client.post(f"{fake.bot_url}/editMessageText",
                                 json={"chat_id": chat.id, "message_id": placeholder, "text": "edited"})  # fmt: skip
        assert edit.status_code == 429, "edits count against the same limit"
        assert (await client.post(f"{fake.bot_url}/sendChatAction",
                                  json={"chat_id": chat.id, "action": "typing"})).status_code == 200  # fmt: skip
        assert len(fake.messages(chat)) == 4


async def test_global_limit_is_thirty_per_second() -> None:
    clock = ManualClock()
    async with open_fake_bot_api(clock=clock) as fake, httpx.AsyncClient() as client:
        chats = [fake.private_chat(fake.user(f"U{i}")) for i in range(31)]
        statuses = [(await _send(client, fake, chat.id)).status_code for chat in chats]
        assert statuses == [200] * 30 + [429]
        assert fake.violations_in(chats[-1]) == 1


async def test_groups_get_twenty_per_minute() -> None:
    clock = ManualClock()
    limits = RateLimits(per_chat_per_second=100, per_chat_burst=100)
    async with open_fake_bot_api(clock=clock, rate_limits=limits) as fake, httpx.AsyncClient() as client:
        group = fake.group("G")
        statuses = [(await _send(client, fake, group.id)).status_code for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        assert (await _send(client, fake, group.id)).json() == _flood(3)


async def test_limits_can_be_disabled_or_only_counted() -> None:
    async with open_fake_bot_api(rate_limits=None) as fake, httpx.AsyncClient() as client:
        chat = fake.private_chat(fake.user("Ann"))
        assert [(await _send(client, fake, chat.id)).status_code for _ in range(50)] == [200] * 50
        assert fake.rate_limit_violations == 0
    async with open_fake_bot_api(rate_limits=RateLimits(enforce=False), clock=ManualClock()) as fake, \
            httpx.AsyncClient() as client:  # fmt: skip
        chat = fake.private_chat(fake.user("Ann"))
        assert [(await _send(client, fake, chat.id)).status_code for _ in range(10)] == [200] * 10
        assert fake.rate_limit_violations == 7


async def test_forced_flood_wait_must_be_respected() -> None:
    clock = ManualClock()
    async with open_fake_bot_api(rate_limits=None, clock=clock) as fake, httpx.AsyncClient() as client:
        chat, other = fake.private_chat(fake.user("Ann")), fake.private_chat(fake.user("Bob"))
        fake.force_flood_wait(7, chat=chat)
        assert (await _send(client, fake, chat.id)).json() == _flood(7)
        assert fake.rate_limit_violations == 0, "the forced 429 itself is no violation"
        assert (await _send(client, fake, other.id)).status_code == 200
        clock.advance(3)
        assert (await _send(client, fake, chat.id)).json() == _flood(4)
        assert fake.violations_in(chat) == 1
        clock.advance(4)
        assert (await _send(client, fake, chat.id)).status_code == 200


async def test_forced_errors_match_method_and_chat_and_run_out() -> None:
    async with open_fake_bot_api(rate_limits=None) as fake, httpx.AsyncClient() as client:
        chat = fake.private_chat(fake.user("Ann"))
        fake.force_error(502, "Bad Gateway", method="sendMessage", times=2)
        fake.force_error(400, "Bad Request: custom", chat=chat, method="sendChatAction",
                         parameters={"extra": 1})  # fmt: skip
        assert [(await _send(client, fake, chat.id)).status_code for _ in range(3)] == [502, 502, 200]
        action = await client.post(f"{fake.bot_url}/sendChatAction", json={"chat_id": chat.id, "action": "typing"})
        assert action.json() == {"ok": False, "error_code": 400, "description": "Bad Request: custom",
                                 "parameters": {"extra": 1}}  # fmt: skip
