"""The durable bookkeeping of a turn, as pure functions that return store ops (no I/O, no clock, no state).

This module is the only writer of the rows that record where a turn stands: inbox rows, dedup keys, response
records, outbox rows and dead letters (and, for a completed turn, the snapshot and turn record of the same
commit). Callers read what they need, call one function here, commit the ops it returns in one transaction, and
only then answer whoever waits. The points in a turn's life:

- `accepted`: at submit time, the inbox row of a keyed envelope and the queued record of a background turn;
- `started`: queued records of a turn about to run become "in_progress";
- `completed` / `failed` / `cancelled`: the turn ended; records get their final status, inbox rows are
  acknowledged, idempotency keys marked done, replies queued in the outbox, poison envelopes dead-lettered;
  a completed turn's staged target records (`TurnContext.records`) are written in its commit, and only there;
- `appended` / `revised` / `cleared`: history edits (envelope kinds "append", "revise", "clear"), run in the
  mailbox like turns, that change the committed turns without running the target;
- `hidden`: a record withdrawn from retrieval (its conversation history is kept);
- `timers_changed`: timers scheduled or cancelled (by a turn, in its `completed` commit, or from outside);
- `fired`: a due timer becomes an inbox row (and a schedule its next occurrence) in one commit;
- `broadcast`: a push without a turn to resolved destinations (`host.push`), with its idempotency key;
- `delivered` / `redeliver` / `undeliverable` / `redriven`: what the delivery outbox does with a pushed reply
  (and, for a routed turn or a push, the outcome row of its delivery audit);
- `replayed`: an operator gives a dead letter another go;
- `rejected_input`: an input a channel could not turn into an envelope (a poison update), dead-lettered.

Must not import: the actor, the system or anything that does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from afactors.actors._keys import (
    UNDELIVERED_PREFIX,
    dead_letter_key,
    dedup_key,
    destination_group,
    due_of,
    inbox_key,
    is_destination_group,
    outbox_group,
    outbox_key,
    outcome_key,
    push_dedup_key,
    record_key,
    records_prefix,
    redriven_key,
    rejected_input_key,
    timer_due_key,
    timer_key,
    turn_key,
    undelivered_key,
)
from afactors.actors._phases import Entry
from afactors.actors._records import Staged
from afactors.model import (
    ConversationKey,
    Destination,
    Envelope,
    Message,
    Reply,
    ReplyTarget,
    Routing,
    Timer,
    converter,
)
from afactors.store import (
    DeadLetter,
    DedupRecord,
    Delete,
    DeliveryAudit,
    DeliveryOutcome,
    Generic,
    InboxRecord,
    Op,
    OutboxRecord,
    Put,
    ResponseRecord,
    Snapshot,
    Summary,
    TimerDue,
    TimerRecord,
    TurnRecord,
)

STORE_OPTION = "store"
"""`Envelope.options[STORE_OPTION] = False`: the turn's record is kept but not retrievable (`stored=False`)."""

Records = Mapping[str, ResponseRecord]
"""The response records of a turn's entries as they stand, by turn id (entries without one are absent)."""

_NO_OPS: list[Op] = []  # shared, never written to
_NO_STAGED: Staged = {}  # shared, never written to

__all__ = [
    "STORE_OPTION",
    "UNDELIVERED_PREFIX",
    "attempt_failed",
    "Records",
    "accepted",
    "appended",
    "broadcast",
    "cancelled",
    "cleared",
    "completed",
    "conversation_of",
    "delivered",
    "due_of",
    "failed",
    "fired",
    "hidden",
    "inbox_row",
    "outbox_group",
    "is_destination_group",
    "outcome_key",
    "push_dedup_key",
    "pushed",
    "pushed_key",
    "queued_record",
    "records_prefix",
    "redeliver",
    "redriven",
    "redriven_key",
    "rejected_input",
    "revised",
    "started",
    "timer_due_key",
    "timer_key",
    "timers_changed",
    "undeliverable",
]

_NO_TIMERS: Mapping[str, Timer | None] = {}


