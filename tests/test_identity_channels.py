"""Identity across real channels on one host: Telegram (fake Bot API) and Responses (the `openai` SDK, raw HTTP).

One person links their Telegram chat and their web account with a one-time code and continues ONE conversation
from both; the HTTP link routes answer bad input with OpenAI-style 4xx errors; tenants never cross.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import afactors
from afactors.host import Host
from afactors_responses import ResponsesChannel
from afactors_telegram import TelegramChannel
from afactors_telegram.testing import FakeBotApi
from tests.telegram_fake import CHANNEL_LIMITS

CODE = re.compile(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b")


@asynccontextmanager
async def both(fake: FakeBotApi, state: Path, **host: Any) -> AsyncIterator[tuple[Host, httpx.AsyncClient]]:
    telegram = TelegramChannel(token=fake.token, api_base=fake.api_base, limits=CHANNEL_LIMITS)
    async with (
        afactors.open_host(
            None, channels=[telegram, ResponsesChannel()], state_dir=state, port=0, durability="unsafe", **host
        ) as served,  # fmt: skip
        httpx.AsyncClient(base_url=served.urls[0], timeout=20) as http,
    ):
        yield served, http


def sdk(host: Host, key: str = "sk-test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=host.urls[0] + "/v1", api_key=key, max_retries=0, timeout=20)


async def ask(client: openai.AsyncOpenAI, user: str, text: str) -> str:
    response = await client.responses.create(
        model="m", input=text, safety_identifier=user, extra_body={"session": "identity"}
    )
    return response.output_text


async def test_link_telegram_to_responses_and_continue_one_conversation(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with both(fake, tmp_path / "state") as (host, http), sdk(host) as client:
        fake.send_text(alice, "hello from telegram")
        fake.send_text(alice, "/link")
        first, answer = await fake.wait_for_messages(alice, 2)
        match = CODE.search(answer["text"])
        assert match is not None, answer["text"]
        assert await ask(client, "alice", "not linked yet") == "Turn 1. You said: not linked yet"
        linked = await http.post("/v1/identity/links", json={"channel": "responses", "user": "alice",
                                                             "code": match.group(1)})  # fmt: skip
        assert linked.status_code == 200, linked.text
        assert linked.json()["linked"] == ["responses/alice", f"telegram/{alice.id}"]
        assert await ask(client, "alice", "hello from the web") == "Turn 2. You said: hello from the web"
        fake.send_text(alice, "back on telegram")
        *_, last = await fake.wait_for_messages(alice, 3)
        again = await http.post("/v1/identity/links", json={"channel": "responses", "user": "bob",
                                                            "code": match.group(1)})  # fmt: skip
    assert first["text"] == "Turn 1. You said: hello from telegram"
    assert last["text"] == "Turn 3. You said: back on telegram"
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_code"
    async with both(fake, tmp_path / "state") as (host, http), sdk(host) as client:  # links survive a restart
        assert await ask(client, "alice", "after a restart") == "Turn 4. You said: after a restart"


async def test_link_from_responses_to_telegram_then_new_and_unlink(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with both(fake, tmp_path / "state") as (host, http), sdk(host) as client:
        assert await ask(client, "alice", "web first") == "Turn 1. You said: web first"
        issued = await http.post("/v1/identity/link_codes", json={"channel": "responses", "user": "alice"})
        assert issued.status_code == 200 and issued.json()["object"] == "identity.link_code"
        fake.send_text(alice, f"/link {issued.json()['code']}")
        fake.send_text(alice, "now on telegram")
        linked, turn = await fake.wait_for_messages(alice, 2)
        fake.send_text(alice, "/new")
        await fake.wait_for_messages(alice, 3)
        assert await ask(client, "alice", "fresh start") == "Turn 1. You said: fresh start"  # /new moved both
        fake.send_text(alice, "/unlink")
        fake.send_text(alice, "alone again")
        *_, unlinked, alone = await fake.wait_for_messages(alice, 5)
        audit = await http.get("/v1/identity/audit/responses/alice")
    assert linked["text"] == "Linked. Your conversation now continues on: responses, telegram."
    assert turn["text"] == "Turn 2. You said: now on telegram"
    assert unlinked["text"] == "Unlinked: this chat is a conversation of its own again."
    assert alone["text"] == "Turn 1. You said: alone again"
    assert [row["action"] for row in audit.json()["data"]] == ["link", "new_conversation", "unlink"]
    assert audit.json()["last"] == "responses/alice"  # last seen: the member active most recently, and when
    assert audit.json()["members"]["responses/alice"]["last_seen_at"] > 0


async def test_link_codes_stay_out_of_groups_and_wrong_codes_are_told(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    group = fake.group("Friends")
    async with both(fake, tmp_path / "state"):
        fake.send_text(group, "/link", sender=alice)
        [in_group] = await fake.wait_for_messages(group, 1)
        fake.send_text(alice, "/link ABCD-EFGH")
        [wrong] = await fake.wait_for_messages(alice, 1)
    assert in_group["text"] == "Send /link to me in a private chat."
    assert CODE.search(in_group["text"]) is None
    assert wrong["text"] == "That code is not valid. Send /link on the other channel for a new one."


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/identity/link_codes", b"{nope", 400, "invalid_request"),
        ("/v1/identity/link_codes", b"[]", 400, "invalid_request"),
        ("/v1/identity/link_codes", b'{"channel": "responses"}', 400, "missing_required_parameter"),
        ("/v1/identity/link_codes", b'{"channel": "responses", "user": 7}', 400, "invalid_request"),
        ("/v1/identity/link_codes", b'{"channel": "telegram", "user": "42"}', 400, "invalid_request"),
        ("/v1/identity/link_codes", b'{"channel": "nowhere", "user": "42"}', 400, "invalid_request"),
        ("/v1/identity/links", b'{"channel": "responses", "user": "u", "code": "??"}', 400, "invalid_code"),
    ],
)
async def test_bad_input_to_the_link_routes(
    fake: FakeBotApi, tmp_path: Path, path: str, body: bytes, status: int, code: str
) -> None:
    async with both(fake, tmp_path / "state") as (_, http):
        answer = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]


async def test_tenants_never_cross_over_http(fake: FakeBotApi, tmp_path: Path) -> None:
    async with both(fake, tmp_path / "state", api_keys=["key-a", "key-b"]) as (host, http):
        a, b = {"Authorization": "Bearer key-a"}, {"Authorization": "Bearer key-b"}
        unauthenticated = await http.post("/v1/identity/link_codes", json={"channel": "responses", "user": "x"})
        issued = await http.post("/v1/identity/link_codes", json={"channel": "responses", "user": "x"}, headers=a)
        redeem = {"channel": "responses", "user": "y", "code": issued.json()["code"]}
        crossed = await http.post("/v1/identity/links", headers=b, json=redeem)
        audit_b = await http.get("/v1/identity/audit/responses/x", headers=b)
        async with sdk(host, "key-a") as client_a, sdk(host, "key-b") as client_b:
            assert await ask(client_a, "x", "in a") == "Turn 1. You said: in a"
            assert await ask(client_b, "x", "in b") == "Turn 1. You said: in b"
    assert unauthenticated.status_code == 401
    assert crossed.status_code == 400 and crossed.json()["error"]["code"] == "invalid_code"
    assert audit_b.status_code == 404


async def test_session_identity_needs_a_user_and_no_other_chain(fake: FakeBotApi, tmp_path: Path) -> None:
    async with both(fake, tmp_path / "state") as (_, http):
        no_user = await http.post("/v1/responses", json={"input": "hi", "session": "identity"})
        chained = await http.post("/v1/responses", json={"input": "hi", "session": "identity", "user": "u",
                                                         "conversation": "c1"})  # fmt: skip
        unknown = await http.post("/v1/responses", json={"input": "hi", "session": "forever", "user": "u"})
    for answer in (no_user, chained, unknown):
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "session"
