"""Writes made outside a turn, on two cluster nodes (real hosts on loopback, one throwaway PostgreSQL schema):
identities, pushes, broadcasts, the timer API and hiding a response stay right whichever node serves them."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

import afactors.host._replay
from afactors.actors import ledger
from afactors.cluster._wire import FORWARDED_BY, ForwardRequest, encode_request
from afactors.host import ChannelContext, Contribution, Delivery, Host, open_host
from afactors.host._cluster_routes import ClusterRoutes
from afactors.identity import LinkFailed
from afactors.model import (
    ConversationKey,
    Envelope,
    Identity,
    Message,
    Reply,
    ReplyTarget,
    ResponseTarget,
    TurnContext,
    Update,
)
from afactors.store import InboxRecord, Lease, Op, Put, Store
from afactors.store.pg_server import PgServer
from afactors_activity import ActivityChannel
from afactors_activity.testing import BotClient, FakeConnector, FakeIdentity
from afactors_responses import ResponsesChannel

SECRET = "s3cret"
APP_ID = "00000000-aaaa-bbbb-cccc-000000000001"
APP_PASSWORD = "client-secret-1"
KEY = ConversationKey("default", "chat:1")
OTHER = ConversationKey("default", "chat:2")


class Counter:
    """Answers "<node> turn <n>: <input>", n counting the conversation's turns (its state)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, ctx: TurnContext):  # type: ignore[no-untyped-def]
        ctx.state["turns"] = ctx.state.get("turns", 0) + 1
        yield Update(delta=f"{self.name} turn {ctx.state['turns']}: {ctx.messages[-1].text if ctx.messages else ''}")


@attrs.define
class Chat:
    """A test channel that delivers to a list; its context is the node's `ChannelContext`."""

    name: str = "chat"
    run_hook: None = None
    response_hook: None = None
    ctx: ChannelContext | None = None
    delivered: list[str] = attrs.Factory(list)

    def contribute(self, ctx: ChannelContext) -> Contribution:
        self.ctx = ctx
        return Contribution(deliver=self.deliver)

    async def deliver(self, delivery: Delivery) -> None:
        self.delivered.append(delivery.reply.text)

    async def say(self, text: str) -> str:
        assert self.ctx is not None
        envelope = Envelope(KEY, (Message("user", text),), reply_to=ReplyTarget(self.name, {"chat": "1"}))
        return (await (await self.ctx.submit(envelope)).reply()).text


def say(text: str) -> Reply:
    return Reply(messages=(Message("assistant", text),))


@attrs.frozen
class Node:
    host: Host
    chat: Chat
    url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def url(pg_server: PgServer) -> str:
    return pg_server.new_store_url()


@asynccontextmanager
async def two_nodes(url: str, **settings: Any) -> AsyncIterator[tuple[Node, Node]]:
    async with AsyncExitStack() as stack:
        nodes = []
        for name in ("a", "b"):
            port, chat = _free_port(), Chat()
            host = await stack.enter_async_context(
                open_host(
                    Counter(name), channels=[ResponsesChannel(), chat], store=url, node_id=name, port=port,
                    advertise=f"http://127.0.0.1:{port}", web_ui=False, durability="fast",
                    **{"cluster_secret": SECRET, **settings},
                )
            )  # fmt: skip
            nodes.append(Node(host, chat, f"http://127.0.0.1:{port}"))
        yield nodes[0], nodes[1]


async def test_first_contact_racing_on_two_nodes_issues_one_key(url: str) -> None:
    keys: dict[str, set[str]] = {}
    async with two_nodes(url) as (a, b):

        async def contact(node: Node, user: str) -> None:
            resolved = await node.host.identity.resolve("default", Identity("responses", user))
            keys.setdefault(user, set()).add(resolved.key)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                for node in (a, b):
                    nursery.start_soon(contact, node, f"user{n}")
        stored = {user: a.host.store.get("links", f"default/responses/{user}").key for user in keys}
        identities = a.host.store.count("identities")
    assert all(len(found) == 1 for found in keys.values()), keys
    assert stored == {user: next(iter(found)) for user, found in keys.items()}
    assert identities == 20


