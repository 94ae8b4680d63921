"""Response targets across real channels on one host: Telegram (fake Bot API), Responses (the `openai` SDK) and
Invocations (HTTP). Every target kind, with and without `echo_input`; the delivery audit; per-destination
response hooks; the deliver policy of confidentiality tiers; bad targets refused at request time; tenants never
cross.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import openai
import trio

from afactors.host import Host
from afactors.identity import ExplicitPairs, IdentityConfig
from afactors.model import Envelope, Identity, Message, Reply, ResponseTarget
from afactors_invocations import InvocationsChannel
from afactors_telegram.testing import FakeBotApi
from afactors_telegram.testing.model import User
from tests.telegram_fake import telegram_host

CODE = re.compile(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b")
ECHO = "You wrote:\n"


@attrs.frozen
class Served:
    host: Host
    http: httpx.AsyncClient
    sdk: openai.AsyncOpenAI


@asynccontextmanager
async def serving(
    fake: FakeBotApi, state: Path, *, telegram: dict[str, Any] | None = None, agent: Any = None, **host: Any
) -> AsyncIterator[Served]:
    async with (
        telegram_host(fake, state, agent, telegram=telegram, http_channels=[InvocationsChannel()], **host) as (
            served, http),
        openai.AsyncOpenAI(base_url=served.urls[0] + "/v1", api_key="sk-test", max_retries=0, timeout=20) as sdk,
    ):  # fmt: skip
        yield Served(served, http, sdk)


async def link(fake: FakeBotApi, http: httpx.AsyncClient, user: User, channel: str, native: str) -> None:
    """Link `channel/native` (an HTTP channel) to `user`'s Telegram chat with a one-time code, after a message
    (the chat's address becomes known when the user writes; a command does not record it). Two messages."""
    before = len(fake.messages(user))
    fake.send_text(user, "hello")
    await fake.wait_for_messages(user, before + 1)
    fake.send_text(user, "/link")
    *_, answer = await fake.wait_for_messages(user, before + 2)
    match = CODE.search(answer["text"])
    assert match is not None, answer["text"]
    linked = await http.post("/v1/identity/links", json={"channel": channel, "user": native, "code": match.group(1)})
    assert linked.status_code == 200, linked.text


async def ask(sdk: openai.AsyncOpenAI, user: str, text: str, target: object, **extra: Any) -> Any:
    return await sdk.responses.create(
        model="m", input=text, safety_identifier=user, extra_body={"response_target": target, **extra}
    )


async def audit(http: httpx.AsyncClient, delivery_id: str, *, settled: int) -> dict[str, Any]:
    """The delivery audit once `settled` of its rows are no longer pending."""
    with trio.fail_after(10):
        while True:
            answer = await http.get(f"/v1/deliveries/{delivery_id}")
            assert answer.status_code == 200, answer.text
            report: dict[str, Any] = answer.json()
            if len(report["destinations"]) - report["counts"]["pending"] >= settled:
                return report
            await trio.sleep(0.02)


async def test_named_channel_with_echo_from_responses_and_the_audit(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s") as s:
        await link(fake, s.http, alice, "responses", "alice")
        target = {"kind": "channels", "channels": ["telegram"], "echo_input": True}
        response = await ask(s.sdk, "alice", "plan my day", target)
        echo, pushed = (await fake.wait_for_messages(alice, 4))[2:]
        report = await audit(s.http, response.id, settled=1)
    assert response.output_text == "Turn 1. You said: plan my day"  # the caller still gets its answer
    assert echo["text"] == ECHO + "plan my day"
    assert pushed["text"] == "Turn 1. You said: plan my day"
    assert report["source"] == "responses" and report["target"]["kind"] == "channels"
    [row] = report["destinations"]
    assert row["channel"] == "telegram" and row["user"] == str(alice.id)
    assert row["status"] == "delivered" and row["echo"] is True and row["originating"] is False
    assert report["counts"] == {"pending": 0, "delivered": 1, "dead_lettered": 0}


async def test_all_linked_without_echo_skips_channels_that_cannot_push(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s") as s:
        await link(fake, s.http, alice, "responses", "alice")
        await link(fake, s.http, alice, "invocations", "alice-inv")
        response = await ask(s.sdk, "alice", "hi everywhere", "all_linked")
        pushed = (await fake.wait_for_messages(alice, 5))[4]
        report = await audit(s.http, response.id, settled=1)
    assert pushed["text"] == "Turn 1. You said: hi everywhere"
    assert [(r["channel"], r["status"], r["echo"]) for r in report["destinations"]] == [
        ("telegram", "delivered", False)
    ]
    assert report["skipped"] == [{"channel": "invocations", "user": "alice-inv", "reason": "cannot_push"}]


async def test_active_goes_where_the_person_was_last_seen_else_originating(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s") as s:
        await link(fake, s.http, alice, "responses", "alice")
        fake.send_text(alice, "on my phone")  # Telegram is where Alice was seen last
        await fake.wait_for_messages(alice, 3)
        first = await ask(s.sdk, "alice", "answer me where I am", {"kind": "active", "echo_input": True})
        echo, pushed = (await fake.wait_for_messages(alice, 5))[3:]
        s.host.router.active_window = 0.0  # Telegram is no longer "active": the answer stays where it was asked
        second = await ask(s.sdk, "alice", "and now?", "active")
        report = await audit(s.http, second.id, settled=0)
    assert first.output_text == "Turn 1. You said: answer me where I am"
    assert (echo["text"], pushed["text"]) == (ECHO + "answer me where I am", first.output_text)
    assert second.output_text == "Turn 1. You said: and now?"
    assert report["destinations"] == [] and len(fake.messages(alice)) == 5


async def test_explicit_identities_and_none_from_invocations(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    async with serving(fake, tmp_path / "s") as s:
        fake.send_text(bob, "hello")  # Bob is known (not linked to anyone)
        await fake.wait_for_messages(bob, 1)
        headers = {"x-agent-user-id": "ops"}
        target = {"kind": "identities", "identities": [{"channel": "telegram", "user": str(bob.id)}],
                  "echo_input": True}  # fmt: skip
        sent = await s.http.post("/invocations", json={"message": "tell Bob", "response_target": target},
                               headers=headers)  # fmt: skip
        echo, pushed = (await fake.wait_for_messages(bob, 3))[1:]
        quiet = await s.http.post("/invocations", json={"message": "nobody hears", "response_target": "none"},
                                headers=headers)  # fmt: skip
        location = quiet.headers["location"]
        with trio.fail_after(10):
            while (polled := (await s.http.get(location, headers=headers)).json())["status"] != "completed":
                await trio.sleep(0.02)
        fake.send_text(alice, "hi")
        await fake.wait_for_messages(alice, 1)
    assert sent.status_code == 200 and sent.json()["response"] == "Turn 1. You said: tell Bob"
    assert (echo["text"], pushed["text"]) == (ECHO + "tell Bob", "Turn 1. You said: tell Bob")
    assert quiet.status_code == 202 and polled["status"] == "completed"
    assert len(fake.messages(bob)) == 3 and len(fake.messages(alice)) == 1  # "none" pushed nowhere


async def test_none_from_responses_is_a_background_response(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    async with serving(fake, tmp_path / "s") as s:
        await link(fake, s.http, alice, "responses", "alice")
        queued = await ask(s.sdk, "alice", "in the background", "none")
        with trio.fail_after(10):
            while (done := await s.sdk.responses.retrieve(queued.id)).status != "completed":
                await trio.sleep(0.02)
    assert queued.status in ("queued", "in_progress", "completed")
    assert done.output_text == "Turn 1. You said: in the background"
    assert len(fake.messages(alice)) == 2  # only those of the link


def _targeted(target: ResponseTarget) -> Any:
    """A run hook sending every turn's answer to `target`."""

    def hook(envelope: Envelope) -> Envelope:
        return attrs.evolve(envelope, response_target=target)

    return hook


def _shout(envelope: Envelope, reply: Reply) -> Reply:
    """A response hook: upper case, marked with whom it is for (or as the echo)."""
    who = envelope.identity.user_id if envelope.identity is not None else "?"
    prefix = "ECHO " if envelope.options.get("echo") else f"to {who}: "
    return Reply(messages=tuple(Message(m.role, prefix + m.text.upper()) for m in reply.messages))


async def test_telegram_run_hook_targets_another_chat_with_a_response_hook(fake: FakeBotApi, tmp_path: Path) -> None:
    alice, bob = fake.user("Alice"), fake.user("Bob")
    async with serving(fake, tmp_path / "s", telegram={"response_hook": _shout}) as s:
        fake.send_text(bob, "hello")
        await fake.wait_for_messages(bob, 1)
        s.host.channels["telegram"].run_hook = _targeted(
            ResponseTarget.to_identities([Identity("telegram", str(bob.id))], echo_input=True)
        )
        fake.send_text(alice, "meet at noon")
        echo, pushed = (await fake.wait_for_messages(bob, 3))[1:]
    assert echo["text"] == ECHO + "ECHO MEET AT NOON"
    assert pushed["text"] == f"to {bob.id}: TURN 1. YOU SAID: MEET AT NOON"
    assert fake.messages(alice) == []  # an explicit target without the originating chat: Alice gets nothing


async def test_per_channel_default_all_linked_keeps_the_originating_chat(fake: FakeBotApi, tmp_path: Path) -> None:
    phone, tablet = fake.user("Alice"), fake.user("Alice2")
    defaults = {"telegram": ResponseTarget.all_linked(echo_input=True)}
    async with serving(fake, tmp_path / "s", response_targets=defaults):
        fake.send_text(tablet, "hi")  # its address becomes known
        await fake.wait_for_messages(tablet, 1)
        fake.send_text(phone, "/link")
        [code] = await fake.wait_for_messages(phone, 1)
        match = CODE.search(code["text"])
        assert match is not None
        fake.send_text(tablet, f"/link {match.group(1)}")
        await fake.wait_for_messages(tablet, 2)
        fake.send_text(phone, "from the phone")
        own = (await fake.wait_for_messages(phone, 2))[1]
        echo, copy = (await fake.wait_for_messages(tablet, 4))[2:]
    assert own["text"] == "Turn 1. You said: from the phone"
    assert (echo["text"], copy["text"]) == (ECHO + "from the phone", own["text"])


async def test_deliver_policy_drops_a_cross_tier_destination(fake: FakeBotApi, tmp_path: Path) -> None:
    alice = fake.user("Alice")
    tiers = IdentityConfig(tiers={"telegram": "public", "responses": "corp"},
                           link_policy=ExplicitPairs({("public", "corp")}))  # fmt: skip
    async with serving(fake, tmp_path / "s", identity=tiers) as s:
        await link(fake, s.http, alice, "responses", "alice")  # public -> corp may link
        response = await ask(s.sdk, "alice", "corp secret", {"kind": "channels", "channels": ["telegram"]})
        report = await audit(s.http, response.id, settled=0)
    assert response.output_text == "Turn 1. You said: corp secret"  # the originating channel answers instead
    assert report["destinations"] == []
    assert report["skipped"] == [{"channel": "telegram", "user": str(alice.id), "reason": "link_policy"}]
    assert len(fake.messages(alice)) == 2  # only those of the link: corp -> public is not delivered


BAD_TARGETS = [
    ({"kind": "everyone"}, 400, "invalid_request_error"),
    ("sometimes", 400, "invalid_request_error"),
    ({"kind": "channels", "channels": []}, 400, "invalid_request_error"),
    ({"kind": "channels", "channels": ["telegram"], "echo_input": "yes"}, 400, "invalid_request_error"),
    ({"kind": "channels", "channels": ["fax"]}, 400, "unknown_channel"),
    ({"kind": "channels", "channels": ["invocations"]}, 400, "cannot_push"),
    ({"kind": "identities", "identities": [{"channel": "telegram", "user": "424242"}]}, 404, "unknown_identity"),
    ({"kind": "identities", "identities": [{"channel": "telegram"}]}, 400, "invalid_request_error"),
    ("all_linked", 400, "sender_required"),
]


async def test_bad_targets_are_refused_before_the_turn(fake: FakeBotApi, tmp_path: Path) -> None:
    answers = []
    async with serving(fake, tmp_path / "s") as s:
        for target, _, _ in BAD_TARGETS:
            answers.append(
                await s.http.post("/v1/responses", json={"model": "m", "input": "hi", "response_target": target})
            )
        invocation = await s.http.post("/invocations", json={"message": "hi", "response_target": {"kind": "x"}})
        stored = s.host.store.count("responses")
    for (target, status, code), answer in zip(BAD_TARGETS, answers, strict=True):
        assert answer.status_code == status, (target, answer.text)
        error = answer.json()["error"]
        assert code in (error["code"], error["type"]) and error["message"], (target, error)
    assert invocation.status_code == 422 and "unknown response target kind" in invocation.text
    assert stored == 0  # no turn ran for any of them