def queued_record(envelope: Envelope, turn_id: str, now: float) -> ResponseRecord:
    """The record of a background turn when it is accepted: "queued", stored, visible at once."""
    return ResponseRecord(
        id=turn_id, tenant=envelope.key.tenant, conversation=envelope.key.path, status="queued",
        input=envelope.input, parent=envelope.parent, background=True, stored=True, created_at=now,
        data=dict(envelope.options),
    )  # fmt: skip


def accepted(entry: Entry, *, inbox: bool) -> list[Op]:
    """What must be durable before `submit` returns: the inbox row (sets `entry.inbox_key`), the queued record."""
    ops: list[Op] = []
    if entry.background:
        ops.append(Put("responses", entry.turn_id, queued_record(entry.envelope, entry.turn_id, entry.accepted_at)))
    if inbox:
        entry.inbox_key = inbox_key(entry.envelope.key.path, entry.stamp)
        ops.append(Put("inbox", entry.inbox_key, inbox_row(entry)))
    return ops


def inbox_row(entry: Entry) -> InboxRecord:
    """An entry's inbox row (also what a stopped conversation keeps to replay later)."""
    return InboxRecord(envelope=entry.stored_envelope(), received_at=entry.accepted_at)


def started(records: Records) -> tuple[dict[str, ResponseRecord], list[Op]]:
    """The records as the turn starts, and the ops that move "queued" ones to "in_progress"."""
    now_records: dict[str, ResponseRecord] = {}
    ops: list[Op] = []
    for turn_id, record in records.items():
        if record.status == "queued":
            record = attrs.evolve(record, status="in_progress")
            ops.append(Put("responses", turn_id, record))
        now_records[turn_id] = record
    return now_records, ops


def completed(
    key: ConversationKey,
    entries: Sequence[Entry],
    records: Records,
    *,
    seq: int,
    state: dict[str, Any],
    inputs: tuple[Message, ...],
    reply: Reply,
    now: float,
    reply_to: ReplyTarget | None = None,
    timers: Mapping[str, Timer | None] = _NO_TIMERS,
    committed_timers: Mapping[str, Timer] | None = None,
    staged: Staged = _NO_STAGED,
    summary: Summary | None = None,
) -> tuple[Snapshot, list[Op]]:
    """A committed turn: the new snapshot (with the history `summary` the turn saw), its turn record, each entry's
    record and settlement, and the target records the turn `staged` (one commit).

    `reply_to`: the conversation's last known reply address before this turn (the snapshot keeps the newest).
    `timers`/`committed_timers`: the turn's timer changes and the timers they change (see `timers_changed`).
    """
    first = entries[0]
    turn_id, parent, output = first.turn_id, first.envelope.parent, reply.messages
    for entry in entries:
        reply_to = entry.envelope.reply_to or reply_to
    snapshot = Snapshot(seq=seq, head=turn_id, state=state, updated_at=now, reply_to=reply_to, summary=summary)
    ops: list[Op] = [
        Put("snapshots", key.path, snapshot),
        Put("turns", turn_key(key.path, seq), TurnRecord(
            seq=seq, turn_id=turn_id, input=inputs, output=output, parent=parent, usage=reply.usage,
            created_at=first.accepted_at, completed_at=now,
        )),
    ]  # fmt: skip
    for entry in entries:
        ops.append(Put("responses", entry.turn_id, _ended(
            key, entry, records.get(entry.turn_id), "completed", inputs, now, reply, seq
        )))  # fmt: skip
        ops.extend(_settle(key, entry, seq, reply, now))
    if timers:
        ops.extend(timers_changed(key, timers, committed_timers or {}))
    for name, value in staged.items():
        at = record_key(key.path, name)
        ops.append(Delete("checkpoints", at) if value is None else Put("checkpoints", at, Generic(value)))
    return snapshot, ops


