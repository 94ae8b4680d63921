"""Versioned records kept in the store, one attrs class per record kind.

Every record class has a `SCHEMA` version. On disk a record is `{"v": SCHEMA, "d": <unstructured>}`;
`UPGRADES[(cls, v)]` turns the data of version `v` into version `v + 1`, so old records keep loading.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import attrs

from afactors.model import (
    ENDED_STATUSES,
    Destination,
    Envelope,
    ErrorInfo,
    Message,
    Reply,
    ReplyTarget,
    ResponseTarget,
    Skipped,
    Status,
    Timer,
    UsagePart,
)

ResponseStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"]


@attrs.frozen
class Summary:
    """What a summarising hook made of a conversation's turns 1..`through`: the message targets see in their place."""

    through: int
    message: Message


@attrs.frozen
class Snapshot:
    """The committed head of a conversation: turn count, last turn id, target-owned state, last reply address.

    `reply_to`: where the conversation's latest turn that had one wanted its reply (timers' replies go there).
    `summary`: the summary of the conversation's oldest turns, when a summarising hook made one (schema 2).
    """

    SCHEMA: ClassVar[int] = 2
    seq: int = 0
    head: str | None = None
    state: dict[str, Any] = attrs.Factory(dict)
    updated_at: float = 0.0
    reply_to: ReplyTarget | None = None
    summary: Summary | None = None


@attrs.frozen
class TurnRecord:
    """One committed turn of a conversation, in order (`seq` counts from 1)."""

    SCHEMA: ClassVar[int] = 1
    seq: int
    turn_id: str
    input: tuple[Message, ...]
    output: tuple[Message, ...] = ()
    parent: str | None = None
    usage: UsagePart | None = None
    status: str = "completed"
    error: ErrorInfo | None = None
    created_at: float = 0.0
    completed_at: float | None = None


@attrs.frozen
class ResponseRecord:
    """A turn as a protocol-visible object with an id: its status, owner, position and protocol data."""

    SCHEMA: ClassVar[int] = 1
    id: str
    tenant: str
    conversation: str
    status: ResponseStatus
    input: tuple[Message, ...] = ()
    output: tuple[Message, ...] = ()
    parent: str | None = None
    seq: int | None = None
    background: bool = False
    stored: bool = True
    usage: UsagePart | None = None
    error: ErrorInfo | None = None
    created_at: float = 0.0
    completed_at: float | None = None
    data: dict[str, Any] = attrs.Factory(dict)

    @property
    def ended(self) -> bool:
        """Whether the turn has ended (completed, failed, cancelled or incomplete): the record changes no more."""
        return self.status in ENDED_STATUSES

    def as_reply(self) -> Reply:
        """The reply this record stands for; a turn that has not ended reads as "incomplete"."""
        status: Status = "incomplete" if self.status in ("queued", "in_progress") else self.status  # type: ignore[assignment]
        return Reply(messages=self.output, usage=self.usage, status=status, error=self.error)


@attrs.frozen
class InboxRecord:
    """An accepted envelope not yet turned into a committed turn (replayed after a crash)."""

    SCHEMA: ClassVar[int] = 1
    envelope: Envelope
    received_at: float = 0.0


@attrs.frozen
class DedupRecord:
    """Marks an idempotency key as done and names the turn that answered it."""

    SCHEMA: ClassVar[int] = 1
    turn_id: str
    seq: int


@attrs.frozen
class DeadLetter:
    """An envelope that failed twice (a poison message), a push that could not be delivered, or an input a channel
    could not handle (`data`), with the error."""

    SCHEMA: ClassVar[int] = 1
    envelope: Envelope | None
    error: str
    failed_at: float = 0.0
    delivery: OutboxRecord | None = None
    data: dict[str, Any] = attrs.Factory(dict)  # what a channel could not turn into an envelope (a poison update)


@attrs.frozen
class OutboxRecord:
    """A push to deliver through a channel, keyed so the receiver can deduplicate."""

    SCHEMA: ClassVar[int] = 1
    channel: str
    address: dict[str, Any]
    payload: dict[str, Any]
    attempts: int = 0
    due_at: float = 0.0
    first_failed_at: float = 0.0  # when its first attempt failed (the retry budget runs from there)
    ambiguous: int = 0  # attempts whose request went out but whose answer was lost


@attrs.frozen
class TimerRecord:
    """A timer of the conversation `tenant`/`conversation` (kind "timers", one row per timer id).

    Pending while `fired_at` is None (it then has a "timer_due" row). A one-shot timer that fired keeps its row,
    with `fired_at` and the `turn_id` it fired as, until retention removes it (`RetentionConfig.timers`) or its id
    is scheduled again.
    """

    SCHEMA: ClassVar[int] = 1
    tenant: str
    conversation: str
    timer: Timer
    fired_at: float | None = None
    turn_id: str | None = None

    @property
    def pending(self) -> bool:
        """Still to fire (not a one-shot timer that has fired)."""
        return self.fired_at is None


@attrs.frozen
class TimerDue:
    """The due-time index of pending timers (kind "timer_due", keyed by due time): names the timer's row."""

    SCHEMA: ClassVar[int] = 1
    timer_key: str


@attrs.frozen
class Generic:
    """A free-form record (checkpoints, aliases)."""

    SCHEMA: ClassVar[int] = 1
    data: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Member:
    """One channel identity `(channel, native_id)` of a person, and where and when it was last active."""

    channel: str
    native_id: str
    linked_at: float = 0.0
    via: str = "auto"
    last_seen_at: float | None = None
    address: dict[str, Any] = attrs.Factory(dict)

    @property
    def ref(self) -> str:
        return f"{self.channel}/{self.native_id}"