async def ask(http: httpx.AsyncClient, node: Node, user: str, text: str) -> str:
    body = {"model": "m", "input": text, "safety_identifier": user, "session": "identity"}
    answer = await http.post(f"{node.url}/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["output"][0]["content"][0]["text"])


async def test_a_link_made_on_one_node_is_followed_by_the_next_message_on_the_other(url: str) -> None:
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await ask(http, a, "alice", "one") == "a turn 1: one"
        assert await ask(http, a, "alice", "two") == "a turn 2: two"
        assert await ask(http, b, "alice-phone", "hi") == "b turn 1: hi"  # its own key, read (and once cached) on b
        code = await http.post(f"{a.url}/v1/identity/link_codes", json={"channel": "responses", "user": "alice"})
        redeem = {"channel": "responses", "user": "alice-phone", "code": code.json()["code"]}
        linked = await http.post(f"{a.url}/v1/identity/links", json=redeem)
        assert linked.status_code == 200, linked.text
        after = await ask(http, b, "alice-phone", "after")
        on_b = b.host.identity.lookup("default", "responses", "alice-phone")
    assert after == "a turn 3: after"  # alice's conversation, run by its owner a
    assert on_b is not None and sorted(on_b.members) == ["responses/alice", "responses/alice-phone"]


async def test_a_new_conversation_started_on_one_node_is_where_the_other_sends_the_next_message(url: str) -> None:
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await ask(http, b, "carol", "one") == "b turn 1: one"
        assert await ask(http, b, "carol", "two") == "b turn 2: two"
        fresh = await http.post(f"{a.url}/v1/identity/new_conversation", json={"channel": "responses", "user": "carol"})
        assert fresh.status_code == 200, fresh.text
        after = await ask(http, b, "carol", "three")
    assert after.endswith("turn 1: three")  # the fresh conversation, wherever it runs


async def test_one_link_code_redeemed_on_two_nodes_at_once_links_one_sender(url: str) -> None:
    outcomes: dict[str, str] = {}
    async with two_nodes(url) as (a, b):
        for n in range(10):
            owner = Identity("responses", f"owner{n}")
            code = await a.host.identity.issue_code("default", owner)

            async def redeem(node: Node, user: str, code: str = code.code) -> None:
                try:
                    await node.host.identity.redeem("default", Identity("responses", user), code)
                    outcomes[user] = "linked"
                except LinkFailed as failed:
                    outcomes[user] = failed.code

            async with trio.open_nursery() as nursery:
                nursery.start_soon(redeem, a, f"x{n}")
                nursery.start_soon(redeem, b, f"y{n}")
        linked = [
            sorted(record.members)
            for n in range(10)
            if (record := a.host.identity.lookup("default", "responses", f"owner{n}")) is not None
        ]
    for n in range(10):
        assert sorted([outcomes[f"x{n}"], outcomes[f"y{n}"]]) == ["invalid_code", "linked"], outcomes
    assert all(len(members) == 2 for members in linked) and len(linked) == 10


async def test_a_push_on_a_node_that_does_not_own_the_conversation_is_queued_by_the_owner(url: str) -> None:
    async with two_nodes(url) as (a, b):
        assert await a.chat.say("hello") == "a turn 1: hello"
        assert b.chat.ctx is not None
        await b.chat.ctx.push(KEY, {"chat": "1"}, say("from b"))
        assert await a.chat.say("again") == "a turn 2: again"
        with trio.fail_after(10):
            while len(a.chat.delivered) < 3 or a.host.store.count("outbox"):
                await trio.sleep(0.02)
        lease = a.host.store.get("leases", KEY.path)
    assert a.chat.delivered == ["a turn 1: hello", "from b", "a turn 2: again"] and b.chat.delivered == []
    assert lease.owner == "a"  # the push took nothing from the owner


PUSH = {"schema": 1, "channel": "chat", "key": {"tenant": "default", "conversation": KEY.conversation},
        "push_id": "push_1", "address": {"chat": "1"}, "reply": {"messages": [{"role": "assistant",
        "contents": [{"type": "text", "text": "once"}]}]}}  # fmt: skip


async def test_a_push_sent_again_to_the_owner_with_its_push_id_is_queued_once(url: str) -> None:
    headers = {"authorization": f"Bearer {SECRET}", "afactors-forwarded-by": "b"}
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        answers = [await http.post(f"{a.url}/v1/cluster/pushes", json=PUSH, headers=headers) for _ in range(2)]
        elsewhere = await http.post(
            f"{b.url}/v1/cluster/pushes", json=PUSH, headers={**headers, "afactors-forwarded-by": "a"}
        )
        assert await a.chat.say("again") == "a turn 2: again"
        with trio.fail_after(10):
            while len(a.chat.delivered) < 3 or a.host.store.count("outbox"):
                await trio.sleep(0.02)
    assert [answer.json() for answer in answers] == [{"pushed": "push_1", "duplicate": False},
                                                     {"pushed": "push_1", "duplicate": True}]  # fmt: skip
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (409, "not_owner")
    assert a.chat.delivered == ["a turn 1: hello", "once", "a turn 2: again"] and b.chat.delivered == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, PUSH, 401, "unauthorized"),
        ({"authorization": "Bearer wrong"}, PUSH, 403, "forbidden"),
        ({"authorization": f"Bearer {SECRET}"}, PUSH, 400, "bad_request"),  # no Afactors-Forwarded-By
        (None, "[1]", 400, "bad_request"),
        (None, "{", 400, "bad_json"),
        (None, {**PUSH, "schema": 2}, 400, "unsupported_schema"),
        (None, {**PUSH, "extra": 1}, 400, "bad_request"),
        (None, {**PUSH, "push_id": ""}, 400, "bad_request"),
        (None, {**PUSH, "address": []}, 400, "bad_request"),
        (None, {**PUSH, "key": {"tenant": "default"}}, 400, "bad_request"),
        (None, {**PUSH, "reply": {"messages": "no"}}, 400, "bad_request"),
        (None, {**PUSH, "channel": "fax"}, 400, "unknown_channel"),
    ],
)
async def test_a_bad_or_unauthenticated_push_to_the_internal_route_is_refused(
    url: str, headers: dict[str, str] | None, body: object, status: int, code: str
) -> None:
    headers = headers if headers is not None else {"authorization": f"Bearer {SECRET}", "afactors-forwarded-by": "b"}
    content = body if isinstance(body, str) else json.dumps(body)
    async with two_nodes(url) as (a, _), httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{a.url}/v1/cluster/pushes", content=content, headers=headers)
        outbox = a.host.store.count("outbox")
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert outbox == 0


