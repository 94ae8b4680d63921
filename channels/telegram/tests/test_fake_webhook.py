"""Webhook delivery by the fake: secret header, retries on non-2xx, per-chat order, reply methods."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import attrs
import httpx
import orjson
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from afactors_telegram.testing import SECRET_HEADER, FakeBotApi, WebhookPolicy, make_png, open_fake_bot_api

Answer = tuple[int, dict[str, Any]]


@attrs.define
class Receiver:
    """A webhook endpoint on loopback that records requests and answers as ``respond`` says."""

    respond: Callable[[dict[str, Any]], Answer]
    url: str = ""
    received: list[tuple[dict[str, str], dict[str, Any]]] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/image.png":
            status, payload = 200, make_png(4, 4)
        else:
            update = orjson.loads(body)
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.received.append((headers, update))
            code, answer = self.respond(update)
            status, payload = code, orjson.dumps(answer)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": payload})


@asynccontextmanager
async def open_receiver(respond: Callable[[dict[str, Any]], Answer]) -> AsyncIterator[Receiver]:
    receiver = Receiver(respond)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.loglevel = "WARNING"
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, receiver, config, shutdown_trigger=stop.wait))
        receiver.url = binds[0]
        try:
            yield receiver
        finally:
            stop.set()


def _ok(update: dict[str, Any]) -> Answer:
    return 200, {}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with open_fake_bot_api(rate_limits=None, webhook=WebhookPolicy(retry_delay=0.01)) as fake:
        yield fake


async def _set_webhook(fake: FakeBotApi, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        return (await client.post(f"{fake.bot_url}/setWebhook", json=params)).json()


async def test_updates_are_pushed_with_the_secret_header(fake: FakeBotApi) -> None:
    user = fake.user("Ann")
    fake.send_text(user, "queued before setWebhook")
    async with open_receiver(_ok) as receiver:
        answer = await _set_webhook(fake, url=f"{receiver.url}/hook", secret_token="s3cr3t_-X")
        assert answer == {"ok": True, "result": True, "description": "Webhook was set"}
        fake.send_text(user, "after")
        await fake.wait_until(lambda: len(receiver.received) == 2 and fake.pending_updates == 0)
    assert [update["message"]["text"] for _, update in receiver.received] == ["queued before setWebhook", "after"]
    for headers, _ in receiver.received:
        assert headers[SECRET_HEADER.lower()] == "s3cr3t_-X"
        assert headers["content-type"] == "application/json"
    info = fake.webhook_info()
    assert info == {"url": f"{receiver.url}/hook", "has_custom_certificate": False, "pending_update_count": 0,
                    "max_connections": 40}  # fmt: skip
    assert await _set_webhook(fake, url=f"{receiver.url}/hook", secret_token="s3cr3t_-X") == {
        "ok": True, "result": True, "description": "Webhook is already set"}  # fmt: skip


async def test_non_2xx_answers_are_retried_until_accepted(fake: FakeBotApi) -> None:
    attempts: list[int] = []

    def flaky(update: dict[str, Any]) -> Answer:
        attempts.append(update["update_id"])
        return (500, {}) if len(attempts) <= 2 else (200, {})

    async with open_receiver(flaky) as receiver:
        await _set_webhook(fake, url=f"{receiver.url}/hook")
        fake.send_text(fake.user("Ann"), "retry me")
        await fake.wait_until(lambda: fake.pending_updates == 0)
    assert attempts == [1, 1, 1]
    info = fake.webhook_info()
    assert info["last_error_message"] == "Wrong response from the webhook: 500 Internal Server Error"
    assert isinstance(info["last_error_date"], int)


async def test_an_unreachable_webhook_keeps_updates_pending(fake: FakeBotApi) -> None:
    await _set_webhook(fake, url="http://127.0.0.1:9/hook")
    fake.send_text(fake.user("Ann"), "nobody listens")
    await fake.wait_until(lambda: "last_error_message" in fake.webhook_info())
    assert fake.pending_updates == 1
    async with httpx.AsyncClient() as client:
        await client.post(f"{fake.bot_url}/deleteWebhook")
        result = (await client.post(f"{fake.bot_url}/getUpdates")).json()["result"]
    assert [u["message"]["text"] for u in result] == ["nobody listens"]


async def test_each_chat_receives_its_updates_in_order(fake: FakeBotApi) -> None:
    async with open_receiver(_ok) as receiver:
        await _set_webhook(fake, url=f"{receiver.url}/hook", max_connections=8)
        users = [fake.user(f"U{i}") for i in range(6)]
        for n in range(10):
            for user in users:
                fake.send_text(user, str(n))
        await fake.wait_until(lambda: fake.pending_updates == 0 and len(receiver.received) == 60)
    for user in users:
        texts = [u["message"]["text"] for _, u in receiver.received if u["message"]["chat"]["id"] == user.id]
        assert texts == [str(n) for n in range(10)]


async def test_a_webhook_answer_may_carry_a_method_call(fake: FakeBotApi) -> None:
    def reply(update: dict[str, Any]) -> Answer:
        return 200, {"method": "sendMessage", "chat_id": update["message"]["chat"]["id"], "text": "pong"}

    user = fake.user("Ann")
    async with open_receiver(reply) as receiver:
        await _set_webhook(fake, url=f"{receiver.url}/hook")
        fake.send_text(user, "ping")
        sent = await fake.wait_for_messages(user, 1)
    assert sent[0]["text"] == "pong"


async def test_delete_webhook_stops_pushing(fake: FakeBotApi) -> None:
    async with open_receiver(_ok) as receiver:
        await _set_webhook(fake, url=f"{receiver.url}/hook")
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{fake.bot_url}/deleteWebhook")
        assert answer.json() == {"ok": True, "result": True, "description": "Webhook was deleted"}
        fake.send_text(fake.user("Ann"), "kept for polling")
        assert fake.pending_updates == 1
        assert receiver.received == []
        assert fake.webhook_info() == {"url": "", "has_custom_certificate": False, "pending_update_count": 1}


async def test_send_photo_fetches_an_http_url(fake: FakeBotApi) -> None:
    user = fake.user("Ann")
    fake.private_chat(user)
    async with open_receiver(_ok) as server, httpx.AsyncClient() as client:
        answer = await client.post(f"{fake.bot_url}/sendPhoto",
                                   json={"chat_id": user.id, "photo": f"{server.url}/image.png"})  # fmt: skip
    photo = answer.json()["result"]["photo"]
    assert (photo[0]["width"], photo[0]["height"]) == (4, 4)
