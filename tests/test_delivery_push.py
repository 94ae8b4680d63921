"""Pushes without a turn (`host.push`, `POST /v1/pushes`) to real Telegram chats (fake Bot API): idempotency,
the delivery audit (delivered and dead-lettered), response hooks on pushed replies, clear errors for unknown or
unlinked recipients and bad bodies, and tenants that never cross."""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from afactors.host import Host, RoutingError, tenant_of_key
from afactors.model import Envelope, Identity, Message, Reply, ResponseTarget
from afactors_telegram.testing import FakeBotApi
from afactors_telegram.testing.model import User
from tests.telegram_fake import telegram_host

KEY_A, KEY_B = "sk-tenant-a", "sk-tenant-b"
CODE = re.compile(r"\b([A-Z2-9]{4}-[A-Z2-9]{4})\b")


def _signed(envelope: Envelope, reply: Reply) -> Reply:
    who = envelope.identity.user_id if envelope.identity is not None else "?"
    return Reply(messages=tuple(Message(m.role, f"{m.text} (for {who})") for m in reply.messages))


def serving(fake: FakeBotApi, state: Path, **host: Any) -> AbstractAsyncContextManager[tuple[Host, httpx.AsyncClient]]:
    """Telegram in tenant A (API key `KEY_A`), Responses; the client sends `KEY_A`."""
    return telegram_host(
        fake, state, telegram={"tenant": tenant_of_key(KEY_A), "response_hook": _signed}, api_keys=(KEY_A, KEY_B),
        headers={"authorization": f"Bearer {KEY_A}"}, **host,
    )  # fmt: skip


async def known(fake: FakeBotApi, *users: User) -> None:
    """Each user writes once, so the bot knows their chat."""
    for user in users:
        fake.send_text(user, "hello")
        await fake.wait_for_messages(user, 1)


async def report(http: httpx.AsyncClient, push_id: str, settled: int) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            body: dict[str, Any] = (await http.get(f"/v1/deliveries/{push_id}")).json()
            if body["counts"]["pending"] <= len(body["destinations"]) - settled:
                return body
            await trio.sleep(0.02)


async def test_host_push_to_identities_is_idempotent_and_audited(fake: FakeBotApi, tmp_path: Path) -> None:
    ann, bob = fake.user("Ann"), fake.user("Bob")
    target = ResponseTarget.to_identities([Identity("telegram", str(ann.id)), Identity("telegram", str(bob.id))])
    async with serving(fake, tmp_path / "s") as (host, http):
        await known(fake, ann, bob)
        tenant = tenant_of_key(KEY_A)
        first = await host.push(target, "Maintenance at noon", idempotency_key="m-1", tenant=tenant)
        again = await host.push(target, "Maintenance at noon", idempotency_key="m-1", tenant=tenant)
        [_, to_ann] = await fake.wait_for_messages(ann, 2)
        [_, to_bob] = await fake.wait_for_messages(bob, 2)
        audit = await report(http, first.id, settled=2)
        other_tenant = await http.get(f"/v1/deliveries/{first.id}", headers={"authorization": f"Bearer {KEY_B}"})
        await trio.sleep(0.2)  # a second copy would have arrived by now
    assert (first.destinations, first.duplicate) == (2, False)
    assert (again.id, again.duplicate) == (first.id, True)
    assert to_ann["text"] == f"Maintenance at noon (for {ann.id})"  # the response hook, per destination
    assert to_bob["text"] == f"Maintenance at noon (for {bob.id})"
    assert len(fake.messages(ann)) == 2 and len(fake.messages(bob)) == 2
    assert audit["counts"] == {"pending": 0, "delivered": 2, "dead_lettered": 0}
    assert [(r["user"], r["status"], r["originating"]) for r in audit["destinations"]] == [
        (str(ann.id), "delivered", False), (str(bob.id), "delivered", False)
    ]  # fmt: skip
    assert other_tenant.status_code == 404


async def test_http_push_to_a_person_linked_channels_and_a_dead_letter(fake: FakeBotApi, tmp_path: Path) -> None:
    ann, gone = fake.user("Ann"), fake.user("Gone")
    async with serving(fake, tmp_path / "s") as (_, http):
        await known(fake, ann, gone)
        fake.send_text(ann, "/link")
        [*_, code] = await fake.wait_for_messages(ann, 2)
        found = CODE.search(code["text"])
        assert found is not None, code["text"]
        linked = await http.post("/v1/identity/links", json={"channel": "responses", "user": "ann",
                                                             "code": found.group(1)})  # fmt: skip
        assert linked.status_code == 200, linked.text
        to_person = await http.post("/v1/pushes", json={
            "target": "all_linked", "user": {"channel": "responses", "user": "ann"}, "message": "Your report is ready",
        }, headers={"idempotency-key": "report-7"})  # fmt: skip
        fake.block(gone)
        blocked = await http.post("/v1/pushes", json={
            "target": {"kind": "identities", "identities": [{"channel": "telegram", "user": str(gone.id)}]},
            "message": "Anyone there?", "idempotency_key": "ping-1",
        })  # fmt: skip
        [*_, pushed] = await fake.wait_for_messages(ann, 3)
        dead = await report(http, blocked.json()["id"], settled=1)
    assert to_person.status_code == 202 and to_person.json()["destinations"] == 1
    assert to_person.json()["skipped"] == [{"channel": "responses", "user": "ann", "reason": "cannot_push"}]
    assert pushed["text"] == f"Your report is ready (for {ann.id})"
    [row] = dead["destinations"]
    assert row["status"] == "dead_lettered" and "blocked" in row["error"]


