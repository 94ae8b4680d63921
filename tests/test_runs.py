"""Continuation tokens (`GET /v1/runs/<token>`): a Telegram turn past `background_after` answers "working on it"
with a token at once and pushes the answer when done; the token polls over HTTP, survives a restart, expires by
its TTL (410, then 404 once retention removed it) and never crosses tenants."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

import afactors
from afactors.host import Host
from afactors.host._auth import tenant_of_key
from afactors.model import TurnContext, Update
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi
from tests.telegram_fake import CHANNEL_LIMITS

TOKEN = re.compile(r"\b(run_[A-Za-z0-9_-]+)")


class Slow:
    """Answers "done: <text>" once `gate` is set."""

    def __init__(self, gate: trio.Event | None = None) -> None:
        self.gate = gate

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        yield Update(delta="thinking")
        if self.gate is not None:
            await self.gate.wait()
        yield Update(delta=f" done: {ctx.messages[-1].text}")


@asynccontextmanager
async def hosted(fake: FakeBotApi, state: Path, agent: Slow, *, tenant: str = "default",
                 **host: Any) -> AsyncIterator[tuple[Host, httpx.AsyncClient]]:  # fmt: skip
    telegram = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS, tenant=tenant,
                               background_after=0.0, stream=False)  # fmt: skip
    async with (
        afactors.open_host(
            agent, channels=[telegram], state_dir=state, port=0, durability="unsafe", **host
        ) as served,  # fmt: skip
        httpx.AsyncClient(base_url=served.urls[0], timeout=20) as http,
    ):
        yield served, http


async def started(fake: FakeBotApi, chat: Any, n: int = 1) -> str:
    """The token of the n-th "working on it" message in `chat`."""
    messages = await fake.wait_for_messages(chat, n)
    assert messages[n - 1]["text"].startswith("Working on it"), messages
    match = TOKEN.search(messages[n - 1]["text"])
    assert match is not None
    return match.group(1)


async def polled_until_ended(http: httpx.AsyncClient, token: str, **headers: str) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            answer = await http.get(f"/v1/runs/{token}", headers=headers)
            assert answer.status_code == 200, answer.text
            if answer.json()["status"] not in ("queued", "in_progress"):
                return dict(answer.json())
            await trio.sleep(0.02)


async def test_a_long_turn_answers_working_on_it_then_pushes_the_answer(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, gate = fake.user("Alice"), trio.Event()
    async with hosted(fake, tmp_path / "state", Slow(gate)) as (_, http):
        fake.send_text(alice, "a long question")
        token = await started(fake, alice)
        running = await http.get(f"/v1/runs/{token}")
        gate.set()
        _, answer = await fake.wait_for_messages(alice, 2)
        done = await polled_until_ended(http, token)
    assert running.status_code == 200 and running.json()["status"] in ("queued", "in_progress")
    assert running.json()["output_text"] is None
    assert answer["text"] == "thinking done: a long question"
    assert done["status"] == "completed" and done["output_text"] == "thinking done: a long question"
    assert done["output"][0]["role"] == "assistant" and done["expires_at"] > time.time()


async def test_a_token_survives_a_restart_between_start_and_poll(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, state = fake.user("Alice"), tmp_path / "state"
    async with hosted(fake, state, Slow(trio.Event()), drain_timeout=0.1):
        fake.send_text(alice, "cut by the restart")
        token = await started(fake, alice)
    async with hosted(fake, state, Slow()) as (_, http):  # the turn replays from the inbox and ends here
        done = await polled_until_ended(http, token)
        _, answer = await fake.wait_for_messages(alice, 2)
    assert done["status"] == "completed" and done["output_text"] == "thinking done: cut by the restart"
    assert answer["text"] == done["output_text"]


async def test_an_expired_token_is_410_then_404_once_retention_removed_it(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, settings = fake.user("Alice"), {"run_token_ttl": 60.0, "drain_timeout": 0.1}
    async with hosted(fake, tmp_path / "state", Slow(trio.Event()), **settings) as (host, http):
        fake.send_text(alice, "soon forgotten")
        token = await started(fake, alice)
        assert host.runs is not None
        later = time.time() + 61
        host.runs.clock = lambda: later
        expired = await http.get(f"/v1/runs/{token}")
        removed = await host.sweeper.sweep(now=later)
        gone = await http.get(f"/v1/runs/{token}")
    assert expired.status_code == 410, expired.text
    assert expired.json()["error"]["code"] == "token_expired" and "expired at" in expired.json()["error"]["message"]
    assert removed["tokens"] == 1
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_tokens_never_cross_tenants_and_unknown_tokens_are_404(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, gate = fake.user("Alice"), trio.Event()
    keys = {"api_keys": ("key-a", "key-b")}
    async with hosted(fake, tmp_path / "state", Slow(gate), tenant=tenant_of_key("key-a"), **keys) as (_, http):
        fake.send_text(alice, "mine")
        token = await started(fake, alice)
        gate.set()
        own = await polled_until_ended(http, token, Authorization="Bearer key-a")
        other = await http.get(f"/v1/runs/{token}", headers={"Authorization": "Bearer key-b"})
        anonymous = await http.get(f"/v1/runs/{token}")
        unknown = await http.get("/v1/runs/run_nosuchtoken", headers={"Authorization": "Bearer key-a"})
        not_a_token = await http.get("/v1/runs/..%2Fetc", headers={"Authorization": "Bearer key-a"})
    assert own["output_text"] == "thinking done: mine"
    assert other.status_code == 404 and other.json()["error"]["message"].startswith("No run with that token")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert unknown.status_code == 404 and not_a_token.status_code == 404


async def test_a_quick_turn_stays_a_plain_answer(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    telegram = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS, background_after=30)
    async with afactors.open_host(Slow(), channels=[telegram], state_dir=tmp_path / "s", port=0, durability="unsafe"):
        fake.send_text(alice, "quick")
        [answer] = await fake.wait_for_messages(alice, 1)
    assert answer["text"] == "thinking done: quick"