def failed(
    key: ConversationKey,
    entries: Sequence[Entry],
    records: Records,
    *,
    inputs: tuple[Message, ...],
    reply: Reply,
    now: float,
    dead_letter: str | None,
) -> list[Op]:
    """A turn that will not run again: failed records, settlements, and dead letters when it was poison."""
    ops: list[Op] = []
    for entry in entries:
        if entry.envelope.kind == "transient":
            continue  # it leaves nothing behind, not even its failure
        ops.append(Put("responses", entry.turn_id, _ended(
            key, entry, records.get(entry.turn_id), "failed", inputs, now, reply
        )))  # fmt: skip
        ops.extend(_settle(key, entry, 0, reply, now))
        if dead_letter is not None:
            letter = DeadLetter(envelope=entry.stored_envelope(), error=dead_letter, failed_at=now)
            ops.append(Put("dead_letters", dead_letter_key(key.path, entry.turn_id), letter))
    return ops


def cancelled(entries: Iterable[Entry], records: Records, reply: Reply, now: float) -> list[Op]:
    """Turns that will never run (or were cut): "cancelled" records, inbox acks and dedup keys; no push."""
    ops: list[Op] = []
    for entry in entries:
        if entry.envelope.kind == "transient":
            continue  # it leaves nothing behind
        key = entry.envelope.key
        record = _ended(key, entry, records.get(entry.turn_id), "cancelled", entry.envelope.input, now, reply)
        ops.append(Put("responses", entry.turn_id, record))
        ops.extend(_acknowledge(key.path, entry, 0))
    return ops


def appended(path: str, snapshot: Snapshot, entry: Entry, now: float) -> tuple[Snapshot, list[Op]]:
    """History edit "append": the entry's input becomes the conversation's next turn (no output, target not run)."""
    seq = snapshot.seq + 1
    snapshot = attrs.evolve(snapshot, seq=seq, head=entry.turn_id, updated_at=now)
    record = TurnRecord(
        seq=seq, turn_id=entry.turn_id, input=entry.envelope.input, created_at=entry.accepted_at, completed_at=now
    )
    return snapshot, [Put("turns", turn_key(path, seq), record), Put("snapshots", path, snapshot)]


def revised(
    path: str, snapshot: Snapshot, record: TurnRecord, inputs: tuple[Message, ...], output: tuple[Message, ...]
) -> tuple[Snapshot, list[Op]]:
    """History edit "revise": committed turn `record` gets new input and output. A history summary that covers
    the turn is dropped (the next turn summarises again)."""
    ops: list[Op] = [Put("turns", turn_key(path, record.seq), attrs.evolve(record, input=inputs, output=output))]
    if snapshot.summary is not None and record.seq <= snapshot.summary.through:
        snapshot = attrs.evolve(snapshot, summary=None)
        ops.append(Put("snapshots", path, snapshot))
    return snapshot, ops


def cleared(path: str, seq: int) -> list[Op]:
    """History edit "clear": every committed turn (1..`seq`) and the snapshot go."""
    return [*(Delete("turns", turn_key(path, n)) for n in range(1, seq + 1)), Delete("snapshots", path)]


def hidden(record: ResponseRecord) -> list[Op]:
    """Withdraw a record from retrieval (`stored=False`, marked deleted); the conversation's history stays."""
    return [Put("responses", record.id, attrs.evolve(record, stored=False, data={**record.data, "deleted": True}))]


def pushed(
    key: ConversationKey,
    stamp: int,
    channel: str,
    address: Mapping[str, Any],
    push_id: str,
    reply: Reply,
    now: float,
    *,
    once: bool = False,
) -> list[Op]:
    """A reply pushed without a turn (a welcome, a proactive message): an outbox row for `channel`, delivered in
    order with the replies of conversation `key` (`stamp` from the same clock as their arrival stamps). `once`: with
    the push id's dedup row (`pushed_key`), which a commit expecting it absent makes a resent push a no-op."""
    payload = {"turn_id": push_id, "reply": converter.unstructure(reply), "tenant": key.tenant,
               "conversation": key.conversation}  # fmt: skip
    row = OutboxRecord(channel=channel, address=dict(address), payload=payload, due_at=now)
    ops: list[Op] = [Put("outbox", outbox_key(key.path, stamp), row)]
    if once:
        ops.append(Put("dedup", pushed_key(key, push_id), DedupRecord(turn_id=push_id, seq=0)))
    return ops