async def test_push_errors_are_clear(fake: FakeBotApi, tmp_path: Path) -> None:
    ann = fake.user("Ann")
    async with serving(fake, tmp_path / "s") as (host, http):
        await known(fake, ann)
        tenant = tenant_of_key(KEY_A)
        with pytest.raises(RoutingError) as unknown:
            await host.push(ResponseTarget.to_identities([Identity("telegram", "999")]), "x", idempotency_key="k",
                            tenant=tenant)  # fmt: skip
        carol = await http.post("/v1/responses", json={"model": "m", "input": "hi", "safety_identifier": "carol"})
        assert carol.status_code == 200, carol.text  # Carol is known on Responses, not linked to Telegram
        with pytest.raises(RoutingError) as unlinked:
            await host.push(ResponseTarget.channel("telegram"), "x", idempotency_key="k", tenant=tenant,
                            user=Identity("responses", "carol"))  # fmt: skip
        with pytest.raises(RoutingError) as cross:  # Ann is known in tenant A only
            await host.push(ResponseTarget.to_identities([Identity("telegram", str(ann.id))]), "x",
                            idempotency_key="k", tenant=tenant_of_key(KEY_B))  # fmt: skip
        with pytest.raises(ValueError, match="idempotency key"):
            await host.push(ResponseTarget.to_identities([Identity("telegram", str(ann.id))]), "x",
                            idempotency_key="", tenant=tenant)  # fmt: skip
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_identity")
    assert (unlinked.value.status, unlinked.value.code) == (409, "not_linked")
    assert (cross.value.status, cross.value.code) == (404, "unknown_identity")
    assert fake.messages(ann)[1:] == []


def _to(user: object) -> dict[str, Any]:
    return {"kind": "identities", "identities": [{"channel": "telegram", "user": str(user)}]}


async def test_bad_push_requests_get_4xx(fake: FakeBotApi, tmp_path: Path) -> None:
    ann = fake.user("Ann")
    ok = {"target": _to(ann.id), "message": "hi", "idempotency_key": "k1"}
    cases: list[tuple[str, Any, dict[str, str], int, str]] = [
        ("not json", b"{nope", {}, 400, "invalid_request"),
        ("not an object", [1], {}, 400, "invalid_request"),
        ("no target", {"message": "hi", "idempotency_key": "k"}, {}, 400, "missing_required_parameter"),
        ("no message", {"target": _to(ann.id), "idempotency_key": "k"}, {}, 400, "missing_required_parameter"),
        ("empty message", {**ok, "message": " "}, {}, 400, "invalid_request"),
        ("no key", {"target": _to(ann.id), "message": "hi"}, {}, 400, "missing_required_parameter"),
        ("unknown field", {**ok, "priority": 1}, {}, 400, "invalid_request"),
        ("unknown kind", {**ok, "target": {"kind": "broadcast"}}, {}, 400, "invalid_request"),
        ("originating", {**ok, "target": "originating"}, {}, 400, "invalid_response_target"),
        ("unknown channel", {**ok, "target": {"kind": "identities", "identities": [{"channel": "fax", "user": "1"}]}},
         {}, 400, "unknown_channel"),
        ("cannot push", {**ok, "target": {"kind": "identities", "identities": [{"channel": "responses", "user": "a"}]}},
         {}, 400, "cannot_push"),
        ("unknown identity", {**ok, "target": _to(424242)}, {}, 404, "unknown_identity"),
        ("needs a user", {**ok, "target": "all_linked"}, {}, 400, "invalid_response_target"),
        ("other tenant", ok, {"authorization": f"Bearer {KEY_B}"}, 404, "unknown_identity"),
        ("missing auth", ok, {"authorization": ""}, 401, "invalid_api_key"),
        ("wrong key", ok, {"authorization": "Bearer sk-nope"}, 401, "invalid_api_key"),
    ]  # fmt: skip
    answers = []
    async with serving(fake, tmp_path / "s") as (_, http):
        await known(fake, ann)
        for _, body, headers, _, _ in cases:
            content = body if isinstance(body, bytes) else None
            json_body = None if isinstance(body, bytes) else body
            answers.append(await http.post("/v1/pushes", content=content, json=json_body, headers=headers))
        missing = await http.get("/v1/deliveries/push_nothing")
        no_auth = await http.get("/v1/deliveries/push_nothing", headers={"authorization": ""})
        await trio.sleep(0.1)
    for (name, _, _, status, code), answer in zip(cases, answers, strict=True):
        assert answer.status_code == status, (name, answer.text)
        assert answer.json()["error"]["code"] == code, (name, answer.json())
        assert answer.json()["error"]["message"], name
    assert missing.status_code == 404 and no_auth.status_code == 401
    assert fake.messages(ann)[1:] == []  # nothing was pushed by any of them
