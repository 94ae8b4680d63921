"""The webhook transport: setWebhook with a secret, the secret checked on every POST (T-01..T-03)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import trio

from afactors.host import ServerLimits
from afactors_telegram.testing import SECRET_HEADER, FakeBotApi

Serve = Callable[..., Any]  # the `serve` fixture of conftest.py
SECRET = "s3cret-Token_x"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


def webhook(port: int) -> str:
    return f"http://127.0.0.1:{port}/hooks/telegram"


async def test_updates_arrive_by_webhook_and_are_answered(fake: FakeBotApi, serve: Serve, port: int) -> None:
    alice = fake.user("Alice")
    async with serve(webhook_url=webhook(port), secret_token=SECRET, host_kwargs={"port": port}):
        info = fake.webhook_info()
        assert info["url"] == webhook(port)
        fake.send_text(alice, "remember that webhooks work")
        fake.send_text(alice, "what do you remember?")
        first, second = await fake.wait_for_messages(alice, 2)
        await fake.wait_until(lambda: fake.pending_updates == 0)
    assert first["text"] == "Turn 1. I will remember that webhooks work."
    assert second["text"] == "Turn 2. I remember: webhooks work."
    assert not fake.calls("getUpdates")
    assert "last_error_message" not in fake.webhook_info()


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: "wrong"}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: SECRET + "x"}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: ""}, b'{"update_id": 1}', 403),
        ({SECRET_HEADER: SECRET}, b"not json", 400),
        ({SECRET_HEADER: SECRET}, b"[1, 2]", 400),
        ({SECRET_HEADER: SECRET}, b'{"message": {}}', 400),
        ({SECRET_HEADER: SECRET}, b'{"update_id": "7"}', 400),
    ],
)
async def test_bad_webhook_requests_are_refused(fake: FakeBotApi, serve: Serve, port: int, headers: dict[str, str],
                                                body: bytes, status: int) -> None:  # fmt: skip
    async with serve(webhook_url=webhook(port), secret_token=SECRET, host_kwargs={"port": port}):
        async with httpx.AsyncClient() as client:
            answer = await client.post(webhook(port), content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["ok"] is False and answer.json()["description"]


async def test_a_posted_update_is_answered_once_even_if_posted_twice(fake: FakeBotApi, serve: Serve, port: int) -> None:
    alice = fake.user("Alice")
    chat = fake.private_chat(alice)
    update = {
        "update_id": 900,
        "message": {"message_id": 1, "date": 0, "chat": chat.wire(), "from": alice.wire(), "text": "posted by hand"},
    }
    async with serve(webhook_url=webhook(port), secret_token=SECRET, host_kwargs={"port": port}):
        async with httpx.AsyncClient() as client:
            for _ in range(2):
                answer = await client.post(webhook(port), json=update, headers={SECRET_HEADER: SECRET})
                assert answer.status_code == 200 and answer.json() == {"ok": True}
        [reply] = await fake.wait_for_messages(alice, 1)
        fake.send_text(alice, "and again")
        second = (await fake.wait_for_messages(alice, 2))[1]
    assert reply["text"] == "Turn 1. You said: posted by hand"
    assert second["text"] == "Turn 2. You said: and again"  # the repeated POST never ran a turn
    assert len(fake.messages(alice)) == 2


async def test_a_random_secret_is_used_when_none_is_configured(fake: FakeBotApi, serve: Serve, port: int) -> None:
    alice = fake.user("Alice")
    async with serve(webhook_url=webhook(port), host_kwargs={"port": port}) as (_, channel):
        assert len(channel.secret_token) >= 32
        fake.send_text(alice, "hi")
        await fake.wait_for_messages(alice, 1)
        async with httpx.AsyncClient() as client:
            answer = await client.post(webhook(port), json={"update_id": 5})
    assert answer.status_code == 403


async def test_an_unfinished_webhook_body_gets_408_in_its_envelope(fake: FakeBotApi, serve: Serve, port: int) -> None:
    limits = ServerLimits(body_timeout=0.5)
    async with serve(webhook_url=webhook(port), secret_token=SECRET, host_kwargs={"port": port, "limits": limits}):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            head = (f"POST /hooks/telegram HTTP/1.1\r\nhost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
                    "content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"update_id\"")  # fmt: skip
            await stream.send_all(head.encode())
            answer = b""
            with trio.fail_after(10):
                while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                    answer += await stream.receive_some(4096)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["ok"] is False