def pushed_key(key: ConversationKey, push_id: str) -> str:
    """Key of the `DedupRecord` of a push into conversation `key` that must be queued once (a forwarded one)."""
    return dedup_key(key.path, push_id)


def timers_changed(
    key: ConversationKey, changes: Mapping[str, Timer | None], committed: Mapping[str, Timer]
) -> list[Op]:
    """Timer id -> timer to put (replacing one with that id) or None to cancel; `committed`: the pending timers
    with those ids (their index rows go)."""
    ops: list[Op] = []
    for timer_id, timer in changes.items():
        row_key = timer_key(key.path, timer_id)
        old = committed.get(timer_id)
        if old is not None:
            ops.append(Delete("timer_due", timer_due_key(old.due_at, row_key)))
        if timer is None:
            ops.append(Delete("timers", row_key))
            continue
        ops.append(Put("timers", row_key, TimerRecord(tenant=key.tenant, conversation=key.conversation, timer=timer)))
        ops.append(Put("timer_due", timer_due_key(timer.due_at, row_key), TimerDue(timer_key=row_key)))
    return ops


def fired(entry: Entry, row_key: str, record: TimerRecord, now: float) -> list[Op]:
    """A due timer fires: its envelope's inbox row, and the timer no longer pending (a one-shot timer's row kept
    as fired, with the turn id, until retention removes it), or due at a schedule's next occurrence.

    Committed together (on condition that the timer row is unchanged), so a timer fires once; the turn's own
    commit then deletes the inbox row as for any envelope.
    """
    timer = record.timer
    ops = accepted(entry, inbox=True)
    ops.append(Delete("timer_due", timer_due_key(timer.due_at, row_key)))
    following = timer.following(now)
    if following is None:
        done = attrs.evolve(timer, fired=timer.fired + 1)
        ops.append(Put("timers", row_key, attrs.evolve(record, timer=done, fired_at=now, turn_id=entry.turn_id)))
    else:
        ops.append(Put("timers", row_key, attrs.evolve(record, timer=following)))
        ops.append(Put("timer_due", timer_due_key(following.due_at, row_key), TimerDue(timer_key=row_key)))
    return ops


def delivered(key: str, row: OutboxRecord, now: float) -> list[Op]:
    """A pushed reply arrived: its outbox row goes (and its audited outcome is written)."""
    return [Delete("outbox", key), *_outcome(row, DeliveryOutcome("delivered", now, row.attempts + 1))]


def _audited(row: OutboxRecord) -> tuple[str, int] | None:
    """The delivery audit id and row number an outbox row settles, if it is audited."""
    audit, n = row.payload.get("audit"), row.payload.get("n")
    return (audit, n) if isinstance(audit, str) and isinstance(n, int) else None


def _outcome(row: OutboxRecord, outcome: DeliveryOutcome) -> list[Op]:
    ref = _audited(row)
    return _NO_OPS if ref is None else [Put("outcomes", outcome_key(*ref), outcome)]


def attempt_failed(row: OutboxRecord, attempt: int, now: float, *, ambiguous: bool) -> OutboxRecord:
    """A push's row after its attempt number `attempt` failed (the retry budget runs from the first failure;
    `ambiguous`: the request went out but its answer was lost)."""
    return attrs.evolve(
        row, attempts=attempt, first_failed_at=row.first_failed_at or now, ambiguous=row.ambiguous + ambiguous
    )


def redeliver(key: str, row: OutboxRecord, due_at: float) -> list[Op]:
    """A push failed (`row` as `attempt_failed` left it) and will be tried again at `due_at`."""
    return [Put("outbox", key, attrs.evolve(row, due_at=due_at))]