@attrs.frozen
class IdentityRecord:
    """A person within a tenant, under their durable isolation key: their channel identities (`members`, by
    `channel/native_id`), the conversation their sessions continue, verified claims, and which member was active
    last. `merged_into` names the key it was merged onto by a link (the record is kept for the audit trail)."""

    SCHEMA: ClassVar[int] = 1
    tenant: str
    key: str
    conversation: str
    created_at: float = 0.0
    members: dict[str, Member] = attrs.Factory(dict)
    last: str | None = None
    claims: dict[str, str] = attrs.Factory(dict)
    merged_into: str | None = None


@attrs.frozen
class LinkRecord:
    """Which isolation key a channel identity resolves to, since when and by what (`auto`, `code`, `oidc`...)."""

    SCHEMA: ClassVar[int] = 1
    key: str
    via: str = "auto"
    linked_at: float = 0.0


@attrs.frozen
class TokenRecord:
    """A short-lived secret's durable half (a link code's digest, a continuation token): its purpose, owner and
    expiry; `data` holds what the purpose needs."""

    SCHEMA: ClassVar[int] = 1
    purpose: str
    tenant: str
    key: str
    digest: str
    expires_at: float
    created_at: float = 0.0
    data: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class AuditRecord:
    """An identity change (link, unlink, revoke, new conversation): who, what, when, from which channel."""

    SCHEMA: ClassVar[int] = 1
    tenant: str
    action: str
    key: str
    at: float
    channel: str | None = None
    native_id: str | None = None
    detail: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class DeliveryAudit:
    """Where a turn's answer or a push was meant to go (kind "deliveries", keyed by the turn or push id), written
    in the commit that queues its outbox rows: the `target` as asked, the `destinations` that got a row (row `n`
    is destination `n`; the originating channel's row, when there is one, is among them with `originating`
    naming its index) and what was `skipped` and why. Each row's fate is a `DeliveryOutcome`."""

    SCHEMA: ClassVar[int] = 1
    tenant: str
    id: str
    target: ResponseTarget
    destinations: tuple[Destination, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    originating: int | None = None
    source: str | None = None
    created_at: float = 0.0


@attrs.frozen
class DeliveryOutcome:
    """What became of row `n` of a `DeliveryAudit` (kind "outcomes", key `<id>/<n>`): "delivered" or
    "dead_lettered", when, after how many attempts, and the error. No outcome yet: still being delivered."""

    SCHEMA: ClassVar[int] = 1
    status: Literal["delivered", "dead_lettered"]
    at: float
    attempts: int = 1
    error: str | None = None


@attrs.frozen
class Lease:
    """Who owns a conversation in a cluster (kind "leases", keyed by the conversation's path): the owning node's id
    ("" while no node holds it) and the fencing epoch, which grows on every acquisition. A node's commits for the
    conversation expect exactly `Lease(node, epoch)`, so once another node has taken it they write nothing."""

    SCHEMA: ClassVar[int] = 1
    owner: str
    epoch: int


@attrs.frozen
class NodeRecord:
    """A cluster node (kind "nodes", keyed by node id): the URL it advertises to its peers, its heartbeat counter
    (`beat`, renewed every lease/6), the lease length it runs with, and wall-clock times for people (`started`,
    `renewed`): liveness is judged by watching `beat` change, never by comparing clocks."""

    SCHEMA: ClassVar[int] = 1
    node_id: str
    url: str
    beat: int
    lease_seconds: float
    started: float
    renewed: float


@attrs.frozen
class RateWindow:
    """The recent events of one rate-limited key on a cluster's store (kind "limits", keyed `<limit>/<key>`), so
    every node counts the same ones: their times (epoch seconds, the newest `limit` of them at most), and `until`,
    when the newest leaves the window (retention removes the record after that)."""

    SCHEMA: ClassVar[int] = 1
    events: tuple[float, ...]
    until: float


@attrs.frozen
class Quarantined:
    """A record that no longer decodes, moved aside with the reason."""

    SCHEMA: ClassVar[int] = 1
    kind: str
    key: str
    raw: bytes
    reason: str


KINDS: dict[str, type] = {
    "snapshots": Snapshot,
    "turns": TurnRecord,
    "responses": ResponseRecord,
    "inbox": InboxRecord,
    "dedup": DedupRecord,
    "outbox": OutboxRecord,
    "dead_letters": DeadLetter,
    "timers": TimerRecord,
    "timer_due": TimerDue,
    "checkpoints": Generic,
    "aliases": Generic,
    "identities": IdentityRecord,
    "links": LinkRecord,
    "tokens": TokenRecord,
    "audit": AuditRecord,
    "deliveries": DeliveryAudit,
    "outcomes": DeliveryOutcome,
    "leases": Lease,
    "nodes": NodeRecord,
    "limits": RateWindow,
    "quarantine": Quarantined,
}
"""Every record kind (an LMDB sub-database) and the class of its values."""


def _snapshot_v0(data: dict[str, Any]) -> dict[str, Any]:
    # v0 (pre-release) named the turn counter "turns" and had no state.
    data = dict(data)
    data["seq"] = data.pop("turns", 0)
    data.setdefault("state", {})
    return data


def _snapshot_v1(data: dict[str, Any]) -> dict[str, Any]:
    # v1 had no summary.
    return {**data, "summary": None}


UPGRADES: dict[tuple[type, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    (Snapshot, 0): _snapshot_v0,
    (Snapshot, 1): _snapshot_v1,
}