@pytest.mark.parametrize("background", [False, True])
async def test_a_forwarded_turn_whose_conversation_another_node_took_meanwhile_is_409_not_owner(
    url: str, monkeypatch: pytest.MonkeyPatch, background: bool
) -> None:
    # B's look at the owner passes (as if it ran just before A took the conversation), its submit meets A's lease:
    # the sender must hear `not_owner` (it locates again and resends), not `unavailable` (a 503 for its client).
    async def looked_before_a_took_it(self: ClusterRoutes, key: ConversationKey) -> None:
        await trio.lowlevel.checkpoint()

    monkeypatch.setattr(ClusterRoutes, "_owned", looked_before_a_took_it)
    envelope = Envelope(KEY, (Message("user", "to b"),), turn_id="turn_raced", idempotency_key="turn_raced")
    forward = encode_request(ForwardRequest(envelope, "responses", background=background))
    headers = {"authorization": f"Bearer {SECRET}", FORWARDED_BY: "a", "content-type": "application/json"}
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        answer = await http.post(f"{b.url}/v1/cluster/turns", content=forward, headers=headers)
        assert await a.chat.say("again") == "a turn 2: again"  # nothing ran on B in between
        lease = a.host.store.get("leases", KEY.path)
    assert (answer.status_code, answer.json()["error"]["code"]) == (409, "not_owner"), answer.text
    assert lease.owner == "a" and b.chat.delivered == []