def undeliverable(key: str, row: OutboxRecord, error: str, now: float) -> list[Op]:
    """A push that will never arrive: out of the outbox, into the dead letters (under `UNDELIVERED_PREFIX`)."""
    dead = DeadLetter(envelope=None, delivery=row, error=error, failed_at=now)
    outcome = DeliveryOutcome("dead_lettered", now, row.attempts, error)
    return [Delete("outbox", key), Put("dead_letters", undelivered_key(key), dead), *_outcome(row, outcome)]


def replayed(dead_key: str, letter: DeadLetter, stamp: int, now: float) -> list[Op]:
    """A dead letter given another go: an undelivered push is `redriven` (back in the outbox with a fresh retry
    budget); a poison envelope goes back into its conversation's inbox (it runs, under its turn id, when a host
    starts)."""
    if letter.delivery is not None:
        return redriven(dead_key, letter, now)
    if letter.envelope is None:
        raise ValueError(f"dead letter {dead_key!r} holds neither an envelope nor a push")
    inbox = InboxRecord(envelope=letter.envelope, received_at=now)
    return [Delete("dead_letters", dead_key), Put("inbox", inbox_key(letter.envelope.key.path, stamp), inbox)]


def conversation_of(dead_key: str, letter: DeadLetter) -> ConversationKey | None:
    """The conversation whose rows giving dead letter `letter` another go writes (its lease fences them in a
    cluster): a poison envelope's, or an undelivered reply's or push's; None for a push to a destination group
    (delivered under the group's lease) or a rejected input."""
    if letter.envelope is not None:
        return letter.envelope.key
    if letter.delivery is None:
        return None
    group = outbox_group(redriven_key(dead_key))
    tenant, _, conversation = group.partition("/")
    return None if is_destination_group(group) or not conversation else ConversationKey(tenant, conversation)


def redriven(dead_key: str, dead: DeadLetter, now: float) -> list[Op]:
    """A dead-lettered push back in the outbox under its original key, with a fresh retry budget."""
    if dead.delivery is None:
        return _NO_OPS
    fresh = attrs.evolve(dead.delivery, attempts=0, first_failed_at=0.0, ambiguous=0, due_at=now)
    ref = _audited(fresh)
    pending = [] if ref is None else [Delete("outcomes", outcome_key(*ref))]
    return [Delete("dead_letters", dead_key), Put("outbox", redriven_key(dead_key), fresh), *pending]


def rejected_input(channel: str, key: str, reason: str, data: dict[str, Any], now: float) -> list[Op]:
    """An input channel `channel` could not handle, kept with the reason (never dropped silently)."""
    letter = DeadLetter(envelope=None, error=reason, failed_at=now, data=data)
    return [Put("dead_letters", rejected_input_key(channel, key), letter)]


# -- shared parts --------------------------------------------------------------------------------------------


def _ended(
    key: ConversationKey,
    entry: Entry,
    existing: ResponseRecord | None,
    status: Literal["completed", "failed", "cancelled"],
    inputs: tuple[Message, ...],
    now: float,
    reply: Reply,
    seq: int | None = None,
) -> ResponseRecord:
    """The record of an entry's ended turn; an existing record keeps its created_at and data."""
    output = reply.messages if status == "completed" else ()
    usage = reply.usage if status == "completed" else None
    if existing is not None:
        return attrs.evolve(
            existing, status=status, input=inputs, output=output, seq=seq, usage=usage, error=reply.error,
            completed_at=now,
        )  # fmt: skip
    envelope = entry.envelope
    options = envelope.options
    return ResponseRecord(
        id=entry.turn_id, tenant=key.tenant, conversation=key.path, status=status, input=inputs, output=output,
        parent=envelope.parent, seq=seq, background=entry.background,
        stored=bool(options.get(STORE_OPTION, True)), usage=usage, error=reply.error,
        created_at=entry.accepted_at, completed_at=now, data=dict(options),
    )  # fmt: skip


