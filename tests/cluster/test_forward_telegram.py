"""A Telegram update posted to node A's webhook for a chat node B owns: the turn runs on B (its store has it) and
the user gets B's answer, as from a single node."""

from __future__ import annotations

import socket

from afactors.channel import Channel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import open_fake_bot_api
from tests.cluster.conftest import OpenNodes

SECRET_TOKEN = "hook-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_telegram_update_sent_to_a_runs_on_b_and_is_answered(nodes: OpenNodes) -> None:
    port_a = free_port()
    hook = f"http://127.0.0.1:{port_a}/hooks/telegram"
    async with open_fake_bot_api() as fake:

        def channels() -> list[Channel]:  # both nodes take webhooks at A's address: the fake posts to A only
            return [TelegramChannel(token=fake.token, api_base=fake.api_base, webhook_url=hook,
                                    secret_token=SECRET_TOKEN)]  # fmt: skip

        async with nodes(channels=channels, a_port=port_a) as n:
            n.cluster.rule = lambda key: "b"
            alice = fake.user("Alice")
            fake.send_text(alice, "remember that clusters work")
            (answer,) = await fake.wait_for_messages(alice, 1)  # delivered after the turn's commit
            (key,) = {key for node, key in n.cluster.located if node == "b"}
            assert n.b.system.snapshot(key.path).seq == 1 and n.a.system.snapshot(key.path).seq == 0
    assert answer["text"] == "Turn 1. I will remember that clusters work."