async def test_a_push_takes_a_free_conversation_until_it_is_delivered_then_gives_it_back(url: str) -> None:
    async with two_nodes(url) as (a, b):
        assert a.chat.ctx is not None and b.chat.ctx is not None
        await b.chat.ctx.push(KEY, {"chat": "1"}, say("welcome"))
        with trio.fail_after(10):
            while b.chat.delivered != ["welcome"] or a.host.store.get("leases", KEY.path).owner != "":
                await trio.sleep(0.02)
        await a.chat.ctx.push(KEY, {"chat": "1"}, say("hello from a"))
        answer = await a.chat.say("hi")
        with trio.fail_after(10):
            while len(a.chat.delivered) < 2:
                await trio.sleep(0.02)
    assert answer == "a turn 1: hi"
    assert a.chat.delivered == ["hello from a", "a turn 1: hi"] and b.chat.delivered == ["welcome"]


async def dead_letter(store: Store, key: ConversationKey, text: str, stamp: int) -> str:
    """A push into `key`'s conversation that was never delivered, dead-lettered: its dead letter's key."""
    (row,) = ledger.pushed(key, stamp, "chat", {"chat": "1"}, f"push_{text}", say(text), 0.0)
    await store.commit(ledger.undeliverable(row.key, row.value, "gone", 0.0))
    return ledger.UNDELIVERED_PREFIX + row.key


ADMIN = {"authorization": "Bearer adm"}


async def test_dead_letters_redriven_or_replayed_on_a_node_that_does_not_own_them_are_handed_to_the_owner(
    url: str,
) -> None:
    async with two_nodes(url, admin_key="adm") as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        redriven = await dead_letter(a.host.store, KEY, "redriven", 1)
        replayed = await dead_letter(a.host.store, KEY, "replayed", 2)
        assert b.host.outbox is not None and a.host.outbox is not None
        moved_on_b = await b.host.outbox.redrive(keys=[redriven])
        on_b = await http.post(f"{b.url}/admin/dead-letters/replay", params={"key": replayed}, headers=ADMIN)
        left = sorted(key for key, _ in a.host.store.scan("dead_letters"))
        moved_again = await a.host.outbox.redrive(keys=[redriven])
        again = await http.post(f"{a.url}/admin/dead-letters/replay", params={"key": replayed}, headers=ADMIN)
        assert await a.chat.say("again") == "a turn 2: again"
        with trio.fail_after(10):
            while len(a.chat.delivered) < 4 or a.host.store.count("outbox"):
                await trio.sleep(0.02)
        lease = a.host.store.get("leases", KEY.path)
    assert moved_on_b == 1 and on_b.status_code == 200, on_b.text  # before: 0 and 409, both left where they were
    assert left == [] and moved_again == 0 and again.status_code == 404  # each moved once
    assert sorted(a.chat.delivered[1:3]) == ["redriven", "replayed"] and b.chat.delivered == []
    assert lease.owner == "a"


async def test_without_a_cluster_secret_dead_letters_of_another_nodes_conversation_stay(url: str) -> None:
    async with two_nodes(url, admin_key="adm", cluster_secret=None) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        redriven = await dead_letter(a.host.store, KEY, "redriven", 1)
        replayed = await dead_letter(a.host.store, KEY, "replayed", 2)
        assert b.host.outbox is not None
        moved = await b.host.outbox.redrive()
        refused = await http.post(f"{b.url}/admin/dead-letters/replay", params={"key": replayed}, headers=ADMIN)
        kept = sorted(key for key, _ in a.host.store.scan("dead_letters"))
    assert moved == 0 and (refused.status_code, refused.json()["error"]["type"]) == (409, "not_owner")
    assert kept == sorted([redriven, replayed]) and b.chat.delivered == []


