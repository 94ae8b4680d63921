"""What the operator commands do to a store: reports (JSON-able data) and the ops they commit.

Pure of terminal output: `afactors.admin.cli` renders these as tables or JSON. Deletes and imports go through the
store's writer in batches of `BATCH` keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson

from afactors.actors import ledger
from afactors.model import ConversationKey, converter
from afactors.store import (
    KINDS,
    DeadLetter,
    Delete,
    Expect,
    Op,
    Put,
    ResponseRecord,
    Snapshot,
    Store,
    TimerRecord,
    retried,
)

EXPORT_FORMAT = "afactors-export"
EXPORT_VERSION = 1
BATCH = 500
CONVERSATION_KINDS = ("turns", "inbox", "outbox", "dedup", "dead_letters", "checkpoints")
"""Kinds whose keys start with the conversation's path (`tenant/conversation/...`)."""


def schema_of(cls: type) -> int:
    """The schema version a record class writes."""
    return int(vars(cls)["SCHEMA"])


class ExportError(ValueError):
    """An export file that cannot be imported; the message names the line."""


def _text(messages: Iterable[Any], limit: int = 200) -> str:
    text = " | ".join(f"{m.role}: {m.text}" for m in messages)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def conversation_key(path: str) -> ConversationKey:
    """A conversation named as the commands name it, `TENANT/CONVERSATION`; ValueError for anything else."""
    tenant, slash, conversation = path.partition("/")
    if not (tenant and slash and conversation):
        raise ValueError(f"conversation {path!r} must be TENANT/CONVERSATION (as `inspect` lists it)")
    return ConversationKey(tenant, conversation)


def inspect_report(store: Store) -> dict[str, Any]:
    """Sizes and counts of the whole state, its timers, and its conversations (most recently active first, up to
    50, each with its pending inbox rows and timers)."""
    conversations = sorted(
        ((path, snap) for path, snap in store.scan("snapshots")), key=lambda item: item[1].updated_at, reverse=True
    )
    pending = store.count("timer_due")  # one index row per pending timer
    front = store.scan("timer_due", limit=1)
    return {
        "state_dir": store.location,
        "records": {kind: store.count(kind) for kind in KINDS},
        "map_usage": round(store.map_usage(), 4),
        "timers": {
            "pending": pending,
            "fired": max(0, store.count("timers") - pending),
            "next_due": ledger.due_of(front[0][0]) if front else None,
        },
        "conversations": [
            {
                "conversation": path,
                "turns": snap.seq,
                "updated_at": snap.updated_at,
                "pending": len(store.scan("inbox", path + "/")),
                "timers": sum(record.pending for _, record in _timer_records(store, path)),
            }
            for path, snap in conversations[:50]
        ],
    }


def _timer_records(store: Store, path: str | None = None) -> list[tuple[str, TimerRecord]]:
    if path is None:
        return store.scan("timers")
    key = conversation_key(path)
    rows: list[tuple[str, TimerRecord]] = store.scan("timers", ledger.timer_key(path, ""))
    return [(k, r) for k, r in rows if (r.tenant, r.conversation) == (key.tenant, key.conversation)]


def _timer_row(key: str, record: TimerRecord) -> dict[str, Any]:
    timer = record.timer
    return {
        "key": key,
        "conversation": f"{record.tenant}/{record.conversation}",
        "id": timer.id,
        "status": "pending" if record.pending else "fired",
        "due_at": timer.due_at,
        "cron": timer.cron,
        "timezone": timer.timezone,
        "payload": timer.payload,
        "reply_to": None if timer.reply_to is None else converter.unstructure(timer.reply_to),
        "fired": timer.fired,
        "fired_at": record.fired_at,
        "turn_id": record.turn_id,
    }


def has_conversation(store: Store, path: str) -> bool:
    """Whether the store knows the conversation `path` (it has turned, or has timers). ValueError if malformed."""
    return store.get("snapshots", path) is not None or bool(_timer_records(store, path))


