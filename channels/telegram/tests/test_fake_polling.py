"""getUpdates semantics of the fake: offsets, long polling, limits, filters, conflicts."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from afactors_telegram.testing import FakeBotApi, open_fake_bot_api


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with open_fake_bot_api(rate_limits=None) as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _updates(fake: FakeBotApi, client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.post(f"{fake.bot_url}/getUpdates", json=params)


async def test_offset_confirms_updates_below_it(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    user = fake.user("Ann")
    for text in ("one", "two", "three"):
        fake.send_text(user, text)
    first = (await _updates(fake, client)).json()["result"]
    assert [u["message"]["text"] for u in first] == ["one", "two", "three"]
    assert [u["update_id"] for u in first] == [1, 2, 3]
    again = (await _updates(fake, client)).json()["result"]
    assert len(again) == 3, "updates stay until confirmed"
    rest = (await _updates(fake, client, offset=3)).json()["result"]
    assert [u["message"]["text"] for u in rest] == ["three"]
    assert fake.pending_updates == 1
    assert (await _updates(fake, client, offset=4)).json() == {"ok": True, "result": []}
    assert fake.pending_updates == 0


async def test_negative_offset_keeps_the_newest(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    user = fake.user("Ann")
    for text in "abcd":
        fake.send_text(user, text)
    result = (await _updates(fake, client, offset=-2)).json()["result"]
    assert [u["message"]["text"] for u in result] == ["c", "d"]
    assert fake.pending_updates == 2


async def test_limit_caps_the_batch(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    user = fake.user("Ann")
    for i in range(5):
        fake.send_text(user, str(i))
    assert len((await _updates(fake, client, limit=2)).json()["result"]) == 2
    assert len((await _updates(fake, client, limit=0)).json()["result"]) == 5, "out of range means the default"


async def test_long_poll_returns_as_soon_as_an_update_arrives(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    user = fake.user("Ann")
    answers: list[httpx.Response] = []

    async def poll() -> None:
        answers.append(await _updates(fake, client, timeout=30))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await fake.wait_until(lambda: fake.polling)
            fake.send_text(user, "wake up")
    assert [u["message"]["text"] for u in answers[0].json()["result"]] == ["wake up"]
    assert not fake.polling


async def test_long_poll_times_out_empty(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    started = trio.current_time()
    answer = await _updates(fake, client, timeout=0.3)
    assert answer.json() == {"ok": True, "result": []}
    assert trio.current_time() - started >= 0.3


async def test_a_second_poller_terminates_the_first(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    answers: dict[str, httpx.Response] = {}

    async def poll(name: str, timeout: float) -> None:
        answers[name] = await _updates(fake, client, timeout=timeout)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll, "first", 30)
            await fake.wait_until(lambda: fake.polling)
            nursery.start_soon(poll, "second", 0)
    assert answers["first"].status_code == 409
    assert answers["first"].json()["description"] == (
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    )
    assert answers["second"].json() == {"ok": True, "result": []}


async def test_setting_a_webhook_ends_a_waiting_poll_with_409(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    answers: list[httpx.Response] = []

    async def poll() -> None:
        answers.append(await _updates(fake, client, timeout=30))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await fake.wait_until(lambda: fake.polling)
            await client.post(f"{fake.bot_url}/setWebhook", json={"url": "http://127.0.0.1:9/hook"})
    assert answers[0].status_code == 409


async def test_allowed_updates_filter_what_is_queued(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    user = fake.user("Ann")
    await _updates(fake, client, allowed_updates=["edited_message"])
    sent = fake.send_text(user, "ignored")
    fake.edit_text(user, sent["message_id"], "edited")
    result = (await _updates(fake, client)).json()["result"]
    assert [list(u) for u in result] == [["update_id", "edited_message"]]
    assert result[0]["edited_message"]["text"] == "edited"
    assert "edit_date" in result[0]["edited_message"]
    await _updates(fake, client, allowed_updates=[])
    fake.send_text(user, "back to defaults")
    fake.block(user)  # my_chat_member is a default kind too
    kinds = [next(k for k in u if k != "update_id") for u in (await _updates(fake, client)).json()["result"]]
    assert kinds == ["edited_message", "message", "my_chat_member"]


async def test_delete_webhook_can_drop_pending_updates(fake: FakeBotApi, client: httpx.AsyncClient) -> None:
    fake.send_text(fake.user("Ann"), "stale")
    answer = await client.post(f"{fake.bot_url}/deleteWebhook", json={"drop_pending_updates": False})
    assert answer.json() == {"ok": True, "result": True, "description": "Webhook is already deleted"}
    assert fake.pending_updates == 1
    await client.post(f"{fake.bot_url}/deleteWebhook", json={"drop_pending_updates": True})
    assert fake.pending_updates == 0
    assert (await _updates(fake, client)).json()["result"] == []