async def test_dead_letters_redriven_on_two_nodes_at_once_are_each_delivered_once(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(afactors.host._replay, "BATCH", 2)  # the non-owner hands them over in 3 requests
    moved: list[int] = []
    async with two_nodes(url) as (a, b):
        assert await a.chat.say("hello") == "a turn 1: hello"
        keys = [await dead_letter(a.host.store, KEY, f"late {n}", n) for n in range(1, 6)]

        async def redrive(node: Node) -> None:
            assert node.host.outbox is not None
            moved.append(await node.host.outbox.redrive(keys=keys))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(redrive, a)
            nursery.start_soon(redrive, b)
        with trio.fail_after(10):
            while len(a.chat.delivered) < 6 or a.host.store.count("outbox"):
                await trio.sleep(0.02)
        await trio.sleep(0.2)  # room for a second delivery, were there one
    assert sum(moved) == 5 and sorted(a.chat.delivered[1:]) == [f"late {n}" for n in range(1, 6)]
    assert len(a.chat.delivered) == 6 and b.chat.delivered == []


CLUSTER = {"authorization": f"Bearer {SECRET}", "afactors-forwarded-by": "b"}


async def test_dead_letters_sent_again_to_the_owner_move_once(url: str) -> None:
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        body = {"schema": 1, "key": {"tenant": "default", "conversation": KEY.conversation},
                "dead_letters": [await dead_letter(a.host.store, KEY, "once", 1)]}  # fmt: skip
        elsewhere = await http.post(f"{b.url}/v1/cluster/dead-letters/replay", json=body,
                                    headers={**CLUSTER, "afactors-forwarded-by": "a"})  # fmt: skip
        answers = [await http.post(f"{a.url}/v1/cluster/dead-letters/replay", json=body, headers=CLUSTER)
                   for _ in range(2)]  # fmt: skip
        with trio.fail_after(10):
            while len(a.chat.delivered) < 2 or a.host.store.count("outbox"):
                await trio.sleep(0.02)
    assert [answer.json() for answer in answers] == [{"replayed": 1}, {"replayed": 0}]
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (409, "not_owner")
    assert a.chat.delivered == ["a turn 1: hello", "once"] and b.chat.delivered == []


REPLAY = {"schema": 1, "key": {"tenant": "default", "conversation": KEY.conversation}, "dead_letters": ["x"]}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, REPLAY, 401, "unauthorized"),
        ({"authorization": "Bearer wrong"}, REPLAY, 403, "forbidden"),
        ({"authorization": f"Bearer {SECRET}"}, REPLAY, 400, "bad_request"),  # no Afactors-Forwarded-By
        (None, "{", 400, "bad_json"),
        (None, "[]", 400, "bad_request"),
        (None, {**REPLAY, "schema": 2}, 400, "unsupported_schema"),
        (None, {**REPLAY, "extra": 1}, 400, "bad_request"),
        (None, {**REPLAY, "dead_letters": []}, 400, "bad_request"),
        (None, {**REPLAY, "dead_letters": "x"}, 400, "bad_request"),
        (None, {**REPLAY, "dead_letters": [""]}, 400, "bad_request"),
        (None, {**REPLAY, "key": {"tenant": "default"}}, 400, "bad_request"),
        (None, {**REPLAY, "key": {"tenant": "default", "conversation": OTHER.conversation}}, 400, "bad_request"),
    ],
)
async def test_a_bad_or_unauthenticated_replay_to_the_internal_route_is_refused(
    url: str, headers: dict[str, str] | None, body: object, status: int, code: str
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    async with two_nodes(url) as (a, _), httpx.AsyncClient(timeout=30) as http:
        dead = await dead_letter(a.host.store, KEY, "kept", 1)
        content = content.replace('"x"', json.dumps(dead))
        answer = await http.post(f"{a.url}/v1/cluster/dead-letters/replay", content=content,
                                 headers=CLUSTER if headers is None else headers)  # fmt: skip
        kept = [key for key, _ in a.host.store.scan("dead_letters")]
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert kept == [dead]


async def test_a_redrive_on_a_free_conversation_takes_it_for_the_write_and_gives_it_back(url: str) -> None:
    async with two_nodes(url) as (a, b):
        await dead_letter(a.host.store, KEY, "late", 1)
        assert b.host.outbox is not None
        moved = await b.host.outbox.redrive()
        with trio.fail_after(10):
            while b.chat.delivered != ["late"] or a.host.store.get("leases", KEY.path).owner != "":
                await trio.sleep(0.02)
        assert await a.chat.say("hi") == "a turn 1: hi"
    assert moved == 1 and a.chat.delivered == ["a turn 1: hi"]


async def left_by_a_dead_node(store: Store, key: ConversationKey, *texts: str) -> list[str]:
    """Background turns of `key` accepted by a node that died (never registered here): its lease on the
    conversation, their inbox rows and queued records. Their turn ids."""
    ops: list[Op] = [Put("leases", key.path, Lease("gone", 5))]
    turn_ids = []
    for n, text in enumerate(texts, 1):
        turn_id = f"resp_{key.conversation}_{n}"
        envelope = Envelope(key, (Message("user", text),), turn_id=turn_id, idempotency_key=turn_id)
        ops.append(Put("inbox", ledger.inbox_key(key.path, n), InboxRecord(envelope, float(n))))
        ops.append(Put("responses", turn_id, ledger.queued_record(envelope, turn_id, float(n))))
        turn_ids.append(turn_id)
    await store.commit(ops)
    return turn_ids


async def test_a_cancel_that_takes_a_dead_owners_conversation_replays_what_it_left(url: str) -> None:
    async with two_nodes(url) as (_, b):
        assert b.chat.ctx is not None
        doomed, kept = await left_by_a_dead_node(b.host.store, KEY, "doomed", "kept")
        cancelled = await b.chat.ctx.cancel(doomed, "default")
        with trio.fail_after(10):
            while (record := b.chat.ctx.record(kept, "default")) is None or not record.ended:
                await trio.sleep(0.02)
        lease = b.host.store.get("leases", KEY.path)
        (alone,) = await left_by_a_dead_node(b.host.store, OTHER, "alone")
        cancelled_alone = await b.chat.ctx.cancel(alone, "default")
        with trio.fail_after(10):  # nothing left to run there: the lease goes back
            while b.host.store.get("leases", OTHER.path).owner != "":
                await trio.sleep(0.02)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert record.status == "completed" and lease.owner == "b"
    assert cancelled_alone is not None and cancelled_alone.status == "cancelled"


async def test_a_watch_that_takes_a_dead_owners_conversation_replays_what_it_left(url: str) -> None:
    async with two_nodes(url) as (_, b):
        assert b.chat.ctx is not None
        (watched,) = await left_by_a_dead_node(b.host.store, KEY, "watched")
        updates = b.chat.ctx.watch(watched)
        assert updates is not None
        async for _ in updates:  # it may end at once (the turn does not run here yet)
            pass
        with trio.fail_after(10):  # no wait: the watch alone made it run
            while (record := b.chat.ctx.record(watched, "default")) is None or not record.ended:
                await trio.sleep(0.02)
    assert record.status == "completed"


async def test_a_timer_set_through_the_api_of_another_node_fires_once_on_the_owner(url: str) -> None:
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        assert await a.chat.say("hello") == "a turn 1: hello"
        timer = {"conversation": KEY.conversation, "after": 0, "id": "nudge", "payload": {"why": "test"}}
        created = await http.post(f"{b.url}/v1/timers", json=timer)
        assert created.status_code == 201, created.text
        with trio.fail_after(10):
            while len(a.chat.delivered) < 2:
                await trio.sleep(0.02)
        await trio.sleep(2.5)  # past both schedulers' next reads of the due index: a second firing would show
        fired = (a.host.system.stats.timers_fired, b.host.system.stats.timers_fired)
        seq = a.host.store.get("snapshots", KEY.path).seq
    assert fired == (1, 0) and seq == 2
    assert a.chat.delivered[1].startswith("a turn 2") and b.chat.delivered == []


async def test_a_response_hidden_through_one_node_is_gone_on_the_other(url: str) -> None:
    async with two_nodes(url) as (a, b), httpx.AsyncClient(timeout=30) as http:
        made = await http.post(f"{a.url}/v1/responses", json={"model": "m", "input": "keep me"})
        response_id = made.json()["id"]
        first = await http.post(f"{a.url}/v1/responses", json={"model": "m", "input": "next",
                                                               "previous_response_id": response_id})  # fmt: skip
        deleted = await http.delete(f"{b.url}/v1/responses/{response_id}")
        on_a = await http.get(f"{a.url}/v1/responses/{response_id}")
        chained = await http.post(f"{a.url}/v1/responses", json={"model": "m", "input": "after",
                                                                 "previous_response_id": response_id})  # fmt: skip
    assert first.status_code == 200 and deleted.status_code == 200, deleted.text
    assert on_a.status_code == 404
    assert chained.status_code == 400 and chained.json()["error"]["code"] == "previous_response_not_found"


async def test_one_broadcast_key_asked_on_two_nodes_at_once_is_queued_once(url: str) -> None:
    results = []
    async with two_nodes(url) as (a, b):
        for n in range(5):
            await a.host.identity.resolve("default", Identity("chat", f"u{n}"), {"chat": f"u{n}"})
        target = ResponseTarget.to_identities([Identity("chat", f"u{n}") for n in range(5)])

        async def push(node: Node, key: str) -> None:
            results.append(await node.host.push(target, "news", idempotency_key=key))

        async with trio.open_nursery() as nursery:
            for n in range(10):
                for node in (a, b):
                    nursery.start_soon(push, node, f"news-{n}")
        with trio.fail_after(10):
            while a.host.store.count("outbox"):
                await trio.sleep(0.02)
        delivered = len(a.chat.delivered) + len(b.chat.delivered)
        audits = a.host.store.count("deliveries")
    by_key: dict[str, list[bool]] = {}
    for result in results:
        by_key.setdefault(result.id, []).append(result.duplicate)
    assert sorted(sorted(flags) for flags in by_key.values()) == [[False, True]] * 10
    assert audits == 10 and delivered == 50


async def test_alias_changes_made_on_two_nodes_at_once_all_land(url: str) -> None:
    async with two_nodes(url) as (a, b):
        assert a.chat.ctx is not None and b.chat.ctx is not None

        async def append(ctx: ChannelContext, item: str) -> None:
            await ctx.change_alias("list", lambda stored: {"items": [*(stored or {}).get("items", []), item]})

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(append, a.chat.ctx, f"a{n}")
                nursery.start_soon(append, b.chat.ctx, f"b{n}")
        items = (a.chat.ctx.alias("list") or {}).get("items", [])
        dropped = await b.chat.ctx.change_alias("list", lambda stored: None)
        gone = a.chat.ctx.alias("list")
    assert sorted(items) == sorted([f"a{n}" for n in range(20)] + [f"b{n}" for n in range(20)])
    assert dropped is None and gone is None


async def test_an_activity_refusal_on_a_node_that_does_not_own_the_conversation_is_a_503(url: str) -> None:
    async with (
        FakeIdentity(APP_ID, APP_PASSWORD).running() as identity,
        FakeConnector(identity).running() as connector,
        AsyncExitStack() as stack,
        httpx.AsyncClient(timeout=30) as http,
    ):
        clients = []
        for name in ("a", "b"):  # no cluster secret: a turn of a conversation another node owns is refused there
            port, channel = _free_port(), ActivityChannel(
                app_id=APP_ID, app_password=APP_PASSWORD, openid_metadata_url=identity.metadata_url,
                token_endpoint=identity.token_endpoint, service_url_allowlist=(connector.base_url,),
            )  # fmt: skip
            host = await stack.enter_async_context(
                open_host(Counter(name), channels=[channel], store=url, node_id=name, port=port,
                          advertise=f"http://127.0.0.1:{port}", web_ui=False, durability="fast")
            )  # fmt: skip
            clients.append(BotClient(http, host.urls[0] + channel.config.path, connector.service_url))
        token = identity.token(connector.service_url, "valid")
        first = await clients[0].post(clients[0].message("hello", id="activity-1"), token)
        await connector.wait_until(lambda: connector.delivered())
        refused = await clients[1].post(clients[1].message("again", id="activity-2"), token)
    assert first.status_code == 202 and connector.delivered()[0].body["text"] == "a turn 1: hello"
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "ServiceUnavailable"