def timers(store: Store, path: str | None = None) -> list[dict[str, Any]]:
    """Every timer (or those of the conversation `path`): pending ones in due order, then fired one-shot ones
    (kept until retention removes them), latest first. Raises ValueError for a malformed `path`."""
    rows = _timer_records(store, path)
    rows.sort(key=lambda row: (0, row[1].timer.due_at) if row[1].pending else (1, -(row[1].fired_at or 0.0)))
    return [_timer_row(key, record) for key, record in rows]


async def cancel_timer(store: Store, path: str, timer_id: str) -> bool:
    """Cancel the conversation's pending timer `timer_id`; False when it has none (or it fired or changed
    meanwhile). Raises ValueError for a malformed `path`."""
    key = conversation_key(path)
    row_key = ledger.timer_key(path, timer_id)
    record: TimerRecord | None = store.get("timers", row_key)
    if record is None or not record.pending or (record.tenant, record.conversation) != (key.tenant, key.conversation):
        return False
    ops = ledger.timers_changed(key, {timer_id: None}, {timer_id: record.timer})
    return await store.commit(ops, expect=[Expect("timers", row_key, record)])


async def purge_timers(store: Store, *, tenant: str | None = None, path: str | None = None) -> int:
    """Remove every timer (of one tenant, or of the conversation `path`): pending ones are cancelled, fired
    one-shot records forgotten. Returns how many; commits a page of `BATCH` records at a time."""
    key = None if path is None else conversation_key(path)
    prefix = "" if path is None else ledger.timer_key(path, "")
    purged = 0
    after: str | None = None
    while page := store.scan("timers", prefix, after=after, limit=BATCH):
        after = page[-1][0]
        ops: list[Op] = []
        for _, record in page:
            owner = ConversationKey(record.tenant, record.conversation)
            if (tenant is None or record.tenant == tenant) and (key is None or owner == key):
                timer = record.timer
                ops.extend(ledger.timers_changed(owner, {timer.id: None}, {timer.id: timer} if record.pending else {}))
                purged += 1
        if ops:
            await store.commit(ops)
    return purged


def conversation_report(store: Store, path: str) -> dict[str, Any] | None:
    """One conversation (`tenant/conversation`): snapshot, turns, response records, pending inbox and outbox
    rows, dead letters; None when the store knows nothing of it."""
    snapshot: Snapshot | None = store.get("snapshots", path)
    prefix = path + "/"
    turns = store.scan("turns", prefix)
    responses = [r for _, r in store.scan("responses") if isinstance(r, ResponseRecord) and r.conversation == path]
    inbox, outbox = store.scan("inbox", prefix), store.scan("outbox", prefix)
    letters = store.scan("dead_letters", prefix)
    timer_rows = timers(store, path)
    if snapshot is None and not (turns or responses or inbox or outbox or letters or timer_rows):
        return None
    return {
        "conversation": path,
        "turns_done": 0 if snapshot is None else snapshot.seq,
        "updated_at": None if snapshot is None else snapshot.updated_at,
        "state": {} if snapshot is None else snapshot.state,
        "history": [
            {"seq": t.seq, "turn_id": t.turn_id, "status": t.status, "input": _text(t.input), "output": _text(t.output)}
            for _, t in turns
        ],
        "responses": [
            {"id": r.id, "status": r.status, "background": r.background, "created_at": r.created_at} for r in responses
        ],
        "inbox": [{"key": k, "turn_id": row.envelope.turn_id, "received_at": row.received_at} for k, row in inbox],
        "outbox": [{"key": k, "channel": row.channel, "attempts": row.attempts} for k, row in outbox],
        "dead_letters": [k for k, _ in letters],
        "timers": timer_rows,
    }