def _settle(key: ConversationKey, entry: Entry, seq: int, reply: Reply, now: float) -> list[Op]:
    """Inbox ack, dedup key and reply pushes of an entry whose turn ended for good: the originating channel's row
    (when it has a `reply_to` and its routing keeps it), one row per routed destination, and their audit."""
    envelope = entry.envelope
    routing = envelope.routing
    target = envelope.reply_to if routing is None or routing.originating else None
    if entry.inbox_key is None and envelope.idempotency_key is None and target is None and routing is None:
        return _NO_OPS
    ops = _acknowledge(key.path, entry, seq)
    rows: list[tuple[str, Destination]] = []
    if target is not None:
        user = envelope.identity.user_id if envelope.identity is not None else ""
        rows.append((outbox_key(key.path, entry.stamp), Destination(target.channel, user, dict(target.address))))
    if routing is None:
        ops.extend(_rows(rows, entry.turn_id, reply, now, None, key=key))
        return ops
    rows += [
        (outbox_key(destination_group(key.tenant, d.channel, d.user_id), entry.stamp), d) for d in routing.destinations
    ]
    audit = DeliveryAudit(
        tenant=key.tenant, id=entry.turn_id, target=routing.target, destinations=tuple(d for _, d in rows),
        skipped=routing.skipped, originating=0 if target is not None else None,
        source=envelope.identity.channel if envelope.identity is not None else None, created_at=now,
    )  # fmt: skip
    ops.append(Put("deliveries", entry.turn_id, audit))
    ops.extend(_rows(rows, entry.turn_id, reply, now, audit, envelope.input, key=key))
    return ops


def broadcast(
    tenant: str, push_id: str, routing: Routing, reply: Reply, stamp: int, now: float, idempotency_key: str
) -> list[Op]:
    """A push without a turn (`host.push`): one outbox row per destination (each delivered in order with the
    other pushes to that channel identity, concurrently with every other recipient), the delivery audit, and
    the push's idempotency key, all in one commit: a push is queued once however often it is asked for."""
    rows = [(outbox_key(destination_group(tenant, d.channel, d.user_id), stamp), d) for d in routing.destinations]
    audit = DeliveryAudit(
        tenant=tenant, id=push_id, target=routing.target, destinations=routing.destinations,
        skipped=routing.skipped, created_at=now,
    )  # fmt: skip
    return [
        Put("dedup", push_dedup_key(tenant, idempotency_key), DedupRecord(turn_id=push_id, seq=0)),
        Put("deliveries", push_id, audit),
        *_rows(rows, push_id, reply, now, audit),
    ]


def _rows(
    rows: Sequence[tuple[str, Destination]],
    delivery_id: str,
    reply: Reply,
    now: float,
    audit: DeliveryAudit | None,
    echo: tuple[Message, ...] = (),
    *,
    key: ConversationKey | None = None,
) -> list[Op]:
    """The outbox rows of one answer: the reply (and, for a destination that asked for it, the user's input
    first), the audit row `n` each settles, the conversation it came from (for response hooks)."""
    ops: list[Op] = []
    unstructured = converter.unstructure(reply)
    echoed = [converter.unstructure(m) for m in echo]
    for n, (row_key, destination) in enumerate(rows):
        payload: dict[str, Any] = {"turn_id": delivery_id, "reply": unstructured}
        if key is not None:
            payload.update(tenant=key.tenant, conversation=key.conversation)
        if audit is not None:
            payload.update(audit=delivery_id, n=n, user=destination.user_id, originating=n == audit.originating)
            payload.setdefault("tenant", audit.tenant)
            if destination.echo and echoed:
                payload["echo"] = echoed
        row = OutboxRecord(channel=destination.channel, address=dict(destination.address), payload=payload, due_at=now)
        ops.append(Put("outbox", row_key, row))
    return ops


def _acknowledge(path: str, entry: Entry, seq: int) -> list[Op]:
    """Delete the entry's inbox row and mark its idempotency key done (both only when it has them)."""
    ops: list[Op] = []
    if entry.inbox_key is not None:
        ops.append(Delete("inbox", entry.inbox_key))
    idempotency_key = entry.envelope.idempotency_key
    if idempotency_key is not None:
        ops.append(Put("dedup", dedup_key(path, idempotency_key), DedupRecord(turn_id=entry.turn_id, seq=seq)))
    return ops
