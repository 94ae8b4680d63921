"""Response targets without a server: the wire codec, the ledger's rows and audit, and the host's router over a
real identity registry in a temporary LMDB store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from afactors.actors import ledger
from afactors.actors._handle import TurnHandle
from afactors.actors._phases import Entry
from afactors.host._routing import Router, RoutingError
from afactors.identity import IdentityConfig, IdentityService, same_tier_only
from afactors.model import (
    ConversationKey,
    Destination,
    Envelope,
    Identity,
    Message,
    Reply,
    ReplyTarget,
    ResponseTarget,
    Routing,
    parse_response_target,
)
from afactors.store import DeliveryAudit, DeliveryOutcome, OutboxRecord, Put, Store

# -- the wire codec ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("originating", ResponseTarget()),
        ("none", ResponseTarget.none()),
        ({"kind": "active", "echo_input": True}, ResponseTarget.active(echo_input=True)),
        ({"kind": "all_linked"}, ResponseTarget.all_linked()),
        ({"kind": "channels", "channels": ["telegram", "originating"]},
         ResponseTarget.to_channels(["telegram", "originating"])),
        ({"kind": "identities", "identities": [{"channel": "telegram", "user": "7"}], "echo_input": True},
         ResponseTarget.to_identities([Identity("telegram", "7")], echo_input=True)),
    ],
)  # fmt: skip
def test_response_targets_parse(wire: object, expected: ResponseTarget) -> None:
    assert parse_response_target(wire) == expected


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (None, "kind name or an object"),
        (3, "kind name or an object"),
        ("everyone", "unknown response target kind 'everyone'"),
        ({"kind": "channels"}, "'response_target.channels' must be a non-empty array"),
        ({"kind": "channels", "channels": "telegram"}, "must be a non-empty array"),
        ({"kind": "channels", "channels": [""]}, "non-empty printable string"),
        ({"kind": "channels", "channels": [7]}, "non-empty printable string"),
        ({"kind": "identities", "identities": ["telegram/7"]}, "must be an object with 'channel' and 'user'"),
        ({"kind": "identities", "identities": [{"channel": "telegram", "user": "a\nb"}]}, "printable"),
        ({"kind": "all_linked", "channels": ["x"]}, "belongs to kind 'channels' only"),
        ({"kind": "channels", "channels": ["x"], "identities": []}, "belongs to kind 'identities' only"),
        ({"kind": "active", "echo_input": "yes"}, "must be a boolean"),
        ({"kind": "active", "echo": True}, "unknown field(s): echo"),
        ({"kind": "channels", "channels": ["x"] * 101}, "at most 100"),
    ],
)
def test_bad_response_targets_are_named(wire: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_response_target(wire)
    assert message in str(error.value)


# -- the ledger ----------------------------------------------------------------------------------------------

KEY = ConversationKey("t", "c")
REPLY = Reply(messages=(Message("assistant", "the answer"),))


def _entry(routing: Routing | None) -> Entry:
    envelope = Envelope(
        KEY, (Message("user", "the question"),), turn_id="turn_1", identity=Identity("responses", "ann"),
        reply_to=ReplyTarget("web", {"socket": 1}), routing=routing,
    )  # fmt: skip
    return Entry(envelope, TurnHandle("turn_1"), 1.0, stamp=42)


def _outbox(ops: list[Put]) -> dict[str, OutboxRecord]:
    return {op.key: op.value for op in ops if isinstance(op, Put) and op.kind == "outbox"}


def test_a_routed_turn_commits_one_row_per_destination_and_its_audit() -> None:
    tg = Destination("telegram", "7", {"chat_id": 7, "chat_type": "private"}, echo=True)
    other = Destination("telegram", "8", {"chat_id": 8, "chat_type": "private"})
    routing = Routing(ResponseTarget.to_identities([Identity("telegram", "7")], echo_input=True), True, (tg, other))
    _, ops = ledger.completed(KEY, [_entry(routing)], {}, seq=1, state={}, inputs=(), reply=REPLY, now=5.0)
    rows = _outbox(ops)  # type: ignore[arg-type]
    assert sorted(rows) == ["t/>telegram/7/00000000000000000042", "t/>telegram/8/00000000000000000042",
                            "t/c/00000000000000000042"]  # fmt: skip
    assert {ledger.outbox_group(k) for k in rows} == {"t/>telegram/7", "t/>telegram/8", "t/c"}  # apart
    origin, seven, eight = rows["t/c/00000000000000000042"], rows["t/>telegram/7/00000000000000000042"], rows[
        "t/>telegram/8/00000000000000000042"]  # fmt: skip
    assert origin.payload["originating"] is True and "echo" not in origin.payload
    assert seven.payload["echo"] == [{"role": "user", "contents": [{"type": "text", "text": "the question"}]}]
    assert "echo" not in eight.payload and seven.payload["n"] == 1 and eight.payload["n"] == 2
    [audit] = [op.value for op in ops if isinstance(op, Put) and op.kind == "deliveries"]
    assert isinstance(audit, DeliveryAudit)
    assert audit.originating == 0 and [d.channel for d in audit.destinations] == ["web", "telegram", "telegram"]


def test_a_turn_routed_away_from_its_origin_has_no_originating_row() -> None:
    routing = Routing(ResponseTarget.none(), originating=False)
    _, ops = ledger.completed(KEY, [_entry(routing)], {}, seq=1, state={}, inputs=(), reply=REPLY, now=5.0)
    assert _outbox(ops) == {}  # type: ignore[arg-type]
    [audit] = [op.value for op in ops if isinstance(op, Put) and op.kind == "deliveries"]
    assert audit.destinations == () and audit.originating is None


def test_delivered_dead_lettered_and_redriven_rows_settle_their_audit() -> None:
    row = OutboxRecord("telegram", {}, {"turn_id": "push_1", "audit": "push_1", "n": 3, "reply": {}}, attempts=1)
    done = ledger.delivered("k", row, 9.0)
    assert done[1] == Put("outcomes", "push_1/000003", DeliveryOutcome("delivered", 9.0, 2))
    dead = ledger.undeliverable("k", row, "blocked", 9.0)
    assert dead[-1] == Put("outcomes", "push_1/000003", DeliveryOutcome("dead_lettered", 9.0, 1, "blocked"))
    letter = dead[1].value  # type: ignore[union-attr]
    back = ledger.redriven("outbox/k", letter, 10.0)
    assert [(op.kind, op.key) for op in back] == [("dead_letters", "outbox/k"), ("outbox", "k"),
                                                  ("outcomes", "push_1/000003")]  # fmt: skip
    legacy = OutboxRecord("telegram", {}, {"turn_id": "turn_1", "reply": {}})
    assert [op.kind for op in ledger.delivered("k", legacy, 9.0)] == ["outbox"]  # not audited: nothing more


def test_a_broadcast_keeps_its_idempotency_key_in_the_same_commit() -> None:
    destinations = tuple(Destination("telegram", str(n), {"chat_id": n, "chat_type": "private"}) for n in range(3))
    ops = ledger.broadcast("t", "push_9", Routing(ResponseTarget(), False, destinations), REPLY, 77, 1.0, "news-1")
    kinds = [op.kind for op in ops]
    assert kinds == ["dedup", "deliveries", "outbox", "outbox", "outbox"]
    assert ops[0].key == ledger.push_dedup_key("t", "news-1")
    assert len({ledger.outbox_group(op.key) for op in ops[2:]}) == 3  # each recipient its own ordering group


# -- the router ----------------------------------------------------------------------------------------------

ADDRESS = {"chat_id": 7, "chat_type": "private"}


@pytest.fixture
async def identity(tmp_path: Path) -> AsyncIterator[IdentityService]:
    async with Store.open(tmp_path / "s", durability="unsafe") as store:
        yield IdentityService(store, IdentityConfig(tiers={"telegram": "public"}))


async def _linked(identity: IdentityService) -> str:
    """Ann on Telegram (address known) and on Responses, linked; her isolation key."""
    await identity.resolve("t", Identity("telegram", "7"), ADDRESS)
    code = await identity.issue_code("t", Identity("telegram", "7"))
    record = await identity.redeem("t", Identity("responses", "ann"), code.code)
    return record.key


def _router(identity: IdentityService, **kw: object) -> Router:
    return Router(identity, lambda: ["telegram", "responses", "mcp"], lambda: ["telegram"], **kw)  # type: ignore[arg-type]


async def test_routing_by_kind(identity: IdentityService) -> None:
    key = await _linked(identity)
    router = _router(identity)
    ann = Identity("responses", "ann")
    tg = Destination("telegram", "7", ADDRESS)
    assert router.for_turn("t", ResponseTarget(), "responses", ann, key) == Routing(ResponseTarget())
    assert router.for_turn("t", ResponseTarget.none(), "responses", ann, key).originating is False
    named = router.for_turn("t", ResponseTarget.channel("telegram", echo_input=True), "responses", ann, key)
    assert (named.originating, named.destinations) == (False, (Destination("telegram", "7", ADDRESS, True),))
    both = router.for_turn("t", ResponseTarget.to_channels(["originating", "telegram"]), "responses", ann, key)
    assert (both.originating, both.destinations) == (True, (tg,))
    linked = router.for_turn("t", ResponseTarget.all_linked(), "telegram", Identity("telegram", "7"), key)
    assert (linked.originating, linked.destinations) == (True, ())  # Responses cannot push: skipped
    assert [(s.channel, s.reason) for s in linked.skipped] == [("responses", "cannot_push")]
    active = router.for_turn("t", ResponseTarget.active(), "responses", ann, key)
    assert (active.originating, active.destinations) == (False, (tg,))
    stale = _router(identity, active_window=0.0).for_turn("t", ResponseTarget.active(), "responses", ann, key)
    assert (stale.originating, stale.destinations) == (True, ())


async def test_routing_refusals(identity: IdentityService) -> None:
    key = await _linked(identity)
    router = _router(identity)
    ann = Identity("responses", "ann")

    def code(target: ResponseTarget, sender: Identity | None = ann, key: str | None = key) -> str:
        with pytest.raises(RoutingError) as error:
            router.for_turn("t", target, "responses", sender, key)
        return error.value.code

    assert code(ResponseTarget.channel("fax")) == "unknown_channel"
    assert code(ResponseTarget.channel("mcp")) == "cannot_push"
    assert code(ResponseTarget.to_identities([Identity("telegram", "8")])) == "unknown_identity"
    assert code(ResponseTarget.all_linked(), None, None) == "sender_required"
    await identity.resolve("t", Identity("responses", "bob"))
    bob = (await identity.resolve("t", Identity("responses", "bob"))).key
    assert code(ResponseTarget.channel("telegram"), Identity("responses", "bob"), bob) == "not_linked"
    await identity.resolve("t", Identity("telegram", "9"))  # known, but never wrote a message: no address
    assert code(ResponseTarget.to_identities([Identity("telegram", "9")])) == "no_address"
    with pytest.raises(RoutingError) as other_tenant:
        router.for_turn("u", ResponseTarget.to_identities([Identity("telegram", "7")]), "responses", None, None)
    assert other_tenant.value.code == "unknown_identity"


async def test_the_deliver_policy_drops_cross_tier_destinations(tmp_path: Path) -> None:
    async with Store.open(tmp_path / "s", durability="unsafe") as store:
        identity = IdentityService(store, IdentityConfig(tiers={"telegram": "public", "responses": "corp"}))
        key = await _linked(identity)
        strict = IdentityService(store, IdentityConfig(tiers={"telegram": "public", "responses": "corp"},
                                                       link_policy=same_tier_only))  # fmt: skip
        routing = _router(strict).for_turn("t", ResponseTarget.channel("telegram"), "responses",
                                           Identity("responses", "ann"), key)  # fmt: skip
    assert (routing.originating, routing.destinations) == (True, ())  # nothing left: the origin answers
    assert [(s.channel, s.user_id, s.reason) for s in routing.skipped] == [("telegram", "7", "link_policy")]


async def test_a_push_needs_somewhere_to_go(identity: IdentityService) -> None:
    await _linked(identity)
    router = _router(identity)
    for target, user, expected in [
        (ResponseTarget(), None, "invalid_response_target"),
        (ResponseTarget.to_channels(["originating"]), Identity("telegram", "7"), "invalid_response_target"),
        (ResponseTarget.all_linked(), None, "invalid_response_target"),
        (ResponseTarget.all_linked(), Identity("responses", "zed"), "unknown_identity"),
    ]:
        with pytest.raises(RoutingError) as error:
            router.for_push("t", target, user)
        assert error.value.code == expected, target
    await identity.resolve("t", Identity("responses", "solo"))
    with pytest.raises(RoutingError) as nowhere:
        router.for_push("t", ResponseTarget.all_linked(), Identity("responses", "solo"))
    assert (nowhere.value.status, nowhere.value.code) == (409, "no_destination")
    routing = router.for_push("t", ResponseTarget.all_linked(), Identity("responses", "ann"))
    assert routing.destinations == (Destination("telegram", "7", ADDRESS),)