def _dead_letter_row(key: str, letter: DeadLetter) -> dict[str, Any]:
    envelope = letter.envelope
    return {
        "key": key,
        "kind": "push" if letter.delivery is not None else "envelope",
        "conversation": envelope.key.path if envelope is not None else None,
        "channel": letter.delivery.channel if letter.delivery is not None else None,
        "turn_id": envelope.turn_id if envelope is not None else None,
        "error": letter.error,
        "failed_at": letter.failed_at,
    }


def dead_letters(store: Store, key: str | None = None) -> list[dict[str, Any]]:
    """Every dead letter (or the one under `key`), summarised; `show` adds the whole record as `record`."""
    if key is None:
        return [_dead_letter_row(k, letter) for k, letter in store.scan("dead_letters")]
    letter: DeadLetter | None = store.get("dead_letters", key)
    if letter is None:
        return []
    return [{**_dead_letter_row(key, letter), "record": converter.unstructure(letter)}]


ConversationWrite = Callable[[ConversationKey, Sequence[Op], Sequence[Expect]], Awaitable[bool]]
"""Commit rows of a conversation from outside a turn on condition of `expect` (a host's `ActorSystem.push`: in a
cluster only as the conversation's owner, fenced by its lease; raises `NotOwner` when a live node holds it)."""


ConversationReplay = Callable[[ConversationKey, Sequence[str]], Awaitable[int]]
"""Give the dead letters under the given keys of a conversation another go where the conversation is owned (a
running host's: a cluster node hands them to the owner); how many moved."""


async def replay_dead_letter(store: Store, key: str, replay: ConversationReplay | None = None) -> bool:
    """Give a dead letter another go (see `ledger.replayed`), on condition that it is as read (a replay racing with
    another writes once); False when there is none under `key` (any more). `replay`: how a running host gives a
    conversation's dead letters another go (a cluster node's are written by the conversation's owner)."""
    letter: DeadLetter | None = store.get("dead_letters", key)
    if letter is None:
        return False
    conversation = ledger.conversation_of(key, letter)
    if replay is None or conversation is None:
        ops = ledger.replayed(key, letter, time.time_ns(), time.time())
        return await store.commit(ops, expect=[Expect("dead_letters", key, letter)])
    return await replay(conversation, [key]) == 1


async def replay_conversation(store: Store, key: ConversationKey, dead_keys: Sequence[str],
                              write: ConversationWrite) -> int:  # fmt: skip
    """Give the dead letters under `dead_keys` of conversation `key` another go (`ledger.replayed`) in one commit
    through `write`, on condition that each is as read. Those gone are skipped, and a commit that lost a race with
    another replay is computed again without what it took, so each moves once however many replays race; how many
    this call moved. Raises ValueError, writing nothing, for a dead letter that is not `key`'s."""

    async def attempt() -> int | None:
        letters = [(k, d) for k in dict.fromkeys(dead_keys) if (d := store.get("dead_letters", k)) is not None]
        for dead_key, letter in letters:
            if ledger.conversation_of(dead_key, letter) != key:
                raise ValueError(f"dead letter {dead_key!r} is not one of conversation {key.path!r}")
        if not letters:
            return 0
        stamp, now = time.time_ns(), time.time()
        ops = [op for n, (k, d) in enumerate(letters) for op in ledger.replayed(k, d, stamp + n, now)]
        return len(letters) if await write(key, ops, [Expect("dead_letters", k, d) for k, d in letters]) else None

    return await retried(attempt, f"the dead letters of {key.path}")


async def _delete_all(store: Store, deletes: Iterable[Delete]) -> int:
    batch: list[Op] = []
    done = 0
    for op in deletes:
        batch.append(op)
        if len(batch) >= BATCH:
            await store.commit(batch)
            done, batch = done + len(batch), []
    if batch:
        await store.commit(batch)
        done += len(batch)
    return done


async def purge_dead_letters(store: Store, keys: Iterable[str] | None = None) -> int:
    """Delete the dead letters under `keys` (all when None); returns how many there were."""
    wanted = (
        [k for k, _ in store.scan("dead_letters")]
        if keys is None
        else [k for k in keys if store.get("dead_letters", k)]
    )
    return await _delete_all(store, (Delete("dead_letters", k) for k in wanted))


async def purge_conversation(store: Store, path: str) -> dict[str, int]:
    """Forget a conversation durably: its snapshot, turns, responses, inbox, outbox, dedup keys, dead letters
    (its undelivered pushes included), checkpoints and timers (with their index rows). Returns what was deleted,
    by kind. Raises ValueError, deleting nothing, for a `path` that is not `TENANT/CONVERSATION`."""
    conversation_key(path)
    prefix = path + "/"
    removed: dict[str, int] = {}
    removed["snapshots"] = await _delete_all(store, [Delete("snapshots", path)] if store.get("snapshots", path) else [])
    for kind in CONVERSATION_KINDS:
        at = ledger.records_prefix(path) if kind == "checkpoints" else prefix  # target records: their own prefix
        removed[kind] = await _delete_all(store, [Delete(kind, k) for k, _ in store.scan(kind, at)])
    removed["dead_letters"] += await _delete_all(
        store, [Delete("dead_letters", k) for k, _ in store.scan("dead_letters", "outbox/" + prefix)]
    )
    responses = [k for k, r in store.scan("responses") if isinstance(r, ResponseRecord) and r.conversation == path]
    removed["responses"] = await _delete_all(store, (Delete("responses", k) for k in responses))
    removed["timers"] = await purge_timers(store, path=path)
    return removed


def export_lines(store: Store, kinds: Iterable[str] = KINDS) -> Iterator[bytes]:
    """The state as JSON lines: a header `{"format", "version", "exported_at"}`, then one `{"kind", "key", "v",
    "d"}` per record (`v`: the record class's schema version, `d`: the record as stored)."""
    yield orjson.dumps({"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": time.time()})
    for kind in kinds:
        schema = schema_of(KINDS[kind])
        for key, record in store.scan(kind):
            yield orjson.dumps({"kind": kind, "key": key, "v": schema, "d": converter.unstructure(record)})


async def import_lines(store: Store, lines: Iterable[bytes | str]) -> dict[str, int]:
    """Write every record of an export into the store (same keys overwritten); returns counts by kind.

    Raises `ExportError` naming the line for anything that is not an afactors export this version can read; on
    an error nothing after the last committed batch is written.
    """
    counts: dict[str, int] = {}
    batch: list[Op] = []
    number = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ExportError(f"line {number}: not JSON ({exc})") from exc
        if number == 1:
            if not isinstance(item, dict) or item.get("format") != EXPORT_FORMAT:
                raise ExportError(f"line 1: not an afactors export (expected format {EXPORT_FORMAT!r})")
            if item.get("version") != EXPORT_VERSION:
                raise ExportError(
                    f"line 1: export version {item.get('version')!r}; this afactors reads {EXPORT_VERSION}"
                )
            continue
        batch.append(_record_op(item, number))
        kind = batch[-1].kind
        counts[kind] = counts.get(kind, 0) + 1
        if len(batch) >= BATCH:
            await store.commit(batch)
            batch = []
    if number == 0:
        raise ExportError("line 1: the export is empty")
    if batch:
        await store.commit(batch)
    return counts


def _record_op(item: Any, number: int) -> Put:
    if not isinstance(item, dict) or not {"kind", "key", "v", "d"} <= set(item):
        raise ExportError(f"line {number}: expected an object with kind, key, v and d")
    kind, key, version = item["kind"], item["key"], item["v"]
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ExportError(f"line {number}: unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    if not isinstance(key, str) or not key:
        raise ExportError(f"line {number}: key must be a non-empty string")
    if version != schema_of(cls):
        raise ExportError(f"line {number}: {kind} schema version {version!r}; this afactors reads {schema_of(cls)}")
    try:
        record: Any = converter.structure(item["d"], cls)
    except Exception as exc:
        raise ExportError(f"line {number}: not a valid {kind} record ({exc})") from exc
    return Put(kind, key, record)
